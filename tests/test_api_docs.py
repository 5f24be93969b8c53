"""The API reference documents every public name (the check Optax runs on its docs).

Public names are ``wbbgen.__all__`` and the ``__all__`` of every submodule the reference
documents (an ``automodule`` of ``wbbgen.<name>`` in ``docs/api/``). Each must

1. have its own docstring: a NamedTuple's generated "Name(field, …)" or an exception's
   inherited one does not count, and a module-level constant needs a ``#:`` comment (or a
   string after it), which is how autodoc documents data -- autodoc silently leaves out a
   member without one;
2. be referenced by the reference's sources (``docs/api/*.rst`` / ``*.md``, parsed here, not
   built: ``make docs`` takes a minute or more). A top-level name needs its own ``auto*``
   directive (``docs/api/wbbgen.rst`` documents every top-level name under the name users
   import). A submodule name is covered by its module's ``automodule`` (``:members:`` is on by
   default in ``docs/conf.py`` and autodoc documents exactly ``__all__``) unless excluded
   there; when it is the very object of a top-level name, the docs extension skips it on the
   module page, so the top-level page must document it.

The modules listed in ``REQUIRED_MODULES`` must have a page; a new module is documented by
adding ``docs/api/wbbgen.<name>.rst`` (see ``docs/api/index.rst``), after which its
``__all__`` is checked here too.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
import sys
import types
from pathlib import Path

import pytest

import wbbgen

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
REQUIRED_MODULES = [
    "wbbgen.weights",
    "wbbgen.tuning",
    "wbbgen.hypertrain",
    "wbbgen.baselines",
    "wbbgen.minibatch",
    "wbbgen.sharding",
    "wbbgen.cost",
    "wbbgen.io",
    "wbbgen.models",
    "wbbgen.datasets",
    "wbbgen.prior",
    "wbbgen.model",
    "wbbgen.generator",
    "wbbgen.training",
    "wbbgen.options",
    "wbbgen.amortized",
    "wbbgen.hyper",
    "wbbgen.exact",
    "wbbgen.calibration",
    "wbbgen.reference",
]

# ``.. name:: argument`` (reST) or ```{name} argument`` (MyST), then ``:option: value`` lines.
_DIRECTIVE = re.compile(r"^(?:\.\. |`{3,}\{)([\w:-]+)(?:::|\})[ \t]*(\S*)[ \t]*$")
_OPTION = re.compile(r"^\s+:([\w-]+):[ \t]*(.*)$")


def parse_api_sources(folder: Path = API) -> tuple[set[str], dict[str, dict[str, str]]]:
    """``(explicit, modules)``: fully qualified names of ``autoclass``/``autofunction``/…
    directives, and ``{module: options}`` of ``automodule`` directives."""
    explicit, modules = set(), {}
    for path in sorted([*folder.glob("*.rst"), *folder.glob("*.md")]):
        current = None
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            m = _DIRECTIVE.match(line.strip() if line.lstrip().startswith("`") else line)
            if not m:
                continue
            name, arg = m.groups()
            options = {}
            for follow in lines[i + 1 :]:
                o = _OPTION.match(follow)
                if not o:
                    break
                options[o.group(1)] = o.group(2).strip()
            if name in ("currentmodule", "py:currentmodule", "module", "py:module"):
                current = arg
            elif name == "automodule":
                modules[arg] = options
                current = arg
            elif name.startswith("auto"):
                qualified = arg if arg.startswith("wbbgen") or current is None else f"{current}.{arg}"
                explicit.add(qualified)
    return explicit, modules


EXPLICIT, MODULES = parse_api_sources()
TOP_LEVEL = {n: getattr(wbbgen, n) for n in wbbgen.__all__}
DOCUMENTED_SUBMODULES = sorted(m for m in MODULES if m != "wbbgen")


def _module(name: str) -> types.ModuleType:
    # importlib, not getattr: ``wbbgen.calibration`` the attribute is the function.
    return importlib.import_module(name)


def _has_data_doc(module: types.ModuleType, name: str) -> bool:
    """A ``#:`` comment above ``name = …`` or a string literal right after it."""
    source = inspect.getsource(module)
    lines = source.splitlines()
    body = ast.parse(source).body
    for i, node in enumerate(body):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if not any(isinstance(t, ast.Name) and t.id == name for t in targets):
            continue
        if node.lineno >= 2 and lines[node.lineno - 2].strip().startswith("#:"):
            return True
        nxt = body[i + 1] if i + 1 < len(body) else None
        return isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant)
    return False


