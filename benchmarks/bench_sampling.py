"""Per-step cost of the sampling stage at GPT-2 vocabulary size (not a test).

Measures temperature + top-k + top-p + multinomial draw over V = 50257 at batch 1:
  1. the C core alone (tfm._tfmcore calls on one row; what a C generate loop pays, plus the
     binding's copy and checks),
  2. the same through the Python objects (tfm.sampling.Chain.sample),
  3. transformers' TemperatureLogitsWarper + TopK + TopP + torch.multinomial on torch.
Also single filters on their own (top-p without a preceding top-k must scan the whole vocabulary).
Logits: GPT-2-like (a peaked head over Gaussian noise). Usage:
    PYTHONPATH=python python benchmarks/bench_sampling.py [--iters N]
"""
import argparse
import time

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

import tfm.sampling as S
from tfm import _tfmcore as C


def timeit(fn, iters):
    """Best of 3 runs: (wall, CPU-of-this-thread) microseconds per call. On a shared machine the
    CPU time is the steadier number."""
    fn()
    wall = cpu = float("inf")
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(iters):
            fn()
        wall = min(wall, (time.perf_counter() - t0) / iters)
        cpu = min(cpu, (time.thread_time() - c0) / iters)
    return wall * 1e6, cpu * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--V", type=int, default=50257)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    V = args.V
    z = (rng.standard_normal(V) * 2.5).astype(np.float32)
    z[rng.choice(V, 20, replace=False)] += 12.0  # a peaked head, as real next-token logits
    z2 = z[None, :]
    state = S.Generator(0).state

    def core():
        a = C.sampling_filter("temperature", z2, 0.8)
        a = C.sampling_filter("top_k", a, 50)
        a = C.sampling_filter("top_p", a, 0.9)
        return C.sampling_sample(a, state)

    chain = S.Chain([S.Temperature(0.8), S.TopK(50), S.TopP(0.9)])
    gen = S.Generator(0)
    rows = [("tfm core calls: temp+top-k+top-p+sample", core),
            ("tfm Chain.sample (Python objects)", lambda: chain.sample(z2, generator=gen)),
            ("tfm top_p(0.9) alone (full vocabulary)", lambda: C.sampling_filter("top_p", z2, 0.9)),
            ("tfm top_k(50) alone", lambda: C.sampling_filter("top_k", z2, 50)),
            ("tfm min_p(0.05) alone", lambda: C.sampling_filter("min_p", z2, 0.05)),
            ("tfm typical(0.9) alone", lambda: C.sampling_filter("typical_p", z2, 0.9)),
            ("tfm sample alone (full vocabulary)", lambda: C.sampling_sample(z2, state)),
            ("tfm softmax", lambda: C.sampling_softmax(z2))]
    try:
        import torch
        from transformers.generation import logits_process as LP

        torch.set_num_threads(1)
        procs = LP.LogitsProcessorList([LP.TemperatureLogitsWarper(0.8), LP.TopKLogitsWarper(50),
                                        LP.TopPLogitsWarper(0.9)])
        t = torch.from_numpy(z2.copy())
        ids = torch.zeros((1, 1), dtype=torch.long)
        g = torch.Generator().manual_seed(0)

        def hf():
            s = procs(ids, t)
            return torch.multinomial(torch.softmax(s, -1), 1, generator=g)

        top_p_only = LP.TopPLogitsWarper(0.9)
        rows += [("transformers temp+top-k+top-p+multinomial (torch)", hf),
                 ("transformers top_p(0.9) alone", lambda: top_p_only(ids, t))]
    except ImportError:
        print("(transformers/torch not installed: reference rows skipped)")
    print(f"V = {V}, batch 1, best of 3 x {args.iters} iterations; microseconds per step (wall / thread CPU)")
    for name, fn in rows:
        wall, cpu = timeit(fn, args.iters)
        print(f"  {name:52s} {wall:9.1f} {cpu:9.1f}")


if __name__ == "__main__":
    main()
