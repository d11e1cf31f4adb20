"""tfm.pipeline against transformers' pipelines on the same random-initialised checkpoints.

Specification: issue 4 §5 and its bad-input list. Each folder holds a transformers model written with
save_pretrained and a tokenizer saved next to it (a small WordPiece vocabulary written here, or RoBERTa's
byte-level BPE from the GPT-2 files in tests/data); tfm and transformers both load that folder. Outputs
must be identical (keys, nesting, labels, tokens, words, spans, sequences) with scores within 1e-5.
next-sentence and sentence-order have no transformers pipeline: they are checked against the softmax of
BertForNextSentencePrediction's logits and AlbertForPreTraining's sop_logits. The sampling mode of
fill-mask is checked for reproducibility and, with a χ² test, against the filtered MLM distribution built
with transformers' own warpers.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import tfm

SCORE_TOL = 1e-5
DATA = Path(__file__).parent / "data" / "gpt2-tokenizer"

WORDS = ("the a an of to in is was and or not it this that capital city country france paris london england "
         "river sea mountain john mary smith lives works in at on for with new york big small red blue cat dog "
         "sat mat house car runs walked yesterday today tomorrow first second third sentence story ends begins "
         "he she they we you i my your their our sun rain falls over under").split()
PUNCT = list(".,;:!?'\"()-")
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
BIO = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC", 5: "MISC"}


def write_bert_vocab(path: Path) -> int:
    """A ~170-piece WordPiece vocabulary: BERT's specials, whole words, and single letters as words and
    "##" continuations (so unknown words split into pieces, and non-ASCII words become [UNK])."""
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(dict.fromkeys(WORDS)) + PUNCT + LETTERS
    pieces += ["##" + c for c in LETTERS] + ["##ing", "##s", "##ed"]
    pieces = list(dict.fromkeys(pieces))
    path.write_text("\n".join(pieces) + "\n", encoding="utf-8")
    return len(pieces)


SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
             max_position_embeddings=64, initializer_range=0.3)

# name → (transformers class, config class, tokenizer kind, config kwargs)
MODELS = {
    "bert-mlm": ("BertForMaskedLM", "BertConfig", "wordpiece", {}),
    "roberta-mlm": ("RobertaForMaskedLM", "RobertaConfig", "bpe", dict(type_vocab_size=1)),
    "distilbert-mlm": ("DistilBertForMaskedLM", "DistilBertConfig", "wordpiece",
                       dict(dim=32, n_layers=2, n_heads=4, hidden_dim=40)),
    "bert-seq": ("BertForSequenceClassification", "BertConfig", "wordpiece",
                 dict(id2label={0: "neg", 1: "neutral", 2: "pos"}, label2id={"neg": 0, "neutral": 1, "pos": 2})),
    "bert-multi": ("BertForSequenceClassification", "BertConfig", "wordpiece",
                   dict(num_labels=3, problem_type="multi_label_classification")),
    "bert-regression": ("BertForSequenceClassification", "BertConfig", "wordpiece",
                        dict(num_labels=1, problem_type="regression")),
    "bert-token": ("BertForTokenClassification", "BertConfig", "wordpiece",
                   dict(id2label=BIO, label2id={v: k for k, v in BIO.items()})),
    "roberta-token": ("RobertaForTokenClassification", "RobertaConfig", "bpe",
                      dict(type_vocab_size=1, id2label=BIO, label2id={v: k for k, v in BIO.items()})),
    "bert-nsp": ("BertForNextSentencePrediction", "BertConfig", "wordpiece", {}),
    "bert-pretraining": ("BertForPreTraining", "BertConfig", "wordpiece", {}),
    "albert-pretraining": ("AlbertForPreTraining", "AlbertConfig", "wordpiece",
                           dict(embedding_size=16, num_hidden_groups=1, inner_group_num=1)),
    "bert-base": ("BertModel", "BertConfig", "wordpiece", {}),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory, torch_module):
    """name → (folder, transformers model, transformers tokenizer); each built once, on first use."""
    import transformers as T

    root = tmp_path_factory.mktemp("pipelines")
    vocab = root / "vocab.txt"
    n_wordpiece = write_bert_vocab(vocab)
    cache = {}

    def get(name):
        if name in cache:
            return cache[name]
        cls, cfg_cls, kind, kw = MODELS[name]
        if kind == "wordpiece":
            fast = T.DistilBertTokenizerFast if cfg_cls == "DistilBertConfig" else T.BertTokenizerFast
            tok = fast(str(vocab), model_max_length=60)
            vocab_size = n_wordpiece
        else:
            tok = T.RobertaTokenizerFast(str(DATA / "vocab.json"), str(DATA / "merges.txt"), model_max_length=60)
            vocab_size = len(tok)
        base = dict(SMALL)
        if cfg_cls == "DistilBertConfig":
            base = dict(max_position_embeddings=64, initializer_range=0.3)
        cfg = getattr(T, cfg_cls)(vocab_size=vocab_size, **base, **kw)
        torch_module.manual_seed(sum(map(ord, name)))
        model = getattr(T, cls)(cfg).eval()
        d = root / name
        model.save_pretrained(d, safe_serialization=True)
        tok.save_pretrained(d)
        cache[name] = (d, model, tok)
        return cache[name]

    return get


def hf_pipeline(task, built, name, **kw):
    import transformers as T

    _, model, tok = built(name)
    return T.pipeline(task, model=model, tokenizer=tok, framework="pt", **kw)


def assert_same(ours, ref, where="result"):
    """Identical structure, keys (in order) and values; floats ("score") within SCORE_TOL."""
    if isinstance(ref, list):
        assert isinstance(ours, list) and len(ours) == len(ref), f"{where}: {ours!r} vs {ref!r}"
        for i, (a, b) in enumerate(zip(ours, ref)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(ref, dict):
        assert isinstance(ours, dict) and list(ours) == list(ref), f"{where}: keys {list(ours)} vs {list(ref)}"
        for k in ref:
            assert_same(ours[k], ref[k], f"{where}[{k!r}]")
    elif isinstance(ref, (float, np.floating)):
        assert isinstance(ours, float), f"{where}: {type(ours).__name__} is not a float"
        assert abs(ours - float(ref)) <= SCORE_TOL, f"{where}: {ours} vs {float(ref)}"
    else:
        if isinstance(ref, np.integer):
            ref = int(ref)
        assert ours == ref and type(ours) is type(ref), f"{where}: {ours!r} vs {ref!r}"


# ------------------------------------------------------------------------------------------------------------
# fill-mask
# ------------------------------------------------------------------------------------------------------------
FILL_TEXTS = {
    "wordpiece": ["the capital of france is [MASK] .", "john lives in [MASK] york and works in paris",
                  "[MASK] sat on the mat", "the zorblax is [MASK]"],
    "bpe": ["The capital of France is <mask>.", "John lives in<mask> and works in Paris.",
            "<mask> sat on the mat"],
}


@pytest.mark.parametrize("name", ["bert-mlm", "roberta-mlm", "distilbert-mlm"])
def test_fill_mask_matches_transformers(built, name):
    d, _, _ = built(name)
    ours = tfm.pipeline("fill-mask", model=d)
    ref = hf_pipeline("fill-mask", built, name)
    texts = FILL_TEXTS[MODELS[name][2]]
    for text in texts:
        assert_same(ours(text), ref(text), text)  # default top_k = 5
        assert_same(ours(text, top_k=2), ref(text, top_k=2), text)
    assert_same(ours(texts, top_k=3), ref(texts, top_k=3), "batch")
    # a one-element list returns the inner result, as transformers
    assert_same(ours(texts[:1]), ref(texts[:1]), "one-element list")


@pytest.mark.parametrize("name", ["bert-mlm", "roberta-mlm"])
def test_fill_mask_several_masks(built, name):
    d, _, tok = built(name)
    m = tok.mask_token
    texts = [f"the {m} of france is {m} .", f"{m} {m} {m} sat on the mat"]
    ours = tfm.pipeline("fill-mask", model=d)
    ref = hf_pipeline("fill-mask", built, name)
    for text in texts:
        got = ours(text, top_k=4)
        assert len(got) == text.count(m) and all(len(row) == 4 for row in got)
        assert_same(got, ref(text, top_k=4), text)
    assert_same(ours(texts + ["the [UNK] is " + m], top_k=2), ref(texts + ["the [UNK] is " + m], top_k=2))


def test_fill_mask_targets(built):
    d, _, _ = built("bert-mlm")
    ours = tfm.pipeline("fill-mask", model=d)
    ref = hf_pipeline("fill-mask", built, "bert-mlm")
    text = "the capital of france is [MASK] ."
    for targets in (["paris", "london", "york"], "river", ["paris", "paris", "cat"]):
        assert_same(ours(text, targets=targets), ref(text, targets=targets), str(targets))
        assert_same(ours(text, targets=targets, top_k=1), ref(text, targets=targets, top_k=1), str(targets))
    # a target outside the vocabulary: its first piece, with a warning
    with pytest.warns(UserWarning, match="zorblax.*'z'"):
        got = ours(text, targets=["zorblax", "paris"])
    assert_same(got, ref(text, targets=["zorblax", "paris"]), "multi-piece target")
    assert {r["token_str"] for r in got} == {"z", "paris"}
    # the score of a target is its probability under the full softmax
    full = {r["token"]: r["score"] for r in ours(text, top_k=200)}
    assert all(abs(r["score"] - full[r["token"]]) < 1e-7 for r in got)


def test_fill_mask_pretraining_model_object(built):
    """A model object (BERT pre-training heads) with the tokenizer from its folder."""
    d, _, _ = built("bert-pretraining")
    model = tfm.AutoModelForPreTraining.from_pretrained(d)
    ours = tfm.pipeline("fill-mask", model=model)  # tokenizer from model.name_or_path
    tok = tfm.AutoTokenizer.from_pretrained(d)
    explicit = tfm.pipeline("fill-mask", model=model, tokenizer=tok)
    mlm = tfm.pipeline("fill-mask", model=d)
    text = "the [MASK] of france is [MASK] ."
    assert_same(ours(text), mlm(text))
    assert_same(explicit(text), mlm(text))


def test_fill_mask_batching_does_not_change_results(built):
    d, _, _ = built("roberta-mlm")
    texts = FILL_TEXTS["bpe"] * 2
    one = tfm.pipeline("fill-mask", model=d, batch_size=1)(texts)
    many = tfm.pipeline("fill-mask", model=d, batch_size=4)(texts)
    assert_same(many, one)


# ------------------------------------------------------------------------------------------------------------
# fill-mask sampling
# ------------------------------------------------------------------------------------------------------------
def reference_filtered(built, name, text, temperature, top_p, top_k=None):
    """The filtered MLM distribution at the mask, from transformers' logits and warpers (float64)."""
    import torch
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    _, model, tok = built(name)
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits[0]
    pos = int((enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0])
    z = logits[pos][None]
    z = TemperatureLogitsWarper(temperature)(enc["input_ids"], z)
    if top_k is not None:
        z = TopKLogitsWarper(top_k)(enc["input_ids"], z)
    z = TopPLogitsWarper(top_p)(enc["input_ids"], z)
    return torch.softmax(z[0].double(), -1).numpy()


