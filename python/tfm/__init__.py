"""tfm — transformer inference and decoding with a C core."""
from . import _tfmcore
from .tokenization import AutoTokenizer

__version__ = "0.1.0"
