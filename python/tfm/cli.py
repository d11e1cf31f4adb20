"""Command line: ``tfm`` (console script) and ``python -m tfm``.

    tfm generate "The module"                            # the embedded GPT, its generation_config.json
    tfm generate "The module" --strategy beam --num-beams 5 --no-repeat-ngram-size 3
    tfm generate "The module" --do-sample --top-k 40 --seed 0 --trace
    tfm compare "The module" --samples 4 --json
    tfm fill-mask "The [MASK] returns a list."           # the embedded BERT
    tfm score "The function returns" " a list" " the value"
    tfm info path/to/checkpoint
    tfm demo                                             # a random GPT-2-shaped model, no files

Every subcommand takes ``--model DIR`` (any Hugging Face checkpoint folder of a supported type; the names
``gpt`` and ``bert`` mean the embedded models when no such folder exists). Bad arguments print one line,
``tfm: error: ...``, on stderr and exit with status 2 — argparse's parse errors and the library's
ValueError / FileNotFoundError alike; a finished command exits 0.

This file only parses, calls the library and formats; it holds no decoding logic of its own
(``compare`` is tfm.comparison, the metrics are tfm.metrics).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO

import numpy as np

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad combination of arguments found after parsing (reported like a parse error: exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a parse error is one line (no usage block) and raises instead of exiting, so
    ``main()`` can return the status to in-process callers."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


# ----------------------------------------------------------------------------------------------------
# argument types
# ----------------------------------------------------------------------------------------------------

def _int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {v}")
        return v
    return parse


def _number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if math.isnan(v):
        raise argparse.ArgumentTypeError("expected a number, got NaN")
    return v


def _token_id(text: str) -> int:
    return _int_at_least(0)(text)


def _early_stopping(text: str):
    table = {"true": True, "false": False, "never": "never"}
    if text.lower() not in table:
        raise argparse.ArgumentTypeError(f"expected true, false or never, got {text!r}")
    return table[text.lower()]


def _bias(text: str):
    body, sep, value = text.rpartition("=")
    if not sep or not body:
        raise argparse.ArgumentTypeError(f"expected TEXT=BIAS, got {text!r}")
    return body, _number(value)


# ----------------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------------

def _model_dir(value: Optional[str], default: str) -> Path:
    """--model: a checkpoint folder; an embedded model's name when no folder of that name exists."""
    from . import defaults

    if value is None:
        return defaults.path(default)
    p = Path(value)
    if p.is_dir():
        return p
    if value in defaults.NAMES:
        return defaults.path(value)
    if p.exists():
        raise FileNotFoundError(f"{value} is not a directory (expected a checkpoint folder with config.json)")
    raise FileNotFoundError(f"no such checkpoint folder: {value} (embedded models: {', '.join(defaults.NAMES)})")


def _load_causal_lm(value: Optional[str]):
    from .models.auto import AutoModelForCausalLM
    from .tokenization import AutoTokenizer

    d = _model_dir(value, "gpt")
    return AutoModelForCausalLM.from_pretrained(d), AutoTokenizer.from_pretrained(d)


def _prompt_ids(tok: Any, model: Any, prompt: str) -> List[int]:
    from .comparison import prompt_ids

    return prompt_ids(tok, model, prompt)


def _show(tok: Any, token_id: int) -> str:
    """One token as readable quoted text (' the', '\\n')."""
    return json.dumps(tok.decode([int(token_id)]), ensure_ascii=False)


def _print_json(doc: Any, out: TextIO) -> None:
    out.write(json.dumps(doc, ensure_ascii=False, indent=2, default=_json_default) + "\n")


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def _width() -> int:
    return max(60, shutil.get_terminal_size((100, 24)).columns)


# ----------------------------------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------------------------------

# GenerationConfig fields the options below set directly (dest == field name)
GEN_FIELDS = ("max_new_tokens", "max_length", "min_length", "min_new_tokens", "strategy", "do_sample", "num_beams",
              "num_beam_groups", "penalty_alpha", "temperature", "top_k", "top_p", "min_p", "typical_p",
              "epsilon_cutoff", "eta_cutoff", "top_n_sigma", "repetition_penalty", "frequency_penalty",
              "presence_penalty", "no_repeat_ngram_size", "diversity_penalty", "suppress_tokens",
              "begin_suppress_tokens", "length_penalty", "early_stopping", "num_return_sequences", "pad_token_id",
              "eos_token_id", "seed")

# What --strategy fills in when the matching option is not given (so "--strategy beam" alone works).
STRATEGY_PRESETS: Dict[str, Dict[str, Any]] = {
    "greedy": dict(do_sample=False),
    "sample": dict(do_sample=True),
    "beam": dict(do_sample=False, num_beams=4),
    "beam_sample": dict(do_sample=True, num_beams=4),
    "stochastic_beam": dict(do_sample=True, num_beams=4),
    "group_beam": dict(do_sample=False, num_beams=4, num_beam_groups=2, diversity_penalty=1.0),
    "contrastive": dict(do_sample=False, penalty_alpha=0.6, top_k=4),
}


