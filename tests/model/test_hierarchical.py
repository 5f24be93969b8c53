"""wbbgen.model.hierarchical: local latents found, integrated out of each group by Laplace, and
drawn from their conditional; refusals name the site.

Eight schools is conditionally Gaussian: y_j | μ, τ ~ N(μ, σ_j² + τ²) exactly (the Laplace
marginal is exact, so it matches to rounding), and θ_j | μ, τ, y ~ N(m_j, v_j) with
v_j = 1/(1/σ_j² + 1/τ²), m_j = v_j (y_j/σ_j² + μ/τ²): the conditional draws are checked
against it with Monte Carlo tolerances (N draws: mean within 4 sd/√N, variance within
4√(2/N) relative).
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from wbbgen import exact_wbb
from wbbgen.model import build_objective

Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def centred(sigma, y=None, *, lam=1.0):
    mu = numpyro.sample("mu", dist.Normal(0, 5 / jnp.sqrt(lam)))
    tau = numpyro.sample("tau", dist.HalfCauchy(5 / jnp.sqrt(lam)))
    with numpyro.plate("J", sigma.shape[0]):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def noncentred(sigma, y=None, *, lam=1.0):
    mu = numpyro.sample("mu", dist.Normal(0, 5 / jnp.sqrt(lam)))
    tau = numpyro.sample("tau", dist.HalfCauchy(5 / jnp.sqrt(lam)))
    with numpyro.plate("J", sigma.shape[0]):
        tt = numpyro.sample("theta_tilde", dist.Normal(0, 1))
        numpyro.deterministic("theta", mu + tau * tt)
        numpyro.sample("y", dist.Normal(mu + tau * tt, sigma), obs=y)


def random_intercept(g, x, y=None, *, lam=1.0):
    mu = numpyro.sample("mu", dist.Normal(0, 1 / jnp.sqrt(lam)))
    tau = numpyro.sample("tau", dist.HalfNormal(1.0))
    with numpyro.plate("groups", 4):
        a = numpyro.sample("a", dist.Normal(mu, tau))
    with numpyro.plate("features", 2):
        b = numpyro.sample("b", dist.Normal(0, 1 / jnp.sqrt(lam)))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.Normal(a[g] + x @ b, 1.0), obs=y)


def test_eight_schools_laplace_marginal_is_the_closed_form():
    obj = build_objective(centred, (SIGMA, Y), {}, ("lam",))
    assert obj.num_params == 2 and obj.num_obs == 8 and obj.local_layout.sites == {"theta": "J"}
    theta = jnp.array([1.5, np.log(4.0)])  # (mu, log tau): the global sites in sorted order
    ll = obj.log_likelihood(theta, {"lam": jnp.asarray(1.0)}, obj.data)["J"]
    closed = dist.Normal(1.5, np.sqrt(SIGMA**2 + 16.0)).log_prob(Y)
    np.testing.assert_allclose(ll, closed, rtol=1e-10)


@pytest.mark.parametrize("model, site", [(centred, "theta"), (noncentred, "theta_tilde")])
def test_conditional_draws_match_the_conjugate_closed_form(model, site):
    obj = build_objective(model, (SIGMA, Y), {}, ("lam",))
    assert set(obj.local_layout.sites) == {site}
    mu, tau, N = 1.5, 4.0, 4000
    theta = jnp.array([mu, np.log(tau)])
    keys = jax.random.split(jax.random.key(0), N)
    hyper = {"lam": jnp.asarray(1.0)}
    joint = jax.vmap(lambda k: obj.expand(k, theta, hyper, obj.data))(keys)
    values = jax.vmap(lambda t: obj.joint.constrain(t, hyper, obj.data))(joint)
    np.testing.assert_allclose(values["mu"], mu, rtol=1e-12)
    school = np.asarray(values["theta"] if site == "theta" else mu + tau * values["theta_tilde"])
    v = 1 / (1 / SIGMA**2 + 1 / tau**2)
    m = v * (Y / SIGMA**2 + mu / tau**2)
    assert np.all(np.abs(school.mean(0) - m) < 4 * np.sqrt(v / N)), (school.mean(0), m)
    np.testing.assert_allclose(school.var(0), v, rtol=4 * np.sqrt(2 / N))


def test_exact_wbb_keeps_the_model_layout_and_weights_the_groups():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(4), 5)
    x = rng.normal(size=(20, 2))
    y = rng.normal(size=4)[g] + x @ np.array([0.5, -0.5]) + rng.normal(size=20)
    obj = build_objective(random_intercept, (g, x, y), {}, ("lam",))
    assert obj.num_obs == 4 and obj.local_layout.sites == {"a": "groups"}  # b's plate is dense: global
    np.testing.assert_array_equal(obj.local_layout.obs_unit, g)
    s = exact_wbb(jax.random.key(1), random_intercept, g, x, y, hyper={"lam": [0.5, 2.0]}, num_samples=50,
                  progress_bar=False)  # fmt: skip
    assert s["a"].shape == (2, 50, 4) and s["b"].shape == (2, 50, 2) and s["tau"].shape == (2, 50)
    assert bool(s.stats["converged"].all())
    idata = s.to_inference_data()
    assert idata.log_likelihood["y"].shape == (1, 50, 2, 20)  # per observation, given the drawn locals
    assert np.all(np.std(s["a"], axis=1) > 0)


def test_crossed_groupings_are_refused_naming_both_sites():
    def crossed(g, h, y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 1))
        with numpyro.plate("school", 3):
            a = numpyro.sample("a", dist.Normal(mu, 1.0))
        with numpyro.plate("year", 2):
            c = numpyro.sample("c", dist.Normal(0, 1.0))
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("y", dist.Normal(a[g] + c[h], 1.0), obs=y)

    g, h = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"'a' and 'c' group the observations differently.*outside any plate"):
        build_objective(crossed, (g, h, np.zeros(6)))


def test_a_group_without_data_is_refused():
    g = np.array([0, 0, 1, 1, 2, 2])  # plate of 4 groups, group 3 empty
    with pytest.raises(ValueError, match=r"'a' \(plate 'groups'\) has 1 entr.*indices \[3\]"):
        build_objective(random_intercept, (g, np.zeros((6, 2)), np.zeros(6)), {}, ("lam",))


def test_a_local_prior_that_is_not_elementwise_is_refused():
    def simplex(g, y=None):
        conc = numpyro.sample("conc", dist.Gamma(2.0, 1.0))
        with numpyro.plate("groups", 3):
            p = numpyro.sample("p", dist.Dirichlet(conc * jnp.ones(2)))
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("y", dist.Normal(p[g, 0], 1.0), obs=y)

    with pytest.raises(ValueError, match=r"'p' is local.*not elementwise"):
        build_objective(simplex, (np.array([0, 1, 2, 0]), np.zeros(4)))


def test_a_prior_term_coupling_the_groups_is_refused():
    def coupled(g, y=None):
        mu = numpyro.sample("mu", dist.Normal(0, 1))
        with numpyro.plate("groups", 3):
            a = numpyro.sample("a", dist.Normal(mu, 1.0))
        numpyro.factor("sum_to_zero", -10.0 * jnp.sum(a) ** 2)
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("y", dist.Normal(a[g], 1.0), obs=y)

    with pytest.raises(ValueError, match=r"prior-side term.*\['a'\].*sum_to_zero"):
        build_objective(coupled, (np.array([0, 1, 2, 0]), np.zeros(4)))


def test_reweight_returns_resampled_draws_where_usable_and_says_so():
    """exact_wbb(reweight=True) on eight schools: every value's reweighted k̂ is ≤ 0.7 there
    (docs/calibration.md), so every value is resampled; the layout is the model's, and the
    check's warning names the values where the WBB draws missed."""
    with pytest.warns(Warning) as record:
        s = exact_wbb(jax.random.key(0), centred, SIGMA, Y, hyper={"lam": [1.0]}, num_samples=400, reweight=True,
                      progress_bar=False)  # fmt: skip
    assert s["theta"].shape == (1, 400, 8) and s.attrs["reweighted"].startswith("posterior_check")
    assert s.stats["reweighted"].all() and s.stats["pareto_k"].shape == (1, 400)
    assert all("posterior check" in str(w.message) for w in record), [str(w.message) for w in record]


def test_data_minibatches_are_refused_for_a_hierarchical_model():
    from wbbgen.minibatch import check_minibatch
    from wbbgen.problem import make_problem

    problem = make_problem(centred, (SIGMA, Y), {}, ("lam",), "exponential", "anchored")
    with pytest.raises(ValueError, match=r"hierarchical model.*\['theta'\].*8 groups.*data_batch_size=None"):
        check_minibatch(problem, 4, jnp.array([1.0]))