def test_fill_mask_sampling_follows_the_filtered_distribution(built):
    from scipy.stats import chisquare

    d, _, _ = built("bert-mlm")
    fill = tfm.pipeline("fill-mask", model=d)
    text = "the capital of france is [MASK] ."
    p = reference_filtered(built, "bert-mlm", text, 0.8, 0.9)
    support = np.flatnonzero(p > 0)
    assert 5 <= len(support) < len(p), "the filter should keep several tokens and drop some"
    n = 20000
    draws = fill(text, do_sample=True, temperature=0.8, top_p=0.9, num_samples=n, seed=1)
    assert len(draws) == n and list(draws[0]) == ["score", "token", "token_str", "sequence"]
    tokens = np.array([r["token"] for r in draws])
    assert set(tokens) <= set(support), "a token outside the filtered support was drawn"
    for r in draws[:200]:  # score = probability under the filtered distribution
        assert abs(r["score"] - p[r["token"]]) < SCORE_TOL
    counts = np.bincount(tokens, minlength=len(p))[support]
    stat, pvalue = chisquare(counts, n * p[support] / p[support].sum())
    assert pvalue > 1e-3, f"χ² = {stat:.1f}, p = {pvalue:.2g}: draws do not follow the filtered distribution"


def test_fill_mask_sampling_reproducible_and_per_mask(built):
    d, _, hf_tok = built("bert-mlm")
    fill = tfm.pipeline("fill-mask", model=d)
    text = "the [MASK] of france is [MASK] ."
    kw = dict(do_sample=True, temperature=1.3, top_k=30, min_p=0.01, num_samples=25)
    a, b = fill(text, seed=7, **kw), fill(text, seed=7, **kw)
    c = fill(text, seed=8, **kw)
    assert a == b
    assert [r["token"] for r in a[0]] != [r["token"] for r in c[0]]
    assert len(a) == 2 and all(len(row) == 25 for row in a)
    # a text's draws do not depend on its place in a batch (scores: up to the rounding of padded batches)
    batch = fill(["[MASK] sat on the mat", text], seed=7, **kw)
    assert_same(batch[1], a)
    # each sequence has the drawn token at its own mask and keeps the other mask
    ids = hf_tok(text)["input_ids"]
    where = [i for i, t in enumerate(ids) if t == hf_tok.mask_token_id]
    for m, row in enumerate(a):
        for r in row[:5]:
            filled = list(ids)
            filled[where[m]] = r["token"]
            assert r["sequence"] == hf_tok.decode(filled) and "[MASK]" in r["sequence"]
    # top_k as a filter: only the 30 most likely tokens can be drawn
    ranked = fill(text, top_k=30)
    for m in range(2):
        assert {r["token"] for r in a[m]} <= {r["token"] for r in ranked[m]}


