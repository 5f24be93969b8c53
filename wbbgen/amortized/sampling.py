r"""Draws from a trained generator on a hyperparameter grid, as :class:`~wbbgen.WBBSamples`.

The weights and prior draws are :func:`wbbgen.problem.draws`' with the caller's key (the
same as :func:`wbbgen.exact_wbb`'s), so generator and exact draws compare draw by draw; the
per-draw objective value and gradient norm are computed on first access (they cost more
than the draws).

**Semi-amortised refinement** (``refine=k``): each generated draw θ₀ = g_φ(w, z_λ, ξ) is the
start of at most k steps of the exact solver on its own weighted objective L(θ; w, ξ, λ):
damped, line-searched Newton (:func:`wbbgen.solver.newton`) up to ``NEWTON_MAX_DIM``
parameters, L-BFGS above, stopping early once the Newton decrement δ ≤ 10⁻³ posterior sd.
The draws are solved per λ (``lax.map`` over the grid, vmapped over draws), and record in
``stats`` the decrement δ left after refinement (its distance to the exact WBB optimiser, in
posterior sd, for Newton) and the steps taken.
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from wbbgen.exact import exact_method, samples_from_thetas, solve_batch
from wbbgen.problem import draws, generate, objective_stats
from wbbgen.samples import WBBSamples

__all__ = ["generator_samples"]

_generate = eqx.filter_jit(generate)  # one compilation per (K, S) shape; λ is traced


def generator_samples(result, rng_key, grids, values, num_samples: int, refine: int = 0, where=None) -> WBBSamples:
    """The generator of ``result`` (a :class:`~wbbgen.WBBRunResult`) at ``values (K, m)``,
    the flattened product of ``grids``, the draws at the values selected by ``where`` (a
    ``(K,)`` bool mask; None: all) refined by at most ``refine`` exact-solver steps (module
    docstring): ``samples[site]`` has shape ``(*grid lengths, num_samples, *site_shape)``.
    ``stats["decrement"]`` and ``stats["num_steps"]`` are NaN and 0 for unrefined draws."""
    problem = result.problem
    t0 = time.perf_counter()
    thetas = _generate(problem, result.domains, result.generator, rng_key, values, num_samples)
    refined = None
    where = np.ones(len(values), bool) if where is None else np.asarray(where, bool)
    if refine and where.any():
        idx = np.flatnonzero(where)
        sub, info = _refine(problem, thetas[idx], rng_key, values[idx], int(refine), exact_method(problem))
        thetas = thetas.at[idx].set(sub)
        decrement = np.full(thetas.shape[:2], np.nan)
        steps = np.zeros(thetas.shape[:2], int)
        decrement[idx], steps[idx] = np.asarray(info.decrement), np.asarray(info.num_steps)
        refined = decrement, steps
    jax.block_until_ready(thetas)
    attrs = {**result.config, "wall_time_s": time.perf_counter() - t0, "refine_steps": int(refine) if refined else 0}
    samples = samples_from_thetas(problem, thetas, values, grids, {}, attrs, jax.random.fold_in(rng_key, 0x10CA1))
    shape = tuple(len(g) for g in grids.values()) + (num_samples,)

    def stats():
        loss, grad_norm = _draw_stats(problem, thetas, rng_key, values)
        out = {"loss": np.asarray(loss).reshape(shape), "grad_norm": np.asarray(grad_norm).reshape(shape)}
        if refined is not None:
            out["decrement"] = refined[0].reshape(shape)
            out["num_steps"] = refined[1].reshape(shape)
        return out

    samples.stats = stats  # computed on first access
    return samples


@eqx.filter_jit
def _refine(problem, thetas, rng_key, values, max_steps: int, method: str):
    """At most ``max_steps`` exact-solver steps from each draw ``thetas (K, S, d)`` on its own
    objective (the draws of :func:`wbbgen.problem.draws` with this key): ``(thetas, info)``."""
    data = problem.objective.data
    v, pdraw = draws(problem, rng_key, values, thetas.shape[1], data)

    def at(args):
        theta_k, draw_k, value_k = args
        vals = jnp.broadcast_to(value_k, (theta_k.shape[0], value_k.shape[0]))
        return solve_batch(problem, theta_k, v, draw_k, vals, data, method=method, tol=1e-3, max_steps=max_steps)

    return jax.lax.map(at, (thetas, pdraw, values))


@eqx.filter_jit
def _draw_stats(problem, thetas, rng_key, values):
    """Objective value and gradient ∞-norm of each draw ``(K, S)`` (the draws of
    :func:`wbbgen.problem.generate` with this key)."""
    data = problem.objective.data
    v, pdraw = draws(problem, rng_key, values, thetas.shape[1], data)
    return jax.vmap(
        jax.vmap(lambda th, vv, dd, x: objective_stats(problem, th, vv, dd, x, data), in_axes=(0, 0, 0, None)),
        in_axes=(0, None, 0, 0),
    )(thetas, v, pdraw, values)
