"""An :class:`~wbbgen.model.Objective` from a :class:`~wbbgen.model.FunctionModel`.

θ is the flattened ``init_params`` (unconstrained: the functions transform it themselves);
the log likelihood gives the per-observation terms, the log prior the prior term, and the
anchored scheme anchors at a prior draw, a = θ₀ − mode(log π_λ), the mode found by Newton's
method from 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from wbbgen._data import argument_names, split_data, static_spec
from wbbgen.model.base import FunctionModel, Objective, check_hyper_names
from wbbgen.model.priors import newton_mode

__all__ = ["from_functions"]

#: Above this many parameters the prior's curvature is taken as diagonal (one Hessian-vector product).
DIAGONAL_ABOVE = 256


def _as_dict(tree):
    return tree if isinstance(tree, Mapping) else {"theta": tree}


def from_functions(fm: FunctionModel, args, kwargs, hyper_names, static_args=()) -> Objective:
    """The :class:`Objective` of a :class:`FunctionModel` with data ``args`` (positional only).

    Example:
        >>> from wbbgen.model import FunctionModel
        >>> from wbbgen.model.functions import from_functions
        >>> import jax, jax.numpy as jnp
        >>> fm = FunctionModel(lambda th, y: -0.5 * (y - th) ** 2, lambda th, lam: -0.5 * lam * th**2, jnp.zeros(()))
        >>> obj = from_functions(fm, (jnp.arange(3.0),), {}, ("lam",))
        >>> obj.num_params, obj.num_obs, obj.log_likelihood(jnp.full(1, 0.5), {}, obj.data)["obs"].tolist()
        (1, 3, [-0.125, -0.125, -1.125])
    """
    check_hyper_names(fm.log_prior, hyper_names)
    if kwargs:
        raise TypeError(f"FunctionModel takes data as positional arguments only; got keywords {sorted(kwargs)}.")
    names = argument_names(fm.log_likelihood, len(args), skip=1)
    dynamic, static = split_data(args, {}, static_spec(args, {}, static_args, names))
    init_flat, unravel = ravel_pytree(fm.init_params)

    def data_args(data):
        return eqx.combine(data, static)[0]

    def log_likelihood(theta, hyper, data):
        ll = jnp.asarray(fm.log_likelihood(unravel(theta), *data_args(data)))
        return {"obs": ll}

    n_shape = jax.eval_shape(lambda d: fm.log_likelihood(fm.init_params, *data_args(d)), dynamic).shape
    if len(n_shape) != 1:
        raise ValueError(f"`log_likelihood` must return one value per observation (shape (n,)), got shape {n_shape}.")

    def log_prior(theta, hyper, data):
        return jnp.asarray(fm.log_prior(unravel(theta), **hyper))

    def log_prior_anchored(theta, shift, hyper, data):
        return log_prior(theta - shift, hyper, data)

    def anchor(rng_key, hyper, data):
        if fm.sample_prior is None:
            raise ValueError(
                '`prior_weight="anchored"` needs FunctionModel(..., sample_prior=...) to draw '
                'anchors; pass one, or use prior_weight="random" or "fixed".'
            )
        u0 = ravel_pytree(fm.sample_prior(rng_key, **hyper))[0]
        mode, curv, grad = newton_mode(
            lambda v: log_prior(v, hyper, data), jnp.zeros_like(init_flat), init_flat.size > DIAGONAL_ABOVE
        )
        shift = u0 - mode
        inv_scale = jnp.where(curv < 0, jnp.sqrt(jnp.abs(curv)), jnp.abs(grad(u0)))
        return shift, shift * inv_scale

    def constrain(theta, hyper, data):
        return unravel(theta)

    return Objective(
        num_params=int(init_flat.size),
        num_obs=int(n_shape[0]),
        init_params=init_flat,
        data=dynamic,
        obs_sites=("obs",),
        latent_shapes={k: tuple(jnp.shape(v)) for k, v in _as_dict(fm.init_params).items()},
        observed={},
        constrain=constrain,
        log_likelihood=log_likelihood,
        log_prior=log_prior,
        log_prior_anchored=log_prior_anchored,
        anchor=anchor,
        signature={"model": "FunctionModel", "params": int(init_flat.size), "hyper": list(hyper_names)},
    )
