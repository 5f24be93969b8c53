"""wbbgen output in ArviZ, on whichever line is installed: 0.x (``arviz.InferenceData``, Python
3.11) or 1.x (``xarray.DataTree``, Python >= 3.12, run by ``make test-py312``).

``az.summary`` and ``az.plot_forest`` work on the whole λ grid; ``az.loo`` and ``az.compare`` on
``idata.sel(lam=...)`` slices (ArviZ folds an extra dimension into the observations). Every check
is a deterministic equality between two computations on the same float64 draws: they differ only
in summation order, so rtol = 1e-12 (float64 rounding of sums over ≤ 100 terms is ~1e-14
relative) -- except where ArviZ itself is the reference for the same function call (exact).
Saving and loading a trained generator (wbbgen.io) and ``AmortizedWBB.to_inference_data`` are
tested in test_io.py and test_amortized.py, which run on both lines too.
"""

import warnings

import arviz as az
import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from ridge_problem import make_data, ridge
from scipy import stats

from wbbgen import exact_wbb, per_hyper
from wbbgen.convert import arviz_major, build_inference_data, elpd_loo
from wbbgen.tuning import psis_loo

GRID = np.array([0.1, 10.0, 1000.0])
S = 60
RTOL = 1e-12
ARVIZ_1 = arviz_major() >= 1

# Few draws per λ: ArviZ warns that some Pareto k are large (a statement about the draws,
# nothing wbbgen does); the equalities below hold regardless.
pytestmark = pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")


@pytest.fixture(scope="module")
def draws():
    X, y = make_data()
    samples = exact_wbb(jax.random.key(1), ridge, X, y, hyper={"lam": GRID}, num_samples=S, progress_bar=False)
    return np.asarray(X), np.asarray(y), samples, samples.to_inference_data()


def _group(idata, name) -> xr.Dataset:
    group = idata[name]
    return group.to_dataset() if isinstance(group, xr.DataTree) else group


def _loo(res):
    """ArviZ's own result, read by hand on each line (not through wbbgen.convert.elpd_loo)."""
    return (res.elpd, res.se) if ARVIZ_1 else (res["elpd_loo"], res["se"])


def test_container_type_follows_the_arviz_line(draws):
    *_, idata = draws
    if ARVIZ_1:
        assert isinstance(idata, xr.DataTree)
        assert set(idata.children) == {"posterior", "log_likelihood", "observed_data", "sample_stats"}
    else:
        assert isinstance(idata, az.InferenceData)
        assert set(idata.groups()) == {"posterior", "log_likelihood", "observed_data", "sample_stats"}


def test_sel_slices_posterior_and_log_likelihood(draws):
    """``sel(lam=...)`` reaches both groups; the log likelihood is the model's, unweighted:
    log N(yᵢ | xᵢ'β_s, 1) for every draw s and observation i."""
    X, y, samples, idata = draws
    for k, lam in enumerate(GRID):
        part = idata.sel(lam=lam)
        beta = _group(part, "posterior")["beta"]
        assert beta.dims == ("chain", "draw", "beta_dim_0") and beta.shape == (1, S, X.shape[1])
        np.testing.assert_array_equal(beta.values[0], samples["beta"][k])
        ll = _group(part, "log_likelihood")["y"]
        assert ll.dims == ("chain", "draw", "y_dim_0")
        want = stats.norm.logpdf(y, samples["beta"][k] @ X.T, 1.0)  # (S, n)
        np.testing.assert_allclose(ll.values[0], want, rtol=RTOL)
        np.testing.assert_array_equal(_group(part, "observed_data")["y"].values, y)
        assert _group(part, "sample_stats")["loss"].shape == (1, S)


