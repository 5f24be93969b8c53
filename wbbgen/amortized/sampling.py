"""Draws from a trained generator on a hyperparameter grid, as :class:`~wbbgen.WBBSamples`.

The weights and prior draws are :func:`wbbgen.problem.draws`' with the caller's key (the
same as :func:`wbbgen.exact_wbb`'s), so generator and exact draws compare draw by draw; the
per-draw objective value and gradient norm are computed on first access (they cost more
than the draws).
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import numpy as np

from wbbgen.exact import samples_from_thetas
from wbbgen.problem import draws, generate, objective_stats
from wbbgen.samples import WBBSamples

__all__ = ["generator_samples"]

_generate = eqx.filter_jit(generate)  # one compilation per (K, S) shape; λ is traced


def generator_samples(result, rng_key, grids, values, num_samples: int) -> WBBSamples:
    """The generator of ``result`` (a :class:`~wbbgen.WBBRunResult`) at ``values (K, m)``,
    the flattened product of ``grids``: ``samples[site]`` has shape
    ``(*grid lengths, num_samples, *site_shape)``."""
    problem = result.problem
    t0 = time.perf_counter()
    thetas = _generate(problem, result.domains, result.generator, rng_key, values, num_samples)
    jax.block_until_ready(thetas)
    attrs = {**result.config, "wall_time_s": time.perf_counter() - t0}
    samples = samples_from_thetas(problem, thetas, values, grids, {}, attrs)
    shape = tuple(len(g) for g in grids.values()) + (num_samples,)

    def stats():
        loss, grad_norm = _draw_stats(problem, thetas, rng_key, values)
        return {"loss": np.asarray(loss).reshape(shape), "grad_norm": np.asarray(grad_norm).reshape(shape)}

    samples.stats = stats  # computed on first access
    return samples


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
