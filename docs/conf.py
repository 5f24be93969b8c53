"""Sphinx configuration of the wbbgen documentation (``make docs``).

Why Sphinx + MyST-NB (the stack of NumPyro and ArviZ, the libraries wbbgen's users already
read): autodoc renders the Google-style docstrings (napoleon) and their ``.. math::`` blocks
(MathJax) as the API reference, so the reference cannot drift from the code; MyST lets the
narrative pages stay Markdown that also reads on GitHub; and MyST-NB *executes* the quickstart
notebook (``notebooks/quickstart.py``, read through jupytext) during every build, so a broken
example fails the build instead of shipping stale output. The build runs with ``-W``: a
warning is an error.

Layout: ``index.md`` (overview), ``quickstart.py`` (a symlink to ``notebooks/quickstart.py``,
the single source of the executed example), ``concepts.md``, ``howto/``, ``api/`` (one page
per module; see ``api/index.rst`` for adding one), ``calibration.md``, ``bad-inputs.md``,
``benchmarks.md`` (tables rendered from the benchmark JSON by ``_ext/wbbgen_docs.py``).

Environment:

* ``WBBGEN_DOCS_EXECUTE=off`` skips executing the quickstart (quick iterations on prose);
  the default ``force`` executes it on every build (about 1--2 min on 2 CPU cores).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the wbbgen checkout, even without an editable install

import wbbgen  # noqa: E402

project = "wbbgen"
author = "the wbbgen authors"
copyright = "the wbbgen authors"  # noqa: A001
release = wbbgen.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",  # also registers myst_parser for the .md pages
    "wbbgen_docs",  # docs/_ext: API cross-reference fixes and the benchmark tables
]

# --- sources --------------------------------------------------------------------------------
# ``_static`` holds the benchmark outputs (calibration.md, perf.md, fixes.md): linked, not pages.
exclude_patterns = ["_build", "_static", "_ext", "conf.py", "jupyter_execute", "**.ipynb_checkpoints"]
root_doc = "index"
html_static_path = ["_static"]

# --- theme ----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"wbbgen {release}"
html_theme_options = {"navigation_with_keys": True}

# --- MyST / MyST-NB -------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links, as GitHub renders them
# The quickstart is a jupytext percent script; the .py suffix is only read as a notebook for
# sources (conf.py and _ext/ are excluded above).
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = os.environ.get("WBBGEN_DOCS_EXECUTE", "force")
nb_execution_timeout = 600  # per cell; the whole notebook takes 1--2 min on 2 CPU cores
nb_execution_raise_on_error = True  # a failing example fails the build
nb_execution_show_tb = True
nb_merge_streams = True
# Figures: the kernel must use matplotlib's inline backend, whatever the caller's shell says
# (benchmarks/run_notebooks.py sets MPLBACKEND=Agg for headless runs).
os.environ.pop("MPLBACKEND", None)
os.environ.setdefault("WBBGEN_SMOKE", "0")  # the docs show the README's sizes, not smoke ones
# tqdm.auto warns inside a kernel without ipywidgets (the same warning pyproject.toml's
# filterwarnings ignores in the tests); the kernel inherits this filter, nothing else.
os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"]))

# --- autodoc / napoleon ---------------------------------------------------------------------
autodoc_default_options = {"members": True, "undoc-members": True, "member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "class"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections become :ivar: fields, not attribute directives: a NamedTuple field or
# a property listed there would otherwise be described twice (a duplicate-object warning).
napoleon_use_ivar = True
napoleon_use_rtype = False

# Unresolved cross-references are not warnings (nitpicky off): docstrings name JAX, NumPyro,
# ArviZ and xarray types, and private modules (wbbgen.problem, wbbgen.persist.checkpoint) that the
# reference does not document. Everything else that warns fails the build.
nitpicky = False
