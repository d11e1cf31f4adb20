"""Command line: ``python -m tfm`` / ``tfm``.

Subcommands grow with the product; today: ``demo`` (a random GPT-2-shaped model built in NumPy,
no checkpoint or network needed) — it prints next-token logits and a greedy continuation.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import numpy as np


def cmd_demo(args: argparse.Namespace) -> int:
    from .configuration import GPT2Config
    from .models.gpt import GPTForCausalLM, random_state_dict

    cfg = GPT2Config(n_layer=args.layers, n_embd=args.width, n_head=args.heads, vocab_size=args.vocab,
                     n_positions=128, initializer_range=0.5)
    model = GPTForCausalLM.from_state_dict(cfg, random_state_dict(cfg, seed=args.seed), source="random init")
    print(f"{model}  (random weights, seed {args.seed})")
    ids = np.random.default_rng(args.seed).integers(0, cfg.vocab_size, size=(1, 8))
    print("prompt ids:     ", ids[0].tolist())
    out = model(ids, use_cache=True)
    last = out.logits[0, -1]
    top = np.argsort(-last)[:5]
    print("next-token top5:", ", ".join(f"{t} ({last[t]:+.3f})" for t in top))
    cache, tok, greedy = out.past_key_values, int(top[0]), []
    for _ in range(args.new_tokens):  # greedy with the KV cache
        greedy.append(tok)
        tok = int(model(np.array([[tok]]), past_key_values=cache, logits_to_keep=1).logits[0, -1].argmax())
    print("greedy ids:     ", greedy)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfm", description="Transformer inference and decoding with a C core.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run a random GPT-2-shaped model (no files needed)")
    d.add_argument("--layers", type=int, default=2)
    d.add_argument("--width", type=int, default=64)
    d.add_argument("--heads", type=int, default=4)
    d.add_argument("--vocab", type=int, default=1000)
    d.add_argument("--new-tokens", type=int, default=10)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
