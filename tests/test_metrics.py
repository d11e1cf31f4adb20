"""tfm.metrics on hand-computed examples (the arithmetic is in the comments), Self-BLEU cross-checked
against NLTK's sentence_bleu (test-only dependency) and the Zipf fit against scipy's linregress."""
import math
import random

import numpy as np
import pytest
from nltk.translate import bleu_score as nltk_bleu  # test-only reference (pip install nltk)
from scipy import stats  # test-only reference

from tfm.metrics import (diversity, distinct_n, distinct_n_singletons, holtzman_repetition, perplexity, rep_n,
                         repetition_at_end, self_bleu, sentence_bleu, sequence_logprob, token_logprobs,
                         zipf_coefficient)


# --------------------------------------------------------------------------------------------------
# Fake models with the minimal interface: model(ids[B,T], attention_mask=...) -> .logits [B,T,V]
# --------------------------------------------------------------------------------------------------

class _Out:
    def __init__(self, logits):
        self.logits = logits


class _Cfg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


# Bigram table: p(next | current) = P[current]. Row 3 is a pad token's row.
P = np.array([[1 / 2, 1 / 4, 1 / 4, 0.0],
              [1 / 4, 1 / 2, 1 / 4, 0.0],
              [1 / 8, 1 / 8, 3 / 4, 0.0],
              [1 / 4, 1 / 4, 1 / 4, 1 / 4]])


class BigramModel:
    config = _Cfg(n_positions=8)

    def __call__(self, input_ids, attention_mask=None):
        with np.errstate(divide="ignore"):
            return _Out(np.log(P)[input_ids].astype(np.float32))


class ContextLengthModel:
    """Two tokens; with c tokens of context (c = position in the window + 1), p(next = 1) = 1 - 2^-c.
    Its predictions depend on how much context a window gives, which makes the stride visible."""
    config = _Cfg(max_position_embeddings=4)

    def __init__(self):
        self.calls = []

    def __call__(self, input_ids, attention_mask=None):
        B, T = input_ids.shape
        self.calls.append(T)
        c = np.arange(1, T + 1, dtype=np.float64)
        logits = np.stack([np.log(2.0 ** -c), np.log(1 - 2.0 ** -c)], axis=-1)  # [T, 2]
        return _Out(np.broadcast_to(logits, (B, T, 2)).astype(np.float32))


def test_token_and_sequence_logprob_of_a_bigram_model():
    m = BigramModel()
    ids = np.array([[0, 1, 1, 2], [0, 2, 3, 3]])
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    lp = token_logprobs(m, ids, attention_mask=mask)
    # row 0: log P[0,1] + log P[1,1] + log P[1,2] = log(1/4) + log(1/2) + log(1/4) = -5 log 2
    assert np.isnan(lp[0, 0]) and np.isnan(lp[1, 2]) and np.isnan(lp[1, 3])
    np.testing.assert_allclose(lp[0, 1:], np.log([1 / 4, 1 / 2, 1 / 4]), atol=1e-6)
    s = sequence_logprob(m, ids, attention_mask=mask)
    # row 1: only 0 -> 2 is scored: log P[0,2] = log(1/4) = -2 log 2
    np.testing.assert_allclose(s, [-5 * math.log(2), -2 * math.log(2)], atol=1e-6)
    # the continuation after a 2-token prompt: log P[1,1] + log P[1,2] = -3 log 2
    assert sequence_logprob(m, [0, 1, 1, 2], prompt_length=2) == pytest.approx(-3 * math.log(2), abs=1e-6)


def test_perplexity_of_the_bigram_model_equals_the_hand_value():
    # [0,1,1,2,2]: log-probs log(1/4), log(1/2), log(1/4), log(3/4) -> ppl = exp(-(sum)/4)
    expected = math.exp(-(math.log(1 / 4) + math.log(1 / 2) + math.log(1 / 4) + math.log(3 / 4)) / 4)
    assert perplexity(BigramModel(), [0, 1, 1, 2, 2], stride=8) == pytest.approx(expected, rel=1e-6)
    # several texts are pooled: [0,1] (log 1/4) and [2,2] (log 3/4) -> exp(-(log 1/4 + log 3/4)/2)
    pooled = math.exp(-(math.log(1 / 4) + math.log(3 / 4)) / 2)
    assert perplexity(BigramModel(), [[0, 1], [2, 2]]) == pytest.approx(pooled, rel=1e-6)


