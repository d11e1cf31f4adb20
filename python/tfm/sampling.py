"""tfm.sampling — logits processors, warpers and samplers on NumPy arrays, computed in C.

Every function takes float logits of shape ``[V]`` or ``[B, V]`` (any float dtype; converted to
float32), returns a NEW array of the same shape (the input is never modified) and validates its
parameters, raising ``ValueError`` that names the bad parameter. Removed entries are ``-inf``.

Parity: each transformers processor here gives the same kept set and float32 values as the
transformers class of the same role (``TopPLogitsWarper`` …) — with one documented exception:
for *exactly equal* logits straddling a top-p / min-p / typical cut, transformers' answer depends
on ``torch.sort``'s unstable order; ours is the answer of a stable sort (ties resolved by token
id, stated per function).

NaN / +inf policy: logits containing NaN or +inf are refused with ``ValueError`` (naming row and
column); ``-inf`` is allowed anywhere. A row that is entirely ``-inf`` is left unchanged by the
filters and refused by ``softmax``, ``log_softmax`` and ``sample``.

Randomness: :class:`Generator` holds one xoshiro256** stream per batch row, seeded from
``(seed, row)`` or from one seed per row, so a row's draws never depend on the other rows.

Example::

    >>> import numpy as np, tfm.sampling as S
    >>> z = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    >>> S.top_p(z, 0.75)                      # keeps 0.5 and 0.3
    array([-0.6931472, -1.2039728,       -inf,       -inf], dtype=float32)
    >>> chain = S.Chain([S.Temperature(0.7), S.TopK(50), S.TopP(0.9)])
    >>> tokens = chain.sample(z, seed=0)

Not here: generation loops, beam search (they call the C functions directly), tokenisation.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from . import _tfmcore as _c

__all__ = [
    "FilterInfo", "Generator",
    "temperature", "top_k", "top_p", "min_p", "typical", "epsilon", "eta", "top_n_sigma",
    "repetition_penalty", "frequency_presence_penalty", "no_repeat_ngram", "bad_words", "suppress_tokens",
    "sequence_bias", "min_length", "min_new_tokens", "softmax", "log_softmax", "argmax", "top_indices",
    "sample", "gumbel_noise", "xtc", "dry", "dry_sequence_breakers",
    "LogitsProcessor", "Temperature", "TopK", "TopP", "MinP", "Typical", "Epsilon", "Eta", "TopNSigma",
    "RepetitionPenalty", "FrequencyPresencePenalty", "NoRepeatNGram", "BadWords", "SuppressTokens",
    "SequenceBias", "MinLength", "MinNewTokens", "LogSoftmax", "XTC", "DRY", "Mirostat", "MirostatV2", "Chain",
]

Ids = Union[np.ndarray, Sequence[int], Sequence[Sequence[int]]]


class FilterInfo(NamedTuple):
    """What a filter did to each row: ``kept`` finite entries after it, and ``mass``, the
    probability (softmax of the row before the filter) of the entries it kept."""

    kept: np.ndarray  # int64 [B] (a 0-d array for 1-D logits)
    mass: np.ndarray  # float64 [B]


# ---------------------------------------------------------------------------------------------
# parameter checks (the C binding checks again; these fire at object construction)
# ---------------------------------------------------------------------------------------------
def _float(name: str, value, lo: float, hi: float, lo_open: bool, hi_open: bool, hint: str = "") -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    ok = not math.isnan(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise ValueError(f"{name} must be in {lb}{lo}, {hi}{rb}{hint}, got {value!r}")
    return v


def _int(name: str, value, lo: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _token_list(name: str, tokens) -> list[int]:
    if isinstance(tokens, (int, np.integer)):
        tokens = [tokens]
    out = []
    for t in tokens:
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"{name} must hold non-negative integer token ids, got {t!r}")
        out.append(int(t))
    return out


def _squeeze_info(logits_ndim: int, kept, mass) -> FilterInfo:
    if logits_ndim == 1:
        return FilterInfo(kept.reshape(()), mass.reshape(()))
    return FilterInfo(kept, mass)


def _ndim(logits) -> int:
    return np.ndim(logits)


def _filter(kind: str, logits, value, min_tokens_to_keep: int, return_info: bool):
    out = _c.sampling_filter(kind, logits, value, min_tokens_to_keep, return_info)
    if return_info:
        z, kept, mass = out
        return z, _squeeze_info(_ndim(logits), kept, mass)
    return out


# ---------------------------------------------------------------------------------------------
# warpers (transformers parity)
# ---------------------------------------------------------------------------------------------
def temperature(logits, temperature: float, *, return_info: bool = False):
    """``logits / temperature`` (TemperatureLogitsWarper). ``temperature == 0`` is greedy (llama.cpp):
    only the first maximum of each row survives."""
    _float("temperature", temperature, 0.0, math.inf, False, True, " (0 = greedy)")
    return _filter("temperature", logits, temperature, 1, return_info)


def top_k(logits, top_k: int, min_tokens_to_keep: int = 1, *, return_info: bool = False):
    """TopKLogitsWarper: keep entries >= the ``max(top_k, min_tokens_to_keep)``-th largest value
    (every tie of that value is kept). ``top_k == 0`` is off."""
    _int("top_k", top_k, 0)
    _int("min_tokens_to_keep", min_tokens_to_keep, 1)
    return _filter("top_k", logits, top_k, min_tokens_to_keep, return_info)


def top_p(logits, top_p: float, min_tokens_to_keep: int = 1, *, return_info: bool = False):
    """TopPLogitsWarper (nucleus, Holtzman et al. 2019): in ascending order remove entries whose
    cumulative probability is <= 1 - top_p, never the last ``min_tokens_to_keep``. Equal logits at
    the cut: the higher token ids survive (a stable ascending sort)."""
    _float("top_p", top_p, 0.0, 1.0, True, False)
    _int("min_tokens_to_keep", min_tokens_to_keep, 1)
    return _filter("top_p", logits, top_p, min_tokens_to_keep, return_info)


def min_p(logits, min_p: float, min_tokens_to_keep: int = 1, *, return_info: bool = False):
    """MinPLogitsWarper (Nguyen et al. 2024): remove p < min_p * max p; keep at least the top
    ``min_tokens_to_keep`` (equal logits: lower token ids first)."""
    _float("min_p", min_p, 0.0, 1.0, False, False)
    _int("min_tokens_to_keep", min_tokens_to_keep, 1)
    return _filter("min_p", logits, min_p, min_tokens_to_keep, return_info)


def typical(logits, typical_p: float, min_tokens_to_keep: int = 1, *, return_info: bool = False):
    """TypicalLogitsWarper (Meister et al. 2022). ``typical_p == 1`` is off. Equal distances at the
    cut are all kept; forced ``min_tokens_to_keep`` follow a stable sort (lower ids first)."""
    _float("typical_p", typical_p, 0.0, 1.0, True, False, " (1 = off)")
    _int("min_tokens_to_keep", min_tokens_to_keep, 1)
    return _filter("typical_p", logits, typical_p, min_tokens_to_keep, return_info)


def epsilon(logits, epsilon_cutoff: float, min_tokens_to_keep: int = 1, *, return_info: bool = False):
    """EpsilonLogitsWarper (Hewitt et al. 2022): remove p < epsilon_cutoff unless among the top
    ``min_tokens_to_keep`` values. ``epsilon_cutoff == 0`` is off."""
    _float("epsilon_cutoff", epsilon_cutoff, 0.0, 1.0, False, True, " (0 = off)")
    _int("min_tokens_to_keep", min_tokens_to_keep, 1)
    return _filter("epsilon_cutoff", logits, epsilon_cutoff, min_tokens_to_keep, return_info)


def eta(logits, eta_cutoff: float, min_tokens_to_keep: int = 1, *, return_info: bool = False):
    """EtaLogitsWarper (Hewitt et al. 2022): as epsilon with cut min(eps, sqrt(eps) * exp(-H))."""
    _float("eta_cutoff", eta_cutoff, 0.0, 1.0, False, True, " (0 = off)")
    _int("min_tokens_to_keep", min_tokens_to_keep, 1)
    return _filter("eta_cutoff", logits, eta_cutoff, min_tokens_to_keep, return_info)


def top_n_sigma(logits, n: float, *, return_info: bool = False):
    """Top-n-sigma (Tang et al. 2024; llama.cpp): keep z >= max z - n * std(z) over the finite
    logits (population std)."""
    _float("top_n_sigma", n, 0.0, math.inf, True, True)
    return _filter("top_n_sigma", logits, n, 1, return_info)


# ---------------------------------------------------------------------------------------------
# penalties and constraints
# ---------------------------------------------------------------------------------------------
def _history(logits, input_ids) -> np.ndarray:
    ids = np.asarray(input_ids)
    if ids.dtype == object or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"input_ids must be an integer array, got dtype {ids.dtype}")
    if ids.size == 0:
        ids = ids.astype(np.int64)
    if np.ndim(logits) == 2 and ids.ndim == 1:
        raise ValueError("input_ids must be [B, L] for [B, V] logits")
    if np.ndim(logits) == 1 and ids.ndim != 1:
        raise ValueError("input_ids must be [L] for [V] logits")
    return ids


def repetition_penalty(logits, input_ids: Ids, penalty: float, prompt_ignore_length: int = 0):
    """RepetitionPenaltyLogitsProcessor (CTRL): each distinct id of ``input_ids`` (minus the first
    ``prompt_ignore_length``) gets ``z * penalty`` if z < 0 else ``z / penalty``."""
    _float("repetition_penalty", penalty, 0.0, math.inf, True, True)
    _int("prompt_ignore_length", prompt_ignore_length, 0)
    ids = _history(logits, input_ids)[..., prompt_ignore_length:]
    return _c.sampling_history("repetition", logits, ids, penalty)


def frequency_presence_penalty(logits, input_ids: Ids, frequency_penalty: float = 0.0,
                               presence_penalty: float = 0.0, last_n: Optional[int] = None):
    """OpenAI / llama.cpp penalties: ``z_v -= count_v * frequency_penalty + (count_v > 0) *
    presence_penalty`` over the last ``last_n`` ids (all when None)."""
    _float("frequency_penalty", frequency_penalty, -math.inf, math.inf, True, True)
    _float("presence_penalty", presence_penalty, -math.inf, math.inf, True, True)
    ids = _history(logits, input_ids)
    if last_n is not None:
        _int("last_n", last_n, 0)
        ids = ids[..., ids.shape[-1] - min(last_n, ids.shape[-1]):]
    return _c.sampling_history("frequency_presence", logits, ids, frequency_penalty, presence_penalty)


def no_repeat_ngram(logits, input_ids: Ids, ngram_size: int):
    """NoRepeatNGramLogitsProcessor: ban every token that would repeat an n-gram of ``input_ids``."""
    _int("ngram_size", ngram_size, 1)
    return _c.sampling_history("no_repeat_ngram", logits, _history(logits, input_ids), ngram_size)


def _sequence_table(name: str, seqs: Sequence[Sequence[int]], biases: Sequence[float]):
    flat, offsets = [], [0]
    for s in seqs:
        s = _token_list(name, s)
        if not s:
            raise ValueError(f"{name} contains an empty sequence")
        flat.extend(s)
        offsets.append(len(flat))
    return (np.asarray(flat, dtype=np.int64), np.asarray(offsets, dtype=np.int64),
            np.asarray(biases, dtype=np.float32))


def _bias_items(sequence_bias) -> list[tuple[tuple[int, ...], float]]:
    if isinstance(sequence_bias, Mapping):
        items = [(tuple(k) if not isinstance(k, (int, np.integer)) else (k,), v) for k, v in sequence_bias.items()]
    else:
        items = []
        for entry in sequence_bias:
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2):
                raise ValueError(f"sequence_bias entries must be [token_ids, bias], got {entry!r}")
            items.append((tuple(entry[0]), entry[1]))
    merged: dict[tuple[int, ...], float] = {}
    for seq, b in items:
        b = float(b)
        if math.isnan(b) or b == math.inf:
            raise ValueError(f"sequence_bias bias for {seq} must be finite or -inf, got {b}")
        merged[seq] = b  # a repeated sequence: the last bias wins, as a dict would
    if not merged:
        raise ValueError("sequence_bias must not be empty")
    return list(merged.items())


def sequence_bias(logits, input_ids: Ids, sequence_bias):
    """SequenceBiasLogitsProcessor: ``{(ids...): bias}`` or ``[[ids, bias], ...]``. Length-1
    sequences always add their bias; longer ones add it to their last token when the history ends
    with the rest. Token ids must be < V."""
    items = _bias_items(sequence_bias)
    flat, off, b = _sequence_table("sequence_bias", [s for s, _ in items], [v for _, v in items])
    return _c.sampling_sequence_bias(logits, _history(logits, input_ids), flat, off, b, "sequence_bias")


def bad_words(logits, input_ids: Ids, bad_words_ids: Sequence[Sequence[int]], eos_token_id=None):
    """NoBadWordsLogitsProcessor: a bias of -inf on every sequence of ``bad_words_ids``; sequences
    equal to ``[eos]`` are dropped (as transformers). Ids must be < V (else ValueError)."""
    if isinstance(bad_words_ids, (str, bytes)) or not isinstance(bad_words_ids, (list, tuple)) or not bad_words_ids:
        raise ValueError(f"bad_words_ids must be a non-empty list of lists of token ids, got {bad_words_ids!r}")
    seqs = []
    for s in bad_words_ids:
        if not isinstance(s, (list, tuple, np.ndarray)):
            raise ValueError(f"bad_words_ids must be a list of lists, got element {s!r}")
        seqs.append(_token_list("bad_words_ids", s))
    eos = set(_token_list("eos_token_id", eos_token_id)) if eos_token_id is not None else set()
    seqs = [s for s in seqs if not (len(s) == 1 and s[0] in eos)]
    if not seqs:
        return np.array(logits, dtype=np.float32, copy=True)
    flat, off, b = _sequence_table("bad_words_ids", seqs, [-math.inf] * len(seqs))
    return _c.sampling_sequence_bias(logits, _history(logits, input_ids), flat, off, b, "bad_words_ids")


def suppress_tokens(logits, suppress_tokens: Iterable[int]):
    """SuppressTokensLogitsProcessor: the listed ids become -inf (ids must be < V)."""
    toks = np.asarray(_token_list("suppress_tokens", suppress_tokens), dtype=np.int64)
    return _c.sampling_suppress(logits, toks, "suppress_tokens")


def min_length(logits, input_ids: Ids, min_length: int, eos_token_id):
    """MinLengthLogitsProcessor: EOS banned while len(input_ids) < min_length."""
    _int("min_length", min_length, 0)
    eos = np.asarray(_token_list("eos_token_id", eos_token_id), dtype=np.int64)
    ids = _history(logits, input_ids)
    lengths = np.full(1 if np.ndim(logits) == 1 else np.shape(logits)[0], ids.shape[-1], dtype=np.int64)
    return _c.sampling_suppress(logits, eos, "eos_token_id", lengths, min_length)


def min_new_tokens(logits, input_ids: Ids, prompt_length: int, min_new_tokens: int, eos_token_id):
    """MinNewTokensLengthLogitsProcessor: EOS banned while len(input_ids) - prompt_length <
    min_new_tokens."""
    _int("prompt_length", prompt_length, 0)
    _int("min_new_tokens", min_new_tokens, 0)
    eos = np.asarray(_token_list("eos_token_id", eos_token_id), dtype=np.int64)
    ids = _history(logits, input_ids)
    new = ids.shape[-1] - prompt_length  # negative inside the prompt: EOS banned, as transformers
    lengths = np.full(1 if np.ndim(logits) == 1 else np.shape(logits)[0], new, dtype=np.int64)
    return _c.sampling_suppress(logits, eos, "eos_token_id", lengths, min_new_tokens)


# ---------------------------------------------------------------------------------------------
# distributions, selection, randomness
# ---------------------------------------------------------------------------------------------
def softmax(logits) -> np.ndarray:
    """float32 softmax with max subtraction (-inf → probability 0)."""
    return _c.sampling_softmax(logits)


def log_softmax(logits) -> np.ndarray:
    """float32 ``z - max - log(sum(exp(z - max)))``."""
    return _c.sampling_softmax(logits, log=True)


def argmax(logits):
    """Index of the largest logit, the first on ties (torch.argmax). int for [V], int64 [B] for [B, V]."""
    out = _c.sampling_argmax(logits)
    return int(out[0]) if np.ndim(logits) == 1 else out


def top_indices(logits, k: int) -> np.ndarray:
    """The k largest entries' indices, descending, lower index first on ties: int64 [k] or [B, k]."""
    _int("k", k, 1)
    out = _c.sampling_top_indices(logits, k)
    return out[0] if np.ndim(logits) == 1 else out


