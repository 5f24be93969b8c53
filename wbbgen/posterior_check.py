"""A posterior check of WBB draws: Pareto k̂ of importance weights toward the model's posterior.

WBB draws approximate p(θ | y, λ), but their density is not available. The model's log
posterior is, up to a constant. At each grid value, the check fits a Gaussian q to the draws in
the unconstrained space θ (mean and covariance of the draws), draws ``num_draws`` points from q
and Pareto-smooths the importance weights (ArviZ's PSIS, as in Pathfinder):

.. math:: \\log w_j = \\log p(y \\mid θ_j, λ) + \\log p_λ(θ_j) + \\log |J(θ_j)| - \\log q(θ_j),
          \\qquad θ_j \\sim q.

The target lives where q does: the Jacobian of each latent site's transform to the
unconstrained space is included (the WBB objective leaves it out on purpose). The shape
parameter k̂ of the weights' tail says how far q is from the posterior: k̂ ≤ 0.7, importance
sampling from q is reliable and ``reweight`` resamples q's draws toward the posterior; k̂ > 0.7,
q, and the WBB draws it was fitted to, miss the posterior (too narrow or shifted). What it does
not see: a q wider than the posterior gives small k̂ (the weights are bounded), so an
over-dispersed WBB passes the check; the reweighted draws correct it. For a Gaussian target and a
Gaussian q of sd ratio r < 1 in every coordinate the tail index is k = 1 − r², so k̂ flags
r ≲ 0.55, not a 10 % width error: this check complements the fidelity guard, it does not
replace calibration against MCMC.

The estimate is noisy: with the default M = 4000 draws of q, k̂ has sd ≈ 0.13 near k = 0.9
(≈ 0.075 at M = 20,000), measured on the Gaussian case above, where its mean matches 1 − r².

A collapsed draw set (a coordinate without spread, e.g. every draw at the joint mode) is not
a posterior: its k̂ is reported as inf (flagged) and its ESS as 0.

Where the dimension d is too large for a fitted covariance (d ≥ num_samples / 2, or
d > ``MAX_DIM``, e.g. a neural net), k̂ is not available and reported as NaN with the reason.

Example:
    >>> import jax, numpy as np
    >>> from wbbgen import exact_wbb, models
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(40, 2)); y = X @ np.ones(2) + rng.normal(size=40)
    >>> s = exact_wbb(jax.random.key(0), models.ridge, X, y, hyper={"lam": [1.0]}, num_samples=200,
    ...               progress_bar=False)
    >>> check = s.posterior_check(jax.random.key(1))
    >>> bool(check.k_hat[0] < 0.7), check.reweighted["beta"].shape
    (True, (1, 200, 2))
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from wbbgen.problem import Problem, hyper_dict

__all__ = ["PosteriorCheck", "PosteriorCheckWarning", "posterior_check", "log_posterior", "K_HAT_MAX", "MAX_DIM"]

K_HAT_MAX = 0.7
"""Above it importance sampling from q is unreliable (Vehtari et al., PSIS): the draws miss."""
MAX_DIM = 500
"""Above it a fitted covariance costs more than it tells: k̂ is reported as not available."""


class PosteriorCheckWarning(UserWarning):
    """The posterior check finds k̂ > 0.7 at some grid values: the draws miss the posterior."""


class PosteriorCheck(NamedTuple):
    """What :func:`posterior_check` found, per grid value (arrays shaped like the grid).

    Attributes:
        k_hat: Pareto k̂ of the importance weights (NaN where not available).
        ess: effective sample size of the smoothed weights, as a fraction of ``num_draws``.
        reason: why k̂ is not available (None when it is).
        reweighted: the draws of q resampled by their smoothed weights (S per grid value), in
            the layout of the checked draws: a :class:`~wbbgen.WBBSamples` from
            :meth:`wbbgen.WBBSamples.posterior_check` (None where k̂ is not available). They
            are a sample of the posterior only where k̂ ≤ 0.7; elsewhere they are returned for
            the layout and must not be used.
    """

    k_hat: np.ndarray
    ess: np.ndarray
    reason: str | None
    reweighted: Any

    def reshaped(self, shape: tuple) -> PosteriorCheck:
        """The same check with ``k_hat`` and ``ess`` shaped ``shape`` (the grid's)."""
        return self._replace(k_hat=self.k_hat.reshape(shape), ess=self.ess.reshape(shape))

    def summary(self, hyper: dict) -> str:
        """A table: grid value, k̂, ESS fraction and whether it passes."""
        names = list(hyper)
        grids = np.meshgrid(*[np.asarray(g) for g in hyper.values()], indexing="ij")
        lines = [f"{'  '.join(f'{n:>8}' for n in names)}     k̂    ESS/M  check"]
        for idx in np.ndindex(self.k_hat.shape):
            vals = "  ".join(f"{g[idx]:8.3g}" for g in grids)
            k, e = self.k_hat[idx], self.ess[idx]
            verdict = "n/a" if np.isnan(k) else ("ok" if k <= K_HAT_MAX else "FAIL")
            lines.append(f"{vals}  {k:5.2f}  {e:6.3f}  {verdict}")
        if self.reason:
            lines.append(f"k̂ not available: {self.reason}")
        return "\n".join(lines)


def log_posterior(problem: Problem, theta, values):
    """log p(y | θ, λ) + log p_λ(θ) + log |J(θ)|: the unnormalised log posterior density of the
    flat unconstrained θ ``(d,)`` at hyperparameter values ``(m,)`` (unweighted)."""
    obj = problem.objective
    hyper = hyper_dict(problem, values)
    ll = sum(jnp.sum(v) for v in obj.log_likelihood(theta, hyper, obj.data).values())
    jac = 0.0 if obj.log_jacobian is None else obj.log_jacobian(theta, hyper, obj.data)
    return ll + obj.log_prior(theta, hyper, obj.data) + jac


@eqx.filter_jit
def _log_weights(problem: Problem, rng_key, thetas, values, num_draws: int):
    """Gaussian fits to ``thetas (K, S, d)``, ``num_draws`` draws of each and their log weights."""
    K, S, d = thetas.shape

    def one(key, theta_k, value_k):
        mean = theta_k.mean(0)
        centred = theta_k - mean
        cov = centred.T @ centred / (S - 1)
        cov = cov + 1e-9 * jnp.trace(cov) / d * jnp.eye(d, dtype=cov.dtype)
        chol = jnp.linalg.cholesky(cov)
        z = jax.random.normal(key, (num_draws, d), cov.dtype)
        draws = mean + z @ chol.T
        log_q = -0.5 * jnp.sum(z**2, -1) - jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * d * jnp.log(2 * jnp.pi)
        log_p = jax.vmap(lambda th: log_posterior(problem, th, value_k))(draws)
        return draws, log_p - log_q

    return jax.vmap(one)(jax.random.split(rng_key, K), thetas, values)


def _psislw(log_weights: np.ndarray):
    """ArviZ's PSIS on the last axis: ``(smoothed log weights, k̂)``."""
    try:
        from arviz import psislw

        out, k = psislw(log_weights, reff=1.0)
    except ImportError:  # arviz 1.x: in arviz_stats, which takes log *ratios* (it smooths −ary)
        from arviz_stats.base import array_stats

        out, k = array_stats.psislw(-log_weights, r_eff=1.0)
    return np.asarray(out), np.asarray(k)


def posterior_check(rng_key, problem: Problem, thetas, values, num_draws: int = 4000) -> PosteriorCheck:
    """Pareto k̂ of the WBB draws ``thetas (K, S, d)`` at ``values (K, m)`` (module docstring).

    Args:
        rng_key: a JAX PRNG key (q's draws and the resampling).
        problem: the :class:`~wbbgen.problem.Problem` the draws were made for.
        thetas, values: the flat unconstrained draws and their hyperparameter values.
        num_draws: M, draws from each fitted q.

    Returns:
        a :class:`PosteriorCheck` with flat ``(K,)`` arrays; ``reweighted`` holds flat
        ``(K, S, d)`` draws (:meth:`wbbgen.WBBSamples.posterior_check` lays them out).
    """
    thetas, values = jnp.asarray(thetas), jnp.asarray(values)
    K, S, d = thetas.shape
    if d > MAX_DIM or 2 * d > S:
        reason = (
            f"{d} parameters for {S} draws per value: a fitted covariance needs S ≥ 2d and d ≤ {MAX_DIM} "
            "(the check is not meaningful for high-dimensional models such as neural nets)"
        )
        nan = np.full(K, np.nan)
        return PosteriorCheck(nan, nan, reason, None)
    k_draws, k_pick = jax.random.split(rng_key)
    draws, logw = _log_weights(problem, k_draws, thetas, values, int(num_draws))
    logw = np.asarray(logw, np.float64)
    logw = np.where(np.isfinite(logw), logw, -np.inf)
    # a collapsed draw set (a coordinate without spread, up to rounding: every draw at one
    # point) is not a posterior; its q has no finite weight, or weights of tail index 1
    th = np.asarray(thetas)
    eps = np.finfo(th.dtype).eps
    collapsed = np.any(th.std(1) <= 1e3 * eps * (np.abs(th.mean(1)) + eps), -1)
    dead = collapsed | ~np.isfinite(logw).any(-1)
    smoothed, k_hat = np.zeros_like(logw), np.full(K, np.inf)
    if (~dead).any():
        with np.errstate(invalid="ignore", divide="ignore"):  # -inf weights (zero density) are fine
            smoothed[~dead], k_hat[~dead] = _psislw(logw[~dead])
    w = np.exp(smoothed - smoothed.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    ess = np.where(dead, 0.0, 1.0 / np.sum(w**2, -1) / num_draws)
    choose = jax.vmap(lambda k, p: jax.random.choice(k, num_draws, (S,), p=p))
    picks = choose(jax.random.split(k_pick, K), jnp.asarray(w, draws.dtype))
    chosen = jnp.take_along_axis(draws, picks[..., None], axis=1)
    return PosteriorCheck(np.asarray(k_hat).reshape(K), ess, None, chosen)


def warn_posterior_check(check: PosteriorCheck, hyper: dict, stacklevel: int = 3) -> None:
    """A :class:`PosteriorCheckWarning` naming the grid values where k̂ > 0.7."""
    bad = np.argwhere(np.nan_to_num(check.k_hat, nan=0.0) > K_HAT_MAX)
    if not len(bad):
        return
    grids = [np.asarray(g) for g in hyper.values()]
    shown = ", ".join(
        "("
        + ", ".join(f"{n}={grids[i][j]:.3g}" for i, (n, j) in enumerate(zip(hyper, idx)))
        + f"): k̂={check.k_hat[tuple(idx)]:.2f}"
        for idx in bad[:8]
    )
    warnings.warn(
        f"posterior check: at {len(bad)} of {check.k_hat.size} grid values the WBB draws miss the model's "
        f"posterior (Pareto k̂ > {K_HAT_MAX}: {shown}). Treat those draws with suspicion: compare with "
        "wbbgen.nuts_reference there, or use exact_wbb if these are generator draws.",
        PosteriorCheckWarning,
        stacklevel=stacklevel,
    )
