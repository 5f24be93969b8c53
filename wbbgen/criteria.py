"""Predictive criteria of WBB draws on new data, per hyperparameter value and per draw.

:func:`log_predictive` evaluates the model's own likelihood, ``log p(ỹᵢ | θ, λ)``, for every
draw θ at every grid value λ: an array ``(K₁, …, K_m, S, ñ)``. From it,

* the expected log predictive density per draw, mean over new observations, gives a
  criterion with its spread over w (``(K, S)``: mean and sd over the S draws);
* the log pointwise predictive density of the posterior predictive,
  lpd(λ) = Σᵢ log (1/S) Σₛ p(ỹᵢ | θₛ, λ), is :func:`lppd`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.infer.util import log_likelihood

from wbbgen.samples import WBBSamples

__all__ = ["log_predictive", "mean_log_predictive", "lppd"]


def log_predictive(model, samples: WBBSamples, *args, **kwargs) -> np.ndarray:
    """``log p(ỹᵢ | θ, λ)`` for new data ``model(*args, **kwargs)``, summed over observed
    sites and any non-observation dims: shape ``(K₁, …, K_m, S, ñ)``.

    Example:
        >>> ll = log_predictive(model, samples, X_test, y_test)      # (len(grid), S, ñ)
        >>> log_loss = -ll.mean(-1)                                   # per λ and draw
    """
    hyper_shape, S, names, post, mesh = _flatten(samples)
    out = _log_predictive(model, names, post, mesh, args, kwargs, False)
    return np.asarray(out).reshape(*hyper_shape, S, -1)


def mean_log_predictive(model, samples: WBBSamples, *args, **kwargs) -> np.ndarray:
    """``(1/ñ) Σᵢ log p(ỹᵢ | θ, λ)`` per draw, ``(K₁, …, K_m, S)``: :func:`log_predictive`
    averaged over the new observations on the device (only ``K × S`` numbers reach the host).

    Example:
        >>> mean_log_predictive(model, samples, X_val, y_val).mean(-1)   # the validation curve
    """
    hyper_shape, S, names, post, mesh = _flatten(samples)
    return np.asarray(_log_predictive(model, names, post, mesh, args, kwargs, True)).reshape(*hyper_shape, S)


def _flatten(samples: WBBSamples):
    """The grid flattened to K values: ``(hyper_shape, S, names, {site: (K, S, …)}, mesh (K, m))``,
    kept on the device."""
    names = tuple(samples.hyper)
    hyper_shape = tuple(len(g) for g in samples.hyper.values())
    K = int(np.prod(hyper_shape))
    mesh = np.stack(np.meshgrid(*samples.hyper.values(), indexing="ij"), -1).reshape(K, len(names))
    S = samples.num_samples
    post = {k: jnp.reshape(jnp.asarray(v), (K, S, *jnp.shape(v)[len(names) + 1 :])) for k, v in samples.items()}
    dtype = next(iter(post.values())).dtype
    return hyper_shape, S, names, post, jnp.asarray(mesh, dtype)


@eqx.filter_jit
def _log_predictive(model, names, post, mesh, args, kwargs, mean: bool):
    """Compiled once per model, shapes, names and ``mean`` (the model is static, λ and data
    traced); ``mean`` averages over the new observations."""

    def at(post_k, values_k):
        hyper = {n: values_k[i] for i, n in enumerate(names)}
        ll = log_likelihood(model, post_k, *args, batch_ndims=1, **kwargs, **hyper)
        S = next(iter(post_k.values())).shape[0]
        out = sum(x.reshape(S, x.shape[1], -1).sum(-1) for x in ll.values())
        return out.mean(-1) if mean else out

    return jax.vmap(at)(post, mesh)


def lppd(log_lik: np.ndarray) -> np.ndarray:
    """Log pointwise predictive density Σᵢ log mean_s p(ỹᵢ | θₛ) from ``(…, S, ñ)``."""
    S = log_lik.shape[-2]
    return np.asarray(jnp.sum(logsumexp(jnp.asarray(log_lik), axis=-2) - jnp.log(S), axis=-1))
