r"""Run tuners side by side on one task and score them the same way.

Every run gets the same task (splits, inner model), the same :class:`~wbbgen.baselines.trace.Budget`
and a seed; its clock covers everything the tuner does (compilation and generator training
included: each run starts cold -- a fresh copy of the task and ``jax.clear_caches()`` -- so no
run reuses another's compiled code).
Afterwards, with the clock stopped, the harness refits the shared inner model
(:func:`wbbgen.baselines.task.evaluate`) at the final choice and at the incumbents of the
trace, so each trace row gets the test loss a user stopping there would have had.

Reported per run: the final λ, wall time, fits, the tuner's own validation loss (what it
believed), the refitted validation and test loss and accuracy, and the validation–test gap
(test loss − the tuner's own validation loss: how optimistic its estimate was). Per method:
medians over seeds with the min–max spread (:func:`summarize`).

Example (about ten minutes on a CPU, so not a doctest)::

    from wbbgen.baselines import Budget, compare, get_task, markdown_table, summarize

    runs = compare(get_task("ridge-diabetes"), ["grid", "tpe", "wbbgen"], Budget(fits=30), seeds=[0, 1, 2])
    print(markdown_table(summarize(runs)))
"""

from __future__ import annotations

import dataclasses
import traceback

import jax
import numpy as np

from wbbgen._checks import jsonable
from wbbgen.baselines.ariafar import ariafar
from wbbgen.baselines.bo import gp_bo, tpe
from wbbgen.baselines.generative import wbbgen_tuner
from wbbgen.baselines.hyperband import hyperband
from wbbgen.baselines.lorraine import lorraine_global, lorraine_local
from wbbgen.baselines.search import grid_search, random_search
from wbbgen.baselines.sinha import sinha
from wbbgen.baselines.task import Task, evaluate
from wbbgen.baselines.trace import Budget

__all__ = ["METHODS", "run_method", "compare", "summarize", "markdown_table", "plot_traces"]

#: Method identifiers, in the order of the tables.
METHODS = {
    "grid": grid_search,
    "random": random_search,
    "tpe": tpe,
    "gp-bo": gp_bo,
    "hyperband": hyperband,
    "lorraine-global": lorraine_global,
    "lorraine-local": lorraine_local,
    "sinha": sinha,
    "ariafar": ariafar,
    "wbbgen": wbbgen_tuner,
}

#: At most this many distinct incumbents of a trace are refitted (evenly spaced; the rows
#: between take the last refitted incumbent's test loss); smoke runs (``cold=False``) refit fewer.
MAX_TRACE_REFITS = 30
SMOKE_TRACE_REFITS = 5


def resolve_methods(methods) -> list[str]:
    """``["all"]`` or a list of identifiers -> validated identifiers."""
    methods = list(methods)
    if methods == ["all"] or "all" in methods:
        return list(METHODS)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {list(METHODS)} or 'all'.")
    return methods


def _score_trace(task: Task, rows: list[dict], max_refits: int = MAX_TRACE_REFITS) -> None:
    """Add ``test_loss`` / ``test_acc`` of the incumbent's refit to every row (in place)."""
    keys = [None if r["best_x"] is None else tuple(np.round(r["best_x"], 10)) for r in rows]
    changes = [i for i, k in enumerate(keys) if k is not None and (i == 0 or k != keys[i - 1])]
    if len(changes) > max_refits:
        keep = set(np.unique(np.linspace(0, len(changes) - 1, max_refits).astype(int)))
        changes = [c for j, c in enumerate(changes) if j in keep or c == changes[-1]]
    cache, current = {}, None
    change_set = set(changes)
    for i, (row, key) in enumerate(zip(rows, keys)):
        if key is None:
            current = None
        elif i in change_set:
            if key not in cache:
                cache[key] = evaluate(task, np.asarray(key))
            current = cache[key]
        row["test_loss"] = None if current is None else current["test_loss"]
        row["test_acc"] = None if current is None else current["test_acc"]


def run_method(task: Task, method: str, budget: Budget, seed: int = 0, cold: bool = True) -> dict:
    """One tuner run, scored. A tuner that raises is recorded with its error, not re-raised.

    ``cold=False`` (smoke runs: the pipeline, not the timings) lets the run reuse the task's
    compiled fits and JAX's caches, and refits at most ``SMOKE_TRACE_REFITS`` incumbents of its trace."""
    tuner = METHODS[method]
    if cold:
        # Every run starts cold, as a user's single run would: a fresh copy of the task (new
        # jitted closures) and empty JAX caches (XLA would otherwise reuse another run's
        # identical programs).
        jax.clear_caches()
        fresh = dataclasses.replace(task)
    else:
        fresh = task
    try:
        res = tuner(fresh, budget, seed)
    except Exception as err:  # noqa: BLE001 - one failing method must not sink the comparison
        return {
            "method": method,
            "seed": seed,
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(limit=4),
        }
    final = evaluate(task, res.x)
    _score_trace(task, res.trace, MAX_TRACE_REFITS if cold else SMOKE_TRACE_REFITS)
    own = float(res.trace[-1]["best_val"]) if res.trace else float("nan")
    info = {k: v for k, v in res.info.items() if k not in ("wall_time_s", "num_fits")}
    return {
        "method": method,
        "seed": seed,
        "x": np.asarray(res.x).tolist(),
        "lam": task.hyper_dict(res.x),
        "wall_time_s": res.info["wall_time_s"],
        "num_fits": res.info["num_fits"],
        "own_val_loss": own,
        "val_loss": final["val_loss"],
        "test_loss": final["test_loss"],
        "val_acc": final["val_acc"],
        "test_acc": final["test_acc"],
        "gap": final["test_loss"] - own,
        "converged": final["converged"],
        "trace": res.trace,
        "info": jsonable(info, fallback=repr),
    }


