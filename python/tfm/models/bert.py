"""The BERT family of encoders (bert, roberta, albert, distilbert, electra): configs, checkpoint keys →
C weight slots, task heads, and the forward call with transformers' argument names.

Everything runs in the C core (csrc/encoder.c); this file maps names, checks arguments and shapes
outputs. One class per task serves the whole family (what the Auto classes return):
    EncoderModel                      last_hidden_state, pooler_output (bert, roberta, albert)
    EncoderForMaskedLM                logits [B, T, V] (ELECTRA: the generator)
    EncoderForPreTraining             BERT MLM + NSP, ALBERT MLM + SOP, ELECTRA discriminator
    EncoderForNextSentencePrediction  BERT NSP
    EncoderForSequenceClassification  logits [B, num_labels]; scores() as the text-classification pipeline
    EncoderForTokenClassification     logits [B, T, num_labels]

Heads whose weights are absent from a checkpoint are refused by name: transformers would initialise
them randomly with a warning in the log. ``from_pretrained(d, allow_random_head=True)`` does what
transformers does (normal(0, initializer_range) weights, zero biases, unit norms) from a seed, and
warns. A bare ``EncoderModel`` uses the pooler when the checkpoint has one and otherwise returns
``pooler_output=None`` (transformers would make a random one).

Not here: tokenisation, pipelines, losses, relative position embeddings, BERT as a decoder.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy as np

from .. import _tfmcore
from ..classification import scores_from_logits
from ..configuration import AutoConfig, PretrainedConfig, activation_code, register_config
from ..outputs import (AlbertForPreTrainingOutput, BaseModelOutputWithPooling, BertForPreTrainingOutput,
                       ElectraForPreTrainingOutput, MaskedLMOutput, NextSentencePredictorOutput,
                       SequenceClassifierOutput, TokenClassifierOutput)
from .base import ParamSpec, PreTrainedModel, as_ids, check_mask, drop_buffers, find_spec, load_into_core, read_state

S = _tfmcore.param_slots  # tfm_param codes by name (csrc/tfm.h)
ARCH = {"bert": "BERT", "roberta": "ROBERTA", "albert": "ALBERT", "distilbert": "DISTILBERT", "electra": "ELECTRA"}
ENCODER_MODEL_TYPES = tuple(ARCH)
NO_ACT = -1  # "no dense" in the C head fields

# ---------------------------------------------------------------------------------------------
# Configs (field names and defaults of transformers' *Config classes; architectures.md §4–8)
# ---------------------------------------------------------------------------------------------


@dataclass
class BertConfig(PretrainedConfig):
    model_type: ClassVar[str] = "bert"
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: Optional[int] = 0
    position_embedding_type: str = "absolute"
    is_decoder: bool = False
    add_cross_attention: bool = False

    @property
    def embedding_width(self) -> int:
        return self.hidden_size

    def validate(self) -> None:
        super().validate()
        mt = self.model_type
        self._positive(mt, hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
                       num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
                       max_position_embeddings=self.max_position_embeddings, embedding_size=self.embedding_width)
        if not isinstance(self.type_vocab_size, int) or self.type_vocab_size < 1:
            raise ValueError(f"{mt}: type_vocab_size must be a positive integer, got {self.type_vocab_size!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"{mt}: hidden_size ({self.hidden_size}) is not divisible by num_attention_heads "
                             f"({self.num_attention_heads})")
        activation_code(self.hidden_act)
        if self.position_embedding_type != "absolute":
            raise ValueError(f"{mt}: position_embedding_type {self.position_embedding_type!r} is not supported "
                             f"(only 'absolute')")
        if self.is_decoder or self.add_cross_attention:
            raise ValueError(f"{mt}: is_decoder / add_cross_attention (BERT as a decoder) is not supported")


@dataclass
class RobertaConfig(BertConfig):
    model_type: ClassVar[str] = "roberta"
    vocab_size: int = 50265
    pad_token_id: Optional[int] = 1
    bos_token_id: Optional[int] = 0
    eos_token_id: Optional[Any] = 2

    def validate(self) -> None:
        super().validate()
        pad = self.pad_token_id
        if not isinstance(pad, int) or not 0 <= pad < self.vocab_size:
            raise ValueError(f"roberta: pad_token_id must be a token id (positions count from it), got {pad!r}")
        if pad + 1 >= self.max_position_embeddings:
            raise ValueError(f"roberta: max_position_embeddings ({self.max_position_embeddings}) leaves no position "
                             f"after pad_token_id + 1 = {pad + 1}")


@dataclass
class ElectraConfig(BertConfig):
    model_type: ClassVar[str] = "electra"
    embedding_size: int = 128
    hidden_size: int = 256
    num_attention_heads: int = 4
    intermediate_size: int = 1024

    @property
    def embedding_width(self) -> int:
        return self.embedding_size


@dataclass
class AlbertConfig(BertConfig):
    model_type: ClassVar[str] = "albert"
    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 4096
    num_hidden_groups: int = 1
    num_attention_heads: int = 64
    intermediate_size: int = 16384
    inner_group_num: int = 1
    hidden_act: str = "gelu_new"
    bos_token_id: Optional[int] = 2
    eos_token_id: Optional[Any] = 3

    @property
    def embedding_width(self) -> int:
        return self.embedding_size

    def validate(self) -> None:
        super().validate()
        self._positive("albert", num_hidden_groups=self.num_hidden_groups, inner_group_num=self.inner_group_num)

    def layer_map(self) -> List[int]:
        """Physical layer of each block application: application i runs every inner layer of group
        floor(i / (num_hidden_layers / num_hidden_groups)) (transformers' AlbertTransformer)."""
        L, G, inner = self.num_hidden_layers, self.num_hidden_groups, self.inner_group_num
        return [int(i / (L / G)) * inner + j for i in range(L) for j in range(inner)]


@dataclass
class DistilBertConfig(PretrainedConfig):
    model_type: ClassVar[str] = "distilbert"
    attribute_map: ClassVar[Dict[str, str]] = {"hidden_size": "dim", "num_attention_heads": "n_heads",
                                               "num_hidden_layers": "n_layers"}
    vocab_size: int = 30522
    max_position_embeddings: int = 512
    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 3072
    activation: str = "gelu"
    initializer_range: float = 0.02
    pad_token_id: Optional[int] = 0
    layer_norm_eps: ClassVar[float] = 1e-12  # hard-coded in modeling_distilbert, not a config field
    type_vocab_size: ClassVar[int] = 0

    @property
    def embedding_width(self) -> int:
        return self.dim

    def validate(self) -> None:
        super().validate()
        self._positive("distilbert", dim=self.dim, n_layers=self.n_layers, n_heads=self.n_heads,
                       hidden_dim=self.hidden_dim, max_position_embeddings=self.max_position_embeddings)
        if self.dim % self.n_heads:
            raise ValueError(f"distilbert: dim ({self.dim}) is not divisible by n_heads ({self.n_heads})")
        activation_code(self.activation)


for _cls in (BertConfig, RobertaConfig, ElectraConfig, AlbertConfig, DistilBertConfig):
    register_config(_cls)


def _act_name(cfg: PretrainedConfig) -> str:
    return cfg.activation if cfg.model_type == "distilbert" else cfg.hidden_act


def sinusoidal_positions(n_pos: int, dim: int) -> np.ndarray:
    """DistilBERT's fixed table: even columns sin(pos/10000^(2⌊j/2⌋/dim)), odd columns cos (Vaswani et al. 2017)."""
    pos = np.arange(n_pos, dtype=np.float64)[:, None]
    j = np.arange(dim)
    angle = pos / np.power(10000.0, 2 * (j // 2) / dim)
    return np.where(j % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Checkpoint keys → slots (architectures.md §4–8 state-dict tables)
# ---------------------------------------------------------------------------------------------
def _pair(key: str, w: str, b: str, layer: int = -1, head: bool = False, group: str = "") -> List[ParamSpec]:
    """weight + bias of one nn.Linear or nn.LayerNorm."""
    return [ParamSpec(f"{key}.weight", S[w], layer, head=head, group=group),
            ParamSpec(f"{key}.bias", S[b], layer, head=head, group=group)]


# per-layer module names: (q, k, v, attention out, attention norm, ffn in, ffn out, output norm)
_LAYER_NAMES = {
    "bert": ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
             "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"),
    "albert": ("attention.query", "attention.key", "attention.value", "attention.dense", "attention.LayerNorm",
               "ffn", "ffn_output", "full_layer_layer_norm"),
    "distilbert": ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "sa_layer_norm",
                   "ffn.lin1", "ffn.lin2", "output_layer_norm"),
}
_LAYER_SLOTS = (("Q_W", "Q_B"), ("K_W", "K_B"), ("V_W", "V_B"), ("ATTN_OUT_W", "ATTN_OUT_B"), ("LN1_W", "LN1_B"),
                ("FC_IN_W", "FC_IN_B"), ("FC_OUT_W", "FC_OUT_B"), ("LN2_W", "LN2_B"))


def _layer_prefixes(cfg: PretrainedConfig) -> List[str]:
    mt = cfg.model_type
    if mt == "albert":
        return [f"encoder.albert_layer_groups.{g}.albert_layers.{j}." for g in range(cfg.num_hidden_groups)
                for j in range(cfg.inner_group_num)]
    if mt == "distilbert":
        return [f"transformer.layer.{i}." for i in range(cfg.n_layers)]
    return [f"encoder.layer.{i}." for i in range(cfg.num_hidden_layers)]


def base_specs(cfg: PretrainedConfig) -> List[ParamSpec]:
    """Every base-model weight except the pooler (keys without the base-model prefix)."""
    mt = cfg.model_type
    e = "embeddings."
    specs = [ParamSpec(e + "word_embeddings.weight", S["WTE"]), ParamSpec(e + "position_embeddings.weight", S["WPE"])]
    specs += _pair(e + "LayerNorm", "EMB_LN_W", "EMB_LN_B")
    if mt != "distilbert":
        specs.append(ParamSpec(e + "token_type_embeddings.weight", S["TOKEN_TYPE"]))
    if mt == "albert":
        specs += _pair("encoder.embedding_hidden_mapping_in", "EMB_PROJ_W", "EMB_PROJ_B")
    if mt == "electra" and cfg.embedding_size != cfg.hidden_size:
        specs += _pair("embeddings_project", "EMB_PROJ_W", "EMB_PROJ_B")
    names = _LAYER_NAMES.get(mt, _LAYER_NAMES["bert"])
    for i, p in enumerate(_layer_prefixes(cfg)):
        for name, (w, b) in zip(names, _LAYER_SLOTS):
            specs += _pair(p + name, w, b, i)
    return specs


@dataclass
class HeadPlan:
    """The heads one task builds in C: core keyword arguments and the weights they need."""

    core: Dict[str, Any] = field(default_factory=dict)
    specs: List[ParamSpec] = field(default_factory=list)
    label_keys: List[str] = field(default_factory=list)  # classifier weights with num_labels rows
    tied_aliases: List[str] = field(default_factory=list)  # file keys that duplicate tied weights
    optional: bool = False  # a bare model's pooler: used only when present


# MLM head module names: (transform dense, transform norm, output bias, decoder)
_MLM_NAMES = {
    "bert": ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias",
             "cls.predictions.decoder"),
    "roberta": ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder"),
    "albert": ("predictions.dense", "predictions.LayerNorm", "predictions.bias", "predictions.decoder"),
    "distilbert": ("vocab_transform", "vocab_layer_norm", "vocab_projector.bias", "vocab_projector"),
    "electra": ("generator_predictions.dense", "generator_predictions.LayerNorm", "generator_lm_head.bias",
                "generator_lm_head"),
}


def _pooler(plan: HeadPlan, cfg: PretrainedConfig, group: str) -> None:
    """The base model's CLS pooler: tanh(dense(h[:, 0])), under the base prefix."""
    plan.core["pooler_act"] = activation_code("tanh")
    plan.specs += _pair("pooler" if cfg.model_type == "albert" else "pooler.dense", "POOL_W", "POOL_B", group=group)


def _mlm(plan: HeadPlan, cfg: PretrainedConfig, group: str) -> None:
    mt = cfg.model_type
    dense, norm, bias, decoder = _MLM_NAMES[mt]
    # RoBERTa's LM head and ELECTRA's generator hard-code exact GELU; the others use the config's
    act = "gelu" if mt in ("roberta", "electra") else _act_name(cfg)
    size = cfg.embedding_size if mt in ("albert", "electra") else cfg.embedding_width
    plan.core.update(mlm_size=size, mlm_act=activation_code(act))
    plan.specs += _pair(dense, "MLM_DENSE_W", "MLM_DENSE_B", head=True, group=group)
    plan.specs += _pair(norm, "MLM_LN_W", "MLM_LN_B", head=True, group=group)
    alias = decoder + ".bias"
    plan.specs.append(ParamSpec(bias, S["MLM_BIAS"], head=True, group=group,
                                alternatives=(alias,) if alias != bias else ()))
    plan.tied_aliases.append(alias)
    if cfg.tie_word_embeddings:
        plan.tied_aliases.append(decoder + ".weight")
    else:
        plan.specs.append(ParamSpec(decoder + ".weight", S["LM_HEAD"], head=True, group=group))


def _seq(plan: HeadPlan, key: str, n: int, group: str, from_config: bool) -> None:
    plan.core["n_seq_labels"] = n
    plan.specs += _pair(key, "SEQ_W", "SEQ_B", head=True, group=group)
    if from_config:
        plan.label_keys.append(key + ".weight")


def head_plan(cfg: PretrainedConfig, task: str) -> HeadPlan:
    mt = cfg.model_type
    plan = HeadPlan()
    g = f"{task} head"
    if task == "base":
        if mt in ("bert", "roberta", "albert"):
            _pooler(plan, cfg, "pooler")
            plan.optional = True
    elif task == "masked-lm":
        _mlm(plan, cfg, g)
    elif task == "pretraining":
        if mt == "electra":  # replaced-token detection: dense → act → one score per token
            plan.core.update(tok_act=activation_code(cfg.hidden_act), n_tok_labels=1)
            plan.specs += _pair("discriminator_predictions.dense", "TOK_DENSE_W", "TOK_DENSE_B", head=True, group=g)
            plan.specs += _pair("discriminator_predictions.dense_prediction", "TOK_W", "TOK_B", head=True, group=g)
        else:
            _mlm(plan, cfg, g)
            _pooler(plan, cfg, g)
            if mt == "bert":
                _seq(plan, "cls.seq_relationship", 2, g, False)
            else:  # ALBERT sentence-order prediction has config.num_labels classes
                _seq(plan, "sop_classifier.classifier", cfg.num_labels, g, True)
    elif task == "next-sentence":
        _pooler(plan, cfg, g)
        _seq(plan, "cls.seq_relationship", 2, g, False)
    elif task == "sequence-classification":
        if mt in ("bert", "albert"):
            _pooler(plan, cfg, g)
            _seq(plan, "classifier", cfg.num_labels, g, True)
        else:  # a dense on the CLS vector inside the head: tanh (RoBERTa), exact GELU (ELECTRA), ReLU (DistilBERT)
            dense, out, act = {"roberta": ("classifier.dense", "classifier.out_proj", "tanh"),
                               "electra": ("classifier.dense", "classifier.out_proj", "gelu"),
                               "distilbert": ("pre_classifier", "classifier", "relu")}[mt]
            plan.core["pooler_act"] = activation_code(act)
            plan.specs += _pair(dense, "POOL_W", "POOL_B", head=True, group=g)
            _seq(plan, out, cfg.num_labels, g, True)
    elif task == "token-classification":
        plan.core["n_tok_labels"] = cfg.num_labels
        plan.specs += _pair("classifier", "TOK_W", "TOK_B", head=True, group=g)
        plan.label_keys.append("classifier.weight")
    else:
        raise ValueError(f"unknown task {task!r}")
    return plan


def core_kwargs(cfg: PretrainedConfig) -> Dict[str, Any]:
    """Keyword arguments of _tfmcore.Model for the encoder itself (heads come from head_plan)."""
    mt = cfg.model_type
    kw = dict(arch=_tfmcore.archs[ARCH[mt]], vocab=cfg.vocab_size, n_positions=cfg.max_position_embeddings,
              act=activation_code(_act_name(cfg)), ln_eps=float(cfg.layer_norm_eps),
              tie_word_embeddings=bool(cfg.tie_word_embeddings), embedding_size=cfg.embedding_width,
              type_vocab_size=cfg.type_vocab_size, pad_token_id=int(cfg.pad_token_id or 0))
    if mt == "distilbert":
        kw.update(n_layer=cfg.n_layers, n_head=cfg.n_heads, hidden=cfg.dim, inner=cfg.hidden_dim)
    else:
        kw.update(n_layer=cfg.num_hidden_layers, n_head=cfg.num_attention_heads, hidden=cfg.hidden_size,
                  inner=cfg.intermediate_size)
    if mt == "albert":
        kw.update(n_layer=cfg.num_hidden_groups * cfg.inner_group_num, hidden_every=cfg.inner_group_num,
                  layer_map=np.asarray(cfg.layer_map(), dtype=np.int32))
    return kw


@dataclass
class _Tensor:
    """A tensor made here (random head init, sinusoidal table) with the loader's StoredTensor fields."""

    dtype: str
    shape: Tuple[int, ...]
    array: np.ndarray


def _random_tensors(core: Any, specs: List[ParamSpec], cfg: PretrainedConfig, seed: int) -> Dict[str, _Tensor]:
    """transformers' _init_weights for the missing head weights: Linear weights ~ N(0, initializer_range),
    biases 0, LayerNorm weights 1 (same distribution; the values come from NumPy's generator)."""
    rng = np.random.default_rng(seed)
    std = float(getattr(cfg, "initializer_range", 0.02))
    out = {}
    for s in specs:
        shape = tuple(core.param_shape(s.slot))
        if len(shape) == 2:
            a = rng.normal(0.0, std, size=shape).astype(np.float32)
        elif s.slot == S["MLM_LN_W"]:
            a = np.ones(shape, dtype=np.float32)
        else:
            a = np.zeros(shape, dtype=np.float32)
        out[s.key] = _Tensor("f32", shape, a)
    return out


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
TASK_MODEL_TYPES: Dict[str, Tuple[str, ...]] = {
    "base": ENCODER_MODEL_TYPES,
    "masked-lm": ENCODER_MODEL_TYPES,
    "pretraining": ("bert", "albert", "electra"),
    "next-sentence": ("bert",),
    "sequence-classification": ENCODER_MODEL_TYPES,
    "token-classification": ENCODER_MODEL_TYPES,
}


def _split(out: dict, key: str) -> Optional[Tuple[np.ndarray, ...]]:
    return tuple(out[key]) if key in out else None


class _EncoderBase(PreTrainedModel):
    task: ClassVar[str] = "base"

    def __init__(self, config: PretrainedConfig, core: Any):
        super().__init__(config, core)
        self.base_model_prefix = config.model_type
        self.random_head_keys: List[str] = []  # head weights initialised randomly (allow_random_head)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, allow_random_head: bool = False, random_head_seed: int = 0,
                        **config_overrides: Any) -> "_EncoderBase":
        """Loads a folder written by transformers' save_pretrained (config.json + weights).

        allow_random_head: initialise head weights the checkpoint lacks (as transformers does
        silently) instead of refusing; random_head_seed makes that reproducible."""
        cfg = AutoConfig.from_pretrained(path, **config_overrides)
        model = cls.from_state_dict(cfg, read_state(path), source=str(path), allow_random_head=allow_random_head,
                                    random_head_seed=random_head_seed)
        model.name_or_path = str(path)
        return model

    @classmethod
    def from_state_dict(cls, cfg: PretrainedConfig, state: dict, source: str = "state dict",
                        allow_random_head: bool = False, random_head_seed: int = 0) -> "_EncoderBase":
        mt = cfg.model_type
        if mt not in TASK_MODEL_TYPES[cls.task]:
            raise ValueError(f"{source}: {cls.__name__} does not support model_type {mt!r} "
                             f"(supported: {', '.join(TASK_MODEL_TYPES[cls.task])})")
        prefix = mt + "."
        plan = head_plan(cfg, cls.task)
        missing = [s for s in plan.specs if find_spec(state, s, prefix)[0] is None]
        if missing and plan.optional and not allow_random_head:  # bare model without a pooler in the file
            plan = HeadPlan()
            missing = []
        for key in plan.label_keys:
            name, t = find_spec(state, ParamSpec(key, 0, head=True), prefix)
            if t is not None and len(t.shape) == 2 and t.shape[0] != cfg.num_labels:
                raise ValueError(f"{source}: config.json has num_labels = {cfg.num_labels} (id2label: "
                                 f"{cfg.id2label}) but {name} has {t.shape[0]} rows, one per class")
        core = _tfmcore.Model(**core_kwargs(cfg), **plan.core)
        state = dict(state)
        if missing:
            shown = [s.key if s.head else prefix + s.key for s in missing]
            if not allow_random_head:
                raise ValueError(f"{source}: {cls.__name__} ({mt}) needs {missing[0].group} weights the checkpoint "
                                 f"does not have: {', '.join(shown)}. transformers would initialise them randomly; "
                                 f"pass allow_random_head=True to do that explicitly (seeded)")
            warnings.warn(f"{source}: initialising {len(shown)} missing head weights randomly "
                          f"(seed {random_head_seed}): {', '.join(shown)}", stacklevel=3)
            state.update(_random_tensors(core, missing, cfg, random_head_seed))
        specs = base_specs(cfg)
        pos_key = "embeddings.position_embeddings.weight"
        if mt == "distilbert" and cfg.sinusoidal_pos_embds and find_spec(state, specs[1], prefix)[0] is None:
            table = sinusoidal_positions(cfg.max_position_embeddings, cfg.dim)  # fixed, so it may be left out
            state[pos_key] = _Tensor("f32", table.shape, table)
        unused, n_params = load_into_core(core, specs + plan.specs, state, prefix, source)
        model = cls(cfg, core)
        model.random_head_keys = [s.key for s in missing]
        model.unexpected_keys = [k for k in drop_buffers(unused) if k not in plan.tied_aliases]
        model.n_parameters = n_params
        return model

    @property
    def max_positions(self) -> int:
        return self.config.max_position_embeddings

    @property
    def has_pooler(self) -> bool:
        return self._core.param_shape(S["POOL_W"]) is not None

    def _encode(self, input_ids: Any, attention_mask: Any, token_type_ids: Any, position_ids: Any,
                output_hidden_states: bool, output_attentions: bool, **heads: bool) -> dict:
        cfg = self.config
        ids = as_ids(input_ids, "input_ids")
        B, T = ids.shape
        mask = check_mask(attention_mask, (B, T)) if attention_mask is not None else None
        tt = None
        if token_type_ids is not None:
            if cfg.type_vocab_size == 0:
                raise ValueError(f"{cfg.model_type} has no token type embeddings: token_type_ids must be None")
            tt = as_ids(token_type_ids, "token_type_ids")
            if tt.shape != (B, T):
                raise ValueError(f"token_type_ids has shape {tt.shape}, expected {(B, T)} like input_ids")
            bad = tt[(tt < 0) | (tt >= cfg.type_vocab_size)]
            if bad.size:
                raise ValueError(f"token_type_ids contains {int(bad[0])}, but type_vocab_size is "
                                 f"{cfg.type_vocab_size} (valid ids 0..{cfg.type_vocab_size - 1})")
        pos = None
        if position_ids is not None:
            pos = as_ids(position_ids, "position_ids")
            if pos.shape == (1, T):
                pos = np.broadcast_to(pos, (B, T))
            if pos.shape != (B, T):
                raise ValueError(f"position_ids has shape {pos.shape}, expected {(B, T)}")
            bad = pos[(pos < 0) | (pos >= self.max_positions)]
            if bad.size:
                raise ValueError(f"position_ids contains {int(bad[0])}, outside [0, max_position_embeddings = "
                                 f"{self.max_positions})")
        elif cfg.model_type == "roberta":
            # positions pad+1, pad+2, ... over non-pad tokens (transformers' create_position_ids_from_input_ids)
            longest = int((ids != cfg.pad_token_id).sum(axis=1).max())
            if cfg.pad_token_id + longest >= self.max_positions:
                raise ValueError(f"a row has {longest} non-pad tokens; roberta numbers them from pad_token_id + 1 = "
                                 f"{cfg.pad_token_id + 1}, so max_position_embeddings = {self.max_positions} allows "
                                 f"at most {self.max_positions - cfg.pad_token_id - 1}")
        elif T > self.max_positions:
            raise ValueError(f"sequence length {T} exceeds max_position_embeddings = {self.max_positions}")
        return self._core.encode(ids, mask, pos, tt, hidden_states=bool(output_hidden_states),
                                 attentions=bool(output_attentions), **heads)