class Generator:
    """One xoshiro256** stream per batch row (state: uint64 [B, 4], advanced by every draw).

    ``Generator(seed, batch)`` seeds row b from ``(seed, b)``; ``Generator([s0, s1, ...])`` seeds
    row b from ``(s_b, 0)``, so a sequence with seed s draws the same numbers in any batch.
    ``seed=None`` takes fresh entropy from the OS.
    """

    def __init__(self, seed: Union[int, Sequence[int], None] = None, batch: Optional[int] = None):
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
            b = 1 if batch is None else _int("batch", batch, 1)
            seeds = np.full(b, int(seed) % 2**64, dtype=np.uint64)
            streams = np.arange(b, dtype=np.uint64)
        else:
            lst = [int(s) % 2**64 for s in _token_list("seed", list(seed))] if len(seed) else []
            if not lst or (batch is not None and batch != len(lst)):
                raise ValueError("seed must be an int or one non-negative int per row")
            seeds = np.asarray(lst, dtype=np.uint64)
            streams = np.zeros(len(lst), dtype=np.uint64)
        self.state: np.ndarray = _c.rng_state(seeds, streams)

    @property
    def batch(self) -> int:
        return self.state.shape[0]

    def uniform(self, n: int) -> np.ndarray:
        """n draws in [0, 1) per row: float64 [B, n]."""
        return _c.rng_uniform(self.state, _int("n", n, 0))

    def copy(self) -> "Generator":
        g = Generator.__new__(Generator)
        g.state = self.state.copy()
        return g

    def __repr__(self) -> str:
        return f"Generator(batch={self.batch})"


