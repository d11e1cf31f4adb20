"""The embedded default models' files (python/tfm/defaults/{gpt,bert}): present, within the size budget,
consistent with their configs, and their tokenizers load with the `tokenizers` runtime dependency.
(Loading them as tfm models is tested with tfm.load_default.)"""
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

DEFAULTS = Path(__file__).resolve().parent.parent / "python" / "tfm" / "defaults"
NEEDED = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def test_both_models_ship_the_hf_layout_within_25_mb():
    total = 0
    for kind in ("gpt", "bert"):
        for name in NEEDED + (["generation_config.json"] if kind == "gpt" else []):
            path = DEFAULTS / kind / name
            assert path.is_file(), f"missing {path}"
        total += sum(p.stat().st_size for p in (DEFAULTS / kind).iterdir())
    assert total <= 25 * 1024 * 1024, f"defaults take {total / 2**20:.1f} MiB"


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_weights_match_the_config(kind):
    cfg = json.loads((DEFAULTS / kind / "config.json").read_text())
    w = load_file(str(DEFAULTS / kind / "model.safetensors"))
    assert all(np.isfinite(t).all() for t in w.values())
    if kind == "gpt":
        V, C, L, P = cfg["vocab_size"], cfg["n_embd"], cfg["n_layer"], cfg["n_positions"]
        assert w["transformer.wte.weight"].shape == (V, C)
        assert w["transformer.wpe.weight"].shape == (P, C)
        assert w[f"transformer.h.{L - 1}.attn.c_attn.weight"].shape == (C, 3 * C)  # Conv1D: [in, out]
        assert f"transformer.h.{L}.attn.c_attn.weight" not in w
    else:
        V, H, L = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]
        assert w["bert.embeddings.word_embeddings.weight"].shape == (V, H)
        assert w["bert.embeddings.position_embeddings.weight"].shape == (cfg["max_position_embeddings"], H)
        assert w[f"bert.encoder.layer.{L - 1}.attention.self.query.weight"].shape == (H, H)
        assert w["cls.seq_relationship.weight"].shape == (2, H)  # the NSP head
        assert w["cls.predictions.bias"].shape == (V,)


def test_gpt_tokenizer_round_trips_english_and_generation_config_is_nucleus():
    tok = Tokenizer.from_file(str(DEFAULTS / "gpt" / "tokenizer.json"))
    text = "The module provides a function that returns the value."
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text
    assert len(ids) < len(text) / 2  # BPE merges: far fewer tokens than characters
    assert tok.token_to_id("<|endoftext|>") == json.loads((DEFAULTS / "gpt" / "config.json").read_text())["eos_token_id"]
    gen = json.loads((DEFAULTS / "gpt" / "generation_config.json").read_text())
    assert gen["do_sample"] is True and gen["top_p"] == 0.9


def test_bert_tokenizer_is_uncased_wordpiece_with_cls_sep():
    tok = Tokenizer.from_file(str(DEFAULTS / "bert" / "tokenizer.json"))
    enc = tok.encode("The Module RETURNS a list.")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    assert enc.tokens[1] == "the" and "returns" in enc.tokens
    pair = tok.encode("First part.", "Second part.")
    assert pair.tokens.count("[SEP]") == 2 and pair.type_ids[-1] == 1 and pair.type_ids[0] == 0
    for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
        assert tok.token_to_id(special) is not None
