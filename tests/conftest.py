"""Shared fixtures: small random-initialised transformers models written with save_pretrained.

torch and transformers are test-only references; every model here is built by them, saved to a
temporary folder, and loaded by tfm from the same files.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

# Run against the in-place build (python/) when the package is not installed.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "python") not in sys.path:
    try:
        import tfm  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT / "python"))

DATA = Path(__file__).resolve().parent / "data"


def parity_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """max |Δ| / max(1, max |ref|): the issue's tolerance metric (≤ 1e-4 passes)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"shape {ours.shape} != reference {ref.shape}"
    return float(np.abs(ours - ref).max() / max(1.0, np.abs(ref).max()))


def save_hf_model(model, directory: Path, safe: bool = True, **kwargs) -> Path:
    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=safe, **kwargs)
    return directory


@pytest.fixture(scope="session")
def torch_module():
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return torch