def _generator(logits, seed, generator: Optional[Generator]) -> Generator:
    rows = 1 if np.ndim(logits) == 1 else int(np.shape(logits)[0])
    if generator is None:
        return Generator(seed, rows)
    if seed is not None:
        raise ValueError("pass seed or generator, not both")
    if not isinstance(generator, Generator):
        raise TypeError("generator must be a tfm.sampling.Generator")
    if generator.batch != rows:
        raise ValueError(f"generator has {generator.batch} rows but logits have {rows}")
    return generator


def sample(scores, seed: Union[int, Sequence[int], None] = None, *, generator: Optional[Generator] = None,
           num_samples: int = 1, replacement: bool = True, probs: bool = False) -> np.ndarray:
    """Multinomial draws from softmax(scores) (or from the weights ``scores >= 0`` when
    ``probs=True``): one uniform double per draw, the first index of positive weight whose running
    sum reaches u * total. Returns int64 [num_samples] for [V] input, [B, num_samples] for [B, V].

    ``seed``: an int (row b uses stream (seed, b)) or one seed per row; or pass a ``generator`` to
    continue a stream across calls. ``replacement=False`` draws distinct tokens (as
    torch.multinomial(replacement=False)).
    """
    _int("num_samples", num_samples, 1)
    g = _generator(scores, seed, generator)
    out = _c.sampling_sample(scores, g.state, num_samples, bool(replacement), bool(probs))
    return out[0] if np.ndim(scores) == 1 else out