def test_sliding_window_perplexity_scores_each_token_once_with_the_window_context():
    m = ContextLengthModel()
    # 10 tokens "1", max_length 4 (from config.max_position_embeddings), stride 2. Windows:
    #   [0,4): targets at window positions 1,2,3 -> c = 1,2,3: log(1/2) + log(3/4) + log(7/8)
    #   [2,6), [4,8), [6,10): only the 2 new tokens, window positions 2,3 -> log(3/4) + log(7/8) each
    nll = -(math.log(1 / 2) + 4 * math.log(3 / 4) + 4 * math.log(7 / 8))
    got = perplexity(m, np.ones(10, dtype=np.int64), stride=2)
    assert got == pytest.approx(math.exp(nll / 9), rel=1e-6)
    assert m.calls == [4, 4, 4, 4]
    # stride == max_length (no overlap): windows [0,4), [4,8), [8,10); a window's first token is never
    # a target (HF), so tokens 4 and 8 go unscored: 2*(log 1/2 + log 3/4 + log 7/8) + log 1/2 over 7
    nll2 = -(2 * (math.log(1 / 2) + math.log(3 / 4) + math.log(7 / 8)) + math.log(1 / 2))
    assert perplexity(ContextLengthModel(), np.ones(10, dtype=np.int64), stride=4) == pytest.approx(
        math.exp(nll2 / 7), rel=1e-6)


def test_model_based_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="padding on the right"):
        token_logprobs(BigramModel(), [[0, 1, 2]], attention_mask=[[0, 1, 1]])
    with pytest.raises(ValueError, match="stride"):
        token_logprobs(BigramModel(), np.zeros(9, dtype=np.int64))  # 9 > n_positions 8
    with pytest.raises(ValueError, match="stride"):
        perplexity(BigramModel(), [0, 1, 2], stride=9)
    with pytest.raises(ValueError, match="fewer than 2 tokens"):
        perplexity(BigramModel(), [[1]])

    class NoPositions(BigramModel):
        config = _Cfg()
    with pytest.raises(ValueError, match="max_length"):
        perplexity(NoPositions(), [0, 1, 2])
    with pytest.raises(TypeError, match="integer"):
        token_logprobs(BigramModel(), [[0.5, 1.0]])


# --------------------------------------------------------------------------------------------------
# distinct-n, rep-n, diversity
# --------------------------------------------------------------------------------------------------

def test_distinct_n_li_et_al_and_holtzman_singletons():
    corpus = ["a b a b", "a c"]
    # bigrams: (a,b) (b,a) (a,b) | (a,c): 3 types / 4 -> 0.75; types seen once: (b,a), (a,c) -> 2/4
    assert distinct_n(corpus, 2) == pytest.approx(0.75)
    assert distinct_n_singletons(corpus, 2) == pytest.approx(0.5)
    # unigrams a b a b a c: types {a,b,c} 3/6; singletons: only c -> 1/6
    assert distinct_n(corpus, 1) == pytest.approx(0.5)
    assert distinct_n_singletons(corpus, 1) == pytest.approx(1 / 6)
    # token ids work the same
    assert distinct_n([[1, 2, 1, 2], np.array([1, 3])], 2) == pytest.approx(0.75)


def test_rep_n_counts_unique_ngrams_per_text_and_the_simctg_last_ngram_flag():
    corpus = ["a b a b a b", "x y z"]
    # rep-2: text 1 bigrams ab ba ab ba ab (5, 2 unique), text 2 xy yz (2, 2 unique): 1 - 4/7
    assert rep_n(corpus, 2) == pytest.approx(100 * (1 - 4 / 7))
    # SimCTG's loop drops the last n-gram: text 1 ab ba ab ba (4, 2 unique), text 2 xy (1, 1): 1 - 3/5
    assert rep_n(corpus, 2, drop_last=True) == pytest.approx(40.0)
    # the same bigram in two texts is not a repetition (unique counted per text): 1 - 2/2
    assert rep_n(["a b", "a b"], 2) == 0.0
    # rep-3 = 1 - (2+1)/(4+1) = 40 %; rep-4 = 1 - (2+0)/(3+0) = 33.3 %
    assert rep_n(corpus, 3) == pytest.approx(40.0)
    assert rep_n(corpus, 4) == pytest.approx(100 / 3)
    # diversity = (1 - 3/7)(1 - 2/5)(1 - 1/3) = 4/7 * 3/5 * 2/3 = 24/105
    assert diversity(corpus) == pytest.approx(24 / 105)
    # SimCTG rounds each rep-n to 2 decimals first: 42.86, 40.0, 33.33
    assert diversity(corpus, round_rep=2) == pytest.approx((1 - .4286) * (1 - .4) * (1 - .3333))


