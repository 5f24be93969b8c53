r"""How the prior enters each bootstrap draw: ``prior_weight="random" | "fixed" | "anchored"``.

Each draw of the weighted Bayesian bootstrap minimises

.. math::

    L(θ; w, ξ, λ) = \sum_i w_i\,(-\ell_i(θ, λ)) - R(θ; ξ, λ),

where ξ is the draw's prior randomness and R depends on the scheme:

* ``"random"`` (Newton, Polson & Xu 2021): ξ = w₀ ~ Exp(1), R = w₀ log π_λ(T(θ)).
* ``"fixed"`` (GMS; posterior bootstrap): R = log π_λ(T(θ)), no randomness.
* ``"anchored"`` (randomised prior): ξ = a = θ₀ − mode(q_λ), θ₀ ~ π_λ mapped to the
  unconstrained space, R = log q_λ(θ − a), q_λ the prior density on the unconstrained space.
  For a Gaussian prior N(m, Σ) the optimiser's covariance is A⁻¹(XᵀWX-part + Σ⁻¹)A⁻¹ to first
  order, which matches the posterior's A⁻¹ (A the posterior precision); the ``random`` and
  ``fixed`` schemes over- or under-disperse once the prior matters (the random scheme's
  penalty w₀Σ⁻¹ varies in scale, the fixed scheme's does not vary at all).

The generator sees ξ through ``noise``: log w₀ for ``random``, nothing for ``fixed`` and the
standardised anchor offset (≈ N(0, I) for Gaussian priors) for ``anchored``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from wbbgen.model import Objective

__all__ = ["PriorDraw", "PriorScheme", "prior_scheme", "weighted_loss", "SCHEMES"]

#: The names ``prior_weight=`` accepts; the first is the default.
SCHEMES = ("anchored", "random", "fixed")


class PriorDraw(NamedTuple):
    """The prior randomness of one bootstrap draw."""

    weight: jax.Array  # w₀ (1 for fixed and anchored)
    shift: jax.Array  # anchor offset a, (d,) (zeros unless anchored)
    noise: jax.Array  # what the generator sees, (noise_dim,)


class PriorScheme(NamedTuple):
    """``sample(rng_key, objective, hyper, data) -> PriorDraw`` and the penalty R."""

    name: str
    noise_dim: Callable[[int], int]
    sample: Callable[..., PriorDraw]
    log_prior: Callable[..., jax.Array]


def _random_sample(rng_key, objective, hyper, data):
    w0 = jax.random.exponential(rng_key, dtype=objective.init_params.dtype)
    zeros = jnp.zeros_like(objective.init_params)
    return PriorDraw(w0, zeros, jnp.log(w0)[None])


def _fixed_sample(rng_key, objective, hyper, data):
    one = jnp.ones((), objective.init_params.dtype)
    return PriorDraw(one, jnp.zeros_like(objective.init_params), jnp.zeros((0,), one.dtype))


def _anchored_sample(rng_key, objective, hyper, data):
    shift, noise = objective.anchor(rng_key, hyper, data)
    return PriorDraw(jnp.ones((), shift.dtype), shift, noise)


def _weighted_prior(objective, theta, draw, hyper, data):
    return draw.weight * objective.log_prior(theta, hyper, data)


def _anchored_prior(objective, theta, draw, hyper, data):
    return objective.log_prior_anchored(theta, draw.shift, hyper, data)


_SCHEMES = {
    "random": PriorScheme("random", lambda d: 1, _random_sample, _weighted_prior),
    "fixed": PriorScheme("fixed", lambda d: 0, _fixed_sample, _weighted_prior),
    "anchored": PriorScheme("anchored", lambda d: d, _anchored_sample, _anchored_prior),
}


def prior_scheme(name: str) -> PriorScheme:
    """Look up a scheme by name (``"anchored"``, ``"random"`` or ``"fixed"``)."""
    if name not in _SCHEMES:
        raise ValueError(f"`prior_weight={name!r}` is unknown; choose one of {list(SCHEMES)}.")
    return _SCHEMES[name]


def weighted_loss(objective: Objective, scheme: PriorScheme, theta, w, draw: PriorDraw, hyper, data):
    r"""L(θ; w, ξ, λ) = Σᵢ wᵢ(−ℓᵢ(θ, λ)) − R(θ; ξ, λ), summed over observed sites."""
    ll = objective.log_likelihood(theta, hyper, data)
    data_term = sum(jnp.dot(w, v) for v in ll.values())
    return -data_term - scheme.log_prior(objective, theta, draw, hyper, data)
