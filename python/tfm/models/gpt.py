"""The GPT family (gpt2, openai-gpt, gpt_neo): config → C model, checkpoint keys → weight slots,
and the forward call with transformers' argument names.

``GPTForCausalLM`` is what ``AutoModelForCausalLM`` returns; ``GPTModel`` (``AutoModel``) is the bare
decoder returning ``last_hidden_state``. Both run entirely in the C core; this file only checks
arguments and shapes the outputs.

Position ids: like transformers' forward, the default is ``arange(past, past + T)`` even with left
padding; ``generate()`` derives them from the attention mask (cumsum − 1) as transformers does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Tuple

import numpy as np

from .. import _tfmcore
from ..configuration import (OPENAI_GPT_ACTIVATIONS, AutoConfig, GPT2Config, GPTNeoConfig, OpenAIGPTConfig,
                             PretrainedConfig, activation_code)
from ..generation import GenerationConfig, GenerationMixin
from ..outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from .base import (KVCache, ParamSpec, PreTrainedModel, as_ids, check_mask, drop_buffers, load_into_core,
                   read_state)

# tfm_arch and tfm_param codes (csrc/tfm.h)
ARCH_GPT2, ARCH_OPENAI_GPT, ARCH_GPT_NEO = 1, 2, 3
(P_WTE, P_WPE, P_LNF_W, P_LNF_B, P_LM_HEAD, P_LN1_W, P_LN1_B, P_QKV_W, P_QKV_B, P_Q_W, P_K_W, P_V_W,
 P_ATTN_OUT_W, P_ATTN_OUT_B, P_LN2_W, P_LN2_B, P_FC_IN_W, P_FC_IN_B, P_FC_OUT_W, P_FC_OUT_B) = range(20)

GPT_MODEL_TYPES = ("gpt2", "openai-gpt", "gpt_neo")


def core_kwargs(cfg: PretrainedConfig) -> dict:
    """Keyword arguments of _tfmcore.Model for a GPT-family config."""
    if isinstance(cfg, GPT2Config):
        return dict(arch=ARCH_GPT2, n_layer=cfg.n_layer, n_head=cfg.n_head, hidden=cfg.n_embd, inner=cfg.inner,
                    vocab=cfg.vocab_size, n_positions=cfg.n_positions, act=activation_code(cfg.activation_function),
                    ln_eps=cfg.layer_norm_epsilon, scale_attn_weights=bool(cfg.scale_attn_weights),
                    scale_attn_by_inverse_layer_idx=bool(cfg.scale_attn_by_inverse_layer_idx),
                    tie_word_embeddings=bool(cfg.tie_word_embeddings))
    if isinstance(cfg, OpenAIGPTConfig):
        return dict(arch=ARCH_OPENAI_GPT, n_layer=cfg.n_layer, n_head=cfg.n_head, hidden=cfg.n_embd,
                    inner=cfg.inner, vocab=cfg.vocab_size, n_positions=cfg.n_positions,
                    act=activation_code(cfg.afn, OPENAI_GPT_ACTIVATIONS), ln_eps=cfg.layer_norm_epsilon,
                    tie_word_embeddings=bool(cfg.tie_word_embeddings))
    if isinstance(cfg, GPTNeoConfig):
        local = [1 if t == "local" else 0 for t in cfg.attention_layers]
        return dict(arch=ARCH_GPT_NEO, n_layer=cfg.num_layers, n_head=cfg.num_heads, hidden=cfg.hidden_size,
                    inner=cfg.inner, vocab=cfg.vocab_size, n_positions=cfg.max_position_embeddings,
                    act=activation_code(cfg.activation_function), ln_eps=cfg.layer_norm_epsilon,
                    scale_attn_weights=False, tie_word_embeddings=bool(cfg.tie_word_embeddings),
                    window_size=cfg.window_size, layer_is_local=np.asarray(local, dtype=np.int32))
    raise ValueError(f"not a GPT-family config: {cfg.model_type}")


def param_specs(cfg: PretrainedConfig, with_head: bool) -> List[ParamSpec]:
    """Checkpoint key → C slot for every weight (key names: architectures.md §1–3)."""
    mt = cfg.model_type
    n_layer = cfg.num_layers if mt == "gpt_neo" else cfg.n_layer
    wte, wpe = ("tokens_embed.weight", "positions_embed.weight") if mt == "openai-gpt" else ("wte.weight", "wpe.weight")
    specs = [ParamSpec(wte, P_WTE), ParamSpec(wpe, P_WPE)]
    if mt != "openai-gpt":
        specs += [ParamSpec("ln_f.weight", P_LNF_W), ParamSpec("ln_f.bias", P_LNF_B)]
    conv = 0 if mt == "gpt_neo" else 1  # GPT-2/OpenAI GPT store Conv1D [in, out]; GPT-Neo uses nn.Linear
    for i in range(n_layer):
        h = f"h.{i}."
        specs += [ParamSpec(h + "ln_1.weight", P_LN1_W, i), ParamSpec(h + "ln_1.bias", P_LN1_B, i),
                  ParamSpec(h + "ln_2.weight", P_LN2_W, i), ParamSpec(h + "ln_2.bias", P_LN2_B, i),
                  ParamSpec(h + "mlp.c_fc.weight", P_FC_IN_W, i, conv), ParamSpec(h + "mlp.c_fc.bias", P_FC_IN_B, i),
                  ParamSpec(h + "mlp.c_proj.weight", P_FC_OUT_W, i, conv),
                  ParamSpec(h + "mlp.c_proj.bias", P_FC_OUT_B, i)]
        if mt == "gpt_neo":
            a = h + "attn.attention."
            specs += [ParamSpec(a + "q_proj.weight", P_Q_W, i), ParamSpec(a + "k_proj.weight", P_K_W, i),
                      ParamSpec(a + "v_proj.weight", P_V_W, i), ParamSpec(a + "out_proj.weight", P_ATTN_OUT_W, i),
                      ParamSpec(a + "out_proj.bias", P_ATTN_OUT_B, i)]
        else:
            specs += [ParamSpec(h + "attn.c_attn.weight", P_QKV_W, i, 1), ParamSpec(h + "attn.c_attn.bias", P_QKV_B, i),
                      ParamSpec(h + "attn.c_proj.weight", P_ATTN_OUT_W, i, 1),
                      ParamSpec(h + "attn.c_proj.bias", P_ATTN_OUT_B, i)]
    if with_head and not cfg.tie_word_embeddings:
        specs.append(ParamSpec("lm_head.weight", P_LM_HEAD, head=True))
    return specs


class _GPTBase(PreTrainedModel):
    base_model_prefix = "transformer"
    _with_head = False

    @classmethod
    def from_pretrained(cls, path: str | Path, **config_overrides: Any) -> "_GPTBase":
        """Loads a folder written by transformers' save_pretrained (config.json + weights)."""
        cfg = AutoConfig.from_pretrained(path, **config_overrides)
        if cfg.model_type not in GPT_MODEL_TYPES:
            raise ValueError(f"{path}: model_type {cfg.model_type!r} is not a GPT-family decoder "
                             f"(supported here: {', '.join(GPT_MODEL_TYPES)})")
        state = read_state(path)
        model = cls.from_state_dict(cfg, state, source=str(path))
        model.name_or_path = str(path)
        if (Path(path) / "generation_config.json").is_file():
            model.generation_config = GenerationConfig.from_pretrained(path)
        return model

    @classmethod
    def from_state_dict(cls, cfg: PretrainedConfig, state: dict, source: str = "state dict") -> "_GPTBase":
        kw = core_kwargs(cfg)
        if not cls._with_head:
            kw["tie_word_embeddings"] = True  # the bare decoder has no head to load
        core = _tfmcore.Model(**kw)
        # a bare-model request ignores heads; an LM request on a tied model needs no lm_head in the file
        unused, n_params = load_into_core(core, param_specs(cfg, cls._with_head), state, cls.base_model_prefix + ".",
                                          source)
        model = cls(cfg, core)
        model.unexpected_keys = drop_buffers([k for k in unused if not k.startswith("lm_head.")])
        model.n_parameters = n_params
        return model

    @property
    def max_positions(self) -> int:
        c = self.config
        return c.max_position_embeddings if c.model_type == "gpt_neo" else c.n_positions

    @property
    def num_layers(self) -> int:
        c = self.config
        return c.num_layers if c.model_type == "gpt_neo" else c.n_layer

    def new_cache(self, batch_size: int, capacity: int) -> KVCache:
        """An empty KVCache with room for `capacity` positions per row (it grows if needed)."""
        return KVCache(self._core.new_cache(batch_size, min(capacity, self.max_positions)))

    def _run(self, input_ids: Any, attention_mask: Any, position_ids: Any, token_type_ids: Any,
             past_key_values: Optional[KVCache], use_cache: Optional[bool], output_hidden_states: bool,
             output_attentions: bool, logits: str, last_hidden: bool) -> Tuple[dict, Optional[KVCache]]:
        ids = as_ids(input_ids, "input_ids")
        B, T = ids.shape
        if past_key_values is not None and not isinstance(past_key_values, KVCache):
            raise TypeError("past_key_values must be a KVCache returned by a previous call with use_cache=True")
        past = past_key_values.length if past_key_values is not None else 0
        if past + T > self.max_positions:
            raise ValueError(f"sequence length {past + T} ({past} cached + {T} new) exceeds the model's maximum "
                             f"of {self.max_positions} positions")
        mask = check_mask(attention_mask, (B, past + T)) if attention_mask is not None else None
        pos = as_ids(position_ids, "position_ids") if position_ids is not None else None
        if pos is not None and pos.shape != (B, T):
            pos = np.broadcast_to(pos, (B, T)) if pos.shape == (1, T) else pos
            if pos.shape != (B, T):
                raise ValueError(f"position_ids has shape {pos.shape}, expected {(B, T)}")
        tt = as_ids(token_type_ids, "token_type_ids") if token_type_ids is not None else None
        if tt is not None and tt.shape != (B, T):
            raise ValueError(f"token_type_ids has shape {tt.shape}, expected {(B, T)}")
        cache = past_key_values
        if cache is None and use_cache:
            cache = self.new_cache(B, T)
        out = self._core.forward(ids, mask, pos, tt, cache._c if cache is not None else None, logits,
                                 output_hidden_states, output_attentions, last_hidden)
        return out, cache


