"""tfm — transformer inference and decoding with a C core.

    import tfm
    tok = tfm.AutoTokenizer.from_pretrained(d)
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    out = model(ids, attention_mask=mask)        # out.logits: float32 [B, T, V]
    fill = tfm.pipeline("fill-mask", model=bert_dir)
    model, tok = tfm.load_default("gpt")         # the embedded tiny GPT ("bert": the embedded BERT)
    batch = tfm.mlm_mask(input_ids, tokenizer=tok, mlm_probability=0.15, seed=0)
"""
from . import _tfmcore
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
