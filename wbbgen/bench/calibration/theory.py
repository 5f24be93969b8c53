"""The first-order (delta-method) theory of the WBB / posterior sd ratio per prior scheme."""

from __future__ import annotations

import numpy as np

__all__ = ["first_order_sd_ratio", "predicted"]


def first_order_sd_ratio(X, y, lam, scheme, *, kind="logistic", b0_prec=None, sigma=1.0):
    r"""First-order (delta-method) prediction of the WBB / posterior sd ratio per coordinate.

    At the MAP θ* with H the data term's Hessian (Fisher information), B = Σᵢ sᵢsᵢᵀ the
    empirical covariance of the per-observation scores (what Exp(1) weights inject), Λ the
    prior precision and A = H + Λ, the WBB covariance is A⁻¹ M A⁻¹ with M = B + Λ
    (``anchored``), B (``fixed``) or B + Λθ*θ*ᵀΛ (``random``: (w₀ − 1)·Λθ* perturbs the
    score), while the posterior's is A⁻¹ (Laplace). Returns √(diag(A⁻¹MA⁻¹)/diag(A⁻¹)),
    coordinates β₁…β_p then the intercept (``kind="logistic"``; ``b0_prec`` its prior
    precision, 0 for flat) or β only (``kind="ridge"``, σ known).
    """
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    if kind == "ridge":
        H = X.T @ X / sigma**2
        L = lam * np.eye(X.shape[1])
        theta = np.linalg.solve(H + L, X.T @ y / sigma**2)
        r = y - X @ theta
        B = (X * (r**2 / sigma**4)[:, None]).T @ X
    else:
        X1 = np.c_[X, np.ones(len(y))]
        prec = np.r_[np.full(X.shape[1], lam), b0_prec]
        L = np.diag(prec)
        theta = np.zeros(X1.shape[1])
        f = lambda t: np.sum(np.logaddexp(0, X1 @ t) - y * (X1 @ t)) + 0.5 * np.sum(prec * t**2)  # noqa: E731
        for _ in range(200):  # Newton with backtracking, float64
            p = 1 / (1 + np.exp(-(X1 @ theta)))
            g = X1.T @ (p - y) + prec * theta
            step = np.linalg.solve((X1 * (p * (1 - p))[:, None]).T @ X1 + L, g)
            t = 1.0
            while f(theta - t * step) > f(theta) - 1e-4 * t * (g @ step) and t > 1e-10:
                t /= 2
            theta = theta - t * step
            if g @ step < 1e-20:
                break
        p = 1 / (1 + np.exp(-(X1 @ theta)))
        H = (X1 * (p * (1 - p))[:, None]).T @ X1
        B = (X1 * ((y - p) ** 2)[:, None]).T @ X1
    M = {"anchored": B + L, "fixed": B, "random": B + np.outer(L @ theta, L @ theta)}[scheme]
    Ai = np.linalg.inv(H + L)
    return np.sqrt(np.diag(Ai @ M @ Ai) / np.diag(Ai))


def predicted(name, model_args, grid, scheme) -> list[float]:
    """Median over coordinates of :func:`first_order_sd_ratio` at each λ of the grid."""
    X, y = model_args
    if name == "ridge":
        kw = {"kind": "ridge"}
    else:
        kw = {"b0_prec": 0.0 if name == "breast_cancer_flat" else 1e-2}
    return [float(np.median(first_order_sd_ratio(X, y, float(lam), scheme, **kw))) for lam in grid]
