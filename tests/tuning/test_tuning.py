"""Tuning criteria against hand computations; PSIS-LOO per λ equals ArviZ on the slice."""

import logging
import re
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import xarray as xr
from scipy import stats

import wbbgen
from wbbgen import AmortizedWBB, exact_wbb
from wbbgen.tuning import Criterion, accuracy, choose, custom, heldout_log_density, mse, psis_loo, tune

N, P = 40, 3
GRID = np.array([0.01, 1.0, 100.0])


def ridge(X, y=None, *, lam=1.0, sigma=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


@pytest.fixture(scope="module")
def problem():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    X = jax.random.normal(k1, (N + 20, P))
    y = X @ jnp.array([1.0, -1.0, 0.5]) + jax.random.normal(k2, (N + 20,))
    Xtr, ytr, Xva, yva = X[:N], y[:N], X[N:], y[N:]
    samples = exact_wbb(jax.random.key(1), ridge, Xtr, ytr, hyper={"lam": GRID}, num_samples=30, progress_bar=False)
    return Xtr, ytr, Xva, yva, samples


@pytest.fixture(scope="module")
def trained(problem):
    """One generator over λ ∈ [0.01, 100] on the training rows, shared by the tests below."""
    Xtr, ytr, _, _, _ = problem
    infer = AmortizedWBB(ridge, hyper={"lam": dist.LogUniform(1e-2, 1e2)}, fidelity_samples=0, num_pilot=4)
    return infer, infer.run(jax.random.key(2), Xtr, ytr, num_steps=200, progress_bar=False)


def test_heldout_log_density_by_hand(problem):
    _, _, Xva, yva, samples = problem
    values, mean, sd = heldout_log_density(Xva, yva).evaluate(ridge, samples)
    beta = samples["beta"]  # (K, S, P)
    want = stats.norm.logpdf(np.asarray(yva), np.einsum("ksp,np->ksn", beta, np.asarray(Xva)), 1.0).mean(-1)
    np.testing.assert_allclose(values, want, rtol=1e-10)
    np.testing.assert_allclose(mean, want.mean(-1), rtol=1e-10)
    np.testing.assert_allclose(sd, want.std(-1), rtol=1e-10)
    full = wbbgen.log_predictive(ridge, samples, Xva, yva)  # (K, S, ñ), then averaged on the host
    np.testing.assert_allclose(full.mean(-1), wbbgen.mean_log_predictive(ridge, samples, Xva, yva), rtol=1e-10)


def test_mean_log_predictive_on_a_two_hyperparameter_grid(problem):
    """The device-side mean keeps the (K₁, K₂, S) layout of the grid's product."""
    Xtr, ytr, Xva, yva, _ = problem

    def ridge_noise(X, y=None, *, lam=1.0, sigma=1.0):
        beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)

    hyper = {"lam": [0.1, 10.0], "sigma": [0.5, 1.0, 2.0]}
    samples = exact_wbb(jax.random.key(2), ridge_noise, Xtr, ytr, hyper=hyper, num_samples=4, progress_bar=False)
    got = wbbgen.mean_log_predictive(ridge_noise, samples, Xva, yva)
    assert got.shape == (2, 3, 4)
    beta = np.asarray(samples["beta"])  # (2, 3, S, P)
    mu = np.einsum("ijsp,np->ijsn", beta, np.asarray(Xva))
    sigma = np.asarray(hyper["sigma"])[None, :, None, None]
    want = stats.norm.logpdf(np.asarray(yva), mu, sigma).mean(-1)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_heldout_log_density_without_observed_data(problem):
    """Validation data without the observed values (``heldout_log_density(X_val)``) are
    refused when the criterion is evaluated, naming the site and how to pass them, and so
    are the predictive densities it is built on."""
    _, _, Xva, _, samples = problem
    cause = r"samples 'y', which is neither observed nor a latent site .*the observed validation data were not passed"
    with pytest.raises(ValueError, match=cause):
        heldout_log_density(Xva).evaluate(ridge, samples)
    with pytest.raises(ValueError, match=r"heldout_log_density\(X_val, y_val\)"):
        wbbgen.log_predictive(ridge, samples, Xva)


