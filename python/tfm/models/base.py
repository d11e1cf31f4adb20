"""What every model family shares: loading a checkpoint folder into the C core, input checks,
and the KV-cache wrapper.

Loading (``load_into_core``) follows what transformers' ``from_pretrained`` does to key names
(reference: architectures.md §0.4–0.6): strip or add the base-model prefix, rename old
``LayerNorm.gamma/beta``, ignore buffers (causal-mask tensors, position_ids), use the embedding for
tied heads. Every tensor's shape is checked against the configuration before the C core copies it
(converted to float32 and packed); errors name the tensor and both shapes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .. import _tfmcore
from ..checkpoint import StoredTensor, load_state_dict
from ..configuration import PretrainedConfig

_FLOAT_DTYPES = {"f32": "f32", "f16": "f16", "bf16": "bf16"}


@dataclass(frozen=True)
class ParamSpec:
    """One checkpoint tensor and where it goes in the C model.

    key:    name without the base-model prefix ("h.0.attn.c_attn.weight"); head keys are never prefixed
    slot:   tfm_param code (csrc/tfm.h)
    layer:  block index, or -1 for global slots
    layout: 0 = stored [out, in] (nn.Linear); 1 = stored [in, out] (GPT Conv1D)
    head:   True for keys outside the base model (lm_head.*, cls.*, ...)
    alternatives: other names of the same tensor, tried after `key` (e.g. an alias bias)
    group:  non-empty for weights of a task head ("masked-lm head"): a checkpoint may lack them, and
            the loader decides (refuse, or initialise randomly on request) instead of failing as for
            a missing base weight
    """

    key: str
    slot: int
    layer: int = -1
    layout: int = 0
    head: bool = False
    alternatives: Tuple[str, ...] = ()
    group: str = ""


def normalise_keys(state: Dict[str, StoredTensor]) -> Dict[str, StoredTensor]:
    """Old LayerNorm.gamma/beta names → weight/bias (transformers renames these on load)."""
    out: Dict[str, StoredTensor] = {}
    for name, t in state.items():
        name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
        name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
        out[name] = t
    return out


def resolve(state: Dict[str, StoredTensor], key: str, prefix: str, head: bool,
            alternatives: Sequence[str] = ()) -> Tuple[Optional[str], Optional[StoredTensor]]:
    """Finds `key` (then each alternative) in the state dict, with or without the base-model prefix."""
    for k in (key, *alternatives):
        candidates = [k] if head else [k, prefix + k]
        for name in candidates:
            if name in state:
                return name, state[name]
    return None, None


def find_spec(state: Dict[str, StoredTensor], spec: ParamSpec, prefix: str) -> Tuple[Optional[str], Optional[StoredTensor]]:
    return resolve(state, spec.key, prefix, spec.head, spec.alternatives)


def as_core_array(name: str, t: StoredTensor) -> Tuple[np.ndarray, str]:
    """The array and dtype tag the C core takes (f32/f16/bf16 as stored; other floats converted)."""
    if t.dtype in _FLOAT_DTYPES:
        return t.array, _FLOAT_DTYPES[t.dtype]
    if t.dtype == "f64":
        return np.ascontiguousarray(t.array, dtype=np.float32), "f32"
    raise ValueError(f"tensor {name} has dtype {t.dtype}, expected a floating-point type")


def load_into_core(core: Any, specs: Iterable[ParamSpec], state: Dict[str, StoredTensor], prefix: str,
                   source: str) -> Tuple[List[str], int]:
    """Copies every spec'd tensor into the C model.

    Returns (state-dict keys that were not used, number of parameters loaded). Raises ValueError
    naming the first missing tensor or the first shape mismatch."""
    used = set()
    n_params = 0
    for spec in specs:
        name, t = find_spec(state, spec, prefix)
        if t is None:
            shown = spec.key if spec.head else f"{spec.key} (or {prefix}{spec.key})"
            raise ValueError(f"{source}: missing tensor {shown}")
        expected = core.param_shape(spec.slot)
        if expected is None:
            raise ValueError(f"{source}: tensor {name} is not used by this architecture")
        if spec.layout == 1:
            expected = tuple(reversed(expected))
        if tuple(t.shape) != tuple(expected):
            raise ValueError(f"{source}: shape of {name} is {tuple(t.shape)}, expected {tuple(expected)} from config.json")
        arr, dt = as_core_array(name, t)
        core.set_param(spec.slot, spec.layer, arr, dt, spec.layout)
        used.add(name)
        n_params += int(np.prod(t.shape))
    missing = core.missing()
    if missing is not None:  # a spec list that forgot a slot: a bug here, not in the file
        raise RuntimeError(f"internal: weight slot {missing[0]} of layer {missing[1]} was never set")
    return sorted(set(state) - used), n_params


# Buffers transformers keeps in state dicts that are not parameters (reference §0.5).
BUFFER_PATTERNS = [
    re.compile(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$"),
    re.compile(r"(^|\.)h\.\d+\.attn\.attention\.(bias|masked_bias)$"),
    re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$"),
]


def drop_buffers(keys: Sequence[str]) -> List[str]:
    return [k for k in keys if not any(p.search(k) for p in BUFFER_PATTERNS)]


def read_state(directory: Path | str) -> Dict[str, StoredTensor]:
    return normalise_keys(load_state_dict(directory))


class KVCache:
    """Past keys and values of one model (transformers' ``past_key_values``).

    Held in C memory. A forward call that receives it appends the new positions **in place** and
    returns the same object (like transformers' DynamicCache); use ``copy()`` to branch.
    """

    def __init__(self, core_cache: Any):
        self._c = core_cache

    @property
    def length(self) -> int:
        return self._c.length

    def get_seq_length(self) -> int:
        return self._c.length

    @property
    def batch_size(self) -> int:
        return self._c.batch

    def copy(self) -> "KVCache":
        return KVCache(self._c.copy())

    def reorder(self, rows: Sequence[int]) -> None:
        """Row r becomes old row rows[r] (beam search reordering / expansion)."""
        self._c.reorder(np.asarray(rows, dtype=np.int64))

    def to_legacy(self) -> Tuple[Tuple[np.ndarray, np.ndarray], ...]:
        """((k, v) per layer), each [B, NH, length, D] — transformers' legacy tuple format (copies)."""
        k, v = self._c.keys(), self._c.values()
        return tuple((k[i], v[i]) for i in range(k.shape[0]))

    def __len__(self) -> int:
        return len(self.to_legacy())

    def __repr__(self) -> str:
        return f"KVCache(batch={self._c.batch}, length={self._c.length}, capacity={self._c.capacity})"


def as_ids(x: Any, name: str) -> np.ndarray:
    """Token ids as a 2-D integer array ([T] becomes [1, T]); floats and other ranks refused by name."""
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise TypeError(f"{name} must hold integers, got dtype {a.dtype}")
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [batch, sequence], got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    return a


def check_mask(mask: Any, shape: Tuple[int, int], name: str = "attention_mask") -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 1 and shape[0] == 1:
        m = m[None, :]
    if m.shape != shape:
        raise ValueError(f"{name} has shape {m.shape}, expected {shape}")
    if not (np.issubdtype(m.dtype, np.integer) or m.dtype == np.bool_ or np.issubdtype(m.dtype, np.floating)):
        raise TypeError(f"{name} must be numeric, got dtype {m.dtype}")
    if m.size and not np.isin(m, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1")
    return m.astype(np.int32)


class PreTrainedModel:
    """Base of the friendly model classes: holds the config and the C model."""

    config_class: type = PretrainedConfig
    base_model_prefix: str = ""

    def __init__(self, config: PretrainedConfig, core: Any):
        self.config = config
        self._core = core
        self.unexpected_keys: List[str] = []
        self.name_or_path: Optional[str] = None
        self.generation_config: Any = None
        self.n_parameters = 0  # set by the loader: elements of every weight tensor used


    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.model_type}, {self.num_parameters():,} parameters)"

    def num_parameters(self) -> int:
        return self.n_parameters
