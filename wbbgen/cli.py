"""Command line: ``wbbgen demo [--out DIR] [--num-steps N] [--num-samples S] [--seed K] [--smoke]`` and
``wbbgen bench NAME [options]``, which runs one of the benchmarks of :mod:`wbbgen.bench`
(``wbbgen bench --help`` lists them; ``wbbgen bench NAME --help`` gives a benchmark's options)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NamedTuple

from wbbgen.bench import (
    calibration,
    hierarchical,
    hpo,
    hypertrain,
    nuts_grid,
    perf,
    posteriordb,
    sbc,
    sigma_check,
    tuning_reference,
)
from wbbgen.bench.perf import recipes
from wbbgen.demo import run_demo

__all__ = ["Benchmark", "BENCHMARKS", "main"]


class Benchmark(NamedTuple):
    """A benchmark of ``wbbgen bench``: its ``main(argv)`` and a one-line summary."""

    main: Callable
    summary: str


BENCHMARKS = {
    "perf": Benchmark(perf.main, "the performance targets P1-P6, each figure beside its goal"),
    "p6-recipes": Benchmark(recipes.main, "P6: sampling λ where fidelity is worst, a supervised warm start"),
    "calibration": Benchmark(calibration.main, "WBB draws against reference posteriors per prior scheme, and SBC"),
    "sbc": Benchmark(sbc.main, "simulation-based calibration of exact WBB on a conjugate ridge"),
    "sigma-check": Benchmark(sigma_check.main, "anchored exact WBB against NUTS for a scale parameter"),
    "posteriordb": Benchmark(posteriordb.main, "anchored exact WBB against 8 posteriordb reference posteriors"),
    "hierarchical": Benchmark(hierarchical.main, "eight schools and a random intercept against NUTS, per coordinate"),
    "hpo": Benchmark(hpo.main, "the tuning comparison: every tuner on every task (needs the hpo extra)"),
    "hypertrain": Benchmark(hypertrain.main, "local hyper-training against random search, 10 and 640 decays"),
    "tuning-reference": Benchmark(tuning_reference.main, "wbbgen's choice of λ against exact CV and grids"),
    "nuts-grid": Benchmark(nuts_grid.main, "the grid strategies of nuts_reference timed"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wbbgen", description="Generative Bayesian hyperparameter tuning.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="breast-cancer logistic regression over λ, end to end")
    demo.add_argument("--out", default="demo-output", help="folder for the outputs (default: demo-output)")
    demo.add_argument("--num-steps", type=int, default=8000, help="generator training steps")
    demo.add_argument("--num-samples", type=int, default=1000, help="draws per λ")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--smoke", action="store_true", help="a tiny run that checks the pipeline (seconds)")
    bench = sub.add_parser(
        "bench",
        help="run a benchmark: wbbgen bench NAME [options]",
        description="Run a benchmark; `wbbgen bench NAME --help` lists its options.",
    )
    names = bench.add_subparsers(dest="name", required=True, metavar="NAME")
    for name, b in BENCHMARKS.items():
        names.add_parser(name, help=b.summary, add_help=False)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) >= 2 and argv[0] == "bench":
        name = argv[1].replace("_", "-")
        if name in BENCHMARKS:  # the benchmark parses its own options
            BENCHMARKS[name].main(argv[2:])
            return 0
    args = _parser().parse_args(argv)
    if args.command == "demo":
        if args.smoke:
            run_demo(args.out, num_steps=200, num_samples=50, num_grid=6, seed=args.seed, progress_bar=False)
        else:
            run_demo(args.out, num_steps=args.num_steps, num_samples=args.num_samples, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
