"""llama.cpp samplers (top-n-sigma, frequency/presence penalties, XTC, DRY, mirostat v1/v2) on 4-10
token distributions whose outcome is worked out by hand in each test (reference/decoding.md §4.3).
The arithmetic is written out, not produced by the code under test."""
import math

import numpy as np
import pytest
from scipy import stats

import tfm.sampling as S

N = 20000


def log(p):
    return np.log(np.asarray(p, dtype=np.float64)).astype(np.float32)


def kept(z):
    return np.flatnonzero(np.isfinite(z)).tolist()


# ---------------------------------------------------------------------------------------------
# top-n-sigma
# ---------------------------------------------------------------------------------------------
def test_top_n_sigma_by_hand():
    z = np.array([1.0, 2.0, 3.0, 4.0, 5.0, -np.inf], dtype=np.float32)
    # finite: mean 3, population variance (4+1+0+1+4)/5 = 2, sigma = 1.41421
    # n = 1: keep z >= 5 - 1.41421 = 3.58579 -> {4, 5}; n = 1.5: >= 2.87868 -> {3, 4, 5}
    assert kept(S.top_n_sigma(z, 1.0)) == [3, 4]
    assert kept(S.top_n_sigma(z, 1.5)) == [2, 3, 4]
    assert kept(S.top_n_sigma(z, 3.0)) == [0, 1, 2, 3, 4]  # 5 - 4.243 = 0.757 keeps all
    # kept entries keep their values; and the filter is invariant to temperature (a scale)
    assert S.top_n_sigma(z, 1.0)[3] == 4.0
    assert kept(S.top_n_sigma(z * 0.25, 1.0)) == [3, 4]


