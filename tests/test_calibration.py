"""Tests of wbbgen.calibration on synthetic draws with known answers.

Tolerances: the z-checks below compare an estimate with its known value in units of the
MCSE the module reports. They are all Gaussian-limit z-tests; there are M = 108 scalar
checks in this file (each array element counts), family-wise α = 1e-3, Bonferroni:
z = Φ⁻¹(1 − α/(2M)) = 4.43. Reference draws are N(0, 1) i.i.d. unless said otherwise;
the WBB draws are transformations of other, independent N(0, 1) draws. Seeds are fixed.
"""

import numpy as np
import pytest
import xarray as xr
from scipy.stats import norm

from wbbgen.calibration import calibration, plot_calibration, summarize
from wbbgen.convert import build_inference_data

Z = norm.ppf(1 - 1e-3 / (2 * 108))
LAM = np.array([0.1, 1.0, 10.0])
N_W = 4000  # WBB: 1 chain of 4000 independent draws
SHAPE_R = (4, 1000)  # reference: 4 chains of 1000 draws
P = 4  # coordinates of site "b"; 3 λ × 4 = 12 marginals per metric


def make(draws, lam=LAM):
    return build_inference_data({"b": draws}, {"lam": lam})


def wbb_and_reference(seed, transform=lambda z: z):
    rng = np.random.default_rng(seed)
    wbb = transform(rng.normal(size=(1, N_W, len(LAM), P)))
    ref = rng.normal(size=(*SHAPE_R, len(LAM), P))
    return calibration(make(wbb), make(ref))


def assert_z(estimate, truth, mcse):
    z = np.abs(np.asarray(estimate) - truth) / np.asarray(mcse)
    assert np.all(z < Z), f"max |z| = {np.max(z):.2f} >= {Z:.2f}"


def test_identical_distributions():
    """Same distribution: sd ratio 1, mean shift 0, coverage nominal (48 z-checks).

    W₁/mcse has mean 1 under equal distributions (Brownian-bridge limit; 2×10⁴ simulated
    replicates at N = M = 2000: mean 1.00, sd 0.35, 99.99 % quantile 3.03); we assert < 3.5
    (12 checks, family-wise < 1e-3).
    """
    cal = wbb_and_reference(0)
    assert cal.sd_ratio.dims == ("lam", "param")
    assert list(cal.param.values) == ["b[0]", "b[1]", "b[2]", "b[3]"]
    assert_z(cal.sd_ratio, 1.0, cal.sd_ratio_mcse)
    assert_z(cal.mean_shift, 0.0, cal.mean_shift_mcse)
    assert_z(cal.coverage_50, 0.5, cal.coverage_50_mcse)
    assert_z(cal.coverage_90, 0.9, cal.coverage_90_mcse)
    assert np.all(cal.wasserstein < 3.5 * cal.wasserstein_mcse)
    # The MCSEs equal their closed forms for N(0, 1) (κ = 3, ESS ≈ N; ArviZ's ESS of i.i.d.
    # draws has a relative sd ≈ √(2/N) ≈ 2 %, hence rtol 0.1).
    n_r = np.prod(SHAPE_R)
    np.testing.assert_allclose(cal.sd_ratio_mcse, np.sqrt(1 / (2 * N_W) + 1 / (2 * n_r)), rtol=0.1)
    np.testing.assert_allclose(cal.mean_shift_mcse, np.sqrt(1 / N_W + 1 / n_r), rtol=0.1)
    np.testing.assert_allclose(cal.coverage_90_mcse, np.sqrt(0.9 * 0.1 / n_r + 0.9 * 0.1 / N_W), rtol=0.1)


def test_scaled_wbb():
    """WBB draws c·Z (c = 1.5): sd ratio c; 90 % coverage 2Φ(c·z₀.₉₅) − 1 (24 z-checks).

    The coverage MCSE assumes equal densities at the interval ends; here the reference
    density there is lower, which makes it conservative.
    """
    c = 1.5
    cal = wbb_and_reference(1, lambda z: c * z)
    assert_z(cal.sd_ratio, c, cal.sd_ratio_mcse)
    assert_z(cal.coverage_90, 2 * norm.cdf(c * norm.ppf(0.95)) - 1, cal.coverage_90_mcse)


def test_shifted_wbb():
    """WBB draws Z + d (d = 0.5): mean shift d, W₁ = |d|, coverage Φ(d + z) − Φ(d − z).

    36 z-checks. For a shift large against the noise the two ECDFs do not cross and
    W₁ = m_W − m_R, whose sd √(1/N_W + 1/N_R) is 1/1.29 of ``wasserstein_mcse``; using the
    latter is conservative.
    """
    d = 0.5
    cal = wbb_and_reference(2, lambda z: z + d)
    assert_z(cal.mean_shift, d, cal.mean_shift_mcse)
    assert_z(cal.wasserstein, d, cal.wasserstein_mcse)
    z90 = norm.ppf(0.95)
    assert_z(cal.coverage_90, norm.cdf(d + z90) - norm.cdf(d - z90), cal.coverage_90_mcse)
    same = wbb_and_reference(3)
    assert cal.wasserstein.min() > 5 * same.wasserstein.max()


