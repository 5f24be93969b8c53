"""The NumPyro front end (wbbgen.model) on models as users write them: masked observations,
deterministic sites, factors, data-dependent shapes, data given as lists or pandas objects.

Exactness tests compare draw by draw against a model written without the feature (same key,
so the same weights and prior draws): the tolerance is the solver's (tol=1e-9, Newton
decrement in posterior sd) or float64 rounding where no solve is involved.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest
from jax.scipy import stats

from wbbgen import exact_wbb, nuts_reference
from wbbgen.exact import samples_from_thetas
from wbbgen.minibatch import row_mask
from wbbgen.model import build_objective
from wbbgen.problem import make_problem
from wbbgen.reference import ReferenceDiagnosticsWarning

N, P = 30, 3
H = {"lam": jnp.asarray(2.0)}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, P))
    y = X @ np.array([1.0, -1.0, 0.5]) + 0.3 * rng.normal(size=N)
    mask = rng.uniform(size=N) < 0.7
    return X, y, mask


def masked(X, y=None, obs_mask=None, *, lam=1.0):
    b = numpyro.sample("b", dist.Normal(0, 1 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    s = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ b, s), obs=y, obs_mask=obs_mask)


def handler_masked(X, y, m, *, lam=1.0):
    b = numpyro.sample("b", dist.Normal(0, 1 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    s = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", X.shape[0]), numpyro.handlers.mask(mask=m):
        numpyro.sample("y", dist.Normal(X @ b, s), obs=y)


def test_obs_mask_draws_equal_the_model_on_the_observed_rows(data):
    """Masked rows carry no weight and impute nothing: every exact draw of the masked model is
    the draw of the same model given only the observed rows (same key: the same weights on the
    kept rows, the same anchors), to the solver's tolerance; no latent `y_unobserved` appears."""
    X, y, mask = data
    kw = {"hyper": {"lam": [0.5, 5.0]}, "num_samples": 40, "tol": 1e-9, "progress_bar": False}
    a = exact_wbb(jax.random.key(0), masked, X, y, mask, **kw)
    b = exact_wbb(jax.random.key(0), masked, X[mask], y[mask], **kw)
    assert sorted(a) == ["b", "sigma"]
    assert a.stats["converged"].all()
    for site in ("b", "sigma"):
        np.testing.assert_allclose(a[site], b[site], rtol=1e-7, atol=1e-9)
    idata = a.to_inference_data()
    assert idata.observed_data["y_observed"].shape == (mask.sum(),)
    assert idata.log_likelihood["y_observed"].shape == (1, 40, 2, mask.sum())


def test_masked_rows_leave_the_count_the_blocks_and_the_minibatch_rows(data):
    """n is the number of observed rows; block weights and the minibatch row mask are built on
    them; obs_mask and handlers.mask give the same objective."""
    X, y, mask = data
    k = int(mask.sum())
    problem = make_problem(masked, (X, y, mask), {}, ("lam",), "block", "anchored")
    obj = problem.objective
    assert obj.num_obs == k and problem.weights.num_obs == k
    np.testing.assert_array_equal(obj.kept_rows, mask)
    assert all(np.shape(x)[0] == k for x in jax.tree_util.tree_leaves(obj.data))
    assert all(jax.tree_util.tree_leaves(row_mask(problem)))
    other = build_objective(handler_masked, (X, y, mask), {}, ("lam",))
    theta = jnp.linspace(-1.0, 1.0, P + 1)
    np.testing.assert_allclose(
        obj.log_likelihood(theta, H, obj.data)["y_observed"], other.log_likelihood(theta, H, other.data)["y"]
    )
    np.testing.assert_allclose(obj.log_prior(theta, H, obj.data), other.log_prior(theta, H, other.data))


def test_partially_masked_rows_sum_their_observed_entries():
    """A row with two outputs, one masked, keeps its row and counts only the observed entry:
    ℓᵢ = Σⱼ mᵢⱼ log N(yᵢⱼ | μⱼ, 1); a row with both masked is dropped."""

    def model(y, m, *, lam=1.0):
        mu = numpyro.sample("mu", dist.Normal(0, 1 / jnp.sqrt(lam)).expand([2]).to_event(1))
        with numpyro.plate("rows", y.shape[0], dim=-2), numpyro.plate("cols", 2, dim=-1):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y, obs_mask=m)

    y = np.arange(8.0).reshape(4, 2)
    m = np.array([[True, True], [True, False], [False, False], [False, True]])
    obj = build_objective(model, (y, m), {}, ("lam",), obs_plate="rows")
    assert obj.num_obs == 3
    mu = jnp.array([0.5, -0.5])
    kept = m.any(1)
    want = (m * stats.norm.logpdf(y, mu, 1.0)).sum(1)[kept]
    np.testing.assert_allclose(obj.log_likelihood(mu, H, obj.data)["y_observed"], want, rtol=1e-12)