def test_fill_mask_sampling_with_targets_and_greedy(built):
    d, _, _ = built("bert-mlm")
    fill = tfm.pipeline("fill-mask", model=d)
    text = "john lives in [MASK] york"
    targets = ["paris", "london", "cat"]
    draws = fill(text, do_sample=True, targets=targets, num_samples=300, seed=0)
    assert {r["token_str"] for r in draws} <= set(targets)
    # the distribution drawn from is the MLM distribution renormalised over the targets
    ranked = {r["token"]: r["score"] for r in fill(text, targets=targets)}
    for r in draws:
        assert abs(r["score"] - ranked[r["token"]] / sum(ranked.values())) < SCORE_TOL
    best = fill(text, top_k=1)[0]
    greedy = fill(text, do_sample=True, temperature=0.0, num_samples=5, seed=3)
    assert {r["token"] for r in greedy} == {best["token"]} and all(r["score"] == 1.0 for r in greedy)


# ------------------------------------------------------------------------------------------------------------
# text-classification
# ------------------------------------------------------------------------------------------------------------
CLASSIFY = ["the cat sat on the mat .", "paris is the capital of france", "", "zorblax runs tomorrow !"]


@pytest.mark.parametrize("name", ["bert-seq", "bert-multi", "bert-regression"])
def test_text_classification_matches_transformers(built, name):
    d, _, _ = built(name)
    ours = tfm.pipeline("text-classification", model=d)
    ref = hf_pipeline("text-classification", built, name)
    for text in CLASSIFY[:2]:
        assert_same(ours(text), ref(text), text)  # legacy: [{"label", "score"}]
        for top_k in (1, 2, None):
            assert_same(ours(text, top_k=top_k), ref(text, top_k=top_k), f"{text} top_k={top_k}")
        for fn in ("softmax", "sigmoid", "none"):
            assert_same(ours(text, function_to_apply=fn, top_k=None), ref(text, function_to_apply=fn, top_k=None))
    assert_same(ours(CLASSIFY), ref(CLASSIFY), "batch")
    assert_same(ours(CLASSIFY, top_k=None), ref(CLASSIFY, top_k=None), "batch, all labels")
    pair = {"text": "the cat sat on the mat", "text_pair": "the dog sat on the car"}
    assert_same(ours(pair), ref(pair), "pair")  # a dict gives a bare dict
    mixed = [pair, {"text": "the cat"}, {"text": "the cat", "text_pair": ""}, "the cat"]
    assert_same(ours(mixed), ref(mixed), "pairs, single texts and an empty pair (no pair, as transformers)")
    assert_same(ours([pair, {"text": "one", "text_pair": "two"}], top_k=2),
                ref([pair, {"text": "one", "text_pair": "two"}], top_k=2), "pairs")


