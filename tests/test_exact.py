"""exact_wbb against closed forms, draw by draw, and against scipy on logistic regression."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import scipy.optimize

from wbbgen import ConvergenceWarning, exact_wbb
from wbbgen.problem import draws, make_problem

N, P = 30, 4
GRID = np.array([1e-2, 1.0, 1e2, 1e4])


def normal_mean(y, *, lam=1.0):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def ridge(X, y, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def logistic(X, y, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)


@pytest.fixture(scope="module")
def reg_data():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    X = jax.random.normal(k1, (N, P))
    beta = jnp.array([1.0, -2.0, 0.5, 0.0])
    y = X @ beta + jax.random.normal(k2, (N,))
    yb = (jax.random.uniform(k3, (N,)) < jax.nn.sigmoid(X @ beta)).astype(jnp.float64)
    return X, y, yb


def _draws(model, args, scheme, key, grid, S):
    """The weights and prior draws exact_wbb uses for this key (same code path)."""
    problem = make_problem(model, args, {}, ("lam",), "exponential", scheme)
    v, pd = draws(problem, key, jnp.asarray(grid)[:, None], S, problem.objective.data)
    return np.asarray(v), np.asarray(pd.weight), np.asarray(pd.shift)


@pytest.mark.parametrize("scheme", ["random", "fixed", "anchored"])
def test_weighted_mean_closed_form(reg_data, scheme):
    """μ* = (Σwᵢyᵢ + λ·a) / (Σwᵢ + w₀λ): a = the anchor (0 unless anchored), w₀ = 1 unless random."""
    _, y, _ = reg_data
    key = jax.random.key(1)
    s = exact_wbb(
        key, normal_mean, y, hyper={"lam": GRID}, num_samples=40, prior_weight=scheme, tol=1e-9, progress_bar=False
    )
    v, w0, shift = _draws(normal_mean, (y,), scheme, key, GRID, 40)
    lam = GRID[:, None]
    want = (v @ np.asarray(y) + lam * shift[..., 0]) / (v.sum(1) + w0 * lam)
    np.testing.assert_allclose(s["mu"], want, rtol=1e-9, atol=1e-12)
    assert s["mu"].shape == (len(GRID), 40) and s.stats["converged"].all()


@pytest.mark.parametrize("scheme", ["random", "fixed", "anchored"])
def test_weighted_ridge_closed_form(reg_data, scheme):
    """θ* = (XᵀWX + w₀λI)⁻¹(XᵀWy + λa) at every λ of the grid, draw by draw."""
    X, y, _ = reg_data
    key = jax.random.key(2)
    s = exact_wbb(
        key, ridge, X, y, hyper={"lam": GRID}, num_samples=25, prior_weight=scheme, tol=1e-9, progress_bar=False
    )
    v, w0, shift = _draws(ridge, (X, y), scheme, key, GRID, 25)
    Xn, yn = np.asarray(X), np.asarray(y)
    for k, lam in enumerate(GRID):
        for j in range(25):
            A = Xn.T @ (v[j][:, None] * Xn) + w0[k, j] * lam * np.eye(P)
            want = np.linalg.solve(A, Xn.T @ (v[j] * yn) + lam * shift[k, j])
            np.testing.assert_allclose(s["beta"][k, j], want, rtol=1e-8, atol=1e-10)


def test_logistic_agrees_with_scipy(reg_data):
    """Per draw, the minimiser of Σwᵢ(−ℓᵢ) + w₀λ‖β‖²/2 (random prior weight) found by scipy's
    BFGS at gtol 1e-10; agreement to 1e-6 is far inside a posterior sd."""
    X, _, yb = reg_data
    key = jax.random.key(3)
    grid = np.array([0.01, 1.0, 100.0])
    s = exact_wbb(
        key, logistic, X, yb, hyper={"lam": grid}, num_samples=5, prior_weight="random", tol=1e-9, progress_bar=False
    )
    v, w0, _ = _draws(logistic, (X, yb), "random", key, grid, 5)
    Xn, yn = np.asarray(X), np.asarray(yb)

    for k, lam in enumerate(grid):
        for j in range(5):

            def f(b, k=k, j=j, lam=lam):
                z = Xn @ b
                return -np.sum(v[j] * (yn * z - np.logaddexp(0, z))) + 0.5 * w0[k, j] * lam * b @ b

            def g(b, k=k, j=j, lam=lam):
                p = 1 / (1 + np.exp(-(Xn @ b)))
                return -Xn.T @ (v[j] * (yn - p)) + w0[k, j] * lam * b

            ref = scipy.optimize.minimize(f, np.zeros(P), jac=g, method="BFGS", options={"gtol": 1e-10}).x
            np.testing.assert_allclose(s["beta"][k, j], ref, rtol=1e-6, atol=1e-6)


def test_unconverged_draws_are_flagged_and_counted(reg_data):
    X, _, yb = reg_data
    with pytest.warns(ConvergenceWarning, match=r"\d+ of 20 exact WBB draws did not converge"):
        s = exact_wbb(
            jax.random.key(4),
            logistic,
            X,
            yb,
            hyper={"lam": [0.01, 1.0]},
            num_samples=10,
            max_steps=1,
            tol=1e-12,
            progress_bar=False,
        )
    assert not s.stats["converged"].all()
    assert s.stats["converged"].shape == (2, 10)
    assert np.all(s.stats["decrement"][~s.stats["converged"]] > 1e-12)


def test_same_key_same_draws_and_one_compilation(reg_data):
    """Identical output for a key; the model is traced the same number of times for a 2- and
    a 6-point grid (λ is traced, so the solve compiles once per grid, not once per λ)."""
    X, y, _ = reg_data
    count = {"n": 0}

    def counted(X, y, *, lam=1.0):
        count["n"] += 1
        ridge(X, y, lam=lam)

    def run(grid):
        count["n"] = 0
        s = exact_wbb(jax.random.key(5), counted, X, y, hyper={"lam": grid}, num_samples=8, progress_bar=False)
        return s, count["n"]

    a, traces2 = run(np.array([0.1, 1.0]))
    b, _ = run(np.array([0.1, 1.0]))
    np.testing.assert_array_equal(a["beta"], b["beta"])
    _, traces6 = run(np.logspace(-2, 3, 6))
    assert traces6 == traces2


def test_layout_and_inference_data(reg_data):
    X, y, _ = reg_data
    grid = np.array([0.1, 1.0, 10.0])
    s = exact_wbb(jax.random.key(6), ridge, X, y, hyper={"lam": grid}, num_samples=7, progress_bar=False)
    assert s["beta"].shape == (3, 7, P) and set(s) == {"beta"}
    idata = s.to_inference_data()
    assert idata.posterior["beta"].dims == ("chain", "draw", "lam", "beta_dim_0")
    assert idata.posterior["beta"].sel(lam=1.0).shape == (1, 7, P)
    assert idata.log_likelihood["y"].sel(lam=10.0).shape == (1, 7, N)
    assert idata.observed_data["y"].shape == (N,)
    assert set(idata.sample_stats) >= {"converged", "grad_norm", "loss"}


def test_two_hyperparameters_outer_product(reg_data):
    _, y, _ = reg_data

    def model(y, *, lam=1.0, loc=0.0):
        mu = numpyro.sample("mu", dist.Normal(loc, 1.0 / jnp.sqrt(lam)))
        with numpyro.plate("data", y.shape[0]):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    s = exact_wbb(
        jax.random.key(7),
        model,
        y,
        hyper={"lam": [1.0, 10.0, 100.0], "loc": [-1.0, 1.0]},
        num_samples=6,
        prior_weight="fixed",
        tol=1e-9,
        progress_bar=False,
    )
    assert s["mu"].shape == (3, 2, 6)
    # μ* = (Σwy + λ·loc)/(Σw + λ): moves towards loc as λ grows.
    gap = s["mu"][:, 1].mean(-1) - s["mu"][:, 0].mean(-1)
    assert np.all(np.diff(gap) > 0)
    idata = s.to_inference_data()
    assert idata.posterior["mu"].sel(lam=10.0, loc=1.0).shape == (1, 6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hyper": {"lam": [1.0, -1.0]}}, "not finite at hyperparameter values {lam=-1}"),
        ({"hyper": {"lam": [1.0, np.nan]}}, "NaN or inf"),
        ({"hyper": {"alpha": [1.0]}}, "not a keyword argument of the model"),
        ({"hyper": {"lam": [1.0]}, "num_samples": 0}, "`num_samples` must be a positive integer"),
        ({"hyper": {"lam": [1.0]}, "num_samples": 2.5}, "`num_samples` must be a positive integer"),
        ({"hyper": {"lam": [1.0]}, "prior_weight": "flat"}, "prior_weight='flat'"),
        ({"hyper": {}}, "must be a dict of grids"),
    ],
)
def test_bad_input(reg_data, kwargs, match):
    X, y, _ = reg_data
    with pytest.raises((ValueError, TypeError), match=match):
        exact_wbb(jax.random.key(0), ridge, X, y, progress_bar=False, **kwargs)


def test_bad_data_and_models(reg_data):
    X, y, _ = reg_data
    with pytest.raises(ValueError, match="NaN or inf"):
        exact_wbb(jax.random.key(0), ridge, X, y.at[3].set(jnp.nan), hyper={"lam": [1.0]}, progress_bar=False)

    def no_plate(X, y, *, lam=1.0):
        beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
        numpyro.sample("y", dist.Normal(X @ beta, 1.0).to_event(1), obs=y)

    with pytest.raises(ValueError, match="not inside a plate"):
        exact_wbb(jax.random.key(0), no_plate, X, y, hyper={"lam": [1.0]}, progress_bar=False)

    def discrete(X, y, *, lam=1.0):
        numpyro.sample("k", dist.Bernoulli(0.5))
        ridge(X, y, lam=lam)

    with pytest.raises(ValueError, match="latent site 'k' is discrete"):
        exact_wbb(jax.random.key(0), discrete, X, y, hyper={"lam": [1.0]}, progress_bar=False)

    def mismatched(X, y, *, lam=1.0):
        beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
        with numpyro.plate("data", 5):
            numpyro.sample("y", dist.Normal(X @ beta, 1.0).to_event(1), obs=y)

    with pytest.raises(ValueError, match="plate 'data'"):
        exact_wbb(jax.random.key(0), mismatched, X, y, hyper={"lam": [1.0]}, progress_bar=False)

    with pytest.raises(TypeError, match="`rng_key` must be a single PRNG key"):
        exact_wbb(0, ridge, X, y, hyper={"lam": [1.0]}, progress_bar=False)
    with pytest.raises(TypeError, match="mix floating dtypes"):
        exact_wbb(jax.random.key(0), ridge, X.astype(jnp.float32), y, hyper={"lam": [1.0]}, progress_bar=False)
