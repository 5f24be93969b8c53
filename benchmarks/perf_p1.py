r"""P1 -- the λ path against MCMC: breast-cancer logistic, 50 λ × 1000 draws.

AmortizedWBB end to end (pilot, training with its compilation, fidelity check, evaluation of
the grid) against :func:`wbbgen.nuts_reference` over the same grid (4 chains × (1000 warm-up
+ 250) = 1000 draws per λ) and :func:`wbbgen.exact_wbb`, measured side by side in one run.
Goal: ≥ 30× faster than NUTS on 2 CPU cores (≥ 100× on a GPU). Also reported: the run's cost
model (:mod:`wbbgen.cost`) prediction against the measured exact and amortised times.

Usage: ``python benchmarks/perf_p1.py [--smoke]`` (prints JSON); ``perf.py`` runs it with
the others and reuses the trained generator for P3 and P6.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from _perf_common import device, load, on_gpu, timed

GOAL_CPU, GOAL_GPU = 30.0, 100.0


def run(smoke: bool = False, num_steps: int | None = None):
    """Returns ``(P1 dict, shared)`` with ``shared`` holding the trained logistic generator."""
    from wbbgen import AmortizedWBB, exact_wbb, nuts_reference
    from wbbgen.datasets import breast_cancer
    from wbbgen.demo import logistic_model

    data = breast_cancer()
    X, y, Xte, yte = (jnp.asarray(a) for a in data[:4])
    K, S = (3, 50) if smoke else (50, 1000)
    num_steps = num_steps or (200 if smoke else 10_000)
    grid = np.logspace(-2, 3, K)
    keys = jax.random.split(jax.random.key(0), 4)
    load_start = load()

    t0 = time.perf_counter()
    infer = AmortizedWBB(logistic_model, hyper={"lam": dist.LogUniform(1e-2, 1e3)}, plan=(K, S))
    result = infer.run(keys[0], X, y, num_steps=num_steps, progress_bar=False)
    _, t_first = timed(lambda: infer.get_samples(keys[1], result, hyper={"lam": grid}, num_samples=S)["beta"])
    t_amortized = time.perf_counter() - t0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, t_exact = timed(
            exact_wbb, keys[1], logistic_model, X, y, hyper={"lam": grid}, num_samples=S, progress_bar=False
        )
        chains, warmup, draws = (1, 100, 50) if smoke else (4, 1000, 250)
        _, t_nuts = timed(
            nuts_reference,
            keys[2],
            logistic_model,
            X,
            y,
            hyper={"lam": grid},
            num_chains=chains,
            num_warmup=warmup,
            num_samples=draws,
            progress_bar=False,
        )
    goal = GOAL_GPU if on_gpu() else GOAL_CPU
    d = result.diagnostics
    cost = result.cost
    p1 = {
        "figure": t_nuts / t_amortized,
        "unit": "× faster than NUTS (end to end)",
        "goal": goal,
        "met": bool(t_nuts / t_amortized >= goal),
        "device": device(),
        "times_s": {
            "amortized_end_to_end": t_amortized,
            "amortized_pilot": d["pilot_s"],
            "amortized_train_compile": d.get("compile_s", 0.0),
            "amortized_train_run": d["train_s"] - d.get("compile_s", 0.0),
            "amortized_fidelity": d.get("fidelity_s", 0.0),
            "amortized_first_grid_evaluation": t_first,
            "nuts_grid": t_nuts,
            "exact_wbb_grid": t_exact,
        },
        "exact_vs_nuts": t_nuts / t_exact,
        "cost_model": None
        if cost is None
        else {
            "predicted_exact_s": cost.exact_s,
            "measured_exact_s": t_exact,
            "predicted_amortized_s": cost.amortized_s,
            "measured_amortized_s": t_amortized,
            "predicted_cheaper": cost.cheaper,
            "measured_cheaper": "exact" if t_exact <= t_amortized else "amortized",
            "crossover_pairs": cost.crossover_pairs,
        },
        "setup": f"{K} λ × {S} draws; {num_steps} training steps; NUTS {chains} chains × ({warmup} + {draws})",
        "load_average": [load_start, load()],
    }
    shared = {"infer": infer, "result": result, "grid": grid, "num_samples": S, "test": (Xte, yte)}
    return p1, shared


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.smoke)[0], indent=2))


if __name__ == "__main__":
    main()
