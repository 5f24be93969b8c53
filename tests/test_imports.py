"""The package's shape, read from its source with ``ast`` (nothing of wbbgen is imported):

1. no import cycle among wbbgen's modules, function-local imports included;
2. no library module over MAX_LINES lines (``wbbgen/baselines/`` excepted);
3. no module uses another module's private name.

How imports become edges of the module graph. Every ``import``/``from … import`` node anywhere
in a file counts (module level, inside functions, under ``if TYPE_CHECKING``). ``import a.b.c``
and ``from a.b import c`` where ``a.b.c`` is a submodule point at ``a.b.c``; ``from a.b import
name`` where ``name`` is not a submodule points at the package ``a.b`` (its ``__init__``), as
does ``from wbbgen import AmortizedWBB`` (at ``wbbgen``). Importing ``a.b.c`` also runs the
``__init__`` of ``a`` and ``a.b`` first: those implicit edges are added, except to packages
that contain the importing module (they are already being imported when it runs). Relative
imports are resolved against the importing module's package.

The same checks as a command (exit status 1 when any fails)::

    .venv/bin/python tests/test_imports.py            # or: python -m tests.test_imports
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "wbbgen"
MAX_LINES = 450
SIZE_EXEMPT = ("wbbgen/baselines/",)  # the comparison baselines: ports of other papers' code
# Underscore names that are public API of the standard library's types (NamedTuple).
PUBLIC_UNDERSCORE = {"_replace", "_asdict", "_fields", "_field_defaults", "_make"}


class Edge(NamedTuple):
    source: str
    target: str
    line: int
    local: bool  # inside a function body
    implicit: bool  # a parent package's __init__, run before the imported module


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root/package``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_package(name: str, mods: dict[str, Path]) -> bool:
    return mods[name].name == "__init__.py"


def _within(module: str, package: str) -> bool:
    """``module`` is ``package`` or inside it."""
    return module == package or module.startswith(package + ".")


def _function_scopes(tree: ast.AST) -> set[int]:
    """ids of the nodes that sit inside a function body."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for child in ast.walk(node):
                if child is not node:
                    inside.add(id(child))
    return inside


def _base_of(node: ast.ImportFrom, importer: str, mods: dict[str, Path]) -> str | None:
    """The absolute module a ``from X import …`` reads from."""
    if not node.level:
        return node.module
    package = importer if _is_package(importer, mods) else importer.rpartition(".")[0]
    parts = package.split(".")
    if node.level - 1 > len(parts) - 1:
        return None
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _bindings(tree: ast.AST, importer: str, mods: dict[str, Path], package: str):
    """Yield ``(node, module, names)`` per import of a package module: ``module`` what it reads
    from, ``names`` the (name, asname) pairs of a ``from`` import (None for ``import``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _within(alias.name, package):
                    yield node, alias.name, None, alias
        elif isinstance(node, ast.ImportFrom):
            base = _base_of(node, importer, mods)
            if base is not None and _within(base, package):
                yield node, base, node.names, None


def import_edges(root: Path = ROOT, package: str = PACKAGE) -> list[Edge]:
    """Every edge of the module graph (see the module docstring for the rules)."""
    mods = modules(root, package)
    edges = []
    for importer, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        local = _function_scopes(tree)

        def add(target, node, implicit=False, importer=importer, local=local):
            if target not in mods or target == importer:
                return
            if implicit and _within(importer, target):
                return
            edges.append(Edge(importer, target, node.lineno, id(node) in local, implicit))
            parts = target.split(".")
            for i in range(1, len(parts)):  # the parents' __init__ run first
                parent = ".".join(parts[:i])
                if parent != importer and not _within(importer, parent) and parent in mods:
                    edges.append(Edge(importer, parent, node.lineno, id(node) in local, True))

        for node, base, names, _ in _bindings(tree, importer, mods, package):
            if names is None:
                add(base, node)
                continue
            for alias in names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in mods else base, node)
    return edges


def _graph(edges: list[Edge]) -> dict[str, dict[str, Edge]]:
    graph: dict[str, dict[str, Edge]] = {}
    for e in edges:
        graph.setdefault(e.source, {}).setdefault(e.target, e)
        graph.setdefault(e.target, {})
    return graph


def cyclic_components(edges: list[Edge]) -> list[set[str]]:
    """The strongly connected components of more than one module (each holds a cycle)."""
    graph = _graph(edges)
    # Tarjan's strongly connected components (iterative).
    index, low, on_stack, stack, comps, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        comp.add(member)
                        if member == node:
                            break
                    if len(comp) > 1:
                        comps.append(comp)
    return comps


def find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One shortest cycle per strongly connected component of more than one module."""
    graph = _graph(edges)
    cycles = []
    for comp in cyclic_components(edges):
        start = min(comp)
        # Shortest path back to `start` within the component (breadth first).
        prev: dict[str, Edge] = {}
        queue, seen = deque([start]), {start}
        while queue:
            node = queue.popleft()
            for child, edge in sorted(graph[node].items()):
                if child not in comp:
                    continue
                if child == start:
                    path = [edge]
                    while path[0].source != start:
                        path.insert(0, prev[path[0].source])
                    cycles.append(path)
                    queue.clear()
                    break
                if child not in seen:
                    seen.add(child)
                    prev[child] = edge
                    queue.append(child)
    return cycles


