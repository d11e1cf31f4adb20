"""Loading GPT checkpoints from every file format, and refusing bad files and bad inputs clearly.

Specification: issue 2 §3 (formats, prefixes, buffers, tied weights, errors) and "Bad input".
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import parity_error

import tfm
from tfm.checkpoint import CheckpointError

TOL = 1e-4


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory, torch_module):
    import transformers as T

    torch_module.manual_seed(7)
    cfg = T.GPT2Config(n_layer=2, n_embd=48, n_head=4, vocab_size=211, n_positions=40, initializer_range=0.2)
    hf = T.GPT2LMHeadModel(cfg).eval()
    root = tmp_path_factory.mktemp("gpt2-formats")
    dirs = {}
    dirs["safetensors"] = root / "st"
    hf.save_pretrained(dirs["safetensors"], safe_serialization=True)
    dirs["bin"] = root / "bin"
    hf.save_pretrained(dirs["bin"], safe_serialization=False)
    dirs["sharded-st"] = root / "sharded-st"
    hf.save_pretrained(dirs["sharded-st"], safe_serialization=True, max_shard_size="60KB")
    dirs["sharded-bin"] = root / "sharded-bin"
    hf.save_pretrained(dirs["sharded-bin"], safe_serialization=False, max_shard_size="60KB")
    dirs["bare"] = root / "bare"
    hf.transformer.save_pretrained(dirs["bare"])  # saved from GPT2Model: no "transformer." prefix
    ids = np.random.default_rng(0).integers(0, 211, size=(2, 11))
    import torch

    with torch.no_grad():
        ref = hf(torch.as_tensor(ids)).logits.numpy()
    return dict(hf=hf, dirs=dirs, ids=ids, ref=ref, root=root)


@pytest.mark.parametrize("fmt", ["safetensors", "bin", "sharded-st", "sharded-bin", "bare"])
def test_every_format_gives_the_same_logits(gpt2, fmt):
    d = gpt2["dirs"][fmt]
    if fmt.startswith("sharded"):
        assert any(p.name.endswith(".index.json") for p in d.iterdir()), "the save did not shard"
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    logits = model(gpt2["ids"]).logits
    assert parity_error(logits, gpt2["ref"]) <= TOL
    reference = tfm.AutoModelForCausalLM.from_pretrained(gpt2["dirs"]["safetensors"])(gpt2["ids"]).logits
    assert np.array_equal(logits, reference), f"{fmt} differs from the safetensors load"


def test_bare_model_from_lm_head_file_strips_prefix(gpt2):
    bare = tfm.AutoModel.from_pretrained(gpt2["dirs"]["safetensors"])
    import torch

    with torch.no_grad():
        ref = gpt2["hf"].transformer(torch.as_tensor(gpt2["ids"])).last_hidden_state.numpy()
    assert parity_error(bare(gpt2["ids"]).last_hidden_state, ref) <= TOL


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_files(gpt2, tmp_path, dtype, torch_module):
    import transformers as T

    hf16 = T.GPT2LMHeadModel.from_pretrained(gpt2["dirs"]["safetensors"], torch_dtype=getattr(torch_module, dtype))
    hf16.save_pretrained(tmp_path, safe_serialization=(dtype == "float16"))
    hf32 = T.GPT2LMHeadModel.from_pretrained(tmp_path, torch_dtype=torch_module.float32).eval()
    with torch_module.no_grad():
        ref = hf32(torch_module.as_tensor(gpt2["ids"])).logits.numpy()
    model = tfm.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert parity_error(model(gpt2["ids"]).logits, ref) <= TOL
    # the rounding to half precision really happened (the file is not float32 in disguise)
    assert not np.allclose(ref, gpt2["ref"], atol=1e-6)


def rewrite_safetensors(src_dir, dst_dir, edit):
    """Copies a checkpoint folder, applying edit(dict of numpy arrays) to its weights."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(src_dir, dst_dir)
    tensors = load_file(str(src_dir / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(dst_dir / "model.safetensors"), metadata={"format": "pt"})
    return dst_dir


def test_buffers_and_duplicate_tied_head_are_ignored(gpt2, tmp_path):
    def add(t):
        for i in range(2):
            t[f"transformer.h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 40, 40), dtype=np.float32))
            t[f"transformer.h.{i}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
        t["lm_head.weight"] = np.zeros_like(t["transformer.wte.weight"])  # tied: must not be used

    d = rewrite_safetensors(gpt2["dirs"]["safetensors"], tmp_path / "m", add)
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    assert parity_error(model(gpt2["ids"]).logits, gpt2["ref"]) <= TOL
    assert model.unexpected_keys == []


def test_missing_tensor_is_named(gpt2, tmp_path):
    d = rewrite_safetensors(gpt2["dirs"]["safetensors"], tmp_path / "m",
                            lambda t: t.pop("transformer.h.1.mlp.c_fc.weight"))
    with pytest.raises(ValueError, match=r"missing tensor h\.1\.mlp\.c_fc\.weight"):
        tfm.AutoModelForCausalLM.from_pretrained(d)


def test_untied_config_without_head_is_refused(gpt2, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(gpt2["dirs"]["safetensors"], d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["tie_word_embeddings"] = False
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="missing tensor lm_head.weight"):
        tfm.AutoModelForCausalLM.from_pretrained(d)


def test_shape_mismatch_names_tensor_and_shapes(gpt2, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(gpt2["dirs"]["safetensors"], d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["vocab_size"] = 200
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"shape of transformer\.wte\.weight is \(211, 48\), expected \(200, 48\)"):
        tfm.AutoModelForCausalLM.from_pretrained(d)


def test_config_errors(gpt2, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(gpt2["dirs"]["safetensors"], d)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(dict(cfg, model_type="llama")))
    with pytest.raises(ValueError, match=r"unsupported model_type 'llama'.*gpt2"):
        tfm.AutoModelForCausalLM.from_pretrained(d)
    (d / "config.json").write_text(json.dumps(dict(cfg, n_head=5)))
    with pytest.raises(ValueError, match=r"n_embd \(48\) is not divisible by n_head \(5\)"):
        tfm.AutoModelForCausalLM.from_pretrained(d)
    (d / "config.json").write_text(json.dumps(dict(cfg, activation_function="swiglu")))
    with pytest.raises(ValueError, match="unsupported activation 'swiglu'"):
        tfm.AutoModelForCausalLM.from_pretrained(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        tfm.AutoModelForCausalLM.from_pretrained(d)


def test_not_a_checkpoint_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tfm.AutoModelForCausalLM.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        tfm.AutoModelForCausalLM.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_embd": 8, "n_head": 2,
                                                       "vocab_size": 10, "n_positions": 8}))
    with pytest.raises(FileNotFoundError):
        tfm.AutoModelForCausalLM.from_pretrained(tmp_path)  # config but no weights


def test_truncated_weights_file(gpt2, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(gpt2["dirs"]["safetensors"], d)
    f = d / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        tfm.AutoModelForCausalLM.from_pretrained(d)


# ---------------------------------------------------------------------------------------------
# Bad inputs to forward: each a clear exception, never a crash or silent garbage
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(gpt2):
    return tfm.AutoModelForCausalLM.from_pretrained(gpt2["dirs"]["safetensors"])


def test_token_ids_out_of_range(model):
    with pytest.raises(ValueError, match=r"input_ids contains 211 .*\[0, 211\)"):
        model(np.array([[1, 2, 211]]))
    with pytest.raises(ValueError, match=r"input_ids contains -1"):
        model(np.array([[1, -1]]))
    with pytest.raises(ValueError, match="input_ids contains"):
        model(np.array([[2**40]], dtype=np.int64))
    with pytest.raises(ValueError, match="input_ids contains"):
        model(np.array([[2**63 + 5]], dtype=np.uint64))


def test_wrong_input_types_and_shapes(model):
    with pytest.raises(TypeError, match="input_ids must hold integers"):
        model(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="input_ids must be 2-D"):
        model(np.zeros((1, 2, 3), dtype=np.int64))
    with pytest.raises(TypeError):
        model(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 4\), expected \(2, 5\)"):
        model(np.ones((2, 5), dtype=np.int64), attention_mask=np.ones((2, 4)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        model(np.ones((1, 3), dtype=np.int64), attention_mask=np.array([[1, 2, 1]]))


def test_non_contiguous_and_other_integer_types_are_accepted(model):
    ids = np.random.default_rng(1).integers(0, 211, size=(3, 20))
    expected = model(np.ascontiguousarray(ids[:, ::2])).logits
    assert np.array_equal(model(ids[:, ::2]).logits, expected)
    assert np.array_equal(model(np.asfortranarray(ids[:, ::2]).astype(np.int16)).logits, expected)
    assert np.array_equal(model(ids[:, ::2].tolist()).logits, expected)


def test_sequence_longer_than_n_positions(model):
    with pytest.raises(ValueError, match="exceeds the model's maximum of 40 positions"):
        model(np.zeros((1, 41), dtype=np.int64))
    out = model(np.zeros((1, 38), dtype=np.int64), use_cache=True)
    model(np.zeros((1, 2), dtype=np.int64), past_key_values=out.past_key_values)  # 40: allowed
    with pytest.raises(ValueError, match=r"exceeds the model's maximum of 40 positions"):
        model(np.zeros((1, 1), dtype=np.int64), past_key_values=out.past_key_values)
    with pytest.raises(ValueError, match="position_ids contains 40"):
        model(np.zeros((1, 2), dtype=np.int64), position_ids=np.array([[0, 40]]))


def test_cache_of_another_model_is_refused(model, gpt2):
    other = tfm.AutoModelForCausalLM.from_pretrained(gpt2["dirs"]["bin"])
    cache = other(np.zeros((1, 3), dtype=np.int64), use_cache=True).past_key_values
    with pytest.raises(ValueError, match="belong to another model"):
        model(np.zeros((1, 1), dtype=np.int64), past_key_values=cache)
    with pytest.raises(TypeError, match="past_key_values must be a KVCache"):
        model(np.zeros((1, 1), dtype=np.int64), past_key_values=((np.zeros(1), np.zeros(1)),))
    with pytest.raises(ValueError, match="hold 1 rows but input_ids has batch 2"):
        other(np.zeros((2, 1), dtype=np.int64), past_key_values=cache)
