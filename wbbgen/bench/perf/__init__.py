r"""The performance targets, measured side by side in one run: ``wbbgen bench perf``.

Usage::

    wbbgen bench perf --out DIR [--smoke] [--only P1,P3]

:data:`TARGETS` is the table of targets: each names its goal, the function that measures it
(``run(shared, **sizes)`` returns its JSON entry) and its smoke and full sizes. The targets
run in the table's order in one process; P1 leaves its trained generator in ``shared`` for P3
and P6. A target that fails is recorded (``error``) and the others still run; with ``--smoke``
a failure makes the command fail (what CI checks). Compilation is reported apart from run time
wherever a timing includes it. Smoke figures check the pipeline, not the targets: their
``met`` is null (``met_at_smoke_size`` keeps the verdict).

Outputs in ``--out``: ``perf.json`` (keyed by target: ``figure``, ``unit``, ``goal``, ``met``,
``device`` and details, plus ``smoke``, ``jax`` and ``started``), ``perf.md`` (the table of
each figure beside its goal) and the plots ``perf_times.png`` (P1) and ``perf_p3.png`` (P3).
A run of some targets (``--only``) keeps the other targets' figures of an earlier run of the
same size in ``perf.json``.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax

from wbbgen.bench.perf import digits_mlp, evaluation, fidelity, lambda_path, scale
from wbbgen.bench.perf.report import render, write_outputs

__all__ = ["Target", "TARGETS", "run", "main"]


class Target(NamedTuple):
    """One performance target: ``run(shared, **sizes)`` returns its JSON entry."""

    name: str
    goal: str
    run: Callable[..., dict]
    smoke: dict
    full: dict


TARGETS = (
    Target(
        "P1",
        "λ path, 50 λ × 1000 draws: ≥ 30× faster than NUTS end to end (≥ 100× on a GPU)",
        lambda_path.run,
        smoke={"num_values": 3, "num_samples": 50, "num_steps": 200, "nuts": (1, 100, 50)},
        full={"num_values": 50, "num_samples": 1000, "num_steps": 10_000, "nuts": (4, 1000, 250)},
    ),
    Target(
        "P2",
        "digits MLP, 50 λ × 200 draws: ≥ 30× less time than exact refits, test accuracy within 0.5 pp",
        digits_mlp.run,
        smoke={
            "num_values": 3,
            "num_samples": 4,
            "num_steps": 50,
            "batch_size": 4,
            "num_pilot": 4,
            "num_pilot_samples": 4,
            "fidelity_samples": 0,
            "max_steps": 30,
            "exact_draws": None,
        },
        # The exact refits of all 200 draws take over an hour on 2 CPU cores: 40 draws per λ,
        # the time scaled by the measured cost ratio (``--p2-exact-draws 200`` measures them all).
        full={
            "num_values": 50,
            "num_samples": 200,
            "num_steps": 3000,
            "batch_size": 64,
            "num_pilot": 12,
            "num_pilot_samples": 16,
            "fidelity_samples": 16,
            "max_steps": None,
            "exact_draws": 40,
        },
    ),
    Target(
        "P3",
        "evaluation, 50 λ × 1000 draws + a held-out curve: ≤ 20 ms warm",
        evaluation.run,
        smoke={"num_values": 3, "num_samples": 50, "num_steps": 20, "widths": ()},
        full={"num_values": 50, "num_samples": 1000, "num_steps": 20, "widths": (64, 128)},
    ),
    Target(
        "P5",
        "scale, logistic n = 10⁶, p = 100 (n = 10⁷ on a GPU): trains within 4 GB peak memory",
        scale.run,
        smoke={"n": 20_000, "n_gpu": 20_000, "p": 20, "num_steps": 100, "data_batch_size": 1024},
        full={"n": 1_000_000, "n_gpu": 10_000_000, "p": 100, "num_steps": 3000, "data_batch_size": 1024},
    ),
    Target(
        "P6",
        "fidelity, ridge and logistic: sd within 5 % and means within 0.05 sd of exact WBB at every λ",
        fidelity.run,
        smoke={"num_steps": 200, "ridge_size": (200, 10)},
        full={"num_steps": 10_000, "ridge_size": (200, 10)},
    ),
)
NAMES = tuple(t.name for t in TARGETS)


def run(out, *, smoke: bool = False, only=None, sizes: dict | None = None, targets=TARGETS) -> dict:
    """Measure the targets in ``only`` and write ``perf.json``, ``perf.md`` and the plots to ``out``.

    Args:
        out: output folder (created).
        smoke: the table's smoke sizes instead of its full sizes.
        only: target names, e.g. ``("P1", "P3")``; None: all.
        sizes: per target name, sizes that replace the table's, e.g. ``{"P2": {"exact_draws": 200}}``.
        targets: the table of targets (default :data:`TARGETS`).

    Returns:
        The results, as written to ``perf.json``.
    """
    names = tuple(t.name for t in targets)
    only = names if only is None else tuple(only)
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise ValueError(f"only: unknown targets {unknown}; choose from {', '.join(names)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "perf.json"
    results: dict = {}
    if set(only) != set(names) and path.exists():  # a partial run updates the others' figures in place
        old = json.loads(path.read_text())
        if old.get("smoke") == smoke:
            results = {k: v for k, v in old.items() if k in names and v.get("figure") is not None}
    results.update({"smoke": smoke, "jax": jax.__version__, "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    shared: dict = {}
    for target in targets:
        if target.name not in only:
            continue
        print(f"{target.name}: {target.goal}", flush=True)
        kwargs = (target.smoke if smoke else target.full) | (sizes or {}).get(target.name, {})
        t0 = time.perf_counter()
        try:
            entry = target.run(shared, **kwargs)
        except Exception as err:  # one failing target must not hide the others' figures
            traceback.print_exc()
            entry = {"figure": None, "met": None, "goal": target.goal, "error": f"{type(err).__name__}: {err}"}
        entry["benchmark_wall_s"] = time.perf_counter() - t0
        if smoke and entry.get("met") is not None:
            entry["met_at_smoke_size"], entry["met"] = entry["met"], None
        results[target.name] = entry
        path.write_text(json.dumps(results, indent=2, default=str))
    for target in targets:  # neither run now nor kept from an earlier run
        results.setdefault(
            target.name, {"figure": None, "met": None, "goal": target.goal, "note": "not run (see --only)"}
        )
    path.write_text(json.dumps(results, indent=2, default=str))
    write_outputs(results, out, names)
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="wbbgen bench perf",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="targets:\n" + "\n".join(f"  {t.name}  {t.goal}" for t in TARGETS),
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for perf.json, perf.md and the plots")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline in minutes")
    parser.add_argument("--only", default=",".join(NAMES), help="comma-separated targets, e.g. P1,P3 (default: all)")
    parser.add_argument("--render-only", action="store_true", help="rewrite perf.md and the plots from perf.json")
    parser.add_argument("--p2-exact-draws", type=int, help="P2: exact draws per λ, the time scaled to all (full: 40)")
    args = parser.parse_args(argv)
    if args.render_only:
        results = json.loads((args.out / "perf.json").read_text())
        print(write_outputs(results, args.out, NAMES))
        return results
    only = tuple(t.strip().upper() for t in args.only.split(",") if t.strip())
    bad = sorted(set(only) - set(NAMES))
    if bad:
        parser.error(f"--only: unknown targets {bad}; choose from {','.join(NAMES)}")
    sizes = {} if args.p2_exact_draws is None else {"P2": {"exact_draws": args.p2_exact_draws}}
    results = run(args.out, smoke=args.smoke, only=only, sizes=sizes)
    print(render(results, NAMES))
    errors = {k: r["error"] for k, r in results.items() if isinstance(r, dict) and "error" in r}
    if errors and args.smoke:  # a smoke run checks the pipelines (CI): a failing target fails it
        raise SystemExit(f"wbbgen bench perf --smoke: targets failed: {errors}")
    return results
