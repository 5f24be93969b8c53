"""A WBB problem: objective + weight scheme + prior scheme, and how draws are made.

Draws are made by one function, :func:`draws`, for the exact solver and the generator alike:
with the same ``rng_key`` both see identical weights and prior randomness, so their outputs
can be compared draw by draw. Draw j uses the same weights and the same prior key at every
hyperparameter value (common random numbers), so each draw traces a smooth path in λ and
the exact solver can warm-start along it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from wbbgen.objective import Objective
from wbbgen.prior import PriorDraw, PriorScheme, weighted_loss
from wbbgen.weights import WeightScheme

__all__ = ["Problem", "draws", "hyper_dict"]


class Problem(NamedTuple):
    """Everything that defines the weighted objective of one draw."""

    objective: Objective
    weights: WeightScheme
    prior: PriorScheme
    hyper_names: tuple[str, ...]


def hyper_dict(problem: Problem, values: jax.Array) -> dict[str, jax.Array]:
    """``(m,)`` hyperparameter values -> ``{name: scalar}`` (the model's keywords)."""
    return {name: values[i] for i, name in enumerate(problem.hyper_names)}


def prior_draw(problem: Problem, rng_key, values, data) -> PriorDraw:
    return problem.prior.sample(rng_key, problem.objective, hyper_dict(problem, values), data)


def loss(problem: Problem, theta, v, draw: PriorDraw, values, data):
    """L(θ; w, ξ, λ) for one draw, ``v`` the scheme's (unexpanded) weights."""
    w = problem.weights.expand(v)
    return weighted_loss(problem.objective, problem.prior, theta, w, draw, hyper_dict(problem, values), data)


def draws(problem: Problem, rng_key, values, num_samples: int, data):
    """Weights ``(S, num_weights)`` shared across λ and prior draws batched ``(K, S, ...)``.

    Args:
        values: ``(K, m)`` hyperparameter values.
    """
    k_w, k_p = jax.random.split(rng_key)
    v = problem.weights.sample(k_w, (num_samples,))
    keys = jax.random.split(k_p, num_samples)
    per_value = jax.vmap(lambda k, x: prior_draw(problem, k, x, data), in_axes=(0, None))
    return v, jax.vmap(lambda x: per_value(keys, x))(values)


def objective_stats(problem: Problem, theta, v, draw, values, data):
    """Value and gradient ∞-norm of the weighted objective at θ (per-draw sample_stats)."""
    f, g = jax.value_and_grad(loss, argnums=1)(problem, theta, v, draw, values, data)
    return f, jnp.max(jnp.abs(g))


def make_problem(model, args, kwargs, hyper_names, weights, prior_weight, obs_plate=None) -> Problem:
    """Build the :class:`Problem` for ``model(*args, **kwargs)`` (validates every input)."""
    from wbbgen.objective import build_objective
    from wbbgen.prior import prior_scheme
    from wbbgen.weights import resolve_weights

    scheme = prior_scheme(prior_weight)
    objective = build_objective(model, args, kwargs, hyper_names, obs_plate)
    return Problem(objective, resolve_weights(weights, objective.num_obs), scheme, tuple(hyper_names))
