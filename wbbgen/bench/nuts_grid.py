r"""The grid strategies of :func:`wbbgen.nuts_reference` (``grid_method``) timed against each other.

Logistic regression with prior β ~ N(0, I/λ) on ``synthetic`` data (n = 200, p = 10,
x ~ N(0, I), β = linspace(−1, 1)) or ``breast_cancer`` (scikit-learn's data set, all 569
rows, standardised: p = 30, strongly correlated, near-separable). Three calls per strategy,
each with a new key and a new grid of 8 λ (logspace(−2, 2, 8) × 1.1ᵏ at call k), 4 chains ×
(1000 warm-up + 1000 draws) per λ: the first call includes compilation, the next ones reuse
the compiled program. Each strategy runs in a fresh process, so none inherits another's
compilations.

Usage: ``wbbgen bench nuts-grid [--problem synthetic|breast_cancer] [--x64] [--out DIR]``
(prints the table; ``--out`` writes ``nuts_grid.json``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from wbbgen.reference import ReferenceDiagnosticsWarning, nuts_reference

__all__ = ["GRID_METHODS", "PROBLEMS", "time_calls", "main"]

#: The values :func:`wbbgen.nuts_reference` takes for ``grid_method``.
GRID_METHODS = ("map", "scan", "vmap")
PROBLEMS = ("synthetic", "breast_cancer")


def _model(x, y, lam=1.0):
    b = numpyro.sample("b", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([x.shape[1]]))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=x @ b), obs=y)


def _data(problem: str):
    if problem == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        x, y = load_breast_cancer(return_X_y=True)
        return (x - x.mean(0)) / x.std(0), y.astype(float)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 10))
    return x, (rng.uniform(size=200) < 1 / (1 + np.exp(-x @ np.linspace(-1, 1, 10)))) * 1.0


def time_calls(grid_method: str, problem: str = "synthetic", calls: int = 3) -> list[float]:
    """Seconds of ``calls`` calls of :func:`wbbgen.nuts_reference`, each with a new key and grid."""
    x, y = _data(problem)
    times = []
    for seed in range(calls):
        grid = np.logspace(-2, 2, 8) * 1.1**seed
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReferenceDiagnosticsWarning)
            nuts_reference(
                jax.random.key(seed),
                _model,
                x,
                y,
                hyper={"lam": grid},
                num_chains=4,
                num_warmup=1000,
                num_samples=1000,
                progress_bar=False,
                grid_method=grid_method,
            )
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="wbbgen bench nuts-grid", description=__doc__.splitlines()[0])
    parser.add_argument("--problem", choices=PROBLEMS, default="synthetic")
    parser.add_argument("--x64", action="store_true", help="float64 everywhere")
    parser.add_argument("--out", type=Path, help="folder for nuts_grid.json")
    parser.add_argument("--grid-method", choices=GRID_METHODS, help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args(argv)
    if args.grid_method is not None:
        if args.x64:
            jax.config.update("jax_enable_x64", True)
        print(json.dumps(time_calls(args.grid_method, args.problem)))
        return {}
    print(f"{args.problem}: grid_method  first call   next calls (s)", flush=True)
    results = {}
    for method in GRID_METHODS:
        cmd = [sys.executable, "-m", "wbbgen", "bench", "nuts-grid", "--problem", args.problem]
        cmd += ["--grid-method", method] + (["--x64"] if args.x64 else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        t = results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{method:<6} {t[0]:8.1f} s   " + "  ".join(f"{s:6.2f}" for s in t[1:]), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = {"problem": args.problem, "x64": args.x64, "seconds_per_call": results}
        (args.out / "nuts_grid.json").write_text(json.dumps(payload, indent=1))
    return results
