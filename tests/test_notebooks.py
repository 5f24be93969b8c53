"""Every ``notebooks/*.py`` (jupytext, percent format) runs end to end at smoke size.

The notebooks are converted in memory and executed with nbclient in ipykernel's ``python3``
kernel (:mod:`benchmarks.run_notebooks`) with ``WBBGEN_SMOKE=1``; any cell error fails the
test. Only the ``test`` extra is needed (jupytext, nbclient, ipykernel). Smoke sizes keep
each notebook under about a minute on 2 CPU cores; JAX compilation dominates, so the kernels
share a persistent compilation cache in pytest's cache directory (``.pytest_cache``, ignored
by git) unless ``JAX_COMPILATION_CACHE_DIR`` is set: measured 57 s cold, 35 s warm.
"""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "benchmarks" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _runner()


def test_notebooks_exist():
    assert runner.notebooks(), "no notebooks/*.py found"


@pytest.mark.parametrize("path", runner.notebooks(), ids=lambda p: p.name)
@pytest.mark.slow
def test_notebook_runs_in_smoke_size(path, request, monkeypatch):
    from nbclient.exceptions import CellExecutionError

    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the kernel inherits the environment
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(request.config.cache.mkdir("jax-compilation-cache")))

    try:
        nb = runner.execute(path, smoke=True, timeout=600)
    except CellExecutionError as err:  # show the failing cell's traceback, not nbclient's
        pytest.fail(f"{path.name}: a cell failed:\n{err}", pytrace=False)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), "some code cells did not run"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