def test_summary_per_lambda_equals_numpy(draws):
    """mean and sd (ddof = 1 on both lines) of each β_j at each λ, on the slice and on the
    whole grid (rows ``beta[λ, j]``, λ outer)."""
    _, _, samples, idata = draws
    beta = samples["beta"]  # (K, S, P)
    for k, lam in enumerate(GRID):
        summ = az.summary(idata.sel(lam=lam), var_names=["beta"], kind="stats", round_to="none")
        np.testing.assert_allclose(summ["mean"].to_numpy(float), beta[k].mean(0), rtol=RTOL)
        np.testing.assert_allclose(summ["sd"].to_numpy(float), beta[k].std(0, ddof=1), rtol=RTOL)
    whole = az.summary(idata, var_names=["beta"], kind="stats", round_to="none")
    assert list(whole.index) == [f"beta[{lam}, {j}]" for lam in GRID for j in range(beta.shape[-1])]
    np.testing.assert_allclose(whole["mean"].to_numpy(float), beta.mean(1).ravel(), rtol=RTOL)
    np.testing.assert_allclose(whole["sd"].to_numpy(float), beta.std(1, ddof=1).ravel(), rtol=RTOL)


def test_plot_forest_draws_every_lambda(draws):
    """One interval per (λ, β_j) row, each λ named on the plot."""
    _, _, samples, idata = draws
    plt.close("all")
    az.plot_forest(idata, var_names=["beta"])
    fig = plt.gcf()
    n_rows = len(GRID) * samples["beta"].shape[-1]
    assert sum(len(ax.lines) for ax in fig.axes) >= n_rows
    labels = " ".join(t.get_text() for ax in fig.axes for t in [*ax.get_yticklabels(), *ax.texts])
    for lam in GRID:
        assert str(lam) in labels
    plt.close("all")


def test_loo_per_lambda_equals_psis_loo_criterion(draws):
    """wbbgen's ``psis_loo`` criterion, ``per_hyper(idata, az.loo)`` and ``az.loo`` on each slice
    are the same numbers (same function on the same slice: exact, up to float formatting)."""
    _, _, samples, idata = draws
    _, mean, sd = psis_loo().evaluate(ridge, samples)
    by_slice = per_hyper(idata, az.loo, lam=GRID)
    for k, lam in enumerate(GRID):
        elpd, se = _loo(az.loo(idata.sel(lam=lam)))
        assert mean[k] == pytest.approx(elpd, rel=RTOL) and sd[k] == pytest.approx(se, rel=RTOL)
        assert _loo(by_slice[float(lam)]) == pytest.approx((elpd, se), rel=RTOL)
        assert elpd_loo(idata.sel(lam=lam)) == pytest.approx((elpd, se), rel=RTOL)


@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.sort_values")  # arviz 0.23 on pandas 3
def test_compare_ranks_lambda_slices_by_elpd(draws):
    """``az.compare`` over the λ slices ranks them by the elpd values of ``psis_loo``."""
    _, _, samples, idata = draws
    _, mean, _ = psis_loo().evaluate(ridge, samples)
    models = {f"lam={lam:g}": idata.sel(lam=lam) for lam in GRID}
    table = az.compare(models, round_to="none") if ARVIZ_1 else az.compare(models)
    order = [f"lam={GRID[k]:g}" for k in np.argsort(-mean)]
    assert list(table.index) == order and list(table["rank"]) == [0, 1, 2]
    elpd = table["elpd" if ARVIZ_1 else "elpd_loo"]
    np.testing.assert_allclose(elpd[order].to_numpy(float), np.sort(mean)[::-1], rtol=RTOL)


def test_netcdf_round_trip(draws, tmp_path):
    """``idata.to_netcdf`` then ``az.from_netcdf`` gives identical groups (bool ``converged``
    and the attrs included), and the loaded data slices by λ."""
    *_, idata = draws
    path = tmp_path / "wbb.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    for name in ("posterior", "log_likelihood", "observed_data", "sample_stats"):
        xr.testing.assert_identical(_group(back, name).load(), _group(idata, name))
    assert _group(back.sel(lam=GRID[1]), "log_likelihood")["y"].shape == (1, S, make_data()[0].shape[0])
    if hasattr(back, "close"):
        back.close()


def test_build_inference_data_rejects_short_arrays():
    with pytest.raises(ValueError, match="expected leading dims"):
        build_inference_data({"b": np.zeros((1, 5))}, {"lam": np.array([0.1, 1.0])})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        idata = build_inference_data({"b": np.zeros((1, 5, 2))}, {"lam": np.array([0.1, 1.0])})
    assert _group(idata, "posterior")["b"].sel(lam=1.0).shape == (1, 5)
