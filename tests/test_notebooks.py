"""The notebooks in notebooks/ run top to bottom, offline, on the embedded models, and write their figures.

Each notebook is executed with nbclient in a fresh kernel (the "python3" kernel, which jupyter_client starts
with this interpreter), with its own folder as the working directory; any cell error fails the test. Figures go
to a temporary folder (the notebooks read $TFM_FIGURES), so a test run leaves the source tree clean.

The kernels get OMP_NUM_THREADS=1 unless the caller set it: the embedded models are tiny (128 wide), and on a
shared 2-core machine two OpenMP threads per matmul were measured to be several times slower than one.

Also checked: the notebooks are committed without outputs, and the prompts file holds >= 50 held-out prompts
(the comparing-strategies notebook runs on all of them).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import tfm

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

EXPECTED = {  # notebook -> files it must write into $TFM_FIGURES
    "sampling_methods.ipynb": ["sampling_distribution.png", "sampling_temperature.png",
                               "sampling_topk_topp_contexts.png", "sampling_kept_sizes.png",
                               "sampling_four_methods.png", "sampling_trace.png", "sampling_sliders_static.png"],
    "greedy_vs_beam.ipynb": ["beam_tree.png", "beam_greedy_vs_beam_logprob.png", "beam_unconditional_probs.png",
                             "beam_feedback_loop.png"],
    "comparing_strategies.ipynb": ["strategies_sweeps.png", "strategies_table.md", "strategies_vs_holtzman.md"],
    "bert.ipynb": ["bert_masking.png", "bert_nsp.png", "bert_attention.png", "bert_parameters.png"],
}
PNG = b"\x89PNG\r\n\x1a\n"


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{name}: cells {dirty} carry outputs; clear them before committing"


def test_prompts_file_has_at_least_50_held_out_prompts():
    rows = [json.loads(line) for line in open(NOTEBOOKS / "data" / "prompts.jsonl", encoding="utf-8")]
    assert len(rows) >= 50
    assert all(r["prompt"].strip() and r["continuation"].strip() for r in rows)
    assert len({r["prompt"] for r in rows}) == len(rows)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs(name, tmp_path, monkeypatch):
    figures = tmp_path / "figures"
    package_root = Path(tfm.__file__).resolve().parent.parent  # the tfm this test imported, installed or in-place
    for kind in ("gpt", "bert"):
        weights = Path(tfm.__file__).resolve().parent / "defaults" / kind / "model.safetensors"
        assert weights.is_file(), f"the embedded {kind} model is missing ({weights}); the notebooks need it"
    monkeypatch.setenv("TFM_FIGURES", str(figures))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(package_root)] + [p for p in [os.environ.get("PYTHONPATH")]
                                                                           if p]))
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    # the slider cell draws its static figure: nbclient once stalled for minutes on the widget's captured
    # output after the kernel had finished the cell (the widget path is tested in test_plotting.py)
    monkeypatch.setenv("TFM_NO_WIDGETS", "1")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a code cell did not run"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    for fname in EXPECTED[name]:
        path = figures / fname
        assert path.is_file(), f"{name} did not write {fname}"
        data = path.read_bytes()
        if fname.endswith(".png"):
            assert data.startswith(PNG) and len(data) > 5_000, f"{fname} is not a real PNG figure"
        else:
            assert data.count(b"\n|") >= 5, f"{fname} is not a markdown table"