def test_mse_accuracy_and_custom_by_hand(problem):
    _, _, Xva, yva, samples = problem
    Xn, yn = np.asarray(Xva), np.asarray(yva)
    predict = lambda params, X: params["beta"] @ np.asarray(X).T  # noqa: E731
    values, _, _ = mse(predict, Xva, yva).evaluate(ridge, samples)
    want = ((np.einsum("ksp,np->ksn", samples["beta"], Xn) - yn) ** 2).mean(-1)
    np.testing.assert_allclose(values, want, rtol=1e-10)
    labels = (yn > 0).astype(int)
    acc, _, _ = accuracy(lambda p, X: (predict(p, X) > 0).astype(int), Xva, labels).evaluate(ridge, samples)
    np.testing.assert_allclose(acc, ((np.einsum("ksp,np->ksn", samples["beta"], Xn) > 0) == labels).mean(-1))
    norms, _, _ = custom(lambda p, h: np.linalg.norm(p["beta"], axis=-1) * h["lam"]).evaluate(ridge, samples)
    np.testing.assert_allclose(norms, np.linalg.norm(samples["beta"], axis=-1) * GRID[:, None])


def test_psis_loo_per_lambda_equals_arviz_on_the_slice(problem):
    """Same numbers as ``az.loo`` on each slice; ArviZ's Pareto-k warning (k above
    min(1 − 1/log10 S, 0.7) = 0.32 at S = 30 draws) reaches the user."""
    *_, samples = problem
    with pytest.warns(UserWarning, match="shape parameter of Pareto distribution"):
        _, mean, sd = psis_loo().evaluate(ridge, samples)
    idata = samples.to_inference_data()
    for k, lam in enumerate(GRID):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ref = az.loo(idata.sel(lam=lam))
        elpd, se = (ref.elpd, ref.se) if az.__version__ >= "1" else (ref["elpd_loo"], ref["se"])  # arviz 1.x / 0.x
        assert mean[k] == pytest.approx(elpd, rel=1e-12)
        assert sd[k] == pytest.approx(se, rel=1e-12)
    assert mean.shape == (3,)


def _curve(mean, sd, higher=True):
    return xr.Dataset(
        {"mean": ("lam", np.asarray(mean)), "sd": ("lam", np.asarray(sd))}, coords={"lam": [0.1, 1.0, 10.0, 100.0]}
    ).assign_attrs(criterion="c", higher_is_better=int(higher))


def test_choose_best_and_one_standard_error():
    best, one_se = choose(_curve([1.0, 3.0, 2.5, 0.0], [0.1, 0.6, 0.1, 0.1]))
    assert best == {"lam": 1.0} and one_se == {"lam": 10.0}  # 2.5 ≥ 3.0 − 0.6
    best, one_se = choose(_curve([1.0, 3.0, 2.5, 0.0], [0.1, 0.6, 0.1, 0.1]), prefer="smaller")
    assert one_se == {"lam": 1.0}  # admissible (≥ 2.4): λ = 1 and 10; the smaller is 1
    best, one_se = choose(_curve([5.0, 1.0, 1.2, 9.0], [0.1, 0.3, 0.1, 0.1], higher=False))
    assert best == {"lam": 1.0} and one_se == {"lam": 10.0}  # a loss: 1.2 ≤ 1.0 + 0.3
    with pytest.raises(ValueError, match="prefer"):
        choose(_curve([1, 2, 3, 4], [0, 0, 0, 0]), prefer="middle")


