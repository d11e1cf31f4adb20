"""Auto classes: read config.json, pick the class for its model_type and task.

Each family module registers its classes in ``REGISTRY[task][model_type]``; ``from_pretrained``
dispatches on the folder's model_type and names the supported ones when it is not there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from ..configuration import read_config_file
from .bert import ENCODER_CLASSES, TASK_MODEL_TYPES
from .gpt import GPT_MODEL_TYPES, GPTForCausalLM, GPTModel

REGISTRY: Dict[str, Dict[str, type]] = {
    "base": {mt: GPTModel for mt in GPT_MODEL_TYPES},
    "causal-lm": {mt: GPTForCausalLM for mt in GPT_MODEL_TYPES},
}
for _task, _cls in ENCODER_CLASSES.items():
    for _mt in TASK_MODEL_TYPES[_task]:
        REGISTRY.setdefault(_task, {})[_mt] = _cls


def register(task: str, model_type: str, cls: type) -> None:
    REGISTRY.setdefault(task, {})[model_type] = cls


class _Auto:
    task = ""

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is not instantiated; use {type(self).__name__}.from_pretrained(dir)")

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> Any:
        model_type = read_config_file(path).get("model_type")
        table = REGISTRY.get(cls.task, {})
        if model_type not in table:
            raise ValueError(f"{path}: unsupported model_type {model_type!r} for {cls.__name__}; "
                             f"supported: {', '.join(sorted(table))}")
        return table[model_type].from_pretrained(path, **kwargs)


class AutoModel(_Auto):
    """The bare model of a checkpoint folder (``last_hidden_state``)."""

    task = "base"


class AutoModelForCausalLM(_Auto):
    """A decoder with its LM head (``logits``), ready for ``generate``."""

    task = "causal-lm"


class AutoModelForMaskedLM(_Auto):
    """An encoder with its masked-LM head (``logits`` [B, T, V]); ELECTRA: the generator."""

    task = "masked-lm"


class AutoModelForPreTraining(_Auto):
    """The pre-training heads: BERT MLM + NSP, ALBERT MLM + SOP, ELECTRA replaced-token detection."""

    task = "pretraining"


class AutoModelForNextSentencePrediction(_Auto):
    """BERT's next-sentence head (``logits`` [B, 2])."""

    task = "next-sentence"


class AutoModelForSequenceClassification(_Auto):
    """A sequence classifier or regressor (``logits`` [B, num_labels])."""

    task = "sequence-classification"


class AutoModelForTokenClassification(_Auto):
    """A per-token classifier (``logits`` [B, T, num_labels])."""

    task = "token-classification"