def compare(task: Task, methods, budget: Budget, seeds=(0, 1, 2), log=print, cold: bool = True) -> dict:
    """Every method × seed on ``task``: ``{method: [run, …]}`` (one process, in order);
    ``cold`` as in :func:`run_method`."""
    out = {}
    for method in resolve_methods(methods):
        out[method] = []
        for seed in seeds:
            run = run_method(task, method, budget, seed, cold=cold)
            out[method].append(run)
            if log is not None:
                if "error" in run:
                    log(f"  {task.name:>16} {method:>15} seed {seed}: FAILED {run['error'][:120]}")
                else:
                    log(
                        f"  {task.name:>16} {method:>15} seed {seed}: test {run['test_loss']:.4g} "
                        f"time {run['wall_time_s']:.1f}s fits {run['num_fits']:.1f} "
                        f"λ={np.round(np.exp(run['x']), 4).tolist()[:3]}"
                    )
    return out


_FIELDS = ("test_loss", "test_acc", "val_loss", "own_val_loss", "gap", "wall_time_s", "num_fits")


def summarize(runs: dict) -> dict:
    """Per method: median, min and max over seeds of each reported number, and errors."""
    out = {}
    for method, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        entry = {"num_runs": len(rs), "num_failed": len(rs) - len(ok)}
        if len(ok) < len(rs):
            entry["errors"] = sorted({r["error"] for r in rs if "error" in r})
        for f in _FIELDS:
            vals = np.asarray([r[f] for r in ok], float)
            vals = vals[np.isfinite(vals)]
            entry[f] = (
                {"median": float(np.median(vals)), "min": float(vals.min()), "max": float(vals.max())}
                if vals.size
                else None
            )
        if ok:
            xs = np.asarray([r["x"] for r in ok], float)
            entry["lam_median"] = np.exp(np.median(xs, 0)).tolist()
        out[method] = entry
    return out


def _cell(stat, fmt="{:.4g}", spread=True):
    if stat is None:
        return "—"
    med = fmt.format(stat["median"])
    if spread and stat["max"] > stat["min"]:
        return f"{med} [{fmt.format(stat['min'])}, {fmt.format(stat['max'])}]"
    return med


def markdown_table(summary: dict, task: Task | None = None, budget: Budget | None = None, seeds=None) -> str:
    """The comparison table: medians over seeds with [min, max]."""
    lines = []
    if task is not None:
        lines.append(f"### {task.name}\n")
        lines.append(f"{task.description}. Loss: {'MSE' if task.kind == 'regression' else 'cross-entropy'}.")
        if budget is not None:
            parts = [f"{budget.fits:g} fits" if budget.fits else "", f"{budget.seconds:g} s" if budget.seconds else ""]
            lines.append(f"Budget per run: {', '.join(p for p in parts if p)}; seeds: {list(seeds or [])}.\n")
    lines.append(
        "| method | test loss | test acc | wall time (s) | inner fits | own val loss | val–test gap | λ (median) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for method, s in summary.items():
        if s["test_loss"] is None:
            lines.append(f"| {method} | failed: {'; '.join(s.get('errors', []))[:100]} | | | | | | |")
            continue
        lam = s.get("lam_median", [])
        lam_txt = ", ".join(f"{v:.3g}" for v in lam[:3]) + (" …" if len(lam) > 3 else "")
        lines.append(
            f"| {method} | {_cell(s['test_loss'])} | {_cell(s['test_acc'], '{:.3f}')} | "
            f"{_cell(s['wall_time_s'], '{:.1f}')} | {_cell(s['num_fits'], '{:.0f}')} | "
            f"{_cell(s['own_val_loss'])} | {_cell(s['gap'], '{:+.3g}')} | {lam_txt} |"
            + (f" ({s['num_failed']} failed)" if s["num_failed"] else "")
        )
    return "\n".join(lines)


def plot_traces(runs: dict, path=None, task: Task | None = None, ax=None):
    """Test loss of the incumbent's refit against wall time, one line per method and seed."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (method, rs) in enumerate(runs.items()):
        color = colors[i % len(colors)]
        for j, r in enumerate(rs):
            if "error" in r:
                continue
            pts = [(row["time_s"], row["test_loss"]) for row in r["trace"] if row.get("test_loss") is not None]
            pts.append((r["wall_time_s"], r["test_loss"]))
            t, y = np.asarray(pts).T
            ax.step(t, y, where="post", color=color, alpha=0.8, lw=1.5, label=method if j == 0 else None)
            ax.plot(t[-1], y[-1], "o", color=color, ms=4)
    ax.set_xscale("log")
    ax.set_xlabel("wall time (s, compilation and training included)")
    ax.set_ylabel("test loss of the current choice (refit)")
    if task is not None:
        ax.set_title(task.name)
    if ax.get_legend_handles_labels()[0]:  # every run may have failed
        ax.legend(fontsize=8, ncol=2)
    if path is not None:
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=120)
        plt.close(ax.figure)
    return ax