def noncentred(g, y=None, *, lam=1.0):
    """A random-intercept model written the usual way: J from the data, a = μ + τz."""
    J = int(g.max()) + 1
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfNormal(1.0 / jnp.sqrt(lam)))
    with numpyro.plate("groups", J):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        a = numpyro.deterministic("a", mu + tau * z)
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.Normal(a[g], 1.0), obs=y)


def noncentred_sized(g, y=None, *, num_groups, lam=1.0):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfNormal(1.0 / jnp.sqrt(lam)))
    with numpyro.plate("groups", num_groups):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        a = numpyro.deterministic("a", mu + tau * z)
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.Normal(a[g], 1.0), obs=y)


@pytest.fixture(scope="module")
def groups():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(4), 6)
    return g, rng.normal(size=g.size) + 0.5 * g


def test_static_args_and_deterministic_sites(groups):
    """``static_args=("g",)`` closes over g (J = 4 from its values) and gives the draws of the
    same model with J passed as a Python int; the deterministic a = μ + τz comes back per λ in
    the latent sites' layout (computed on first access) and in the InferenceData."""
    g, y = groups
    kw = {"hyper": {"lam": [0.5, 2.0]}, "num_samples": 20, "tol": 1e-9, "progress_bar": False}
    s = exact_wbb(jax.random.key(2), noncentred, g, y, static_args=("g",), **kw)
    assert "a: (on access)" in repr(s) and "a" in s and list(s) == ["mu", "tau", "z", "a"]
    assert s["a"].shape == (2, 20, 4)
    np.testing.assert_allclose(s["a"], s["mu"][..., None] + s["tau"][..., None] * s["z"], rtol=1e-12)
    ref = exact_wbb(jax.random.key(2), noncentred_sized, g, y, num_groups=4, **kw)
    for site in ("mu", "tau", "z", "a"):
        np.testing.assert_allclose(s[site], ref[site], rtol=1e-7, atol=1e-9)
    post = s.to_inference_data().posterior
    assert post["a"].dims == ("chain", "draw", "lam", "a_dim_0")


def test_generator_draws_get_deterministic_sites_from_samples_from_thetas(groups):
    """AmortizedWBB.get_samples lays out its draws with exact.samples_from_thetas: flat draws
    of any origin get their deterministic sites there, lazily."""
    g, y = groups
    problem = make_problem(noncentred_sized, (g, y), {"num_groups": 4}, ("lam",), "exponential", "anchored")
    thetas = jax.random.normal(jax.random.key(0), (2, 5, problem.objective.num_params))
    values = jnp.array([[0.5], [2.0]])
    s = samples_from_thetas(problem, thetas, values, {"lam": np.array([0.5, 2.0])}, {}, {}, jax.random.key(1))
    assert "a: (on access)" in repr(s)
    np.testing.assert_allclose(s["a"], s["mu"][..., None] + s["tau"][..., None] * s["z"], rtol=1e-12)


def ridge(X, y=None, *, lam=1.0):
    b = numpyro.sample("b", dist.Normal(0, 1 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ b, 1.0), obs=y)


def ridge_by_factor(X, y=None, *, lam=1.0):
    """The ridge penalty as a factor on a flat prior: a prior-side term."""
    b = numpyro.sample("b", dist.ImproperUniform(dist.constraints.real_vector, (), (X.shape[1],)))
    numpyro.factor("ridge", -0.5 * lam * jnp.sum(b**2))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ b, 1.0), obs=y)