def _add_truncation_filters(g) -> None:
    """The probability-mass filters shared by `generate` and `fill-mask` (same names as generate())."""
    g.add_argument("--top-p", type=_number, metavar="P", help="nucleus: smallest set with probability >= P, in (0, 1]")
    g.add_argument("--min-p", type=_number, metavar="P", help="keep tokens with p >= P * p_max, P in [0, 1]")
    g.add_argument("--typical-p", type=_number, metavar="P", help="locally typical sampling mass, in (0, 1]")
    g.add_argument("--epsilon-cutoff", "--epsilon", dest="epsilon_cutoff", type=_number, metavar="E",
                   help="drop tokens with p < E (truncation sampling, Hewitt et al. 2022), E in [0, 1)")
    g.add_argument("--eta-cutoff", "--eta", dest="eta_cutoff", type=_number, metavar="E",
                   help="eta sampling: entropy-dependent cutoff (Hewitt et al. 2022), E in [0, 1)")


def _add_generation_options(p: argparse.ArgumentParser) -> None:
    from .generation.config import STRATEGIES

    g = p.add_argument_group("length")
    g.add_argument("--max-new-tokens", type=_int_at_least(1), metavar="N",
                   help="tokens to generate (default: the checkpoint's generation_config.json, else 20)")
    g.add_argument("--max-length", type=_int_at_least(1), metavar="N",
                   help="total length, prompt included (when --max-new-tokens is not given)")
    g.add_argument("--min-length", type=_int_at_least(0), metavar="N",
                   help="EOS is forbidden before this total length")
    g.add_argument("--min-new-tokens", type=_int_at_least(0), metavar="N",
                   help="EOS is forbidden before this many new tokens")

    g = p.add_argument_group("strategy")
    g.add_argument("--strategy", choices=STRATEGIES,
                   help="decoding mode; without it the mode follows transformers' rules from --do-sample, "
                        "--num-beams, --num-beam-groups, --penalty-alpha. Presets for options not given: "
                        "beam/beam_sample/stochastic_beam: 4 beams; group_beam: 4 beams, 2 groups, diversity "
                        "penalty 1.0; contrastive: penalty alpha 0.6, top-k 4; greedy/beam/group_beam/contrastive "
                        "set --no-do-sample, the sampling modes --do-sample")
    g.add_argument("--do-sample", action=argparse.BooleanOptionalAction, default=None,
                   help="sample instead of taking the most probable token (--no-do-sample: greedy / beam)")
    g.add_argument("--num-beams", type=_int_at_least(1), metavar="N", help="beams for beam search")
    g.add_argument("--num-beam-groups", type=_int_at_least(1), metavar="N",
                   help="groups for diverse (group) beam search; --num-beams must be a multiple")
    g.add_argument("--penalty-alpha", type=_number, metavar="A",
                   help="contrastive search's degeneration penalty in [0, 1] (with --top-k > 1)")
    g.add_argument("--seed", type=_int_at_least(0), metavar="S",
                   help="random seed: the same seed gives the same text (default: fresh entropy)")

    g = p.add_argument_group("sampling filters (applied in this order when sampling)")
    g.add_argument("--temperature", type=_number, metavar="T", help="divide logits by T (0 = greedy)")
    g.add_argument("--top-n-sigma", type=_number, metavar="N",
                   help="keep tokens within N standard deviations of the top logit (Tang et al. 2024)")
    g.add_argument("--top-k", type=_int_at_least(0), metavar="K",
                   help="keep the K most probable tokens (0 = off; also contrastive search's candidates)")
    _add_truncation_filters(g)

    g = p.add_argument_group("penalties and constraints (every mode)")
    g.add_argument("--repetition-penalty", type=_number, metavar="R",
                   help="CTRL repetition penalty (> 1 discourages tokens already present)")
    g.add_argument("--frequency-penalty", type=_number, metavar="F",
                   help="subtract F x (count of the token so far) from its logit")
    g.add_argument("--presence-penalty", type=_number, metavar="F",
                   help="subtract F from the logit of every token already present")
    g.add_argument("--no-repeat-ngram-size", type=_int_at_least(0), metavar="N", help="never repeat an N-gram")
    g.add_argument("--bad-words", nargs="+", metavar="TEXT",
                   help="texts never to generate (encoded as given: include a leading space for a word "
                        "inside a sentence)")
    g.add_argument("--sequence-bias", type=_bias, action="append", metavar="TEXT=BIAS",
                   help="add BIAS to the logit that completes TEXT (repeatable)")
    g.add_argument("--suppress-tokens", type=_token_id, nargs="+", metavar="ID", help="token ids never generated")
    g.add_argument("--begin-suppress-tokens", type=_token_id, nargs="+", metavar="ID",
                   help="token ids not generated as the first new token")
    g.add_argument("--diversity-penalty", type=_number, metavar="D",
                   help="group beam search: penalty for tokens chosen by earlier groups at the same step")

    g = p.add_argument_group("beams and returned sequences")
    g.add_argument("--length-penalty", type=_number, metavar="L",
                   help="beam score = sum log p / length**L (> 0 favours longer sequences)")
    g.add_argument("--early-stopping", type=_early_stopping, metavar="{true,false,never}",
                   help="when beam search stops: true, false (heuristic) or never (exhaustive)")
    g.add_argument("--num-return-sequences", type=_int_at_least(1), metavar="N",
                   help="sequences to return (<= --num-beams for beam search; sampling draws N)")
    g.add_argument("--eos-token-id", type=_token_id, nargs="+", metavar="ID",
                   help="token id(s) that end a sequence (default: the checkpoint's)")
    g.add_argument("--pad-token-id", type=_token_id, metavar="ID", help="padding id after a sequence ended")


