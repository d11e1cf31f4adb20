"""Output containers with transformers' field names (``.logits``, ``.past_key_values``, ...).

Like transformers' ModelOutput, fields read as attributes, as keys (``out["logits"]``) and by
position over the fields that are set (``out[0]``), so code written for transformers carries over.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterator, Optional, Tuple

import numpy as np


class ModelOutput:
    """Mixin for output dataclasses: dict-like and tuple-like access over the non-None fields."""

    def _items(self) -> list:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]

    def keys(self) -> list:
        return [k for k, _ in self._items()]

    def values(self) -> list:
        return [v for _, v in self._items()]

    def items(self) -> list:
        return self._items()

    def to_tuple(self) -> Tuple[Any, ...]:
        return tuple(self.values())

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items())


@dataclass
class BaseModelOutputWithPast(ModelOutput):
    last_hidden_state: Optional[np.ndarray] = None  # [B, T, C]
    past_key_values: Any = None                      # KVCache
    hidden_states: Optional[Tuple[np.ndarray, ...]] = None  # L+1 × [B, T, C]
    attentions: Optional[Tuple[np.ndarray, ...]] = None     # L × [B, NH, T, S]


@dataclass
class CausalLMOutputWithPast(ModelOutput):
    logits: Optional[np.ndarray] = None              # [B, T, V] (or [B, k, V] with logits_to_keep=k)
    past_key_values: Any = None
    hidden_states: Optional[Tuple[np.ndarray, ...]] = None
    attentions: Optional[Tuple[np.ndarray, ...]] = None


# ---- encoders (BERT family) ------------------------------------------------------------------
# hidden_states: (num_hidden_layers + 1) × [B, T, C]; attentions: one [B, NH, T, T] per block
# application (ALBERT: num_hidden_layers × inner_group_num), as transformers returns them.


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: Optional[np.ndarray] = None  # [B, T, C]
    pooler_output: Optional[np.ndarray] = None      # [B, C]; None when the model has no pooler
    hidden_states: Optional[Tuple[np.ndarray, ...]] = None
    attentions: Optional[Tuple[np.ndarray, ...]] = None


@dataclass
class MaskedLMOutput(ModelOutput):
    logits: Optional[np.ndarray] = None  # [B, T, V]
    hidden_states: Optional[Tuple[np.ndarray, ...]] = None
    attentions: Optional[Tuple[np.ndarray, ...]] = None


@dataclass
class BertForPreTrainingOutput(ModelOutput):
    prediction_logits: Optional[np.ndarray] = None        # [B, T, V] masked LM
    seq_relationship_logits: Optional[np.ndarray] = None  # [B, 2] next sentence
    hidden_states: Optional[Tuple[np.ndarray, ...]] = None
    attentions: Optional[Tuple[np.ndarray, ...]] = None


@dataclass
class AlbertForPreTrainingOutput(ModelOutput):
    prediction_logits: Optional[np.ndarray] = None  # [B, T, V] masked LM
    sop_logits: Optional[np.ndarray] = None         # [B, num_labels] sentence order
    hidden_states: Optional[Tuple[np.ndarray, ...]] = None
    attentions: Optional[Tuple[np.ndarray, ...]] = None


@dataclass
class ElectraForPreTrainingOutput(ModelOutput):
    logits: Optional[np.ndarray] = None  # [B, T] replaced-token score (> 0: replaced)
    hidden_states: Optional[Tuple[np.ndarray, ...]] = None
    attentions: Optional[Tuple[np.ndarray, ...]] = None


@dataclass
class NextSentencePredictorOutput(ModelOutput):
    logits: Optional[np.ndarray] = None  # [B, 2] (0: B follows A)
    hidden_states: Optional[Tuple[np.ndarray, ...]] = None
    attentions: Optional[Tuple[np.ndarray, ...]] = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    logits: Optional[np.ndarray] = None  # [B, num_labels]
    hidden_states: Optional[Tuple[np.ndarray, ...]] = None
    attentions: Optional[Tuple[np.ndarray, ...]] = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    logits: Optional[np.ndarray] = None  # [B, T, num_labels]
    hidden_states: Optional[Tuple[np.ndarray, ...]] = None
    attentions: Optional[Tuple[np.ndarray, ...]] = None
