"""A small Sphinx extension for the wbbgen docs.

**API pages.** The top-level names (``wbbgen.__all__``) are documented once, under the name
users import (``wbbgen.AmortizedWBB``), on ``api/wbbgen.rst``. A submodule page
(``automodule`` with ``:members:``) documents the rest of the module's ``__all__``:

* ``autodoc-skip-member`` skips, on submodule pages, the members that are the same objects as
  top-level names (no second copy), and NamedTuple fields whose only docstring is Python's
  "Alias for field number N";
* ``missing-reference`` resolves a docstring's ``wbbgen.tuning.tune``, ``~wbbgen.hyper.X`` or a
  bare ``tune`` to the top-level ``wbbgen.tune`` when that is the same object;
* the ``wbbgen-reexports`` directive lists, on a module page, the names of that module
  documented at the top level, with links;
* ``autodoc-process-docstring`` works around a napoleon bug with ``*args, **kwargs:`` entries
  and ``autodoc-process-bases`` drops the uninformative "Bases: object".

**Benchmark tables.** ``wbbgen-perf`` renders ``perf.json`` (``wbbgen bench perf``) and
``wbbgen-calibration`` renders ``calibration.json`` (``wbbgen bench calibration``) as tables,
so the benchmarks page is never copied by hand. Both take a path relative to the page, mark it
as a dependency (the page is rebuilt when the JSON changes), and render a note instead of
failing when the file is missing or a target was not measured (``figure`` null or
``status`` "not measured").
"""

from __future__ import annotations

import json
import math
import re
import types
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

# ---------------------------------------------------------------------------------------------
# API pages


def _top_level() -> dict:
    """``{name: object}`` of the non-module names in ``wbbgen.__all__``."""
    import wbbgen

    out = {}
    for name in wbbgen.__all__:
        obj = getattr(wbbgen, name)
        if not isinstance(obj, types.ModuleType):
            out[name] = obj
    return out


def _is_top_level(obj) -> bool:
    return any(obj is o for o in _top_level().values())


_STARRED_PAIR = re.compile(r"^(\s+)\*(\w+), \*\*(\w+)(\s*(?:\([^)]*\))?:)")


def escape_starred_pair(app, what, name, obj, options, lines):
    """Work around a napoleon bug (Sphinx 9.0): an ``Args:`` entry ``*args, **kwargs: ...``
    comes out with ``**kwargs`` unescaped, which docutils reads as unclosed strong emphasis.
    Pre-escaping the second name gives ``\\*args, \\*\\*kwargs``, as napoleon intends.
    Runs before napoleon (priority 400 < 500)."""
    for i, line in enumerate(lines):
        lines[i] = _STARRED_PAIR.sub(r"\1*\2, \\*\\*\3\4", line)


def drop_object_base(app, name, obj, options, bases):
    """``Bases: object`` says nothing; keep the line for real bases (a warning's, a NamedTuple's)."""
    bases[:] = [b for b in bases if b is not object]


def skip_member(app, what, name, obj, skip, options):
    if what == "module" and _is_top_level(obj):
        return True  # documented on api/wbbgen.rst
    doc = getattr(obj, "__doc__", None) or ""
    if what == "class" and doc.startswith("Alias for field number"):
        return True  # a NamedTuple field; the class docstring describes it
    return None


def resolve_top_level(app, env, node, contnode):
    """``wbbgen.<module>.<name>`` or ``<name>`` -> ``wbbgen.<name>`` when that is the same
    object (only for names that the reference documents at the top level)."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    name = target.rsplit(".", 1)[-1]
    top = _top_level()
    if name not in top:
        return None
    if "." in target:
        module, _, _ = target.rpartition(".")
        if not module.startswith("wbbgen"):
            return None
        import importlib

        try:
            if getattr(importlib.import_module(module), name, None) is not top[name]:
                return None
        except ImportError:
            return None
    domain = env.get_domain("py")
    for typ in (node.get("reftype", "obj"), "obj"):
        new = node.deepcopy()
        new["reftarget"] = f"wbbgen.{name}"
        ref = domain.resolve_xref(env, node["refdoc"], app.builder, typ, f"wbbgen.{name}", new, contnode)
        if ref is not None:
            return ref
    return None


class ReexportsDirective(SphinxDirective):
    """``.. wbbgen-reexports:: wbbgen.tuning`` -> "Also in this module, documented at the top
    level: wbbgen.tune, ..." (nothing when there are none)."""

    required_arguments = 1

    def run(self):
        import importlib

        module = importlib.import_module(self.arguments[0])
        top = _top_level()
        names = [n for n in getattr(module, "__all__", []) if n in top and getattr(module, n) is top[n]]
        if not names:
            return []
        para = nodes.paragraph()
        para += nodes.Text(f"Also in {self.arguments[0]}, documented at the top level: ")
        for i, name in enumerate(names):
            if i:
                para += nodes.Text(", ")
            ref = _xref(f"wbbgen.{name}", self.env.docname)
            para += ref
        para += nodes.Text(".")
        return [para]


