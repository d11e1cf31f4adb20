"""Decoding-quality metrics, as the papers and their authors' evaluation code define them.

Contract
  * Model-based: `token_logprobs`, `sequence_logprob` and `perplexity` (HF's sliding-window "stride"
    perplexity) under any causal LM with the minimal interface
    `model(input_ids: int64 [B, T], attention_mask=int64 [B, T]) -> object with .logits float [B, T, V]`
    and `model.config.n_positions` or `model.config.max_position_embeddings`.
  * Text-based, over token sequences (lists/arrays of ids, or strings, which are split on whitespace):
      distinct_n            Li et al. 2016: #unique n-grams / #n-grams, pooled over the corpus
      distinct_n_singletons Holtzman et al. 2020 (degen metrics/distinct_n.py): #n-grams seen exactly
                            once / #n-grams -- a different number from Li et al.'s, despite the name
      rep_n, diversity      Su et al. 2022 (SimCTG evaluation.py), with their dropped-last-n-gram
                            convention behind `drop_last=True`
      holtzman_repetition   Holtzman et al. 2020's repetition % (degen metrics/repetition.py rule)
      self_bleu             Self-BLEU (Zhu et al. 2018) as Holtzman et al. compute it: BLEU-4 of a
                            sample of generations against all the others, NLTK method1 smoothing
      zipf_coefficient      least-squares slope of log count vs log rank over the top 5,000 ranks
  * Pure NumPy and the standard library: no scipy/nltk at run time (tests cross-check against them).

Not here: MAUVE, coherence and HUSE (need large featuriser models or human judgements), and no
tokenisation -- pass the token ids the model produced (Holtzman: GPT-2 ids) or strings.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from typing import Iterable, Optional, Sequence

import numpy as np

__all__ = ["token_logprobs", "sequence_logprob", "perplexity", "distinct_n", "distinct_n_singletons", "rep_n",
           "diversity", "holtzman_repetition", "repetition_at_end", "self_bleu", "sentence_bleu",
           "zipf_coefficient"]


# ----------------------------------------------------------------------------------------------------
# model-based: log-probabilities and perplexity
# ----------------------------------------------------------------------------------------------------

def _max_positions(model) -> Optional[int]:
    cfg = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings"):
        v = getattr(cfg, name, None)
        if v is not None:
            return int(v)
    return None


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _ids_2d(input_ids, name="input_ids") -> tuple:
    ids = np.asarray(input_ids)
    if ids.dtype == object:
        raise ValueError(f"{name} must be rectangular (pad the batch and pass attention_mask)")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")
    if ids.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D [T] or 2-D [B, T], got shape {ids.shape}")
    single = ids.ndim == 1
    return ids.reshape(1, -1).astype(np.int64) if single else ids.astype(np.int64), single


def _run(model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = model(ids, attention_mask=mask)
    logits = getattr(out, "logits", None)
    if logits is None:
        raise TypeError("model(...) must return an object with a .logits array [B, T, V]")
    logits = np.asarray(logits)
    if logits.ndim != 3 or logits.shape[:2] != ids.shape:
        raise ValueError(f"model logits have shape {logits.shape}, expected {ids.shape + ('V',)}")
    return logits


def token_logprobs(model, input_ids, attention_mask=None) -> np.ndarray:
    """log p(x_t | x_<t) for every position t >= 1 of a right-padded batch, float64 [B, T] ([T] for 1-D
    input); position 0 (no context) and padding are NaN. The batch must fit in the model's context."""
    ids, single = _ids_2d(input_ids)
    B, T = ids.shape
    if attention_mask is None:
        mask = np.ones_like(ids)
    else:
        mask = np.asarray(attention_mask).reshape(ids.shape).astype(np.int64)
        # right padding only: absolute-position models (GPT-2) would shift positions under left padding
        if (np.diff(mask, axis=1) > 0).any() or ((mask != 0) & (mask != 1)).any():
            raise ValueError("attention_mask must be 0/1 with the padding on the right (1...1 0...0 per row)")
    n_pos = _max_positions(model)
    if n_pos is not None and T > n_pos:
        raise ValueError(f"sequence length {T} exceeds the model's {n_pos} positions: use perplexity(..., stride=)")
    out = np.full((B, T), np.nan)
    if T < 2:
        return out[0] if single else out
    logp = _log_softmax(_run(model, ids, mask)[:, :-1])  # [B, T-1, V]: predictions for positions 1..T-1
    got = np.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0]
    out[:, 1:] = np.where(mask[:, 1:] == 1, got, np.nan)
    return out[0] if single else out


