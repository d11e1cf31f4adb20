"""tfm.plotting: each function returns a Figure with the artists and labels it promises (Agg backend).

The expected numbers (kept counts, masses, node counts, tree positions) are computed by hand from tiny inputs;
the figures themselves are not compared pixel by pixel.
"""
from __future__ import annotations

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tfm import plotting as P  # noqa: E402
from tfm import sampling as S  # noqa: E402
from tfm.generation.utils import BeamTree, StageTrace  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def bar_colours(ax):
    return [to_rgba(p.get_facecolor()) for p in ax.patches]


Z4 = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))  # a distribution one can filter by hand


def test_import_tfm_does_not_import_matplotlib():
    import os
    from pathlib import Path

    import tfm

    code = ("import sys, tfm, tfm.plotting; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported by import tfm'")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(tfm.__file__).resolve().parent.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr


def test_distribution_colours_kept_and_removed_and_annotates_mass():
    kept = S.top_p(Z4, 0.75)  # keeps 0.5 and 0.3: mass 0.8
    fig = P.distribution(Z4, kept, labels=["a", "b", "c", "d"], top=4, title="top-p 0.75")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [round(p.get_height(), 6) for p in ax.patches] == [0.5, 0.3, 0.15, 0.05]
    assert bar_colours(ax) == [to_rgba(P.KEPT)] * 2 + [to_rgba(P.REMOVED)] * 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    note = " ".join(texts(fig))
    assert "kept 2 of 4 tokens" in note and "kept mass 0.800" in note
    assert ax.get_title() == "top-p 0.75"


def test_distribution_top_and_bool_mask_and_chosen_outline():
    fig = P.distribution(Z4, np.array([True, False, True, False]), top=3, chosen=2)
    ax = fig.axes[0]
    assert len(ax.patches) == 3
    assert bar_colours(ax) == [to_rgba(P.KEPT), to_rgba(P.REMOVED), to_rgba(P.KEPT)]
    assert to_rgba(ax.patches[2].get_edgecolor()) == to_rgba(P.CHOSEN)
    assert "kept mass 0.650" in " ".join(texts(fig))


def test_distribution_rejects_bad_input():
    with pytest.raises(ValueError, match="keep has shape"):
        P.distribution(Z4, np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="top"):
        P.distribution(Z4, top=0)
    with pytest.raises(ValueError, match="1-D"):
        P.distribution(np.zeros((2, 4)))


def test_distributions_grid_hides_unused_panels():
    fig = P.distributions([("x", Z4, None), ("y", Z4, S.top_k(Z4, 1)), ("z", Z4 / 2, None)], ncols=2, top=4)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 4 and len(visible) == 3
    assert [ax.get_title() for ax in visible] == ["x", "y", "z"]
    assert bar_colours(visible[1]).count(to_rgba(P.KEPT)) == 1
    with pytest.raises(ValueError):
        P.distributions([])


def test_trace_stages_one_panel_per_stage_with_removed_tokens_hatched():
    ids = np.array([3, 1, 0, 2])
    stages = [StageTrace("model", ids, np.array([0.5, 0.3, 0.15, 0.05]), 4, 1.0),
              StageTrace("top_k", np.array([3, 1, -1, -1]), np.array([0.625, 0.375, 0.0, 0.0]), 2, 0.8)]
    fig = P.trace_stages(stages, labels=lambda i: f"t{i}", chosen=1)
    assert [ax.get_title() for ax in fig.axes] == ["model", "top_k"]
    ax = fig.axes[1]
    heights = [round(p.get_height(), 6) for p in ax.patches[:4]]
    assert heights == [0.625, 0.375, 0.0, 0.0]
    hatched = [p for p in ax.patches if p.get_hatch() == "//"]
    assert len(hatched) == 2  # the two tokens top_k removed, drawn at the model's probability
    assert "kept 2" in " ".join(t.get_text() for t in ax.texts)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["t3", "t1", "t0", "t2"]


def test_kept_sizes_draws_a_fixed_size_as_a_line():
    fig = P.kept_sizes({"top-k 40": np.full(50, 40), "top-p 0.9": np.arange(1, 51)})
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["top-k 40 (always 40)"]
    assert ax.get_xscale() == "log"
    assert len(ax.patches) == 1  # one step histogram
    with pytest.raises(ValueError):
        P.kept_sizes({})


