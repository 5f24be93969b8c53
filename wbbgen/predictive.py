r"""Predictive densities of WBB draws on new data, per hyperparameter value and per draw.

:func:`log_predictive` evaluates the model's own likelihood, log p(ỹᵢ | θ, λ), for every
draw θ at every grid value λ: an array ``(K₁, …, K_m, S, ñ)``. From it,

* the mean over the ñ new observations, per draw, is a criterion with its spread over the
  bootstrap weights w (:func:`mean_log_predictive`, ``(K₁, …, K_m, S)``);
* the log pointwise predictive density of the posterior predictive,
  lpd(λ) = Σᵢ log (1/S) Σₛ p(ỹᵢ | θₛ, λ), is :func:`lppd`.

The new data are passed as the model takes them, observed values included: the model
``model(X, y=None, *, lam)`` scored on ``(X_val, y_val)`` is ``log_predictive(model,
samples, X_val, y_val)``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro import handlers
from numpyro.infer.util import log_likelihood

from wbbgen.model.sites import held_sites
from wbbgen.samples import WBBSamples

__all__ = ["log_predictive", "mean_log_predictive", "lppd"]


def log_predictive(model, samples: WBBSamples, *args, **kwargs) -> np.ndarray:
    """log p(ỹᵢ | θ, λ) of new data ``model(*args, **kwargs)`` for every draw and grid value.

    Summed over the observed sites and over any dims of a site beyond the observation axis.

    Args:
        model: the NumPyro model the draws are of.
        samples: draws over a grid (:func:`wbbgen.exact_wbb`, :meth:`wbbgen.AmortizedWBB.get_samples`).
        *args, **kwargs: the new data, observed values included, as the model takes them.

    Returns:
        ``(K₁, …, K_m, S, ñ)``: one value per grid point, draw and new observation.

    Raises:
        ValueError: when the model, called with the new data, samples a site that is neither
            observed nor a latent site of the draws (typically: the observed values were not passed).

    Example:
        >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
        >>> from wbbgen.predictive import log_predictive
        >>> from wbbgen.samples import WBBSamples
        >>> def model(x, y=None, *, lam=1.0):
        ...     b = numpyro.sample("b", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)))
        ...     with numpyro.plate("data", x.shape[0]):
        ...         numpyro.sample("y", dist.Normal(b * x, 1.0), obs=y)
        >>> samples = WBBSamples({"b": np.zeros((2, 4))}, {"lam": np.array([0.1, 1.0])}, {}, {})
        >>> ll = log_predictive(model, samples, np.ones(3), np.zeros(3))
        >>> ll.shape, round(float(ll[0, 0, 0]), 4)  # b = 0: log N(0 | 0, 1) = -log √(2π)
        ((2, 4, 3), -0.9189)
    """
    hyper_shape, S, names, post, mesh = _flatten(samples)
    out = _log_predictive(model, names, post, mesh, args, kwargs, False)
    return np.asarray(out).reshape(*hyper_shape, S, -1)


def mean_log_predictive(model, samples: WBBSamples, *args, **kwargs) -> np.ndarray:
    """(1/ñ) Σᵢ log p(ỹᵢ | θ, λ) per draw: :func:`log_predictive` averaged over the new observations.

    The mean is taken on the device, so only K × S numbers reach the host.

    Returns:
        ``(K₁, …, K_m, S)``.

    Example:
        >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
        >>> from wbbgen.predictive import mean_log_predictive
        >>> from wbbgen.samples import WBBSamples
        >>> def model(x, y=None, *, lam=1.0):
        ...     b = numpyro.sample("b", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)))
        ...     with numpyro.plate("data", x.shape[0]):
        ...         numpyro.sample("y", dist.Normal(b * x, 1.0), obs=y)
        >>> samples = WBBSamples({"b": np.ones((1, 2))}, {"lam": np.array([1.0])}, {}, {})
        >>> round(float(mean_log_predictive(model, samples, np.ones(2), np.zeros(2))[0, 0]), 4)
        -1.4189
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


def _check_observed(model, sites, args, kwargs, hyper) -> None:
    """Refuse new data with which the model samples a site that has no value: neither
    observed nor among the draws' latent ``sites``. Runs while tracing (once per compilation)."""
    tr = handlers.trace(handlers.seed(model, rng_seed=0)).get_trace(*args, **kwargs, **hyper)
    held = sorted(held_sites(tr))
    if held:
        raise ValueError(
            f"with these data the model masks observations (`obs_mask=`, latent {', '.join(map(repr, held))}): "
            "a predictive criterion scores every new observation it is given. Pass only the observed "
            "validation rows (e.g. heldout_log_density(X_val[m], y_val[m]) with obs_mask=None)."
        )
    free = [
        name for name, site in tr.items() if site["type"] == "sample" and not site["is_observed"] and name not in sites
    ]
    if free:
        shown = ", ".join(repr(n) for n in free)
        raise ValueError(
            f"with these data the model samples {shown}, which {'is' if len(free) == 1 else 'are'} neither "
            f"observed nor a latent site of the draws ({sorted(sites)}): the observed validation data were not "
            "passed. Pass them as the model takes its observations, e.g. heldout_log_density(X_val, y_val) or "
            "heldout_log_density(X_val, y=y_val) (log_predictive(model, samples, X_val, y_val) likewise)."
        )


@eqx.filter_jit
def _log_predictive(model, names, post, mesh, args, kwargs, mean: bool):
    """Compiled once per model, shapes, names and ``mean`` (the model is static, λ and data
    traced); ``mean`` averages over the new observations."""
    _check_observed(model, set(post), args, kwargs, {n: mesh[0, i] for i, n in enumerate(names)})

    def at(post_k, values_k):
        hyper = {n: values_k[i] for i, n in enumerate(names)}
        ll = log_likelihood(model, post_k, *args, batch_ndims=1, **kwargs, **hyper)
        S = next(iter(post_k.values())).shape[0]
        out = sum(x.reshape(S, x.shape[1], -1).sum(-1) for x in ll.values())
        return out.mean(-1) if mean else out

    return jax.vmap(at)(post, mesh)


def lppd(log_lik: np.ndarray) -> np.ndarray:
    """Log pointwise predictive density lpd = Σᵢ log (1/S) Σₛ p(ỹᵢ | θₛ) of per-draw log densities.

    Args:
        log_lik: ``(…, S, ñ)`` log p(ỹᵢ | θₛ), e.g. from :func:`log_predictive`.

    Returns:
        ``(…)``: one lpd per leading index (per grid point).

    Example:
        >>> import numpy as np
        >>> from wbbgen.predictive import lppd
        >>> round(float(lppd(np.log(np.array([[0.2, 0.5], [0.4, 0.5]])))), 4)  # log 0.3 + log 0.5
        -1.8971
    """
    S = log_lik.shape[-2]
    return np.asarray(jnp.sum(logsumexp(jnp.asarray(log_lik), axis=-2) - jnp.log(S), axis=-1))
