r"""P1 -- the λ path against MCMC: L2 logistic regression on breast cancer, K λ × S draws.

Measured side by side in one process, on the same grid of K λ (log-spaced over [1e-2, 1e3]):

* :class:`wbbgen.AmortizedWBB` end to end: pilot, training (its compilation reported apart),
  fidelity check and the first evaluation of the grid (``get_samples``, S draws per λ);
* :func:`wbbgen.nuts_reference` over the grid (``chains × (warm-up + draws)`` per λ);
* :func:`wbbgen.exact_wbb` over the grid (S draws per λ);
* :func:`wbbgen.first_order_wbb` with ``refine=2`` (no training), end to end, and its fidelity
  against the exact draws (same key: the same weights and anchors): worst per-λ median sd ratio
  and largest mean error in exact sd.

The figure is NUTS time / AmortizedWBB time. Also reported: the run's cost model
(:mod:`wbbgen.cost`) prediction against the measured exact and amortised times. The trained
generator is left in ``shared["logistic"]`` for P3 and P6.
"""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from wbbgen import AmortizedWBB, exact_wbb, first_order_wbb, nuts_reference
from wbbgen.bench.harness import device, load, on_gpu, timed
from wbbgen.datasets import breast_cancer
from wbbgen.models import logistic

__all__ = ["run", "breast_cancer_data", "LOW", "HIGH", "GOAL_CPU", "GOAL_GPU"]

LOW, HIGH = 1e-2, 1e3
GOAL_CPU, GOAL_GPU = 30.0, 100.0


def breast_cancer_data():
    """``(X, y, X_test, y_test)`` of :func:`wbbgen.datasets.breast_cancer` as JAX arrays."""
    return tuple(jnp.asarray(a) for a in breast_cancer()[:4])


def run(shared: dict, *, num_values: int, num_samples: int, num_steps: int, nuts: tuple[int, int, int]) -> dict:
    """P1's JSON entry; ``nuts`` is ``(chains, warm-up steps, draws)`` per λ."""
    X, y, Xte, yte = breast_cancer_data()
    K, S = num_values, num_samples
    grid = np.logspace(np.log10(LOW), np.log10(HIGH), K)
    keys = jax.random.split(jax.random.key(0), 4)
    load_start = load()

    t0 = time.perf_counter()
    infer = AmortizedWBB(logistic, hyper={"lam": dist.LogUniform(LOW, HIGH)}, plan=(K, S))
    result = infer.run(keys[0], X, y, num_steps=num_steps, progress_bar=False)
    _, t_first = timed(lambda: infer.get_samples(keys[1], result, hyper={"lam": grid}, num_samples=S)["beta"])
    t_amortized = time.perf_counter() - t0

    chains, warmup, draws = nuts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact, t_exact = timed(
            lambda: exact_wbb(keys[1], logistic, X, y, hyper={"lam": grid}, num_samples=S, progress_bar=False)["beta"]
        )
        first, t_first_order = timed(
            lambda: first_order_wbb(keys[1], logistic, X, y, hyper={"lam": grid}, num_samples=S, refine=2)["beta"]
        )
        _, t_nuts = timed(
            nuts_reference,
            keys[2],
            logistic,
            X,
            y,
            hyper={"lam": grid},
            num_chains=chains,
            num_warmup=warmup,
            num_samples=draws,
            progress_bar=False,
        )
    shared["logistic"] = {"infer": infer, "result": result, "grid": grid, "num_samples": S, "test": (Xte, yte)}
    goal = GOAL_GPU if on_gpu() else GOAL_CPU
    d, cost = result.diagnostics, result.cost
    return {
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
            "first_order_refine2_grid": t_first_order,
        },
        "exact_vs_nuts": t_nuts / t_exact,
        "first_order_refine2_vs_nuts": t_nuts / t_first_order,
        "first_order_refine2_vs_exact": t_exact / t_first_order,
        "first_order_refine2_fidelity": _fidelity(np.asarray(first), np.asarray(exact)),
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


def _fidelity(draws, exact) -> dict:
    """Per λ of ``(K, S, d)`` draws against exact ones: the median sd ratio's range over λ, the
    smallest coordinate's, and the largest |mean error| in exact sd."""
    sd = exact.std(axis=1)
    ratio = draws.std(axis=1) / sd
    err = np.abs(draws.mean(axis=1) - exact.mean(axis=1)) / sd
    med = np.median(ratio, axis=1)
    return {
        "median_sd_ratio_min": float(med.min()),
        "median_sd_ratio_max": float(med.max()),
        "sd_ratio_min": float(ratio.min()),
        "mean_error_max": float(err.max()),
    }
