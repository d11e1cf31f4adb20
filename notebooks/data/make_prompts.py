#!/usr/bin/env python3
"""Write notebooks/data/prompts.jsonl: held-out prompts + human continuations for the notebooks (dev-only).

What it does
  * rebuilds the embedded GPT's corpus exactly as python/tfm/defaults/train.py does (Debian's python3.11-doc
    reST sources -> prose paragraphs, documents in sorted path order) and keeps only the VALIDATION
    documents (index % 20 == 19): text the model and its tokenizer never saw in training;
  * picks prompts the way Holtzman et al. 2020 pick their contexts: a context ends at a paragraph
    boundary and is shorter than 40 tokens (here: one whole paragraph of 8..39 tokens of the embedded
    GPT's tokenizer, followed by the newline that separates paragraphs in training);
  * the human continuation is the text that really follows (the next paragraphs of the same document,
    joined by newlines as in training), cut to its first `--continuation-tokens` tokens; only contexts
    followed by at least that many tokens are candidates;
  * no prompt lies inside another prompt's continuation (no text counted twice);
  * spreads the prompts over the validation documents (round robin over documents, candidates evenly
    spaced within a document) so no single page dominates.

Output: one JSON object per line: {"doc": source file, "paragraph": index, "prompt": text (ends with "\\n"),
"continuation": text}. The text is from the Python documentation (PSF License Agreement v2; see
notebooks/data/README.md). Deterministic: no randomness.

What it does not do: it is not run by the notebooks or the tests (CI machines have no Debian package);
the notebooks read the committed file.

    python notebooks/data/make_prompts.py --n 60     (tfm importable: installed or PYTHONPATH=python)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent  # notebooks/data

import tfm  # noqa: E402
from tfm.defaults.train import DEFAULT_CORPUS, load_corpus, split_corpus  # noqa: E402


def candidates(doc, tok, min_tokens, max_tokens, cont_tokens):
    pars = doc.paragraphs
    out = []
    for j in range(len(pars) - 1):
        n = len(tok.encode(pars[j]))
        if not min_tokens <= n < max_tokens:
            continue
        # the paragraphs the continuation needs (+1 token each for the newline between them)
        need, last = 0, j
        while need < cont_tokens and last + 1 < len(pars):
            last += 1
            need += len(tok.encode(pars[last])) + 1
        if need < cont_tokens:
            continue
        ids = tok.encode("\n".join(pars[j + 1:last + 1]))
        out.append({"doc": doc.name, "paragraph": j, "last": last, "prompt": pars[j] + "\n",
                    "continuation": tok.decode(ids[:cont_tokens])})
    return out


def disjoint(cands):
    """Greedy in document order: a prompt never lies inside another prompt's human continuation, so
    no text is counted twice in the human row of the metrics."""
    out, free_from = [], 0
    for c in cands:
        if c["paragraph"] >= free_from:
            out.append(c)
            free_from = c["last"] + 1
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--min-tokens", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=40, help="prompts are shorter than this (Holtzman: 40)")
    ap.add_argument("--continuation-tokens", type=int, default=200)
    ap.add_argument("--out", type=Path, default=HERE / "prompts.jsonl")
    args = ap.parse_args(argv)
    import tfm
    tok = tfm.AutoTokenizer.from_pretrained(Path(tfm.__file__).parent / "defaults" / "gpt")
    _, valid = split_corpus(load_corpus(args.corpus))
    per_doc = [candidates(d, tok, args.min_tokens, args.max_tokens, args.continuation_tokens) for d in valid]
    per_doc = [disjoint(c) for c in per_doc if c]
    total = sum(map(len, per_doc))
    if total < args.n:
        raise SystemExit(f"only {total} candidate prompts in {len(per_doc)} validation documents")
    # how many from each document: round robin until n are taken
    take = [0] * len(per_doc)
    k = 0
    while sum(take) < args.n:
        if take[k % len(per_doc)] < len(per_doc[k % len(per_doc)]):
            take[k % len(per_doc)] += 1
        k += 1
    chosen = []
    for cands, t in zip(per_doc, take):
        step = len(cands) / t if t else 0
        chosen += [cands[int(i * step)] for i in range(t)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        for c in chosen:
            c = {k: v for k, v in c.items() if k != "last"}
            fh.write(json.dumps(c, ensure_ascii=False) + "\n")
    print(f"{len(chosen)} prompts from {sum(1 for t in take if t)} of {len(valid)} validation documents "
          f"({total} candidates) -> {args.out}")


if __name__ == "__main__":
    main()
