"""GPT-2-124M-shaped decoder: tfm vs transformers + PyTorch on the same weights, same run.

Prompt of --prompt tokens (prefill, logits for the last position only), then --new greedy tokens
one at a time with the KV cache (decode). Prints prefill tokens/s, decode ms/token and the ratios
(tfm / PyTorch for speed: > 1 means tfm is faster).

    python benchmarks/bench_gpt2.py [--prompt 128] [--new 128] [--repeat 3]

Weights are random (GPT2Config() defaults): speed does not depend on their values. Both sides
run with the same thread count (torch.get_num_threads() = OMP threads = cores).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layers", type=int, default=12)
    args = ap.parse_args()

    import torch
    import transformers

    import tfm

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=args.layers)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    d = Path(tempfile.mkdtemp())
    hf.save_pretrained(d)
    model = tfm.AutoModelForCausalLM.from_pretrained(d)
    threads = torch.get_num_threads()
    print(f"GPT-2 shape: {args.layers} layers, C=768, V=50257; prompt {args.prompt}, {args.new} new tokens; "
          f"threads: torch {threads}, tfm {tfm._tfmcore.max_threads()} ({tfm._tfmcore.isa}); "
          f"torch {torch.__version__}, transformers {transformers.__version__}")

    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(1, args.prompt))
    tids = torch.as_tensor(ids)

    # --- prefill: logits of the last position only, both sides
    def tfm_prefill():
        model(ids, use_cache=True, logits_to_keep=1)

    def torch_prefill():
        with torch.no_grad():
            hf(tids, use_cache=True, logits_to_keep=1)

    tfm_prefill(), torch_prefill()  # warm-up (thread pools, frequency)
    t_tfm_pre = best_of(tfm_prefill, args.repeat)
    t_pt_pre = best_of(torch_prefill, args.repeat)

    # --- decode: greedy, one token per step with the cache
    def tfm_decode():
        out = model(ids, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        tok = out.logits[:, -1].argmax(-1)
        t = time.perf_counter()
        for _ in range(args.new):
            out = model(tok[:, None], past_key_values=cache, use_cache=True, logits_to_keep=1)
            tok = out.logits[:, -1].argmax(-1)
        return time.perf_counter() - t

    def torch_decode():
        with torch.no_grad():
            out = hf(tids, use_cache=True, logits_to_keep=1)
            past = out.past_key_values
            tok = out.logits[:, -1].argmax(-1)
            t = time.perf_counter()
            for _ in range(args.new):
                out = hf(tok[:, None], past_key_values=past, use_cache=True, logits_to_keep=1)
                past = out.past_key_values
                tok = out.logits[:, -1].argmax(-1)
            return time.perf_counter() - t

    t_tfm_dec = min(tfm_decode() for _ in range(args.repeat)) / args.new
    t_pt_dec = min(torch_decode() for _ in range(args.repeat)) / args.new

    print(f"prefill  tfm {args.prompt / t_tfm_pre:8.1f} tok/s   torch {args.prompt / t_pt_pre:8.1f} tok/s   "
          f"ratio tfm/torch speed = {t_pt_pre / t_tfm_pre:.2f}")
    print(f"decode   tfm {t_tfm_dec * 1e3:8.2f} ms/tok  torch {t_pt_dec * 1e3:8.2f} ms/tok  "
          f"ratio tfm/torch speed = {t_pt_dec / t_tfm_dec:.2f}")


if __name__ == "__main__":
    main()