def _split(out: dict, key: str) -> Optional[Tuple[np.ndarray, ...]]:
    return tuple(out[key]) if key in out else None


class GPTModel(_GPTBase):
    """The bare decoder: ``last_hidden_state`` [B, T, C] (after the final norm, as transformers)."""

    def __call__(self, input_ids: Any, attention_mask: Any = None, position_ids: Any = None,
                 token_type_ids: Any = None, past_key_values: Optional[KVCache] = None,
                 use_cache: Optional[bool] = None, output_hidden_states: bool = False,
                 output_attentions: bool = False) -> BaseModelOutputWithPast:
        out, cache = self._run(input_ids, attention_mask, position_ids, token_type_ids, past_key_values, use_cache,
                               output_hidden_states, output_attentions, "none", True)
        return BaseModelOutputWithPast(last_hidden_state=out["last_hidden_state"], past_key_values=cache,
                                       hidden_states=_split(out, "hidden_states"),
                                       attentions=_split(out, "attentions"))

    forward = __call__


class GPTForCausalLM(GenerationMixin, _GPTBase):
    """Decoder + LM head: ``logits`` [B, T, V]. ``logits_to_keep=k`` keeps the last k positions
    (k = 1 computes only those rows of the LM head — what generation uses)."""

    _with_head = True

    def __call__(self, input_ids: Any, attention_mask: Any = None, position_ids: Any = None,
                 token_type_ids: Any = None, past_key_values: Optional[KVCache] = None,
                 use_cache: Optional[bool] = None, output_hidden_states: bool = False,
                 output_attentions: bool = False, logits_to_keep: int = 0) -> CausalLMOutputWithPast:
        if not isinstance(logits_to_keep, (int, np.integer)) or logits_to_keep < 0:
            raise ValueError(f"logits_to_keep must be an integer >= 0, got {logits_to_keep!r}")
        mode = "last" if logits_to_keep == 1 else "all"
        out, cache = self._run(input_ids, attention_mask, position_ids, token_type_ids, past_key_values, use_cache,
                               output_hidden_states, output_attentions, mode, False)
        logits = out["logits"]
        if mode == "last":
            logits = logits[:, None, :]
        elif logits_to_keep > 1:
            logits = logits[:, -logits_to_keep:, :]
        return CausalLMOutputWithPast(logits=logits, past_key_values=cache,
                                      hidden_states=_split(out, "hidden_states"),
                                      attentions=_split(out, "attentions"))

    forward = __call__


def random_state_dict(cfg: PretrainedConfig, seed: int = 0) -> dict:
    """A state dict initialised as transformers does (normal(0, initializer_range) matrices, unit
    LayerNorms, zero biases): a model to try the library with before any checkpoint is at hand."""
    from ..checkpoint import StoredTensor

    rng = np.random.default_rng(seed)
    std = float(getattr(cfg, "initializer_range", 0.02))
    kw = core_kwargs(cfg)
    probe = _tfmcore.Model(**kw)
    state = {}
    for spec in param_specs(cfg, with_head=True):
        shape = probe.param_shape(spec.slot)
        if spec.layout == 1:
            shape = tuple(reversed(shape))
        if spec.key.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            a = np.ones(shape, np.float32)
        elif len(shape) == 1:
            a = np.zeros(shape, np.float32)
        else:
            a = rng.normal(0.0, std, size=shape).astype(np.float32)
        state[spec.key] = StoredTensor.from_array(spec.key, a)
    return state