def format_cycle(cycle: list[Edge], root: Path = ROOT) -> str:
    steps = [cycle[0].source]
    for e in cycle:
        how = ("in a function, " if e.local else "") + ("implicit parent, " if e.implicit else "")
        steps.append(f"-[{how}line {e.line}]-> {e.target}")
    return " ".join(steps)


def oversized(root: Path = ROOT, package: str = PACKAGE, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """``(path, lines)`` of the library modules over ``limit`` lines, exemptions left out."""
    out = []
    for path in modules(root, package).values():
        rel = path.relative_to(root).as_posix()
        if rel.startswith(SIZE_EXEMPT):
            continue
        n = len(path.read_text().splitlines())
        if n > limit:
            out.append((rel, n))
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_private_names(tree: ast.AST) -> set[str]:
    """Underscore names a module defines: functions, classes, assignments, ``obj._x = …``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and _private(node.name):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and _private(node.id):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and _private(node.target.id):
            names.add(node.target.id)
    return names


def private_uses(root: Path = ROOT, package: str = PACKAGE) -> list[str]:
    """Uses of another module's private name, as ``path:line: what``.

    Found three ways: ``from wbbgen.x import _y`` (``_y`` not a submodule: private *modules*
    such as ``wbbgen._checks`` are the package's own and may be imported anywhere in it);
    ``x._y`` where ``x`` is bound to a wbbgen module by an import; and ``obj._y`` on any other
    object (not ``self``/``cls``) where ``_y`` is defined in another wbbgen module and not in
    this one -- e.g. a private method called on an instance of another module's class.
    """
    mods = modules(root, package)
    trees = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in mods.items()}
    defined = {name: _defined_private_names(tree) for name, tree in trees.items()}
    found = []
    for importer, tree in trees.items():
        rel = mods[importer].relative_to(root).as_posix()
        aliases: dict[str, str] = {}
        for node, base, names, alias in _bindings(tree, importer, mods, package):
            if names is None:
                if alias.asname:
                    aliases[alias.asname] = base
                else:
                    aliases[base.split(".")[0]] = base.split(".")[0]
                continue
            for a in names:
                sub = f"{base}.{a.name}"
                if sub in mods:
                    aliases[a.asname or a.name] = sub
                elif _private(a.name) and base != importer:
                    found.append(f"{rel}:{node.lineno}: imports {a.name} from {base}")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not _private(node.attr) or node.attr in PUBLIC_UNDERSCORE:
                continue
            chain, base = [node.attr], node.value
            while isinstance(base, ast.Attribute):
                chain.insert(0, base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                module = aliases[base.id]
                for attr in chain:
                    if f"{module}.{attr}" in mods:
                        module = f"{module}.{attr}"
                        continue
                    if _private(attr) and module != importer:
                        found.append(f"{rel}:{node.lineno}: uses {module}.{attr}")
                    break
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if node.attr in defined[importer]:
                continue
            homes = sorted(m for m, names in defined.items() if node.attr in names and m != importer)
            if homes:
                found.append(f"{rel}:{node.lineno}: uses .{node.attr}, private to {', '.join(homes)}")
    return sorted(set(found))


def cycle_report(edges: list[Edge]) -> list[str]:
    """Per cyclic component: one shortest cycle with the import lines, and the members."""
    comps = {min(c): c for c in cyclic_components(edges)}
    return [
        f"{format_cycle(c)}\n    (component of {len(comps[c[0].source])}: {', '.join(sorted(comps[c[0].source]))})"
        for c in find_cycles(edges)
    ]


def test_no_import_cycle():
    report = cycle_report(import_edges())
    assert not report, "import cycles:\n" + "\n".join(report)


def test_no_oversized_module():
    big = oversized()
    assert not big, f"modules over {MAX_LINES} lines:\n" + "\n".join(f"{p}: {n}" for p, n in big)


def test_no_private_names_across_modules():
    uses = private_uses()
    assert not uses, "private names used across modules:\n" + "\n".join(uses)


def test_the_checks_on_a_small_package(tmp_path):
    """The resolver on a made-up package: a cycle through a function-local import and a
    ``from pkg import name`` (an edge to the package's __init__), one through a parent's
    implicit __init__, an import of a private module (allowed) and of a private name (not)."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from pkg.a import f\n",
        "a.py": "def f():\n    from pkg import b\n    return b\n",
        "b.py": "from pkg import f  # reads pkg/__init__, which imports a\n",
        "_util.py": "_secret = 1\n",
        "c.py": "from pkg import _util\nfrom pkg._util import _secret\nimport pkg.sub.d as d\nx = d._hidden\n",
        "sub/__init__.py": "from pkg import c\n",
        "sub/d.py": "_hidden = 2\nfrom . import e\n",
        "sub/e.py": "from ..a import f\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    edges = import_edges(tmp_path, "pkg")
    assert Edge("pkg.a", "pkg.b", 2, True, False) in edges
    assert Edge("pkg.b", "pkg", 1, False, False) in edges
    assert Edge("pkg.c", "pkg.sub", 3, False, True) in edges  # pkg/sub/__init__ runs first
    assert Edge("pkg.sub.e", "pkg.a", 1, False, False) in edges  # relative import resolved
    assert not any(e.source == "pkg.sub.d" and e.target == "pkg.sub" for e in edges)  # its own package
    cycles = {tuple(e.source for e in c) for c in find_cycles(edges)}
    assert cycles == {("pkg", "pkg.a", "pkg.b"), ("pkg.c", "pkg.sub")}
    assert private_uses(tmp_path, "pkg") == [
        "pkg/c.py:2: imports _secret from pkg._util",
        "pkg/c.py:4: uses pkg.sub.d._hidden",
    ]
    assert oversized(tmp_path, "pkg", limit=3) == [("pkg/c.py", 4)]


def main() -> int:
    """Print every violation of the three checks; exit status 1 if there is one."""
    cycles = cycle_report(import_edges())
    big = oversized()
    uses = private_uses()
    print(f"import cycles: {len(cycles)}")
    for c in cycles:
        print("  " + c)
    print(f"modules over {MAX_LINES} lines ({', '.join(SIZE_EXEMPT)} excepted): {len(big)}")
    for p, n in big:
        print(f"  {p}: {n}")
    print(f"private names used across modules: {len(uses)}")
    for u in uses:
        print("  " + u)
    return 1 if cycles or big or uses else 0


if __name__ == "__main__":
    sys.exit(main())