class EncoderModel(_EncoderBase):
    """The bare encoder: ``last_hidden_state`` [B, T, C] and, for models with a pooler in the
    checkpoint (bert, roberta, albert), ``pooler_output`` = tanh(dense(h[:, 0])) [B, C]."""

    task = "base"

    def __call__(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                 position_ids: Any = None, output_hidden_states: bool = False,
                 output_attentions: bool = False) -> BaseModelOutputWithPooling:
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                           output_attentions, pooled=self.has_pooler)
        return BaseModelOutputWithPooling(last_hidden_state=out["last_hidden_state"], pooler_output=out.get("pooled"),
                                          hidden_states=_split(out, "hidden_states"),
                                          attentions=_split(out, "attentions"))

    forward = __call__


class EncoderForMaskedLM(_EncoderBase):
    """Encoder + MLM head: ``logits`` [B, T, V] (ELECTRA: the generator)."""

    task = "masked-lm"

    def __call__(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                 position_ids: Any = None, output_hidden_states: bool = False,
                 output_attentions: bool = False) -> MaskedLMOutput:
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                           output_attentions, last_hidden=False, mlm_logits=True)
        return MaskedLMOutput(logits=out["mlm_logits"], hidden_states=_split(out, "hidden_states"),
                              attentions=_split(out, "attentions"))

    forward = __call__


