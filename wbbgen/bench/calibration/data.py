"""The data sets, models, sizes and reference posteriors of the calibration study."""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from wbbgen.convert import build_inference_data
from wbbgen.datasets import breast_cancer
from wbbgen.models import logistic

__all__ = [
    "SCHEMES",
    "PROBLEMS",
    "SMOKE_PROBLEMS",
    "SMOKE_SCHEMES",
    "TARGET_SD",
    "TARGET_COV90",
    "ridge_model",
    "logistic_flat_model",
    "ridge_posterior",
    "ridge_reference",
    "separable",
    "Sizes",
    "FULL",
    "SMOKE",
    "make_data",
]

SCHEMES = ("random", "fixed", "anchored")
PROBLEMS = ("ridge", "breast_cancer", "breast_cancer_flat", "synthetic_logistic")
#: ``--smoke`` runs every step of the study once (exact Gaussian and NUTS references, a flat
#: intercept, exact WBB, generator, tables, plots, SBC) but not every combination: compilation,
#: not arithmetic, dominates at tiny sizes (~10 s per scheme and data set).
SMOKE_PROBLEMS = ("ridge", "breast_cancer_flat")
SMOKE_SCHEMES = ("anchored",)
TARGET_SD = (0.9, 1.1)
TARGET_COV90 = (0.85, 0.95)


# ----------------------------------------------------------------------------- models
# Module-level functions: AmortizedWBB matches results to models by qualified name.


def ridge_model(X, y=None, *, lam=1.0, sigma=1.0):
    """Conjugate ridge: β ~ N(0, I/λ), y ~ N(Xβ, σ²) with σ known."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def logistic_flat_model(X, y=None, *, lam=1.0):
    """L2 logistic regression with an unpenalised intercept b0 ~ ImproperUniform(ℝ)."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    b0 = numpyro.sample("b0", dist.ImproperUniform(constraints.real, (), ()))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b0 + X @ beta), obs=y)


def ridge_posterior(X, y, lam, sigma=1.0):
    """Mean and covariance of the conjugate ridge posterior (float64)."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    A = X.T @ X / sigma**2 + lam * np.eye(X.shape[1])
    cov = np.linalg.inv(A)
    return cov @ X.T @ y / sigma**2, cov


def ridge_reference(X, y, grid, *, sigma=1.0, num_chains=4, num_samples=1000, seed=0):
    """i.i.d. draws of the exact ridge posterior at each λ, as InferenceData with the
    layout of :func:`wbbgen.nuts_reference` (so :func:`wbbgen.calibration` can consume it)."""
    rng = np.random.default_rng(seed)
    p = np.shape(X)[1]
    draws = np.empty((num_chains, num_samples, len(grid), p))
    for k, lam in enumerate(grid):
        mean, cov = ridge_posterior(X, y, lam, sigma)
        z = rng.standard_normal((num_chains, num_samples, p))
        draws[:, :, k] = mean + z @ np.linalg.cholesky(cov).T
    return build_inference_data({"beta": draws}, {"lam": np.asarray(grid)})


def separable(X, y) -> bool:
    """Whether a hyperplane separates the classes (LP feasibility of s_i(x_iᵀw + b) ≥ 1):
    then the MLE does not exist and the posterior at small λ is wide and skewed."""
    from scipy.optimize import linprog

    X, s = np.asarray(X, np.float64), 2 * np.asarray(y, np.float64) - 1
    A = -(s[:, None] * np.c_[X, np.ones(len(s))])
    res = linprog(
        np.zeros(A.shape[1]), A_ub=A, b_ub=-np.ones(len(s)), bounds=[(None, None)] * A.shape[1], method="highs"
    )
    return bool(res.status == 0)


# ----------------------------------------------------------------------------- sizes


@dataclass
class Sizes:
    grid: list = field(default_factory=lambda: np.logspace(-2, 3, 6).tolist())
    num_samples: int = 1000  # WBB draws per λ (exact and generator)
    nuts_chains: int = 4
    nuts_warmup: int = 1000
    nuts_samples: int = 1000
    num_steps: int = 6000  # generator training steps
    batch_size: int = 256
    ridge_n: int = 100
    ridge_p: int = 10
    synth_n: int = 1000
    synth_p: int = 10
    bc_rows: int | None = None  # None: the whole training split
    bc_cols: int | None = None
    sbc_replicates: int = 1000
    sbc_draws: int = 99


FULL = Sizes()
SMOKE = Sizes(
    grid=[0.1, 100.0],
    num_samples=64,
    nuts_chains=1,
    nuts_warmup=60,
    nuts_samples=60,
    num_steps=20,
    batch_size=16,
    ridge_n=30,
    ridge_p=3,
    synth_n=60,
    synth_p=3,
    bc_rows=60,
    bc_cols=3,
    sbc_replicates=50,
    sbc_draws=19,
)


def make_data(name: str, sizes: Sizes, dtype):
    """``(model, args, info)`` of a data set at the given sizes."""
    if name == "ridge":
        rng = np.random.default_rng(1)
        n, p = sizes.ridge_n, sizes.ridge_p
        X = rng.standard_normal((n, p))
        beta = 0.5 * rng.standard_normal(p)
        y = X @ beta + rng.standard_normal(n)
        info = {"n": n, "p": p, "signal_var": float(beta @ beta), "sigma": 1.0, "reference": "exact Gaussian"}
        return ridge_model, (X.astype(dtype), y.astype(dtype)), info
    if name == "synthetic_logistic":
        rng = np.random.default_rng(2)
        n, p = sizes.synth_n, sizes.synth_p
        X = rng.standard_normal((n, p))
        beta = 0.5 * np.resize([1.0, -1.0, 0.8, -0.8, 0.6, -0.6, 0.4, -0.4, 0.2, -0.2], p)
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(X @ beta - 0.3)))).astype(float)
        info = {"n": n, "p": p, "beta_norm": float(np.linalg.norm(beta)), "b0": -0.3, "reference": "NUTS"}
        return logistic, (X.astype(dtype), y.astype(dtype)), info | {"separable": separable(X, y)}
    if name in ("breast_cancer", "breast_cancer_flat"):
        d = breast_cancer(dtype=np.float64)
        X, y = d.X_train[: sizes.bc_rows, : sizes.bc_cols], d.y_train[: sizes.bc_rows]
        model = logistic if name == "breast_cancer" else logistic_flat_model
        intercept = "N(0, 10²)" if name == "breast_cancer" else "flat (ImproperUniform)"
        info = {"n": X.shape[0], "p": X.shape[1], "intercept_prior": intercept, "reference": "NUTS"}
        return model, (X.astype(dtype), y.astype(dtype)), info | {"separable": separable(X, y)}
    raise ValueError(f"unknown data set {name!r}; choose from {PROBLEMS}")