# ---------------------------------------------------------------------------------------------
# frequency / presence
# ---------------------------------------------------------------------------------------------
def test_frequency_presence_by_hand():
    z = np.array([1.0, 1.0, 1.0, 1.0], dtype=np.float32)
    ids = [1, 1, 2, 1, 3]
    # counts: token 1 x3, token 2 x1, token 3 x1; z_v -= c*0.5 + [c>0]*0.25
    out = S.frequency_presence_penalty(z, ids, frequency_penalty=0.5, presence_penalty=0.25)
    np.testing.assert_allclose(out, [1.0, 1.0 - 1.75, 1.0 - 0.75, 1.0 - 0.75], rtol=1e-6)
    # last_n = 2 only sees [1, 3]: token 1 x1, token 3 x1
    out = S.frequency_presence_penalty(z, ids, 0.5, 0.25, last_n=2)
    np.testing.assert_allclose(out, [1.0, 0.25, 1.0, 0.25], rtol=1e-6)
    # batch rows have their own histories
    out = S.frequency_presence_penalty(np.stack([z, z]), [[0, 0], [3, 2]], 1.0, 0.0)
    np.testing.assert_allclose(out, [[-1.0, 1, 1, 1], [1, 1, 0.0, 0.0]], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# XTC
# ---------------------------------------------------------------------------------------------
def test_xtc_by_hand():
    z = log([0.4, 0.3, 0.2, 0.1])
    # threshold 0.25: tokens 0 (0.4) and 1 (0.3) are above it; all but the least likely of them
    # (token 1) go -> {1, 2, 3}
    assert kept(S.xtc(z, 1.0, 0.25, seed=0)) == [1, 2, 3]
    # threshold 0.15: tokens 0, 1, 2 above; 0 and 1 go -> {2, 3}
    assert kept(S.xtc(z, 1.0, 0.15, seed=0)) == [2, 3]
    # threshold 0.35: only token 0 is above it: nothing to exclude
    assert kept(S.xtc(z, 1.0, 0.35, seed=0)) == [0, 1, 2, 3]
    # min_keep 4: removing one token (0.15 case removes 2) would leave 4 - 2 = 2 < 4: no-op
    assert kept(S.xtc(z, 1.0, 0.15, min_keep=4, seed=0)) == [0, 1, 2, 3]
    # threshold above 0.5 or probability 0 disables it (llama.cpp)
    assert kept(S.xtc(z, 1.0, 0.6, seed=0)) == [0, 1, 2, 3]
    assert kept(S.xtc(z, 0.0, 0.15, seed=0)) == [0, 1, 2, 3]
    # ties among the above-threshold tokens: the highest id is the one kept
    zt = log([0.3, 0.3, 0.3, 0.1])
    assert kept(S.xtc(zt, 1.0, 0.2, seed=0)) == [2, 3]
    out, info = S.xtc(z, 1.0, 0.25, seed=0, return_info=True)
    assert int(info.kept) == 3 and abs(float(info.mass) - 0.6) < 1e-6


def test_xtc_fires_with_its_probability():
    z = np.tile(log([0.4, 0.3, 0.2, 0.1]), (N, 1))
    out = S.xtc(z, 0.3, 0.25, seed=7)  # each row draws once from its own stream
    fired = np.isneginf(out[:, 0])
    assert np.array_equal(np.isneginf(out[:, 1:]).any(1), np.zeros(N, bool))
    assert stats.binomtest(int(fired.sum()), N, 0.3).pvalue > 1e-3


def test_xtc_object_reset_replays_its_draws():
    x = S.XTC(0.5, 0.25, seed=3)
    z = np.tile(log([0.4, 0.3, 0.2, 0.1]), (8, 1))
    a = [np.isneginf(x(z)[:, 0]) for _ in range(5)]
    x.reset()
    b = [np.isneginf(x(z)[:, 0]) for _ in range(5)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert len({tuple(u) for u in a}) > 1  # the stream advances between calls
    assert "XTC(probability=0.5" in repr(x)


# ---------------------------------------------------------------------------------------------
# DRY
# ---------------------------------------------------------------------------------------------
A, B, C, Y, Q = 0, 1, 2, 3, 4  # token names for the examples


def test_dry_by_hand():
    # context a b c c b c y a b c, allowed_length 2, base 1.75, multiplier 1.
    # Repeats of the context's suffix ending at earlier positions:
    #   ending at position 2 (a b c): 3 tokens -> the next token there, c, would make it 4
    #   ending at position 3 (c):     1 token  (< 2, free)
    #   ending at position 5 (b c):   2 tokens -> the next token there, y
    # penalties: c -= 1 * 1.75^(3-2) = 1.75; y -= 1 * 1.75^(2-2) = 1
    ctx = [A, B, C, C, B, C, Y, A, B, C]
    z = np.zeros(5, dtype=np.float32)
    out = S.dry(z, ctx, multiplier=1.0, base=1.75, allowed_length=2)
    np.testing.assert_allclose(out, [0, 0, -1.75, -1.0, 0], rtol=1e-6)
    # multiplier scales linearly; allowed_length 3 frees the 2-token repeat and makes c's 1.75^0
    np.testing.assert_allclose(S.dry(z, ctx, 0.5, 1.75, 2), [0, 0, -0.875, -0.5, 0], rtol=1e-6)
    np.testing.assert_allclose(S.dry(z, ctx, 1.0, 1.75, 3), [0, 0, -1.0, 0, 0], rtol=1e-6)
    # penalty_last_n = 4 sees only y a b c: no earlier c, nothing to penalise
    np.testing.assert_allclose(S.dry(z, ctx, 1.0, 1.75, 2, penalty_last_n=4), 0.0)
    # multiplier 0 or a window of 0 is off
    np.testing.assert_allclose(S.dry(z, ctx, 0.0, 1.75, 2), 0.0)
    np.testing.assert_allclose(S.dry(z, ctx, 1.0, 1.75, 2, penalty_last_n=0), 0.0)


def test_dry_sequence_breakers_by_hand():
    ctx = [A, B, C, C, B, C, Y, A, B, C]
    z = np.zeros(5, dtype=np.float32)
    # y is a breaker 3 tokens from the end: repeats may reach back 3 tokens (a b c) -> unchanged
    # for c (3), and y itself is a single-token breaker, so y is never penalised
    np.testing.assert_allclose(S.dry(z, ctx, 1.0, 1.75, 2, sequence_breakers=[[Y]]), [0, 0, -1.75, 0, 0], rtol=1e-6)
    # b is a breaker 1 token from the end: repeats limited to 1 < allowed 2 -> nothing
    np.testing.assert_allclose(S.dry(z, ctx, 1.0, 1.75, 2, sequence_breakers=[[B]]), 0.0)
    # two-token breaker (a, b): head a 2 from the end with its tail b after it -> limit 2 - 1 = 1
    np.testing.assert_allclose(S.dry(z, ctx, 1.0, 1.75, 2, sequence_breakers=[[A, B]]), 0.0)
    # (a, c) never occurs as such: no limit, the plain result
    np.testing.assert_allclose(S.dry(z, ctx, 1.0, 1.75, 2, sequence_breakers=[[A, C]]), [0, 0, -1.75, -1.0, 0],
                               rtol=1e-6)


def test_dry_exponent_is_clamped():
    # 300 x a: the last 299 tokens repeat the first 299, so a would extend a 299-token repeat;
    # the exponent 299 - 2 = 297 is clamped to
    # floor(88.7228391 / ln 1.75) = floor(158.55) = 158, so the penalty stays finite: 1.75^158
    ctx = [A] * 300
    out = S.dry(np.zeros(3, np.float32), ctx, 1.0, 1.75, 2)
    assert math.floor(88.7228391 / math.log(1.75)) == 158
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[A], -(1.75 ** 158), rtol=1e-5)
    assert out[B] == 0 and out[C] == 0


def test_dry_object_accepts_tokens():
    d = S.DRY(1.0, 1.75, 2)
    for t in [A, B, C, C, B, C, Y, A, B, C]:
        d.accept([t])
    np.testing.assert_allclose(d(np.zeros(5, np.float32)), [0, 0, -1.75, -1.0, 0], rtol=1e-6)
    d.reset()
    np.testing.assert_allclose(d(np.zeros(5, np.float32)), 0.0)


# ---------------------------------------------------------------------------------------------
# mirostat
# ---------------------------------------------------------------------------------------------
P4 = [0.5, 0.25, 0.125, 0.125]


def test_mirostat_v2_by_hand():
    # tau = 1: mu starts at 2; surprises -log2 p = 1, 2, 3, 3 -> keep tokens with <= 2: {0, 1};
    # renormalised 2/3, 1/3. After drawing token 0: mu = 2 - 0.1 * (-log2(2/3) - 1) = 2.04150;
    # after token 1: mu = 2 - 0.1 * (-log2(1/3) - 1) = 1.94150
    m = S.MirostatV2(tau=1.0, eta=0.1, seed=0)
    z = np.tile(log(P4), (N, 1))
    out, tok = m.apply(z)
    assert np.isneginf(out[:, 2:]).all() and np.isfinite(out[:, :2]).all()
    assert set(np.unique(tok)) <= {0, 1}
    mu_after = {0: 2 - 0.1 * (-math.log2(2 / 3) - 1), 1: 2 - 0.1 * (-math.log2(1 / 3) - 1)}
    np.testing.assert_allclose(m.mu, [mu_after[t] for t in tok], rtol=1e-5)
    assert stats.chisquare(np.bincount(tok, minlength=2), [2 / 3 * N, 1 / 3 * N]).pvalue > 1e-3
    # mu below every surprise: only the top token survives
    m2 = S.MirostatV2(tau=0.25, eta=0.1, seed=0)  # mu = 0.5 < 1
    out, tok = m2.apply(log(P4))
    assert kept(out) == [0] and tok == 0
    m2.reset()
    assert m2.mu is None


def test_mirostat_v1_by_hand():
    # Zipf estimate over the sorted p = .5, .25, .125, .125 (m = 100 > 4, so 3 pairs):
    #   t_i = ln((i+2)/(i+1)) = ln 2, ln 1.5, ln(4/3);  b_i = ln(p_i/p_{i+1}) = ln 2, ln 2, 0
    t = [math.log(2), math.log(1.5), math.log(4 / 3)]
    b = [math.log(2), math.log(2), 0.0]
    s_hat = sum(x * y for x, y in zip(t, b)) / sum(x * x for x in t)  # = 1.04660
    eps = s_hat - 1
    n_vocab = 4

    def k_of(mu):
        return ((eps * 2 ** mu) / (1 - n_vocab ** -eps)) ** (1 / s_hat)

    # tau = 1 -> mu = 2 -> k = 2.84: keep the top 2; tau = 1.5 -> mu = 3 -> k = 5.51 >= 4: all
    assert 2 < k_of(2.0) < 3 and k_of(3.0) > 4
    m = S.Mirostat(tau=1.0, eta=0.1, seed=1)
    z = np.tile(log(P4), (N, 1))
    out, tok = m.apply(z)
    assert np.isneginf(out[:, 2:]).all() and np.isfinite(out[:, :2]).all()
    assert stats.chisquare(np.bincount(tok, minlength=2), [2 / 3 * N, 1 / 3 * N]).pvalue > 1e-3
    mu_after = {0: 2 - 0.1 * (-math.log2(2 / 3) - 1), 1: 2 - 0.1 * (-math.log2(1 / 3) - 1)}
    np.testing.assert_allclose(m.mu, [mu_after[t] for t in tok], rtol=1e-5)
    m = S.Mirostat(tau=1.5, eta=0.1, seed=1)
    out, tok = m.apply(log(P4))
    assert kept(out) == [0, 1, 2, 3]
    # surprise of the drawn token under the full distribution; mu = 3 - 0.1 * (surprise - 1.5)
    assert abs(float(m.mu[0]) - (3 - 0.1 * (-math.log2(P4[tok]) - 1.5))) < 1e-5


def test_mirostat_state_across_steps_and_chain():
    m = S.MirostatV2(tau=3.0, eta=0.5, seed=4)
    z = np.log(np.linspace(1, 2, 16, dtype=np.float32))[None, :].repeat(2, 0)
    mus = []
    for _ in range(4):
        m.sample(z)
        mus.append(m.mu.copy())
    assert not np.allclose(mus[0], mus[-1])  # mu adapts step by step
    with pytest.raises(ValueError, match="holds state for 2 rows"):
        m.sample(z[:1])
    chain = S.Chain([S.TopK(8), S.MirostatV2(3.0, 0.1, seed=0)])
    tok = chain.sample(z)
    assert tok.shape == (2,) and (tok >= 8).all()  # top-k(8) of increasing logits keeps ids 8..15
    with pytest.raises(ValueError, match="last"):
        S.Chain([S.Mirostat(), S.TopK(3)])


@pytest.mark.parametrize("call,param", [
    (lambda: S.xtc(log(P4), 1.5, 0.1), "xtc_probability"),
    (lambda: S.xtc(log(P4), 0.5, -0.1), "xtc_threshold"),
    (lambda: S.dry(log(P4), [0, 1], -1.0), "dry_multiplier"),
    (lambda: S.dry(log(P4), [0, 1], 1.0, base=0.5), "dry_base"),
    (lambda: S.dry(log(P4), [0, 1], 1.0, allowed_length=0), "dry_allowed_length"),
    (lambda: S.dry(log(P4), [0, 1], 1.0, sequence_breakers=[[9]]), "sequence_breakers"),
    (lambda: S.dry(log(P4), [0, 7], 1.0), "input_ids"),
    (lambda: S.Mirostat(tau=-1.0), "mirostat_tau"),
    (lambda: S.MirostatV2(eta=math.nan), "mirostat_eta"),
    (lambda: S.top_n_sigma(log(P4), -1.0), "top_n_sigma"),
    (lambda: S.frequency_presence_penalty(log(P4), [0], math.inf), "frequency_penalty"),
])
def test_bad_parameters(call, param):
    with pytest.raises(ValueError, match=param):
        call()


def test_dry_sequence_breakers_from_strings():
    # a toy vocabulary: token texts; the breaker "\n\n" is inside token 3, and token 1 ends with
    # its first character, so (1, tokens of the remaining "\n") is a two-token breaker
    texts = ["a", "b\n", "c", "x\n\ny", "\n"]
    enc = {"\n": [4]}
    br = S.dry_sequence_breakers(["\n\n"], 5, texts.__getitem__, lambda s: enc[s])
    assert [3] in br and [1, 4] in br and [4, 4] in br and len(br) == 3
