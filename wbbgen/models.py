r"""Reference NumPyro models used by the demo, the benchmarks, the tuning comparison and the
notebooks. Each takes its hyperparameter as a keyword (traced by wbbgen) and puts its
observations in a ``plate`` named ``"data"``.

* :func:`ridge` -- y ~ N(Xβ, σ²), β ~ N(0, 1/λ) (λ a precision: penalty λ/2 ‖β‖² in σ = 1 units).
* :func:`logistic` -- Bernoulli(logits = b₀ + Xβ), β ~ N(0, 1/λ).
* :func:`softmax_regression` -- Categorical(logits = XW + b), W ~ N(0, 1/λ); ``lam`` a scalar,
  a ``(K,)`` vector of per-class decays or a ``(p, K)`` array of per-weight decays.
* :func:`mlp_classifier` -- a one-hidden-layer tanh network, weights ~ N(0, 1/λ); ``lam`` a
  scalar or ``(2,)`` (one decay per layer).

The penalty of a Gaussian prior with precision λ is λ/2 ‖W‖²: the papers' ``exp(u)·‖W‖²`` is
``lam = 2·exp(u)``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from numpyro.infer.util import log_density
    >>> from wbbgen.models import ridge
    >>> X, y = jnp.ones((4, 2)), jnp.zeros(4)
    >>> params = {"beta": jnp.zeros(2)}
    >>> bool(jnp.isfinite(log_density(ridge, (X, y), {"lam": 2.0}, params)[0]))
    True

With wbbgen the hyperparameter gets a domain instead of a value::

    AmortizedWBB(wbbgen.models.logistic, hyper={"lam": dist.LogUniform(1e-2, 1e3)})
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

__all__ = ["ridge", "logistic", "softmax_regression", "mlp_classifier", "softmax_logits", "mlp_logits"]


def _gauss(name, shape, lam):
    return numpyro.sample(name, dist.Normal(0.0, jax.lax.rsqrt(jnp.asarray(lam))).expand(shape).to_event(len(shape)))


def ridge(X, y=None, *, lam=1.0, sigma=1.0):
    """Bayesian ridge regression with known noise scale ``sigma``."""
    beta = _gauss("beta", (X.shape[1],), lam)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def logistic(X, y=None, *, lam=1.0):
    """L2 logistic regression; the intercept has a fixed N(0, 10²) prior."""
    beta = _gauss("beta", (X.shape[1],), lam)
    b0 = numpyro.sample("b0", dist.Normal(0.0, 10.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b0 + X @ beta), obs=y)


def softmax_logits(params, X):
    """Logits ``(n, K)`` of :func:`softmax_regression` for constrained ``params``."""
    return X @ params["W"] + params["b"]


def softmax_regression(X, y=None, *, lam=1.0, num_classes=10):
    """Multinomial logistic regression with decay(s) ``lam`` on W (biases N(0, 10²))."""
    p = X.shape[1]
    lam = jnp.broadcast_to(jnp.asarray(lam), (p, num_classes))
    W = _gauss("W", (p, num_classes), lam)
    b = numpyro.sample("b", dist.Normal(0.0, 10.0).expand([num_classes]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Categorical(logits=softmax_logits({"W": W, "b": b}, X)), obs=y)


def mlp_logits(params, X):
    """Logits ``(n, K)`` of :func:`mlp_classifier` for constrained ``params``."""
    h = jnp.tanh(X @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def mlp_classifier(X, y=None, *, lam=1.0, hidden=100, num_classes=10):
    """p-``hidden``-K tanh network; ``lam`` a scalar decay or one per layer ``(2,)``."""
    lam = jnp.broadcast_to(jnp.asarray(lam), (2,))
    p = X.shape[1]
    W1 = _gauss("W1", (p, hidden), lam[0])
    b1 = numpyro.sample("b1", dist.Normal(0.0, 10.0).expand([hidden]).to_event(1))
    W2 = _gauss("W2", (hidden, num_classes), lam[1])
    b2 = numpyro.sample("b2", dist.Normal(0.0, 10.0).expand([num_classes]).to_event(1))
    logits = mlp_logits({"W1": W1, "b1": b1, "W2": W2, "b2": b2}, X)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Categorical(logits=logits), obs=y)
