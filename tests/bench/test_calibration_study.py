r"""The scheme-choice study (:mod:`wbbgen.bench.calibration`): a smoke run, and slow comparisons of
anchored exact WBB with NUTS on a synthetic, far-from-separable logistic regression.

Budget of the slow test (stated before looking at its outcome, derived from the first-order
theory). Per coordinate, the WBB sd ratio to the posterior is, to first order,
r₁ = √(diag(A⁻¹(B + Λ)A⁻¹) / diag(A⁻¹)) with A = H + Λ, H the Fisher information and B the
empirical score covariance at the MAP (``first_order_sd_ratio`` in the benchmark): anchored WBB
is exact to first order only where B = H. Beyond first order, the randomness of the weighted
Hessian and the posterior's departure from its Laplace approximation are O(d/n) in relative
variance (d = 11 parameters, n = 1000 observations); we allow 3·d/n = 0.033 for them in the sd
ratio, and none of it is fitted. Monte Carlo error: the median over coordinates of the
per-coordinate MCSEs from :func:`wbbgen.calibration` (WBB: 2000 i.i.d. draws; NUTS: 4 × 1000
draws, ESS from ArviZ) -- conservative for a median of 11 coordinates, whose errors are
correlated (shared weights and chains) so that no smaller bound is derived here -- at
z = Φ⁻¹(1 − 1e-3/24) = 3.9 (6 λ × 2 two-sided checks, family-wise 1e-3, Bonferroni). So at
each λ:

    |median sd ratio − median r₁| ≤ z·MCSE + 3d/n,      and
    |median 90 % coverage − 0.9| ≤ 0.34·(z·MCSE_sd + |median r₁ − 1| + 3d/n) + z·MCSE_cov,

where 0.34 = ∂/∂r[2Φ(1.645 r) − 1] at r = 1 turns an sd-ratio error into a coverage error.
The test runs in float64 (tests/conftest.py).
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy.stats import norm

from wbbgen.bench import calibration as study

ROW_KEYS = {
    "lam",
    "sd_ratio",
    "sd_ratio_mcse",
    "sd_ratio_min",
    "sd_ratio_max",
    "coverage_90",
    "coverage_90_mcse",
    "max_abs_mean_shift",
    "max_abs_mean_shift_mcse",
    "max_abs_mean_shift_param",
    "meets_target",
    "per_param",
}


@pytest.mark.slow
def test_smoke_run_writes_wellformed_outputs(tmp_path, request):
    """``--smoke`` end to end in a subprocess (float32, as users run it). JAX compilation
    dominates at smoke size; a persistent compilation cache in pytest's cache directory makes
    reruns faster (it does not change any number)."""
    env = dict(os.environ)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(request.config.cache.mkdir("jax-compilation-cache")))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "wbbgen", "bench", "calibration", "--out", str(tmp_path), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # the installed package, not a source checkout
        env=env,
    )
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "calibration.json").read_text())  # allow_nan=False when written
    assert report["sizes_label"] == "smoke"
    grid = report["sizes"]["grid"]
    assert set(report["problems"]) == set(study.SMOKE_PROBLEMS)
    for name, entry in report["problems"].items():
        assert entry["grid"] == pytest.approx(grid)
        assert entry["timings"]["reference_s"] > 0
        assert (tmp_path / f"calibration_{name}.png").stat().st_size > 0
        for scheme in report["schemes"]:
            per = entry["schemes"][scheme]
            for path in ("exact", "generator"):
                rows = per[path]
                assert len(rows) == len(grid)
                for row, lam in zip(rows, grid):
                    assert ROW_KEYS <= set(row)
                    assert row["lam"] == pytest.approx(lam)
                    assert row["sd_ratio"] > 0 and row["sd_ratio_mcse"] > 0
                    assert 0 <= row["coverage_90"] <= 1 and row["max_abs_mean_shift"] >= 0
                    assert isinstance(row["meets_target"], bool)
                    # d ≤ 4 parameters for 64 draws: k̂ is available, the ESS a fraction of M
                    assert row["pareto_k"] is not None and 0 < row["posterior_check_ess"] <= 1
                    assert row["posterior_check_flagged"] == (row["pareto_k"] > 0.7)
                    assert len(row["per_param"]) == entry["info"]["p"] + (name != "ridge")
            assert len(per["generator_vs_exact"]) == len(grid) == len(per["first_order_sd_ratio"])
            assert all(0 <= c <= 1 for c in per["exact_converged"])
            assert {"exact_wbb_grid_s", "generator_train_s", "generator_eval_s"} <= set(per["timings"])
    sbc = report["sbc"]
    assert sbc["results"] and all(
        0 <= r["p_value"] <= 1 and sum(r["counts"]) == sbc["num_replicates"] for r in sbc["results"]
    )
    assert (tmp_path / "sbc_ranks.png").stat().st_size > 0
    md = (tmp_path / "calibration.md").read_text()
    assert "| data set |" in md and "Wall times" in md and "Posterior check" in md
    assert report["total_wall_s"] < elapsed


def test_first_order_prediction_is_exact_for_the_fixed_scheme_in_ridge():
    """Ridge, fixed prior weight: the WBB draw is a weighted least-squares solve whose
    covariance, to first order, is A⁻¹BA⁻¹; check the helper against a direct Monte Carlo of
    that linearisation (the sandwich), which it must equal up to MC error."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3))
    y = X @ np.array([1.0, -0.5, 0.2]) + rng.standard_normal(400)
    lam = 50.0
    ratio = study.first_order_sd_ratio(X, y, lam, "fixed", kind="ridge")
    A = X.T @ X + lam * np.eye(3)
    m = np.linalg.solve(A, X.T @ y)
    r = y - X @ m
    w = rng.exponential(size=(20000, 400)) - 1
    draws = (w * r) @ X @ np.linalg.inv(A)  # A⁻¹ Σᵢ (wᵢ − 1) rᵢ xᵢ, one row per draw
    mc = draws.std(0) / np.sqrt(np.diag(np.linalg.inv(A)))
    # sd of a near-normal sd estimate from S draws: 1/√(2S); z = 4 over 3 coordinates
    np.testing.assert_allclose(ratio, mc, rtol=4 / np.sqrt(2 * 20000))


