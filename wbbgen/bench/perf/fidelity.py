r"""P6 -- fidelity: the generator against exact WBB on identical draws, ridge and logistic.

The closing fidelity check of a run (``result.fidelity``: paired generator and exact draws at
5 λ spread over the training range) gives, per λ, the worst coordinate's |sd ratio − 1| and
its largest |mean shift| in exact sd. The figures are the worst of each over the λ and over
two problems: ridge (:func:`wbbgen.models.ridge`, synthetic, n × p) and logistic regression on
breast cancer (P1's generator when P1 ran in the same process, one trained here otherwise).
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro.distributions as dist

from wbbgen import AmortizedWBB
from wbbgen.bench.harness import device, load
from wbbgen.bench.perf.lambda_path import HIGH, LOW, breast_cancer_data
from wbbgen.models import logistic, ridge

__all__ = ["run", "fidelity_rows", "GOAL"]

GOAL = 0.05


def fidelity_rows(fid) -> dict:
    """Per λ of a run's fidelity check: worst |sd ratio − 1|, worst |mean shift|, median RMSE."""
    sd_err = np.maximum(np.abs(fid["sd_ratio_min"] - 1), np.abs(fid["sd_ratio_max"] - 1))
    return {
        "lam": np.asarray(fid["values"])[:, 0].tolist(),
        "sd_ratio_median": np.asarray(fid["sd_ratio_median"]).tolist(),
        "worst_sd_error": sd_err.tolist(),
        "worst_mean_error": np.asarray(fid["mean_error_max"]).tolist(),
        "rmse_median": np.asarray(fid["rmse_median"]).tolist(),
    }


def run(shared: dict, *, num_steps: int, ridge_size: tuple[int, int]) -> dict:
    """P6's JSON entry; ``ridge_size`` is the synthetic ridge problem's ``(n, p)``."""
    load_start = load()
    n, p = ridge_size
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    X = jax.random.normal(k1, (n, p))
    y = X @ (0.5 * jax.random.normal(k2, (p,))) + jax.random.normal(k3, (n,))
    hyper = {"lam": dist.LogUniform(LOW, HIGH)}
    ridge_result = AmortizedWBB(ridge, hyper=hyper).run(
        jax.random.key(2), X, y, num_steps=num_steps, progress_bar=False
    )
    if "logistic" in shared:
        logistic_result = shared["logistic"]["result"]
    else:
        Xb, yb = breast_cancer_data()[:2]
        logistic_result = AmortizedWBB(logistic, hyper=hyper).run(
            jax.random.key(0), Xb, yb, num_steps=num_steps, progress_bar=False
        )
    rows = {"ridge": fidelity_rows(ridge_result.fidelity), "logistic": fidelity_rows(logistic_result.fidelity)}
    worst_sd = max(max(r["worst_sd_error"]) for r in rows.values())
    worst_mean = max(max(r["worst_mean_error"]) for r in rows.values())
    return {
        "figure": {"worst_sd_error": worst_sd, "worst_mean_error": worst_mean},
        "unit": "worst coordinate over 5 λ, ridge and logistic",
        "goal": {"worst_sd_error": GOAL, "worst_mean_error": GOAL},
        "met": bool(worst_sd <= GOAL and worst_mean <= GOAL),
        "device": device(),
        "per_problem": rows,
        "num_steps": num_steps,
        "load_average": [load_start, load()],
    }
