"""Decoding strategies side by side: the same prompts and seeds through each strategy, with quality metrics.

    doc = tfm.comparison.compare(model, tok, ["The module"], samples=4, seed=0, max_new_tokens=40)
    doc["strategies"][0]["mean_logprob"], doc["strategies"][0]["generations"][0]["text"]

This is what ``tfm compare`` prints. Each strategy of ``STRATEGIES`` runs with fixed, stated parameters —
the checkpoint's generation_config.json is deliberately ignored, so every strategy starts from the same
defaults (no filter, no penalty) and differs only by its own parameters. Stochastic strategies draw
``samples`` continuations per prompt with the same ``seed`` (sample i of a prompt uses the same random
stream in every strategy); deterministic ones (greedy, beam, contrastive) run once per prompt.

Metrics (all from :mod:`tfm.metrics`, over the model's own token ids):
  * mean_logprob: log p(token | prompt, previous tokens) under the model's *raw* distribution (the
    softmax of its logits, before temperature or any filter), pooled over every generated token up to
    and including the first EOS; perplexity = exp(-mean_logprob) over the same tokens;
  * distinct_2: Li et al. 2016's unique / total bigrams within each generation (EOS excluded), averaged
    over generations (per generation, so strategies run once and strategies sampled N times compare);
  * rep_2: SimCTG's rep-2 (Su et al. 2022), percent of a generation's bigrams that repeat an earlier one
    of the same generation, pooled over generations;
  * repetition: Holtzman et al. 2020's repetition %, the share of generations that end in a repetition
    loop (their code's rule: tfm.metrics.holtzman_repetition, rule="code").

Not here: MAUVE, Self-BLEU over small sample counts, human judgements.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from . import metrics
from .generation import GenerationConfig

__all__ = ["Strategy", "STRATEGIES", "compare", "strategy_names", "select_strategies", "prompt_ids"]


@dataclass(frozen=True)
class Strategy:
    name: str
    params: Dict[str, Any]   # GenerationConfig fields
    stochastic: bool
    description: str


STRATEGIES: List[Strategy] = [
    Strategy("greedy", dict(do_sample=False), False, "argmax at every step"),
    Strategy("beam", dict(num_beams=4, length_penalty=1.0), False,
             "beam search, 4 beams, length_penalty 1, the best beam"),
    Strategy("sampling", dict(do_sample=True), True, "pure (ancestral) sampling: temperature 1, no filter"),
    Strategy("temperature", dict(do_sample=True, temperature=0.7), True, "sampling at temperature 0.7"),
    Strategy("top-k", dict(do_sample=True, top_k=40), True, "top-k sampling, k = 40 (Fan et al. 2018)"),
    Strategy("top-p", dict(do_sample=True, top_p=0.9), True, "nucleus sampling, p = 0.9 (Holtzman et al. 2020)"),
    Strategy("typical", dict(do_sample=True, typical_p=0.95), True,
             "locally typical sampling, tau = 0.95 (Meister et al. 2023)"),
    Strategy("min-p", dict(do_sample=True, min_p=0.1), True, "min-p sampling, p_base = 0.1 (Nguyen et al. 2024)"),
    Strategy("contrastive", dict(penalty_alpha=0.6, top_k=4), False,
             "contrastive search, alpha = 0.6, k = 4 (Su et al. 2022)"),
]


def strategy_names() -> List[str]:
    return [s.name for s in STRATEGIES]


def select_strategies(names: Optional[Sequence[str]]) -> List[Strategy]:
    """The named strategies in the order given (None: all); ValueError naming unknown ones."""
    if names is None:
        return list(STRATEGIES)
    by_name = {s.name: s for s in STRATEGIES}
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        raise ValueError(f"unknown strategy {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"strategies: {', '.join(by_name)}")
    return [by_name[n] for n in dict.fromkeys(names)]


def prompt_ids(tokenizer: Any, model: Any, prompt: str) -> List[int]:
    """Token ids of a prompt; an empty prompt is the model's BOS token."""
    ids = tokenizer.encode(prompt)
    if not ids:  # an empty prompt starts from BOS, as unconditional generation does
        bos = model.config.bos_token_id
        if bos is None:
            raise ValueError("the prompt is empty and the model has no bos_token_id to start from")
        ids = [int(bos)]
    return ids


