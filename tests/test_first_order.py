"""wbbgen.first_order: the MAP path plus one shared-Hessian Newton step per draw.

Ridge with a Gaussian prior is quadratic, so one Newton step with the draw's own Hessian from the
first-order draw is the exact WBB optimiser (the first-order draw alone uses the unweighted
Hessian: its error is O((w − 1)²) relative to the posterior sd). On logistic regression the
objective is not quadratic; a few damped Newton steps per draw (``refine``) bring every draw
to its exact optimiser (decrement ≤ 10⁻³ posterior sd).
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from wbbgen import exact_wbb, first_order_wbb, models


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    return X, X @ np.array([1.0, -0.5, 0.0]) + rng.normal(size=60)


def test_ridge_one_refinement_step_is_exact_wbb(data):
    X, y = data
    grid = {"lam": [0.1, 10.0]}
    fo = first_order_wbb(jax.random.key(0), models.ridge, X, y, hyper=grid, num_samples=50)
    one = first_order_wbb(jax.random.key(0), models.ridge, X, y, hyper=grid, num_samples=50, refine=1)
    ex = exact_wbb(jax.random.key(0), models.ridge, X, y, hyper=grid, num_samples=50, tol=1e-9, progress_bar=False)
    np.testing.assert_allclose(one["beta"], ex["beta"], atol=1e-8)
    assert fo.attrs["method"] == "first-order" and fo.stats["map_converged"].all()
    # first order: errors of second order in w − 1, a fraction of the WBB spread (n = 60)
    err = np.abs(fo["beta"] - ex["beta"]).mean(axis=1) / ex["beta"].std(axis=1)
    assert np.all(err < 0.5), err


def logistic(X, y=None, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)


def test_refined_first_order_reaches_the_exact_optimisers(data):
    X, y = data
    yb = (y > 0).astype(float)
    grid = {"lam": [0.1, 10.0]}
    fo = first_order_wbb(jax.random.key(1), logistic, X, yb, hyper=grid, num_samples=40)
    ref = first_order_wbb(jax.random.key(1), logistic, X, yb, hyper=grid, num_samples=40, refine=10)
    ex = exact_wbb(jax.random.key(1), logistic, X, yb, hyper=grid, num_samples=40, tol=1e-9, progress_bar=False)
    assert ref.stats["converged"].all() and np.all(ref.stats["decrement"] <= 1e-3)
    sd = ex["beta"].std(axis=1)
    # decrement ≤ 1e-3 posterior sd; the WBB spread is ~ the posterior's, so 1e-2 sd is generous
    assert np.all(np.abs(ref["beta"] - ex["beta"]) <= 1e-2 * sd[:, None]), np.abs(ref["beta"] - ex["beta"]).max()
    assert (
        np.abs(fo["beta"] - ex["beta"]).max() > np.abs(ref["beta"] - ex["beta"]).max()
    )  # first order is not exact here


def test_bad_refine_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match=r"`refine` must be >= 0"):
        first_order_wbb(jax.random.key(0), models.ridge, X, y, hyper={"lam": [1.0]}, refine=-1)