def gumbel_noise(logits, seed: Union[int, Sequence[int], None] = None, *,
                 generator: Optional[Generator] = None) -> np.ndarray:
    """``logits + G`` with independent standard Gumbel G per finite entry (-inf stays): argmax
    is a draw from softmax(logits); the top-k are k draws without replacement (Kool et al. 2019)."""
    g = _generator(logits, seed, generator)
    return _c.sampling_gumbel(logits, g.state)


# ---------------------------------------------------------------------------------------------
# llama.cpp filters (functional forms; the stateful objects are below)
# ---------------------------------------------------------------------------------------------
def xtc(logits, probability: float, threshold: float, min_keep: int = 1, seed=None, *,
        generator: Optional[Generator] = None, return_info: bool = False):
    """XTC (llama.cpp): with chance ``probability`` per row, remove every token with p >=
    ``threshold`` except the least likely of them (if at least ``min_keep`` remain).
    ``threshold > 0.5`` is off (as llama.cpp)."""
    _float("xtc_probability", probability, 0.0, 1.0, False, False)
    _float("xtc_threshold", threshold, 0.0, 1.0, False, False)
    _int("min_keep", min_keep, 1)
    g = _generator(logits, seed, generator)
    z, kept, mass = _c.sampling_xtc(logits, g.state, probability, threshold, min_keep, True)
    return (z, _squeeze_info(np.ndim(logits), kept, mass)) if return_info else z