def test_tune_end_to_end(problem, trained):
    _, _, Xva, yva, _ = problem
    infer, result = trained
    grid = np.logspace(-2, 2, 9)
    tuned = tune(
        infer, jax.random.key(3), result, criterion=heldout_log_density(Xva, yva), hyper={"lam": grid}, num_samples=50
    )
    assert set(tuned.curve) == {"mean", "sd", "q05", "q50", "q95"} and tuned.values.shape == (9, 50)
    assert tuned.best["lam"] in grid and tuned.best_1se["lam"] >= tuned.best["lam"]
    assert tuned.plot() is not None
    with pytest.raises(TypeError, match="must be a wbbgen Criterion"):
        tune(infer, jax.random.key(3), result, criterion=lambda p, h: 0.0, hyper={"lam": grid})
    assert isinstance(heldout_log_density(Xva, yva), Criterion)


def test_gradient_search_refuses_an_unknown_autodiff(trained):
    from wbbgen.tuning import gradient_search

    infer, result = trained
    with pytest.raises(ValueError, match="`autodiff='sideways'` is unknown; choose one of"):
        gradient_search(infer, jax.random.key(0), result, np.zeros((2, P)), np.zeros(2), autodiff="sideways")


def test_per_hyper_matches_slices(problem):
    from wbbgen import per_hyper

    *_, samples = problem
    idata = samples.to_inference_data()
    got = per_hyper(idata, lambda d: float(d.posterior["beta"].mean()), lam=GRID)
    assert got == {float(lam): float(idata.posterior["beta"].sel(lam=lam).mean()) for lam in GRID}


def _compiles(caplog, name: str) -> int:
    """How many compilations of ``name`` JAX has logged (under ``jax.log_compiles()``)."""
    pattern = re.compile(rf"Compiling (jit\()?{name}\b")  # "Compiling jit(f) with ..." in JAX 0.4.30+
    return sum(1 for r in caplog.records if pattern.match(r.getMessage()))


@pytest.mark.slow
def test_gradient_search_finds_the_grid_optimum(problem, trained, caplog):
    """Gradient ascent through the generator and a fine grid of the same criterion, with the
    same generator and the same number of draws, agree to within one step of a 41-point
    log grid: the search is checked, not the generator. The search's last value is the grid
    criterion at its end point (same draws: equal up to float64 rounding), and reverse mode
    (``autodiff="reverse"``, the default above ``FORWARD_MODE_MAX`` hyperparameters) gives the
    forward-mode path (the same derivative, up to rounding). A second search with other draws, validation values of
    the same shapes and another learning rate reuses the compiled program, and still ends at
    its own data's criterion. Validation data with another non-array argument (``sigma``)
    are scored by their own likelihood, not the training call's."""
    from wbbgen.tuning import gradient_search

    _, _, Xva, yva, _ = problem
    infer, result = trained

    def criterion_at(key, lam, *args, **kwargs):
        """The grid criterion of ``tune`` at one λ, with the search's key and 64 draws."""
        crit = heldout_log_density(*args, **kwargs)
        return tune(infer, key, result, criterion=crit, hyper={"lam": [lam]}, num_samples=64).curve["mean"].values[0]

    with jax.log_compiles(), caplog.at_level(logging.DEBUG):
        found = gradient_search(
            infer, jax.random.key(4), result, Xva, yva, num_steps=150, learning_rate=0.05, num_samples=64
        )
        first = _compiles(caplog, "_search")
        # Other draws, validation values (same shapes) and learning rate: the same program.
        again = gradient_search(
            infer, jax.random.key(5), result, Xva[::-1], yva[::-1], num_steps=150, learning_rate=0.1
        )
        assert first >= 1 and _compiles(caplog, "_search") == first
    got = criterion_at(jax.random.key(5), again.best["lam"], Xva[::-1], yva[::-1])
    np.testing.assert_allclose(got, again.value, rtol=1e-9)
    wide = gradient_search(infer, jax.random.key(6), result, Xva, yva, sigma=2.0, num_steps=20)
    got = criterion_at(jax.random.key(6), wide.best["lam"], Xva, yva, sigma=2.0)
    np.testing.assert_allclose(got, wide.value, rtol=1e-9)
    grid = np.logspace(-2, 2, 41)
    tuned = tune(
        infer, jax.random.key(4), result, criterion=heldout_log_density(Xva, yva), hyper={"lam": grid}, num_samples=64
    )
    step = np.log(grid[1] / grid[0])
    assert abs(np.log(found.best["lam"] / tuned.best["lam"])) <= step + 1e-9
    assert found.values.shape == (4, 151) and np.all(np.diff(found.values[:, -20:], axis=1) > -1e-3)
    np.testing.assert_allclose(criterion_at(jax.random.key(4), found.best["lam"], Xva, yva), found.value, rtol=1e-9)
    settings = dict(num_steps=150, learning_rate=0.05, num_samples=64)
    reverse = gradient_search(infer, jax.random.key(4), result, Xva, yva, **settings, autodiff="reverse")
    np.testing.assert_allclose(reverse.values, found.values, rtol=1e-9)


