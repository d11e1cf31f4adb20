"""generate(), stream() and score() for causal LMs: argument handling in Python, the loop in C.

``GenerationMixin`` is mixed into the causal-LM classes. ``generate`` resolves the configuration
(kwargs > generation_config argument > the checkpoint's generation_config.json > defaults),
validates it, builds the processor chain in transformers' order, and hands everything to the C
Generator, which runs prefill, processors, selection and cache reordering for every step without
returning to Python. ``stream`` drives the same Generator one step at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _tfmcore
from .config import GenerationConfig
from .processors import build_chain, chain_names

MODES = {"greedy": 0, "sample": 1, "beam": 2, "beam_sample": 3, "group_beam": 4, "contrastive": 5,
         "stochastic_beam": 6}
BEAM_MODES = ("beam", "beam_sample", "group_beam", "stochastic_beam")


@dataclass
class StageTrace:
    """One processor stage of one step for one row: the distribution after it was applied."""

    name: str                  # "model" for the raw distribution, else the processor's name
    top_ids: np.ndarray        # [top_n] most probable tokens (−1 padding when fewer remain)
    top_probs: np.ndarray      # [top_n] their probabilities (softmax of the scores at this stage)
    kept: int                  # tokens still possible (finite scores)
    kept_mass: float           # probability, under the previous stage, of the tokens still kept


@dataclass
class StepTrace:
    """What happened at one decoding step, per row: ``stages[row]`` in the order applied."""

    step: int
    stages: List[List[StageTrace]]
    chosen: np.ndarray         # [rows] token chosen
    logprob: np.ndarray        # [rows] its log-probability under the final (processed) distribution

    def __getitem__(self, row: int) -> List[StageTrace]:
        return self.stages[row]

    def table(self, row: int = 0, tokenizer: Any = None, top: int = 5) -> str:
        """A readable table of one row: each stage's kept count, kept mass and top tokens.

            print(res.trace[3].table(tokenizer=tok))
        """
        def show(t: int) -> str:
            return repr(tokenizer.decode([int(t)])) if tokenizer is not None else str(int(t))

        lines = [f"step {self.step}, row {row}: chose {show(self.chosen[row])} "
                 f"(log p = {float(self.logprob[row]):.3f})",
                 f"{'stage':<28}{'kept':>8}{'mass':>8}  top tokens"]
        for st in self.stages[row]:
            n = min(top, int((st.top_ids >= 0).sum()))
            tops = ", ".join(f"{show(t)} {p:.3f}" for t, p in zip(st.top_ids[:n], st.top_probs[:n]))
            lines.append(f"{st.name:<28}{st.kept:>8}{st.kept_mass:>8.3f}  {tops}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return "\n\n".join(self.table(r) for r in range(len(self.stages)))


@dataclass
class BeamTree:
    """Every candidate beam search expanded: arrays [steps, batch, candidates].

    parent: running slot the candidate extends; token; score: accumulated log-prob (stochastic
    beam: conditioned Gumbel G); final: length-normalised score when it finished (NaN otherwise);
    finished / kept (became a running beam; ``slot`` is its new slot) / accepted (entered the
    finished set)."""

    parent: np.ndarray
    token: np.ndarray
    score: np.ndarray
    final: np.ndarray
    finished: np.ndarray
    kept: np.ndarray
    slot: np.ndarray
    accepted: np.ndarray


@dataclass
class GenerateOutput:
    """transformers' GenerateDecoderOnlyOutput / GenerateBeamDecoderOnlyOutput fields, plus the trace."""

    sequences: np.ndarray                          # [N, length] int64
    scores: Optional[Tuple[np.ndarray, ...]] = None  # per step [rows, V]: processed scores
    sequences_scores: Optional[np.ndarray] = None  # beam modes: final length-normalised scores
    beam_indices: Optional[np.ndarray] = None      # beam modes: [N, generated] running row per token, −1 after
    token_logprobs: Optional[np.ndarray] = None    # [N, generated] log p of each token as chosen
    raw_logprobs: Optional[np.ndarray] = None      # [N, generated] log p under the model alone
    trace: Optional[List[StepTrace]] = None        # sampling modes with trace=True
    beam_tree: Optional[BeamTree] = None           # beam modes with trace=True
    processors: List[str] = field(default_factory=list)
    mode: str = ""
    timings: Dict[str, float] = field(default_factory=dict)  # seconds: prefill, forward (steps), other

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class ScoreOutput:
    """Log-probabilities of continuations: ``total[i]`` = Σ ``per_token[i]``."""

    total: np.ndarray
    per_token: List[np.ndarray]

    def ranking(self) -> np.ndarray:
        """Choice indices from most to least likely."""
        return np.argsort(-self.total, kind="stable")


