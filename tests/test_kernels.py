"""Every fast kernel path against its scalar twin (and float64 NumPy) on odd shapes.

The ISA paths are forced with _tfmcore.select_isa; paths the CPU lacks fall back (the name returned
says which ran), so the test always compares what actually executed.
"""
from __future__ import annotations

import numpy as np
import pytest

from tfm import _tfmcore

ISAS = ["scalar", "generic", "avx2", "avx512"]
ACTS = {"gelu_new": 1, "gelu": 2, "gelu_fast": 3, "quick_gelu": 4, "relu": 5, "silu": 6, "tanh": 7, "sigmoid": 8,
        "gelu_10": 9, "relu6": 10, "relu2": 11, "leaky_relu": 12, "mish": 13, "laplace": 14}


@pytest.fixture(params=ISAS)
def isa(request):
    chosen = _tfmcore.select_isa(request.param)
    yield chosen
    _tfmcore.select_isa("auto")


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (1, 33, 7), (3, 64, 768), (13, 100, 1030), (130, 97, 515),
                                   (25, 2304, 64), (97, 31, 3)])
def test_linear_matches_float64(isa, m, n, k):
    rng = np.random.default_rng(m * 1000 + n + k)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + b
    y = _tfmcore.linear(x, w, b)
    # fp32 accumulation over k terms of size ~1: error grows like sqrt(k)·eps·|terms|
    assert np.abs(y - ref).max() <= 2e-6 * k + 1e-5, f"{isa}: max error {np.abs(y - ref).max()}"
    np.testing.assert_allclose(_tfmcore.linear(x, w, b, naive=True), ref, atol=1e-4)
    np.testing.assert_array_equal(_tfmcore.linear(x, w), _tfmcore.linear(x, w, np.zeros(n, np.float32)))


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activations_match_scalar(isa, name):
    x = np.concatenate([np.linspace(-30, 30, 4001), [0.0, -0.0, 1e-8, -1e-8, 88.0, -88.0, 100.0, -100.0]])
    x = x.astype(np.float32)
    fast = _tfmcore.activation(x, ACTS[name])
    slow = _tfmcore.activation(x, ACTS[name], scalar=True)
    assert np.isfinite(fast).all()
    np.testing.assert_allclose(fast, slow, rtol=2e-6, atol=2e-6, err_msg=f"{isa} {name}")


def test_activation_formulas_against_numpy():
    """The scalar twins are the oracle, so they are checked against the formulas themselves."""
    from math import erf

    x = np.linspace(-6, 6, 241)
    verf = np.vectorize(erf)
    expected = {
        "gelu_new": 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
        "gelu": 0.5 * x * (1 + verf(x / np.sqrt(2))),
        "quick_gelu": x / (1 + np.exp(-1.702 * x)),
        "silu": x / (1 + np.exp(-x)),
        "relu2": np.maximum(x, 0) ** 2,
        "mish": x * np.tanh(np.log1p(np.exp(x))),
        "leaky_relu": np.where(x >= 0, x, 0.01 * x),
    }
    for name, ref in expected.items():
        got = _tfmcore.activation(x.astype(np.float32), ACTS[name], scalar=True)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=name)


def test_half_precision_conversion_is_exact():
    bits = np.arange(65536, dtype=np.uint16)
    f16 = bits.view(np.float16)
    got = _tfmcore.to_f32(f16, "f16")
    ref = f16.astype(np.float32)
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))
    assert same.all()
    bf = _tfmcore.to_f32(bits, "bf16")
    ref_bf = (bits.astype(np.uint32) << 16).view(np.float32)
    assert ((bf == ref_bf) | (np.isnan(bf) & np.isnan(ref_bf))).all()


def test_isa_selection_reports_what_runs():
    names = {_tfmcore.select_isa(i) for i in ISAS}
    _tfmcore.select_isa("auto")
    assert "scalar" in names and "generic" in names
    assert _tfmcore.isa in ISAS
    with pytest.raises(ValueError, match="unknown ISA"):
        _tfmcore.select_isa("sse9")


def test_logsumexp_through_generate_logprobs(isa):
    """token_logprobs use the store-free log-sum-exp kernel of the selected ISA path."""
    import tfm

    cfg = tfm.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=97, n_positions=32, initializer_range=0.5,
                         eos_token_id=96, bos_token_id=96)
    from tfm.models.gpt import GPTForCausalLM, random_state_dict

    model = GPTForCausalLM.from_state_dict(cfg, random_state_dict(cfg, seed=3))
    ids = np.array([[1, 2, 3]])
    out = model.generate(ids, max_new_tokens=4, do_sample=True, top_p=0.8, seed=0, return_dict_in_generate=True,
                         output_scores=True)
    for s, sc in enumerate(out.scores):
        z = sc[0].astype(np.float64)
        fin = np.isfinite(z)
        lse = np.log(np.exp(z[fin] - z[fin].max()).sum()) + z[fin].max()
        assert out.token_logprobs[0, s] == pytest.approx(z[out.sequences[0, 3 + s]] - lse, abs=1e-5)
