"""Model configurations: config.json → typed dataclasses with transformers' defaults and aliases.

Each supported ``model_type`` has a dataclass whose field names and defaults follow the matching
transformers ``*Config`` class, so a config.json written by ``save_pretrained`` reads the same way
here. Unknown keys are kept in ``extra`` (and readable as attributes) rather than rejected: configs
carry many fields (dropouts, task params) that inference does not need.

Not here: weights, file formats (see ``checkpoint``), or anything that touches the C core.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Type

# ACT2FN names (transformers/activations.py) → the C core's tfm_act codes (csrc/tfm.h).
ACTIVATIONS: Dict[str, int] = {
    "linear": 0,
    "gelu_new": 1,
    "gelu_pytorch_tanh": 1,
    "gelu_accurate": 1,
    "gelu": 2,
    "gelu_python": 2,
    "gelu_fast": 3,
    "quick_gelu": 4,
    "relu": 5,
    "silu": 6,
    "swish": 6,
    "tanh": 7,
    "sigmoid": 8,
    "gelu_10": 9,
    "relu6": 10,
    "relu2": 11,
    "leaky_relu": 12,
    "mish": 13,
    "laplace": 14,
}
# OpenAI GPT has its own table, in which "gelu" is the tanh approximation (modeling_openai.ACT_FNS).
OPENAI_GPT_ACTIVATIONS: Dict[str, int] = {"relu": 5, "silu": 6, "swish": 6, "gelu": 1}


def activation_code(name: str, table: Dict[str, int] = ACTIVATIONS) -> int:
    """The C activation code for an ACT2FN name; ValueError listing the supported names otherwise."""
    if name not in table:
        raise ValueError(f"unsupported activation {name!r}; supported: {', '.join(sorted(table))}")
    return table[name]


@dataclass
class PretrainedConfig:
    """Fields shared by every model config (transformers' PretrainedConfig subset used at inference)."""

    model_type: ClassVar[str] = ""
    # attribute_map: transformers' aliases, alias → canonical field
    attribute_map: ClassVar[Dict[str, str]] = {}

    vocab_size: int = 0
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[Any] = None  # int or list of ints
    pad_token_id: Optional[int] = None
    tie_word_embeddings: bool = True
    architectures: Optional[List[str]] = None
    id2label: Optional[Dict[int, str]] = None
    label2id: Optional[Dict[str, int]] = None
    problem_type: Optional[str] = None
    initializer_range: float = 0.02
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "PretrainedConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        d = dict(d)
        if "num_labels" in d:
            # transformers accepts num_labels in place of id2label (LABEL_0, LABEL_1, ...); both must agree
            n = d.pop("num_labels")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"{cls.model_type}: num_labels must be a positive integer, got {n!r}")
            if d.get("id2label") is None:
                d["id2label"] = {i: f"LABEL_{i}" for i in range(n)}
                d.setdefault("label2id", {f"LABEL_{i}": i for i in range(n)})
            elif len(d["id2label"]) != n:
                raise ValueError(f"{cls.model_type}: num_labels = {n} but id2label has {len(d['id2label'])} entries")
        for key, value in d.items():
            key = cls.attribute_map.get(key, key)
            if key in names and key != "extra":
                kwargs[key] = value
            else:
                extra[key] = value
        cfg = cls(**kwargs, extra=extra)
        if cfg.id2label is not None:
            cfg.id2label = {int(k): v for k, v in cfg.id2label.items()}
        if cfg.label2id is not None:
            cfg.label2id = {k: int(v) for k, v in cfg.label2id.items()}
        cfg.validate()
        return cfg

    def to_dict(self) -> Dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d.update(self.extra)
        d["model_type"] = self.model_type
        return d

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails: aliases, then extra keys.
        amap = type(self).attribute_map
        if name in amap:
            return getattr(self, amap[name])
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def num_labels(self) -> int:
        return len(self.id2label) if self.id2label else 2

    @property
    def eos_token_ids(self) -> List[int]:
        e = self.eos_token_id
        if e is None:
            return []
        return [int(x) for x in e] if isinstance(e, (list, tuple)) else [int(e)]

    def validate(self) -> None:
        if not isinstance(self.vocab_size, int) or self.vocab_size <= 0:
            raise ValueError(f"{self.model_type}: vocab_size must be a positive integer, got {self.vocab_size!r}")

    @staticmethod
    def _positive(model_type: str, **sizes: Any) -> None:
        for name, v in sizes.items():
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{model_type}: {name} must be a positive integer, got {v!r}")