def test_text_classification_alias_and_defaults(built):
    d, _, _ = built("bert-seq")
    ours = tfm.pipeline("sentiment-analysis", model=d, top_k=None)
    ref = hf_pipeline("sentiment-analysis", built, "bert-seq", top_k=None)
    assert isinstance(ours, tfm.pipelines.TextClassificationPipeline)
    # top_k as a pipeline default: all labels, and (transformers' quirk) one more list around a string's result
    got = ours(CLASSIFY[0])
    assert_same(got, ref(CLASSIFY[0]))
    assert len(got) == 1 and {r["label"] for r in got[0]} == {"neg", "neutral", "pos"}
    assert_same(ours(CLASSIFY[0], top_k=2), ref(CLASSIFY[0], top_k=2))
    assert_same(ours(CLASSIFY[:2]), ref(CLASSIFY[:2]))


# ------------------------------------------------------------------------------------------------------------
# token-classification
# ------------------------------------------------------------------------------------------------------------
TOKEN_TEXTS = {
    "wordpiece": ["John Smith lives in New York .", "mary walked to zorblaxing city yesterday", "",
                  "the café in paris , london and quixotic england", "she runs to straße",
                  " ".join(WORDS)],  # longer than model_max_length = 60: truncated, as transformers
    "bpe": ["John Smith lives in New York.", "Mary walked to Zorblaxing city yesterday", "",
            "The café in Paris, London and quixotic England"],
}