def _trim(row: np.ndarray, eos: Sequence[int]) -> List[int]:
    """Generated ids up to and including the first EOS (what follows is padding)."""
    out = []
    for t in row.tolist():
        out.append(int(t))
        if t in eos:
            break
    return out


def _safe(fn: Callable[[], float]) -> Optional[float]:
    try:
        return float(fn())
    except ValueError:  # no n-gram at all (every generation shorter than 2 tokens)
        return None


def compare(model: Any, tokenizer: Any, prompts: Sequence[str], *, samples: int = 1, seed: int = 0,
            max_new_tokens: int = 40, strategies: Optional[Sequence[str]] = None,
            progress: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Runs each strategy on each prompt; returns one JSON-ready document (see the module docstring).

    progress, when given, is called once per (prompt, strategy) finished, with the strategy's name.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        raise ValueError("no prompt given")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    chosen = select_strategies(strategies)
    encoded = [prompt_ids(tokenizer, model, p) for p in prompts]
    eos = [int(e) for e in ([model.config.eos_token_id] if isinstance(model.config.eos_token_id, int)
                            else (model.config.eos_token_id or []))]
    results = []
    for strat in chosen:
        n = samples if strat.stochastic else 1
        cfg = GenerationConfig(max_new_tokens=max_new_tokens, seed=seed, num_return_sequences=n, **strat.params)
        gens = []
        for pi, ids in enumerate(encoded):
            out = model.generate([ids], generation_config=cfg)
            P = len(ids)
            rows = [_trim(out[r, P:], eos) for r in range(out.shape[0])]
            # log-probabilities under the raw model, recomputed by tfm.metrics on prompt + generation
            L = max(len(r) for r in rows)
            batch = np.zeros((len(rows), P + L), dtype=np.int64)
            mask = np.zeros_like(batch)
            for r, g in enumerate(rows):
                batch[r, :P + len(g)] = ids + g
                mask[r, :P + len(g)] = 1
            lp = metrics.token_logprobs(model, batch, attention_mask=mask)
            for r, g in enumerate(rows):
                tok_lp = lp[r, P:P + len(g)]
                body = [t for t in g if t not in eos]
                gens.append(dict(prompt_index=pi, sample=r, seed=seed, token_ids=g,
                                 text=tokenizer.decode(g, skip_special_tokens=True),
                                 n_tokens=len(g), sum_logprob=float(tok_lp.sum()),
                                 mean_logprob=float(tok_lp.mean()) if len(g) else None,
                                 distinct_2=_safe(lambda: metrics.distinct_n([body], 2)),
                                 _body=body))
            if progress is not None:
                progress(strat.name)
        n_tok = sum(g["n_tokens"] for g in gens)
        mean_lp = sum(g["sum_logprob"] for g in gens) / n_tok if n_tok else None
        d2 = [g["distinct_2"] for g in gens if g["distinct_2"] is not None]
        bodies = [g.pop("_body") for g in gens]
        results.append(dict(
            name=strat.name, description=strat.description, params=dict(strat.params),
            samples_per_prompt=n,
            mean_logprob=mean_lp,
            perplexity=math.exp(-mean_lp) if mean_lp is not None else None,
            distinct_2=float(np.mean(d2)) if d2 else None,
            rep_2=_safe(lambda: metrics.rep_n(bodies, 2)),
            repetition=metrics.holtzman_repetition(bodies),
            generations=gens))
    return dict(prompts=list(prompts), samples=samples, seed=seed, max_new_tokens=max_new_tokens,
                metrics=METRIC_DEFINITIONS, strategies=results)


METRIC_DEFINITIONS = {
    "mean_logprob": "mean log p(token | prefix) under the model's raw softmax (no temperature or filter), pooled "
                    "over all generated tokens up to and including the first EOS",
    "perplexity": "exp(-mean_logprob)",
    "distinct_2": "Li et al. 2016 unique/total bigrams of model tokens within each generation (EOS excluded), "
                  "averaged over generations",
    "rep_2": "SimCTG rep-2 (Su et al. 2022): percent of bigrams repeating an earlier bigram of the same "
             "generation, pooled",
    "repetition": "Holtzman et al. 2020 repetition %: generations ending in a repetition loop (their code's rule)",
}