class EncoderForPreTraining(_EncoderBase):
    """The pre-training heads: BERT → ``prediction_logits`` + ``seq_relationship_logits`` (NSP);
    ALBERT → ``prediction_logits`` + ``sop_logits``; ELECTRA discriminator → ``logits`` [B, T]."""

    task = "pretraining"

    def __call__(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                 position_ids: Any = None, output_hidden_states: bool = False, output_attentions: bool = False) -> Any:
        mt = self.config.model_type
        if mt == "electra":
            out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                               output_attentions, last_hidden=False, tok_logits=True)
            return ElectraForPreTrainingOutput(logits=out["tok_logits"][..., 0],  # [B, T, 1] → [B, T]
                                               hidden_states=_split(out, "hidden_states"),
                                               attentions=_split(out, "attentions"))
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                           output_attentions, last_hidden=False, mlm_logits=True, seq_logits=True)
        hs, attn = _split(out, "hidden_states"), _split(out, "attentions")
        if mt == "albert":
            return AlbertForPreTrainingOutput(prediction_logits=out["mlm_logits"], sop_logits=out["seq_logits"],
                                              hidden_states=hs, attentions=attn)
        return BertForPreTrainingOutput(prediction_logits=out["mlm_logits"], seq_relationship_logits=out["seq_logits"],
                                        hidden_states=hs, attentions=attn)

    forward = __call__