def _has_docstring(obj, module: types.ModuleType, name: str) -> bool:
    if isinstance(obj, type):
        doc = obj.__dict__.get("__doc__")
        if not doc or not doc.strip():
            return False
        fields = getattr(obj, "_fields", None)
        return not (fields is not None and doc == f"{obj.__name__}({', '.join(fields)})")
    if isinstance(obj, types.ModuleType) or callable(obj):
        return bool((getattr(obj, "__doc__", None) or "").strip())
    # A package re-exports data defined in its submodules: look for the comment there too.
    homes = [module] + [m for k, m in sorted(sys.modules.items()) if k.startswith(module.__name__ + ".")]
    return any(_has_data_doc(m, name) for m in homes if m is not None)


def _public(module_name: str) -> list[tuple[str, str, object]]:
    module = _module(module_name)
    return [(module_name, n, getattr(module, n)) for n in module.__all__]


ALL_PUBLIC = [("wbbgen", n, o) for n, o in TOP_LEVEL.items()] + [
    item for m in DOCUMENTED_SUBMODULES for item in _public(m)
]


def test_the_sources_parse():
    """Guards the parser: a change of format must not turn every check below vacuous."""
    assert "wbbgen.AmortizedWBB" in EXPLICIT and "wbbgen" in MODULES and len(DOCUMENTED_SUBMODULES) >= 5


@pytest.mark.parametrize("module", REQUIRED_MODULES)
def test_module_has_a_page(module):
    assert module in MODULES, f"{module} has no `.. automodule:: {module}` in docs/api/ (add docs/api/{module}.rst)"
    assert hasattr(_module(module), "__all__"), f"{module} has no __all__: its public names are undefined"


def test_every_public_name_has_a_docstring():
    missing = [f"{m}.{n}" for m, n, obj in ALL_PUBLIC if not _has_docstring(obj, _module(m), n)]
    assert not missing, f"public names without a docstring (autodoc leaves them out): {missing}"


def test_every_public_method_has_a_docstring():
    """Public methods and properties of the top-level classes, which users call directly."""
    missing = []
    for name, obj in TOP_LEVEL.items():
        if not isinstance(obj, type) or not obj.__module__.startswith("wbbgen"):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            fn = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
            if (isinstance(value, property) or inspect.isfunction(fn)) and not (fn.__doc__ or "").strip():
                missing.append(f"wbbgen.{name}.{attr}")
    assert not missing, f"public methods without a docstring: {missing}"


def _covered_by_automodule(module: str, name: str) -> bool:
    options = MODULES.get(module)
    if options is None or "no-members" in options:
        return False
    members = options.get("members", "")
    if members and name not in [m.strip() for m in members.split(",")]:
        return False
    excluded = [m.strip() for m in options.get("exclude-members", "").split(",")]
    return name not in excluded


def test_every_public_name_is_in_the_reference():
    missing = []
    for module, name, obj in ALL_PUBLIC:
        if module == "wbbgen":
            ok = f"wbbgen.{name}" in MODULES if isinstance(obj, types.ModuleType) else f"wbbgen.{name}" in EXPLICIT
        elif any(obj is o for o in TOP_LEVEL.values() if not isinstance(o, types.ModuleType)):
            top = next(n for n, o in TOP_LEVEL.items() if o is obj)
            ok = f"wbbgen.{top}" in EXPLICIT  # skipped on the module page (docs/_ext/wbbgen_docs.py)
        else:
            ok = _covered_by_automodule(module, name) or f"{module}.{name}" in EXPLICIT
        if not ok:
            missing.append(f"{module}.{name}")
    assert not missing, f"public names the API reference (docs/api/) does not document: {missing}"


def test_no_page_documents_an_unknown_name():
    """An ``auto*`` directive naming something that no longer exists is a stale page."""
    stale = []
    for qualified in EXPLICIT:
        module, _, name = qualified.rpartition(".")
        try:
            if not hasattr(_module(module), name):
                stale.append(qualified)
        except ImportError:
            stale.append(qualified)
    stale += [m for m in MODULES if importlib.util.find_spec(m) is None]
    assert not stale, f"docs/api/ documents names that do not exist: {stale}"