@pytest.mark.parametrize(
    "fold_seed, num_blocks, prior_weight",
    [
        (None, None, "anchored"),
        pytest.param(11, None, "anchored", marks=pytest.mark.slow),
        pytest.param(None, 8, "fixed", marks=pytest.mark.slow),
    ],
)
def test_exact_kfold_equals_refitting_on_kept_rows(problem, fold_seed, num_blocks, prior_weight):
    """Deleting a fold by zero weights is refitting on the kept rows: per draw and fold,
    β = (X_keepᵀ W X_keep + λI)⁻¹(X_keepᵀ W y_keep + λa) in closed form (the draw's own
    weights and anchor a; a = 0 for the fixed prior), then the mean log density of the deleted rows. The
    objective is quadratic, so one Newton step solves it exactly: only rounding remains,
    hence the 1e-6 relative tolerance. Folds: the default ones (``CV_FOLD_SEED``, those
    kfold_cv and ``cv_folds`` use), those of an explicit ``fold_key``, or folds of blocks
    (block weights: a fold deletes whole blocks of rows)."""
    from wbbgen import weights as W
    from wbbgen.problem import draws, make_problem
    from wbbgen.tuning import exact_kfold_cv
    from wbbgen.weights import fold_masks, trained_fold_masks

    Xtr, ytr, _, _, _ = problem
    key = jax.random.key(11)
    fold_key = None if fold_seed is None else jax.random.key(fold_seed)
    scheme = W.exponential(N) if num_blocks is None else W.block(N, num_blocks, rng_key=jax.random.key(3))
    curve, values = exact_kfold_cv(
        key,
        ridge,
        Xtr,
        ytr,
        hyper={"lam": GRID},
        num_folds=4,
        num_samples=6,
        fold_key=fold_key,
        weights=scheme,
        prior_weight=prior_weight,
    )
    assert values.shape == (3, 6) and set(curve) >= {"mean", "sd"}
    S = scheme.num_weights
    masks = trained_fold_masks(S, 4) if fold_key is None else fold_masks(S, 4, fold_key)
    assert not np.array_equal(trained_fold_masks(N, 4), fold_masks(N, 4, jax.random.key(11)))
    prob = make_problem(ridge, (Xtr, ytr), {}, ("lam",), scheme, prior_weight)
    v, pd = draws(prob, key, jnp.asarray(GRID)[:, None], 6, prob.objective.data)
    X, y, shift = np.asarray(Xtr), np.asarray(ytr), np.asarray(pd.shift)
    assert (prior_weight == "fixed") == np.all(shift == 0)
    rows = np.asarray(scheme.expand(jnp.asarray(masks)))  # (4, N): 0 on the fold's rows
    assert np.all(rows.sum(0) == 3)  # every row is deleted in exactly one fold
    want = np.zeros((3, 6))
    for k, lam in enumerate(GRID):
        for j in range(6):
            for mask, kept in zip(masks, rows):
                w = np.asarray(scheme.expand(v[j] * jnp.asarray(mask)))
                beta = np.linalg.solve(X.T @ (w[:, None] * X) + lam * np.eye(P), X.T @ (w * y) + lam * shift[k, j])
                want[k, j] += stats.norm.logpdf(y, X @ beta, 1.0) @ (1.0 - kept) / N
    np.testing.assert_allclose(values, want, rtol=1e-6)


