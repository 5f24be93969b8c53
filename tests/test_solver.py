"""wbbgen.solver: damped Newton and quasi-Newton against known optima, Newton's quadratic rate,
the line search's safeguards, the convergence flag, and vmapped use.

Tolerances come from the mathematics of each case: closed-form optima (to float64 rounding),
strong convexity (‖θ − θ*‖ ≤ ‖∇f(θ)‖/μ), Newton's error recursion e_{k+1} ≤ L/(2m)·e_k², and the
solvers' own stopping rules.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from wbbgen.solver import SolverInfo, newton, quasi_newton, solve

# Separable logistic-type objective f(θ) = Σⱼ softplus(θⱼ) − bⱼθⱼ: strictly convex, with
# ∇f = σ(θ) − b, so θ*ⱼ = logit(bⱼ) in closed form.
B = np.array([0.3, 0.6, 0.8])
THETA_STAR = np.log(B / (1 - B))


def softplus_objective(b):
    return lambda th: jnp.sum(jax.nn.softplus(th) - b * th)


def logistic_regression():
    """L2 logistic regression Σᵢ softplus(xᵢβ) − yᵢxᵢβ + λ/2‖β‖² (n = 40, d = 3, λ = 0.5)."""
    k1, k2 = jax.random.split(jax.random.key(0))
    X = np.asarray(jax.random.normal(k1, (40, 3)))
    y = (np.asarray(jax.random.uniform(k2, (40,))) < 1 / (1 + np.exp(-X @ np.array([1.0, -2.0, 0.5])))).astype(float)
    lam = 0.5

    def f(b):
        z = X @ b
        return jnp.sum(jnp.logaddexp(0.0, z) - y * z) + 0.5 * lam * b @ b

    def f_np(b):
        z = X @ b
        return np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * b @ b

    def grad_np(b):
        return X.T @ (1 / (1 + np.exp(-(X @ b))) - y) + lam * b

    return f, f_np, grad_np, lam, X.shape[1]


def test_quadratic_is_solved_in_one_step():
    """f = ½(θ − m)ᵀA(θ − m): the Newton step from anywhere lands on m (to rounding), so one
    step, a decrement at rounding level, and converged=True."""
    A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
    m = np.array([1.0, -2.0, 3.0])
    f = lambda th: 0.5 * (th - m) @ A @ (th - m)
    theta, info = newton(f, jnp.zeros(3))
    np.testing.assert_allclose(theta, m, rtol=0, atol=1e-12)
    assert bool(info.converged) and int(info.num_steps) == 1
    assert float(info.decrement) < 1e-12 and float(info.grad_norm) < 1e-12
    assert float(info.loss) == pytest.approx(0.0, abs=1e-24)


def test_known_optimum_of_a_separable_logistic_objective():
    """θ* = logit(b) to float64 rounding at tol=1e-10: for this f the decrement bounds the
    error in Hessian units, and the Hessian is ≥ 0.16 here, so 1e-10 sd is < 3e-10 in θ."""
    theta, info = newton(softplus_objective(B), jnp.zeros(3), tol=1e-10)
    np.testing.assert_allclose(theta, THETA_STAR, rtol=0, atol=3e-10)
    assert bool(info.converged) and float(info.decrement) <= 1e-10


@pytest.mark.parametrize("method", ["newton", "lbfgs", "bfgs"])
def test_logistic_regression_agrees_with_scipy(method):
    """L2 logistic regression, against scipy's BFGS. The objective is λ-strongly convex, so
    ‖β − β*‖₂ ≤ ‖∇f(β)‖₂/λ for any β: the two answers differ by at most the sum of those
    bounds (with float64 rounding on top), whatever each solver's stopping rule."""
    f, f_np, grad_np, lam, d = logistic_regression()
    ref = scipy.optimize.minimize(f_np, np.zeros(d), jac=grad_np, method="BFGS", options={"gtol": 1e-10})
    theta, info = solve(f, jnp.zeros(d), method=method, tol=1e-10)
    theta = np.asarray(theta)
    bound = (np.linalg.norm(grad_np(theta)) + np.linalg.norm(grad_np(ref.x))) / lam
    assert np.linalg.norm(theta - ref.x) <= bound + 1e-12
    assert bound < 1e-6  # both really are at the optimum
    assert bool(info.converged)
    assert float(info.loss) == pytest.approx(f_np(theta), rel=1e-12)
    assert float(info.grad_norm) == pytest.approx(np.max(np.abs(grad_np(theta))), rel=1e-6, abs=1e-15)