def test_ngram_metrics_reject_empty_or_single_text():
    with pytest.raises(ValueError, match="no 2-gram"):
        rep_n(["a"], 2)
    with pytest.raises(TypeError, match="corpus"):
        distinct_n("a b c", 1)
    with pytest.raises(ValueError, match="positive"):
        distinct_n(["a b"], 0)


# --------------------------------------------------------------------------------------------------
# Holtzman repetition
# --------------------------------------------------------------------------------------------------

def test_repetition_at_end_counts_back_to_back_copies():
    # reversed 3 2 1 3 2 1 5: n=3 phrase (1 2 3) twice; n=1,2 once -> (3, 2)
    assert repetition_at_end([5, 1, 2, 3, 1, 2, 3]) == (3, 2)
    # a b a b a b: n=2 three times, n=1 once, n=3 (b a b vs a b a) once -> (2, 3)
    assert repetition_at_end("a b a b a b".split()) == (2, 3)
    assert repetition_at_end([7, 8, 8]) == (1, 2)
    assert repetition_at_end([4] * 51) == (1, 51)  # the smallest n wins ties (n=1: 51 > n=2: 25)


def test_holtzman_repetition_code_rule_and_prose_rule():
    EOS = 99
    gens = [
        [5, 1, 2, 3, 1, 2, 3, EOS],  # after dropping EOS: n*=3, count 2 -> repeating
        [7, 8, 8],                   # n*=1, count 2: n* < 3 and count <= 50 -> not repeating
        [4] * 51,                    # n*=1, count 51 > 50 -> repeating
        [4] * 50,                    # count 50 -> not repeating
        [1, 2, 1, 2, 1, 2],          # n*=2, count 3 -> not repeating by the code rule
    ]
    assert holtzman_repetition(gens, eos_id=EOS) == pytest.approx(100 * 2 / 5)
    # without removing EOS the first one ends in EOS, which does not repeat -> 1 of 5
    assert holtzman_repetition(gens) == pytest.approx(100 * 1 / 5)
    # prose rule (phrase of length >= 2 three times at the end): [4]*51 -> (4,4) x 25 yes, [4]*50 yes,
    # [1,2]x3 yes, the first (only twice) no, [7,8,8] no -> 3 of 5
    assert holtzman_repetition(gens, eos_id=EOS, rule="prose") == pytest.approx(100 * 3 / 5)
    with pytest.raises(ValueError, match="rule"):
        holtzman_repetition(gens, rule="paper")


# --------------------------------------------------------------------------------------------------
# BLEU / Self-BLEU
# --------------------------------------------------------------------------------------------------

def test_sentence_bleu_hand_values():
    # identical lengths: p1 = 2/2, p2 = 0/1 -> method1: 0.1/1; BLEU-2 = sqrt(1 * 0.1)
    assert sentence_bleu([[2, 1]], [1, 2], weights=(0.5, 0.5)) == pytest.approx(math.sqrt(0.1))
    # brevity: hyp 2 tokens vs ref 4: p1 = p2 = 1, BP = exp(1 - 4/2) = 1/e
    assert sentence_bleu([[1, 2, 3, 4]], [1, 2], weights=(0.5, 0.5)) == pytest.approx(math.exp(-1))
    # no unigram match -> 0 regardless of smoothing
    assert sentence_bleu([[1, 2]], [3, 4], weights=(0.5, 0.5)) == 0.0


def test_self_bleu_hand_value():
    A, B, C = [1, 2, 3, 4], [1, 2, 3, 5], [9, 9]
    # hyp A vs {B, C}: p1 = 3/4 (1,2,3), p2 = 2/3 (12, 23), closest ref length 4 -> BP 1:
    #   BLEU-2 = sqrt(3/4 * 2/3) = sqrt(1/2); hyp B likewise; hyp C: no unigram match -> 0
    assert self_bleu([A, B, C], n_hypotheses=None, max_n=2) == pytest.approx(2 * math.sqrt(0.5) / 3)