def _breaker_table(sequence_breakers) -> tuple[np.ndarray, np.ndarray]:
    seqs = [_token_list("sequence_breakers", s) for s in sequence_breakers]
    if any(not s for s in seqs):
        raise ValueError("sequence_breakers must not contain empty sequences")
    flat = [t for s in seqs for t in s]
    off = np.cumsum([0] + [len(s) for s in seqs]).astype(np.int64)
    return np.asarray(flat, dtype=np.int64), off


def dry(logits, input_ids: Ids, multiplier: float, base: float = 1.75, allowed_length: int = 2,
        penalty_last_n: int = -1, sequence_breakers: Sequence[Sequence[int]] = ()):
    """DRY (llama.cpp): penalise the tokens that would extend a repeat of >= ``allowed_length``
    tokens in the last ``penalty_last_n`` ids (-1: all; 0: off) by ``multiplier * base ** (len -
    allowed_length)``. ``sequence_breakers``: token-id sequences (head + tail) that end repeats;
    see :func:`dry_sequence_breakers` to derive them from strings as llama.cpp does."""
    _float("dry_multiplier", multiplier, 0.0, math.inf, False, True)
    _float("dry_base", base, 1.0, math.inf, False, True)
    _int("dry_allowed_length", allowed_length, 1)
    _int("dry_penalty_last_n", penalty_last_n, -1)
    flat, off = _breaker_table(sequence_breakers)
    return _c.sampling_dry(logits, _history(logits, input_ids), multiplier, base, allowed_length, penalty_last_n,
                           flat, off)


def dry_sequence_breakers(breakers: Iterable[str], vocab_size: int, decode: Callable[[int], str],
                          encode: Callable[[str], Sequence[int]], max_tail: int = 20) -> list[list[int]]:
    """Token-level DRY breakers from strings, as llama.cpp builds them: a token whose text contains
    the breaker is a single-token breaker; a token whose text ends with a proper prefix of it is a
    head, followed by the tokenisation of the rest of the breaker (at most ``max_tail`` tokens).
    Breakers are cut to 40 characters. ``decode(id)`` gives a token's text, ``encode(text)`` ids."""
    out: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    texts = [decode(i) for i in range(_int("vocab_size", vocab_size, 1))]
    for br in breakers:
        if not br:
            continue
        br = br[:40]
        for tok, word in enumerate(texts):
            if br in word:
                cand = [(tok,)]
            else:
                cand = []
                for pos in range(len(word)):
                    rest = len(word) - pos  # the word ends inside the breaker: a proper prefix match
                    if rest < len(br) and word[pos:] == br[:rest]:
                        cand.append((tok, *list(encode(br[rest:]))[:max_tail]))
            for c in cand:
                if c not in seen:
                    seen.add(c)
                    out.append(list(c))
    return out