# ------------------------------------------------------------------------------- slow


@pytest.fixture(scope="module")
def synthetic_logistic():
    """NUTS and anchored exact WBB on the synthetic logistic data set of the study, float64."""
    import warnings

    import jax
    import jax.numpy as jnp

    from wbbgen import calibration, exact_wbb, nuts_reference

    model, args, info = study.make_data("synthetic_logistic", study.FULL, np.float64)
    assert not info["separable"]
    grid = np.logspace(-2, 3, 6)
    data = tuple(jnp.asarray(a) for a in args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unreliable reference must fail loudly
        ref = nuts_reference(jax.random.key(0), model, *data, hyper={"lam": grid}, progress_bar=False)
    wbb = exact_wbb(jax.random.key(1), model, *data, hyper={"lam": grid}, num_samples=2000, progress_bar=False)
    assert np.all(wbb.stats["converged"])
    cal = calibration(wbb.to_inference_data(log_likelihood=False), ref)
    first = [study.first_order_sd_ratio(*args, lam, "anchored", b0_prec=1e-2) for lam in grid]
    return grid, cal, first, args


Z = norm.ppf(1 - 1e-3 / 24)  # 3.9


@pytest.mark.slow
def test_anchored_sd_ratio_matches_nuts_within_budget(synthetic_logistic):
    grid, cal, first, args = synthetic_logistic
    n, d = args[0].shape[0], args[0].shape[1] + 1
    budget = 3 * d / n
    for k, lam in enumerate(grid):
        c = cal.isel(lam=k)
        med = float(c.sd_ratio.median())
        mcse = float(c.sd_ratio_mcse.median())
        pred = float(np.median(first[k]))
        assert abs(med - pred) <= Z * mcse + budget, (
            f"λ={lam:g}: sd ratio {med:.3f}, first order {pred:.3f}, mcse {mcse:.3f}"
        )
        # and the theory itself says anchored WBB is close to the posterior on these data
        assert abs(pred - 1) < 0.05, f"λ={lam:g}: first-order sd ratio {pred:.3f}"


@pytest.mark.slow
def test_anchored_coverage_matches_nuts_within_budget(synthetic_logistic):
    grid, cal, first, args = synthetic_logistic
    n, d = args[0].shape[0], args[0].shape[1] + 1
    slope = 2 * 1.645 * norm.pdf(1.645)
    for k, lam in enumerate(grid):
        c = cal.isel(lam=k)
        cov, cov_se = float(c.coverage_90.median()), float(c.coverage_90_mcse.median())
        sd_err = Z * float(c.sd_ratio_mcse.median()) + abs(float(np.median(first[k])) - 1) + 3 * d / n
        assert abs(cov - 0.9) <= slope * sd_err + Z * cov_se, f"λ={lam:g}: coverage {cov:.3f} ± {cov_se:.3f}"