def test_kfold_through_the_generator(trained):
    """Without ``cv_folds`` in training, kfold_cv's default folds are the ``CV_FOLD_SEED`` ones
    (those exact_kfold_cv deletes), not folds drawn from its ``rng_key``."""
    from wbbgen.tuning import kfold_cv
    from wbbgen.weights import CV_FOLD_SEED, fold_masks

    infer, result = trained

    def cv(**kwargs):
        grid = {"lam": [0.1, 1.0, 10.0]}
        return kfold_cv(infer, jax.random.key(5), result, hyper=grid, num_folds=5, num_samples=16, **kwargs)[1]

    values = cv()
    assert values.shape == (3, 16) and np.all(np.isfinite(values))
    np.testing.assert_array_equal(values, cv(fold_key=jax.random.key(CV_FOLD_SEED)))
    assert not np.allclose(values, cv(fold_key=jax.random.key(5)), rtol=1e-3)
    masks = fold_masks(N, 5, jax.random.key(CV_FOLD_SEED))
    assert np.all(masks.sum(0) == 4) and np.all(masks.sum(1) == N - N // 5)
    with pytest.raises(ValueError, match="`num_folds` must be between 2 and"):
        fold_masks(N, 1, jax.random.key(0))


@pytest.mark.slow
def test_kfold_on_the_folds_the_generator_was_trained_to_delete(problem):
    """``AmortizedWBB(cv_folds=K)``: training draws delete the K folds, kfold_cv defaults to
    them (the same values as passing them explicitly), and other folds warn."""
    from wbbgen.persist.fingerprint import describe_settings
    from wbbgen.tuning import kfold_cv
    from wbbgen.weights import CV_FOLD_SEED, trained_fold_masks

    Xtr, ytr, _, _, _ = problem
    infer = AmortizedWBB(ridge, hyper={"lam": dist.LogUniform(1e-2, 1e2)}, fidelity_samples=0, num_pilot=4, cv_folds=4)
    result = infer.run(jax.random.key(2), Xtr, ytr, num_steps=200, progress_bar=False)
    # Training draws (the weights of the problem the trainer is built on): each has no zero
    # (Exp(1)) or zeros on exactly one trained fold's rows.
    training_weights = infer.options.training.training_problem(result.problem).weights
    v = np.asarray(training_weights.sample(jax.random.key(0), (400,)))
    deleted = (v == 0).any(1)
    masks = trained_fold_masks(N, 4)
    assert 0 < deleted.sum() < 400
    assert all(any(np.array_equal(z, mask == 0) for mask in masks) for z in v[deleted] == 0)
    assert result.config["cv_folds"] == 4 and describe_settings(infer, result.problem)["cv_folds"] == 4
    grid = {"lam": [0.1, 10.0]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, default = kfold_cv(infer, jax.random.key(5), result, hyper=grid, num_samples=8)
        _, explicit = kfold_cv(
            infer, jax.random.key(5), result, hyper=grid, num_samples=8, fold_key=jax.random.key(CV_FOLD_SEED)
        )
    np.testing.assert_array_equal(default, explicit)
    with pytest.warns(UserWarning, match="trained to delete its own 4 folds"):
        kfold_cv(infer, jax.random.key(5), result, hyper=grid, num_samples=8, num_folds=5)
    with pytest.warns(UserWarning, match="other folds"):
        kfold_cv(infer, jax.random.key(5), result, hyper=grid, num_samples=8, fold_key=jax.random.key(1))
    # Bad `cv_folds` values: docs/bad-inputs.md (tests/test_bad_inputs.py).
