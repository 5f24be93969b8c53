"""Every ``>>>`` example in wbbgen's docstrings runs, as a doctest, on its own.

One test per module under ``wbbgen/`` (baselines and bench included: their examples must run
too; only ``wbbgen/__main__.py`` is left out, because importing it runs the command line).
Each example starts from empty globals (``DocTestFinder.find(module, globs={})``, not the
module's namespace as plain doctest gives), so it must import what it uses -- as a reader
copying it would. Examples run under this suite's settings: x64 on and warnings as errors (an
example that warns fails). Mark an example that cannot run cheaply (< 5 s) with
``# doctest: +SKIP``, or write it as a literal ``::`` block.
"""

from __future__ import annotations

import doctest
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Every module but wbbgen.__main__, whose import runs the command line (it has no docstrings).
MODULES = sorted(_module_name(p) for p in (ROOT / "wbbgen").rglob("*.py") if p.name != "__main__.py")

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    out: list[str] = []
    try:
        for test in finder.find(module, name, globs={}):
            runner.run(test, out=out.append)
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    assert runner.failures == 0, f"{runner.failures} of {runner.tries} examples in {name} fail:\n" + "".join(out)
