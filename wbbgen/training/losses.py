r"""Training losses as values: ``criterion(...)`` and ``supervised(...)`` build a :class:`Loss`.

A :class:`Loss` says which draws a step makes (``batch``) and what it minimises over them
(``value``); the trainer (:func:`wbbgen.training.trainer`) is the same for every loss.

**Criterion** (the weighted objective itself):

.. math::

    \mathcal{L}(φ) = \mathbb{E}_{λ \sim p(λ),\, w,\, ξ}\Big[\tfrac{1}{n} L\big(g_φ(w, z_λ, ξ);\ w, ξ, λ\big)\Big],

minimised, for a flexible enough g, by the exact WBB optimiser at every (w, ξ, λ). With
``data_batch_size=B`` each draw's L is the unbiased estimate from B rows drawn with
replacement (:mod:`wbbgen.minibatch`), so a step costs O(B), not O(n).

**Supervised** (regression onto exact optimisers θ*, in the generator's standardised
units): :math:`\mathcal{L}(φ) = \mathbb{E}\,\|(g_φ − θ^*) / s(z)\|^2`.

Example:
    >>> import jax, numpy as np, numpyro.distributions as dist
    >>> from wbbgen import models
    >>> from wbbgen.hyper import make_domains
    >>> from wbbgen.problem import make_problem
    >>> from wbbgen.training import criterion
    >>> X = np.ones((5, 2)); y = np.zeros(5)
    >>> problem = make_problem(models.ridge, (X, y), {}, ("lam",), "exponential", "anchored")
    >>> loss = criterion(problem, make_domains({"lam": dist.LogUniform(0.1, 10.0)}), batch_size=4)
    >>> loss.batch(jax.random.key(0), problem.objective.data).v.shape
    (4, 5)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen import sharding
from wbbgen.exact import solve_batch
from wbbgen.minibatch import minibatch_loss, row_mask, sample_rows, take_rows
from wbbgen.problem import Problem, loss
from wbbgen.training.state import Batch, sample_batch

__all__ = ["Loss", "criterion", "supervised", "supervised_targets", "DATA_GROUPS"]

#: Groups of draws with rows of their own in a minibatched criterion step.
DATA_GROUPS = 16


class Loss(NamedTuple):
    """A training loss: ``batch(rng_key, data) -> Batch`` (the step's draws) and
    ``value(generator, batch, rng_key, data) -> scalar`` (what the step minimises)."""

    name: str
    batch: Callable
    value: Callable


def criterion(
    problem: Problem,
    domains,
    *,
    batch_size: int,
    data_batch_size: int | None = None,
    data_groups: int | None = None,
    mesh=None,
) -> Loss:
    """The criterion loss: the mean over ``batch_size`` draws of L/n.

    ``data_batch_size``: rows per step of the minibatched criterion (None: all n). The
    batch's draws form ``data_groups`` groups (default gcd(batch_size, 16)), each with rows
    of its own, so the minibatch noise common to a group's draws averages over groups in the
    gradient. ``mesh`` splits the draws (and rows) over devices (:mod:`wbbgen.sharding`).
    """
    n = problem.objective.num_obs
    if data_groups is None:
        data_groups = math.gcd(batch_size, DATA_GROUPS)
    if batch_size % data_groups:
        raise ValueError(f"`data_groups={data_groups}` must divide `batch_size={batch_size}`.")
    mask = row_mask(problem) if data_batch_size is not None else None

    def batch(rng_key, data):
        return sharding.constrain_leading(
            sample_batch(problem, domains, rng_key, batch_size, data), mesh, sharding.DRAWS
        )

    def value(generator, batch: Batch, rng_key, data):
        thetas = jax.vmap(generator)(batch.v, batch.z, batch.draw.noise)
        if data_batch_size is None:
            per_draw = jax.vmap(lambda th, v, d, x: loss(problem, th, v, d, x, data))(
                thetas, batch.v, batch.draw, batch.values
            )
            return jnp.mean(per_draw) / n
        # A key of its own (fold_in), so that full-data training draws what it always drew.
        idx = sample_rows(jax.random.fold_in(rng_key, 1), n, data_groups * data_batch_size)
        idx = sharding.constrain_leading(idx.reshape(data_groups, data_batch_size), mesh, sharding.DATA, dim=1)
        rows = sharding.constrain_leading(take_rows(data, mask, idx), mesh, sharding.DATA, mask, dim=1)

        def group(th, v, draw, values, idx_g, data_g):
            fn = lambda t, vv, d, x: minibatch_loss(problem, t, vv, d, x, data, data_g, idx_g)  # noqa: E731
            return jax.vmap(fn)(th, v, draw, values)

        split = lambda x: x.reshape(data_groups, x.shape[0] // data_groups, *x.shape[1:])  # noqa: E731
        per_draw = jax.vmap(group, in_axes=(0, 0, 0, 0, 0, jax.tree_util.tree_map(lambda m: 0 if m else None, mask)))(
            split(thetas), split(batch.v), jax.tree_util.tree_map(split, batch.draw), split(batch.values), idx, rows
        )
        return jnp.mean(per_draw) / n

    return Loss("criterion", batch, value)


def supervised(targets: Batch, *, batch_size: int, mesh=None) -> Loss:
    """The supervised loss: mean squared error to exact optimisers ``targets.target`` in the
    generator's standardised units, over ``batch_size`` targets drawn with replacement."""
    num_targets = targets.v.shape[0]

    def batch(rng_key, data):
        idx = jax.random.randint(rng_key, (batch_size,), 0, num_targets)
        return sharding.constrain_leading(jax.tree_util.tree_map(lambda x: x[idx], targets), mesh, sharding.DRAWS)

    def value(generator, batch: Batch, rng_key, data):
        thetas = jax.vmap(generator)(batch.v, batch.z, batch.draw.noise)
        scale = jax.vmap(generator.output_scale.spread)(jax.lax.stop_gradient(batch.z))
        return jnp.mean(jnp.sum(((thetas - batch.target) / scale) ** 2, axis=-1))

    return Loss("supervised", batch, value)


def supervised_targets(problem: Problem, domains, output_scale, rng_key, num_targets: int) -> Batch:
    """Exact optimisers of ``num_targets`` random (w, λ, ξ) draws, started at the output
    scale's centre; the unconverged ones are dropped (an error below 90 % converged)."""
    data = problem.objective.data

    @jax.jit
    def make(rng_key, data):
        batch = sample_batch(problem, domains, rng_key, num_targets, data)
        theta0 = jax.vmap(output_scale.location)(batch.z)
        theta, info = solve_batch(problem, theta0, batch.v, batch.draw, batch.values, data)
        return batch._replace(target=theta), info.converged

    batch, ok = make(rng_key, data)
    ok = np.asarray(ok)
    if ok.mean() < 0.9:
        raise FloatingPointError(
            f"only {ok.mean():.0%} of the supervised targets converged; use mode='criterion' or narrow "
            "the `hyper` range."
        )
    idx = np.flatnonzero(ok)
    return jax.tree_util.tree_map(lambda x: x[idx], batch)
