"""Runtime contract: tfm imports and runs without torch or transformers, and the C core releases
the GIL around compute. Specification: issue 2 §1 and §2.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import tfm



@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, torch_module):
    import transformers as T

    d = tmp_path_factory.mktemp("runtime")
    torch_module.manual_seed(0)
    hf = T.GPT2LMHeadModel(T.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=300, n_positions=600,
                                        eos_token_id=299, bos_token_id=299))
    hf.save_pretrained(d / "st", safe_serialization=True)
    hf.save_pretrained(d / "bin", safe_serialization=False)
    return d


def test_import_and_run_without_torch(checkpoint):
    """A subprocess in which `import torch` / `import transformers` fail: tfm still loads a
    safetensors and a pytorch_model.bin checkpoint, runs forward and generate."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None          # any `import torch` now raises ImportError
        sys.modules["transformers"] = None
        import numpy as np
        import tfm
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
        for sub in ("st", "bin"):
            m = tfm.AutoModelForCausalLM.from_pretrained({str(checkpoint)!r} + "/" + sub)
            ids = np.array([[1, 2, 3, 4]])
            assert m(ids).logits.shape == (1, 4, 300)
            out = m.generate(ids, max_new_tokens=5, do_sample=True, top_p=0.9, seed=0)
            assert out.shape[0] == 1
        print("ok")
    """)
    # a neutral working directory: tfm comes from the installation (or PYTHONPATH), as for a user
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_forward_releases_the_gil(checkpoint):
    """While a long forward pass runs in another thread, this thread keeps executing Python."""
    model = tfm.AutoModelForCausalLM.from_pretrained(checkpoint / "st")
    ids = np.random.default_rng(0).integers(0, 300, size=(8, 512))
    started, finished = threading.Event(), threading.Event()

    def work():
        started.set()
        for _ in range(3):
            model(ids)
        finished.set()

    t = threading.Thread(target=work)
    t.start()
    started.wait()
    count = 0
    while not finished.is_set():
        count += 1  # only runs if the forward pass does not hold the GIL
    t.join()
    assert count > 1000, f"the main thread advanced only {count} times during three forward passes"


def test_generate_releases_the_gil(checkpoint):
    model = tfm.AutoModelForCausalLM.from_pretrained(checkpoint / "st")
    ids = np.random.default_rng(1).integers(0, 300, size=(4, 300))
    done = threading.Event()
    t = threading.Thread(target=lambda: (model.generate(ids, max_new_tokens=30, min_new_tokens=30), done.set()))
    t.start()
    count = 0
    while not done.is_set():
        count += 1
    t.join()
    assert count > 1000


def test_thread_count_can_be_lowered_and_results_do_not_change(checkpoint):
    model = tfm.AutoModelForCausalLM.from_pretrained(checkpoint / "st")
    ids = np.random.default_rng(2).integers(0, 300, size=(3, 40))
    full = model(ids).logits
    total = tfm.get_num_threads()
    try:
        assert tfm.set_num_threads(1) == 1 and tfm.get_num_threads() == 1
        one = model(ids).logits
        assert tfm.set_num_threads(10_000) == total  # never above the process's capacity
    finally:
        tfm.set_num_threads(0)
    assert tfm.get_num_threads() == total
    np.testing.assert_allclose(one, full, rtol=0, atol=1e-5)
    with pytest.raises(ValueError):
        tfm.set_num_threads(-1)
