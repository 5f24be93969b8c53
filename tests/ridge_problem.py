"""The small ridge problem shared by the AmortizedWBB test modules (not a test module)."""

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

N, P = 100, 5
HYPER = {"lam": dist.LogUniform(1e-2, 1e3)}


def ridge(X, y=None, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def make_data():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    X = jax.random.normal(k1, (N, P))
    y = X @ (0.5 * jax.random.normal(k2, (P,))) + jax.random.normal(k3, (N,))
    return X, y
