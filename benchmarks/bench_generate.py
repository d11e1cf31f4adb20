"""Where a generation step's time goes, and beam search vs greedy, on a GPT-2-124M-shaped model.

The C generator times its own forward passes; everything else in a step (processors, selection,
bookkeeping, cache reordering) is "other". Issue 3's bar: other < 5 % of a step at batch 1 with
top-p over the 50257-token vocabulary. Also: a beam-search step with k beams (one batched
forward) against a greedy step, and tokens/s against transformers' generate on the same weights.

    python benchmarks/bench_generate.py [--new 64] [--prompt 32] [--layers 12]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--beams", type=int, default=4)
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
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(1, args.prompt))
    # min_new_tokens keeps every run at the same length whatever the random model does
    common = dict(max_new_tokens=args.new, min_new_tokens=args.new, return_dict_in_generate=True)
    model.generate(ids, max_new_tokens=4)  # warm-up
    print(f"GPT-2 shape, {args.layers} layers, V={cfg.vocab_size}, prompt {args.prompt}, {args.new} new tokens, "
          f"{tfm._tfmcore.max_threads()} threads ({tfm._tfmcore.isa})")
    runs = {
        "greedy": dict(),
        "sample top_p=0.9": dict(do_sample=True, top_p=0.9, seed=0),
        "sample T=0.7 top_k=40 top_p=0.9": dict(do_sample=True, temperature=0.7, top_k=40, top_p=0.9, seed=0),
        "sample rep=1.2 min_p=0.05": dict(do_sample=True, repetition_penalty=1.2, min_p=0.05, seed=0),
        f"beam search k={args.beams}": dict(num_beams=args.beams),
    }
    step = {}
    for name, kw in runs.items():
        out = model.generate(ids, **common, **kw)
        t = out.timings
        n = t["steps"]
        fwd, other = t["forward"] / n * 1e3, t["other"] / n * 1e3
        step[name] = fwd + other
        print(f"{name:34s} forward {fwd:7.2f} ms/step   other {other:6.3f} ms/step   "
              f"other share {100 * other / (fwd + other):5.2f} %")
    greedy = step["greedy"]
    beam = step[f"beam search k={args.beams}"]
    print(f"beam search k={args.beams} step / greedy step = {beam / greedy:.2f}")

    # end-to-end against transformers (sampling with top_p; torch's default top_k=50 switched off)
    def tfm_run():
        model.generate(ids, max_new_tokens=args.new, min_new_tokens=args.new, do_sample=True, top_p=0.9, seed=0)

    def torch_run():
        with torch.no_grad():
            hf.generate(torch.as_tensor(ids), max_new_tokens=args.new, min_new_tokens=args.new, do_sample=True,
                        top_p=0.9, top_k=0, pad_token_id=0)

    for f in (tfm_run, torch_run):
        f()
    t_tfm = min(_time(tfm_run) for _ in range(2))
    t_pt = min(_time(torch_run) for _ in range(2))
    print(f"generate end-to-end: tfm {args.new / t_tfm:6.1f} tok/s, transformers {args.new / t_pt:6.1f} tok/s, "
          f"ratio {t_pt / t_tfm:.2f}")


def _time(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
