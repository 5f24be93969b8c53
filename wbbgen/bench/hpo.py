r"""The tuning comparison: every tuner on every task, side by side (``wbbgen bench hpo``).

Usage::

    wbbgen bench hpo --task all --methods all --out bench-output/hpo          # full size
    wbbgen bench hpo --task ridge-diabetes --methods grid tpe wbbgen --budget 30 --seeds 3 --out DIR
    wbbgen bench hpo --task all --methods all --out DIR --smoke                 # CI size

For each task, each method runs once per seed in this one process with the same budget
(``--budget``: ``N`` full inner fits, ``Ns`` seconds, or ``N,Ms`` both; default per task,
below), and is scored by refitting the shared inner model at its choice
(:mod:`wbbgen.baselines.harness`). Outputs in ``--out``:

* ``hpo-<task>.json`` -- keyed by method: every run (choice, timings, fits, losses, trace,
  settings) and the summary (medians over seeds, min and max);
* ``hpo.md`` -- one table per task (test loss, accuracy, wall time, inner fits, the tuner's
  own validation loss, the validation–test gap, λ);
* ``hpo-<task>.png`` -- test loss of each run's current choice against wall time.

``--smoke`` (run by CI; it exits non-zero when any run fails): one seed, a budget of 6 fits,
tiny generator settings, the fewest pilot solves (capped at 100 iterations) and no fidelity
check; runs share compiled code instead of starting cold, and at most 5 incumbents per trace
are refitted. It checks the pipeline; its times are not the comparison's. ``make
bench-hpo-smoke`` (CI) also sets ``XLA_FLAGS=--xla_backend_optimization_level=0`` for its
process: a smoke run compiles for far longer than it runs. Full-size timings include
compilation; on a shared machine they are inflated.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from wbbgen._checks import jsonable
from wbbgen.baselines import METHODS, TASKS, compare, get_task, markdown_table, parse_budget, plot_traces, summarize
from wbbgen.baselines.harness import resolve_methods
from wbbgen.baselines.tasks import EXTRA_TASKS

__all__ = ["FULL_BUDGET", "SMOKE_BUDGET", "parse_args", "run", "main"]

#: Default budgets (full inner fits per run) at full size; digits-softmax has 10 hyperparameters.
FULL_BUDGET = {
    "ridge-diabetes": "30",
    "logistic-cancer": "30",
    "digits-softmax": "60",
    "digits-mlp": "30",
    "digits-mlp-layers": "40",
    "tiny-ridge": "20",
}
SMOKE_BUDGET = "6"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="wbbgen bench hpo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--task",
        nargs="+",
        default=["all"],
        help=f"{' '.join(TASKS)}, all (those, the default), {' '.join(EXTRA_TASKS)}",
    )
    parser.add_argument("--methods", nargs="+", default=["all"], help=f"{' '.join(METHODS)}, or all (default)")
    parser.add_argument("--budget", default=None, help="N fits, Ns seconds, or N,Ms (default: per task)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 3; 1 with --smoke)")
    parser.add_argument("--out", required=True, help="folder for hpo-<task>.json, hpo.md and the plots")
    parser.add_argument("--smoke", action="store_true", help="one seed, 6 fits, tiny settings: checks the pipeline")
    return parser.parse_args(argv)


def run(args) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = list(TASKS) if args.task == ["all"] or "all" in args.task else list(args.task)
    methods = resolve_methods(args.methods)
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.smoke else 3)))
    tables, everything = [], {}
    t_all = time.perf_counter()
    for name in tasks:
        task = get_task(name, smoke=args.smoke)
        budget = parse_budget(args.budget or (SMOKE_BUDGET if args.smoke else FULL_BUDGET[name]))
        print(f"{name}: {len(methods)} methods × {len(seeds)} seeds, budget {budget}")
        t0 = time.perf_counter()
        runs = compare(task, methods, budget, seeds, cold=not args.smoke)
        elapsed = time.perf_counter() - t0
        summary = summarize(runs)
        record = {method: {"summary": summary[method], "runs": jsonable(runs[method])} for method in runs}
        meta = {
            "task": name,
            "description": task.description,
            "budget": budget._asdict(),
            "seeds": seeds,
            "smoke": args.smoke,
            "total_wall_time_s": elapsed,
            "settings": task.settings,
        }
        (out / f"hpo-{name}.json").write_text(
            json.dumps({**record, "_meta": meta}, indent=1, allow_nan=True, default=repr)
        )
        plot_traces(runs, out / f"hpo-{name}.png", task)
        tables.append(markdown_table(summary, task, budget, seeds) + f"\n\nTotal for this task: {elapsed:.0f} s.\n")
        everything[name] = summary
        print(f"{name}: done in {elapsed:.0f} s")
    total = time.perf_counter() - t_all
    header = (
        "# Tuning comparison\n\nMedians over seeds, [min, max] in brackets. Test loss and accuracy are "
        "those of the shared inner model refitted at each tuner's choice; 'own val loss' is the tuner's "
        "own estimate of the validation loss at its choice, and the gap is test loss minus it. "
        + (
            "Smoke run: the runs share compiled code, so their wall times are not comparable.\n"
            if args.smoke
            else "Wall times include compilation and generator training (every run starts cold).\n"
        )
    )
    (out / "hpo.md").write_text(header + "\n" + "\n\n".join(tables) + f"\n\nTotal: {total:.0f} s.\n")
    print(f"total {total:.0f} s; wrote {out}")
    failed = {t: [m for m, e in summary.items() if e["num_failed"]] for t, summary in everything.items()}
    failed = {t: ms for t, ms in failed.items() if ms}
    if failed and args.smoke:  # a smoke run checks the pipeline: a failing method fails it (CI)
        raise SystemExit(f"bench hpo --smoke: failed runs in {failed}; see the JSON files in {out}.")
    return everything


def main(argv=None):
    return run(parse_args(argv))
