r"""P6 recipes -- does sampling λ where the fidelity is worst, or a supervised warm start,
help? Measured, not assumed.

P6's worst errors sit at the small-λ end of the logistic problem (breast cancer, λ ∈ [1e-2,
1e3]), where the data dominate the prior and the WBB spread is widest. The generator is
conditional on λ, so the distribution λ is drawn from during criterion-based training does not
move its target at any λ; it only decides where the training effort goes. This script trains
the same generator (default settings, ``num_steps`` steps, same keys) with

* ``loguniform`` -- λ ~ LogUniform(1e-2, 1e3) (the default recipe), and
* ``tilted`` -- log λ = log 1e-2 + log(1e5)·u with u ~ Beta(a, 1), a = 0.5 (1.6× the
  log-uniform's density at the centre of the bottom decade, 0.5× at the top),

* ``supervised`` -- a supervised warm start: ``mode="supervised"`` regression on the exact
  optimisers of 4096 random (w, λ, ξ) draws for ``SUPERVISED_STEPS`` steps, then criterion
  training from that generator (``run(..., init_generator=...)``) for the remaining steps, so
  the step count is the same (the exact solves are the extra cost, in its wall time),

and reports the closing fidelity check of each (64 paired exact draws at 5 λ spread over the
support; the tilted distribution's support is read from its 0.1 and 99.9 % quantiles, so its
top λ is ≈ 977 instead of 1000 and its 5 λ differ slightly at the top).

Usage: ``python benchmarks/perf_p6_recipes.py --out DIR [--smoke]`` (writes
``p6_recipes.json`` and prints a table).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from _perf_common import device, load
from numpyro.distributions.transforms import AffineTransform, ExpTransform

LOW, HIGH, TILT = 1e-2, 1e3, 0.5
#: Supervised warm start: regression steps (of 10,000 in all) and exact targets.
SUPERVISED_STEPS, TARGETS = 3000, 4096


def tilted(low: float = LOW, high: float = HIGH, a: float = TILT):
    """log λ = log low + log(high / low)·u, u ~ Beta(a, 1): more draws near ``low`` for a < 1."""
    return dist.TransformedDistribution(
        dist.Beta(a, 1.0), [AffineTransform(np.log(low), np.log(high / low)), ExpTransform()]
    )


def _row(fid) -> dict:
    sd_err = np.maximum(np.abs(fid["sd_ratio_min"] - 1), np.abs(fid["sd_ratio_max"] - 1))
    return {
        "lam": np.asarray(fid["values"])[:, 0].tolist(),
        "worst_sd_error": sd_err.tolist(),
        "worst_mean_error": np.asarray(fid["mean_error_max"]).tolist(),
        "rmse_median": np.asarray(fid["rmse_median"]).tolist(),
    }


def run(smoke: bool = False) -> dict:
    from wbbgen import AmortizedWBB
    from wbbgen.datasets import breast_cancer
    from wbbgen.demo import logistic_model

    load_start = load()
    X, y = (jnp.asarray(a) for a in breast_cancer()[:2])
    num_steps = 200 if smoke else 10_000
    fidelity_samples = 16 if smoke else 64
    out = {}
    for name, prior in (("loguniform", dist.LogUniform(LOW, HIGH)), ("tilted", tilted())):
        t0 = time.perf_counter()
        infer = AmortizedWBB(logistic_model, hyper={"lam": prior}, fidelity_samples=fidelity_samples)
        result = infer.run(jax.random.key(0), X, y, num_steps=num_steps, progress_bar=False)
        out[name] = _row(result.fidelity) | {"wall_s": time.perf_counter() - t0}
    # Supervised warm start: same key for the criterion run, so the same fidelity draws.
    t0 = time.perf_counter()
    hyper = {"lam": dist.LogUniform(LOW, HIGH)}
    sup_steps = num_steps * SUPERVISED_STEPS // 10_000
    sup = AmortizedWBB(logistic_model, hyper=hyper, mode="supervised", num_targets=TARGETS, fidelity_samples=0)
    first = sup.run(jax.random.key(1), X, y, num_steps=sup_steps, progress_bar=False)
    infer = AmortizedWBB(logistic_model, hyper=hyper, fidelity_samples=fidelity_samples)
    result = infer.run(
        jax.random.key(0), X, y, num_steps=num_steps - sup_steps, progress_bar=False, init_generator=first
    )
    out["supervised"] = _row(result.fidelity) | {
        "wall_s": time.perf_counter() - t0,
        "targets_s": first.diagnostics["targets_s"],
        "supervised_steps": sup_steps,
    }
    return {
        "recipes": out,
        "num_steps": num_steps,
        "tilt": f"log λ = log {LOW:g} + log({HIGH / LOW:g})·Beta({TILT}, 1)",
        "supervised": f"{SUPERVISED_STEPS} of 10,000 steps supervised on {TARGETS} exact targets, then criterion",
        "device": device(),
        "load_average": [load_start, load()],
    }


def table(res: dict) -> str:
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    res = run(args.smoke)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "p6_recipes.json").write_text(json.dumps(res, indent=1))
    (out / "p6_recipes.md").write_text(table(res) + "\n")
    print(table(res))


if __name__ == "__main__":
    main()
