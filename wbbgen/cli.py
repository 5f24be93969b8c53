"""Command line: ``wbbgen demo [--out DIR] [--num-steps N] [--num-samples S] [--seed K] [--smoke]``,
``wbbgen bench perf --out DIR [--only P1,P3] [--smoke]``, ``wbbgen bench calibration --out DIR [--smoke]`` and
``wbbgen bench hpo --task T… --methods M… [--budget B] [--seeds N] --out DIR [--smoke]``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="wbbgen", description="Generative Bayesian hyperparameter tuning.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="breast-cancer logistic regression over λ, end to end")
    demo.add_argument("--out", default="demo-output", help="folder for the outputs (default: demo-output)")
    demo.add_argument("--num-steps", type=int, default=8000, help="generator training steps")
    demo.add_argument("--num-samples", type=int, default=1000, help="draws per λ")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--smoke", action="store_true", help="a tiny run that checks the pipeline (seconds)")
    bench = sub.add_parser("bench", help="benchmarks (run from a source checkout)")
    bench.add_argument("suite", choices=["perf", "calibration", "hpo"], help="which benchmark")
    bench.add_argument("--out", required=True, help="folder for JSON, markdown and plots")
    bench.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    bench.add_argument("--only", help="perf: comma-separated targets, e.g. P3,P5 (default: all)")
    hpo = bench.add_argument_group("hpo (the tuning comparison)")
    hpo.add_argument(
        "--task",
        nargs="+",
        help="ridge-diabetes, logistic-cancer, digits-softmax, digits-mlp, all (those four), digits-mlp-layers "
        "or tiny-ridge (the test suite's task)",
    )
    hpo.add_argument(
        "--methods",
        nargs="+",
        help="grid random tpe gp-bo hyperband lorraine-global lorraine-local sinha ariafar wbbgen, or all",
    )
    hpo.add_argument("--budget", help="per run: N full fits, Ns seconds, or N,Ms (default: per task)")
    hpo.add_argument("--seeds", type=int, help="seeds per method (default 3; 1 with --smoke)")
    args = parser.parse_args(argv)

    if args.command == "bench":
        hpo_only = {"--task": args.task, "--methods": args.methods, "--budget": args.budget, "--seeds": args.seeds}
        if args.suite != "hpo" and any(v is not None for v in hpo_only.values()):
            given = [k for k, v in hpo_only.items() if v is not None]
            parser.error(f"{', '.join(given)} only apply to `wbbgen bench hpo`.")
        if args.only is not None and args.suite != "perf":
            parser.error("--only applies to `wbbgen bench perf`.")
        module = _benchmark_module(args.suite)
        argv = ["--out", args.out] + (["--smoke"] if args.smoke else [])
        if args.only is not None:
            argv += ["--only", args.only]
        if args.suite == "hpo":
            for flag, value in hpo_only.items():
                if value is not None:
                    argv += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
        module.main(argv)
        return 0

    if args.command == "demo":
        from wbbgen.demo import run_demo

        if args.smoke:
            run_demo(args.out, num_steps=200, num_samples=50, num_grid=6, seed=args.seed, progress_bar=False)
        else:
            run_demo(args.out, num_steps=args.num_steps, num_samples=args.num_samples, seed=args.seed)
    return 0


def _benchmark_module(name: str):
    """Import ``benchmarks/<name>.py`` from the source checkout wbbgen runs from."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    if not path.exists():
        raise SystemExit(f"wbbgen bench needs a source checkout with benchmarks/{name}.py (looked in {path.parent}).")
    spec = importlib.util.spec_from_file_location(f"wbbgen_benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(main())
