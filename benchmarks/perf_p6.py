r"""P6 -- fidelity: generator vs exact WBB on identical draws, ridge and logistic.

At 5 λ spread over the training range (``result.fidelity``: 64 paired draws per λ), per
problem: the worst coordinate's |sd ratio − 1| and |mean shift| in exact sd. Goal: ≤ 0.05 and
≤ 0.05 at every λ. Ridge: n = 200, p = 10 synthetic; logistic: breast cancer (the P1 run's
generator when ``perf.py`` passes it).

Usage: ``python benchmarks/perf_p6.py [--smoke]`` (prints JSON).
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from _perf_common import device, load

GOAL = 0.05


def _rows(fid) -> dict:
    sd_err = np.maximum(np.abs(fid["sd_ratio_min"] - 1), np.abs(fid["sd_ratio_max"] - 1))
    return {
        "lam": np.asarray(fid["values"])[:, 0].tolist(),
        "sd_ratio_median": np.asarray(fid["sd_ratio_median"]).tolist(),
        "worst_sd_error": sd_err.tolist(),
        "worst_mean_error": np.asarray(fid["mean_error_max"]).tolist(),
        "rmse_median": np.asarray(fid["rmse_median"]).tolist(),
    }


def run(smoke: bool = False, logistic_result=None) -> dict:
    from wbbgen import AmortizedWBB
    from wbbgen.models import ridge

    load_start = load()
    num_steps = 200 if smoke else 10_000
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    X = jax.random.normal(k1, (200, 10))
    y = X @ (0.5 * jax.random.normal(k2, (10,))) + jax.random.normal(k3, (200,))
    hyper = {"lam": dist.LogUniform(1e-2, 1e3)}
    ridge_result = AmortizedWBB(ridge, hyper=hyper).run(
        jax.random.key(2), X, y, num_steps=num_steps, progress_bar=False
    )
    if logistic_result is None:
        from wbbgen.datasets import breast_cancer
        from wbbgen.demo import logistic_model

        d = breast_cancer()
        logistic_result = AmortizedWBB(logistic_model, hyper=hyper).run(
            jax.random.key(0), jnp.asarray(d[0]), jnp.asarray(d[1]), num_steps=num_steps, progress_bar=False
        )
    rows = {"ridge": _rows(ridge_result.fidelity), "logistic": _rows(logistic_result.fidelity)}
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.smoke), indent=2))


if __name__ == "__main__":
    main()