# ---------------------------------------------------------------------------------------------
# composable objects
# ---------------------------------------------------------------------------------------------
class LogitsProcessor:
    """Base of the composable processors: ``p(logits, input_ids=None) -> new logits``."""

    needs_ids = False

    def __call__(self, logits, input_ids: Optional[Ids] = None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def accept(self, tokens) -> None:
        """Told the tokens chosen this step (only stateful samplers care)."""

    def reset(self) -> None:
        """Back to the initial state (only stateful samplers care)."""

    def describe(self) -> str:
        return repr(self)

    def _ids(self, input_ids):
        if input_ids is None:
            raise ValueError(f"{type(self).__name__} needs input_ids")
        return input_ids


@dataclass(frozen=True)
class Temperature(LogitsProcessor):
    temperature: float

    def __post_init__(self):
        _float("temperature", self.temperature, 0.0, math.inf, False, True, " (0 = greedy)")

    def __call__(self, logits, input_ids=None):
        return temperature(logits, self.temperature)


@dataclass(frozen=True)
class TopK(LogitsProcessor):
    top_k: int
    min_tokens_to_keep: int = 1

    def __post_init__(self):
        _int("top_k", self.top_k, 0)
        _int("min_tokens_to_keep", self.min_tokens_to_keep, 1)

    def __call__(self, logits, input_ids=None):
        return top_k(logits, self.top_k, self.min_tokens_to_keep)


@dataclass(frozen=True)
class TopP(LogitsProcessor):
    top_p: float
    min_tokens_to_keep: int = 1

    def __post_init__(self):
        _float("top_p", self.top_p, 0.0, 1.0, True, False)
        _int("min_tokens_to_keep", self.min_tokens_to_keep, 1)

    def __call__(self, logits, input_ids=None):
        return top_p(logits, self.top_p, self.min_tokens_to_keep)


@dataclass(frozen=True)
class MinP(LogitsProcessor):
    min_p: float
    min_tokens_to_keep: int = 1

    def __post_init__(self):
        _float("min_p", self.min_p, 0.0, 1.0, False, False)
        _int("min_tokens_to_keep", self.min_tokens_to_keep, 1)

    def __call__(self, logits, input_ids=None):
        return min_p(logits, self.min_p, self.min_tokens_to_keep)


@dataclass(frozen=True)
class Typical(LogitsProcessor):
    typical_p: float
    min_tokens_to_keep: int = 1

    def __post_init__(self):
        _float("typical_p", self.typical_p, 0.0, 1.0, True, False, " (1 = off)")
        _int("min_tokens_to_keep", self.min_tokens_to_keep, 1)

    def __call__(self, logits, input_ids=None):
        return typical(logits, self.typical_p, self.min_tokens_to_keep)


@dataclass(frozen=True)
class Epsilon(LogitsProcessor):
    epsilon_cutoff: float
    min_tokens_to_keep: int = 1

    def __post_init__(self):
        _float("epsilon_cutoff", self.epsilon_cutoff, 0.0, 1.0, False, True, " (0 = off)")
        _int("min_tokens_to_keep", self.min_tokens_to_keep, 1)

    def __call__(self, logits, input_ids=None):
        return epsilon(logits, self.epsilon_cutoff, self.min_tokens_to_keep)


@dataclass(frozen=True)
class Eta(LogitsProcessor):
    eta_cutoff: float
    min_tokens_to_keep: int = 1

    def __post_init__(self):
        _float("eta_cutoff", self.eta_cutoff, 0.0, 1.0, False, True, " (0 = off)")
        _int("min_tokens_to_keep", self.min_tokens_to_keep, 1)

    def __call__(self, logits, input_ids=None):
        return eta(logits, self.eta_cutoff, self.min_tokens_to_keep)


@dataclass(frozen=True)
class TopNSigma(LogitsProcessor):
    n: float

    def __post_init__(self):
        _float("top_n_sigma", self.n, 0.0, math.inf, True, True)

    def __call__(self, logits, input_ids=None):
        return top_n_sigma(logits, self.n)


@dataclass(frozen=True)
class RepetitionPenalty(LogitsProcessor):
    penalty: float
    prompt_ignore_length: int = 0
    needs_ids = True

    def __post_init__(self):
        _float("repetition_penalty", self.penalty, 0.0, math.inf, True, True)
        _int("prompt_ignore_length", self.prompt_ignore_length, 0)

    def __call__(self, logits, input_ids=None):
        return repetition_penalty(logits, self._ids(input_ids), self.penalty, self.prompt_ignore_length)


@dataclass(frozen=True)
class FrequencyPresencePenalty(LogitsProcessor):
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    last_n: Optional[int] = None
    needs_ids = True

    def __post_init__(self):
        _float("frequency_penalty", self.frequency_penalty, -math.inf, math.inf, True, True)
        _float("presence_penalty", self.presence_penalty, -math.inf, math.inf, True, True)
        if self.last_n is not None:
            _int("last_n", self.last_n, 0)

    def __call__(self, logits, input_ids=None):
        return frequency_presence_penalty(logits, self._ids(input_ids), self.frequency_penalty,
                                          self.presence_penalty, self.last_n)


@dataclass(frozen=True)
class NoRepeatNGram(LogitsProcessor):
    ngram_size: int
    needs_ids = True

    def __post_init__(self):
        _int("ngram_size", self.ngram_size, 1)

    def __call__(self, logits, input_ids=None):
        return no_repeat_ngram(logits, self._ids(input_ids), self.ngram_size)


@dataclass(frozen=True)
class BadWords(LogitsProcessor):
    bad_words_ids: tuple
    eos_token_id: Optional[Union[int, tuple]] = None
    needs_ids = True

    def __post_init__(self):
        if not self.bad_words_ids:
            raise ValueError("bad_words_ids must be a non-empty list of lists of token ids")
        object.__setattr__(self, "bad_words_ids", tuple(tuple(_token_list("bad_words_ids", s))
                                                        for s in self.bad_words_ids))

    def __call__(self, logits, input_ids=None):
        return bad_words(logits, self._ids(input_ids), [list(s) for s in self.bad_words_ids], self.eos_token_id)


@dataclass(frozen=True)
class SuppressTokens(LogitsProcessor):
    suppress_tokens: tuple

    def __post_init__(self):
        object.__setattr__(self, "suppress_tokens", tuple(_token_list("suppress_tokens", self.suppress_tokens)))

    def __call__(self, logits, input_ids=None):
        return suppress_tokens(logits, self.suppress_tokens)


@dataclass(frozen=True)
class SequenceBias(LogitsProcessor):
    sequence_bias: tuple  # ((ids, bias), ...)
    needs_ids = True

    def __post_init__(self):
        object.__setattr__(self, "sequence_bias", tuple(_bias_items(self.sequence_bias)))

    def __call__(self, logits, input_ids=None):
        return sequence_bias(logits, self._ids(input_ids), [[list(s), b] for s, b in self.sequence_bias])


@dataclass(frozen=True)
class MinLength(LogitsProcessor):
    min_length: int
    eos_token_id: Union[int, tuple]
    needs_ids = True

    def __post_init__(self):
        _int("min_length", self.min_length, 0)
        _token_list("eos_token_id", self.eos_token_id)

    def __call__(self, logits, input_ids=None):
        return min_length(logits, self._ids(input_ids), self.min_length, self.eos_token_id)


@dataclass(frozen=True)
class MinNewTokens(LogitsProcessor):
    prompt_length: int
    min_new_tokens: int
    eos_token_id: Union[int, tuple]
    needs_ids = True

    def __post_init__(self):
        _int("prompt_length", self.prompt_length, 0)
        _int("min_new_tokens", self.min_new_tokens, 0)
        _token_list("eos_token_id", self.eos_token_id)

    def __call__(self, logits, input_ids=None):
        return min_new_tokens(logits, self._ids(input_ids), self.prompt_length, self.min_new_tokens,
                              self.eos_token_id)


@dataclass(frozen=True)
class LogSoftmax(LogitsProcessor):
    """LogitNormalization (renormalize_logits=True)."""

    def __call__(self, logits, input_ids=None):
        return log_softmax(logits)


# ---- stateful llama.cpp samplers -------------------------------------------------------------
class _Seeded(LogitsProcessor):
    """Per-row generator created on first use (rows = the batch of that call)."""

    def __init__(self, seed):
        self.seed = seed
        self._gen: Optional[Generator] = None

    def _rows(self, logits) -> int:
        return 1 if np.ndim(logits) == 1 else int(np.shape(logits)[0])

    def _g(self, logits) -> Generator:
        rows = self._rows(logits)
        if self._gen is None:
            self._gen = Generator(self.seed, rows) if not isinstance(self.seed, (list, tuple, np.ndarray)) \
                else Generator(self.seed)
        if self._gen.batch != rows:
            raise ValueError(f"{type(self).__name__} holds state for {self._gen.batch} rows, got {rows}; call reset()")
        return self._gen

    def reset(self) -> None:
        self._gen = None


class XTC(_Seeded):
    """XTC as a stateful filter (its own generator per row, llama.cpp's apply/reset)."""

    def __init__(self, probability: float, threshold: float = 0.1, min_keep: int = 1, seed=None):
        super().__init__(seed)
        self.probability = _float("xtc_probability", probability, 0.0, 1.0, False, False)
        self.threshold = _float("xtc_threshold", threshold, 0.0, 1.0, False, False)
        self.min_keep = _int("min_keep", min_keep, 1)

    def __call__(self, logits, input_ids=None):
        return xtc(logits, self.probability, self.threshold, self.min_keep, generator=self._g(logits))

    apply = __call__

    def __repr__(self):
        return f"XTC(probability={self.probability}, threshold={self.threshold}, min_keep={self.min_keep}, seed={self.seed})"


class DRY(LogitsProcessor):
    """DRY as a stateful filter: uses ``input_ids`` when given, else the tokens passed to
    :meth:`accept` (llama.cpp's ring of accepted tokens)."""

    def __init__(self, multiplier: float, base: float = 1.75, allowed_length: int = 2, penalty_last_n: int = -1,
                 sequence_breakers: Sequence[Sequence[int]] = ()):
        self.multiplier = _float("dry_multiplier", multiplier, 0.0, math.inf, False, True)
        self.base = _float("dry_base", base, 1.0, math.inf, False, True)
        self.allowed_length = _int("dry_allowed_length", allowed_length, 1)
        self.penalty_last_n = _int("dry_penalty_last_n", penalty_last_n, -1)
        self.sequence_breakers = [list(_token_list("sequence_breakers", s)) for s in sequence_breakers]
        self._history: list[list[int]] = []

    def accept(self, tokens) -> None:
        toks = np.atleast_1d(np.asarray(tokens)).reshape(-1)
        if not self._history:
            self._history = [[] for _ in toks]
        if len(toks) != len(self._history):
            raise ValueError(f"DRY holds {len(self._history)} rows, got {len(toks)} tokens")
        for h, t in zip(self._history, toks):
            h.append(int(t))

    def reset(self) -> None:
        self._history = []

    def __call__(self, logits, input_ids=None):
        if input_ids is not None:
            return dry(logits, input_ids, self.multiplier, self.base, self.allowed_length, self.penalty_last_n,
                       self.sequence_breakers)
        rows = 1 if np.ndim(logits) == 1 else np.shape(logits)[0]
        hist = self._history or [[] for _ in range(rows)]
        if len(hist) != rows:
            raise ValueError(f"DRY holds {len(hist)} rows, got {rows}")
        z = np.atleast_2d(np.asarray(logits))
        out = np.stack([dry(z[b], np.asarray(h, dtype=np.int64), self.multiplier, self.base, self.allowed_length,
                            self.penalty_last_n, self.sequence_breakers) for b, h in enumerate(hist)])
        return out[0] if np.ndim(logits) == 1 else out

    apply = __call__

    def __repr__(self):
        return (f"DRY(multiplier={self.multiplier}, base={self.base}, allowed_length={self.allowed_length}, "
                f"penalty_last_n={self.penalty_last_n}, sequence_breakers={self.sequence_breakers})")


class Mirostat(_Seeded):
    """Mirostat v1 (Basu et al. 2020) as llama.cpp: a *selector*. ``apply(logits)`` truncates,
    draws one token per row and updates mu; returns ``(truncated_logits, tokens)``. mu starts at
    2 * tau per row."""

    version = 1

    def __init__(self, tau: float = 5.0, eta: float = 0.1, m: int = 100, seed=None):
        super().__init__(seed)
        self.tau = _float("mirostat_tau", tau, 0.0, math.inf, False, True)
        self.eta = _float("mirostat_eta", eta, 0.0, math.inf, False, True)
        self.m = _int("m", m, 2)
        self.mu: Optional[np.ndarray] = None

    def apply(self, logits):
        g = self._g(logits)
        if self.mu is None:
            self.mu = np.full(g.batch, 2.0 * self.tau, dtype=np.float32)
        z, tok = _c.sampling_mirostat(logits, g.state, self.mu, self.version, self.tau, self.eta, self.m)
        return z, (tok[0] if np.ndim(logits) == 1 else tok)

    def sample(self, logits, input_ids=None):
        return self.apply(logits)[1]

    def __call__(self, logits, input_ids=None):
        return self.apply(logits)[0]

    def reset(self) -> None:
        super().reset()
        self.mu = None

    def __repr__(self):
        extra = f", m={self.m}" if self.version == 1 else ""
        return f"{type(self).__name__}(tau={self.tau}, eta={self.eta}{extra}, seed={self.seed})"


class MirostatV2(Mirostat):
    """Mirostat v2: keep tokens with -log2 p <= mu (at least one), draw, update mu."""

    version = 2

    def __init__(self, tau: float = 5.0, eta: float = 0.1, seed=None):
        super().__init__(tau, eta, 100, seed)


class Chain(LogitsProcessor):
    """Processors applied in order (a LogitsProcessorList); ``sample`` ends with a multinomial draw,
    or with the chain's last element when it is a selector (Mirostat)."""

    def __init__(self, processors: Iterable[LogitsProcessor] = ()):
        self.processors = list(processors)
        for p in self.processors:
            if not callable(p):
                raise TypeError(f"{p!r} is not a processor")
        for p in self.processors[:-1]:
            if isinstance(p, Mirostat):
                raise ValueError("Mirostat selects the token: it can only be last in a Chain")

    def __call__(self, logits, input_ids=None):
        z = logits
        for p in self.processors:
            if isinstance(p, Mirostat):
                break
            z = p(z, input_ids)
        return np.array(z, dtype=np.float32, copy=True) if z is logits else z

    def sample(self, logits, input_ids=None, seed=None, *, generator: Optional[Generator] = None):
        z = self(logits, input_ids)
        if self.processors and isinstance(self.processors[-1], Mirostat):
            return self.processors[-1].sample(z)
        return sample(z, seed, generator=generator)

    def accept(self, tokens) -> None:
        for p in self.processors:
            p.accept(tokens)

    def reset(self) -> None:
        for p in self.processors:
            p.reset()

    def append(self, p: LogitsProcessor) -> None:
        self.processors.append(p)

    def __len__(self):
        return len(self.processors)

    def __iter__(self):
        return iter(self.processors)

    def describe(self) -> str:
        return "\n".join(f"{i}: {p.describe() if hasattr(p, 'describe') else repr(p)}"
                         for i, p in enumerate(self.processors))

    def __repr__(self):
        return "Chain([" + ", ".join(repr(p) for p in self.processors) + "])"
