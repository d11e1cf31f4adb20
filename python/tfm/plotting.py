"""tfm.plotting — the figures of the notebooks: what a decoding strategy keeps, beam trees, metrics, attention.

Contract
  * Every function draws with matplotlib, returns the ``matplotlib.figure.Figure`` it drew on and takes an
    optional ``ax`` (or builds its own figure). Inputs are NumPy arrays and tfm's own outputs
    (``tfm.sampling`` filter results, ``GenerateOutput.trace`` stages, ``GenerateOutput.beam_tree``,
    encoder ``attentions``, ``tfm.mlm_mask`` results); nothing here runs a model.
  * matplotlib is imported lazily, inside the functions, so ``import tfm`` never needs it; a missing
    matplotlib raises ImportError naming the package to install.
  * Token labels: pass ``labels`` as a callable ``id -> str`` (``token_labels(tokenizer)`` makes one that
    shows spaces and newlines) or as a sequence indexed by id.

Not here: saving files (``fig.savefig``), notebook display, styles or themes, graphviz (the beam tree is laid
out here, with matplotlib only).

    fig = tfm.plotting.distribution(logits, tfm.sampling.top_p(logits, 0.9), labels=tfm.plotting.token_labels(tok))
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["KEPT", "REMOVED", "token_labels", "kept_mask", "distribution", "distributions", "trace_stages",
           "kept_sizes", "beam_tree", "beam_tree_layout", "sweep", "stacked_bars", "attention_maps", "masking",
           "sliders"]

KEPT = "#1f77b4"      # tokens a filter keeps, running beams
REMOVED = "#c7c7c7"   # tokens a filter removes, pruned candidates
CHOSEN = "#d62728"    # the token / path that was chosen
FINISHED = "#2ca02c"  # beam hypotheses that ended (EOS or last step)
OTHER = "#ff7f0e"     # a second path to compare (greedy)

Labels = Union[None, Callable[[int], str], Sequence[str]]


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("tfm.plotting needs matplotlib: pip install matplotlib") from e
    return plt


def _fig_ax(ax, figsize):
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def token_labels(tokenizer: Any) -> Callable[[int], str]:
    """id -> readable token text: decoded text for byte-level BPE (leading space shown as '␣', newline as
    '\\n'), the vocabulary entry for WordPiece/SentencePiece tokenizers (whose decode drops '##' / '▁')."""
    def label(i: int) -> str:
        i = int(i)
        tok = tokenizer.convert_ids_to_tokens(i)
        if isinstance(tok, str) and (tok.startswith("##") or tok.startswith("\u2581") or tok.startswith("[")):
            return tok
        text = tokenizer.decode([i])
        return text.replace("\n", "\\n").replace(" ", "\u2423") if text else str(tok)
    return label


def _label(labels: Labels, i: int) -> str:
    if labels is None:
        return str(int(i))
    if callable(labels):
        return labels(int(i))
    return str(labels[int(i)])


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    m = np.max(z[np.isfinite(z)]) if np.isfinite(z).any() else 0.0
    e = np.where(np.isfinite(z), np.exp(z - m), 0.0)
    return e / e.sum()


def _vector(name: str, x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array [V], got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    return a


def kept_mask(logits: Any, keep: Any = None) -> np.ndarray:
    """bool [V]: which tokens survive. ``keep`` is None (all finite logits), a bool mask, or the filtered
    logits a ``tfm.sampling`` filter returned (finite = kept)."""
    z = _vector("logits", logits)
    if keep is None:
        return np.isfinite(z)
    k = _vector("keep", keep)
    if k.shape != z.shape:
        raise ValueError(f"keep has shape {k.shape}, logits have {z.shape}")
    return k.astype(bool) if k.dtype == bool else np.isfinite(k)


def _token_bars_axis(ax, bars, ids, labels, chosen) -> None:
    """One bar per token id: the chosen token outlined, the tokens as tick labels."""
    if chosen is not None:
        for b, i in zip(bars, ids):
            if i == int(chosen):
                b.set_edgecolor(CHOSEN)
                b.set_linewidth(2.5)
    ax.set_xticks(np.arange(len(ids)))
    ax.set_xticklabels([_label(labels, i) for i in ids], rotation=70, fontsize=7)


def distribution(logits: Any, keep: Any = None, *, labels: Labels = None, top: int = 25, ax: Any = None,
                 title: Optional[str] = None, chosen: Optional[int] = None, annotate: bool = True):
    """Bars of the ``top`` most probable tokens of softmax(logits), coloured kept (blue) / removed (grey) by
    ``keep`` (see ``kept_mask``), with the kept count and kept probability mass written in the corner.

    The bars are the probabilities BEFORE the filter, so the grey bars show what a filter throws away;
    ``chosen`` (a token id) is outlined in red. Title / annotation include the distribution's entropy."""
    z = _vector("logits", logits)
    if not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"top must be a positive integer, got {top!r}")
    p = _softmax(z)
    kept = kept_mask(z, keep)
    order = np.argsort(-p, kind="stable")[:min(top, len(p))]
    fig, ax = _fig_ax(ax, (max(4.0, 0.28 * len(order) + 1.5), 3.0))
    colors = [KEPT if kept[i] else REMOVED for i in order]
    bars = ax.bar(np.arange(len(order)), p[order], color=colors, edgecolor=colors, linewidth=1.5)
    _token_bars_axis(ax, bars, order, labels, chosen)
    ax.set_ylabel("probability")
    ax.set_xlim(-0.7, len(order) - 0.3)
    if title:
        ax.set_title(title, fontsize=9)
    if annotate:
        nz = p[p > 0]
        entropy = float(-(nz * np.log(nz)).sum())
        mass = float(p[kept].sum())
        ax.text(0.98, 0.95, f"kept {int(kept.sum()):,} of {len(p):,} tokens\nkept mass {mass:.3f}\n"
                f"entropy {entropy:.2f} nats", transform=ax.transAxes, ha="right", va="top", fontsize=8,
                bbox=dict(boxstyle="round", fc="white", ec="0.8"))
    return fig


