"""wbbgen.convergence: the ConvergenceWarning names the cause and the sites."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from wbbgen import ConvergenceWarning, exact_wbb


def logistic(X, y=None, *, lam=1.0):
    b0 = numpyro.sample("b0", dist.Normal(0.0, 1.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 1 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b0 + X @ beta), obs=y)


def separable():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    return X, (X[:, 0] > 0).astype(float)  # separated by the first column


def test_separation_is_named_as_running_off_in_its_site():
    """λ = 1e-12: β's prior sd is 10⁶, the weighted MLE is at infinity along β (separable data),
    so Newton's iterates run far beyond the draws that converge at λ = 1 (10 sds of them)."""
    X, y = separable()
    with pytest.warns(ConvergenceWarning, match=r"runs off in latent site 'beta'.*separation.*stronger prior"):
        s = exact_wbb(jax.random.key(0), logistic, X, y, hyper={"lam": [1.0, 1e-12]}, num_samples=20, max_steps=30,
                      progress_bar=False)  # fmt: skip
    assert s.stats["converged"][0].all() and not s.stats["converged"][1].all()


def test_a_step_cap_is_named_as_slow():
    X, y = separable()
    with pytest.warns(ConvergenceWarning, match=r"of the \d+ diagnosed: slow: .*raise `max_steps`"):
        exact_wbb(jax.random.key(0), logistic, X, y, hyper={"lam": [1.0]}, num_samples=10, max_steps=1, tol=1e-12,
                  progress_bar=False)  # fmt: skip


def test_above_max_dense_the_hessian_is_not_formed(monkeypatch):
    """A neural net's d × d Hessian per draw would not fit in memory (the digits MLP asked for
    72 GB): above MAX_DENSE coordinates only the cheap checks run, and the warning says so."""
    import wbbgen.convergence as conv

    monkeypatch.setattr(conv, "MAX_DENSE", 2)  # the model has 3 coordinates
    X, y = separable()
    with pytest.warns(ConvergenceWarning, match=r"slow or ill-conditioned: .*curvature was not checked"):
        exact_wbb(jax.random.key(0), logistic, X, y, hyper={"lam": [1.0]}, num_samples=10, max_steps=1, tol=1e-12,
                  progress_bar=False)  # fmt: skip


def trend(x, y=None, *, lam=1.0):
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 100.0 / jnp.sqrt(lam)))
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)


def test_an_uncentred_predictor_gets_the_centring_remedy():
    """Kilpisjärvi's model (posteriordb): temperature against the year, 1952-2013, not centred.
    On Kilpisjärvi's data H's smallest eigenvalue is 5e-13 of its largest (float64),
    no draw converges in 3 steps and none is there to measure α against: the warning must not
    call α (large, along the flattest direction) a bare runaway, whose only remedy is a stronger
    prior; it names the conditioning and its remedy, centring."""
    rng = np.random.default_rng(0)
    x = np.arange(1952.0, 2014.0)
    y = 10.0 + 0.02 * (x - 1980) + rng.normal(0.0, 1.0, x.size)
    with pytest.warns(
        ConvergenceWarning, match=r"(flat|runs off or flat) in latent site 'alpha'.*centre and scale"
    ) as rec:
        exact_wbb(jax.random.key(0), trend, x, y, hyper={"lam": [1.0]}, num_samples=10, max_steps=3,
                  progress_bar=False)  # fmt: skip
    assert not any("runs off in" in str(w.message) for w in rec)  # not a bare "runs off"
