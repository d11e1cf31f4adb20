"""GenerationConfig: every decoding parameter, with transformers' names, validated up front.

Differences from transformers, on purpose:
  * no filter is applied unless asked for: ``top_k`` defaults to None (transformers silently uses
    top_k=50 whenever do_sample=True);
  * ``temperature=0`` means greedy decoding (transformers raises for a 0 warper);
  * ``seed`` is part of the config: the same seed gives the same tokens on every run and batch
    composition (each row has its own random stream);
  * ``strategy`` may name a mode explicitly, including ones transformers does not ship
    ("stochastic_beam": Gumbel-top-k stochastic beam search, Kool et al. 2019).

Precedence when generating: explicit keyword arguments > a ``generation_config`` passed in >
the checkpoint's generation_config.json > these defaults.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

STRATEGIES = ("greedy", "sample", "beam", "beam_sample", "group_beam", "contrastive", "stochastic_beam")


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclass
class GenerationConfig:
    # length
    max_length: Optional[int] = None
    max_new_tokens: Optional[int] = None
    min_length: int = 0
    min_new_tokens: Optional[int] = None
    # strategy
    do_sample: bool = False
    num_beams: int = 1
    num_beam_groups: int = 1
    penalty_alpha: Optional[float] = None
    strategy: Optional[str] = None
    # logit filters (sampling only, transformers' order)
    temperature: float = 1.0
    top_k: Optional[int] = None
    top_p: float = 1.0
    min_p: Optional[float] = None
    typical_p: float = 1.0
    epsilon_cutoff: float = 0.0
    eta_cutoff: float = 0.0
    top_n_sigma: Optional[float] = None
    # penalties / constraints (every mode)
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    no_repeat_ngram_size: int = 0
    bad_words_ids: Optional[List[List[int]]] = None
    suppress_tokens: Optional[List[int]] = None
    begin_suppress_tokens: Optional[List[int]] = None
    sequence_bias: Optional[Any] = None
    diversity_penalty: float = 0.0
    # beam search
    length_penalty: float = 1.0
    early_stopping: Union[bool, str] = False
    num_return_sequences: int = 1
    # special tokens
    pad_token_id: Optional[int] = None
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[Union[int, List[int]]] = None
    # randomness and outputs
    seed: Optional[int] = None
    output_scores: bool = False
    output_logits: bool = False
    return_dict_in_generate: bool = False
    trace: bool = False
    trace_top_n: int = 10
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Dict[str, Any], strict: bool = False) -> "GenerationConfig":
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        unknown = {k: v for k, v in d.items() if k not in names}
        if strict and unknown:
            raise TypeError(f"unknown generation parameter(s): {', '.join(sorted(unknown))}")
        return cls(**known, extra=unknown)

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path]) -> "GenerationConfig":
        """Reads a checkpoint's generation_config.json (transformers' file)."""
        path = Path(directory) / "generation_config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{directory} has no generation_config.json")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object")
        data.pop("transformers_version", None)
        data.pop("_from_model_config", None)
        return cls.from_dict(data)

    def to_dict(self) -> Dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d.update(self.extra)
        return d

    def update(self, **kwargs: Any) -> "GenerationConfig":
        """A copy with the given parameters replaced; unknown names raise TypeError."""
        d = self.to_dict()
        names = {f.name for f in dataclasses.fields(self)}
        for k, v in kwargs.items():
            if k not in names:
                raise TypeError(f"unknown generation parameter {k!r}")
            d[k] = v
        return GenerationConfig.from_dict(d)

    # ------------------------------------------------------------------ derived values
    @property
    def eos_ids(self) -> List[int]:
        e = self.eos_token_id
        if e is None:
            return []
        return [int(x) for x in e] if isinstance(e, (list, tuple)) else [int(e)]

    @property
    def mode(self) -> str:
        """The decoding mode, chosen as transformers does (get_generation_mode), or `strategy`."""
        if self.strategy is not None:
            return self.strategy
        sampling = self.do_sample and self.temperature != 0
        if self.num_beams == 1:
            if not sampling and self.top_k is not None and self.top_k > 1 and self.penalty_alpha is not None \
                    and self.penalty_alpha > 0:
                return "contrastive"
            return "sample" if sampling else "greedy"
        if self.num_beam_groups > 1:
            return "group_beam"
        return "beam_sample" if sampling else "beam"

    def resolved_lengths(self, prompt_len: int, model_max: int) -> tuple:
        """(max_length, min_length) in tokens including the prompt, as transformers computes them."""
        if self.max_new_tokens is not None:
            max_length = prompt_len + self.max_new_tokens
        elif self.max_length is not None:
            max_length = self.max_length
        else:
            max_length = min(prompt_len + 20, max(model_max, prompt_len + 1))
        min_length = self.min_length or 0
        if self.min_new_tokens is not None:
            min_length = max(min_length, prompt_len + self.min_new_tokens)
        return max_length, min_length

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """ValueError naming the parameter for every out-of-range value (issue 3, bad input)."""

        def bad(name: str, why: str) -> None:
            raise ValueError(f"{name}={getattr(self, name)!r}: {why}")

        def integer(name: str, lo: int, allow_none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                bad(name, f"must be an integer >= {lo}")

        def real(name: str, lo: float, hi: float, lo_open: bool, hi_open: bool, allow_none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if not _is_num(v) or math.isnan(v):
                bad(name, "must be a number")
            if (v < lo or (lo_open and v == lo)) or (v > hi or (hi_open and v == hi)):
                lb = "(" if lo_open else "["
                rb = ")" if hi_open else "]"
                bad(name, f"must be in {lb}{lo}, {hi}{rb}")

        integer("max_new_tokens", 0, allow_none=True)
        integer("max_length", 1, allow_none=True)
        integer("min_length", 0)
        integer("min_new_tokens", 0, allow_none=True)
        integer("num_beams", 1)
        integer("num_beam_groups", 1)
        integer("num_return_sequences", 1)
        integer("top_k", 0, allow_none=True)
        integer("no_repeat_ngram_size", 0)
        integer("trace_top_n", 1)
        real("temperature", 0.0, math.inf, False, True)
        real("top_p", 0.0, 1.0, True, False)
        real("min_p", 0.0, 1.0, False, False, allow_none=True)
        real("typical_p", 0.0, 1.0, True, False)
        real("epsilon_cutoff", 0.0, 1.0, False, True)
        real("eta_cutoff", 0.0, 1.0, False, True)
        real("top_n_sigma", 0.0, math.inf, True, True, allow_none=True)
        real("repetition_penalty", 0.0, math.inf, True, True)
        real("frequency_penalty", -math.inf, math.inf, True, True)
        real("presence_penalty", -math.inf, math.inf, True, True)
        real("diversity_penalty", 0.0, math.inf, False, True)
        real("length_penalty", -math.inf, math.inf, True, True)
        real("penalty_alpha", 0.0, 1.0, False, False, allow_none=True)
        if self.early_stopping not in (True, False, "never"):
            bad("early_stopping", "must be True, False or 'never'")
        if self.strategy is not None and self.strategy not in STRATEGIES:
            bad("strategy", f"must be one of {', '.join(STRATEGIES)}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0):
            bad("seed", "must be a non-negative integer")
        mode = self.mode
        if self.num_beams % self.num_beam_groups:
            bad("num_beam_groups", f"num_beams ({self.num_beams}) must be divisible by num_beam_groups")
        if mode in ("beam", "beam_sample", "group_beam", "stochastic_beam"):
            if self.num_return_sequences > self.num_beams:
                bad("num_return_sequences", f"must be <= num_beams ({self.num_beams}) for beam search")
            if mode == "group_beam" and self.diversity_penalty <= 0:
                bad("diversity_penalty", "must be > 0 for group (diverse) beam search")
            if mode == "group_beam" and self.do_sample:
                bad("do_sample", "group beam search does not sample (set do_sample=False)")
        elif mode in ("greedy", "contrastive") and self.num_return_sequences > 1:
            bad("num_return_sequences", "must be 1 for greedy decoding and contrastive search (use do_sample=True "
                                        "or beam search to get several sequences)")
        if mode == "contrastive":
            if self.top_k is None or self.top_k < 2:
                bad("top_k", "contrastive search needs top_k > 1")
            if self.penalty_alpha is None:
                bad("penalty_alpha", "contrastive search needs penalty_alpha")
        if mode in ("beam", "beam_sample", "group_beam", "stochastic_beam") and self.num_beams < 2:
            bad("num_beams", f"{mode} needs num_beams >= 2")
        for name in ("bad_words_ids",):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (list, tuple)) or any(
                    not isinstance(s, (list, tuple)) or len(s) == 0 or
                    any(not isinstance(t, int) or isinstance(t, bool) for t in s) for s in v)):
                bad(name, "must be a list of non-empty lists of token ids")
        for name in ("suppress_tokens", "begin_suppress_tokens"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (list, tuple)) or
                                  any(not isinstance(t, int) or isinstance(t, bool) for t in v)):
                bad(name, "must be a list of token ids")

    def check_token_ids(self, vocab_size: int) -> None:
        """Token ids in the config must lie in [0, vocab_size)."""

        def check(name: str, ids: Sequence[int]) -> None:
            for t in ids:
                if not 0 <= t < vocab_size:
                    raise ValueError(f"{name} contains token id {t}, outside the vocabulary [0, {vocab_size})")

        for seq in self.bad_words_ids or []:
            check("bad_words_ids", seq)
        check("suppress_tokens", self.suppress_tokens or [])
        check("begin_suppress_tokens", self.begin_suppress_tokens or [])
        check("eos_token_id", self.eos_ids)
        if self.pad_token_id is not None:
            check("pad_token_id", [self.pad_token_id])
        if self.sequence_bias is not None:
            for seq, _ in sequence_bias_items(self.sequence_bias):
                check("sequence_bias", seq)


def sequence_bias_items(bias: Any) -> List[tuple]:
    """transformers accepts {tuple(ids): bias} or [[ids, bias], ...]; returns [(ids tuple, float)]."""
    if isinstance(bias, dict):
        items = [(tuple(k) if isinstance(k, (list, tuple)) else (k,), v) for k, v in bias.items()]
    elif isinstance(bias, (list, tuple)):
        items = []
        for entry in bias:
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2):
                raise ValueError("sequence_bias entries must be [token_ids, bias]")
            items.append((tuple(entry[0]), entry[1]))
    else:
        raise ValueError("sequence_bias must be a dict {token_ids tuple: bias} or a list of [token_ids, bias]")
    for seq, b in items:
        if len(seq) == 0 or any(not isinstance(t, int) or isinstance(t, bool) for t in seq):
            raise ValueError(f"sequence_bias key {seq!r} must be a non-empty sequence of token ids")
        if not _is_num(b) or math.isnan(b):
            raise ValueError(f"sequence_bias value for {seq!r} must be a number")
    return [(seq, float(b)) for seq, b in items]
