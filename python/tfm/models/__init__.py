"""Model families (one module each) and the Auto classes that pick among them."""
from .auto import AutoModel, AutoModelForCausalLM
from .base import KVCache
from .gpt import GPTForCausalLM, GPTModel

__all__ = ["AutoModel", "AutoModelForCausalLM", "KVCache", "GPTForCausalLM", "GPTModel"]