def sequence_logprob(model, input_ids, attention_mask=None, *, prompt_length: int = 0):
    """Sum of log p(x_t | x_<t) over positions max(1, prompt_length) <= t < length of each sequence
    (the continuation's log-probability given the prompt). float64 [B], or a float for 1-D input."""
    if prompt_length < 0:
        raise ValueError(f"prompt_length must be >= 0, got {prompt_length}")
    lp = token_logprobs(model, input_ids, attention_mask)
    lp2 = lp.reshape(1, -1) if lp.ndim == 1 else lp
    lp2 = lp2.copy()
    lp2[:, :prompt_length] = np.nan
    s = np.nansum(lp2, axis=1)
    return float(s[0]) if lp.ndim == 1 else s


def perplexity(model, input_ids, *, stride: Optional[int] = None, max_length: Optional[int] = None) -> float:
    """Perplexity of one long text (1-D ids) or of several texts pooled (a list of 1-D id sequences):
    exp(sum of NLL / number of scored tokens), with HF's sliding window ("Perplexity of fixed-length
    models" in the transformers docs): windows of `max_length` tokens (default: the model's positions)
    start every `stride` tokens; each window scores only the tokens the previous windows did not, so
    every token after the first is scored exactly once, with up to max_length - stride tokens of extra
    context. As in HF, the first token of each window is never a target (with stride == max_length
    those tokens go unscored). Default stride: max_length // 2 (HF's example: 512 with GPT-2's 1024)."""
    if max_length is None:
        max_length = _max_positions(model)
        if max_length is None:
            raise ValueError("max_length not given and the model config has neither n_positions nor "
                             "max_position_embeddings")
    if stride is None:
        stride = max(1, int(max_length) // 2)
    if not (isinstance(stride, (int, np.integer)) and isinstance(max_length, (int, np.integer))):
        raise TypeError("stride and max_length must be integers")
    if max_length < 2 or not 1 <= stride <= max_length:
        raise ValueError(f"need max_length >= 2 and 1 <= stride <= max_length, got stride={stride}, "
                         f"max_length={max_length}")
    if isinstance(input_ids, np.ndarray):
        texts = [input_ids] if input_ids.ndim == 1 else list(input_ids)
    else:
        texts = list(input_ids)
        if texts and all(isinstance(t, (int, np.integer)) for t in texts):
            texts = [texts]  # one text given as a plain list of ids
    if not texts:
        raise ValueError("no text given")
    nll, count = 0.0, 0
    for text in texts:
        ids, _ = _ids_2d(text, "text")
        ids = ids[0]
        N = len(ids)
        prev_end = 0
        for begin in range(0, N, stride):
            end = min(begin + max_length, N)
            window = ids[begin:end]
            first_new = prev_end - begin  # positions before this in the window were scored already
            lp = token_logprobs(model, window)  # lp[0] is NaN: a window's first token is never a target
            scored = lp[max(1, first_new):]
            nll -= float(scored.sum())
            count += len(scored)
            prev_end = end
            if end == N:
                break
    if count == 0:
        raise ValueError("no token to score: every text has fewer than 2 tokens")
    return math.exp(nll / count)


# ----------------------------------------------------------------------------------------------------
# n-gram statistics
# ----------------------------------------------------------------------------------------------------

def _tokens(seq) -> list:
    """A text as a list of hashable tokens: strings are split on whitespace (SimCTG's convention)."""
    if isinstance(seq, str):
        return seq.strip().split()
    if isinstance(seq, np.ndarray):
        return seq.tolist()
    return list(seq)


def _corpus(sequences) -> list:
    if isinstance(sequences, (str, np.ndarray)) and np.ndim(sequences) < 2:
        raise TypeError("pass a list of sequences (a corpus), not a single sequence")
    return [_tokens(s) for s in sequences]


def _ngrams(tokens: list, n: int, drop_last: bool = False):
    stop = len(tokens) - n + 1 - (1 if drop_last else 0)
    return [tuple(tokens[i:i + n]) for i in range(max(0, stop))]


def _check_n(n):
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


def distinct_n(sequences, n: int) -> float:
    """Li et al. 2016 distinct-n: number of unique n-grams / total n-grams, pooled over all sequences."""
    _check_n(n)
    seen, total = set(), 0
    for toks in _corpus(sequences):
        grams = _ngrams(toks, n)
        seen.update(grams)
        total += len(grams)
    if total == 0:
        raise ValueError(f"no {n}-gram in the corpus")
    return len(seen) / total


def distinct_n_singletons(sequences, n: int) -> float:
    """Holtzman et al. 2020's "distinct-n" (degen metrics/distinct_n.py): the fraction of n-grams whose
    type occurs exactly once in the whole corpus. Equals distinct_n only when no n-gram repeats."""
    _check_n(n)
    counts, total = Counter(), 0
    for toks in _corpus(sequences):
        grams = _ngrams(toks, n)
        counts.update(grams)
        total += len(grams)
    if total == 0:
        raise ValueError(f"no {n}-gram in the corpus")
    return sum(1 for c in counts.values() if c == 1) / total


def rep_n(sequences, n: int, *, drop_last: bool = False) -> float:
    """SimCTG rep-n in percent: 100 * (1 - sum_i #unique n-grams of text i / sum_i #n-grams of text i).
    Unique n-grams are counted per text, then summed (repeats across texts do not count).

    drop_last=True reproduces SimCTG's evaluation.py, whose loop `while end_idx < len(tokens)` never
    looks at the last n-gram of a text; use it to compare with their published numbers.
    """
    _check_n(n)
    uniq, total = 0, 0
    for toks in _corpus(sequences):
        grams = _ngrams(toks, n, drop_last)
        uniq += len(set(grams))
        total += len(grams)
    if total == 0:
        raise ValueError(f"no {n}-gram in the corpus")
    return 100.0 * (1.0 - uniq / total)


def diversity(sequences, *, drop_last: bool = False, round_rep: Optional[int] = None) -> float:
    """SimCTG diversity = prod_{n=2,3,4} (1 - rep-n / 100), a fraction in [0, 1] (papers print x100 or
    as a fraction). SimCTG's code rounds each rep-n to 2 decimals before the product: round_rep=2."""
    prod = 1.0
    for n in (2, 3, 4):
        r = rep_n(sequences, n, drop_last=drop_last)
        if round_rep is not None:
            r = round(r, round_rep)
        prod *= 1.0 - r / 100.0
    return prod


def repetition_at_end(tokens: Sequence, *, max_n: int = 90) -> tuple:
    """For n = 1..max_n, how many times the last n-gram repeats back-to-back at the very end of `tokens`
    (the final occurrence included). Returns (n*, count) with n* the smallest n of maximal count."""
    rev = list(reversed(_tokens(tokens)))
    best_n, best = 1, 0
    for n in range(1, max_n + 1):
        k = 1
        while len(rev) >= n * (k + 1) and rev[n * k:n * (k + 1)] == rev[:n]:
            k += 1
        if k > best:
            best_n, best = n, k
    return best_n, best


def holtzman_repetition(sequences, *, eos_id=None, max_n: int = 90, rule: str = "code") -> float:
    """Percentage of generations that end in a repetition loop (Holtzman et al. 2020, Table 1 "Repetition %").

    rule="code" (default, degen metrics/repetition.py, reproduces Table 1): drop one trailing `eos_id`;
    with (n*, c) = repetition_at_end(tokens), the generation repeats iff c > 1 and (n* >= 3 or c > 50).
    rule="prose" (the paper's sentence, which differs): some phrase of length >= 2 is repeated at least
    three times (back-to-back) at the end of the generation.
    """
    if rule not in ("code", "prose"):
        raise ValueError(f"rule must be 'code' or 'prose', got {rule!r}")
    corpus = _corpus(sequences)
    if not corpus:
        raise ValueError("no sequence given")
    hits = 0
    for toks in corpus:
        if eos_id is not None and toks and toks[-1] == eos_id:
            toks = toks[:-1]
        if not toks:
            continue
        if rule == "code":
            n, c = repetition_at_end(toks, max_n=max_n)
            hits += c > 1 and (n >= 3 or c > 50)
        else:
            rev = list(reversed(toks))
            hits += any(len(rev) >= 3 * n and rev[n:2 * n] == rev[:n] and rev[2 * n:3 * n] == rev[:n]
                        for n in range(2, min(max_n, len(rev) // 3) + 1))
    return 100.0 * hits / len(corpus)


# ----------------------------------------------------------------------------------------------------
# BLEU / Self-BLEU (NLTK sentence_bleu semantics, method1 smoothing)
# ----------------------------------------------------------------------------------------------------

def _bleu_from_counts(numerators, denominators, hyp_len, ref_len, weights, epsilon) -> float:
    """NLTK corpus_bleu on one sentence: modified precisions p_n = num_n / max(1, den_n); 0 if no unigram
    matches; method1 smoothing replaces p_n = 0 by epsilon / den_n; BP = exp(1 - r/c) if c < r."""
    if numerators[0] == 0:
        return 0.0
    s = 0.0
    for w, num, den in zip(weights, numerators, denominators):
        p = (num if num else epsilon) / den
        s += w * math.log(p)
    if hyp_len > ref_len:
        bp = 1.0
    elif hyp_len == 0:
        bp = 0.0
    else:
        bp = math.exp(1.0 - ref_len / hyp_len)
    return bp * math.exp(s)


def _closest_ref_length(ref_lens, hyp_len) -> int:
    # NLTK: the reference length closest to the hypothesis length, the shorter one on a tie
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def sentence_bleu(references: Sequence, hypothesis, *, weights=(0.25, 0.25, 0.25, 0.25),
                  epsilon: float = 0.1) -> float:
    """BLEU of one hypothesis against several references, as NLTK's sentence_bleu with
    SmoothingFunction(epsilon).method1 (the smoothing Holtzman et al. used). Tokens are any hashables."""
    hyp = _tokens(hypothesis)
    refs = [_tokens(r) for r in references]
    if not refs:
        raise ValueError("sentence_bleu needs at least one reference")
    nums, dens = [], []
    for n in range(1, len(weights) + 1):
        h = Counter(_ngrams(hyp, n))
        maxref = Counter()
        for r in refs:
            for g, c in Counter(_ngrams(r, n)).items():
                if c > maxref[g]:
                    maxref[g] = c
        nums.append(sum(min(c, maxref[g]) for g, c in h.items()))
        dens.append(max(1, sum(h.values())))
    return _bleu_from_counts(nums, dens, len(hyp), _closest_ref_length([len(r) for r in refs], len(hyp)),
                             weights, epsilon)


def self_bleu(sequences, *, n_hypotheses: Optional[int] = 1000, seed: int = 0, max_n: int = 4,
              epsilon: float = 0.1, degen_draw: bool = False) -> float:
    """Self-BLEU-`max_n` (uniform weights 1/max_n): the mean, over hypotheses sampled from the corpus,
    of sentence_bleu(hypothesis, references = every *other* sequence), NLTK method1 smoothing.
    Holtzman et al.: GPT-2 token ids, 5,000 generations, 1,000 hypotheses drawn with Python's
    random.seed(0); random.sample(range(N), 1000). n_hypotheses=None (or >= N) uses every sequence.

    degen_draw=True reproduces the official script's draw exactly: it calls random.sample once per
    BLEU order 1..5 after a single seed, so BLEU-4's hypotheses are the 4th draw, not the first.

    Computed exactly but fast: for every n-gram the two largest counts over the corpus (and which
    sequence holds the largest) give its largest count among "all the others" for any hypothesis.
    """
    corpus = _corpus(sequences)
    N = len(corpus)
    if N < 2:
        raise ValueError("self_bleu needs at least two sequences")
    _check_n(max_n)
    if n_hypotheses is None or n_hypotheses >= N:
        chosen = list(range(N))
    else:
        if n_hypotheses < 1:
            raise ValueError(f"n_hypotheses must be >= 1, got {n_hypotheses}")
        r = random.Random(seed)
        for _ in range(max_n - 1 if degen_draw else 0):
            r.sample(range(N), n_hypotheses)
        chosen = r.sample(range(N), n_hypotheses)
    weights = (1.0 / max_n,) * max_n
    counts = [[Counter(_ngrams(t, n)) for n in range(1, max_n + 1)] for t in corpus]
    # per order: n-gram -> [largest count, index of the sequence with it, second largest count]
    top = []
    for n in range(max_n):
        best = {}
        for j, c in enumerate(counts):
            for g, k in c[n].items():
                b = best.get(g)
                if b is None:
                    best[g] = [k, j, 0]
                elif k > b[0]:
                    b[2], b[0], b[1] = b[0], k, j
                elif k > b[2]:
                    b[2] = k
        top.append(best)
    lens = np.array([len(t) for t in corpus])
    scores = []
    for i in chosen:
        nums, dens = [], []
        for n in range(max_n):
            num = 0
            for g, k in counts[i][n].items():
                c1, j1, c2 = top[n][g]
                num += min(k, c2 if j1 == i else c1)
            nums.append(num)
            dens.append(max(1, sum(counts[i][n].values())))
        others = np.delete(lens, i)
        scores.append(_bleu_from_counts(nums, dens, int(lens[i]), _closest_ref_length(others.tolist(), int(lens[i])),
                                        weights, epsilon))
    return float(np.mean(scores))


# ----------------------------------------------------------------------------------------------------
# Zipf
# ----------------------------------------------------------------------------------------------------

def zipf_coefficient(sequences, *, top: int = 5000) -> float:
    """Zipf exponent s of the corpus' token frequencies (Holtzman et al. 2020, degen metrics/zipf.py):
    count every token, sort counts descending, keep the top `top` ranks, fit log(count) = a - s log(rank)
    by ordinary least squares (scipy.stats.linregress there) and return s."""
    counts = Counter()
    for toks in _corpus(sequences):
        counts.update(toks)
    if top < 2:
        raise ValueError(f"top must be >= 2, got {top}")
    ys = np.array(sorted(counts.values(), reverse=True)[:top], dtype=np.float64)
    if len(ys) < 2:
        raise ValueError("zipf_coefficient needs at least two distinct tokens")
    x = np.log(np.arange(1, len(ys) + 1, dtype=np.float64))
    y = np.log(ys)
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc * xc).sum())
    return -slope
