"""wbbgen.posterior_check: Pareto k̂ of importance weights from a Gaussian fitted to the draws
toward the model's posterior.

Tolerances come from the tail index of a known case: for a Gaussian posterior and a Gaussian q
whose sd is r times the posterior's in every coordinate, log w = ½(1 − r²)‖z‖² + const, so the
weights' tail index is k = 1 − r² (r ≥ 1: bounded weights, k ≤ 0). Over 10 replicates per case
(M = 20,000 draws of q, both ArviZ 0.x and 1.x) k̂ had mean 0.94 and sd 0.074 at r = 0.2
(k = 0.96), and mean −0.04, max 0.24 at r = 1: the threshold 0.7 is more than three sd away
from either.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer.util import potential_energy

from wbbgen import exact_wbb
from wbbgen.posterior_check import PosteriorCheckWarning, log_posterior, posterior_check
from wbbgen.problem import make_problem

N = 100
M = 20_000  # draws of q: sd(k̂) ≈ 0.075 near k = 0.9 (module docstring)


def mean_model(y, *, lam=1.0):
    """y_i ~ N(μ, I₂), μ ~ N(0, I₂/λ): the posterior is N(Σy/(λ + n), I₂/(λ + n))."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 1 / jnp.sqrt(lam)).expand([2]).to_event(1))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, 1.0).to_event(1), obs=y)