def _generation_kwargs(args: argparse.Namespace, tok: Any) -> Dict[str, Any]:
    kw = {f: getattr(args, f) for f in GEN_FIELDS if getattr(args, f, None) is not None}
    if args.strategy is not None:
        for k, v in STRATEGY_PRESETS[args.strategy].items():
            kw.setdefault(k, v)
    if args.bad_words:
        kw["bad_words_ids"] = [_text_ids(tok, w, "--bad-words") for w in args.bad_words]
    if args.sequence_bias:
        kw["sequence_bias"] = [[_text_ids(tok, t, "--sequence-bias"), b] for t, b in args.sequence_bias]
    return kw


def _text_ids(tok: Any, text: str, option: str) -> List[int]:
    ids = tok.encode(text, add_special_tokens=False)
    if not ids:
        raise UsageError(f"{option}: {text!r} has no tokens")
    return ids


def cmd_generate(args: argparse.Namespace, out: TextIO) -> int:
    from .generation import GenerationConfig
    from .generation.utils import BEAM_MODES
    from .tokenization import IncrementalDecoder

    model, tok = _load_causal_lm(args.model)
    cfg = (model.generation_config or GenerationConfig()).update(**_generation_kwargs(args, tok))
    if args.trace:
        cfg = cfg.update(trace=True, trace_top_n=args.trace_top_n)
    ids = _prompt_ids(tok, model, args.prompt)
    P = len(ids)
    head = "" if args.continuation_only else tok.decode(ids, skip_special_tokens=True)
    streaming = not (args.json or args.trace or cfg.mode in BEAM_MODES or cfg.num_return_sequences > 1)
    eos = set(cfg.eos_ids or ([model.config.eos_token_id] if isinstance(model.config.eos_token_id, int) else []))
    if streaming:
        tokens = model.stream([ids], generation_config=cfg)
        first = next(tokens, None)  # checks every parameter before anything is printed
        out.write(head)
        out.flush()
        dec = IncrementalDecoder(tok, skip_special_tokens=True)
        for t in ([] if first is None else itertools.chain([first], tokens)):
            piece = dec.push(int(t))
            if piece:
                out.write(piece)
                out.flush()
            if int(t) in eos:
                break
        out.write(dec.flush() + "\n")
        return 0
    res = model.generate([ids], generation_config=cfg.update(return_dict_in_generate=True))
    rows = []
    for r in range(res.sequences.shape[0]):
        gen = res.sequences[r, P:].tolist()
        n = next((i + 1 for i, t in enumerate(gen) if t in eos), len(gen))  # up to the first EOS
        gen = gen[:n]
        row = dict(text=tok.decode(ids + gen, skip_special_tokens=True) if not args.continuation_only
                   else tok.decode(gen, skip_special_tokens=True),
                   token_ids=gen, raw_logprob=float(np.sum(res.raw_logprobs[r, :n])),
                   mean_raw_logprob=float(np.mean(res.raw_logprobs[r, :n])) if n else None)
        if res.sequences_scores is not None:
            row["sequence_score"] = float(res.sequences_scores[r])
        rows.append(row)
    if args.json:
        _print_json(dict(prompt=args.prompt, prompt_ids=ids, mode=res.mode, processors=res.processors,
                         generation_config={k: v for k, v in cfg.to_dict().items()
                                            if k not in ("return_dict_in_generate", "output_scores", "output_logits")},
                         sequences=rows), out)
        return 0
    for i, row in enumerate(rows):
        if len(rows) > 1 or row.get("sequence_score") is not None:
            score = (f"beam score {row['sequence_score']:.4f}" if "sequence_score" in row
                     else f"mean log p {row['mean_raw_logprob']:.3f}" if row["mean_raw_logprob"] is not None else "")
            out.write(f"[{i + 1}] {score}\n")
        out.write(row["text"] + "\n")
    if args.trace:
        out.write("\n")
        if res.trace is not None:
            _print_trace(res, tok, out)
        if res.beam_tree is not None:
            _print_beam_tree(res, tok, out)
    return 0


def _print_trace(res: Any, tok: Any, out: TextIO) -> None:
    """Per step and row: the top candidates after the model and after each processor."""
    rows = len(res.trace[0].stages) if res.trace else 0
    names = ["model"] + list(res.processors)
    width = max(len(n) for n in names)
    out.write(f"trace ({res.mode}): per step, the most probable tokens after each stage; kept = tokens still "
              f"possible, mass = their probability before the stage\n")
    for st in res.trace:
        for r in range(rows):
            lead = f"step {st.step}" + (f" row {r}" if rows > 1 else "")
            out.write(f"{lead}: chose {_show(tok, st.chosen[r])} (log p {float(st.logprob[r]):.3f} under the final "
                      f"distribution)\n")
            out.write(f"  {'stage':<{width}}  {'kept':>6}  {'mass':>6}  top candidates (probability)\n")
            for stage in st.stages[r]:
                cands = "  ".join(f"{_show(tok, t)} {p:.3f}" for t, p in zip(stage.top_ids, stage.top_probs) if t >= 0)
                out.write(f"  {stage.name:<{width}}  {stage.kept:>6}  {stage.kept_mass:>6.4f}  {cands}\n")


