r"""Exact minimisation of one weighted objective: damped Newton or optimistix quasi-Newton.

:func:`newton` takes saddle-free, damped Newton steps with a backtracking (Armijo) line search.
With g = ∇f(θ) and the eigendecomposition H = ∇²f(θ) = V diag(e) Vᵀ,

.. math::

    Δ = -V\,\mathrm{diag}(1/\max(|e_j|, ε\max_k|e_k|))\,V^\top g,\qquad ε = \sqrt{\text{machine eps}},

    θ ← θ + tΔ,\quad t = 2^{-k}\ \text{the first with}\ f(θ + tΔ) \le f(θ) + 10^{-4}\,t\,g^\top Δ.

Using |e| rather than e makes Δ a descent direction where f is not convex (a plain Newton step
would head for a saddle or a maximum there). A solve has **converged** when the Newton
decrement δ = (gᵀ|H|⁻¹g)^{1/2} ≤ ``tol``. Because H is (up to the weights) the posterior
precision, δ is the distance to the optimum in posterior standard deviations: ``tol=1e-3``
means within 0.001 sd. Unconverged solves are reported (``converged=False``), never passed off
as converged.

Within δ < 1/4 (the pure Newton phase) the full step is taken without the Armijo test, provided
f is finite there: a decrease of order δ² can be below the rounding of f, which would stall
the search. The line search is what makes Newton safe far from the optimum: from θ = 0 a plain
Newton step diverges on logistic regression at small λ, and on √(1 + θ²) from any |θ| > 1.

Example:
    >>> import jax.numpy as jnp
    >>> from wbbgen.solver import newton
    >>> f = lambda th: jnp.sum((th - 1.0) ** 2) + jnp.sum(th**4)
    >>> theta, info = newton(f, jnp.zeros(3))
    >>> bool(info.converged), theta.shape
    (True, (3,))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["SolverInfo", "newton", "quasi_newton", "solve"]


class SolverInfo(NamedTuple):
    """Per-problem diagnostics of an exact solve (scalars; a leading batch axis under ``vmap``).

    Attributes:
        converged: bool -- the solver's stopping test passed (see :func:`newton`, :func:`quasi_newton`).
        grad_norm: ‖∇f‖_∞ at the returned θ.
        decrement: the Newton decrement δ at the returned θ (posterior-sd units); nan for quasi-Newton.
        num_steps: int -- iterations taken.
        loss: f at the returned θ.
    """

    converged: jax.Array
    grad_norm: jax.Array
    decrement: jax.Array
    num_steps: jax.Array
    loss: jax.Array


def _newton_direction(g, h):
    e, v = jnp.linalg.eigh(h)
    floor = jnp.finfo(e.dtype).eps ** 0.5 * jnp.max(jnp.abs(e)) + jnp.finfo(e.dtype).tiny
    inv = 1.0 / jnp.maximum(jnp.abs(e), floor)
    gv = v.T @ g
    return -(v @ (inv * gv)), jnp.sqrt(jnp.maximum(jnp.sum(inv * gv**2), 0.0))


def newton(
    fn: Callable[[jax.Array], jax.Array],
    theta0: jax.Array,
    *,
    max_steps: int = 100,
    tol: float = 1e-3,
    max_halvings: int = 40,
) -> tuple[jax.Array, SolverInfo]:
    """Minimise ``fn`` from ``theta0`` by damped, saddle-free Newton with a backtracking line search.

    Args:
        fn: f(θ) -> scalar, twice differentiable; θ of shape ``(d,)``. It may return a
            non-finite value outside its domain: the line search rejects such points.
        theta0: ``(d,)`` starting point.
        max_steps: the most Newton steps.
        tol: converged when the Newton decrement δ = (gᵀ|H|⁻¹g)^{1/2} ≤ ``tol``.
        max_halvings: the most step halvings per line search; a step that finds no finite
            decrease within them stops the solve (``converged=False``).

    Returns:
        ``(theta, info)``: θ ``(d,)`` and its :class:`SolverInfo`. Pure and jit/vmap-friendly
        (a ``lax.while_loop``; under ``vmap`` each problem keeps its own iterates and counts).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from wbbgen.solver import newton
        >>> b = jnp.array([0.2, 0.5, 0.9])
        >>> theta, info = newton(lambda th: jnp.sum(jax.nn.softplus(th) - b * th), jnp.zeros(3), tol=1e-10)
        >>> bool(jnp.allclose(theta, jnp.log(b / (1 - b)))), bool(info.converged)
        (True, True)
    """
    value_and_grad = jax.value_and_grad(fn)
    hess = jax.hessian(fn)

    def line_search(theta, f, g, delta):
        slope = jnp.dot(g, delta)

        def cond(c):
            t, f_new, k = c
            bad = ~jnp.isfinite(f_new) | (f_new > f + 1e-4 * t * slope)
            return bad & (k < max_halvings)

        def body(c):
            t, _, k = c
            t = 0.5 * t
            return t, fn(theta + t * delta), k + 1

        f_full = fn(theta + delta)
        t, f_new, _ = jax.lax.while_loop(cond, body, (jnp.ones_like(f), f_full, 0))
        return t, jnp.isfinite(f_new) & (f_new <= f), jnp.isfinite(f_full)

    def status(theta):
        f, g = value_and_grad(theta)
        delta, dec = _newton_direction(g, hess(theta))
        return f, g, delta, dec

    def cond(c):
        _, (f, g, delta, dec), k, stalled = c
        return (k < max_steps) & ~(dec <= tol) & ~stalled

    def body(c):
        theta, (f, g, delta, dec), k, _ = c
        t, ok, full_finite = line_search(theta, f, g, delta)
        # Pure Newton phase (Boyd & Vandenberghe §9.5.3): within δ < 1/4 the full step is
        # taken. There a decrease of order δ² may be below the rounding of f (always so in
        # float32 near the optimum), and the line search would accept vanishing steps. The
        # full step must still land where f is finite: near the edge of f's domain (a barrier
        # that is not self-concordant) δ < 1/4 does not keep it inside, and the line search
        # decides instead.
        t = jnp.where((dec < 0.25) & full_finite, 1.0, jnp.where(ok, t, 0.0))
        theta = theta + t * delta
        return theta, status(theta), k + 1, t == 0.0

    init = (theta0, status(theta0), 0, False)
    theta, (f, g, _, dec), k, _ = jax.lax.while_loop(cond, body, init)
    info = SolverInfo(dec <= tol, jnp.max(jnp.abs(g)), dec, k, f)
    return theta, info


def quasi_newton(fn, theta0, *, max_steps: int = 500, tol: float = 1e-3, solver: str = "lbfgs"):
    """Minimise ``fn`` with optimistix L-BFGS or BFGS (for large d, where Newton's d × d
    eigendecomposition is too costly).

    **Converged** means optimistix's Cauchy test passed within ``max_steps``: the last accepted
    step moved every coordinate by less than ``tol · (1 + |θⱼ|)`` and changed f by less than
    ``tol · (1 + |f|)`` (``rtol = atol = tol``). The gradient is not part of the test; its
    ∞-norm at the returned θ is reported in ``info.grad_norm``, and ``info.decrement`` is nan.

    Args:
        fn: f(θ) -> scalar, differentiable; θ of shape ``(d,)``.
        theta0: ``(d,)`` starting point.
        max_steps: the most iterations.
        tol: the relative and absolute tolerance of the Cauchy test.
        solver: ``"lbfgs"`` or ``"bfgs"``.

    Returns:
        ``(theta, info)`` as :func:`newton` returns them.

    Example:
        >>> import jax.numpy as jnp
        >>> from wbbgen.solver import quasi_newton
        >>> theta, info = quasi_newton(lambda th: jnp.sum((th - 2.0) ** 2), jnp.zeros(4), tol=1e-8)
        >>> bool(jnp.allclose(theta, 2.0)), bool(info.converged)
        (True, True)
    """
    import optimistix as optx

    solvers = {"lbfgs": optx.LBFGS, "bfgs": optx.BFGS}
    if solver not in solvers:
        raise ValueError(f"`solver={solver!r}` is unknown; choose 'lbfgs' or 'bfgs'.")
    opt = solvers[solver](rtol=tol, atol=tol)
    sol = optx.minimise(lambda y, _: fn(y), opt, theta0, max_steps=max_steps, throw=False)
    f, g = jax.value_and_grad(fn)(sol.value)
    ok = sol.result == optx.RESULTS.successful
    info = SolverInfo(ok, jnp.max(jnp.abs(g)), jnp.full_like(f, jnp.nan), sol.stats["num_steps"], f)
    return sol.value, info


def solve(fn, theta0, *, method: str = "newton", max_steps: int | None = None, tol: float = 1e-3):
    """Minimise ``fn`` by ``method``: ``"newton"`` (:func:`newton`, default ``max_steps=100``) or
    ``"lbfgs"``/``"bfgs"`` (:func:`quasi_newton`, default ``max_steps=1000``).

    Returns ``(theta, info)`` with a :class:`SolverInfo`. An unknown ``method`` raises ValueError
    (its message also names ``"auto"``, which :func:`wbbgen.exact.exact_wbb` resolves first).

    Example:
        >>> import jax.numpy as jnp
        >>> from wbbgen.solver import solve
        >>> theta, info = solve(lambda th: jnp.sum(jnp.cosh(th - 1.0)), jnp.zeros(2), method="bfgs")
        >>> bool(info.converged)
        True
    """
    if method == "newton":
        return newton(fn, theta0, max_steps=max_steps or 100, tol=tol)
    if method in ("lbfgs", "bfgs"):
        return quasi_newton(fn, theta0, max_steps=max_steps or 1000, tol=tol, solver=method)
    raise ValueError(f"`method={method!r}` is unknown; choose 'auto', 'newton', 'lbfgs' or 'bfgs'.")