def _xref(target: str, docname: str):
    from sphinx.addnodes import pending_xref

    ref = pending_xref("", refdomain="py", reftype="obj", reftarget=target, refdoc=docname, refexplicit=False)
    ref += nodes.literal(target, target, classes=["xref", "py", "py-obj"])
    return ref


# ---------------------------------------------------------------------------------------------
# Tables from the benchmark JSON


def _fmt(x) -> str:
    """A number to 3 significant digits, a dict as "k v, …", None as "—"."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        text = f"{x:.3g}"
        return f"{x:.0f}" if "e+" in text and abs(x) < 1e6 else text  # 1000, not 1e+03
    if isinstance(x, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in x) + "]"
    return str(x)


def _cell(content):
    """A table cell from a string, a (string, bold) pair or a node."""
    entry = nodes.entry()
    para = nodes.paragraph()
    if isinstance(content, nodes.Node):
        para += content
    else:
        text, bold = content if isinstance(content, tuple) else (content, False)
        para += nodes.strong(text, text) if bold else nodes.Text(text)
    entry += para
    return entry


def table(header, rows, widths=None) -> nodes.table:
    """A docutils table node (works the same from reST and MyST pages)."""
    ncols = len(header)
    tab = nodes.table(classes=["wbbgen-bench"])
    group = nodes.tgroup(cols=ncols)
    tab += group
    for w in widths or [1] * ncols:
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    row = nodes.row()
    for h in header:
        row += _cell(h)
    head += row
    group += head
    body = nodes.tbody()
    for r in rows:
        row = nodes.row()
        for c in r:
            row += _cell(c)
        body += row
    group += body
    return tab


def _note(text: str) -> nodes.Node:
    note = nodes.note()
    note += nodes.paragraph(text, text)
    return note


class _JsonDirective(SphinxDirective):
    required_arguments = 1
    option_spec = {"caption": directives.unchanged}

    def load(self):
        rel, path = self.env.relfn2path(self.arguments[0], self.env.docname)
        self.env.note_dependency(rel)
        path = Path(path)
        if not path.is_file():
            return None, [_note(f"No benchmark results at {self.arguments[0]} yet.")]
        return json.loads(path.read_text()), []


def _status(r: dict) -> str | None:
    """The reason a target was not measured, or None when it was."""
    status, note = r.get("status"), r.get("note")
    if status and status != "measured":
        return f"{status}: {note}" if note and not note.startswith(str(status)) else note or str(status)
    if r.get("figure") is None:
        return r.get("note") or "not measured"
    return None


def _target_order(key: str):
    digits = "".join(c for c in key if c.isdigit())
    return (int(digits) if digits else math.inf, key)


class PerfDirective(_JsonDirective):
    """``.. wbbgen-perf:: _static/perf/perf.json``: the performance targets, then the wall
    times and per-problem details of the measured ones."""

    def run(self):
        data, out = self.load()
        if data is None:
            return out
        targets = {k: v for k, v in data.items() if isinstance(v, dict)}
        if data.get("smoke"):
            out.append(_note("These are smoke-size numbers (WBBGEN_SMOKE / --smoke): they only show the run worked."))
        rows, times, details = [], [], []
        for key in sorted(targets, key=_target_order):
            r = targets[key]
            reason = _status(r)
            unit = r.get("unit", "")
            if reason is not None:
                measured = reason
            elif isinstance(r["figure"], dict):
                measured = f"{_fmt(r['figure'])} ({unit})" if unit else _fmt(r["figure"])
            else:
                measured = f"{_fmt(r['figure'])} {unit}".strip()
            goal = r.get("goal")
            if isinstance(goal, (int, float)) and not isinstance(goal, bool) and unit:
                goal = f"{_fmt(float(goal))} {unit.split(' (')[0]}"  # the figure's unit, without its gloss
            met = {True: ("yes", True), False: "no", None: "—"}.get(r.get("met"), _fmt(r.get("met")))
            rows.append([key, measured, _fmt(goal), met, r.get("setup", "—"), r.get("device", "—")])
            for field, unit in (("times_s", "s"), ("times_ms", "ms")):
                for name, value in (r.get(field) or {}).items():
                    times.append([key, name.replace("_", " "), f"{_fmt(value)} {unit}"])
            for problem, cols in (r.get("per_problem") or {}).items():
                details.append((key, problem, cols))
        out.append(table(["target", "measured", "goal", "met", "setup", "device"], rows, [1, 4, 3, 1, 3, 2]))
        if times:
            out.append(nodes.rubric("", "Wall times of the measured targets"))
            out.append(table(["target", "step", "time"], times, [1, 3, 2]))
        for key, problem, cols in details:
            out.append(nodes.rubric("", f"{key}, {problem}: per hyperparameter value"))
            names = [c for c in cols if isinstance(cols[c], list)]
            length = max(len(cols[c]) for c in names)
            body = [[_fmt(cols[c][i]) if i < len(cols[c]) else "" for c in names] for i in range(length)]
            out.append(table([c.replace("_", " ") for c in names], body))
        return out


class CalibrationDirective(_JsonDirective):
    """``.. wbbgen-calibration:: _static/calibration/calibration.json``: median sd ratio /
    median 90 % coverage per data set, λ and prior scheme (exact WBB and generator), bold where
    the target is met; the intercept's own sd ratio; the SBC chi-square tests."""

    def run(self):
        data, out = self.load()
        if data is None:
            return out
        schemes = data.get("schemes", [])
        target = data.get("target", {})
        header = ["data set", "λ"]
        for s in schemes:
            header += [f"{s} exact", f"{s} gen"]
        has_b0 = any(
            "b0" in (e.get("per_param") or {})
            for p in data["problems"].values()
            for e in p["schemes"].get("anchored", {}).get("exact", [])
        )
        if has_b0:
            header.append("anchored b0 (exact)")
        rows, met = [], {s: [0, 0] for s in schemes}
        cells = 0
        for name, problem in data["problems"].items():
            for i, lam in enumerate(problem["grid"]):
                row = [name, _fmt(lam)]
                cells += 1
                for s in schemes:
                    for j, kind in enumerate(("exact", "generator")):
                        entries = problem["schemes"].get(s, {}).get(kind) or []
                        if i >= len(entries):
                            row.append("—")
                            continue
                        e = entries[i]
                        ok = bool(e.get("meets_target"))
                        met[s][j] += ok
                        row.append((f"{e['sd_ratio']:.2f} / {e['coverage_90']:.2f}", ok))
                if has_b0:
                    exact = problem["schemes"].get("anchored", {}).get("exact") or []
                    b0 = (exact[i].get("per_param") or {}).get("b0") if i < len(exact) else None
                    row.append(f"{b0['sd_ratio']:.2f}" if b0 else "–")
                rows.append(row)
        sd, cov = target.get("sd_ratio"), target.get("coverage_90")
        intro = (
            f"Cells: median sd ratio / median 90 % coverage over the coordinates, against the reference "
            f"posterior; bold = target met (sd ratio in {_fmt(sd)}, coverage in {_fmt(cov)}). "
            f"Run: {data.get('platform', '?')}, {data.get('dtype', '?')}, sizes '{data.get('sizes_label', '?')}'."
        )
        out.append(nodes.paragraph(intro, intro))
        out.append(table(header, rows))
        summary = ", ".join(f"{s} {met[s][0]} exact / {met[s][1]} generator" for s in schemes)
        text = f"Target met, out of {cells} (data set, λ) cells: {summary}."
        out.append(nodes.paragraph(text, text))
        sbc = data.get("sbc")
        if sbc and sbc.get("results"):
            out.append(nodes.rubric("", f"Simulation-based calibration: {sbc.get('model', '')}"))
            body = [
                [_fmt(r["lam"]), str(r["coordinate"]), f"{r['chi2']:.1f}", str(r["dof"]), f"{r['p_value']:.2f}"]
                for r in sbc["results"]
            ]
            out.append(table(["λ", "coordinate", "χ²", "dof", "p-value"], body))
            text = (
                f"{sbc.get('num_replicates', '?')} replicates per λ, rank among {sbc.get('num_draws', '?')} "
                f"{sbc.get('scheme', '')} exact WBB draws, {sbc.get('num_bins', '?')} bins."
            )
            out.append(nodes.paragraph(text, text))
        return out


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")  # its events are connected below
    app.connect("autodoc-process-docstring", escape_starred_pair, priority=400)
    app.connect("autodoc-skip-member", skip_member)
    app.connect("autodoc-process-bases", drop_object_base)
    app.connect("missing-reference", resolve_top_level)
    app.add_directive("wbbgen-reexports", ReexportsDirective)
    app.add_directive("wbbgen-perf", PerfDirective)
    app.add_directive("wbbgen-calibration", CalibrationDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