@dataclass
class GPT2Config(PretrainedConfig):
    model_type: ClassVar[str] = "gpt2"
    attribute_map: ClassVar[Dict[str, str]] = {
        "hidden_size": "n_embd",
        "max_position_embeddings": "n_positions",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }
    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: Optional[int] = None
    activation_function: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False
    bos_token_id: Optional[int] = 50256
    eos_token_id: Optional[Any] = 50256

    @property
    def inner(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    def validate(self) -> None:
        super().validate()
        self._positive(self.model_type, n_positions=self.n_positions, n_embd=self.n_embd, n_layer=self.n_layer,
                       n_head=self.n_head, inner=self.inner)
        if self.n_embd % self.n_head:
            raise ValueError(f"{self.model_type}: n_embd ({self.n_embd}) is not divisible by n_head ({self.n_head})")
        activation_code(self.activation_function)


@dataclass
class OpenAIGPTConfig(PretrainedConfig):
    model_type: ClassVar[str] = "openai-gpt"
    attribute_map: ClassVar[Dict[str, str]] = GPT2Config.attribute_map
    vocab_size: int = 40478
    n_positions: int = 512
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    afn: str = "gelu"
    layer_norm_epsilon: float = 1e-5

    @property
    def inner(self) -> int:
        return 4 * self.n_embd  # fixed in modeling_openai.MLP

    def validate(self) -> None:
        super().validate()
        self._positive(self.model_type, n_positions=self.n_positions, n_embd=self.n_embd, n_layer=self.n_layer,
                       n_head=self.n_head)
        if self.n_embd % self.n_head:
            raise ValueError(f"{self.model_type}: n_embd ({self.n_embd}) is not divisible by n_head ({self.n_head})")
        activation_code(self.afn, OPENAI_GPT_ACTIVATIONS)


@dataclass
class GPTNeoConfig(PretrainedConfig):
    model_type: ClassVar[str] = "gpt_neo"
    attribute_map: ClassVar[Dict[str, str]] = {
        "num_attention_heads": "num_heads",
        "num_hidden_layers": "num_layers",
        "n_positions": "max_position_embeddings",
        "n_embd": "hidden_size",
        "n_layer": "num_layers",
        "n_head": "num_heads",
    }
    vocab_size: int = 50257
    max_position_embeddings: int = 2048
    hidden_size: int = 2048
    num_layers: int = 24
    num_heads: int = 16
    intermediate_size: Optional[int] = None
    attention_types: Any = field(default_factory=lambda: [[["global", "local"], 12]])
    window_size: int = 256
    activation_function: str = "gelu_new"
    layer_norm_epsilon: float = 1e-5
    bos_token_id: Optional[int] = 50256
    eos_token_id: Optional[Any] = 50256

    @property
    def inner(self) -> int:
        return self.intermediate_size if self.intermediate_size is not None else 4 * self.hidden_size

    @property
    def attention_layers(self) -> List[str]:
        """attention_types expanded to one entry per layer (transformers' expand_attention_types_params)."""
        out: List[str] = []
        for types, n in self.attention_types:
            for _ in range(n):
                out.extend(types)
        return out

    def validate(self) -> None:
        super().validate()
        self._positive(self.model_type, max_position_embeddings=self.max_position_embeddings,
                       hidden_size=self.hidden_size, num_layers=self.num_layers, num_heads=self.num_heads,
                       inner=self.inner, window_size=self.window_size)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"gpt_neo: hidden_size ({self.hidden_size}) is not divisible by num_heads ({self.num_heads})")
        layers = self.attention_layers
        if len(layers) != self.num_layers or any(t not in ("global", "local") for t in layers):
            raise ValueError(f"gpt_neo: attention_types expand to {len(layers)} layers of global/local, "
                             f"expected num_layers = {self.num_layers}")
        activation_code(self.activation_function)


CONFIG_CLASSES: Dict[str, Type[PretrainedConfig]] = {
    c.model_type: c for c in (GPT2Config, OpenAIGPTConfig, GPTNeoConfig)
}


def register_config(cls: Type[PretrainedConfig]) -> Type[PretrainedConfig]:
    """Adds a config class to the model_type registry (used by the model families' modules)."""
    CONFIG_CLASSES[cls.model_type] = cls
    return cls


def read_config_file(directory: Path | str) -> Dict[str, Any]:
    d = Path(directory)
    if not d.exists():
        raise FileNotFoundError(f"checkpoint directory {str(d)!r} does not exist")
    if not d.is_dir():
        raise FileNotFoundError(f"{str(d)!r} is not a directory (expected a checkpoint folder with config.json)")
    path = d / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{str(d)!r} is not a checkpoint directory: it has no config.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


class AutoConfig:
    """``AutoConfig.from_pretrained(dir)`` → the config dataclass of the folder's ``model_type``."""

    @staticmethod
    def for_model(model_type: str, **kwargs: Any) -> PretrainedConfig:
        return config_class(model_type).from_dict(kwargs)

    @staticmethod
    def from_pretrained(directory: Path | str, **overrides: Any) -> PretrainedConfig:
        data = read_config_file(directory)
        data.update(overrides)
        model_type = data.get("model_type")
        if model_type is None:
            raise ValueError(f"{directory}/config.json has no model_type")
        return config_class(model_type).from_dict(data)


def config_class(model_type: str) -> Type[PretrainedConfig]:
    if model_type not in CONFIG_CLASSES:
        raise ValueError(f"unsupported model_type {model_type!r}; supported: {', '.join(sorted(CONFIG_CLASSES))}")
    return CONFIG_CLASSES[model_type]