def _nltk_self_bleu(corpus, idx):
    sm = nltk_bleu.SmoothingFunction().method1
    return np.mean([nltk_bleu.sentence_bleu(corpus[:i] + corpus[i + 1:], corpus[i], smoothing_function=sm)
                    for i in idx])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_self_bleu_matches_nltk_sentence_bleu_on_random_token_lists(seed):
    rng = np.random.default_rng(seed)
    corpus = [rng.integers(0, 6, size=int(n)).tolist() for n in rng.integers(1, 25, size=40)]
    assert self_bleu(corpus, n_hypotheses=None) == pytest.approx(_nltk_self_bleu(corpus, range(40)), rel=1e-9)
    # sampled hypotheses: Python's random.Random(seed).sample, as Holtzman's script
    idx = random.Random(7).sample(range(40), 10)
    assert self_bleu(corpus, n_hypotheses=10, seed=7) == pytest.approx(_nltk_self_bleu(corpus, idx), rel=1e-9)
    # degen's script draws one sample per BLEU order after one seed: BLEU-4 uses the 4th draw
    r = random.Random(0)
    for _ in range(3):
        r.sample(range(40), 10)
    idx4 = r.sample(range(40), 10)
    assert self_bleu(corpus, n_hypotheses=10, seed=0, degen_draw=True) == pytest.approx(
        _nltk_self_bleu(corpus, idx4), rel=1e-9)


def test_sentence_bleu_matches_nltk_with_several_references():
    rng = np.random.default_rng(5)
    sm = nltk_bleu.SmoothingFunction().method1
    for _ in range(50):
        refs = [rng.integers(0, 5, size=int(rng.integers(1, 15))).tolist() for _ in range(3)]
        hyp = rng.integers(0, 5, size=int(rng.integers(1, 15))).tolist()
        assert sentence_bleu(refs, hyp) == pytest.approx(
            nltk_bleu.sentence_bleu(refs, hyp, smoothing_function=sm), rel=1e-9, abs=1e-12)


def test_self_bleu_rejects_a_corpus_of_one():
    with pytest.raises(ValueError, match="two sequences"):
        self_bleu([[1, 2, 3]])


# --------------------------------------------------------------------------------------------------
# Zipf
# --------------------------------------------------------------------------------------------------

def test_zipf_recovers_the_exponent_of_an_exact_power_law():
    # counts 2520 / r for r = 1..10 are integers (2520 = lcm(1..10)): an exact s = 1 power law
    corpus = [[r] * (2520 // r) for r in range(1, 11)]
    assert zipf_coefficient(corpus) == pytest.approx(1.0, abs=1e-12)
    # counts 3600 / r^2 for r = 1..6 (60 = lcm(1..6)): s = 2
    corpus2 = [[r] * (3600 // r ** 2) for r in range(1, 7)]
    assert zipf_coefficient(corpus2) == pytest.approx(2.0, abs=1e-12)
    # two tokens with counts 4 and 1: slope = (log 1 - log 4) / (log 2 - log 1) = -2 -> s = 2
    assert zipf_coefficient([[0, 0, 0, 0, 1]]) == pytest.approx(2.0)


def test_zipf_uses_only_the_top_ranks():
    # ranks 1..5 follow 60 / r exactly; ranks 6..20 are flat (count 1) and would bend the fit
    corpus = [[r] * (60 // r) for r in range(1, 6)] + [[100 + k] for k in range(15)]
    assert zipf_coefficient(corpus, top=5) == pytest.approx(1.0, abs=1e-12)
    assert abs(zipf_coefficient(corpus) - 1.0) > 0.05


def test_zipf_matches_scipy_linregress():
    rng = np.random.default_rng(0)
    toks = rng.zipf(1.3, size=50_000)
    counts = np.sort(np.unique(toks, return_counts=True)[1])[::-1][:5000]
    fit = stats.linregress(np.log(np.arange(1, len(counts) + 1)), np.log(counts))
    assert zipf_coefficient([toks]) == pytest.approx(-fit.slope, rel=1e-10)