def scale_model(X, y=None, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


@pytest.fixture(scope="module")
def y():
    return np.random.default_rng(0).normal(size=(N, 2)) + 1.0


LAMS = np.array([0.1, 10.0, 1000.0])


def exact_posterior_draws(y, r, S=400, seed=1):
    """``(K, S, 2)`` draws of N(mean_λ, r² I/(λ + n)) at each λ of LAMS."""
    prec = LAMS + N
    mean = y.sum(0)[None] / prec[:, None]
    z = np.random.default_rng(seed).normal(size=(len(LAMS), S, 2))
    return mean[:, None] + r * z / np.sqrt(prec)[:, None, None]


def test_log_posterior_is_numpyros_unconstrained_density():
    """log p(y|θ) + log p(θ) + log|J| equals −NumPyro's potential energy (σ by its log)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 3))
    yy = X @ np.array([1.0, 0.0, -1.0]) + 0.5 * rng.normal(size=30)
    problem = make_problem(scale_model, (X, yy), {}, ("lam",), "exponential", "anchored")
    theta = jnp.array([0.3, -0.2, 0.1, np.log(0.7)])  # beta (3), then log sigma
    ours = log_posterior(problem, theta, jnp.array([2.0]))
    params = {"beta": theta[:3], "sigma": theta[3]}
    theirs = -potential_energy(scale_model, (X, yy), {"lam": 2.0}, params)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_k_hat_passes_the_posterior_and_flags_a_narrow_proposal(y):
    problem = make_problem(mean_model, (y,), {}, ("lam",), "exponential", "anchored")
    values = jnp.asarray(LAMS[:, None])
    exact = posterior_check(jax.random.key(0), problem, exact_posterior_draws(y, 1.0), values, M)
    assert np.all(exact.k_hat < 0.7), exact.k_hat
    assert np.all(exact.ess > 0.5), exact.ess  # q ≈ p: most draws count
    narrow = posterior_check(jax.random.key(0), problem, exact_posterior_draws(y, 0.2), values, M)
    assert np.all(narrow.k_hat > 0.7), narrow.k_hat


def test_k_hat_not_available_when_the_covariance_cannot_be_fitted(y):
    problem = make_problem(mean_model, (y,), {}, ("lam",), "exponential", "anchored")
    check = posterior_check(jax.random.key(0), problem, exact_posterior_draws(y, 1.0, S=3), LAMS[:, None])
    assert np.all(np.isnan(check.k_hat)) and check.reweighted is None
    assert "2 parameters for 3 draws" in check.reason


def test_exact_wbb_fixed_prior_weight_flagged_where_the_prior_dominates(y):
    """Fixed prior weight: the WBB variance of μ is ≈ n/(λ + n)² (s² ≈ 1, n = 100: s² within
    ±0.14 sd) against the posterior's 1/(λ + n), so r² ≈ n/(λ + n): 1.0 at λ = 0.1 (k ≈ 0) and
    0.09 at λ = 1000 (k ≈ 0.91). The anchored variant is calibrated there (k̂ small)."""
    hyper = {"lam": [0.1, 1000.0]}
    fixed = exact_wbb(jax.random.key(3), mean_model, y, hyper=hyper, num_samples=400, prior_weight="fixed",
                      progress_bar=False)  # fmt: skip
    with pytest.warns(PosteriorCheckWarning, match=r"1 of 2 grid values.*lam=1e\+03"):
        check = fixed.posterior_check(jax.random.key(4), num_draws=M)
    assert check.k_hat[0] < 0.7 < check.k_hat[1], check.k_hat
    assert fixed.stats["pareto_k"].shape == (2, 400)
    idata = fixed.to_inference_data()
    np.testing.assert_allclose(idata.sample_stats["pareto_k"].sel(lam=1000.0).values[0, 0], check.k_hat[1])
    assert "FAIL" in check.summary(fixed.hyper) and "ok" in check.summary(fixed.hyper)

    anchored = exact_wbb(jax.random.key(3), mean_model, y, hyper=hyper, num_samples=400, progress_bar=False)
    check = anchored.posterior_check(jax.random.key(4), num_draws=M)
    assert np.all(check.k_hat < 0.7), check.k_hat
    # the reweighted draws of q have the posterior's sd (1/√(λ + n)) within MC error
    assert check.reweighted.attrs["reweighted"].startswith("posterior_check")
    assert check.reweighted.to_inference_data().posterior["mu"].shape == (1, 400, 2, 2)
    sd = check.reweighted["mu"].std(axis=-2)  # (K, 2)
    target = 1 / np.sqrt(np.array(hyper["lam"]) + N)
    np.testing.assert_allclose(sd, np.broadcast_to(target[:, None], sd.shape), rtol=4 / np.sqrt(2 * 400))


def test_collapsed_draws_are_flagged_without_numeric_warnings(y):
    """Every draw at one point (the fixed scheme's failure on hierarchical models): the fitted
    covariance is zero, no draw of q has a finite weight; k̂ = inf, ESS 0, flagged."""
    problem = make_problem(mean_model, (y,), {}, ("lam",), "exponential", "anchored")
    thetas = exact_posterior_draws(y, 1.0)
    thetas[1] = thetas[1, :1]  # λ = 10: all 400 draws equal
    check = posterior_check(jax.random.key(0), problem, thetas, LAMS[:, None], 4000)
    assert check.k_hat[1] == np.inf and check.ess[1] == 0
    assert np.all(check.k_hat[[0, 2]] < 0.7), check.k_hat


def test_moved_flags_a_too_narrow_fit_that_k_hat_passes(y):
    """r = 0.7: k = 1 − r² = 0.51, under the k̂ threshold, but the reweighted sd is the posterior's
    (the mixture's wide half covers it), so the WBB sd ratio reads ≈ 0.7: log 0.7 = −0.36 against a
    flag threshold of log 1.1 + z·se ≈ 0.095 + 2.24 × 0.04 (S = 400; module ``_moments``), about five
    se away on either side. r = 1 (the posterior itself) moves nothing."""
    problem = make_problem(mean_model, (y,), {}, ("lam",), "exponential", "anchored")
    values = jnp.asarray(LAMS[:, None])
    narrow = posterior_check(jax.random.key(0), problem, exact_posterior_draws(y, 0.7), values, M)
    assert np.all(narrow.moved) and np.all(narrow.flagged), (narrow.sd_ratio, narrow.reweighted_k_hat)
    se = np.sqrt(0.5 / 400 + 0.5 / (narrow.reweighted_ess * 2 * M))  # of log sd ratio, per coordinate
    assert np.all(np.abs(np.log(narrow.sd_ratio / 0.7)) < 4 * se), (narrow.sd_ratio, se)
    exact = posterior_check(jax.random.key(0), problem, exact_posterior_draws(y, 1.0), values, M)
    assert not exact.moved.any() and not exact.flagged.any(), (exact.sd_ratio, exact.mean_shift)
