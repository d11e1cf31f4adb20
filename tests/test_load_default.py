"""tfm.load_default (issue 5 §1): the embedded GPT and BERT load as tfm models whose outputs equal
transformers' on the same files; the tokenizer rides along; unknown names and tasks raise ValueError listing
what exists; a missing file raises FileNotFoundError naming it; pyproject ships the files."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import tfm
from tfm import defaults

from conftest import parity_error

ROOT = Path(__file__).resolve().parent.parent


def test_gpt_matches_transformers_on_the_shipped_files(torch_module):
    import transformers as T

    model, tok = tfm.load_default("gpt")
    assert isinstance(model, tfm.GPTForCausalLM) and model.tokenizer is tok
    ids = [tok.encode("The module provides a function that returns the value.")]
    ref = T.GPT2LMHeadModel.from_pretrained(defaults.path("gpt")).eval()
    with torch_module.no_grad():
        want = ref(torch_module.as_tensor(ids)).logits.numpy()
    assert parity_error(model(ids).logits, want) <= 1e-4
    assert model.generation_config is not None  # generation_config.json is used by generate()
    bare, _ = tfm.load_default("gpt", task="base")
    assert isinstance(bare, tfm.GPTModel)


def test_bert_matches_transformers_on_the_shipped_files(torch_module):
    import transformers as T

    model, tok = tfm.load_default("bert")
    assert isinstance(model, tfm.EncoderForPreTraining) and model.tokenizer is tok
    enc = tok(["The module returns a list.", "A second, longer sentence about files."],
              ["It is sorted.", "Another one."], padding=True, return_tensors="np")
    ref = T.BertForPreTraining.from_pretrained(defaults.path("bert")).eval()
    with torch_module.no_grad():
        want = ref(**{k: torch_module.as_tensor(v) for k, v in enc.items()})
    got = model(enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"])
    assert parity_error(got.prediction_logits, want.prediction_logits.numpy()) <= 1e-4
    assert parity_error(got.seq_relationship_logits, want.seq_relationship_logits.numpy()) <= 1e-4
    # the attached tokenizer is enough for a pipeline
    res = tfm.pipeline("fill-mask", model=model)("The [MASK] returns a list.", top_k=3)
    assert len(res) == 3 and all(r["token"] != tok.mask_token_id for r in res)
    mlm, _ = tfm.load_default("bert", task="masked-lm")
    assert isinstance(mlm, tfm.EncoderForMaskedLM)
    assert np.allclose(mlm(enc["input_ids"], attention_mask=enc["attention_mask"],
                           token_type_ids=enc["token_type_ids"]).logits, got.prediction_logits, atol=1e-5)


def test_unknown_names_and_tasks_list_what_exists():
    with pytest.raises(ValueError, match="gpt, bert"):
        tfm.load_default("llama")
    with pytest.raises(ValueError, match="causal-lm, base"):
        tfm.load_default("gpt", task="masked-lm")
    with pytest.raises(ValueError, match="pretraining, masked-lm, next-sentence, base"):
        tfm.load_default("bert", task="causal-lm")


def test_missing_files_raise_file_not_found(tmp_path, monkeypatch):
    shutil.copytree(defaults.path("gpt"), tmp_path / "gpt")
    (tmp_path / "gpt" / "model.safetensors").unlink()
    monkeypatch.setattr(defaults, "_HERE", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"lacks model\.safetensors"):
        tfm.load_default("gpt")
    with pytest.raises(FileNotFoundError, match="'bert'"):
        tfm.load_default("bert")


def test_pyproject_ships_the_default_files():
    text = (ROOT / "pyproject.toml").read_text()
    for pattern in ("defaults/*/*.json", "defaults/*/*.safetensors", "defaults/*/*.txt"):
        assert f'"{pattern}"' in text