# A hand-made beam tree: 2 beams, 2 steps, 4 candidates per step (the shape generate() records).
# step 0 (all from the prompt, slot 0): tokens 10, 11 kept in slots 0, 1; 12, 13 pruned.
# step 1: 20 extends slot 1 and finishes (accepted), 21 extends slot 0 (kept, slot 0), 22 and 23 pruned.
def _tree():
    shape = (2, 1, 4)
    tree = BeamTree(parent=np.zeros(shape, np.int64), token=np.zeros(shape, np.int64), score=np.zeros(shape),
                    final=np.full(shape, np.nan), finished=np.zeros(shape, bool), kept=np.zeros(shape, bool),
                    slot=np.full(shape, -1), accepted=np.zeros(shape, bool))
    tree.token[0, 0] = [10, 11, 12, 13]
    tree.score[0, 0] = [-1.0, -1.5, -2.0, -2.5]
    tree.kept[0, 0, :2] = True
    tree.slot[0, 0, :2] = [0, 1]
    tree.parent[1, 0] = [1, 0, 0, 1]
    tree.token[1, 0] = [20, 21, 22, 23]
    tree.score[1, 0] = [-2.0, -2.2, -3.0, -3.5]
    tree.kept[1, 0, :2] = True
    tree.slot[1, 0, :2] = [0, 1]
    tree.finished[1, 0, 0] = tree.accepted[1, 0, 0] = True
    tree.final[1, 0, 0] = -1.0
    return tree


def test_beam_tree_layout_links_candidates_to_running_beams():
    pos, parent = P.beam_tree_layout(_tree())
    assert parent[(1, 0)] == (0, 1) and parent[(1, 1)] == (0, 0)  # via the slots, not the candidate index
    assert parent[(0, 2)] == (-1, -1)
    assert len(pos) == 1 + 8
    leaves = sorted(pos[n][1] for n in pos if n not in parent.values())
    assert leaves == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # 6 leaves on consecutive rows
    for node, p in parent.items():  # a parent sits left of its children, within their rows
        assert pos[p][0] == pos[node][0] - 1


def test_beam_tree_figure_nodes_paths_and_labels():
    tree = _tree()
    fig = P.beam_tree(tree, labels=lambda i: f"<{i}>", best=([11, 20], [0, 1]), greedy=[10, 21], prompt="p")
    ax = fig.axes[0]
    assert len(ax.collections) == 8  # one marker per candidate
    colours = [to_rgba(c.get_facecolor()[0]) for c in ax.collections]
    assert colours.count(to_rgba(P.FINISHED)) == 1 and colours.count(to_rgba(P.REMOVED)) == 4
    labels = texts(fig)
    assert any(t.startswith("<20>") and "-1.00" in t for t in labels)  # finished: normalised score shown
    paths = {line.get_label(): line for line in ax.get_lines() if line.get_label() in ("best beam", "greedy")}
    assert set(paths) == {"best beam", "greedy"}
    pos, _ = P.beam_tree_layout(tree)
    best_xy = list(zip(*paths["best beam"].get_data()))
    assert best_xy == [pos[(-1, -1)], pos[(0, 1)], pos[(1, 0)]]
    greedy_xy = list(zip(*paths["greedy"].get_data()))
    assert greedy_xy == [pos[(-1, -1)], pos[(0, 0)], pos[(1, 1)]]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["step 0", "step 1"]


