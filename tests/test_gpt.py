"""GPT family (gpt2, openai-gpt, gpt_neo) against transformers + PyTorch on the same files.

Specification: issue 2 §2 and §5. Tolerance: max|Δ| ≤ 1e-4 · max(1, max|ref|) (parity_error).
Models are random-initialised with a range of init scales so logits are not all near zero.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from conftest import parity_error

import tfm

TOL = 1e-4

# (name, model_type, config kwargs). ≥ 6 gpt2 and ≥ 2 openai-gpt configurations, varying layers,
# heads, width, n_inner, activation, epsilon, n_positions, the three attention flags, tied/untied
# heads and vocabulary sizes that are not multiples of 8.
CONFIGS = [
    ("gpt2-base", "gpt2", dict(n_layer=2, n_embd=64, n_head=4, vocab_size=101, n_positions=48)),
    ("gpt2-inner-erf", "gpt2", dict(n_layer=3, n_embd=32, n_head=2, n_inner=80, activation_function="gelu",
                                    layer_norm_epsilon=1e-3, vocab_size=257, n_positions=40, initializer_range=0.2)),
    ("gpt2-unscaled-relu", "gpt2", dict(n_layer=2, n_embd=48, n_head=6, activation_function="relu",
                                        scale_attn_weights=False, vocab_size=99, n_positions=32, initializer_range=0.1)),
    ("gpt2-layeridx-upcast", "gpt2", dict(n_layer=4, n_embd=32, n_head=4, activation_function="quick_gelu",
                                          scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True,
                                          vocab_size=131, n_positions=24, initializer_range=0.3)),
    ("gpt2-untied-silu", "gpt2", dict(n_layer=2, n_embd=40, n_head=5, activation_function="silu",
                                      tie_word_embeddings=False, vocab_size=77, n_positions=30, initializer_range=0.15)),
    ("gpt2-one-head-fast", "gpt2", dict(n_layer=1, n_embd=16, n_head=1, activation_function="gelu_fast",
                                        vocab_size=1001, n_positions=20, initializer_range=0.5)),
    ("gpt2-tanh-mish", "gpt2", dict(n_layer=2, n_embd=24, n_head=3, n_inner=17, activation_function="mish",
                                    vocab_size=53, n_positions=36, layer_norm_epsilon=1e-6, initializer_range=0.25)),
    ("openai-gpt-gelu", "openai-gpt", dict(n_layer=2, n_embd=64, n_head=4, vocab_size=103, n_positions=40,
                                           afn="gelu", initializer_range=0.1)),
    ("openai-gpt-relu-untied", "openai-gpt", dict(n_layer=3, n_embd=32, n_head=2, vocab_size=61, n_positions=28,
                                                  afn="relu", tie_word_embeddings=False, initializer_range=0.2,
                                                  layer_norm_epsilon=1e-4)),
    ("openai-gpt-silu", "openai-gpt", dict(n_layer=1, n_embd=24, n_head=6, vocab_size=45, n_positions=24, afn="silu",
                                           initializer_range=0.3)),
    ("gpt-neo-mixed", "gpt_neo", dict(num_layers=2, hidden_size=32, num_heads=4, vocab_size=97,
                                      max_position_embeddings=40, attention_types=[[["global", "local"], 1]],
                                      window_size=4, initializer_range=0.2)),
    ("gpt-neo-local", "gpt_neo", dict(num_layers=3, hidden_size=24, num_heads=2, intermediate_size=40,
                                      vocab_size=71, max_position_embeddings=32, attention_types=[[["local"], 3]],
                                      window_size=3, initializer_range=0.3)),
]


def hf_classes(model_type):
    import transformers as T

    return {
        "gpt2": (T.GPT2Config, T.GPT2LMHeadModel),
        "openai-gpt": (T.OpenAIGPTConfig, T.OpenAIGPTLMHeadModel),
        "gpt_neo": (T.GPTNeoConfig, T.GPTNeoForCausalLM),
    }[model_type]


@pytest.fixture(scope="module")
def built(tmp_path_factory, torch_module):
    """name → (directory, transformers model in eval mode), built lazily and cached."""
    cache = {}

    def get(name):
        if name not in cache:
            _, model_type, kw = next(c for c in CONFIGS if c[0] == name)
            cfg_cls, model_cls = hf_classes(model_type)
            torch_module.manual_seed(sum(map(ord, name)))
            hf = model_cls(cfg_cls(**kw)).eval()
            hf.config._attn_implementation = "eager"  # attentions are only returned by eager attention
            d = tmp_path_factory.mktemp(name)
            hf.save_pretrained(d, safe_serialization=True)
            cache[name] = (d, hf)
        return cache[name]

    return get


def reference(hf, ids, **kw):
    import torch

    with torch.no_grad():
        return hf(torch.as_tensor(ids), **kw)


NAMES = [c[0] for c in CONFIGS]


@pytest.mark.parametrize("name", NAMES)
def test_logits_hidden_states_attentions_match(built, name):
    d, hf = built(name)
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids = np.random.default_rng(1).integers(0, hf.config.vocab_size, size=(2, 13))
    out = model(ids, output_hidden_states=True, output_attentions=True)
    ref = reference(hf, ids, output_hidden_states=True, output_attentions=True)
    assert out.logits.dtype == np.float32 and out.logits.shape == tuple(ref.logits.shape)
    err = parity_error(out.logits, ref.logits.numpy())
    assert err <= TOL, f"{name}: logits differ by {err:.3g}"
    assert len(out.hidden_states) == len(ref.hidden_states)
    for i, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states)):
        e = parity_error(a, b.numpy())
        assert e <= TOL, f"{name}: hidden_states[{i}] differ by {e:.3g}"
    assert len(out.attentions) == len(ref.attentions)
    for i, (a, b) in enumerate(zip(out.attentions, ref.attentions)):
        e = parity_error(a, b.numpy())
        assert e <= TOL, f"{name}: attentions[{i}] differ by {e:.3g}"


@pytest.mark.parametrize("name", ["gpt2-base", "gpt2-untied-silu", "openai-gpt-gelu", "gpt-neo-mixed"])
def test_bare_model_last_hidden_state(built, name):
    import transformers as T

    d, hf = built(name)
    bare = tfm.AutoModel.from_pretrained(d)
    ids = np.random.default_rng(2).integers(0, hf.config.vocab_size, size=(3, 7))
    ref = reference(hf.base_model if hasattr(hf, "base_model") else hf.transformer, ids)
    err = parity_error(bare(ids).last_hidden_state, ref.last_hidden_state.numpy())
    assert err <= TOL, f"{name}: last_hidden_state differs by {err:.3g}"
    assert isinstance(bare, tfm.GPTModel)


@pytest.mark.parametrize("name", ["gpt2-base", "gpt2-layeridx-upcast", "openai-gpt-relu-untied", "gpt-neo-local"])
def test_incremental_decoding_with_cache_equals_full_forward(built, name):
    d, hf = built(name)
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids = np.random.default_rng(3).integers(0, hf.config.vocab_size, size=(2, 12))
    full = model(ids).logits
    out = model(ids[:, :5], use_cache=True)
    cache = out.past_key_values
    assert cache.length == 5
    assert parity_error(out.logits, full[:, :5]) <= TOL
    pos = 5
    for step in (1, 3, 1, 2):  # chunks of different sizes, including single tokens
        chunk = ids[:, pos:pos + step]
        out = model(chunk, past_key_values=cache, use_cache=True)
        assert out.past_key_values is cache and cache.length == pos + step
        err = parity_error(out.logits, full[:, pos:pos + step])
        assert err <= TOL, f"{name}: cached step at {pos} differs by {err:.3g}"
        pos += step
    if hf.config.model_type == "openai-gpt":
        return  # transformers' OpenAI GPT has no cache to compare the exported layout with
    # the cache exported in transformers' layout equals transformers' own cache
    ref = reference(hf, ids, use_cache=True)
    legacy = ref.past_key_values
    legacy = legacy.to_legacy_cache() if hasattr(legacy, "to_legacy_cache") else legacy
    ours = cache.to_legacy()
    for (k, v), (rk, rv) in zip(ours, legacy):
        assert parity_error(k, rk.numpy()) <= TOL and parity_error(v, rv.numpy()) <= TOL


@pytest.mark.parametrize("name", ["gpt2-base", "gpt2-inner-erf", "openai-gpt-gelu", "gpt-neo-mixed"])
def test_left_padded_batch_equals_single_runs(built, name):
    d, hf = built(name)
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    rng = np.random.default_rng(4)
    lengths = [9, 4, 6]
    T = max(lengths)
    pad = 0
    ids = np.full((3, T), pad, dtype=np.int64)
    mask = np.zeros((3, T), dtype=np.int64)
    seqs = [rng.integers(1, hf.config.vocab_size, size=n) for n in lengths]
    for i, s in enumerate(seqs):
        ids[i, T - len(s):] = s
        mask[i, T - len(s):] = 1
    # positions as transformers' generate() derives them for left padding
    pos = np.cumsum(mask, axis=1) - 1
    pos[mask == 0] = 1
    batched = model(ids, attention_mask=mask, position_ids=pos).logits
    ref = reference(hf, ids, attention_mask=__import__("torch").as_tensor(mask),
                    position_ids=__import__("torch").as_tensor(pos)).logits.numpy()
    for i, s in enumerate(seqs):
        single = model(s[None, :]).logits[0]
        real = batched[i, T - len(s):]
        err = parity_error(real, single)
        assert err <= TOL, f"{name}: padded row {i} differs from its single run by {err:.3g}"
        assert parity_error(real, ref[i, T - len(s):]) <= TOL


def test_logits_to_keep_last_position_only(built):
    d, hf = built("gpt2-base")
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids = np.random.default_rng(5).integers(0, 101, size=(2, 10))
    full = model(ids).logits
    last = model(ids, logits_to_keep=1).logits
    assert last.shape == (2, 1, 101)
    np.testing.assert_allclose(last[:, 0], full[:, -1], rtol=0, atol=1e-5)
    assert model(ids, logits_to_keep=3).logits.shape == (2, 3, 101)


def test_two_threads_on_one_model_get_sequential_results(built):
    d, hf = built("gpt2-inner-erf")
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    rng = np.random.default_rng(6)
    inputs = [rng.integers(0, 257, size=(2, 30)) for _ in range(2)]
    expected = [model(x).logits for x in inputs]
    results = [None, None]
    errors = []
    barrier = threading.Barrier(2)

    def work(i):
        try:
            barrier.wait()
            for _ in range(5):
                results[i] = model(inputs[i]).logits
                assert np.array_equal(results[i], expected[i])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for r, e in zip(results, expected):
        assert np.array_equal(r, e)


def test_untied_head_really_used(built):
    """With tie_word_embeddings=False the LM head comes from lm_head.weight, not the embedding."""
    d, hf = built("gpt2-untied-silu")
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    assert not np.allclose(hf.lm_head.weight.detach().numpy(), hf.transformer.wte.weight.detach().numpy())
    ids = np.arange(10)[None, :]
    assert parity_error(model(ids).logits, reference(hf, ids).logits.numpy()) <= TOL


@pytest.mark.parametrize("rows", [[0, 1, 2, 3], [1, 0, 2, 3], [1, 2, 3, 0], [3, 3, 0, 1], [2, 2, 2, 2],
                                  [0, 0, 1, 1], [1, 1], [3, 2, 1, 0, 0, 1]])
def test_cache_reorder_gathers_rows(built, rows):
    """In-place moves (cycles, duplicates) and batch-size changes both gather the parent rows."""
    d, hf = built("gpt2-base")
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids = np.random.default_rng(8).integers(0, 101, size=(4, 6))
    cache = model(ids, use_cache=True).past_key_values
    k0, v0 = (np.stack(x) for x in zip(*cache.to_legacy()))
    cache.reorder(rows)
    k1, v1 = (np.stack(x) for x in zip(*cache.to_legacy()))
    assert np.array_equal(k1, k0[:, rows]) and np.array_equal(v1, v0[:, rows])
    # decoding after the reorder equals decoding the gathered prompts from scratch
    nxt = np.arange(len(rows))[:, None] % 101
    out = model(nxt, past_key_values=cache).logits[:, -1]
    ref = model(np.concatenate([ids[rows], nxt], axis=1)).logits[:, -1]
    assert parity_error(out, ref) <= TOL


@pytest.mark.parametrize("isa", ["scalar", "generic", "avx2", "avx512"])
def test_every_kernel_path_gives_the_same_model(built, isa):
    """prefill (many queries: transposed keys) and cached decode steps (one query: row-major keys), with a
    left-padded row, give the same logits on every kernel path (a path the CPU lacks falls back to one it
    has: select_isa reports which)"""
    d, hf = built("gpt2-inner-erf")
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    ids = np.random.default_rng(9).integers(0, hf.config.vocab_size, size=(2, 11))
    mask = np.ones_like(ids)
    mask[1, :3] = 0
    nxt = np.array([[5], [7]])

    def run():
        out = model(ids, attention_mask=mask, use_cache=True)
        step = model(nxt, attention_mask=np.concatenate([mask, np.ones_like(nxt)], axis=1),
                     past_key_values=out.past_key_values, use_cache=True)
        return out.logits * mask[..., None], step.logits

    fast = run()
    try:
        tfm._tfmcore.select_isa(isa)
        other = run()
    finally:
        tfm._tfmcore.select_isa("auto")
    assert parity_error(other[0], fast[0]) <= TOL
    assert parity_error(other[1], fast[1]) <= TOL
