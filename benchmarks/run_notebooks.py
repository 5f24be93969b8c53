"""Execute the jupytext notebooks in ``notebooks/*.py`` (smoke or full size).

Usage::

    python benchmarks/run_notebooks.py                       # full size, writes notebooks/_build/*.ipynb
    python benchmarks/run_notebooks.py --smoke               # WBBGEN_SMOKE=1, tiny sizes
    python benchmarks/run_notebooks.py --out DIR notebooks/compare_mcmc.py

Each ``.py`` (percent format) is converted in memory with jupytext and executed with nbclient
in the ``python3`` kernel -- ipykernel's native kernel for this interpreter, which
jupyter_client provides without an installed kernelspec -- with the working directory at the
repository root. A cell error raises ``nbclient.exceptions.CellExecutionError``. Only
``jupytext``, ``nbclient`` and ``ipykernel`` are needed (the ``test`` extra); not nbconvert.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def notebooks() -> list[Path]:
    """Every ``notebooks/*.py``."""
    return sorted((ROOT / "notebooks").glob("*.py"))


def execute(path: Path, *, smoke: bool, timeout: int = 1800, kernel_name: str = "python3"):
    """Run one jupytext notebook; returns the executed ``nbformat`` notebook.

    ``smoke`` sets ``WBBGEN_SMOKE=1`` in the kernel's environment (the kernel inherits
    ``os.environ``; it is restored afterwards)."""
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    old = os.environ.get("WBBGEN_SMOKE")
    os.environ["WBBGEN_SMOKE"] = "1" if smoke else "0"
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name=kernel_name, resources={"metadata": {"path": str(ROOT)}}
        )
        client.execute()
    finally:
        if old is None:
            os.environ.pop("WBBGEN_SMOKE", None)
        else:
            os.environ["WBBGEN_SMOKE"] = old
    return nb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "notebooks" / "_build")
    args = parser.parse_args(argv)
    import nbformat

    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.paths or notebooks():
        t0 = time.perf_counter()
        nb = execute(path, smoke=args.smoke)
        target = args.out / (path.stem + ".ipynb")
        nbformat.write(nb, target)
        print(f"{path.name}: executed in {time.perf_counter() - t0:.0f} s -> {target}")


if __name__ == "__main__":
    sys.exit(main())
