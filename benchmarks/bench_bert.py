"""BERT-base encoder throughput: tfm vs PyTorch (transformers BertModel) on the same random weights.

    python benchmarks/bench_bert.py [--batch 8] [--seq 128] [--repeats 5] [--profile]

Shape: transformers' BertConfig() defaults (12 layers, 768 wide, 12 heads, 3072 MLP), batch 8 × 128
tokens, full attention mask. Both run with the same thread count (tfm's OpenMP threads); PyTorch in
torch.no_grad() with its default attention (SDPA). Warm-up, then the best of --repeats runs each,
interleaved so machine load hits both alike. Prints sequences/s for both and the ratio (issue 4 bar:
tfm ≥ 0.8 × PyTorch). --profile times the stages of one tfm forward through the kernel entry points.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

import tfm  # noqa: E402


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def profile(model, ids, mask, repeats: int) -> None:
    """Time the GEMMs of one layer, attention+softmax and the element-wise kernels separately, by
    running each kernel alone through the binding's entry points on arrays of the forward's shapes."""
    core = tfm._tfmcore
    cfg = model.config
    B, T = ids.shape
    C, I, L = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B * T, C), dtype=np.float32)
    h = rng.standard_normal((B * T, I), dtype=np.float32)
    w = {n: rng.standard_normal(s, dtype=np.float32) * 0.02 for n, s in
         {"qkv": (3 * C, C), "out": (C, C), "fc_in": (I, C), "fc_out": (C, I)}.items()}
    rows = []
    for name, inp in (("qkv", x), ("out", x), ("fc_in", x), ("fc_out", h)):
        t = best_time(lambda: core.linear(inp, w[name], np.zeros(w[name].shape[0], np.float32)), repeats)
        flops = 2 * inp.shape[0] * w[name].shape[0] * w[name].shape[1]
        rows.append((f"GEMM {name} [{inp.shape[0]}x{w[name].shape[1]}]·[{w[name].shape[1]}x{w[name].shape[0]}]",
                     t * L, flops / t / 1e9))
    t_gelu = best_time(lambda: core.activation(h, 2), repeats)
    rows.append(("GELU (erf) on [B·T, I]", t_gelu * L, None))
    total = best_time(lambda: model(ids, attention_mask=mask), repeats)
    other = total - sum(r[1] for r in rows)
    print(f"\nprofile of one tfm forward ({total * 1e3:.1f} ms; GEMM timings include packing the weights "
          f"each call, so they overstate):")
    for name, t, gf in rows:
        print(f"  {name:48s} {t * 1e3:8.1f} ms  ({100 * t / total:4.1f} %)" + (f"  {gf:6.1f} GFLOP/s" if gf else ""))
    print(f"  {'rest: attention, LayerNorm, embeddings, copies':48s} {other * 1e3:8.1f} ms  ({100 * other / total:4.1f} %)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    import torch
    import transformers

    threads = tfm._tfmcore.max_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig()).eval()
    with tempfile.TemporaryDirectory() as d:
        hf.save_pretrained(d, safe_serialization=True)
        model = tfm.AutoModel.from_pretrained(d)

    rng = np.random.default_rng(0)
    ids = rng.integers(1000, hf.config.vocab_size, size=(args.batch, args.seq))
    mask = np.ones_like(ids)
    t_ids, t_mask = torch.as_tensor(ids), torch.as_tensor(mask)

    def run_tfm():
        return model(ids, attention_mask=mask)

    def run_torch():
        with torch.no_grad():
            return hf(t_ids, attention_mask=t_mask)

    ours, ref = run_tfm(), run_torch()  # warm-up and a sanity check that both compute the same thing
    err = np.abs(ours.last_hidden_state - ref.last_hidden_state.numpy()).max()
    run_tfm(), run_torch()
    t_tfm = t_torch = float("inf")
    for _ in range(args.repeats):
        t_tfm = min(t_tfm, best_time(run_tfm, 1))
        t_torch = min(t_torch, best_time(run_torch, 1))

    n = args.batch
    print(f"BERT-base (BertConfig()), batch {args.batch} x {args.seq} tokens, {threads} threads, ISA {tfm._tfmcore.isa}, "
          f"torch {torch.__version__}, load {os.getloadavg()[0]:.2f}")
    print(f"max |last_hidden_state difference| = {err:.2e}")
    print(f"tfm     {n / t_tfm:8.2f} sequences/s  ({t_tfm * 1e3:7.1f} ms per batch)")
    print(f"PyTorch {n / t_torch:8.2f} sequences/s  ({t_torch * 1e3:7.1f} ms per batch)")
    print(f"ratio tfm / PyTorch = {t_torch / t_tfm:.3f}  (bar: >= 0.8)")
    if args.profile:
        profile(model, ids, mask, args.repeats)


if __name__ == "__main__":
    main()