class GenerationMixin:
    """generate / stream / score / compute_transition_scores for a causal LM with `_core`."""

    # ------------------------------------------------------------------ configuration
    def _resolve(self, generation_config: Optional[GenerationConfig], kwargs: Dict[str, Any]) -> GenerationConfig:
        base = generation_config or getattr(self, "generation_config", None) or GenerationConfig()
        cfg = base.update(**kwargs) if kwargs else base.update()
        mc = self.config
        if cfg.eos_token_id is None and mc.eos_token_id is not None:
            cfg.eos_token_id = mc.eos_token_id
        if cfg.pad_token_id is None:
            cfg.pad_token_id = mc.pad_token_id if mc.pad_token_id is not None else (cfg.eos_ids[0] if cfg.eos_ids else None)
        cfg.validate()
        cfg.check_token_ids(mc.vocab_size)
        return cfg

    def _prepare(self, input_ids: Any, attention_mask: Any, cfg: GenerationConfig):
        from ..models.base import as_ids, check_mask

        ids = as_ids(input_ids, "input_ids").astype(np.int64)
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            raise ValueError(f"input_ids contains token ids outside the vocabulary [0, {self.config.vocab_size})")
        B, P = ids.shape
        mask = check_mask(attention_mask, (B, P)) if attention_mask is not None else None
        if mask is not None and (mask.sum(axis=1) == 0).any():
            raise ValueError("attention_mask has a row with no real token")
        max_pos = self.max_positions
        if P >= max_pos:
            raise ValueError(f"the prompt has {P} tokens, which already reaches the model's maximum length of "
                             f"{max_pos} positions")
        max_length, min_length = cfg.resolved_lengths(P, max_pos)
        if max_length > max_pos:
            raise ValueError(f"max_length {max_length} (prompt {P} + new tokens) exceeds the model's maximum of "
                             f"{max_pos} positions")
        if max_length <= P:
            raise ValueError(f"max_length ({max_length}) must exceed the prompt length ({P}); use max_new_tokens")
        return ids, mask, max_length, min_length

    def _generator(self, input_ids: Any, attention_mask: Any, cfg: GenerationConfig):
        ids, mask, max_length, min_length = self._prepare(input_ids, attention_mask, cfg)
        mode = cfg.mode
        eos = cfg.eos_ids
        pad = cfg.pad_token_id
        if mode in ("beam", "beam_sample", "stochastic_beam"):
            # transformers' beam filler: `pad_token_id or eos_token_id[0]` (so a pad id of 0 becomes eos)
            pad = pad if pad else (eos[0] if eos else -1)
        if pad is None:
            pad = -1
        chain = build_chain(cfg, mode, eos, ids.shape[1], max_length, min_length)
        seed = cfg.seed if cfg.seed is not None else int(np.random.SeedSequence().entropy % (2**63))
        core_cfg = dict(mode=MODES[mode], max_length=max_length, num_beams=cfg.num_beams,
                        num_beam_groups=cfg.num_beam_groups, num_return_sequences=cfg.num_return_sequences,
                        top_k=cfg.top_k or 0, penalty_alpha=cfg.penalty_alpha or 0.0,
                        length_penalty=cfg.length_penalty,
                        early_stopping={False: 0, True: 1, "never": 2}[cfg.early_stopping],
                        eos=np.asarray(eos, dtype=np.int32), pad_id=pad, seed=seed,
                        trace_top_n=cfg.trace_top_n if cfg.trace else 0)
        want = dict(scores=cfg.output_scores, logprobs=cfg.return_dict_in_generate or cfg.trace)
        gen = _tfmcore.Generator(self._core, ids, mask, core_cfg, chain, want)
        return gen, chain, mode, ids.shape[1]

    # ------------------------------------------------------------------ generate
    def generate(self, input_ids: Any, attention_mask: Any = None, generation_config: Optional[GenerationConfig] = None,
                 **kwargs: Any) -> Union[np.ndarray, GenerateOutput]:
        """Generates continuations of `input_ids` (left-padded [B, P], with `attention_mask`).

        Arguments and semantics follow transformers' generate(): max_new_tokens, do_sample,
        temperature, top_k, top_p, num_beams, ... (see GenerationConfig). Returns the sequences
        [B·num_return_sequences, P + new] (int64), or a GenerateOutput with
        return_dict_in_generate=True (scores, sequences_scores, beam_indices, log-probs, trace).

            out = model.generate(ids, attention_mask=mask, max_new_tokens=40, do_sample=True, top_p=0.9, seed=0)
        """
        cfg = self._resolve(generation_config, kwargs)
        if cfg.max_new_tokens == 0:
            ids = np.asarray(input_ids, dtype=np.int64)
            ids = ids[None, :] if ids.ndim == 1 else ids
            seqs = np.repeat(ids, cfg.num_return_sequences, axis=0)
            return GenerateOutput(sequences=seqs, mode=cfg.mode) if cfg.return_dict_in_generate else seqs
        gen, chain, mode, P = self._generator(input_ids, attention_mask, cfg)
        try:
            gen.run()
            out = gen.outputs()
        finally:
            gen.close()
        return self._assemble(out, cfg, chain, mode, P)

    def _assemble(self, out: dict, cfg: GenerationConfig, chain, mode: str, P: int):
        length, steps = out["length"], out["steps"]
        seqs = out["sequences"][:, :length].astype(np.int64)
        if not cfg.return_dict_in_generate and not cfg.trace:
            return seqs
        gen_len = length - P
        res = GenerateOutput(sequences=seqs, mode=mode, processors=chain_names(chain),
                             timings=dict(prefill=out["time_prefill"], forward=out["time_forward"],
                                          other=out["time_total"] - out["time_prefill"] - out["time_forward"],
                                          steps=steps))
        if "token_logprobs" in out:
            res.token_logprobs = out["token_logprobs"][:, :gen_len]
            res.raw_logprobs = out["raw_logprobs"][:, :gen_len]
        if mode in BEAM_MODES:
            res.sequences_scores = out["sequences_scores"]
            res.beam_indices = out["beam_indices"][:, :gen_len].astype(np.int64)
        if cfg.output_scores:
            res.scores = tuple(out["scores"][s] for s in range(steps))
        if cfg.trace and "trace_ids" in out:
            res.trace = self._trace(out, steps, ["model"] + chain_names(chain), P, seqs)
        if cfg.trace and "tree_parent" in out:
            f = out["tree_flags"][:steps]
            res.beam_tree = BeamTree(parent=out["tree_parent"][:steps], token=out["tree_token"][:steps],
                                     score=out["tree_score"][:steps], final=out["tree_final"][:steps],
                                     finished=(f & 1) > 0, kept=(f & 2) > 0, slot=np.where((f & 2) > 0, f >> 8, -1),
                                     accepted=(f & 4) > 0)
        return res

    @staticmethod
    def _trace(out: dict, steps: int, names: List[str], P: int, seqs: np.ndarray) -> List[StepTrace]:
        ids, probs, kept, mass = out["trace_ids"], out["trace_probs"], out["trace_kept"], out["trace_mass"]
        traces = []
        for s in range(steps):
            rows = []
            for r in range(ids.shape[1]):
                rows.append([StageTrace(names[j], ids[s, r, j], probs[s, r, j], int(kept[s, r, j]), float(mass[s, r, j]))
                             for j in range(ids.shape[2])])
            traces.append(StepTrace(step=s, stages=rows, chosen=out["sequences"][:, P + s].copy(),
                                    logprob=out["token_logprobs"][:, s].copy()))
        return traces

    # ------------------------------------------------------------------ streaming
    def stream(self, input_ids: Any, attention_mask: Any = None, tokenizer: Any = None,
               generation_config: Optional[GenerationConfig] = None, **kwargs: Any) -> Iterator[Any]:
        """Yields each new token as it is produced: an int for a single prompt (an array [B] for a
        batch), or — with a tokenizer — the text that became final (multi-byte characters split
        across tokens are held back until complete). Greedy, sampling and contrastive modes.
        Breaking out of the loop frees the generator's cache at once.

            for piece in model.stream(ids, tokenizer=tok, do_sample=True, top_p=0.95, seed=0): print(piece, end="")
        """
        cfg = self._resolve(generation_config, kwargs)
        if cfg.mode in BEAM_MODES:
            raise ValueError(f"stream() produces one token per step; {cfg.mode} search only knows its result at the "
                             f"end — use generate()")
        gen, _, _, P = self._generator(input_ids, attention_mask, cfg)
        decoder = None
        if tokenizer is not None:
            from ..tokenization import IncrementalDecoder

            decoder = IncrementalDecoder(tokenizer)
        try:
            done, length = False, P
            seqs = gen.outputs()["sequences"]
            single = seqs.shape[0] == 1
            finished = np.zeros(seqs.shape[0], dtype=bool)
            eos = set(cfg.eos_ids)
            while not done:
                done, length = gen.step()
                toks = seqs[:, length - 1].copy()
                if decoder is not None:
                    if not single:
                        raise ValueError("stream(tokenizer=...) decodes a single prompt; pass one row")
                    if finished[0]:
                        continue
                    finished[0] = int(toks[0]) in eos
                    piece = decoder.push(int(toks[0]))
                    if piece:
                        yield piece
                else:
                    yield int(toks[0]) if single else toks
            if decoder is not None:
                rest = decoder.flush()
                if rest:
                    yield rest
        finally:
            gen.close()

    # ------------------------------------------------------------------ scoring
    def score(self, prompt_ids: Any, choices: Sequence[Sequence[int]]) -> ScoreOutput:
        """Log-probabilities of each continuation after the prompt, in one batched pass.

        The prompt runs once; its KV cache is copied to one row per choice, and the choices (right-
        padded) run together. ``total[i]`` = Σ log p(choice_i[t] | prompt, choice_i[:t]).

            res = model.score(tok.encode("The capital of France is"), [tok.encode(" Paris"), tok.encode(" Vienna")])
        """
        from ..models.base import as_ids

        prompt = as_ids(prompt_ids, "prompt_ids")
        if prompt.shape[0] != 1:
            raise ValueError("score() takes one prompt [T] or [1, T]")
        if len(choices) == 0 or any(len(c) == 0 for c in choices):
            raise ValueError("choices must be a non-empty list of non-empty token-id lists")
        n, P = len(choices), prompt.shape[1]
        Lc = max(len(c) for c in choices)
        if P + Lc > self.max_positions:
            raise ValueError(f"prompt ({P}) + longest choice ({Lc}) exceeds the model's {self.max_positions} positions")
        batch = np.zeros((n, Lc), dtype=np.int64)
        for i, c in enumerate(choices):
            c = as_ids(c, "choices")[0]
            batch[i, :len(c)] = c
        out = self(prompt, use_cache=True, logits_to_keep=1)
        first = _log_softmax(out.logits[0, -1])
        cache = out.past_key_values
        cache.reorder([0] * n)
        mask = np.ones((n, P + Lc), dtype=np.int64)
        for i, c in enumerate(choices):
            mask[i, P + len(c):] = 0
        logits = self(batch, attention_mask=mask, past_key_values=cache).logits  # [n, Lc, V]
        per_token = []
        for i, c in enumerate(choices):
            lp = np.empty(len(c), dtype=np.float64)
            lp[0] = first[c[0]]
            for t in range(1, len(c)):
                lp[t] = _log_softmax(logits[i, t - 1])[c[t]]
            per_token.append(lp)
        return ScoreOutput(total=np.array([p.sum() for p in per_token]), per_token=per_token)

    # ------------------------------------------------------------------ transformers' helper
    @staticmethod
    def compute_transition_scores(sequences: np.ndarray, scores: Sequence[np.ndarray],
                                  beam_indices: Optional[np.ndarray] = None,
                                  normalize_logits: bool = False) -> np.ndarray:
        """The score of each generated token, as transformers' compute_transition_scores."""
        steps = len(scores)
        sc = np.stack(scores)  # [steps, R, V]
        if normalize_logits:
            sc = sc - _logsumexp(sc, axis=-1)[..., None]
        R, V = sc.shape[1], sc.shape[2]
        if beam_indices is None:
            beam_indices = np.tile(np.arange(R)[:, None], (1, steps))
        beam_indices = np.asarray(beam_indices)
        masked = beam_indices < 0
        max_len = int((~masked).sum(-1).max())
        bi = np.where(masked, 0, beam_indices)[:, :max_len]
        masked = masked[:, :max_len]
        toks = np.asarray(sequences)[:, sequences.shape[-1] - max_len:]
        out = sc[np.arange(max_len)[None, :], bi, toks]
        out[masked] = 0.0
        return out


def _logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m).squeeze(axis)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    return z - _logsumexp(z)
