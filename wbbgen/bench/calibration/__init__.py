r"""Scheme-choice study: calibration of WBB draws against the posterior, per prior scheme.

Usage::

    wbbgen bench calibration --out DIR                   # full size
    wbbgen bench calibration --out DIR --smoke           # tiny sizes, what the tests run
    wbbgen bench calibration --out DIR --markdown-only   # re-render the tables from the JSON

For each prior scheme (``random``, ``fixed``, ``anchored``; :mod:`wbbgen.prior`), each data
set and each λ of a log grid over [1e-2, 1e3], the WBB draws of two paths --

* **exact**: :func:`wbbgen.exact_wbb` (every draw solved by Newton),
* **generator**: :class:`wbbgen.AmortizedWBB` trained once over λ ~ LogUniform(1e-2, 1e3)
  with the same scheme, evaluated with the *same* key as the exact path (identical weights
  and anchors, so generator − exact is a paired comparison) --

are compared with a reference posterior by :func:`wbbgen.calibration`. Data sets:

* ``ridge``: conjugate ridge, n = 100, p = 10, x ~ N(0, I), β = 0.5·z (z ~ N(0, I) fixed by
  the seed; signal variance ‖β‖² = 3.6σ²), σ = 1 known, β ~ N(0, I/λ). Reference: i.i.d.
  draws of the exact Gaussian posterior N(A⁻¹Xᵀy/σ², A⁻¹), A = XᵀX/σ² + λI (4 × 1000 draws,
  wrapped by :func:`wbbgen.convert.build_inference_data` so ESS = N).
* ``breast_cancer``: :func:`wbbgen.datasets.breast_cancer` training split (n = 398, p = 30,
  linearly separable -- see ``separable`` in the JSON), :func:`wbbgen.models.logistic`
  (β ~ N(0, I/λ), intercept b0 ~ N(0, 10²)). Reference: :func:`wbbgen.nuts_reference`.
* ``breast_cancer_flat``: the same with an unpenalised intercept
  b0 ~ ImproperUniform(ℝ) (no anchor: wbbgen gives flat sites a zero offset).
* ``synthetic_logistic``: n = 1000, p = 10, x ~ N(0, I), β = 0.5·(1, −1, .8, −.8, .6, −.6,
  .4, −.4, .2, −.2), b0 = −0.3 (‖β‖ = 1.05: logits of sd ≈ 1, far from separable -- an LP
  finds no separating hyperplane), model as ``breast_cancer``. Reference: NUTS.

Reported per (data set, scheme, λ, path): the median over coordinates of the sd ratio
(WBB sd / reference sd) and of the 90 % coverage (share of reference draws inside the WBB
central 90 % interval), and the largest |mean shift| (in reference sd), each with an MCSE
(the median coordinate's MCSE; for the maximum, the MCSE of the coordinate attaining it --
note that a maximum over P coordinates is biased upwards by about
√(2 log P)·MCSE even when every shift is zero). The issue's target, at every λ: median sd
ratio in [0.9, 1.1] and median 90 % coverage in [0.85, 0.95]. Wall times of each path (NUTS
over the grid, exact WBB over the grid, generator training and evaluation) are measured in
the same run, first calls included (they contain the compilation).

Outputs in ``--out``: ``calibration.json`` (everything, per coordinate too),
``calibration.md`` (tables), ``calibration_<data set>.png`` (one figure per data set:
rows = schemes, columns = sd ratio and coverage, exact and generator overlaid), and
``sbc_ranks.png`` / the ``sbc`` entry of the JSON (simulation-based calibration of anchored
exact WBB on a conjugate ridge, :mod:`wbbgen.bench.sbc`).

Warnings of the library (unconverged exact draws, NUTS diagnostics) are recorded in the
JSON, not raised. Floating point: float32 (the users' default) unless ``--x64``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import jax
import numpy as np

from wbbgen.bench import sbc
from wbbgen.bench.calibration.data import (
    FULL,
    PROBLEMS,
    SCHEMES,
    SMOKE,
    SMOKE_PROBLEMS,
    SMOKE_SCHEMES,
    TARGET_COV90,
    TARGET_SD,
    Sizes,
    logistic_flat_model,
    make_data,
    ridge_model,
    ridge_posterior,
    ridge_reference,
    separable,
)
from wbbgen.bench.calibration.report import markdown, plot_problem
from wbbgen.bench.calibration.study import Recorder, paired_fidelity, run_problem, summary_rows
from wbbgen.bench.calibration.theory import first_order_sd_ratio, predicted
from wbbgen.bench.harness import timed

__all__ = [
    "FULL",
    "PROBLEMS",
    "SCHEMES",
    "SMOKE",
    "SMOKE_PROBLEMS",
    "SMOKE_SCHEMES",
    "TARGET_COV90",
    "TARGET_SD",
    "Sizes",
    "Recorder",
    "first_order_sd_ratio",
    "logistic_flat_model",
    "make_data",
    "markdown",
    "paired_fidelity",
    "plot_problem",
    "predicted",
    "ridge_model",
    "ridge_posterior",
    "ridge_reference",
    "run_problem",
    "separable",
    "summary_rows",
    "main",
]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="wbbgen bench calibration", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks every step of the study once")
    parser.add_argument("--x64", action="store_true", help="float64 everywhere")
    parser.add_argument(
        "--problems",
        nargs="+",
        default=None,
        choices=PROBLEMS,
        help=f"default: all (smoke: {' '.join(SMOKE_PROBLEMS)})",
    )
    parser.add_argument(
        "--schemes", nargs="+", default=None, choices=SCHEMES, help=f"default: all (smoke: {' '.join(SMOKE_SCHEMES)})"
    )
    parser.add_argument("--num-steps", type=int, default=None, help="generator training steps")
    parser.add_argument("--no-sbc", action="store_true")
    parser.add_argument("--markdown-only", action="store_true", help="re-render calibration.md from calibration.json")
    args = parser.parse_args(argv)
    if args.markdown_only:
        report = json.loads((args.out / "calibration.json").read_text())
        (args.out / "calibration.md").write_text(markdown(report))
        return report

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    sizes = SMOKE if args.smoke else FULL
    if args.problems is None:
        args.problems = list(SMOKE_PROBLEMS if args.smoke else PROBLEMS)
    if args.schemes is None:
        args.schemes = list(SMOKE_SCHEMES if args.smoke else SCHEMES)
    if args.num_steps:
        sizes = Sizes(**{**asdict(sizes), "num_steps": args.num_steps})
    args.out.mkdir(parents=True, exist_ok=True)
    record = Recorder()
    t_start = time.perf_counter()
    report = {
        "sizes_label": "smoke" if args.smoke else "full",
        "sizes": asdict(sizes),
        "dtype": np.dtype(dtype).name,
        "platform": f"{jax.devices()[0].platform}, {os.cpu_count()} CPU cores, jax {jax.__version__}",
        "schemes": list(args.schemes),
        "target": {"sd_ratio": list(TARGET_SD), "coverage_90": list(TARGET_COV90)},
        "problems": {},
    }
    for name in args.problems:
        entry, cals = run_problem(name, sizes, args.schemes, dtype=dtype, record=record)
        report["problems"][name] = entry
        plot_problem(name, cals, sizes.grid, args.out / f"calibration_{name}.png")
    if not args.no_sbc:
        print("[sbc] simulation-based calibration ...")
        res, t_sbc = timed(sbc.run_sbc, num_replicates=sizes.sbc_replicates, num_draws=sizes.sbc_draws, dtype=dtype)
        report["sbc"] = sbc.to_json(res) | {"wall_s": t_sbc}
        sbc.plot_ranks(res, args.out / "sbc_ranks.png")
    report["warnings"] = record.messages
    report["total_wall_s"] = time.perf_counter() - t_start
    (args.out / "calibration.json").write_text(json.dumps(report, indent=1, allow_nan=False))
    (args.out / "calibration.md").write_text(markdown(report))
    print(f"wrote {args.out}/calibration.json, calibration.md and plots in {report['total_wall_s']:.0f} s")
    return report
