r"""Pilot exact solves and the generator's output scale.

A generator writes θ = c(z) + s(z) ⊙ f (:class:`~wbbgen.generator.OutputScale`): the pilot
solves exact WBB at P hyperparameter values spread over the training support, and
:func:`fit_output_scale` fits c and log s to the draws' means and log sds by least squares
(polynomials in z₀, linear in the other hyperparameters), so that f works at O(1) scale.

Example:
    >>> import numpy as np
    >>> from wbbgen.training import fit_output_scale
    >>> thetas = np.random.default_rng(0).normal(size=(6, 50, 2))
    >>> z = np.linspace(-1, 1, 6)[:, None]
    >>> scale = fit_output_scale(thetas, z)
    >>> scale.location(np.zeros(1)).shape
    (2,)
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from wbbgen.cost import estimate_cost, format_cost
from wbbgen.exact import draws_per_solve, exact_method, path_step, resolve_method, solve_path_chunked
from wbbgen.generator import OutputScale
from wbbgen.hyper import encode, spread_values
from wbbgen.problem import Problem

__all__ = ["PilotResult", "pilot", "fit_output_scale", "find_output_scale", "CostProbe"]

logger = logging.getLogger("wbbgen")


class PilotResult(NamedTuple):
    """The fitted output scale; the pilot's wall time (the timed extra step excluded); the
    most iterations any pilot solve took; and, when timed, one warm λ step of the exact path
    (``exact_step_s`` seconds for ``exact_step_draws`` draws; None otherwise)."""

    output_scale: OutputScale
    seconds: float
    max_solver_steps: int
    num_values: int
    exact_step_s: float | None = None
    exact_step_draws: int | None = None


def pilot(
    problem: Problem,
    domains,
    rng_key,
    *,
    num_values: int,
    num_samples: int,
    max_steps: int | None = None,
    time_step: bool = True,
) -> PilotResult:
    """Exact solves at ``max(num_values, 2m + 2)`` values spread over the support, then the
    output scale fitted to them.

    ``max_steps`` caps each solve (a capped solve still gives a usable standardisation);
    ``time_step`` times one more warm λ step of the compiled path for the cost model
    (:mod:`wbbgen.cost`). Where no draw of a value converged (large models whose solves stop
    at the cap), its finite draws are used.
    """
    t0 = time.perf_counter()
    P = max(num_values, 2 * len(domains) + 2)
    k_z, k_solve = jax.random.split(rng_key)
    values = spread_values(domains, P, k_z)
    method = exact_method(problem)
    chunk = draws_per_solve(problem)
    thetas, info, v, pdraw = solve_path_chunked(
        problem, k_solve, values, num_samples, max_draws=chunk, method=method, max_steps=max_steps
    )
    jax.block_until_ready(thetas)
    seconds = time.perf_counter() - t0
    step_s = step_draws = None
    if time_step:
        k = min(chunk, num_samples)
        sub = jax.tree_util.tree_map(lambda x: x[:, :k], pdraw)
        step_s = _time_path_step(problem, thetas[:, :k], v[:k], sub, values, method, max_steps)
        step_draws = k
    thetas = np.asarray(thetas)
    finite = np.all(np.isfinite(thetas), -1)
    ok = np.asarray(info.converged) & finite
    ok = np.where(ok.any(1, keepdims=True), ok, finite)
    if not ok.any(1).all():
        raise FloatingPointError(
            "every pilot exact solve gave non-finite parameters at some hyperparameter values; check that the "
            "model's log density is finite over the whole `hyper` range."
        )
    thetas = np.where(ok[..., None], thetas, np.nan)
    thetas = np.where(np.isnan(thetas), np.nanmean(thetas, axis=1, keepdims=True), thetas)
    scale = fit_output_scale(thetas, np.asarray(encode(domains, jnp.asarray(values))))
    return PilotResult(scale, seconds, int(np.max(info.num_steps)), P, step_s, step_draws)


def _time_path_step(problem: Problem, thetas, v, pdraw, values, method: str, max_steps) -> float:
    """Wall time of one warm λ step of the exact path (compiled by the pilot): the draws at
    the middle pilot value, warm-started from its neighbour's solutions."""
    k = max(1, len(values) // 2)
    vals = jnp.asarray(values, thetas.dtype)
    draw_k = jax.tree_util.tree_map(lambda x: x[k], pdraw)
    t0 = time.perf_counter()
    out = path_step(problem, thetas[k - 1], v, draw_k, vals[k], resolve_method(problem, method), 1e-3, max_steps)
    jax.block_until_ready(out)
    return time.perf_counter() - t0


def fit_output_scale(thetas, z, degree: int = 5, ridge: float = 1e-6) -> OutputScale:
    """Centre and log spread of draws ``thetas (P, S, d)`` at encoded points ``z (P, m)``:
    least-squares polynomials of ``degree`` (at most P − m − 1, so the fit keeps residual
    degrees of freedom) in z₀ and linear terms in the other hyperparameters."""
    thetas, z = np.asarray(thetas, np.float64), np.asarray(z, np.float64)
    mean = thetas.mean(1)
    logsd = np.log(np.maximum(thetas.std(1), 1e-6 * (1.0 + np.abs(mean))))
    P, m = z.shape
    degree = int(max(0, min(degree, P - m - 1, np.unique(z[:, 0]).size - 1)))
    F = np.concatenate([np.clip(z[:, :1], -1, 1) ** np.arange(degree + 1), z[:, 1:]], axis=1)
    gram = F.T @ F + ridge * np.eye(F.shape[1])
    coef_c = np.linalg.solve(gram, F.T @ mean)
    coef_a = np.linalg.solve(gram, F.T @ logsd)
    k = degree + 1
    dtype = jnp.result_type(float)
    return OutputScale(*(jnp.asarray(x, dtype) for x in (coef_c[:k], coef_a[:k], coef_c[k:].T, coef_a[k:].T)))


def find_output_scale(generator) -> OutputScale | None:
    """The :class:`~wbbgen.generator.OutputScale` inside a generator (None if it has none)."""
    leaves = jax.tree_util.tree_leaves(generator, is_leaf=lambda x: isinstance(x, OutputScale))
    return next((x for x in leaves if isinstance(x, OutputScale)), None)


class CostProbe:
    """Loop callback: after the first chunk, the cost model (:func:`wbbgen.cost.estimate_cost`)
    of exact WBB vs amortisation for ``plan``, from the pilot's timed exact step and the
    chunk's step time; logged and, with ``show``, printed above the progress bar. Inactive
    (``estimate`` stays None) without a timed pilot."""

    def __init__(self, pilot: PilotResult | None, plan, batch_size: int, num_steps: int, fidelity_samples: int, show):
        self.pilot, self.plan, self.batch_size = pilot, plan, batch_size
        self.num_steps, self.fidelity_samples, self.show = num_steps, fidelity_samples, show
        self.estimate = None
        self.done = pilot is None or pilot.exact_step_s is None

    def __call__(self, state, report) -> bool:
        if self.done:
            return False
        self.done = True
        p = self.pilot
        per_draw_s = p.exact_step_s / p.exact_step_draws
        self.estimate = estimate_cost(
            plan=self.plan,
            exact_step_s=p.exact_step_s,
            exact_step_draws=p.exact_step_draws,
            pilot_s=p.seconds,
            pilot_values=p.num_values,
            train_step_s=report.seconds / (report.stop - report.start),
            batch_size=self.batch_size,
            train_compile_s=report.compile_s,
            num_steps=self.num_steps,
            fidelity_s=5 * self.fidelity_samples * per_draw_s,
        )
        logger.info(format_cost(self.estimate))
        if self.show:
            tqdm.write(format_cost(self.estimate))
        return False
