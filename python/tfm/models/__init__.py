"""Model families (one module each) and the Auto classes that pick among them."""
from .auto import (AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForNextSentencePrediction,
                   AutoModelForPreTraining, AutoModelForSequenceClassification, AutoModelForTokenClassification)
from .base import KVCache
from .bert import (EncoderForMaskedLM, EncoderForNextSentencePrediction, EncoderForPreTraining,
                   EncoderForSequenceClassification, EncoderForTokenClassification, EncoderModel)
from .gpt import GPTForCausalLM, GPTModel

__all__ = ["AutoModel", "AutoModelForCausalLM", "AutoModelForMaskedLM", "AutoModelForNextSentencePrediction",
           "AutoModelForPreTraining", "AutoModelForSequenceClassification", "AutoModelForTokenClassification",
           "KVCache", "GPTForCausalLM", "GPTModel", "EncoderModel", "EncoderForMaskedLM", "EncoderForPreTraining",
           "EncoderForNextSentencePrediction", "EncoderForSequenceClassification", "EncoderForTokenClassification"]