def test_newton_converges_quadratically():
    """Newton's error recursion for a separable f: e_{k+1} = |f'''(ξ)| / (2 f''(θ_k)) · e_k²
    with ξ between θ_k and θ*. For softplus, |f'''| = |σ'(1 − 2σ)| ≤ 1/(6√3) everywhere and
    f'' = σ' is unimodal, so on the interval spanned by the iterates and θ* it is at least its
    value at an end: that gives each coordinate's constant C = 1/(6√3)/(2 m) and the bound
    e_{k+1} ≤ C e_k². Checked while e_k > 1e-6 (so e_{k+1} is far above float64 rounding);
    a linearly convergent method would break the bound within two steps."""
    f = softplus_objective(B)
    # The k-th iterate is the result of a solve stopped after k steps (tol=0: never converged);
    # max_steps traced, so one compilation serves every k.
    stopped_after = jax.jit(lambda k: newton(f, jnp.zeros(3), max_steps=k, tol=0.0)[0])
    iterates = np.stack([np.asarray(stopped_after(k)) for k in range(6)])
    err = np.abs(iterates - THETA_STAR)
    dsig = lambda x: 1 / (2 + np.exp(x) + np.exp(-x))  # σ'(x)
    lo, hi = np.minimum(iterates.min(0), THETA_STAR), np.maximum(iterates.max(0), THETA_STAR)
    C = 1 / (6 * np.sqrt(3)) / (2 * np.minimum(dsig(lo), dsig(hi)))
    checked = 0
    for k in range(5):
        for j in range(3):
            if err[k, j] > 1e-6:
                assert err[k + 1, j] <= C[j] * err[k, j] ** 2 * (1 + 1e-9) + 1e-15, (k, j, err[:, j])
                checked += 1
    assert checked >= 6  # at least two steps per coordinate tested
    assert err[5].max() < 1e-14  # five steps from 0 reach rounding level


def test_line_search_rescues_a_diverging_newton_step():
    """f(θ) = Σ √(1 + θⱼ²): plain Newton maps θ to −θ³ and diverges from |θ| > 1 (2 → −8 → 512);
    the backtracking line search takes shorter steps and reaches the minimiser 0. With
    tol=1e-8 the decrement δ = |θ|(1 + θ²)^{1/4} per coordinate bounds |θ| by 1e-8."""
    f = lambda th: jnp.sum(jnp.sqrt(1 + th**2))
    theta0 = jnp.array([2.0, -3.0, 0.5])
    g, h = jax.grad(f)(theta0), jax.hessian(f)(theta0)
    plain = theta0 - jnp.linalg.solve(h, g)
    np.testing.assert_allclose(plain, -(theta0**3), rtol=1e-12)
    assert float(f(plain)) > float(f(theta0))  # the full step goes uphill
    theta, info = newton(f, theta0, tol=1e-8)
    assert bool(info.converged)
    np.testing.assert_allclose(theta, 0.0, atol=1e-8)


def test_line_search_rejects_non_finite_trial_points():
    """A log barrier: f(θ) = (θ − 3)² − 0.01 log(2 − θ), finite only for θ < 2. From 0 the full
    Newton step lands at 2.994, where f is nan; halving gives a finite point, and the solve
    reaches the minimiser θ* = (10 − √4.08)/4, a root of 2θ² − 10θ + 11.99 = 0."""
    f = lambda th: jnp.sum((th - 3.0) ** 2 - 0.01 * jnp.log(2.0 - th))
    theta0 = jnp.zeros(1)
    plain = theta0 - jax.grad(f)(theta0) / jax.hessian(f)(theta0)[0, 0]
    assert not np.isfinite(float(f(plain)))
    theta, info = newton(f, theta0, tol=1e-10)
    assert bool(info.converged)
    np.testing.assert_allclose(theta, (10 - np.sqrt(4.08)) / 4, rtol=1e-12)


