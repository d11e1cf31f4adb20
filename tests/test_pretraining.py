"""tfm.pretraining: BERT/RoBERTa masking proportions, static vs dynamic masking, NSP and SOP pairs.

The proportions are measured on ~1M tokens so that the +-0.5 percentage-point tolerance of the recipe
is more than 4 standard deviations of the sampling noise, also for the 80/10/10 split inside the ~15%
chosen tokens (sd of a proportion 0.8 over ~148k draws is 0.10 pp).
"""
import numpy as np
import pytest

from tfm.pretraining import IGNORE_INDEX, DynamicMasking, SegmentPair, StaticMasking, mlm_mask, nsp_pairs, sop_pairs

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
V = 1000


class FakeTokenizer:
    """The duck-typed interface mlm_mask needs (what a HF or tfm tokenizer has)."""
    mask_token_id = MASK
    pad_token_id = PAD
    all_special_ids = [PAD, UNK, CLS, SEP, MASK]

    def __len__(self):
        return V


def make_batch(rng, B=1000, T=1000):
    """[CLS] text [SEP] text [SEP] [PAD]...: ordinary ids in [5, V), random lengths, a few specials inside."""
    ids = rng.integers(5, V, size=(B, T))
    am = np.ones((B, T), dtype=np.int64)
    for b in range(B):
        n = int(rng.integers(T // 2, T + 1))
        ids[b, 0] = CLS
        ids[b, n // 2] = SEP
        ids[b, n - 1] = SEP
        ids[b, n:] = PAD
        am[b, n:] = 0
        ids[b, rng.integers(1, n - 1, size=3)] = UNK  # specials scattered inside the text
    return ids, am


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(123)
    ids, am = make_batch(rng)
    out = mlm_mask(ids, FakeTokenizer(), attention_mask=am, seed=7)
    return ids, am, out


def test_chosen_rate_is_15_percent_of_eligible_tokens(big):
    ids, am, out = big
    eligible = (ids >= 5) & (am == 1)
    assert eligible.sum() >= 100_000
    chosen = out["masked_positions"]
    rate = chosen.sum() / eligible.sum()
    assert abs(rate - 0.15) < 0.005, rate


def test_80_10_10_split_within_chosen_measured_on_the_output(big):
    ids, am, out = big
    chosen = out["masked_positions"]
    new = out["input_ids"]
    n = chosen.sum()
    assert n >= 100_000
    to_mask = (chosen & (new == MASK)).sum() / n
    unchanged = (chosen & (new == ids)).sum() / n
    to_other = (chosen & (new != ids) & (new != MASK)).sum() / n
    # a random draw can land on the original id (1/V) or on [MASK] (1/V): +-0.01 pp, far below 0.5 pp
    assert abs(to_mask - 0.8) < 0.005, to_mask
    assert abs(unchanged - 0.1) < 0.005, unchanged
    assert abs(to_other - 0.1) < 0.005, to_other
    # and the flags agree with what happened
    assert np.array_equal(out["replaced_positions"], chosen & (new == MASK) & ~out["random_positions"])


def test_specials_and_padding_never_chosen_and_unchanged(big):
    ids, am, out = big
    special = np.isin(ids, FakeTokenizer.all_special_ids) | (am == 0)
    assert not out["masked_positions"][special].any()
    assert np.array_equal(out["input_ids"][special], ids[special])
    # non-chosen positions are never modified
    assert np.array_equal(out["input_ids"][~out["masked_positions"]], ids[~out["masked_positions"]])


def test_labels_are_original_ids_at_chosen_positions_and_minus_100_elsewhere(big):
    ids, am, out = big
    chosen = out["masked_positions"]
    assert out["labels"].dtype == np.int64 and out["input_ids"].dtype == np.int64
    assert np.array_equal(out["labels"][chosen], ids[chosen])
    assert (out["labels"][~chosen] == IGNORE_INDEX).all()


def test_random_tokens_are_uniform_over_the_whole_vocab_like_hf():
    # HF draws torch.randint(len(tokenizer)): specials included, the original id not excluded.
    ids = np.full((400, 500), 7)
    out = mlm_mask(ids, mask_token_id=4, vocab_size=8, special_ids=[0, 1, 2, 3, 4], seed=3,
                   mlm_probability=1.0, mask_replace_prob=0.0, random_replace_prob=1.0)
    assert out["random_positions"].all()
    counts = np.bincount(out["input_ids"].ravel(), minlength=8) / ids.size
    # 200k draws: sd of each 1/8 proportion ~0.07 pp
    assert np.allclose(counts, 1 / 8, atol=0.004), counts


def test_tokenizer_argument_and_explicit_arguments_agree():
    rng = np.random.default_rng(0)
    ids, am = make_batch(rng, B=20, T=50)
    a = mlm_mask(ids, FakeTokenizer(), attention_mask=am, seed=11)
    b = mlm_mask(ids, mask_token_id=MASK, vocab_size=V, special_ids=[PAD, UNK, CLS, SEP, MASK], attention_mask=am,
                 seed=11)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_vocab_size_attribute_is_used_when_len_is_missing():
    class Tok:
        mask_token_id, pad_token_id, all_special_ids, vocab_size = 1, 0, [0, 1], 5
    out = mlm_mask(np.full((50, 50), 3), Tok(), mlm_probability=1.0, mask_replace_prob=0.0,
                   random_replace_prob=1.0, seed=0)
    assert out["input_ids"].max() == 4 and out["input_ids"].min() == 0


def test_seeded_reproducibility_and_seed_sensitivity():
    ids, am = make_batch(np.random.default_rng(1), B=8, T=64)
    a = mlm_mask(ids, FakeTokenizer(), attention_mask=am, seed=5)
    b = mlm_mask(ids, FakeTokenizer(), attention_mask=am, seed=5)
    c = mlm_mask(ids, FakeTokenizer(), attention_mask=am, seed=6)
    assert np.array_equal(a["input_ids"], b["input_ids"]) and np.array_equal(a["labels"], b["labels"])
    assert not np.array_equal(a["labels"], c["labels"])
    # the input is not modified
    ids2, _ = make_batch(np.random.default_rng(1), B=8, T=64)
    assert np.array_equal(ids, ids2)


def test_one_dimensional_input_keeps_its_shape():
    out = mlm_mask([2, 10, 11, 12, 13, 14, 3], mask_token_id=4, vocab_size=100, special_ids=[2, 3], seed=0,
                   mlm_probability=1.0)
    assert out["input_ids"].shape == (7,)
    assert out["labels"][0] == IGNORE_INDEX and out["labels"][-1] == IGNORE_INDEX
    assert list(out["labels"][1:-1]) == [10, 11, 12, 13, 14]


def test_dynamic_masking_is_fresh_each_call_and_reproducible_per_seed():
    ids, am = make_batch(np.random.default_rng(2), B=16, T=128)
    d1, d2 = DynamicMasking(seed=9, tokenizer=FakeTokenizer()), DynamicMasking(seed=9, tokenizer=FakeTokenizer())
    first, second = d1(ids, am), d1(ids, am)
    assert not np.array_equal(first["masked_positions"], second["masked_positions"])
    again = d2(ids, am)
    assert np.array_equal(first["input_ids"], again["input_ids"])


def test_static_masking_repeats_each_copy_every_copies_epochs():
    rng = np.random.default_rng(4)
    texts = [rng.integers(5, V, size=int(n)) for n in rng.integers(20, 60, size=12)]
    sm = StaticMasking(texts, copies=3, seed=1, tokenizer=FakeTokenizer())
    assert len(sm) == 3
    e0, e1, e3 = sm.epoch(0), sm.epoch(1), sm.epoch(3)
    assert len(e0) == len(texts)
    for a, b in zip(e0, e3):  # epoch 3 sees copy 0 again, exactly
        assert np.array_equal(a["input_ids"], b["input_ids"]) and np.array_equal(a["labels"], b["labels"])
    assert any(not np.array_equal(a["masked_positions"], b["masked_positions"]) for a, b in zip(e0, e1))
    for t, m in zip(texts, e1):
        assert np.array_equal(m["labels"][m["masked_positions"]], t[m["masked_positions"]])
    # made once, from the seed: a second object with the same seed builds the same copies
    sm2 = StaticMasking(texts, copies=3, seed=1, tokenizer=FakeTokenizer())
    assert all(np.array_equal(a["input_ids"], b["input_ids"]) for a, b in zip(sm.epoch(2), sm2.epoch(2)))


@pytest.mark.parametrize("kwargs, exc, word", [
    (dict(mlm_probability=1.5), ValueError, "mlm_probability"),
    (dict(mask_replace_prob=0.9, random_replace_prob=0.2), ValueError, "<= 1"),
    (dict(mask_token_id=None), ValueError, "mask_token_id"),
    (dict(vocab_size=None), ValueError, "vocab_size"),
    (dict(mask_token_id=50), ValueError, "outside the vocabulary"),
])
def test_bad_arguments_raise_clear_errors(kwargs, exc, word):
    base = dict(mask_token_id=4, vocab_size=10, special_ids=[0])
    base.update(kwargs)
    with pytest.raises(exc, match=word):
        mlm_mask([[5, 6, 7]], **base)


def test_bad_ids_raise_clear_errors():
    kw = dict(mask_token_id=4, vocab_size=10)
    with pytest.raises(ValueError, match="outside"):
        mlm_mask([[5, 6, 10]], **kw)
    with pytest.raises(ValueError, match="rectangular"):
        mlm_mask([[5, 6], [7]], **kw)
    with pytest.raises(TypeError, match="integer"):
        mlm_mask([[5.0, 6.0]], **kw)
    with pytest.raises(ValueError, match="attention_mask"):
        mlm_mask([[5, 6]], attention_mask=[[1, 1, 1]], **kw)
    with pytest.raises(ValueError, match="either seed or rng"):
        mlm_mask([[5, 6]], seed=1, rng=np.random.default_rng(1), **kw)
    with pytest.raises(ValueError, match="copies"):
        StaticMasking([[5, 6]], copies=0, **kw)
    with pytest.raises(TypeError, match="unexpected"):
        DynamicMasking(seed=0, mlm_prob=0.2, **kw)


# --------------------------------------------------------------------------------------------------
# NSP / SOP
# --------------------------------------------------------------------------------------------------

def make_documents(n_docs=300, seed=0):
    """Document d, segment j holds ids d*1000 + j*10 + (0..len-1): every token names its source."""
    rng = np.random.default_rng(seed)
    docs = []
    for d in range(n_docs):
        docs.append([[d * 1000 + j * 10 + k for k in range(int(rng.integers(1, 8)))]
                     for j in range(int(rng.integers(1, 40)))])
    return docs


def source(seg):
    return seg[0] // 1000, (seg[0] % 1000) // 10


def test_nsp_labels_are_balanced_and_correct():
    docs = make_documents()
    pairs = nsp_pairs(docs, seed=0)
    assert len(pairs) == sum(len(d) - 1 for d in docs)
    frac = np.mean([p.is_next for p in pairs])
    sd = (0.25 / len(pairs)) ** 0.5
    assert abs(frac - 0.5) < 4 * sd, (frac, len(pairs))
    k = 0
    for d, segs in enumerate(docs):
        for j in range(len(segs) - 1):
            p = pairs[k]
            k += 1
            assert p.a == tuple(segs[j])
            bd, bj = source(p.b)
            if p.is_next:
                assert p.b == tuple(segs[j + 1]) and p.hf_label == 0
            else:
                assert bd != d, "NotNext segment taken from the same document"
                assert p.b == tuple(docs[bd][bj]) and p.hf_label == 1


def test_nsp_notnext_documents_spread_over_all_others():
    docs = [[[d * 1000 + j * 10] for j in range(2)] for d in range(5)]  # 5 docs of 2 segments
    pairs = sum((nsp_pairs(docs, seed=s) for s in range(800)), [])
    srcs = [(p.a[0] // 1000, p.b[0] // 1000) for p in pairs if not p.is_next]
    for d in range(5):
        got = {b for a, b in srcs if a == d}
        assert got == set(range(5)) - {d}


def test_nsp_needs_two_documents_and_truncates():
    with pytest.raises(ValueError, match="two non-empty documents"):
        nsp_pairs([[[1, 2], [3, 4]]], seed=0)
    docs = make_documents(50, seed=3)
    for p in nsp_pairs(docs, seed=2, max_tokens=6):
        assert len(p.a) + len(p.b) <= 6
        assert len(p.a) >= 1 and len(p.b) >= 1
        # truncation removes from the ends only: what is left is a contiguous run of the segment
        assert list(p.a) == list(range(p.a[0], p.a[0] + len(p.a)))


def test_nsp_is_seeded():
    docs = make_documents(40, seed=5)
    assert nsp_pairs(docs, seed=3) == nsp_pairs(docs, seed=3)
    assert nsp_pairs(docs, seed=3) != nsp_pairs(docs, seed=4)


def test_sop_pairs_are_consecutive_swapped_half_the_time():
    docs = make_documents(seed=1)
    pairs = sop_pairs(docs, seed=0)
    frac = np.mean([p.swapped for p in pairs])
    assert abs(frac - 0.5) < 4 * (0.25 / len(pairs)) ** 0.5
    k = 0
    for d, segs in enumerate(docs):
        for j in range(len(segs) - 1):
            p = pairs[k]
            k += 1
            if p.swapped:
                assert (p.a, p.b) == (tuple(segs[j + 1]), tuple(segs[j])) and p.hf_label == 1
            else:
                assert (p.a, p.b) == (tuple(segs[j]), tuple(segs[j + 1])) and p.hf_label == 0
    with pytest.raises(AttributeError):
        pairs[0].is_next
    assert isinstance(pairs[0], SegmentPair)
    a, b, swapped = pairs[0]
    assert (a, b, swapped) == (pairs[0].a, pairs[0].b, pairs[0].swapped)


def test_pair_builders_reject_bad_documents():
    with pytest.raises(ValueError, match=r"documents\[0\]\[1\]"):
        sop_pairs([[[1, 2], [[3]]]], seed=0)
    with pytest.raises(ValueError, match="max_tokens"):
        sop_pairs([[[1], [2]]], seed=0, max_tokens=1)