def distributions(panels: Sequence[Tuple[str, Any, Any]], *, labels: Labels = None, top: int = 20,
                  ncols: Optional[int] = None, sharey: bool = True, suptitle: Optional[str] = None):
    """A grid of ``distribution`` panels: ``panels`` is a list of (title, logits, keep) — e.g. one row per
    context and one column per filter. ``ncols`` defaults to all panels in one row."""
    if len(panels) == 0:
        raise ValueError("panels is empty")
    plt = _plt()
    n = len(panels)
    ncols = n if ncols is None else int(ncols)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), squeeze=False, sharey=sharey)
    for k, (title, z, keep) in enumerate(panels):
        distribution(z, keep, labels=labels, top=top, ax=axes[k // ncols][k % ncols], title=title)
    for k in range(n, nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def trace_stages(stages: Sequence[Any], *, labels: Labels = None, chosen: Optional[int] = None, top: int = 15,
                 title: Optional[str] = None):
    """One generation step from ``generate(..., trace=True)``: ``stages`` is ``out.trace[step][row]``, the
    distribution after the model and after each processor (``StageTrace``). One panel per stage over the
    tokens the model ranked highest: probability at that stage (renormalised), grey where the stage removed
    the token, with the stage's kept count and the mass it kept of the previous stage's distribution."""
    if len(stages) == 0:
        raise ValueError("stages is empty")
    plt = _plt()
    first = stages[0]
    ids = [int(i) for i in np.asarray(first.top_ids)[:top] if i >= 0]
    fig, axes = plt.subplots(1, len(stages), figsize=(3.4 * len(stages), 3.0), squeeze=False, sharey=True)
    for ax, st in zip(axes[0], stages):
        at = {int(i): float(p) for i, p in zip(np.asarray(st.top_ids), np.asarray(st.top_probs)) if i >= 0}
        probs = np.array([at.get(i, 0.0) for i in ids])
        colors = [KEPT if i in at and at[i] > 0 else REMOVED for i in ids]
        bars = ax.bar(np.arange(len(ids)), np.where(probs > 0, probs, 0.0), color=colors)
        # removed tokens: a short grey stub at the model's probability, so the gap is visible
        base = {int(i): float(p) for i, p in zip(np.asarray(first.top_ids), np.asarray(first.top_probs))}
        for x, i in enumerate(ids):
            if i not in at or at[i] <= 0:
                ax.bar([x], [base.get(i, 0.0)], color="none", edgecolor=REMOVED, hatch="//")
        _token_bars_axis(ax, bars, ids, labels, chosen)
        ax.set_title(st.name, fontsize=9)
        ax.text(0.98, 0.95, f"kept {st.kept:,}\nmass kept {st.kept_mass:.3f}", transform=ax.transAxes,
                ha="right", va="top", fontsize=8, bbox=dict(boxstyle="round", fc="white", ec="0.8"))
    axes[0][0].set_ylabel("probability")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def kept_sizes(sizes: Mapping[str, Any], *, ax: Any = None, title: Optional[str] = None, bins: int = 40):
    """Histograms (log-spaced bins) of how many tokens each method kept, one series per method, over many
    contexts — e.g. ``{"top-p 0.9": info.kept}`` from ``tfm.sampling.top_p(logits [N, V], 0.9,
    return_info=True)``. A series that never varies (top-k) is drawn as one dashed line."""
    if len(sizes) == 0:
        raise ValueError("sizes is empty")
    arrays = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in sizes.items()}
    if any(a.size == 0 for a in arrays.values()):
        raise ValueError("every series in sizes needs at least one value")
    hi = max(float(a.max()) for a in arrays.values())
    # unit-wide bins up to 10 tokens, log-spaced above (integer edges, so no bin is empty by construction)
    edges = np.arange(1.0, 11.0)
    if hi > 10:
        edges = np.concatenate([edges, np.round(np.logspace(1.0, math.log10(hi + 1.0), bins))])
    edges = np.unique(edges) - 0.5
    edges = np.append(edges, max(hi, edges[-1]) + 0.5)
    fig, ax = _fig_ax(ax, (6.0, 3.2))
    for name, a in arrays.items():
        if np.all(a == a[0]):  # a fixed size (top-k): one line, not a spike that dwarfs the histograms
            ax.axvline(a[0], linestyle="--", linewidth=1.8, color="0.3", label=f"{name} (always {a[0]:g})")
        else:
            ax.hist(a, bins=edges, histtype="step", linewidth=1.8, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("tokens kept")
    ax.set_ylabel("contexts")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------------
# beam tree
# ------------------------------------------------------------------------------------------------

Node = Tuple[int, int]  # (step, candidate); the root (the prompt) is (-1, -1)


def _path_nodes(tree: Any, row: int, tokens: Sequence[int], slots: Optional[Sequence[int]] = None) -> List[Node]:
    """(step, candidate) nodes along a token path through the tree; stops where the path leaves it.
    ``slots`` (beam_indices of a returned sequence) disambiguates; without it, the path follows the running
    beam that extends the previous node (greedy's path)."""
    out: List[Node] = []
    prev_slot = 0
    S = tree.token.shape[0]
    for s, t in enumerate(tokens[:S]):
        want_parent = int(slots[s]) if slots is not None else prev_slot
        hit = [c for c in range(tree.token.shape[2])
               if int(tree.token[s, row, c]) == int(t) and int(tree.parent[s, row, c]) == want_parent]
        if not hit:
            break
        c = hit[0]
        out.append((s, c))
        if not tree.kept[s, row, c]:
            break
        prev_slot = int(tree.slot[s, row, c])
    return out


def beam_tree_layout(tree: Any, row: int = 0) -> Tuple[Dict[Node, Tuple[float, float]], Dict[Node, Node]]:
    """Positions for the nodes of ``GenerateOutput.beam_tree`` (batch row ``row``): x = step + 1 (the root,
    the prompt, is (-1, -1) at x = 0); y from a tidy layout — leaves on consecutive rows in depth-first order,
    a parent centred on its children. Returns (positions, parent of each node)."""
    S, _, C = tree.token.shape
    parent: Dict[Node, Node] = {}
    children: Dict[Node, List[Node]] = {(-1, -1): []}
    slot_node = {0: (-1, -1)}  # running slot -> node that occupies it after the previous step
    for s in range(S):
        nxt = {}
        for c in range(C):
            p = slot_node.get(int(tree.parent[s, row, c]))
            if p is None:
                continue  # candidate of an unused slot (cannot happen for a well-formed tree)
            node = (s, c)
            parent[node] = p
            children.setdefault(p, []).append(node)
            children.setdefault(node, [])
            if tree.kept[s, row, c]:
                nxt[int(tree.slot[s, row, c])] = node
        slot_node = nxt
    pos: Dict[Node, Tuple[float, float]] = {}
    counter = [0]

    def place(node):  # depth-first; children in score order (the tree stores candidates best first)
        kids = children.get(node, [])
        if not kids:
            y = float(counter[0])
            counter[0] += 1
        else:
            ys = [place(k) for k in kids]
            y = (min(ys) + max(ys)) / 2.0
        pos[node] = (node[0] + 1.0, y)
        return y

    place((-1, -1))
    return pos, parent


def beam_tree(tree: Any, *, row: int = 0, labels: Labels = None,
              best: Optional[Tuple[Sequence[int], Sequence[int]]] = None, greedy: Optional[Sequence[int]] = None,
              prompt: str = "prompt", ax: Any = None,
              title: Optional[str] = None, show_scores: bool = True):
    """Draw every candidate beam search expanded (``GenerateOutput.beam_tree``) as a tree: x = step, one node
    per candidate, labelled with its token and accumulated log-probability. Blue = kept as a running beam,
    grey = pruned, green = entered the finished hypotheses (EOS, or alive at the last step), with its
    length-normalised score after the arrow.
    ``best = (tokens, beam_indices)`` of a returned sequence is drawn in red; ``greedy`` (greedy's new tokens)
    in orange dashes as far as it stays inside the tree."""
    pos, parent = beam_tree_layout(tree, row)
    n_leaves = 1 + int(max(y for _, y in pos.values()))
    S = tree.token.shape[0]
    fig, ax = _fig_ax(ax, (2.0 + 1.9 * S, max(3.0, 0.32 * n_leaves + 1.0)))
    for node, p in parent.items():
        (x0, y0), (x1, y1) = pos[p], pos[node]
        ax.plot([x0, x1], [y0, y1], color="0.8", linewidth=0.8, zorder=1)

    def path_lines(nodes, color, style, width, label):
        pts = [pos[(-1, -1)]] + [pos[n] for n in nodes]
        if len(pts) > 1:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, color=color, linestyle=style, linewidth=width, zorder=2, label=label)

    if best is not None:
        toks, slots = best
        path_lines(_path_nodes(tree, row, list(toks), list(slots)), CHOSEN, "-", 3.0, "best beam")
    if greedy is not None:  # drawn over the best path: dashes show where the two coincide
        path_lines(_path_nodes(tree, row, list(greedy)), OTHER, "--", 1.8, "greedy")
    for node, (x, y) in pos.items():
        if node == (-1, -1):
            ax.text(x, y, prompt, ha="right", va="center", fontsize=8,
                    bbox=dict(boxstyle="round", fc="white", ec="0.5"), zorder=4)
            continue
        s, c = node
        done = bool(tree.accepted[s, row, c])  # entered the finished hypotheses (EOS, or alive at the end)
        kept = bool(tree.kept[s, row, c]) and not done
        color = FINISHED if done else KEPT if kept else REMOVED
        ax.scatter([x], [y], s=40, color=color, zorder=3)
        text = _label(labels, int(tree.token[s, row, c]))
        if show_scores:
            text += f"  {float(tree.score[s, row, c]):.2f}"
            if done and np.isfinite(tree.final[s, row, c]):
                text += f" \u2192 {float(tree.final[s, row, c]):.2f}"
        ax.text(x + 0.08, y, text, va="center", fontsize=7, color="black" if kept or done else "0.45", zorder=4)
    ax.set_xlim(-1.2, S + 1.3)
    ax.set_ylim(n_leaves - 0.4, -0.6)  # first (best-scored) candidates on top
    ax.set_xticks(np.arange(1, S + 1))
    ax.set_xticklabels([f"step {s}" for s in range(S)], fontsize=8)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], marker="o", ls="", color=KEPT, label="kept (running beam)"),
               Line2D([], [], marker="o", ls="", color=REMOVED, label="pruned"),
               Line2D([], [], marker="o", ls="", color=FINISHED, label="finished (\u2192 normalised score)")]
    handles += [h for h in ax.get_lines() if h.get_label() in ("greedy", "best beam")]
    ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.9)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------