# every strategy on WordPiece; on byte-level BPE (no "##" marks: the spaces heuristic) three of them
TOKEN_CASES = [("bert-token", s) for s in ("none", "simple", "first", "average", "max")] + \
    [("roberta-token", s) for s in ("simple", "first", "average")]


@pytest.mark.parametrize("name,strategy", TOKEN_CASES, ids=[f"{n}-{s}" for n, s in TOKEN_CASES])
def test_token_classification_matches_transformers(built, name, strategy):
    d, _, _ = built(name)
    ours = tfm.pipeline("token-classification", model=d, aggregation_strategy=strategy)
    ref = hf_pipeline("token-classification", built, name, aggregation_strategy=strategy)
    texts = TOKEN_TEXTS[MODELS[name][2]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # roberta's byte-level BPE: "no word pieces" fallback warning
        for text in texts:
            got = ours(text)
            assert_same(got, ref(text), f"{strategy}: {text!r}")
            for ent in got:  # spans index the input text
                assert 0 <= ent["start"] <= ent["end"] <= len(text)
        assert_same(ours(texts, ignore_labels=[]), ref(texts, ignore_labels=[]), f"{strategy}: batch, all labels")


def test_token_classification_spans_and_pieces(built):
    """Word pieces of one word end up in one entity with "first"; spans are character offsets; [UNK]
    words keep their text."""
    d, _, _ = built("bert-token")
    ours = tfm.pipeline("token-classification", model=d, ignore_labels=[])
    text = "mary walked to zorblaxing city with the straße"
    tokens = ours(text)
    words = ours(text, aggregation_strategy="first")
    assert [t["word"] for t in tokens][:5] == ["mary", "walked", "to", "z", "##o"]
    assert any(t["word"] == "straße" for t in tokens)  # [UNK]: its text in the sentence
    for t in tokens:
        assert text[t["start"]:t["end"]] == t["word"].lstrip("#")
    # each word of the text lies inside exactly one group
    starts = [w["start"] for w in words]
    for word_start in (0, 5, 12, 15, 26):
        assert sum(1 for w in words if w["start"] <= word_start < w["end"]) == 1, word_start
    assert starts == sorted(starts)
    assert all(text[w["start"]:w["end"]].replace(" ", "") == w["word"].replace(" ", "") for w in words)


def test_token_classification_fallback_warns(built):
    d, _, _ = built("roberta-token")
    ours = tfm.pipeline("token-classification", model=d, aggregation_strategy="max")
    with pytest.warns(UserWarning, match="word boundaries are guessed"):
        ours("John walked")


# ------------------------------------------------------------------------------------------------------------
# next-sentence / sentence-order
# ------------------------------------------------------------------------------------------------------------
PAIRS = [("the cat sat on the mat .", "the dog sat on the car ."), ("john lives in paris", "it rains today"),
         ("he walked", "zorblax")]


def reference_pair_probs(built, name, pairs):
    import torch

    _, model, tok = built(name)
    out = []
    for a, b in pairs:
        with torch.no_grad():
            res = model(**tok(a, b, return_tensors="pt"))
        logits = res.sop_logits if name.startswith("albert") else \
            getattr(res, "seq_relationship_logits", None) if name == "bert-pretraining" else res.logits
        out.append(torch.softmax(logits[0].double(), -1).numpy())
    return out


@pytest.mark.parametrize("task,name,labels", [
    ("next-sentence", "bert-nsp", ("IsNext", "NotNext")),
    ("next-sentence", "bert-pretraining", ("IsNext", "NotNext")),
    ("sentence-order", "albert-pretraining", ("in order", "swapped")),
])
def test_sentence_pair_scores(built, task, name, labels):
    d, _, _ = built(name)
    pipe = tfm.pipeline(task, model=d) if name != "bert-pretraining" else \
        tfm.pipeline(task, model=tfm.AutoModelForPreTraining.from_pretrained(d))
    refs = reference_pair_probs(built, name, PAIRS)
    results = [pipe(a, b) for a, b in PAIRS]
    assert_same(pipe([a for a, _ in PAIRS], [b for _, b in PAIRS]), results)  # one padded batch
    assert_same(pipe(PAIRS), results)
    for res, p in zip(results, refs):
        assert list(res) == ["label", "score", "scores"] and list(res["scores"]) == list(labels)
        assert res["label"] == labels[int(np.argmax(p))]
        assert abs(res["score"] - p.max()) <= SCORE_TOL
        assert all(abs(res["scores"][lab] - p[i]) <= SCORE_TOL for i, lab in enumerate(labels))


# ------------------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------------------
def test_fill_mask_without_mask_token_is_refused(built):
    d, _, _ = built("bert-mlm")
    fill = tfm.pipeline("fill-mask", model=d)
    with pytest.raises(ValueError, match=r"no mask token \(\[MASK\]\).*input 1"):
        fill(["the [MASK] sat", "nothing to fill here"])
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        fill("[mask ] is not the mask token")  # lower-cased text is still not the special token
    d, _, _ = built("roberta-mlm")
    with pytest.raises(ValueError, match="<mask>"):
        tfm.pipeline("fill-mask", model=d)("no mask here [MASK]")


def test_bad_task_model_and_options(built, tmp_path):
    d, _, _ = built("bert-mlm")
    with pytest.raises(ValueError, match="unknown task 'fill_mask'.*fill-mask.*text-classification.*"
                                         "token-classification.*next-sentence.*sentence-order"):
        tfm.pipeline("fill_mask", model=d)
    # a checkpoint without the head the task needs
    base, _, _ = built("bert-base")
    with pytest.raises(ValueError, match="fill-mask pipeline.*masked-lm head"):
        tfm.pipeline("fill-mask", model=base)
    with pytest.raises(ValueError, match="sentence-order.*ALBERT.*'bert'"):
        tfm.pipeline("sentence-order", model=d)
    with pytest.raises(ValueError, match="next-sentence pipeline.*unsupported model_type 'roberta'"):
        tfm.pipeline("next-sentence", model=built("roberta-mlm")[0])
    tok = tfm.AutoTokenizer.from_pretrained(d)
    with pytest.raises(ValueError, match="fill-mask pipeline needs a masked-LM head.*EncoderModel"):
        tfm.pipeline("fill-mask", model=tfm.AutoModel.from_pretrained(base), tokenizer=tok)
    with pytest.raises(ValueError, match="text-classification pipeline needs a sequence-classification head"):
        tfm.pipeline("text-classification", model=tfm.AutoModelForMaskedLM.from_pretrained(d), tokenizer=tok)
    with pytest.raises(ValueError, match="sentence-order.*bert pre-training model has no SOP head"):
        tfm.pipeline("sentence-order", model=tfm.AutoModelForPreTraining.from_pretrained(built("bert-pretraining")[0]))
    # a model object whose folder has no tokenizer, and no tokenizer given
    bare = tmp_path / "no-tokenizer"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        (bare / f).write_bytes((d / f).read_bytes())
    with pytest.raises(ValueError, match="tokenizer"):
        tfm.pipeline("fill-mask", model=tfm.AutoModelForMaskedLM.from_pretrained(bare))
    with pytest.raises(FileNotFoundError):
        tfm.pipeline("fill-mask", model=tmp_path / "missing")
    # options
    with pytest.raises(TypeError, match="no option.*'topk'.*top_k"):
        tfm.pipeline("fill-mask", model=d, topk=3)
    fill = tfm.pipeline("fill-mask", model=d)
    with pytest.raises(TypeError, match="no option"):
        fill("a [MASK]", aggregation_strategy="first")
    with pytest.raises(ValueError, match="temperature only apply when sampling.*do_sample=True"):
        fill("a [MASK]", temperature=0.5)
    with pytest.raises(ValueError, match="top_p"):
        fill("a [MASK]", do_sample=True, top_p=1.5)
    with pytest.raises(ValueError, match="top_k"):
        fill("a [MASK]", top_k=0)
    with pytest.raises(ValueError, match="seed"):
        fill("a [MASK]", do_sample=True, seed="zero")
    with pytest.raises(TypeError, match="string"):
        fill(3)
    with pytest.raises(ValueError, match="empty"):
        fill([])
    with pytest.raises(ValueError, match="targets"), pytest.warns(UserWarning, match="no tokens"):
        fill("a [MASK]", targets=[""])
    tc = tfm.pipeline("token-classification", model=built("bert-token")[0])
    with pytest.raises(ValueError, match="aggregation_strategy must be one of none, simple, first"):
        tc("john", aggregation_strategy="longest")
    cls = tfm.pipeline("text-classification", model=built("bert-seq")[0])
    with pytest.raises(ValueError, match="function_to_apply"):
        cls("a text", function_to_apply="argmax")
    with pytest.raises(ValueError, match="'text'"):
        cls({"txt": "a"})
    with pytest.raises(ValueError, match="tokenizer_kwargs must not set"):
        cls("a text", tokenizer_kwargs={"padding": True})
    nsp = tfm.pipeline("next-sentence", model=built("bert-nsp")[0])
    with pytest.raises(TypeError, match="two texts"):
        nsp("only one text")
    with pytest.raises(ValueError, match="same length"):
        nsp(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="empty"):
        nsp("a sentence", " ")
