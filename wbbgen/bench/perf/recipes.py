r"""P6 recipes: does sampling λ where the fidelity is worst, or a supervised warm start, help?

The generator is conditional on λ, so the distribution λ is drawn from during criterion-based
training does not move its target at any λ; it only decides where the training effort goes.
On breast-cancer logistic regression, λ ∈ [1e-2, 1e3], the same generator (default settings,
``num_steps`` steps, same keys) is trained with

* ``loguniform`` -- λ ~ LogUniform(1e-2, 1e3) (the default recipe);
* ``tilted`` -- log λ = log 1e-2 + log(1e5)·u with u ~ Beta(a, 1), a = 0.5 (more draws at the
  small-λ end: 1.6× the log-uniform's density at the centre of the bottom decade);
* ``supervised`` -- a supervised warm start: ``mode="supervised"`` regression on the exact
  optimisers of random (w, λ, ξ) draws for 30 % of the steps, then criterion training from
  that generator (``run(..., init_generator=...)``) for the rest, so that the step count is the
  same (the exact solves are the extra cost, in its wall time);

and each run's closing fidelity check is reported (paired exact draws at 5 λ spread over the
support; the tilted distribution's support is read from its 0.1 and 99.9 % quantiles, so its
5 λ differ slightly at the top).

Usage: ``wbbgen bench p6-recipes --out DIR [--smoke]`` writes ``p6_recipes.json`` and
``p6_recipes.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions.transforms import AffineTransform, ExpTransform

from wbbgen import AmortizedWBB
from wbbgen.bench.harness import device, load
from wbbgen.bench.perf.fidelity import fidelity_rows
from wbbgen.bench.perf.lambda_path import HIGH, LOW, breast_cancer_data
from wbbgen.models import logistic

__all__ = ["tilted", "run", "table", "main"]

TILT = 0.5
#: Share of the steps spent on supervised regression, and the number of exact targets.
SUPERVISED_SHARE, NUM_TARGETS = 0.3, 4096
SIZES = {"smoke": {"num_steps": 200, "fidelity_samples": 16}, "full": {"num_steps": 10_000, "fidelity_samples": 64}}


def tilted(low: float = LOW, high: float = HIGH, a: float = TILT):
    """log λ = log low + log(high / low)·u, u ~ Beta(a, 1): more draws near ``low`` for a < 1."""
    return dist.TransformedDistribution(
        dist.Beta(a, 1.0), [AffineTransform(np.log(low), np.log(high / low)), ExpTransform()]
    )


def run(*, num_steps: int, fidelity_samples: int) -> dict:
    """The three recipes' fidelity rows and wall times."""
    load_start = load()
    X, y = breast_cancer_data()[:2]
    out = {}
    for name, prior in (("loguniform", dist.LogUniform(LOW, HIGH)), ("tilted", tilted())):
        t0 = time.perf_counter()
        infer = AmortizedWBB(logistic, hyper={"lam": prior}, fidelity_samples=fidelity_samples)
        result = infer.run(jax.random.key(0), X, y, num_steps=num_steps, progress_bar=False)
        out[name] = fidelity_rows(result.fidelity) | {"wall_s": time.perf_counter() - t0}
    # The criterion run uses the same key as the others, so the same fidelity draws.
    t0 = time.perf_counter()
    hyper = {"lam": dist.LogUniform(LOW, HIGH)}
    sup_steps = int(num_steps * SUPERVISED_SHARE)
    sup = AmortizedWBB(logistic, hyper=hyper, mode="supervised", num_targets=NUM_TARGETS, fidelity_samples=0)
    first = sup.run(jax.random.key(1), X, y, num_steps=sup_steps, progress_bar=False)
    infer = AmortizedWBB(logistic, hyper=hyper, fidelity_samples=fidelity_samples)
    result = infer.run(
        jax.random.key(0), X, y, num_steps=num_steps - sup_steps, progress_bar=False, init_generator=first
    )
    out["supervised"] = fidelity_rows(result.fidelity) | {
        "wall_s": time.perf_counter() - t0,
        "targets_s": first.diagnostics["targets_s"],
        "supervised_steps": sup_steps,
    }
    return {
        "recipes": out,
        "num_steps": num_steps,
        "tilt": f"log λ = log {LOW:g} + log({HIGH / LOW:g})·Beta({TILT}, 1)",
        "supervised": f"{sup_steps} of {num_steps} steps supervised on {NUM_TARGETS} exact targets, then criterion",
        "device": device(),
        "load_average": [load_start, load()],
    }


def table(res: dict) -> str:
    """The markdown table of :func:`run`'s result, one row per recipe and λ."""
    lines = [
        "| recipe | wall s | λ | worst sd error | worst mean error | rmse (median) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in res["recipes"].items():
        for i, lam in enumerate(r["lam"]):
            lines.append(
                f"| {name} | {r['wall_s']:.0f} | {lam:.3g} | {r['worst_sd_error'][i]:.3f} | "
                f"{r['worst_mean_error'][i]:.3f} | {r['rmse_median'][i]:.3f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="wbbgen bench p6-recipes", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for p6_recipes.json and p6_recipes.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline, not the recipes")
    args = parser.parse_args(argv)
    res = run(**SIZES["smoke" if args.smoke else "full"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "p6_recipes.json").write_text(json.dumps(res, indent=1))
    (args.out / "p6_recipes.md").write_text(table(res) + "\n")
    print(table(res))
    return res