def test_mcse_matches_spread_over_replicates():
    """Each MCSE equals the sd of its metric over independent replicates, MCMC-like reference.

    K = 400 replicates (the λ dim as a replicate index); reference: 2 AR(1) chains of 500
    draws, ρ = 0.8 (ESS ≈ 111 for the mean, 220 for the sd), WBB: 500 i.i.d. draws. The
    empirical sd of K draws has relative sd 1/√(2(K−1)) = 3.5 %; at the file's z = 4.43 that is 15.5 %,
    plus 4.5 % for the first-order (delta-method, asymptotic-ESS) approximations: |ratio − 1|
    < 0.2 (seeds 4-7 gave 0.93-1.06). Ignoring the autocorrelation (ESS = N) gives
    ratios 1.45 (sd), 1.9 (mean), 1.2-1.35 (coverage).
    """
    rng = np.random.default_rng(4)
    k, rho, n = 400, 0.8, 500
    e = rng.normal(size=(2, n, k, 1))
    ref = np.empty_like(e)
    ref[:, 0] = e[:, 0]
    for t in range(1, n):
        ref[:, t] = rho * ref[:, t - 1] + np.sqrt(1 - rho**2) * e[:, t]
    wbb = rng.normal(size=(1, n, k, 1))
    lam = np.arange(1.0, k + 1)
    cal = calibration(make(wbb, lam), make(ref, lam))
    for name in ("sd_ratio", "mean_shift", "coverage_50", "coverage_90"):
        ratio = cal[name].std().item() / np.sqrt(np.mean(cal[name + "_mcse"].values ** 2))
        assert abs(ratio - 1) < 0.2, f"{name}: spread / mcse = {ratio:.3f}"


def test_grid_matching_sites_and_datatree():
    """Grids are matched by value; several sites are flattened; DataTree input works."""
    rng = np.random.default_rng(5)
    wbb = build_inference_data(
        {"b": rng.normal(size=(1, 200, 3, 2, 2)), "s": rng.normal(size=(1, 200, 3))},
        {"lam": [0.1, 1.0, 10.0]},
    )
    ref = build_inference_data(
        {"b": rng.normal(size=(2, 100, 2, 2, 2)), "s": rng.normal(size=(2, 100, 2))},
        {"lam": [1.0 + 1e-12, 10.0]},
    )
    tree = xr.DataTree.from_dict({"/posterior": ref.posterior})
    cal = calibration(wbb, tree)
    np.testing.assert_array_equal(cal.lam.values, [1.0 + 1e-12, 10.0])
    assert list(cal.param.values) == ["b[0,0]", "b[0,1]", "b[1,0]", "b[1,1]", "s"]
    assert list(cal.site.values) == ["b"] * 4 + ["s"]
    assert calibration(wbb, ref, var_names=["s"]).sizes["param"] == 1
    table = summarize(cal)
    assert list(table.index) == list(cal.lam.values)
    assert {"sd_ratio", "coverage_90", "n_params"} <= set(table.columns)


def test_summarize_names_the_worst_marginal():
    """Beside each median the table shows the marginal farthest from the ideal (|log r| for
    the sd ratio, |x − ideal| otherwise) and names it, per λ; a σ with 90 % coverage 0.69
    among well-calibrated coefficients shows as the worst, not hidden by the median."""
    labels = ["b[0]", "b[1]", "b[2]", "sigma"]
    values = {
        "sd_ratio": [[1.0, 1.02, 0.97, 0.6], [1.0, 1.5, 1.0, 0.8]],
        "mean_shift": [[0.0, 0.1, -0.05, 0.4], [0.0, -0.9, 0.1, 0.2]],
        "coverage_50": [[0.5, 0.49, 0.52, 0.3], [0.5, 0.5, 0.5, 0.5]],
        "coverage_90": [[0.9, 0.91, 0.89, 0.69], [0.9, 0.95, 0.97, np.nan]],
        "wasserstein": [[0.01, 0.02, 0.03, 0.4], [0.5, 0.01, 0.02, 0.01]],
    }
    cal = xr.Dataset(
        {k: (("lam", "param"), np.array(v)) for k, v in values.items()},
        coords={"lam": [0.1, 1.0], "param": labels, "site": ("param", ["b"] * 3 + ["sigma"])},
    )
    table = summarize(cal)
    assert table.loc[0.1, "coverage_90"] == pytest.approx(0.895)  # the median hides σ ...
    assert table.loc[0.1, "coverage_90_worst"] == 0.69 and table.loc[0.1, "coverage_90_worst_param"] == "sigma"
    assert table.loc[1.0, "sd_ratio_worst_param"] == "b[1]"  # |log 1.5| > |log 0.8|
    assert table.loc[1.0, "mean_shift_worst"] == -0.9
    assert table.loc[1.0, "coverage_90_worst_param"] == "sigma"  # NaN counts as the worst
    assert table.loc[1.0, "wasserstein_worst_param"] == "b[0]"
    assert list(table.columns[:3]) == ["sd_ratio", "sd_ratio_worst", "sd_ratio_worst_param"]
    two = summarize(cal.expand_dims(df=[1.0, 4.0]))
    assert two.index.names == ["df", "lam"] and (two["coverage_90_worst_param"] == "sigma").all()


def test_bad_inputs():
    wbb = make(np.zeros((1, 10, 3, P)))
    with pytest.raises(ValueError, match="share no lam value"):
        calibration(wbb, make(np.zeros((1, 10, 2, P)), lam=np.array([2.0, 3.0])))
    with pytest.raises(ValueError, match="var_names: 'c' is not in idata.posterior"):
        calibration(wbb, wbb, var_names=["c"])
    with pytest.raises(TypeError, match="reference must be InferenceData"):
        calibration(wbb, np.zeros(3))


def test_plot_returns_axes():
    cal = wbb_and_reference(6)
    axes = plot_calibration(cal)
    assert len(axes) == 2 and axes[0].get_xscale() == "log"
    import matplotlib.pyplot as plt

    plt.close("all")
    with pytest.raises(ValueError, match="one hyper dim"):
        plot_calibration(cal.expand_dims(alpha=[1.0, 2.0]))