def _print_beam_tree(res: Any, tok: Any, out: TextIO) -> None:
    """Per step: every candidate beam search expanded for the first prompt, and what became of it."""
    tree = res.beam_tree
    out.write(f"beam tree ({res.mode}): per step, every candidate expanded (from = running beam it extends; score = "
              f"accumulated log p{', Gumbel key' if res.mode == 'stochastic_beam' else ''})\n")
    for s in range(tree.token.shape[0]):
        out.write(f"step {s}\n  {'from':>4}  {'token':<16}  {'score':>9}  outcome\n")
        for c in range(tree.token.shape[2]):
            token = int(tree.token[s, 0, c])
            if token < 0:
                continue
            if tree.finished[s, 0, c] and tree.accepted[s, 0, c]:
                outcome = f"finished, normalised score {float(tree.final[s, 0, c]):.4f}, kept"
            elif tree.finished[s, 0, c]:
                outcome = "finished, not kept (no better than the finished beams held)"
            elif tree.kept[s, 0, c]:
                outcome = f"running as beam {int(tree.slot[s, 0, c])}"
            else:
                outcome = "dropped"
            out.write(f"  {int(tree.parent[s, 0, c]):>4}  {_show(tok, token):<16}  {float(tree.score[s, 0, c]):>9.4f}  "
                      f"{outcome}\n")


# ----------------------------------------------------------------------------------------------------
# compare
# ----------------------------------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on a stream (stderr): ``[#####.....]  12/45  label``."""

    def __init__(self, total: int, stream: TextIO, width: int = 30):
        self.total, self.done, self.stream, self.width = max(1, total), 0, stream, width

    def update(self, label: str = "") -> None:
        self.done += 1
        filled = self.width * self.done // self.total
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {self.done:>{len(str(self.total))}}/"
                          f"{self.total}  {label:<12}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _read_prompts(path: str) -> List[str]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    prompts = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if not prompts:
        raise UsageError(f"--prompts {path}: no prompt in the file (one prompt per line)")
    return prompts


def cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    from . import comparison

    if (args.prompt is None) == (args.prompts is None):
        raise UsageError("compare takes a PROMPT or --prompts FILE (exactly one)")
    prompts = [args.prompt] if args.prompt is not None else _read_prompts(args.prompts)
    names = None
    if args.strategies is not None:
        names = [n.strip() for n in args.strategies.split(",") if n.strip()]
    model, tok = _load_causal_lm(args.model)
    chosen = comparison.select_strategies(names)  # before any work: an unknown name fails at once
    bar = None
    if args.prompts is not None and not args.no_progress:
        bar = Progress(len(prompts) * len(chosen), sys.stderr)
    try:
        doc = comparison.compare(model, tok, prompts, samples=args.samples, seed=args.seed,
                                 max_new_tokens=args.max_new_tokens, strategies=[s.name for s in chosen],
                                 progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    doc["model"] = str(model.name_or_path)
    if args.json:
        _print_json(doc, out)
        return 0
    _print_compare_table(doc, out)
    return 0


def _fmt(v: Optional[float], spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _print_compare_table(doc: Dict[str, Any], out: TextIO) -> None:
    n_prompts = len(doc["prompts"])
    first = doc["prompts"][0]
    out.write(f"prompt: {json.dumps(first, ensure_ascii=False)}" +
              (f" (+ {n_prompts - 1} more)" if n_prompts > 1 else "") +
              f"   {doc['samples']} sample(s) per prompt for the sampling strategies, seed {doc['seed']}, "
              f"{doc['max_new_tokens']} new tokens\n")
    head = f"{'strategy':<12} {'logp/tok':>8} {'ppl':>8} {'dist-2':>6} {'rep-2':>5} {'loop%':>5}  "
    text_w = max(30, _width() - len(head))
    out.write(head + "text (first prompt, first sample)\n")
    out.write("-" * (len(head) + min(text_w, 34)) + "\n")
    for s in doc["strategies"]:
        cells = (f"{s['name']:<12} {_fmt(s['mean_logprob'], '8.3f')} {_fmt(s['perplexity'], '8.2f')} "
                 f"{_fmt(s['distinct_2'], '6.3f')} {_fmt(s['rep_2'], '5.1f')} {_fmt(s['repetition'], '5.0f')}  ")
        text = s["generations"][0]["text"].replace("\n", "\\n") or "(empty)"
        lines = textwrap.wrap(text, text_w, drop_whitespace=False) or [""]
        out.write(cells + lines[0].strip() + "\n")
        for line in lines[1:]:
            out.write(" " * len(head) + line.strip() + "\n")
    out.write(textwrap.fill(
        "logp/tok: mean log-prob per generated token under the model's raw softmax (up to and including EOS); "
        "ppl = exp(-logp/tok); dist-2: distinct bigrams / bigrams per generation, averaged (Li et al. 2016); "
        "rep-2: % repeated bigrams (SimCTG); loop%: generations ending in a repetition loop (Holtzman et al. "
        "2020). --json for every text.", _width()) + "\n")


# ----------------------------------------------------------------------------------------------------
# fill-mask, score, info
# ----------------------------------------------------------------------------------------------------

_FILL_SAMPLING = ("num_samples", "temperature", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
                  "top_n_sigma")


def cmd_fill_mask(args: argparse.Namespace, out: TextIO) -> int:
    from .pipelines import pipeline

    fill = pipeline("fill-mask", model=str(_model_dir(args.model, "bert")))
    text = args.text
    mask = fill.tokenizer.mask_token
    if mask not in text and "[MASK]" in text:
        text = text.replace("[MASK]", mask)  # "[MASK]" works for every model (RoBERTa's is "<mask>")
    given = {k: getattr(args, k) for k in _FILL_SAMPLING if getattr(args, k) is not None}
    sample = bool(args.do_sample or given)
    if args.seed is not None and not sample:
        raise UsageError("--seed applies only when sampling (--do-sample or a sampling filter)")
    opts: Dict[str, Any] = dict(given)
    if args.top_k is not None:
        opts["top_k"] = args.top_k
    if args.targets:
        opts["targets"] = args.targets
    if sample:
        opts.update(do_sample=True, seed=args.seed)
    res = fill(text, **opts)
    groups = res if res and isinstance(res[0], list) else [res]  # several masks: one list per mask
    if args.json:
        _print_json(dict(text=text, sampled=sample, masks=groups), out)
        return 0
    what = ("draws; score = probability under the filtered distribution" if sample
            else "candidates; score = masked-LM probability")
    for m, group in enumerate(groups):
        if len(groups) > 1:
            out.write(f"mask {m + 1} of {len(groups)}\n")
        out.write(f"{'#':>3}  {'score':>7}  {'token':<14}  sequence   ({what})\n")
        for i, r in enumerate(group):
            out.write(f"{i + 1:>3}  {r['score']:>7.4f}  {r['token_str']:<14}  {r['sequence']}\n")
    return 0


def cmd_score(args: argparse.Namespace, out: TextIO) -> int:
    model, tok = _load_causal_lm(args.model)
    ids = _prompt_ids(tok, model, args.prompt)
    choices = []
    for c in args.choices:
        joined = args.prompt + (args.separator if args.prompt and not args.prompt[-1].isspace()
                                and c and not c[0].isspace() else "") + c
        full = tok.encode(joined) if args.prompt else tok.encode(c)
        # the choice's tokens as they come out of tokenising prompt + choice together, when the prompt's
        # tokens are a prefix of that; otherwise the choice tokenised on its own
        cont = full[len(ids):] if args.prompt and full[:len(ids)] == ids else \
            tok.encode(joined[len(args.prompt):], add_special_tokens=False)
        if not cont:
            raise UsageError(f"choice {c!r} has no tokens")
        choices.append(cont)
    res = model.score(ids, choices)
    order = res.ranking()
    share = np.exp(res.total - res.total.max())
    share /= share.sum()
    rows = [dict(rank=int(k + 1), choice=args.choices[i], total_logprob=float(res.total[i]),
                 mean_logprob=float(res.total[i] / len(choices[i])), share=float(share[i]),
                 tokens=[dict(token=tok.decode([t]), id=int(t), logprob=float(lp))
                         for t, lp in zip(choices[i], res.per_token[i])])
            for k, i in enumerate(order)]
    if args.json:
        _print_json(dict(prompt=args.prompt, prompt_ids=ids, choices=rows), out)
        return 0
    out.write(f"prompt: {json.dumps(args.prompt, ensure_ascii=False)}\n")
    out.write(f"{'rank':>4}  {'total':>9}  {'per tok':>8}  {'share':>6}  {'tokens':>6}  choice\n")
    for r in rows:
        out.write(f"{r['rank']:>4}  {r['total_logprob']:>9.4f}  {r['mean_logprob']:>8.4f}  {r['share']:>6.3f}  "
                  f"{len(r['tokens']):>6}  {json.dumps(r['choice'], ensure_ascii=False)}\n")
    out.write("total = log p(choice | prompt), the sum of the per-token log-probs below; share = softmax of the "
              "totals over these choices\n\nper token:\n")
    for r in rows:
        parts = "  ".join(f"{json.dumps(t['token'], ensure_ascii=False)} {t['logprob']:.4f}" for t in r["tokens"])
        out.write(f"  {r['rank']:>2}. {parts}\n")
    return 0


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                    "vocab.json", "merges.txt", "vocab.txt", "spiece.model", "spm.model",
                    "sentencepiece.bpe.model")
# config.json names of the same quantity across families (first present wins)
_DIMS = dict(layers=("n_layer", "num_hidden_layers", "num_layers", "n_layers"),
             width=("n_embd", "hidden_size", "dim", "d_model"),
             heads=("n_head", "num_attention_heads", "num_heads", "n_heads"),
             ffn=("n_inner", "intermediate_size", "hidden_dim", "ffn_dim"),
             vocab=("vocab_size",),
             positions=("n_positions", "max_position_embeddings", "n_ctx"))
# output embeddings that transformers ties to the input embedding (stored twice by torch.save files)
_TIED_OUTPUTS = ("lm_head.weight", "cls.predictions.decoder.weight", "generator_lm_head.weight",
                 "vocab_projector.weight", "lm_head.decoder.weight", "predictions.decoder.weight")
_INPUT_EMBEDDINGS = ("word_embeddings.weight", "wte.weight", "tokens_embed.weight", "embed_tokens.weight")


_AUTO_NAMES = {"base": "AutoModel", "causal-lm": "AutoModelForCausalLM", "masked-lm": "AutoModelForMaskedLM",
               "pretraining": "AutoModelForPreTraining", "next-sentence": "AutoModelForNextSentencePrediction",
               "sequence-classification": "AutoModelForSequenceClassification",
               "token-classification": "AutoModelForTokenClassification"}


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def checkpoint_info(directory: Path) -> Dict[str, Any]:
    """What `tfm info` reports about a checkpoint folder, read from its files (weights are not loaded:
    shapes and dtypes come from the file headers)."""
    from .checkpoint import find_checkpoint_files, load_state_dict
    from .configuration import AutoConfig, read_config_file
    from .models.auto import REGISTRY
    from .models.base import drop_buffers

    raw = read_config_file(directory)
    model_type = raw.get("model_type")
    try:
        cfg = AutoConfig.from_pretrained(directory)  # class defaults for fields config.json leaves out
    except ValueError:
        cfg = None
    dims: Dict[str, Any] = {}
    for key, names in _DIMS.items():
        for n in names:
            v = raw.get(n, getattr(cfg, n, None) if cfg is not None else None)
            if v is not None:
                dims[key] = v
                break
    tasks = sorted(t for t, table in REGISTRY.items() if model_type in table)
    state = load_state_dict(directory)
    params = drop_buffers(list(state))
    tie = bool(raw.get("tie_word_embeddings", True))
    inputs = [tuple(state[k].shape) for k in params if k.endswith(_INPUT_EMBEDDINGS)]
    tied = [k for k in params if tie and k.endswith(_TIED_OUTPUTS) and tuple(state[k].shape) in inputs]
    counted = [k for k in params if k not in tied]
    dtypes: Dict[str, Dict[str, int]] = {}
    for k in counted:
        d = dtypes.setdefault(state[k].dtype, dict(tensors=0, parameters=0))
        d["tensors"] += 1
        d["parameters"] += int(np.prod(state[k].shape, dtype=np.int64))
    weights = [p.name for p in find_checkpoint_files(directory)]
    files = [dict(name=p.name, bytes=p.stat().st_size) for p in sorted(Path(directory).iterdir()) if p.is_file()]
    return dict(folder=str(directory), model_type=model_type, architectures=raw.get("architectures"),
                tfm_tasks=tasks, **dims,
                parameters=sum(d["parameters"] for d in dtypes.values()),
                tied_duplicates=tied, buffers=sorted(set(state) - set(params)), dtypes=dtypes,
                weight_files=weights, files=files,
                tokenizer_files=[f["name"] for f in files if f["name"] in _TOKENIZER_FILES],
                generation_config=json.loads((Path(directory) / "generation_config.json").read_text(encoding="utf-8"))
                if (Path(directory) / "generation_config.json").is_file() else None)


def cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    info = checkpoint_info(_model_dir(args.dir, "gpt"))
    if args.json:
        _print_json(info, out)
        return 0
    arch = ", ".join(info["architectures"] or []) or "(not stated in config.json)"
    rows = [("folder", info["folder"]), ("model_type", str(info["model_type"])), ("architecture", arch),
            ("tfm classes", ", ".join(_AUTO_NAMES.get(t, t) for t in info["tfm_tasks"])
             or "none (model_type not supported by tfm)")]
    for key in ("layers", "width", "heads", "ffn", "vocab", "positions"):
        if key in info:
            rows.append((key, f"{info[key]:,}" if isinstance(info[key], int) else str(info[key])))
    note = f" (+ {len(info['tied_duplicates'])} tied output embedding stored twice, not counted)" \
        if info["tied_duplicates"] else ""
    rows.append(("parameters", f"{info['parameters']:,}{note}"))
    rows.append(("dtypes", "; ".join(f"{d}: {v['tensors']} tensors, {v['parameters']:,} parameters"
                                     for d, v in info["dtypes"].items())))
    if info["buffers"]:
        rows.append(("buffers", f"{len(info['buffers'])} stored (not parameters)"))
    rows.append(("weights", ", ".join(info["weight_files"])))
    rows.append(("tokenizer", ", ".join(info["tokenizer_files"]) or "no tokenizer files"))
    if info["generation_config"] is not None:
        g = {k: v for k, v in info["generation_config"].items() if k != "transformers_version"}
        rows.append(("generation", ", ".join(f"{k}={v}" for k, v in g.items())))
    for k, v in rows:
        out.write(f"{k:<13}{v}\n")
    out.write("files\n")
    for f in info["files"]:
        out.write(f"  {f['name']:<32}{_size(f['bytes']):>12}\n")
    return 0


# ----------------------------------------------------------------------------------------------------
# demo
# ----------------------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from .configuration import GPT2Config
    from .models.gpt import GPTForCausalLM, random_state_dict

    if args.width % args.heads:
        raise UsageError(f"--width ({args.width}) must be a multiple of --heads ({args.heads})")
    cfg = GPT2Config(n_layer=args.layers, n_embd=args.width, n_head=args.heads, vocab_size=args.vocab,
                     n_positions=128, initializer_range=0.5)
    model = GPTForCausalLM.from_state_dict(cfg, random_state_dict(cfg, seed=args.seed), source="random init")
    out.write(f"{model}  (random weights, seed {args.seed})\n")
    ids = np.random.default_rng(args.seed).integers(0, cfg.vocab_size, size=(1, 8))
    out.write(f"prompt ids:      {ids[0].tolist()}\n")
    res = model(ids, use_cache=True)
    last = res.logits[0, -1]
    top = np.argsort(-last)[:5]
    out.write("next-token top5: " + ", ".join(f"{t} ({last[t]:+.3f})" for t in top) + "\n")
    cache, tok, greedy = res.past_key_values, int(top[0]), []
    for _ in range(args.new_tokens):  # greedy with the KV cache
        greedy.append(tok)
        tok = int(model(np.array([[tok]]), past_key_values=cache, logits_to_keep=1).logits[0, -1].argmax())
    out.write(f"greedy ids:      {greedy}\n")
    return 0


# ----------------------------------------------------------------------------------------------------
# parser and entry point
# ----------------------------------------------------------------------------------------------------

def _model_option(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--model", metavar="DIR",
                   help=f"checkpoint folder (Hugging Face layout: config.json, weights, tokenizer files); "
                        f"default: the embedded {default.upper()} (the names gpt and bert select the embedded "
                        f"models)")


def _json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def _paras(*paragraphs: str) -> str:
    """Paragraphs filled to 79 columns (the raw-description formatter keeps the tables' line breaks)."""
    return "\n\n".join(textwrap.fill(p, 79) for p in paragraphs)


def build_parser() -> argparse.ArgumentParser:
    from .comparison import STRATEGIES

    p = _Parser(prog="tfm", description="Transformer inference and decoding with a C core. "
                                        "Run 'tfm COMMAND --help' for a command's options.")
    p.add_argument("--version", action="version", version=f"tfm {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    g = sub.add_parser("generate", help="continue a prompt with any decoding strategy", formatter_class=fmt,
                       description=_paras("Continue PROMPT with a causal LM. Text streams to the terminal for "
                                          "greedy, sampling and contrastive search; beam modes and several "
                                          "sequences print at the end. Defaults come from the checkpoint's "
                                          "generation_config.json ('tfm info gpt' shows the embedded GPT's); "
                                          "options override them."),
                       epilog="examples:\n  tfm generate \"The module\" --seed 0\n"
                              "  tfm generate \"The module\" --strategy beam --num-beams 5 --num-return-sequences 3\n"
                              "  tfm generate \"The module\" --do-sample --temperature 0.7 --top-k 40 --trace")
    g.add_argument("prompt", metavar="PROMPT", help="text to continue ('' starts from the BOS token)")
    _model_option(g, "gpt")
    _add_generation_options(g)
    o = g.add_argument_group("output")
    o.add_argument("--trace", action="store_true",
                   help="after the text, print each step: the top candidates after the model and after each "
                        "processor (beam modes: the beam tree)")
    o.add_argument("--trace-top-n", type=_int_at_least(1), default=5, metavar="N",
                   help="candidates per stage in --trace (default 5)")
    o.add_argument("--continuation-only", action="store_true", help="print only the new text, not the prompt")
    _json_option(o)
    g.set_defaults(func=cmd_generate)

    table = "\n".join(f"  {s.name:<12} {s.description}" for s in STRATEGIES)
    c = sub.add_parser("compare", help="run every decoding strategy on the same prompt(s) and seeds, with metrics",
                       formatter_class=fmt,
                       description=_paras("Run each strategy with the same seed and print a table: mean log-prob "
                                          "per token and perplexity of the generated tokens, distinct-2, rep-2 and "
                                          "Holtzman's repetition %.") +
                                   "\n\nstrategies (fixed parameters; the checkpoint's "
                                   "generation_config.json is not used):\n" + table +
                                   "\n\nmetrics (over the model's token ids):\n"
                                   "  logp/tok  mean log p(token | prefix) under the model's raw softmax (no "
                                   "temperature or filter),\n            pooled over the generated tokens up to "
                                   "and including the first EOS\n"
                                   "  ppl       exp(-logp/tok)\n"
                                   "  dist-2    distinct bigrams / bigrams within each generation, averaged "
                                   "(Li et al. 2016)\n"
                                   "  rep-2     % of bigrams repeating an earlier one in the same generation "
                                   "(SimCTG, Su et al. 2022)\n"
                                   "  loop%     % of generations ending in a repetition loop (Holtzman et al. "
                                   "2020, their code's rule)\n\n" +
                                   _paras("Sampling strategies draw --samples continuations per prompt (sample i "
                                          "uses the same random stream in every strategy); greedy, beam and "
                                          "contrastive are deterministic and run once per prompt."))
    c.add_argument("prompt", metavar="PROMPT", nargs="?", help="text to continue (or use --prompts)")
    c.add_argument("--prompts", metavar="FILE", help="file with one prompt per line ('-' reads stdin); shows a "
                                                     "progress bar on stderr")
    c.add_argument("--samples", type=_int_at_least(1), default=1, metavar="N",
                   help="continuations per prompt for the sampling strategies (default 1)")
    c.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S", help="seed of every strategy (default 0)")
    c.add_argument("--max-new-tokens", type=_int_at_least(1), default=40, metavar="N",
                   help="tokens per continuation (default 40)")
    c.add_argument("--strategies", metavar="A,B,...",
                   help=f"comma-separated subset of: {', '.join(s.name for s in STRATEGIES)} (default: all)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar with --prompts")
    _model_option(c, "gpt")
    _json_option(c)
    c.set_defaults(func=cmd_compare)

    f = sub.add_parser("fill-mask", help="predict the masked word(s) with a BERT-family model",
                       description="Rank (or sample) the tokens behind each mask of TEXT with a masked LM. "
                                   "Write the mask as the model's mask token; [MASK] works for every model.")
    f.add_argument("text", metavar="TEXT", help="text with one or more masks, e.g. 'The [MASK] returns a list.'")
    _model_option(f, "bert")
    f.add_argument("--top-k", type=_int_at_least(1), metavar="K",
                   help="candidates per mask (default 5); with sampling, the top-k filter")
    f.add_argument("--targets", nargs="+", metavar="WORD", help="score only these tokens")
    f.add_argument("--do-sample", action="store_true",
                   help="draw tokens from the (filtered) MLM distribution instead of ranking; implied by any "
                        "option below")
    f.add_argument("--num-samples", type=_int_at_least(1), metavar="N", help="draws per mask (default 1)")
    f.add_argument("--temperature", type=_number, metavar="T", help="sampling temperature")
    _add_truncation_filters(f)
    f.add_argument("--top-n-sigma", type=_number, metavar="N", help="top-n-sigma filter")
    f.add_argument("--seed", type=_int_at_least(0), metavar="S", help="random seed of the draws")
    _json_option(f)
    f.set_defaults(func=cmd_fill_mask)

    s = sub.add_parser("score", help="log-probability of each continuation of a prompt, ranked",
                       description="Score each CHOICE as a continuation of PROMPT under a causal LM: total and "
                                   "per-token log-probabilities, best first. The choice's tokens are those of "
                                   "PROMPT + separator + CHOICE tokenised together.")
    s.add_argument("prompt", metavar="PROMPT", help="the context")
    s.add_argument("choices", metavar="CHOICE", nargs="+", help="continuations to score")
    s.add_argument("--separator", default=" ", metavar="TEXT",
                   help="inserted between prompt and choice when neither has whitespace there (default: one "
                        "space; '' to glue)")
    _model_option(s, "gpt")
    _json_option(s)
    s.set_defaults(func=cmd_score)

    i = sub.add_parser("info", help="what a checkpoint folder holds",
                       description="Report a checkpoint folder: model_type, architecture class, layers / width / "
                                   "heads / vocabulary, parameter count and stored dtypes (from the weight files' "
                                   "headers; weights are not loaded), files with sizes, tokenizer files found.")
    i.add_argument("dir", metavar="DIR", help="checkpoint folder (gpt / bert: the embedded models)")
    _json_option(i)
    i.set_defaults(func=cmd_info)

    d = sub.add_parser("demo", help="run a random GPT-2-shaped model (no files needed)",
                       description="Build a random GPT-2-shaped model in memory, print next-token logits and a "
                                   "greedy continuation.")
    d.add_argument("--layers", type=_int_at_least(1), default=2, help="blocks (default 2)")
    d.add_argument("--width", type=_int_at_least(1), default=64, help="hidden size (default 64)")
    d.add_argument("--heads", type=_int_at_least(1), default=4, help="attention heads (default 4)")
    d.add_argument("--vocab", type=_int_at_least(2), default=1000, help="vocabulary size (default 1000)")
    d.add_argument("--new-tokens", type=_int_at_least(0), default=10, help="greedy tokens (default 10)")
    d.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the weights and prompt (default 0)")
    d.set_defaults(func=cmd_demo)
    return p


def _version() -> str:
    from . import __version__

    return __version__


def _one_line(message: str, parser: Optional[argparse.ArgumentParser] = None) -> str:
    """The library names parameters as Python does (top_p=1.5: ...); say the option instead."""
    m = re.match(r"(\w+)=", message)
    if m and parser is not None:
        for action in parser._actions:
            if action.dest == m.group(1) and action.option_strings:
                message = action.option_strings[0] + message[len(m.group(1)):]
                break
    return " ".join(str(message).split())


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status (0 done, 2 bad arguments, 130 interrupted)."""
    parser = build_parser()
    out = sys.stdout
    sub = None
    try:
        args = parser.parse_args(argv)
        sub = parser._subparsers._group_actions[0].choices.get(args.command)  # type: ignore[union-attr]
        return args.func(args, out)
    except SystemExit as e:  # --help and --version
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
    except UsageError as e:
        sys.stderr.write(f"tfm: error: {_one_line(str(e), sub)}\n")
    except BrokenPipeError:  # `tfm ... | head`: the reader left; not an error. Point stdout at devnull so
        # the interpreter's final flush does not fail again (the Python docs' recipe for SIGPIPE).
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except (ValueError, OSError) as e:  # the library's bad-input errors (FileNotFoundError is an OSError)
        sys.stderr.write(f"tfm: error: {_one_line(str(e), sub)}\n")
    except KeyboardInterrupt:
        sys.stderr.write("\ntfm: interrupted\n")
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
