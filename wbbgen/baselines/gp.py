r"""A small Gaussian-process regressor (tinygp) shared by the GP tuners: GP-BO, Sinha et al.'s
value-function fit and Ariafar et al.'s multi-task BO.

Inputs are scaled to the unit box, u = (log λ − low) / (high − low); outputs standardised.
Kernel: a Matérn-5/2 with one length scale per input (ARD), amplitude σ_f² and Gaussian noise
σ_n² (σ_n ≥ 10⁻² in standardised units, so that float32 Cholesky factors stay well
conditioned); with ``num_tasks > 1`` the kernel is multiplied by
a task covariance B = vvᵀ + diag(d) (an intrinsic coregionalisation model, Bonilla et al.
2008), so observations on one task inform the others in proportion to their correlation.
Kernel parameters maximise the log marginal likelihood (Adam, 150 steps from fixed starts).
Data are padded to a power-of-two size with far-away, infinitely noisy rows so that a growing
data set recompiles only at 8, 16, 32, … points.

Example:
    >>> import numpy as np
    >>> from wbbgen.baselines.gp import expected_improvement, fit_gp
    >>> U = np.random.default_rng(0).uniform(size=(6, 1)); y = np.sin(6 * U[:, 0])
    >>> gp = fit_gp(U, y)                 # U (n, m) in [0, 1], y (n,)
    >>> mean, sd = gp.predict(np.linspace(0, 1, 5)[:, None])
    >>> ei = expected_improvement(mean, sd, y.min())
    >>> mean.shape, sd.shape, bool(np.all(ei >= 0))
    ((5,), (5,), True)
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tinygp
from jax.scipy.stats import norm

__all__ = ["FittedGP", "fit_gp", "expected_improvement"]

_PAD_NOISE = 1e6
#: Smallest noise sd (standardised units): keeps the float32 Cholesky well conditioned.
NOISE_FLOOR = 1e-2


class _MultiTask(tinygp.kernels.Kernel):
    """k((x, s), (x', t)) = B[s, t] · k₀(x, x'); the task index is the last input column."""

    base: tinygp.kernels.Kernel
    B: jax.Array

    def evaluate(self, X1, X2):
        s, t = X1[-1].astype(jnp.int32), X2[-1].astype(jnp.int32)
        return self.B[s, t] * self.base.evaluate(X1[:-1], X2[:-1])


def build_gp(params, U, T, diag, num_tasks):
    ls = jnp.exp(jnp.clip(params["log_ls"], np.log(0.02), np.log(5.0)))
    amp = jnp.exp(2 * jnp.clip(params["log_amp"], -3.0, 3.0))
    noise = jnp.exp(2 * jnp.clip(params["log_noise"], np.log(NOISE_FLOOR), 1.0))
    X = U / ls
    base = tinygp.kernels.Matern52()
    if num_tasks > 1:
        v = params["task_v"]
        B = jnp.outer(v, v) + jnp.diag(jnp.exp(params["task_logd"]))
        kernel = amp * _MultiTask(base, B)
        X = jnp.concatenate([X, T[:, None].astype(X.dtype)], axis=1)
    else:
        kernel = amp * base
    return tinygp.GaussianProcess(kernel, X, diag=noise + diag), X


def _init(m, num_tasks, dtype):
    p = {
        "log_ls": jnp.full(m, np.log(0.3), dtype),
        "log_amp": jnp.zeros((), dtype),
        "log_noise": jnp.asarray(np.log(0.05), dtype),
    }
    if num_tasks > 1:
        p["task_v"] = jnp.full(num_tasks, 0.9, dtype)
        p["task_logd"] = jnp.full(num_tasks, np.log(0.1), dtype)
    return p


@partial(jax.jit, static_argnums=(4,))
def _fit(U, T, y, diag, num_tasks):
    params = _init(U.shape[1], num_tasks, U.dtype)
    opt = optax.adam(0.05)

    def nll(p):
        gp, _ = build_gp(p, U, T, diag, num_tasks)
        # a weak N(log 0.3, 1) prior on the length scales keeps them off the clip bounds
        return -gp.log_probability(y) + 0.5 * jnp.sum((p["log_ls"] - np.log(0.3)) ** 2)

    def step(carry, _):
        p, s = carry
        g = jax.grad(nll)(p)
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=150)
    return params


@partial(jax.jit, static_argnums=(6,))
def _predict(params, U, T, y, diag, Unew_T, num_tasks):
    Unew, Tnew = Unew_T
    gp, _ = build_gp(params, U, T, diag, num_tasks)
    ls = jnp.exp(jnp.clip(params["log_ls"], np.log(0.02), np.log(5.0)))
    Xn = Unew / ls
    if num_tasks > 1:
        Xn = jnp.concatenate([Xn, Tnew[:, None].astype(Xn.dtype)], axis=1)
    cond = gp.condition(y, Xn).gp
    return cond.loc, jnp.sqrt(jnp.maximum(cond.variance, 1e-12))


class FittedGP(NamedTuple):
    """A GP fitted to standardised data; :meth:`predict` returns the original units."""

    params: dict
    U: jax.Array
    T: jax.Array
    y: jax.Array
    diag: jax.Array
    y_mean: float
    y_sd: float
    num_tasks: int

    def predict(self, U_new, tasks=None):
        """Posterior mean and sd of the latent function at ``U_new (k, m)`` (on task
        ``tasks (k,)``, default 0)."""
        U_new = jnp.asarray(U_new, self.U.dtype)
        T_new = jnp.zeros(U_new.shape[0], jnp.int32) if tasks is None else jnp.asarray(tasks, jnp.int32)
        mu, sd = _predict(self.params, self.U, self.T, self.y, self.diag, (U_new, T_new), self.num_tasks)
        return np.asarray(mu) * self.y_sd + self.y_mean, np.asarray(sd) * self.y_sd

    def task_correlation(self) -> np.ndarray:
        """The fitted task correlation matrix (multi-task GPs)."""
        if self.num_tasks == 1:
            return np.ones((1, 1))
        v, d = np.asarray(self.params["task_v"]), np.exp(np.asarray(self.params["task_logd"]))
        B = np.outer(v, v) + np.diag(d)
        s = np.sqrt(np.diag(B))
        return B / np.outer(s, s)


def fit_gp(U, y, tasks=None, num_tasks: int = 1) -> FittedGP:
    """Fit the GP to ``U (n, m)`` in the unit box and ``y (n,)`` (finite), optionally with a
    task index per row."""
    U = np.asarray(U, np.float64)
    y = np.asarray(y, np.float64)
    n, m = U.shape
    size = max(8, 1 << int(np.ceil(np.log2(max(n, 1)))))
    mean = float(y.mean())
    sd = float(y.std()) if n > 1 and y.std() > 0 else 1.0
    dtype = jnp.result_type(float)
    Up = np.full((size, m), 3.0)
    Up[:n] = U
    yp = np.zeros(size)
    yp[:n] = (y - mean) / sd
    Tp = np.zeros(size, np.int32)
    if tasks is not None:
        Tp[:n] = np.asarray(tasks, np.int32)
    diag = np.full(size, _PAD_NOISE)
    diag[:n] = 0.0
    args = (jnp.asarray(Up, dtype), jnp.asarray(Tp), jnp.asarray(yp, dtype), jnp.asarray(diag, dtype))
    params = _fit(*args, num_tasks)
    return FittedGP(params, args[0], args[1], args[2], args[3], mean, sd, num_tasks)


def expected_improvement(mean, sd, best, xi: float = 0.0):
    """EI of a minimisation: E[max(best − ξ − f, 0)] under f ~ N(mean, sd²)."""
    mean, sd = np.asarray(mean, float), np.maximum(np.asarray(sd, float), 1e-12)
    z = (best - xi - mean) / sd
    return (best - xi - mean) * np.asarray(norm.cdf(z)) + sd * np.asarray(norm.pdf(z))