def test_saddle_free_step_descends_from_negative_curvature():
    """f(θ) = Σ θ⁴/4 − θ²/2 from θ = ±0.1, where f'' = −0.97 < 0: the plain Newton step goes to
    the local maximum at 0; the saddle-free step (curvature |f''|) descends to the minima ±1
    on the same side. Error at δ ≤ 1e-8 with f''(±1) = 2: below 1e-8."""
    f = lambda th: jnp.sum(th**4 / 4 - th**2 / 2)
    theta, info = newton(f, jnp.array([0.1, -0.1]), tol=1e-8)
    assert bool(info.converged)
    np.testing.assert_allclose(theta, [1.0, -1.0], atol=1e-8)


def test_too_few_steps_report_not_converged():
    """From θ = 3, √(1 + θ²) needs four damped steps (3 → −0.75 → 0.42 → …): max_steps=2
    returns converged=False, num_steps=2 and the decrement that failed the test."""
    f = lambda th: jnp.sum(jnp.sqrt(1 + th**2))
    theta, info = newton(f, jnp.array([3.0]), max_steps=2)
    assert isinstance(info, SolverInfo)
    assert not bool(info.converged) and int(info.num_steps) == 2
    assert float(info.decrement) > 1e-3
    assert float(info.loss) == pytest.approx(float(f(theta)), rel=1e-14)
    _, qinfo = quasi_newton(softplus_objective(B), jnp.zeros(3), max_steps=2)
    assert not bool(qinfo.converged) and int(qinfo.num_steps) == 2
    assert np.isnan(float(qinfo.decrement))


def test_a_stalled_line_search_stops_and_reports_not_converged():
    """Where every trial point of the line search is non-finite (f is nan for θ > 2 and the
    descent direction points there), the solve stops after one step at its last finite
    iterate and says it did not converge, instead of returning nan."""
    f = lambda th: jnp.sum((th - 3.0) ** 2) + jnp.sum(jnp.where(th > 2.0, jnp.nan, 0.0))
    theta, info = newton(f, jnp.array([2.0]))
    assert not bool(info.converged) and int(info.num_steps) == 1
    np.testing.assert_array_equal(theta, [2.0])


def test_quasi_newton_known_optimum_and_its_stopping_rule():
    """L-BFGS and BFGS reach θ* = logit(b). Their test is optimistix's Cauchy rule (last step
    below tol·(1 + |θ|) per coordinate, last change of f below tol·(1 + |f|)); near θ* they
    converge superlinearly, so the remaining error is below the last step: 10× that bound."""
    f = softplus_objective(B)
    for method in ("lbfgs", "bfgs"):
        theta, info = quasi_newton(f, jnp.zeros(3), tol=1e-8, solver=method)
        assert bool(info.converged), method
        np.testing.assert_allclose(theta, THETA_STAR, rtol=0, atol=10 * 1e-8 * (1 + np.abs(THETA_STAR)).max())
        assert np.isnan(float(info.decrement))


def test_vmapped_solves_match_one_by_one():
    """A batch of problems (b per row) under jax.vmap: each row reaches its closed form, and
    rows agree with their own unbatched solves, steps included (the batched while loop
    freezes rows that are done)."""
    bs = np.array([[0.3, 0.6, 0.8], [0.5, 0.5, 0.5], [0.05, 0.95, 0.2], [0.7, 0.1, 0.4]])
    solve_one = lambda b: newton(softplus_objective(b), jnp.zeros(3), tol=1e-10)
    theta, info = jax.jit(jax.vmap(solve_one))(jnp.asarray(bs))
    assert theta.shape == (4, 3) and info.converged.shape == (4,)
    np.testing.assert_allclose(theta, np.log(bs / (1 - bs)), rtol=0, atol=1e-9)
    assert bool(info.converged.all())
    for i, b in enumerate(bs):
        t_i, info_i = solve_one(jnp.asarray(b))
        np.testing.assert_allclose(theta[i], t_i, rtol=0, atol=1e-14)
        assert int(info.num_steps[i]) == int(info_i.num_steps)
    assert len(set(np.asarray(info.num_steps).tolist())) > 1  # the rows really needed different step counts


def test_solve_dispatch_and_bad_names():
    f = softplus_objective(B)
    for method in ("newton", "lbfgs", "bfgs"):
        theta, info = solve(f, jnp.zeros(3), method=method, tol=1e-8)
        np.testing.assert_allclose(theta, THETA_STAR, atol=1e-6)
    with pytest.raises(ValueError, match="method='gradient'"):
        solve(f, jnp.zeros(3), method="gradient")
    with pytest.raises(ValueError, match="solver='adam'"):
        quasi_newton(f, jnp.zeros(3), solver="adam")