def test_sweep_grid_reference_lines_and_log_axes():
    res = {"temperature": ([0.5, 1.0, 1.5], {"rep": [3, 2, 1], "ppl": [5, 50, 500]}),
           "top_k": ([5, 50], {"rep": [4, 1], "ppl": [10, 100]})}
    fig = P.sweep(res, reference={"ppl": 60}, logx=("top_k",), logy=("ppl",))
    assert len(fig.axes) == 4
    (a00, a01), (a10, a11) = np.array(fig.axes).reshape(2, 2)
    assert a00.get_ylabel() == "rep" and a10.get_ylabel() == "ppl"
    assert a10.get_xlabel() == "temperature" and a11.get_xlabel() == "top_k"
    assert a01.get_xscale() == "log" and a10.get_yscale() == "log"
    dashed = [line for line in a10.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[0] == 60
    with pytest.raises(ValueError, match="values"):
        P.sweep({"t": ([1, 2], {"rep": [1]})})


def test_stacked_bars_totals():
    fig = P.stacked_bars(["a", "b"], {"x": [1e6, 2e6], "y": [5e5, 0]})
    ax = fig.axes[0]
    assert len(ax.patches) == 4
    assert sorted(t.get_text() for t in ax.texts) == ["1.5M", "2.0M"]
    with pytest.raises(ValueError):
        P.stacked_bars(["a"], {"x": [1, 2]})


def test_attention_maps_grid_and_token_labels():
    rng = np.random.default_rng(0)
    att = [rng.dirichlet(np.ones(3), size=(1, 2, 3)) for _ in range(2)]  # 2 layers x [B=1, H=2, T=3, T=3]
    fig = P.attention_maps(att, ["[CLS]", "x", "[SEP]"])
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 4
    assert images[0].get_title() == "layer 0 head 0" and images[3].get_title() == "layer 1 head 1"
    assert [t.get_text() for t in images[0].get_yticklabels()] == ["[CLS]", "x", "[SEP]"]
    vmax = max(a.max() for a in att)
    assert images[0].images[0].get_clim() == (0.0, pytest.approx(vmax))
    with pytest.raises(ValueError, match="tokens"):
        P.attention_maps(att, ["a", "b"])


def test_masking_strip():
    chosen = np.array([0, 1, 1, 1, 0], bool)
    fig = P.masking(["[CLS]", "a", "b", "c", "[SEP]"], ["[CLS]", "[MASK]", "z", "c", "[SEP]"], chosen,
                    np.array([0, 1, 0, 0, 0], bool), np.array([0, 0, 1, 0, 0], bool))
    ax = fig.axes[0]
    rects = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert len(rects) == 10  # two rows of five tokens
    assert "[MASK]" in [t.get_text() for t in ax.texts]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["→ [MASK] (80%)", "→ random token (10%)", "unchanged, predicted (10%)"]
    with pytest.raises(ValueError):
        P.masking(["a"], ["a", "b"], [0], [0], [0])


def test_sliders_static_fallback_without_ipywidgets(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets now raises ImportError
    seen = {}

    def draw(t=0.0, k=0):
        seen.update(t=t, k=k)
        return P.distribution(Z4 / t)

    out = P.sliders(draw, t=(0.1, 2.0, 0.1, 0.5), k=(0, 10, 1, 3))
    assert isinstance(out, Figure)
    assert seen == {"t": 0.5, "k": 3}


def test_sliders_static_when_widgets_are_switched_off(monkeypatch):
    monkeypatch.setenv("TFM_NO_WIDGETS", "1")
    out = P.sliders(lambda t=0.0: P.distribution(Z4 / t), t=(0.1, 2.0, 0.1, 0.5))
    assert isinstance(out, Figure)


def test_sliders_with_ipywidgets_build_int_and_float_controls(monkeypatch):
    monkeypatch.delenv("TFM_NO_WIDGETS", raising=False)
    calls = []

    def draw(t=0.0, k=0):
        calls.append((t, k))
        return P.distribution(Z4)

    ui = P.sliders(draw, t=(0.1, 2.0, 0.1, 0.5), k=(0, 10, 1, 3))
    kinds = {c.description: type(c).__name__ for c in ui.children if hasattr(c, "description") and c.description}
    assert kinds == {"t": "FloatSlider", "k": "IntSlider"}
    ui.children[1].value = 7  # moving a slider redraws
    assert calls[-1] == (0.5, 7)
    with pytest.raises(ValueError, match="min, max, step, start"):
        P.sliders(draw, t=(0, 1))


def test_token_labels_show_spaces_for_byte_level_bpe():
    from tfm import AutoTokenizer
    from conftest import DATA

    tok = AutoTokenizer.from_pretrained(DATA / "gpt2-tokenizer")
    label = P.token_labels(tok)
    assert label(tok.encode(" the")[0]) == "\u2423the"
    assert label(tok.encode("\n")[0]) == "\\n"