def likelihood_by_factor(X, y=None, *, lam=1.0):
    """The likelihood as a factor inside the observation plate: a per-observation term."""
    b = numpyro.sample("b", dist.Normal(0, 1 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.factor("ll", dist.Normal(X @ b, 1.0).log_prob(y))


def test_factors_by_their_place(data):
    """A scalar factor outside the plates is a prior-side term: with a flat site it equals the
    Normal(0, 1/√λ) prior up to its normalising constant, and the anchored prior adds it
    unshifted (a flat site has no anchor). A factor inside the plate is a per-observation term
    equal to the observed site's."""
    X, y, _ = data
    thetas = jax.random.normal(jax.random.key(3), (3, P))
    normal = build_objective(ridge, (X, y), {}, ("lam",))
    prior = build_objective(ridge_by_factor, (X, y), {}, ("lam",))
    const = 0.5 * P * np.log(2 * np.pi / 2.0)  # log N(b | 0, 1/λ) + this = −λ|b|²/2 at λ = 2
    for theta in thetas:
        want = float(normal.log_prior(theta, H, normal.data)) + const
        np.testing.assert_allclose(prior.log_prior(theta, H, prior.data), want, rtol=1e-12)
        shift, _ = prior.anchor(jax.random.key(0), H, prior.data)
        assert np.all(np.asarray(shift) == 0.0)
        np.testing.assert_allclose(prior.log_prior_anchored(theta, shift, H, prior.data), want, rtol=1e-12)
    per_obs = build_objective(likelihood_by_factor, (X, y), {}, ("lam",))
    assert per_obs.obs_sites == ("ll",) and per_obs.num_obs == N
    np.testing.assert_allclose(
        per_obs.log_likelihood(thetas[0], H, per_obs.data)["ll"],
        normal.log_likelihood(thetas[0], H, normal.data)["y"],
        rtol=1e-12,
    )


def test_lists_and_pandas_become_arrays(data):
    """y as a Python list, X and y as pandas objects: the objective of the arrays."""
    X, y, _ = data
    ref = build_objective(ridge, (X, y), {}, ("lam",))
    theta = jnp.array([0.3, -0.2, 0.1])
    want = ref.log_likelihood(theta, H, ref.data)["y"]
    for args in [(X, list(y)), (pd.DataFrame(X), pd.Series(y)), (X, tuple(y.tolist()))]:
        obj = build_objective(ridge, args, {}, ("lam",))
        assert all(isinstance(x, np.ndarray) for x in jax.tree_util.tree_leaves(obj.data))
        np.testing.assert_allclose(obj.log_likelihood(theta, H, obj.data)["y"], want, rtol=1e-12)


@pytest.mark.slow
def test_nuts_reference_static_args_and_deterministic_sites(groups):
    """nuts_reference takes the same static_args and returns deterministic sites in its
    posterior (a = μ + τz exactly, draw by draw)."""
    g, y = groups
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReferenceDiagnosticsWarning)
        idata = nuts_reference(
            jax.random.key(0),
            noncentred,
            g,
            y,
            hyper={"lam": [1.0]},
            num_chains=1,
            num_warmup=30,
            num_samples=20,
            progress_bar=False,
            static_args=("g",),
        )
    post = idata.posterior
    assert post["a"].shape == (1, 20, 1, 4)
    np.testing.assert_allclose(post["a"], post["mu"] + post["tau"] * post["z"], rtol=1e-10)


@pytest.mark.slow
def test_obs_mask_sigma_matches_nuts_on_the_masked_model():
    """The WBB spread of σ under obs_mask matches NUTS on the same masked model (NUTS imputes
    the masked y; their marginal is the observed-rows posterior), with ~140 observed rows of
    200: sd ratio within [0.8, 1.25], the WBB approximation budget at this n (O(p/n)) plus the
    Monte Carlo error of both sds (~3 % with 1000 WBB draws and NUTS ESS ≥ 400). (At n ≈ 20
    the WBB spread of σ is about half the posterior's, masked or not.)"""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, P))
    y = X @ np.array([1.0, -1.0, 0.5]) + 0.3 * rng.normal(size=200)
    mask = rng.uniform(size=200) < 0.7
    s = exact_wbb(jax.random.key(0), masked, X, y, mask, hyper={"lam": [1.0]}, num_samples=1000, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReferenceDiagnosticsWarning)
        ref = nuts_reference(jax.random.key(1), masked, X, y, mask, hyper={"lam": [1.0]}, progress_bar=False)
    ratio = float(np.std(s["sigma"]) / ref.posterior["sigma"].std())
    assert 0.8 < ratio < 1.25, ratio


@pytest.mark.pipeline
def test_amortized_wbb_static_args_train_save_and_load(groups, tmp_path):
    """AmortizedWBB(static_args=...) traces the model with g closed over; the saved file
    records the names, so loading with the bare model rebuilds them and gives the same draws."""
    import wbbgen
    from wbbgen import AmortizedWBB

    g, y = groups
    infer = AmortizedWBB(
        noncentred, hyper={"lam": dist.LogUniform(0.5, 2.0)}, static_args="g", num_pilot=2,
        fidelity_samples=0, batch_size=8, generator_options={"width": 8, "depth": 1},
    )  # fmt: skip
    assert infer.static_args == ("g",)
    result = infer.run(jax.random.key(0), g, y, num_steps=10, progress_bar=False)
    assert result.config["static_args"] == "g"
    s = infer.get_samples(jax.random.key(1), result, hyper={"lam": [1.0]}, num_samples=4)
    assert s["a"].shape == (1, 4, 4)
    wbbgen.save(tmp_path / "g.wbb", result)
    loaded = wbbgen.load(tmp_path / "g.wbb", noncentred, g, y)
    again = infer.get_samples(jax.random.key(1), loaded, hyper={"lam": [1.0]}, num_samples=4)
    np.testing.assert_array_equal(again["z"], s["z"])
    with pytest.raises(TypeError, match="`static_args` must name arguments by string"):
        AmortizedWBB(noncentred, hyper={"lam": dist.LogUniform(0.5, 2.0)}, static_args=[0])


def test_heldout_criterion_refuses_masked_validation_rows(data):
    """Validation data with obs_mask would be scored row by row, masked rows included: refused,
    naming obs_mask and the fix."""
    from wbbgen.predictive import log_predictive

    X, y, mask = data
    s = exact_wbb(jax.random.key(0), masked, X, y, mask, hyper={"lam": [1.0]}, num_samples=4, progress_bar=False)
    with pytest.raises(ValueError, match=r"masks observations \(`obs_mask=`.*Pass only the observed"):
        log_predictive(masked, s, X, y, mask)
