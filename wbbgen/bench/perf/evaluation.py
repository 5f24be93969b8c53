r"""P3 -- evaluation after training: K λ × S posterior draws plus a held-out criterion curve.

Warm timings (median of 5 calls after a compiling call, which is reported apart) of

* ``get_samples`` -- the draws, constrained, as :class:`wbbgen.WBBSamples` (the per-draw
  objective statistics are computed when ``samples.stats`` is first read, timed apart);
* the generator's forward passes alone (:func:`wbbgen.problem.generate`, jitted);
* the held-out log-density curve (:func:`wbbgen.tuning.evaluate` of
  :func:`wbbgen.heldout_log_density` on the test rows).

The figure is draws + curve. The cost of evaluating a generator depends on its architecture,
not on its trained values, so the generator is P1's when P1 ran in the same process and one
trained for a few steps otherwise; narrower generators (``generator_options={"width": w}``)
are timed beside the default.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from wbbgen import AmortizedWBB
from wbbgen.bench.harness import device, load, timed, warm_median
from wbbgen.bench.perf.lambda_path import HIGH, LOW, breast_cancer_data
from wbbgen.models import logistic
from wbbgen.problem import generate
from wbbgen.tuning import evaluate, heldout_log_density

__all__ = ["run", "measure", "GOAL_MS"]

GOAL_MS = 20.0
#: One compilation per (K, S) shape, as ``get_samples`` compiles it.
_forward = eqx.filter_jit(generate)


def _trained(num_steps: int, width: int | None = None):
    X, y, Xte, yte = breast_cancer_data()
    infer = AmortizedWBB(
        logistic,
        hyper={"lam": dist.LogUniform(LOW, HIGH)},
        generator_options={} if width is None else {"width": width},
        fidelity_samples=0,
        num_pilot=4,
    )
    return infer, infer.run(jax.random.key(0), X, y, num_steps=num_steps, progress_bar=False), (Xte, yte)


def measure(infer, result, grid, num_samples: int, test, reps: int = 5) -> dict:
    """Warm and first-call times (ms) of one trained generator over ``grid``."""
    key = jax.random.key(3)
    hyper = {"lam": grid}
    first, t_samples = warm_median(
        lambda: infer.get_samples(key, result, hyper=hyper, num_samples=num_samples)["beta"], reps
    )
    samples = infer.get_samples(key, result, hyper=hyper, num_samples=num_samples)
    crit = heldout_log_density(*test)
    crit_first, t_curve = warm_median(lambda: evaluate(logistic, samples, crit)[1], 3)
    _, t_stats = timed(lambda: samples.stats)
    values = jnp.asarray(np.asarray(grid)[:, None], np.asarray(samples["beta"]).dtype)
    _, t_gen = warm_median(
        lambda: _forward(result.problem, result.domains, result.generator, key, values, num_samples), reps
    )
    return {
        "samples_and_curve_ms": 1e3 * (t_samples + t_curve),
        "get_samples_ms": 1e3 * t_samples,
        "generator_forward_ms": 1e3 * t_gen,
        "criterion_curve_ms": 1e3 * t_curve,
        "first_get_samples_ms_with_compile": 1e3 * first,
        "first_curve_ms_with_compile": 1e3 * crit_first,
        "stats_on_first_access_ms_with_compile": 1e3 * t_stats,
    }


def run(shared: dict, *, num_values: int, num_samples: int, num_steps: int, widths: tuple[int, ...]) -> dict:
    """P3's JSON entry; ``num_steps`` trains the generators P1 did not leave in ``shared``."""
    load_start = load()
    grid, S = np.logspace(np.log10(LOW), np.log10(HIGH), num_values), num_samples
    if "logistic" in shared:
        p1 = shared["logistic"]
        infer, result, test, grid, S = p1["infer"], p1["result"], p1["test"], p1["grid"], p1["num_samples"]
    else:
        infer, result, test = _trained(num_steps)
    times = measure(infer, result, grid, S, test)
    variants = {}
    for width in widths:
        inf_w, res_w, _ = _trained(num_steps, width)
        variants[f"width={width}"] = measure(inf_w, res_w, grid, S, test)
    figure = times["samples_and_curve_ms"]
    return {
        "figure": figure,
        "unit": "ms (samples + criterion curve, warm)",
        "goal": GOAL_MS,
        "met": bool(figure <= GOAL_MS),
        "device": device(),
        "times_ms": times,
        "narrower_generators": variants,
        "generator": repr(result.config.get("generator_options")),
        "setup": f"{len(grid)} λ × {S} draws",
        "load_average": [load_start, load()],
    }
