r"""P3 -- evaluation after training: 50 λ × 1000 posterior draws plus a held-out criterion curve.

Warm timings (median of 5 calls after a compiling call, which is reported apart):
``get_samples`` (the draws, constrained, as :class:`wbbgen.WBBSamples`; the per-draw
objective statistics are computed only when ``samples.stats`` is first read, and that is
timed apart too) and the held-out log-density curve (:func:`wbbgen.tuning.evaluate`). Goal:
≤ 20 ms on 2 CPU cores. The time of evaluating a generator does not depend on its trained
values, only on its architecture, so narrower generators (``generator_options={"width": w}``)
are timed beside the default after a few training steps.

Usage: ``python benchmarks/perf_p3.py [--smoke]`` (prints JSON); ``perf.py`` passes the
generator trained for P1.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from _perf_common import device, load, timed, warm_median

GOAL_MS = 20.0


def _trained(width=None, num_steps=20):
    from wbbgen import AmortizedWBB
    from wbbgen.datasets import breast_cancer
    from wbbgen.demo import logistic_model

    data = breast_cancer()
    X, y, Xte, yte = (jnp.asarray(a) for a in data[:4])
    opts = {} if width is None else {"width": width}
    infer = AmortizedWBB(
        logistic_model,
        hyper={"lam": dist.LogUniform(1e-2, 1e3)},
        generator_options=opts,
        fidelity_samples=0,
        num_pilot=4,
    )
    result = infer.run(jax.random.key(0), X, y, num_steps=num_steps, progress_bar=False)
    return infer, result, (Xte, yte)


def measure(infer, result, grid, S, test, reps: int = 5) -> dict:
    from wbbgen import amortized as A
    from wbbgen.demo import logistic_model
    from wbbgen.tuning import evaluate, heldout_log_density

    key = jax.random.key(3)
    first, t_samples = warm_median(
        lambda: infer.get_samples(key, result, hyper={"lam": grid}, num_samples=S)["beta"], reps
    )
    samples = infer.get_samples(key, result, hyper={"lam": grid}, num_samples=S)
    crit = heldout_log_density(*test)
    crit_first, t_curve = warm_median(lambda: evaluate(logistic_model, samples, crit)[1], 3)
    _, t_stats = timed(lambda: samples.stats)
    values = jnp.asarray(np.asarray(grid)[:, None], np.asarray(samples["beta"]).dtype)
    _, t_gen = warm_median(lambda: A._generate(result.problem, result.domains, result.generator, key, values, S), reps)
    return {
        "samples_and_curve_ms": 1e3 * (t_samples + t_curve),
        "get_samples_ms": 1e3 * t_samples,
        "generator_forward_ms": 1e3 * t_gen,
        "criterion_curve_ms": 1e3 * t_curve,
        "first_get_samples_ms_with_compile": 1e3 * first,
        "first_curve_ms_with_compile": 1e3 * crit_first,
        "stats_on_first_access_ms_with_compile": 1e3 * t_stats,
    }


def run(smoke: bool = False, shared: dict | None = None) -> dict:
    load_start = load()
    K, S = (3, 50) if smoke else (50, 1000)
    grid = np.logspace(-2, 3, K)
    if shared is None:
        infer, result, test = _trained()
    else:
        infer, result, test = shared["infer"], shared["result"], shared["test"]
        grid, S = shared["grid"], shared["num_samples"]
    main = measure(infer, result, grid, S, test)
    variants = {}
    if not smoke:
        for width in (64, 128):
            inf_w, res_w, _ = _trained(width)
            variants[f"width={width}"] = measure(inf_w, res_w, grid, S, test)
    figure = main["samples_and_curve_ms"]
    return {
        "figure": figure,
        "unit": "ms (samples + criterion curve, warm)",
        "goal": GOAL_MS,
        "met": bool(figure <= GOAL_MS),
        "device": device(),
        "times_ms": main,
        "narrower_generators": variants,
        "generator": repr(result.config.get("generator_options")),
        "setup": f"{len(grid)} λ × {S} draws",
        "load_average": [load_start, load()],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.smoke), indent=2))


if __name__ == "__main__":
    main()