class EncoderForNextSentencePrediction(_EncoderBase):
    """BERT's NSP head: ``logits`` [B, 2] (index 0: sentence B continues sentence A)."""

    task = "next-sentence"

    def __call__(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                 position_ids: Any = None, output_hidden_states: bool = False,
                 output_attentions: bool = False) -> NextSentencePredictorOutput:
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                           output_attentions, last_hidden=False, seq_logits=True)
        return NextSentencePredictorOutput(logits=out["seq_logits"], hidden_states=_split(out, "hidden_states"),
                                           attentions=_split(out, "attentions"))

    forward = __call__


class _Labelled:
    """id2label / label2id / problem_type from the config."""

    config: PretrainedConfig

    @property
    def num_labels(self) -> int:
        return self.config.num_labels

    @property
    def id2label(self) -> Dict[int, str]:
        return self.config.id2label or {i: f"LABEL_{i}" for i in range(self.num_labels)}

    @property
    def label2id(self) -> Dict[str, int]:
        return self.config.label2id or {v: k for k, v in self.id2label.items()}

    @property
    def problem_type(self) -> Optional[str]:
        """config.problem_type: "single_label_classification", "multi_label_classification",
        "regression", or None (then inferred from num_labels where it matters)."""
        return self.config.problem_type


class EncoderForSequenceClassification(_Labelled, _EncoderBase):
    """Sequence classes (or regression values with num_labels = 1): ``logits`` [B, num_labels].

    >>> out = model(ids, attention_mask=mask)
    >>> model.scores(out.logits)   # softmax / sigmoid / identity as transformers' pipeline
    """

    task = "sequence-classification"

    def __call__(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                 position_ids: Any = None, output_hidden_states: bool = False,
                 output_attentions: bool = False) -> SequenceClassifierOutput:
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                           output_attentions, last_hidden=False, seq_logits=True)
        return SequenceClassifierOutput(logits=out["seq_logits"], hidden_states=_split(out, "hidden_states"),
                                        attentions=_split(out, "attentions"))

    forward = __call__

    def scores(self, logits: Any, function_to_apply: Optional[str] = None) -> np.ndarray:
        """Logits → scores the way transformers' text-classification pipeline does by default:
        regression → identity, multi-label or one label → sigmoid, else softmax."""
        return scores_from_logits(logits, self.config, function_to_apply)


class EncoderForTokenClassification(_Labelled, _EncoderBase):
    """Per-token classes: ``logits`` [B, T, num_labels]."""

    task = "token-classification"

    def __call__(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                 position_ids: Any = None, output_hidden_states: bool = False,
                 output_attentions: bool = False) -> TokenClassifierOutput:
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                           output_attentions, last_hidden=False, tok_logits=True)
        return TokenClassifierOutput(logits=out["tok_logits"], hidden_states=_split(out, "hidden_states"),
                                     attentions=_split(out, "attentions"))

    forward = __call__


ENCODER_CLASSES = {c.task: c for c in (EncoderModel, EncoderForMaskedLM, EncoderForPreTraining,
                                       EncoderForNextSentencePrediction, EncoderForSequenceClassification,
                                       EncoderForTokenClassification)}
