"""tfm.sampling: every transformers-equivalent processor against the transformers class, sampling
statistics, seeds, and input validation. (llama.cpp samplers: test_samplers_llama.py.)

Parity means: the same removed set (identical -inf positions) and finite values within 1e-6
(relative to max(1, |value|)). Two things are arranged rather than assumed:
  * inputs at V = 50257 are checked to lie off float32 boundaries (a cumulative sum within ~1e-6
    of its threshold can go either way under a different exp/summation order);
  * equal logits straddling a top-p / min-p / typical cut are resolved by torch.sort, which is
    not stable on CPU; we compare with transformers run with a stable sort (our documented rule),
    and with plain transformers up to which members of the tied group survive.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats
from transformers.generation import logits_process as LP

import tfm.sampling as S

V_BIG = 50257


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def logits(seed, B, V, scale=1.0, n_inf=0):
    """Gaussian logits; row 0 gets n_inf entries at -inf."""
    r = np.random.default_rng(seed)
    z = (r.standard_normal((B, V)) * scale).astype(np.float32)
    if n_inf:
        z[0, r.choice(V, n_inf, replace=False)] = -np.inf
    return z


def hf(proc, z, ids=None):
    t = torch.from_numpy(np.array(z, dtype=np.float32, copy=True))
    if ids is None:
        ids = np.zeros((z.shape[0], 1), dtype=np.int64)
    return proc(torch.from_numpy(np.asarray(ids, dtype=np.int64)), t).numpy()


def assert_same(ours, ref, what=""):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    mo, mr = np.isneginf(ours), np.isneginf(ref)
    diff = np.argwhere(mo != mr)
    assert diff.size == 0, f"{what}: removed sets differ at {diff[:10].tolist()} ({len(diff)} entries)"
    fin = ~mr
    err = np.abs(ours[fin] - ref[fin]) / np.maximum(1.0, np.abs(ref[fin]))
    assert err.size == 0 or err.max() <= 1e-6, f"{what}: max relative difference {err.max():.3g}"


class stable_torch_sort:
    """Context: torch.sort / torch.argsort forced stable (our documented tie rule)."""

    def __enter__(self):
        self.sort, self.argsort = torch.sort, torch.argsort
        sort, argsort = self.sort, self.argsort
        torch.sort = lambda x, dim=-1, descending=False, **kw: sort(x, dim=dim, descending=descending, stable=True)
        torch.argsort = lambda x, dim=-1, descending=False, **kw: argsort(x, dim=dim, descending=descending,
                                                                           stable=True)

    def __exit__(self, *exc):
        torch.sort, torch.argsort = self.sort, self.argsort


def top_p_margin(z, p):
    """Smallest distance, over rows, of transformers' decisive cumulative sums (the last removed
    and the first kept entry) from float32(1 - p)."""
    thr = np.float32(1 - p)
    out = []
    for row in z:
        c = torch.sort(torch.from_numpy(row.copy()))[0].softmax(-1).cumsum(-1).numpy()
        i = int(np.searchsorted(c, thr, side="right"))
        out += [float(thr) - float(c[i - 1])] if i > 0 else []
        out += [float(c[i]) - float(thr)] if i < len(c) else []
    return min(out)


def typical_margin(z, mass):
    """Distance of transformers' decisive cumulative sums from `mass`, and the gap between the cut's
    distance |−log p − H| and its neighbours (H itself is only float32-exact to ~1e-6)."""
    out = []
    for row in z:
        t = torch.from_numpy(row.copy())
        lp = torch.log_softmax(t, -1)
        ent = -(lp * lp.exp()).nansum()
        d, idx = torch.sort((-lp - ent).abs())
        c = t[idx].softmax(-1).cumsum(-1).numpy()
        d = d.numpy().astype(np.float64)
        i = min(int((c < mass).sum()), len(c) - 1)
        out += [mass - float(c[i - 1])] if i > 0 else []
        out += [float(c[i]) - mass]
        out += [(d[i + 1] - d[i]) / 5] if i + 1 < len(d) and np.isfinite(d[i + 1]) else []
        out += [(d[i] - d[i - 1]) / 5] if i > 0 else []
    return min(out)


def off_boundary(z, value, margin_fn, need=1e-6):
    """The first of value, value ± 1e-4, ± 2e-4, … whose decisive sums lie ≥ need from the cut."""
    for k in range(200):
        v = value + (k // 2 + 1) * 1e-4 * (1 if k % 2 else -1) if k else value
        if margin_fn(z, v) > need:
            return v
    raise AssertionError("no off-boundary parameter near %g" % value)


# ---------------------------------------------------------------------------------------------
# warpers vs transformers
# ---------------------------------------------------------------------------------------------
WARPERS = [
    ("top_k", lambda z, v, mk: S.top_k(z, v, mk), lambda v, mk: LP.TopKLogitsWarper(v, min_tokens_to_keep=mk),
     [1, 5, 40, 150, 5000]),  # small k: heap selection; large k: radix selection
    ("top_p", lambda z, v, mk: S.top_p(z, v, mk), lambda v, mk: LP.TopPLogitsWarper(v, min_tokens_to_keep=mk),
     [0.3, 0.8, 0.95]),
    ("min_p", lambda z, v, mk: S.min_p(z, v, mk), lambda v, mk: LP.MinPLogitsWarper(v, min_tokens_to_keep=mk),
     [0.02, 0.2, 0.9]),
    ("typical", lambda z, v, mk: S.typical(z, v, mk), lambda v, mk: LP.TypicalLogitsWarper(v, min_tokens_to_keep=mk),
     [0.2, 0.9]),
    ("epsilon", lambda z, v, mk: S.epsilon(z, v, mk), lambda v, mk: LP.EpsilonLogitsWarper(v, min_tokens_to_keep=mk),
     [3e-4, 0.05]),
    ("eta", lambda z, v, mk: S.eta(z, v, mk), lambda v, mk: LP.EtaLogitsWarper(v, min_tokens_to_keep=mk),
     [3e-4, 0.05]),
]


@pytest.mark.parametrize("name,ours,theirs,values", WARPERS, ids=[w[0] for w in WARPERS])
@pytest.mark.parametrize("V,scale,n_inf", [(7, 1.0, 2), (300, 2.0, 60), (V_BIG, 3.0, 5000)])
@pytest.mark.parametrize("min_keep", [1, 3])
def test_warper_matches_transformers(name, ours, theirs, values, V, scale, n_inf, min_keep):
    for seed in (0, 1):
        z = logits(seed, 3, V, scale, n_inf)
        for v in values:
            if V == V_BIG and name in ("top_p", "typical"):  # keep off exact float boundaries
                v = off_boundary(z, v, top_p_margin if name == "top_p" else typical_margin)
            before = z.copy()
            assert_same(ours(z, v, min_keep), hf(theirs(v, min_keep), z), f"{name}={v} V={V} seed={seed}")
            assert np.array_equal(before, z, equal_nan=True), "the input was modified"


def test_top_p_wide_nucleus_flat_distribution():
    """Nearly flat logits at V = 50257: the kept set runs to tens of thousands of tokens, so the cut
    is found by mass selection, not in the selected head."""
    z = logits(7, 2, V_BIG, 0.5)
    for p in (0.2, 0.7, 0.97):
        p = off_boundary(z, p, top_p_margin, 2e-7)  # cumulative steps are ~2e-5 here
        out = S.top_p(z, p)
        assert_same(out, hf(LP.TopPLogitsWarper(p), z), f"top_p={p}")
        assert np.isfinite(out).sum(axis=1).min() > 1000


def test_typical_large_vocabulary_off_boundary():
    z = logits(3, 2, V_BIG, 1.0, 1000)  # a flat distribution: the kept set is large
    for m in (0.5, 0.9):
        m = off_boundary(z, m, typical_margin)
        out = S.typical(z, m, 2)
        assert_same(out, hf(LP.TypicalLogitsWarper(m, min_tokens_to_keep=2), z))
        assert np.isfinite(out).sum(1).min() > 1000


def test_filters_after_top_k_at_full_vocabulary():
    """After top-k the row is mostly -inf: later filters and the sampler work on the compacted
    finite entries only."""
    z = logits(24, 3, V_BIG, 2.0)
    ours = S.Chain([S.TopK(100), S.Temperature(0.7), S.TopP(0.8), S.MinP(0.02), S.Typical(0.95), S.Epsilon(1e-3),
                    S.Eta(1e-3)])
    theirs = LP.LogitsProcessorList([LP.TopKLogitsWarper(100), LP.TemperatureLogitsWarper(0.7),
                                     LP.TopPLogitsWarper(0.8), LP.MinPLogitsWarper(0.02),
                                     LP.TypicalLogitsWarper(0.95), LP.EpsilonLogitsWarper(1e-3),
                                     LP.EtaLogitsWarper(1e-3)])
    out = ours(z)
    assert_same(out, hf(theirs, z))
    ref = hf(theirs, z).astype(np.float64)
    draws = S.sample(out, seed=8, num_samples=N_DRAWS)
    for b in range(3):
        kept = np.isfinite(ref[b])
        assert kept[draws[b]].all()
        q = np.exp(ref[b][kept] - ref[b][kept].max())
        p = chisquare_pooled(np.bincount(draws[b], minlength=V_BIG)[kept], q / q.sum() * N_DRAWS)
        assert p > 1e-3, f"row {b}: chi-square p = {p:.2e}"


def test_temperature_matches_transformers():
    z = logits(2, 3, 1000, 4.0, 100)
    for t in (0.3, 0.7, 1.0, 2.5):
        assert_same(S.temperature(z, t), hf(LP.TemperatureLogitsWarper(t), z), f"T={t}")


def test_temperature_zero_is_greedy():
    z = np.array([[0.5, 2.0, -1.0, 2.0], [-np.inf, -3.0, -np.inf, -4.0]], dtype=np.float32)
    out = S.temperature(z, 0.0)
    # first maximum of each row survives unchanged, everything else is -inf
    assert out[0, 1] == 2.0 and np.isneginf(out[0, [0, 2, 3]]).all()
    assert out[1, 1] == -3.0 and np.isneginf(out[1, [0, 2, 3]]).all()


def test_log_softmax_matches_logit_normalization():
    z = logits(4, 3, V_BIG, 2.0, 500)
    assert_same(S.log_softmax(z), hf(LP.LogitNormalization(), z))
    p = S.softmax(z)
    ref = torch.softmax(torch.from_numpy(z), -1).numpy()
    assert np.max(np.abs(p - ref)) < 1e-7 and np.all(p[np.isneginf(z)] == 0)


def test_min_tokens_to_keep_larger_than_finite_set():
    z = np.full((2, 10), -np.inf, dtype=np.float32)
    z[0, [2, 5]] = [1.0, 3.0]
    z[1, [7]] = [0.0]
    for name, ours, theirs, values in WARPERS:
        v = values[0]
        assert_same(ours(z, v, 5), hf(theirs(v, 5), z), name)


# ---------------------------------------------------------------------------------------------
# ties
# ---------------------------------------------------------------------------------------------
def test_top_k_keeps_every_tie_at_the_threshold():
    z = np.array([[3.0, 1.0, 2.0, 2.0, 2.0, 0.5, 2.0, -1.0]], dtype=np.float32)
    out = S.top_k(z, 2)
    # the 2nd largest value is 2.0 and four entries hold it: 1 + 4 = 5 survive
    assert np.isfinite(out).sum() == 5
    assert_same(out, hf(LP.TopKLogitsWarper(2), z))


def tie_rows(V, seed):
    """Rows with groups of exactly equal logits placed around a top-p / min-p / typical cut."""
    r = np.random.default_rng(seed)
    z = r.standard_normal((4, V)).astype(np.float32)
    for b in range(4):
        order = np.argsort(-z[b])
        group = order[5 + 3 * b: 40 + 5 * b]  # a block of equal values around the head
        z[b, group] = z[b, order[5 + 3 * b]]
    z[3] = 0.25  # all equal
    return z


@pytest.mark.parametrize("V", [50, 2000])
def test_ties_at_the_cut_follow_a_stable_sort(V):
    z = tie_rows(V, 5)
    cases = [(lambda a: S.top_p(a, 0.5), LP.TopPLogitsWarper(0.5)),
             (lambda a: S.top_p(a, 0.2, 4), LP.TopPLogitsWarper(0.2, min_tokens_to_keep=4)),
             (lambda a: S.min_p(a, 0.9, 7), LP.MinPLogitsWarper(0.9, min_tokens_to_keep=7)),
             (lambda a: S.typical(a, 0.3, 9), LP.TypicalLogitsWarper(0.3, min_tokens_to_keep=9)),
             (lambda a: S.epsilon(a, 0.02, 6), LP.EpsilonLogitsWarper(0.02, min_tokens_to_keep=6)),
             (lambda a: S.top_k(a, 10, 3), LP.TopKLogitsWarper(10, min_tokens_to_keep=3))]
    for ours, theirs in cases:
        out = ours(z)
        with stable_torch_sort():
            ref_stable = hf(theirs, z)
        assert_same(out, ref_stable, type(theirs).__name__)
        # plain transformers (unstable sort): same number kept per row, and the same entries
        # outside groups of equal values
        ref = hf(theirs, z)
        assert np.array_equal(np.isfinite(out).sum(1), np.isfinite(ref).sum(1))
        for b in range(z.shape[0]):
            vals, counts = np.unique(z[b], return_counts=True)
            single = np.isin(z[b], vals[counts == 1])
            assert np.array_equal(np.isfinite(out[b])[single], np.isfinite(ref[b])[single])


def test_top_p_tie_rule_written_out():
    # p = softmax([1, 1, 1, 1, 0]) = (e, e, e, e, 1) / (4e + 1) = 0.2289 (x4), 0.0842. Ascending,
    # equal values by id: token 4, then 0, 1, 2, 3; cumulative 0.0842, 0.3131, 0.5420, 0.7710, 1.
    # top_p = 0.5 removes cumulative <= 0.5: tokens 4 and 0 — of the tied tokens the lowest id goes.
    z = np.array([1.0, 1.0, 1.0, 1.0, 0.0], dtype=np.float32)
    out = S.top_p(z, 0.5)
    assert np.isfinite(out).tolist() == [False, True, True, True, False]
    # top_p = 0.6 removes cumulative <= 0.4: tokens 4 and 0 again; 0.7 (<= 0.3): token 4 only
    assert np.isfinite(S.top_p(z, 0.6)).tolist() == [False, True, True, True, False]
    assert np.isfinite(S.top_p(z, 0.7)).tolist() == [True, True, True, True, False]


@pytest.mark.parametrize("V", [500, 3000])
def test_all_equal_logits(V):
    z = np.zeros((2, V), dtype=np.float32)
    for name, ours, theirs, values in WARPERS:
        for v in values:
            with stable_torch_sort():
                assert_same(ours(z, v, 2), hf(theirs(v, 2), z), f"{name}={v}")


# ---------------------------------------------------------------------------------------------
# penalties and constraints vs transformers
# ---------------------------------------------------------------------------------------------
def history(seed, B, L, V, pattern=None):
    r = np.random.default_rng(seed)
    ids = r.integers(0, V, (B, L))
    if pattern is not None:
        ids[:, : len(pattern)] = pattern
        ids[:, -len(pattern) + 1:] = pattern[:-1]
    return ids


@pytest.mark.parametrize("V", [13, V_BIG])
def test_repetition_penalty(V):
    z = logits(8, 3, V, 3.0, 2)
    ids = history(8, 3, 40, min(V, 20))  # repeats inside the history
    for pen in (0.7, 1.0, 1.3, 2.0):
        assert_same(S.repetition_penalty(z, ids, pen), hf(LP.RepetitionPenaltyLogitsProcessor(pen), z, ids))
    assert_same(S.repetition_penalty(z, ids, 1.5, prompt_ignore_length=10),
                hf(LP.RepetitionPenaltyLogitsProcessor(1.5, prompt_ignore_length=10), z, ids))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_no_repeat_ngram(n):
    V = 11
    z = logits(9, 4, V, 1.0)
    ids = history(9, 4, 30, 6, pattern=[1, 2, 3, 4])  # the prefix n-grams recur at the end
    out = S.no_repeat_ngram(z, ids, n)
    assert_same(out, hf(LP.NoRepeatNGramLogitsProcessor(n), z, ids))
    assert np.isneginf(out).any()
    short = ids[:, : n - 1] if n > 1 else ids[:, :0]
    if short.shape[1] >= 1 or n == 1:
        assert_same(S.no_repeat_ngram(z, short if short.shape[1] else ids[:, :1], n),
                    hf(LP.NoRepeatNGramLogitsProcessor(n), z, short if short.shape[1] else ids[:, :1]))


def test_bad_words():
    V = 20
    z = logits(10, 3, V, 2.0)
    ids = np.array([[1, 2, 3, 4], [5, 6, 1, 2], [7, 7, 7, 7]])
    bad = [[3], [1, 2, 9], [7, 7, 8], [19], [4, 5, 6, 7, 8, 9]]  # the last is longer than the context
    out = S.bad_words(z, ids, bad, eos_token_id=19)
    assert_same(out, hf(LP.NoBadWordsLogitsProcessor(bad, eos_token_id=19), z, ids))
    # row 1 ends with (1, 2): 9 banned; row 2 ends with (7, 7): 8 banned; [19] dropped as EOS
    assert np.isneginf(out[1, 9]) and np.isneginf(out[2, 8]) and not np.isneginf(out[0, 9])
    assert np.isfinite(out[:, 19]).all()


def test_sequence_bias_accumulates_like_transformers():
    V = 15
    z = logits(11, 3, V, 1.0, 3)
    ids = np.array([[1, 2, 3], [4, 2, 3], [3, 3, 3]])
    bias = {(5,): 1.5, (2, 3, 7): -2.0, (3, 7): 0.75, (3,): -0.5, (9, 9, 9, 9): 4.0, (1, 2, 3, 6): 2.25}
    want = hf(LP.SequenceBiasLogitsProcessor([[list(k), v] for k, v in bias.items()]), z, ids)
    assert_same(S.sequence_bias(z, ids, bias), want)
    assert_same(S.sequence_bias(z, ids, [[list(k), v] for k, v in bias.items()]), want)
    # token 7 after (2, 3): -2.0 + 0.75 in rows 0 and 1, only +0.75 in row 2
    np.testing.assert_allclose(S.sequence_bias(z, ids, bias)[:, 7] - z[:, 7], [-1.25, -1.25, 0.75], rtol=1e-6)


def test_suppress_and_min_length():
    V = 12
    z = logits(12, 2, V, 1.0)
    assert_same(S.suppress_tokens(z, [0, 3, 11]), hf(LP.SuppressTokensLogitsProcessor([0, 3, 11]), z))
    ids = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    for ml in (3, 5, 6, 9):
        assert_same(S.min_length(z, ids, ml, [2, 7]), hf(LP.MinLengthLogitsProcessor(ml, [2, 7]), z, ids))
    for prompt, mn in ((2, 2), (2, 3), (2, 4), (4, 0), (5, 1)):
        assert_same(S.min_new_tokens(z, ids, prompt, mn, 7),
                    hf(LP.MinNewTokensLengthLogitsProcessor(prompt, mn, 7), z, ids))


def test_processor_list_matches_transformers_chain():
    V = 400
    z = logits(13, 3, V, 2.0, 30)
    ids = history(13, 3, 25, 60)
    ours = S.Chain([S.RepetitionPenalty(1.2), S.NoRepeatNGram(2), S.SuppressTokens([5]),
                    S.Temperature(0.8), S.TopK(50), S.TopP(0.9), S.MinP(0.05)])
    theirs = LP.LogitsProcessorList([LP.RepetitionPenaltyLogitsProcessor(1.2), LP.NoRepeatNGramLogitsProcessor(2),
                                     LP.SuppressTokensLogitsProcessor([5]), LP.TemperatureLogitsWarper(0.8),
                                     LP.TopKLogitsWarper(50), LP.TopPLogitsWarper(0.9), LP.MinPLogitsWarper(0.05)])
    assert_same(ours(z, ids), hf(theirs, z, ids))
    text = ours.describe()
    assert "RepetitionPenalty(penalty=1.2" in text and "TopP(top_p=0.9" in text and text.count("\n") == 6


# ---------------------------------------------------------------------------------------------
# trace info
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [lambda z: S.top_k(z, 7, return_info=True), lambda z: S.top_p(z, 0.6, return_info=True),
                                lambda z: S.min_p(z, 0.1, return_info=True),
                                lambda z: S.typical(z, 0.5, return_info=True),
                                lambda z: S.epsilon(z, 0.01, return_info=True),
                                lambda z: S.eta(z, 0.01, return_info=True),
                                lambda z: S.top_n_sigma(z, 1.0, return_info=True)])
def test_filter_info_reports_kept_count_and_mass(fn):
    z = logits(14, 3, 200, 2.0, 20)
    out, info = fn(z)
    p = np.exp(z.astype(np.float64) - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    kept = np.isfinite(out)
    assert np.array_equal(info.kept, kept.sum(1))
    np.testing.assert_allclose(info.mass, (p * kept).sum(1), rtol=1e-6)
    out1, info1 = fn(z[1])  # 1-D input: scalar info
    assert info1.kept.shape == () and int(info1.kept) == kept[1].sum()


# ---------------------------------------------------------------------------------------------
# sampling: distribution, kept set, seeds
# ---------------------------------------------------------------------------------------------
N_DRAWS = 20000
FILTERS = [("none", lambda z: z, None),
           ("temperature", lambda z: S.temperature(z, 0.6), LP.TemperatureLogitsWarper(0.6)),
           ("top_k", lambda z: S.top_k(z, 9), LP.TopKLogitsWarper(9)),
           ("top_p", lambda z: S.top_p(z, 0.7), LP.TopPLogitsWarper(0.7)),
           ("min_p", lambda z: S.min_p(z, 0.15), LP.MinPLogitsWarper(0.15)),
           ("typical", lambda z: S.typical(z, 0.6), LP.TypicalLogitsWarper(0.6)),
           ("epsilon", lambda z: S.epsilon(z, 0.02), LP.EpsilonLogitsWarper(0.02)),
           ("eta", lambda z: S.eta(z, 0.02), LP.EtaLogitsWarper(0.02)),
           ("top_n_sigma", lambda z: S.top_n_sigma(z, 1.0), None),
           ("chain", lambda z: S.top_p(S.top_k(S.temperature(z, 0.8), 12), 0.9),
            LP.LogitsProcessorList([LP.TemperatureLogitsWarper(0.8), LP.TopKLogitsWarper(12),
                                    LP.TopPLogitsWarper(0.9)]))]


def chisquare_pooled(observed, expected):
    """Pearson chi-square p-value, categories with expected count < 5 pooled into one."""
    small = expected < 5
    obs = np.append(observed[~small], observed[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if exp[-1] < 5:  # nothing (or too little) to pool: fold it into the smallest category
        obs, exp = obs[:-1], exp[:-1]
        obs[np.argmin(exp)] += observed[small].sum()
        exp[np.argmin(exp)] += expected[small].sum()
    assert len(exp) >= 2 or len(expected) == 1
    return stats.chisquare(obs, exp).pvalue if len(exp) >= 2 else 1.0


@pytest.mark.parametrize("name,ours,theirs", FILTERS, ids=[f[0] for f in FILTERS])
def test_sampling_frequencies_match_the_filtered_distribution(name, ours, theirs):
    z = logits(15, 2, 30, 1.2, 4)
    f = ours(z)
    if theirs is not None:
        assert_same(f, hf(theirs, z))  # the expected distribution comes from transformers' filter
        f_ref = hf(theirs, z).astype(np.float64)
    else:
        f_ref = f.astype(np.float64)
    draws = S.sample(f, seed=1234, num_samples=N_DRAWS)
    assert draws.shape == (2, N_DRAWS) and draws.dtype == np.int64
    for b in range(2):
        kept = np.isfinite(f_ref[b])
        assert kept[draws[b]].all(), f"{name}: drew a removed token"
        q = np.exp(f_ref[b][kept] - f_ref[b][kept].max())
        expected = q / q.sum() * N_DRAWS
        observed = np.bincount(draws[b], minlength=30)[kept]
        p = chisquare_pooled(observed, expected)
        assert p > 1e-3, f"{name} row {b}: chi-square p = {p:.2e}"


def test_sampling_from_probabilities_and_without_replacement():
    w = np.array([0.0, 3.0, 1.0, 0.0, 6.0], dtype=np.float32)  # unnormalised weights
    d = S.sample(w, seed=3, num_samples=N_DRAWS, probs=True)
    obs = np.bincount(d, minlength=5)
    assert obs[0] == 0 and obs[3] == 0
    assert stats.chisquare(obs[[1, 2, 4]], np.array([0.3, 0.1, 0.6]) * N_DRAWS).pvalue > 1e-3
    # without replacement: distinct tokens, and the first draw still follows the weights
    z = np.log(np.array([0.5, 0.2, 0.2, 0.1], dtype=np.float32))
    rows = np.tile(z, (N_DRAWS, 1))
    d = S.sample(rows, seed=4, num_samples=3, replacement=False)
    assert all(len(set(r)) == 3 for r in d[:200])
    assert stats.chisquare(np.bincount(d[:, 0], minlength=4), np.array([0.5, 0.2, 0.2, 0.1]) * N_DRAWS).pvalue > 1e-3
    # second draw given first = 0: proportional to the remaining weights (0.2, 0.2, 0.1)
    second = d[d[:, 0] == 0, 1]
    exp = np.array([0.4, 0.4, 0.2]) * len(second)
    assert stats.chisquare(np.bincount(second, minlength=4)[1:], exp).pvalue > 1e-3
    with pytest.raises(ValueError, match="num_samples"):
        S.sample(z, seed=0, num_samples=5, replacement=False)


def test_gumbel_max_is_a_softmax_draw():
    z = np.log(np.array([0.1, 0.4, 0.25, 0.25], dtype=np.float32))
    z[2] = -np.inf  # and −inf stays −inf
    g = S.gumbel_noise(np.tile(z, (N_DRAWS, 1)), seed=5)
    assert np.isneginf(g[:, 2]).all() and np.isfinite(g[:, [0, 1, 3]]).all()
    counts = np.bincount(g.argmax(1), minlength=4)
    assert counts[2] == 0
    assert stats.chisquare(counts[[0, 1, 3]], np.array([0.1, 0.4, 0.25]) / 0.75 * N_DRAWS).pvalue > 1e-3


def test_generator_uniform_and_gumbel_statistics():
    g = S.Generator(11, batch=2)
    u = g.uniform(50000)
    assert u.shape == (2, 50000) and (u >= 0).all() and (u < 1).all()
    assert stats.kstest(u[0], "uniform").pvalue > 1e-3 and stats.kstest(u[1], "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(u[0], u[1])[0, 1]) < 0.03  # the two rows are separate streams
    from tfm import _tfmcore
    gum = _tfmcore.rng_uniform(S.Generator(12).state, 50000, gumbel=True)[0]
    assert stats.kstest(gum, "gumbel_r").pvalue > 1e-3


def test_same_seed_same_draws_different_seeds_differ():
    z = logits(16, 3, 500, 1.0)
    a = S.sample(z, seed=42, num_samples=50)
    b = S.sample(z, seed=42, num_samples=50)
    c = S.sample(z, seed=43, num_samples=50)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[0], a[1])  # rows are separate streams


def test_draws_do_not_depend_on_batch_composition():
    z = logits(17, 4, 300, 1.0)
    seeds = [101, 202, 303, 404]
    full = S.sample(z, seed=seeds, num_samples=20)
    for b in range(4):
        alone = S.sample(z[b], seed=[seeds[b]], num_samples=20)
        assert np.array_equal(full[b], alone)
    # an int seed gives row b the stream (seed, b): changing the other rows changes nothing
    other = z.copy()
    other[[0, 1, 3]] = logits(18, 3, 300, 1.0)
    assert np.array_equal(S.sample(z, seed=9, num_samples=20)[2], S.sample(other, seed=9, num_samples=20)[2])
    # a generator continues its streams; a copy replays them
    g = S.Generator(seeds)
    g2 = g.copy()
    first, second = S.sample(z, generator=g), S.sample(z, generator=g)
    assert np.array_equal(first, S.sample(z, generator=g2))
    assert np.array_equal(second, S.sample(z, generator=g2))


def test_argmax_and_top_indices():
    z = np.array([[1.0, 3.0, 3.0, -np.inf, 2.0], [-np.inf] * 5], dtype=np.float32)
    assert S.argmax(z).tolist() == [1, 0]  # first maximum; torch returns 0 for an all -inf row
    assert S.argmax(z[0]) == 1
    big = logits(19, 2, V_BIG, 1.0)
    big[:, 100:110] = 5.0  # ties: lower index first
    for b in range(2):
        want = np.argsort(-big[b], kind="stable")[:50]
        assert np.array_equal(S.top_indices(big, 50)[b], want)


# ---------------------------------------------------------------------------------------------
# input handling and validation
# ---------------------------------------------------------------------------------------------
def test_dtypes_shapes_and_no_mutation():
    z64 = logits(20, 2, 50, 1.0).astype(np.float64)
    out = S.top_k(z64, 5)
    assert out.dtype == np.float32 and out.shape == (2, 50)
    assert_same(out, S.top_k(z64.astype(np.float32), 5))
    assert S.top_k(z64[0].astype(np.float16), 5).shape == (50,)
    with pytest.raises(TypeError, match="floating-point"):
        S.top_k(np.arange(10), 3)
    with pytest.raises(ValueError, match="shape"):
        S.top_k(np.zeros((2, 2, 3), np.float32), 1)


def test_nan_and_pos_inf_logits_are_refused():
    z = logits(21, 2, 10, 1.0)
    z[1, 4] = np.nan
    with pytest.raises(ValueError, match=r"NaN at row 1, index 4"):
        S.top_p(z, 0.9)
    z[1, 4] = np.inf
    with pytest.raises(ValueError, match=r"\+inf at row 1, index 4"):
        S.sample(z, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        S.softmax(np.array([0.0, np.nan], np.float32))


def test_all_neg_inf_row():
    z = np.full((2, 6), -np.inf, dtype=np.float32)
    z[1] = np.arange(6)
    for fn in (lambda a: S.top_p(a, 0.5), lambda a: S.top_k(a, 2), lambda a: S.min_p(a, 0.5),
               lambda a: S.typical(a, 0.5), lambda a: S.epsilon(a, 0.1), lambda a: S.eta(a, 0.1)):
        assert np.isneginf(fn(z)[0]).all()  # left as it is
    with pytest.raises(ValueError, match="row 0"):
        S.sample(z, seed=0)
    with pytest.raises(ValueError, match="row 0 is all -inf"):
        S.softmax(z)


BAD = [
    (lambda z: S.top_p(z, 0.0), "top_p"), (lambda z: S.top_p(z, 1.5), "top_p"), (lambda z: S.top_p(z, math.nan), "top_p"),
    (lambda z: S.top_k(z, -1), "top_k"), (lambda z: S.top_k(z, 2.5), "top_k"),
    (lambda z: S.temperature(z, -0.5), "temperature"), (lambda z: S.temperature(z, math.nan), "temperature"),
    (lambda z: S.min_p(z, 1.5), "min_p"), (lambda z: S.min_p(z, -0.1), "min_p"),
    (lambda z: S.typical(z, 0.0), "typical_p"), (lambda z: S.typical(z, 1.1), "typical_p"),
    (lambda z: S.epsilon(z, 1.0), "epsilon_cutoff"), (lambda z: S.epsilon(z, -1e-3), "epsilon_cutoff"),
    (lambda z: S.eta(z, 1.0), "eta_cutoff"), (lambda z: S.eta(z, math.nan), "eta_cutoff"),
    (lambda z: S.top_n_sigma(z, 0.0), "top_n_sigma"),
    (lambda z: S.top_k(z, 5, min_tokens_to_keep=0), "min_tokens_to_keep"),
    (lambda z: S.repetition_penalty(z, [[1, 2]], 0.0), "repetition_penalty"),
    (lambda z: S.repetition_penalty(z, [[1, 2]], -1.0), "repetition_penalty"),
    (lambda z: S.repetition_penalty(z, [[1, 99]], 1.2), "input_ids"),
    (lambda z: S.no_repeat_ngram(z, [[1, 2]], 0), "ngram_size"),
    (lambda z: S.bad_words(z, [[1, 2]], [[3], [10]]), "bad_words_ids"),
    (lambda z: S.bad_words(z, [[1, 2]], [[3, -1]]), "bad_words_ids"),
    (lambda z: S.bad_words(z, [[1, 2]], []), "bad_words_ids"),
    (lambda z: S.sequence_bias(z, [[1, 2]], {(1, 12): 1.0}), "sequence_bias"),
    (lambda z: S.sequence_bias(z, [[1, 2]], {(1,): math.nan}), "sequence_bias"),
    (lambda z: S.suppress_tokens(z, [10]), "suppress_tokens"),
    (lambda z: S.min_length(z, [[1, 2]], 5, 10), "eos_token_id"),
    (lambda z: S.sample(z, seed=0, num_samples=0), "num_samples"),
]


@pytest.mark.parametrize("call,param", BAD, ids=[f"{p}-{i}" for i, (_, p) in enumerate(BAD)])
def test_bad_parameters_raise_value_error_naming_the_parameter(call, param):
    z = logits(22, 1, 10, 1.0)
    with pytest.raises(ValueError, match=param):
        call(z)


def test_objects_validate_at_construction_and_describe_themselves():
    with pytest.raises(ValueError, match="top_p"):
        S.TopP(1.2)
    with pytest.raises(ValueError, match="top_k"):
        S.TopK(-3)
    with pytest.raises(ValueError, match="temperature"):
        S.Temperature(-1.0)
    with pytest.raises(ValueError, match="min_tokens_to_keep"):
        S.MinP(0.1, min_tokens_to_keep=0)
    assert repr(S.TopP(0.9, 2)) == "TopP(top_p=0.9, min_tokens_to_keep=2)"
    with pytest.raises(ValueError, match="needs input_ids"):
        S.RepetitionPenalty(1.1)(np.zeros(5, np.float32))
    z = logits(23, 2, 40, 1.0)
    chain = S.Chain([S.Temperature(0.5), S.TopK(10)])
    assert_same(chain(z), S.top_k(S.temperature(z, 0.5), 10))
    assert np.array_equal(chain.sample(z, seed=3), S.sample(chain(z), seed=3))


def test_module_docstring_example_runs():
    import doctest

    assert doctest.testmod(S).failed == 0