def sweep(results: Mapping[str, Tuple[Sequence[float], Mapping[str, Sequence[float]]]], *,
          reference: Optional[Mapping[str, float]] = None, logx: Sequence[str] = (), logy: Sequence[str] = (),
          suptitle: Optional[str] = None):
    """Metrics against a decoding parameter: ``results[param] = (values, {metric: [one number per value]})``,
    e.g. ``{"temperature": ([0.5, 1, 1.5], {"repetition %": [...], "diversity": [...]})}``. One column per
    parameter, one row per metric; ``reference[metric]`` (e.g. the human text's value) is a dashed line;
    parameters named in ``logx`` get a log x axis, metrics named in ``logy`` a log y axis."""
    if len(results) == 0:
        raise ValueError("results is empty")
    metrics: List[str] = []
    for _, (xs, ms) in results.items():
        for m, ys in ms.items():
            if len(ys) != len(xs):
                raise ValueError(f"metric {m!r} has {len(ys)} values for {len(xs)} parameter values")
            if m not in metrics:
                metrics.append(m)
    plt = _plt()
    fig, axes = plt.subplots(len(metrics), len(results), figsize=(3.4 * len(results), 2.5 * len(metrics)),
                             squeeze=False, sharey="row")
    for j, (param, (xs, ms)) in enumerate(results.items()):
        for i, m in enumerate(metrics):
            ax = axes[i][j]
            if m in ms:
                ax.plot(xs, ms[m], marker="o", color=KEPT, label=m)
            if reference and m in reference:
                ax.axhline(reference[m], color=FINISHED, linestyle="--", linewidth=1.2, label="human")
            if param in logx:
                ax.set_xscale("log")
            if m in logy:
                ax.set_yscale("log")
            if i == len(metrics) - 1:
                ax.set_xlabel(param)
            if j == 0:
                ax.set_ylabel(m)
            ax.grid(alpha=0.3)
    if reference:
        axes[0][0].legend(fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def stacked_bars(labels: Sequence[str], parts: Mapping[str, Sequence[float]], *, ax: Any = None,
                 ylabel: str = "", title: Optional[str] = None, logy: bool = False, annotate: bool = True):
    """One bar per label, stacked from ``parts`` (``{part name: one value per label}``), the total written
    above each bar — e.g. parameter counts split into embeddings / encoder / pooler."""
    if len(labels) == 0 or len(parts) == 0:
        raise ValueError("labels and parts must be non-empty")
    for name, vals in parts.items():
        if len(vals) != len(labels):
            raise ValueError(f"part {name!r} has {len(vals)} values for {len(labels)} labels")
    fig, ax = _fig_ax(ax, (max(4.5, 1.1 * len(labels) + 1.5), 3.4))
    x = np.arange(len(labels))
    bottom = np.zeros(len(labels))
    for name, vals in parts.items():
        v = np.asarray(vals, dtype=np.float64)
        ax.bar(x, v, bottom=bottom, label=name)
        bottom += v
    if annotate:
        for xi, total in zip(x, bottom):
            ax.text(xi, total, f"{total / 1e6:.1f}M" if total >= 1e5 else f"{total:,.0f}", ha="center",
                    va="bottom", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=20, fontsize=8)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------------
# BERT
# ------------------------------------------------------------------------------------------------

def attention_maps(attentions: Any, tokens: Sequence[str], *, layers: Optional[Sequence[int]] = None,
                   heads: Optional[Sequence[int]] = None, batch: int = 0, vmax: Optional[float] = None,
                   suptitle: Optional[str] = None):
    """Heatmaps of attention weights, one panel per (layer, head): rows = layers, columns = heads. Row i of a
    panel is what query token i attends to. ``attentions`` is a model output's ``.attentions`` (one
    [B, H, T, T] array per layer) or an array [L, H, T, T]. One colour scale for all panels, from 0 to ``vmax``
    (default: the largest weight shown), so heads can be compared."""
    if isinstance(attentions, np.ndarray) and attentions.ndim == 4:
        att = [attentions[l] for l in range(attentions.shape[0])]
    else:
        att = [np.asarray(a)[batch] if np.ndim(a) == 4 else np.asarray(a) for a in attentions]
    if not att or any(a.ndim != 3 or a.shape[1] != a.shape[2] for a in att):
        raise ValueError("attentions must be L x [B, H, T, T] (or [L, H, T, T])")
    T = att[0].shape[-1]
    if len(tokens) != T:
        raise ValueError(f"{len(tokens)} tokens for attention maps over {T} positions")
    layers = list(range(len(att))) if layers is None else list(layers)
    heads = list(range(att[0].shape[0])) if heads is None else list(heads)
    if vmax is None:
        vmax = float(max(att[l][h].max() for l in layers for h in heads))
    plt = _plt()
    size = max(1.8, 0.16 * T + 0.6)
    fig, axes = plt.subplots(len(layers), len(heads), figsize=(size * len(heads) + 1.2, size * len(layers) + 0.4),
                             squeeze=False, layout="constrained")
    for i, l in enumerate(layers):
        for j, h in enumerate(heads):
            ax = axes[i][j]
            im = ax.imshow(att[l][h], cmap="viridis", vmin=0.0, vmax=vmax)
            ax.set_xticks(np.arange(T))
            ax.set_yticks(np.arange(T))
            ax.set_xticklabels(tokens if i == len(layers) - 1 else [], rotation=90, fontsize=6)
            ax.set_yticklabels(tokens if j == 0 else [], fontsize=6)
            ax.set_title(f"layer {l} head {h}", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.6, label="attention weight")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def masking(tokens: Sequence[str], corrupted: Sequence[str], masked: Any, replaced: Any, random: Any, *,
            ax: Any = None, title: Optional[str] = None):
    """BERT's 80/10/10 recipe on one sentence (the output of ``tfm.mlm_mask``): the original tokens on top,
    what the model sees below, each chosen position coloured by what happened to it — [MASK] (80%), a random
    token (10%), left unchanged but still predicted (10%)."""
    masked, replaced, random = (np.asarray(a, dtype=bool).ravel() for a in (masked, replaced, random))
    T = len(tokens)
    if not (len(corrupted) == T == len(masked) == len(replaced) == len(random)):
        raise ValueError("tokens, corrupted and the three position masks must have the same length")
    colours = {"mask": "#1f77b4", "random": "#d62728", "same": "#ff7f0e", "none": "white"}
    fig, ax = _fig_ax(ax, (min(18.0, 0.75 * T + 1.5), 1.9))
    for t in range(T):
        kind = "mask" if replaced[t] else "random" if random[t] else "same" if masked[t] else "none"
        for y, text in ((1, tokens[t]), (0, corrupted[t])):
            ax.add_patch(_plt().Rectangle((t, y), 0.95, 0.8, facecolor=colours[kind] if kind != "none" else "white",
                                          alpha=0.35 if kind != "none" else 1.0, edgecolor="0.6"))
            ax.text(t + 0.475, y + 0.4, text, ha="center", va="center", fontsize=7)
    ax.set_xlim(-1.6, T)
    ax.set_ylim(-0.1, 1.9)
    ax.text(-0.1, 1.4, "original", ha="right", va="center", fontsize=8)
    ax.text(-0.1, 0.4, "model input", ha="right", va="center", fontsize=8)
    ax.axis("off")
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(facecolor=colours["mask"], alpha=0.35, label="→ [MASK] (80%)"),
                       Patch(facecolor=colours["random"], alpha=0.35, label="→ random token (10%)"),
                       Patch(facecolor=colours["same"], alpha=0.35, label="unchanged, predicted (10%)")],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------------
