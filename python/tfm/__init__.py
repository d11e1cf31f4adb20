"""tfm — transformer inference and decoding with a C core.

    import tfm
    tok = tfm.AutoTokenizer.from_pretrained(d)
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    out = model(ids, attention_mask=mask)        # out.logits: float32 [B, T, V]
    fill = tfm.pipeline("fill-mask", model=bert_dir)
    model, tok = tfm.load_default("gpt")         # the embedded tiny GPT ("bert": the embedded BERT)
    batch = tfm.mlm_mask(input_ids, tokenizer=tok, mlm_probability=0.15, seed=0)
"""
import os as _os

# OpenMP threads wait between kernel calls by spinning (fast while the cores are free) and then
# sleep. libgomp's default spin of 300,000 rounds makes a waiting thread burn its core for long
# enough that another busy process on the machine slows a decode step tenfold; 10,000 rounds keep
# the quiet-machine speed (measured: 21 vs 22 ms per GPT-2-124M token) and avoid that collapse.
# Read by libgomp when _tfmcore loads it; a user's own setting wins.
if "GOMP_SPINCOUNT" not in _os.environ and "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "10000"

from . import _tfmcore  # noqa: E402
from .configuration import AutoConfig, GPT2Config, GPTNeoConfig, OpenAIGPTConfig
from .models import (AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForNextSentencePrediction,
                     AutoModelForPreTraining, AutoModelForSequenceClassification, AutoModelForTokenClassification,
                     EncoderForMaskedLM, EncoderForNextSentencePrediction, EncoderForPreTraining,
                     EncoderForSequenceClassification, EncoderForTokenClassification, EncoderModel, GPTForCausalLM,
                     GPTModel, KVCache)
from .models.bert import AlbertConfig, BertConfig, DistilBertConfig, ElectraConfig, RobertaConfig
from . import comparison, defaults, metrics, sampling
from .defaults import load_default
from .generation import GenerationConfig
from .pipelines import pipeline
from .pretraining import DynamicMasking, StaticMasking, mlm_mask, nsp_pairs, sop_pairs
from .tokenization import AutoTokenizer

__version__ = "0.1.0"


def set_num_threads(n: int) -> int:
    """Threads the C core uses for every kernel (at most OMP_NUM_THREADS or the cores; 0 = all).
    Returns the number now in use. Fewer threads help when other processes load the cores."""
    return _tfmcore.set_num_threads(n)


def get_num_threads() -> int:
    return _tfmcore.max_threads()
