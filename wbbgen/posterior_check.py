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

The reweighted draws come from a *defensive mixture* ½ q + ½ q_wide, q_wide of covariance
``WIDEN``² = 4 times q's: its wide half reaches the tails an under-dispersed WBB misses (on eight
schools, log τ's sd ratio after reweighting rose from 0.62–0.88 with q alone to the figures in
docs/calibration.md), while the weights stay within twice those of q where q fits. Their own k̂
(``reweighted_k_hat``) says whether they can be trusted; k̂ of q alone judges the WBB draws.

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
SD_RATIO_BAND = 1.1
"""``moved`` flags an sd ratio outside [1/1.1, 1.1] (beyond its Monte Carlo error)."""
MEAN_SHIFT_BAND = 0.1
"""``moved`` flags a mean shift above 0.1 posterior sd (beyond its Monte Carlo error)."""
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
        reweighted: draws of the defensive mixture ½ q + ½ q_wide (q's covariance × ``WIDEN``²)
            resampled by their smoothed weights (S per grid value), in the layout of the checked
            draws: a :class:`~wbbgen.WBBSamples` from :meth:`wbbgen.WBBSamples.posterior_check`
            (None where k̂ is not available). Where ``reweighted_k_hat`` > 0.7 the resampled draws
            are not a sample of the posterior, and the WBB draws are kept there instead
            (``reweighted.stats["reweighted"]`` says which values were resampled; the function
            :func:`posterior_check` returns the flat resampled draws of every value).
        reweighted_k_hat, reweighted_ess: k̂ and ESS fraction of the mixture's weights.
        sd_ratio, mean_shift: the WBB draws' worst coordinate against the reweighted ones
            (sd_WBB / sd_posterior, furthest from 1; ``|mean difference|`` / sd_posterior).
        moved: reweighting is usable and moves some coordinate out of the band (sd ratio outside
            [0.91, 1.1] or a shift over 0.1 sd, beyond its Monte Carlo error): the WBB draws miss
            there even where k̂ ≤ 0.7 (k̂ sees a too-narrow fit only when it is very narrow).
    """

    k_hat: np.ndarray
    ess: np.ndarray
    reason: str | None
    reweighted: Any
    reweighted_k_hat: np.ndarray | None = None
    reweighted_ess: np.ndarray | None = None
    sd_ratio: np.ndarray | None = None
    mean_shift: np.ndarray | None = None
    moved: np.ndarray | None = None

    @property
    def flagged(self) -> np.ndarray:
        """Per value: the draws miss the posterior by k̂ > 0.7, or reweighting moves them out of
        the band (``moved``)."""
        bad = np.nan_to_num(self.k_hat, nan=0.0) > K_HAT_MAX
        return bad if self.moved is None else bad | self.moved

    def reshaped(self, shape: tuple) -> PosteriorCheck:
        """The same check with its per-value arrays shaped ``shape`` (the grid's)."""
        r = lambda x: None if x is None else np.asarray(x).reshape(shape)  # noqa: E731
        return self._replace(
            k_hat=r(self.k_hat),
            ess=r(self.ess),
            reweighted_k_hat=r(self.reweighted_k_hat),
            reweighted_ess=r(self.reweighted_ess),
            sd_ratio=r(self.sd_ratio),
            mean_shift=r(self.mean_shift),
            moved=r(self.moved),
        )

    def summary(self, hyper: dict) -> str:
        """A table: grid value, k̂, ESS fraction and whether it passes."""
        names = list(hyper)
        grids = np.meshgrid(*[np.asarray(g) for g in hyper.values()], indexing="ij")
        lines = [f"{'  '.join(f'{n:>8}' for n in names)}     k̂    ESS/M  reweighted k̂  sd ratio  shift  check"]
        nan = np.full(self.k_hat.shape, np.nan)
        rks, ratios, shifts = (nan if x is None else x for x in (self.reweighted_k_hat, self.sd_ratio, self.mean_shift))
        flagged = self.flagged
        for idx in np.ndindex(self.k_hat.shape):
            vals = "  ".join(f"{g[idx]:8.3g}" for g in grids)
            k, e = self.k_hat[idx], self.ess[idx]
            verdict = "n/a" if np.isnan(k) else ("FAIL" if flagged[idx] else "ok")
            lines.append(
                f"{vals}  {k:5.2f}  {e:6.3f}  {rks[idx]:12.2f}  {ratios[idx]:8.2f}  {shifts[idx]:5.2f}  {verdict}"
            )
        lines.append(
            "FAIL: k̂ > 0.7, or the reweighted draws (usable: reweighted k̂ ≤ 0.7) move a coordinate's sd by "
            "over 10 % or its mean by over 0.1 sd; sd ratio and shift: the worst coordinate, WBB against reweighted."
        )
        if self.reason:
            lines.append(f"k̂ not available: {self.reason}")
        return "\n".join(lines)


def log_posterior(problem: Problem, theta, values):
    """log p(y | θ, λ) + log p_λ(θ) + log ``|J(θ)|``: the unnormalised log posterior density of the
    flat unconstrained θ ``(d,)`` at hyperparameter values ``(m,)`` (unweighted)."""
    obj = problem.objective
    hyper = hyper_dict(problem, values)
    ll = sum(jnp.sum(v) for v in obj.log_likelihood(theta, hyper, obj.data).values())
    jac = 0.0 if obj.log_jacobian is None else obj.log_jacobian(theta, hyper, obj.data)
    return ll + obj.log_prior(theta, hyper, obj.data) + jac


#: The reweighting proposal is the defensive mixture ½ N(m, Σ) + ½ N(m, WIDEN² Σ): its wide half
#: covers the tails an under-dispersed WBB misses (log w ≤ log 2 + log p/q₁ keeps the ESS of a good fit).
WIDEN = 3.0


@eqx.filter_jit
def _log_weights(problem: Problem, rng_key, thetas, values, num_draws: int):
    """Gaussian fits q₁ to ``thetas (K, S, d)``: ``num_draws`` draws of q₁ with log p/q₁, and
    ``num_draws`` more of the wide component, every draw with log p/q of the defensive mixture q."""
    K, S, d = thetas.shape
    log2 = jnp.log(2.0)

    def one(key, theta_k, value_k):
        mean = theta_k.mean(0)
        centred = theta_k - mean
        cov = centred.T @ centred / (S - 1)
        cov = cov + 1e-9 * jnp.trace(cov) / d * jnp.eye(d, dtype=cov.dtype)
        chol = jnp.linalg.cholesky(cov)
        z = jax.random.normal(key, (2 * num_draws, d), cov.dtype)
        z = z.at[num_draws:].multiply(WIDEN)
        draws = mean + z @ chol.T
        sq = jnp.sum(z**2, -1)
        const = -jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * d * jnp.log(2 * jnp.pi)
        log_q1 = -0.5 * sq + const
        log_q2 = -0.5 * sq / WIDEN**2 + const - d * jnp.log(WIDEN)
        log_q = jnp.logaddexp(log_q1, log_q2) - log2
        log_p = jax.vmap(lambda th: log_posterior(problem, th, value_k))(draws)
        return draws, (log_p - log_q1)[:num_draws], log_p - log_q

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
    draws, logw, logw_mix = _log_weights(problem, k_draws, thetas, values, int(num_draws))
    logw = np.asarray(logw, np.float64)
    logw = np.where(np.isfinite(logw), logw, -np.inf)
    logw_mix = np.asarray(logw_mix, np.float64)
    logw_mix = np.where(np.isfinite(logw_mix), logw_mix, -np.inf)
    # a collapsed draw set (a coordinate without spread, up to rounding: every draw at one
    # point) is not a posterior; its q has no finite weight, or weights of tail index 1
    th = np.asarray(thetas)
    eps = np.finfo(th.dtype).eps
    collapsed = np.any(th.std(1) <= 1e3 * eps * (np.abs(th.mean(1)) + eps), -1)
    dead = collapsed | ~np.isfinite(logw).any(-1)
    k_hat, ess, _ = _smooth(logw, dead)
    k_mix, ess_mix, w = _smooth(logw_mix, dead)
    sd_ratio, mean_shift, moved = _moments(th, np.asarray(draws, np.float64), w, ess_mix * w.shape[-1], k_mix, dead)
    choose = jax.vmap(lambda k, p: jax.random.choice(k, 2 * num_draws, (S,), p=p))
    picks = choose(jax.random.split(k_pick, K), jnp.asarray(w, draws.dtype))
    chosen = jnp.take_along_axis(draws, picks[..., None], axis=1)
    return PosteriorCheck(np.asarray(k_hat).reshape(K), ess, None, chosen, k_mix, ess_mix, sd_ratio, mean_shift, moved)


def _moments(thetas, draws, w, n_eff, k_mix, dead):
    """Each coordinate's WBB moments against the reweighted (posterior) ones, per value: the
    worst sd ratio sd_WBB / sd_post (furthest from 1 in log), the worst mean shift
    |m_WBB − m_post| / sd_post, and ``moved``: reweighting is usable (mixture k̂ ≤ 0.7) and moves
    a coordinate out of the band (sd ratio outside [1/1.1, 1.1] or a shift above 0.1 sd) beyond
    z·se, se from S draws and the weights' ESS (Gaussian approximations:
    se(log sd) ≈ √(1/2S + 1/2ESS), se(shift) ≈ √(1/S + 1/ESS)), z Bonferroni over d at 5 %."""
    K, S, d = thetas.shape
    mean_p = np.einsum("km,kmd->kd", w, draws)
    sd_p = np.sqrt(np.maximum(np.einsum("km,kmd->kd", w, (draws - mean_p[:, None]) ** 2), 1e-300))
    log_r = np.log(np.maximum(thetas.std(1, ddof=1), 1e-300) / sd_p)
    shift = np.abs(thetas.mean(1) - mean_p) / sd_p
    worst = np.argmax(np.abs(log_r), 1)
    n = np.maximum(n_eff, 1.0)[:, None]
    z = float(_normal_quantile(1 - 0.025 / d))
    se_log, se_shift = np.sqrt(0.5 / S + 0.5 / n), np.sqrt(1.0 / S + 1.0 / n)
    out_sd = np.abs(log_r) - z * se_log > np.log(SD_RATIO_BAND)
    out_mean = shift - z * se_shift > MEAN_SHIFT_BAND
    moved = (k_mix <= K_HAT_MAX) & ~dead & (out_sd | out_mean).any(1)
    ratio = np.where(dead, np.nan, np.exp(log_r[np.arange(K), worst]))
    return ratio, np.where(dead, np.nan, shift.max(1)), moved


def _normal_quantile(p):
    from scipy.stats import norm

    return norm.ppf(p)


def _smooth(logw, dead):
    """PSIS of each row: ``(k̂, ESS fraction, normalised weights)``; dead rows get inf, 0."""
    K, M = logw.shape
    smoothed, k_hat = np.zeros_like(logw), np.full(K, np.inf)
    if (~dead).any():
        with np.errstate(invalid="ignore", divide="ignore"):  # -inf weights (zero density) are fine
            smoothed[~dead], k_hat[~dead] = _psislw(logw[~dead])
    w = np.exp(smoothed - smoothed.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    ess = np.where(dead, 0.0, 1.0 / np.sum(w**2, -1) / M)
    return np.asarray(k_hat).reshape(K), ess, w


def _why(check: PosteriorCheck, idx) -> str:
    k = check.k_hat[idx]
    if np.nan_to_num(k, nan=0.0) > K_HAT_MAX:
        return f"k̂={k:.2f}"
    rk = check.reweighted_k_hat[idx]
    return (
        f"reweighting (k̂={rk:.2f}) moves sd by ×{1 / check.sd_ratio[idx]:.2f}, mean by {check.mean_shift[idx]:.2f} sd"
    )


def warn_posterior_check(check: PosteriorCheck, hyper: dict, stacklevel: int = 3) -> None:
    """A :class:`PosteriorCheckWarning` naming the grid values where k̂ > 0.7."""
    bad = np.argwhere(check.flagged)
    if not len(bad):
        return
    grids = [np.asarray(g) for g in hyper.values()]
    shown = ", ".join(
        "("
        + ", ".join(f"{n}={grids[i][j]:.3g}" for i, (n, j) in enumerate(zip(hyper, idx)))
        + f"): {_why(check, tuple(idx))}"
        for idx in bad[:8]
    )
    warnings.warn(
        f"posterior check: at {len(bad)} of {check.k_hat.size} grid values the WBB draws miss the model's "
        f"posterior ({shown}). Where the reweighted draws are usable (reweighted k̂ ≤ {K_HAT_MAX}: "
        "`check.reweighted`) use them; otherwise compare with wbbgen.nuts_reference there, or use "
        "exact_wbb if these are generator draws.",
        PosteriorCheckWarning,
        stacklevel=stacklevel,
    )
