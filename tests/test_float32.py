"""The float32 pass: core paths with x64 off, as users run them on GPUs.

The rest of the suite runs with x64 on (tests/conftest.py) so that tolerances reflect the
algorithms; here every test runs inside ``jax.enable_x64(False)`` (this module only; the
library never flips the setting), and the data are float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ridge_problem import HYPER, P, make_data, ridge

from wbbgen import AmortizedWBB, exact_wbb
from wbbgen.problem import draws, make_problem

GRID = np.array([1e-2, 1.0, 1e2])
S = 20
TOL = 1e-3  # exact_wbb's default Newton-decrement tolerance, in posterior sd


@pytest.fixture(autouse=True)
def float32():
    with jax.enable_x64(False):
        yield


@pytest.fixture
def data():
    X, y = make_data()
    assert X.dtype == jnp.float32
    return X, y


def test_exact_ridge_matches_the_float64_closed_form(data):
    """exact_wbb in float32 against θ* = (XᵀVX + w₀λI)⁻¹(XᵀVy + λa), computed in float64 from
    the same float32 weights, prior draws and data. For this quadratic the Newton decrement is
    the error's norm in the Hessian metric, ‖θ − θ*‖_H with H = XᵀVX + w₀λI, and exact_wbb
    stops at δ ≤ tol; so every draw is within tol posterior sd of θ*, plus the float32 rounding
    of the decrement itself: each gradient coordinate carries an absolute error of about
    n·eps₃₂·max|vᵢxᵢrᵢ| ≈ 1e-4 (n = 100), so at most √p·1e-4 ≈ 2.3e-4 sd once divided by
    √λ_min(H) ≥ 1."""
    X, y = data
    key = jax.random.key(2)
    s = exact_wbb(key, ridge, X, y, hyper={"lam": GRID}, num_samples=S, tol=TOL, progress_bar=False)
    assert s["beta"].dtype == np.float32 and s["beta"].shape == (len(GRID), S, P)
    assert bool(np.all(s.stats["converged"]))

    problem = make_problem(ridge, (X, y), {}, ("lam",), "exponential", "anchored")
    v, pd = draws(problem, key, jnp.asarray(GRID, jnp.float32)[:, None], S, problem.objective.data)
    v, w0, shift = (np.asarray(a, np.float64) for a in (v, pd.weight, pd.shift))
    Xn, yn = np.asarray(X, np.float64), np.asarray(y, np.float64)
    worst = 0.0
    for k, lam in enumerate(GRID):
        for j in range(S):
            H = Xn.T @ (v[j][:, None] * Xn) + w0[k, j] * lam * np.eye(P)
            assert np.linalg.eigvalsh(H).min() >= 1.0
            want = np.linalg.solve(H, Xn.T @ (v[j] * yn) + lam * shift[k, j])
            err = np.asarray(s["beta"][k, j], np.float64) - want
            worst = max(worst, float(np.sqrt(err @ H @ err)))
    assert worst <= TOL + np.sqrt(P) * 1e-4, worst


@pytest.mark.pipeline
def test_short_amortized_run_gives_finite_float32_draws(data):
    """A short AmortizedWBB run (pilot, 60 training steps) end to end in float32: finite
    losses, a float32 generator, and finite float32 draws over a λ grid."""
    X, y = data
    small = {"width": 32, "depth": 1}
    infer = AmortizedWBB(
        ridge, hyper=HYPER, batch_size=32, num_pilot=3, fidelity_samples=0, chunk_size=30, generator_options=small
    )
    result = infer.run(jax.random.key(1), X, y, num_steps=60, progress_bar=False)
    assert np.all(np.isfinite(np.asarray(result.losses)))
    params = [x for x in jax.tree_util.tree_leaves(result.generator) if isinstance(x, jax.Array)]
    assert params and all(x.dtype == jnp.float32 for x in params if jnp.issubdtype(x.dtype, jnp.floating))
    samples = infer.get_samples(jax.random.key(2), result, hyper={"lam": [0.1, 1.0, 10.0]}, num_samples=16)
    beta = samples["beta"]
    assert beta.shape == (3, 16, P) and beta.dtype == np.float32
    assert np.all(np.isfinite(np.asarray(beta)))
