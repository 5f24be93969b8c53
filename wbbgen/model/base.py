"""The two model types wbbgen reduces everything to: :class:`Objective` (pure functions of flat
unconstrained parameters) and :class:`FunctionModel` (a model given as plain functions)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = ["Objective", "FunctionModel", "check_hyper_names"]


class Objective(NamedTuple):
    """A model reduced to pure functions of flat unconstrained parameters.

    Every function takes ``(theta, hyper, data)``: θ of shape ``(d,)``, ``hyper`` a dict of
    traced hyperparameter values and ``data`` the model's traced array arguments.

    Attributes:
        num_params: d, the length of θ.
        num_obs: n, the number of weighted observations (masked rows excluded).
        init_params: a starting θ (the prior medians), shape ``(d,)``.
        data: the model's array arguments, passed back to every function (traced).
        obs_sites: names of the per-observation terms (one ``log_likelihood`` entry each):
            observed sites and factors inside the observation plate.
        latent_shapes: constrained shape of each latent site.
        observed: observed values, for ``observed_data`` in InferenceData.
        constrain: ``(theta, hyper, data) -> {site: value}`` in the constrained space.
        log_likelihood: ``(theta, hyper, data) -> {obs_site: (n,)}``.
        log_prior: ``(theta, hyper, data) -> scalar``, constrained density, no Jacobian
            (prior-side factors included).
        log_prior_anchored: ``(theta, shift, hyper, data) -> scalar``, log q_λ(θ − shift).
        anchor: ``(rng_key, hyper, data) -> (shift, noise)``: a prior draw's offset from
            the prior mode, and the same offset standardised for the generator.
        signature: a description of the model used to match saved generators.
        deterministic: ``(theta, hyper, data) -> {site: value}``, the model's
            ``numpyro.deterministic`` sites; None for a model without any.
        deterministic_shapes: shape of each deterministic site.
        kept_rows: ``(n_rows,)`` booleans, the rows of the data passed that are observations
            (rows whose every observation is masked are dropped); None when all are kept.
        log_jacobian: ``(theta, hyper, data) -> scalar``, ``log |∂ constrained / ∂ θ|`` of the
            latent sites' transforms (the posterior density of θ needs it, the WBB objective
            does not); None: θ is the model's own parametrisation (a FunctionModel).
        expand: for a hierarchical model (:mod:`wbbgen.model.hierarchical`), whose θ holds the
            global parameters only and whose ``log_likelihood`` has one Laplace-marginal term per
            group: ``(rng_key, theta, hyper, data) -> joint θ``, the local latents drawn from
            their conditional given θ; None otherwise.
        joint: with ``expand``, the objective of all latent sites, which lays out the draws.
        local_layout: with ``expand``, where the local latents and the groups are.
    """

    num_params: int
    num_obs: int
    init_params: jax.Array
    data: Any
    obs_sites: tuple[str, ...]
    latent_shapes: dict[str, tuple[int, ...]]
    observed: dict[str, np.ndarray]
    constrain: Callable
    log_likelihood: Callable
    log_prior: Callable
    log_prior_anchored: Callable
    anchor: Callable
    signature: dict
    deterministic: Callable | None = None
    deterministic_shapes: dict = {}  # noqa: RUF012 - never mutated
    kept_rows: np.ndarray | None = None
    log_jacobian: Callable | None = None
    expand: Callable | None = None
    joint: Any = None
    local_layout: Any = None


class FunctionModel(NamedTuple):
    """A model given as plain functions instead of a NumPyro program.

    Args:
        log_likelihood: ``(theta, *data) -> (n,)`` per-observation log likelihoods.
        log_prior: ``(theta, **hyper) -> scalar`` log prior density of θ (θ unconstrained:
            transform inside these functions if a parameter is constrained).
        init_params: a pytree θ used as the starting point and to fix shapes.
        sample_prior: ``(rng_key, **hyper) -> theta``; needed by ``prior_weight="anchored"``.

    Example:
        >>> from wbbgen.model.base import FunctionModel
        >>> import jax, jax.numpy as jnp
        >>> fm = FunctionModel(lambda th, X, y: -0.5 * (y - X @ th["b"]) ** 2,
        ...                    lambda th, lam: -0.5 * lam * jnp.sum(th["b"] ** 2),
        ...                    {"b": jnp.zeros(3)},
        ...                    lambda key, lam: {"b": jax.random.normal(key, (3,)) / jnp.sqrt(lam)})
        >>> fm.log_likelihood(fm.init_params, jnp.ones((4, 3)), jnp.ones(4)).shape
        (4,)
    """

    log_likelihood: Callable
    log_prior: Callable
    init_params: Any
    sample_prior: Callable | None = None


def check_hyper_names(fn: Callable, hyper_names) -> None:
    """Raise unless every name in ``hyper_names`` is a keyword argument of ``fn`` (any name
    passes when ``fn`` takes ``**kwargs`` or has no inspectable signature)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for name in hyper_names:
        if name not in params or params[name].kind is inspect.Parameter.VAR_POSITIONAL:
            raise ValueError(
                f"hyperparameter {name!r} is not a keyword argument of the model "
                f"{getattr(fn, '__name__', fn)}{inspect.signature(fn)}; add `{name}=...` "
                "to the model's signature or rename the key in `hyper`."
            )