# interactivity
# ------------------------------------------------------------------------------------------------

def sliders(draw: Callable[..., Any], **params: Tuple[float, float, float, float]):
    """Live controls for ``draw(**values) -> Figure``: each keyword is ``name=(min, max, step, start)``.
    With ipywidgets, displays one slider per parameter (integer sliders when all four numbers are ints) above
    the figure, redraws on every change and returns the widget. Without ipywidgets, or with the environment
    variable TFM_NO_WIDGETS=1 (headless runs: nbclient can stall on widget output), it draws once at the start
    values and returns that Figure: the static fallback (shown by the notebook like any other figure)."""
    for name, spec in params.items():
        if not isinstance(spec, (tuple, list)) or len(spec) != 4:
            raise ValueError(f"slider {name!r} must be (min, max, step, start), got {spec!r}")
    start = {name: spec[3] for name, spec in params.items()}
    if os.environ.get("TFM_NO_WIDGETS", "") not in ("", "0"):
        return draw(**start)
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        return draw(**start)
    controls = {}
    for name, (lo, hi, step, value) in params.items():
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (lo, hi, step, value)):
            controls[name] = widgets.IntSlider(min=lo, max=hi, step=step, value=value, description=name,
                                               continuous_update=False)
        else:
            controls[name] = widgets.FloatSlider(min=lo, max=hi, step=step, value=value, description=name,
                                                 continuous_update=False)
    plt = _plt()

    def show(**values):
        fig = draw(**values)
        display(fig)
        plt.close(fig)  # shown once, by display(); not again when the cell ends

    ui = widgets.interactive(show, **controls)
    display(ui)
    return ui
