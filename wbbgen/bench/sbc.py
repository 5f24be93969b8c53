r"""Simulation-based calibration (SBC; Talts et al. 2018) of exact WBB on a conjugate ridge.

Model (σ = 1 known): β ~ N(0, I_p/λ), y | β ~ N(Xβ, I_n), with a fixed design X (n = 200
by default, p = 2, rows N(0, [[1, ρ], [ρ, 1]]), ρ = 0.5). For each of R replicates: draw β from the prior,
y from the model, L WBB draws β⁽¹⁾…β⁽ᴸ⁾ given y, and the rank of each true βⱼ among them,
#{l: βⱼ⁽ˡ⁾ < βⱼ} ∈ {0, …, L}. If the draws were the posterior, ranks would be uniform on
{0, …, L}, whatever λ. Ranks are pooled into B bins of equal width and tested with Pearson's
chi-square (B − 1 dof), per λ and coordinate.

**Why anchored WBB should pass here.** Each draw minimises
Σᵢ wᵢ(yᵢ − xᵢᵀβ)²/2 + λ‖β − β₀‖²/2 with wᵢ ~ Exp(1), β₀ ~ N(0, I/λ), a quadratic, so the
first-order theory has no Taylor remainder in β: with A = XᵀX + λI and m the posterior
mean, β̂ − m = A_w⁻¹[Xᵀ(W − I)r + λβ₀], r = y − Xm (exactly, with A_w = XᵀWX + λI). Its
covariance to first order is A⁻¹(Σᵢ rᵢ²xᵢxᵢᵀ + λI)A⁻¹, and under the prior predictive (what
SBC averages over) E[r rᵀ] = I − H, H = XA⁻¹Xᵀ, so E[Σᵢ rᵢ²xᵢxᵢᵀ] = XᵀX − Σᵢ hᵢᵢxᵢxᵢᵀ: the WBB
covariance is the posterior covariance A⁻¹ up to (i) the leverage term, of relative size
≤ tr(H)/n ≤ p/n (1 % at n = 200), and (ii) the randomness of A_w, a second-order term of the same order
with the opposite sign. No such cancellation holds for ``random`` (w₀ ~ Exp(1) adds
Var(w₀)·λ²A⁻¹mmᵀA⁻¹-type terms and the prior's variance is mis-scaled: sd too large once λ
matters) or ``fixed`` (the λI in the middle is missing: sd √(n/(n + λ))-ish too small).

**What the test can see.** A rank distribution from an sd ratio s changes the bin
probabilities by O(|1 − s|); the chi-square's non-centrality is R·B·Σ_b(p_b − 1/B)², so the
test resolves smaller deviations with more replicates (``--power``: R = 20 000).

The WBB draws use the same pure functions as :func:`wbbgen.exact_wbb` (``problem.draws`` for
weights and anchors, ``exact.solve_batch`` for the damped-Newton solves, tol 1e-6 posterior sd),
vmapped over replicates, so R replicates compile once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen.exact import solve_batch
from wbbgen.problem import draws, make_problem

__all__ = ["SBCResult", "sbc_model", "design", "chi_square", "run_sbc", "to_json", "plot_ranks", "main", "LAMBDAS"]

#: λ values of the study: data-dominated, balanced (prior weight λ/(n + λ) = 0.2 at n = 200),
#: prior-dominated.
LAMBDAS = (0.1, 50.0, 1000.0)
N_OBS, N_PARAMS, RHO = 200, 2, 0.5


class SBCResult(NamedTuple):
    lams: np.ndarray  # (K,)
    ranks: np.ndarray  # (K, R, p) ints in 0..L
    num_draws: int
    num_bins: int
    counts: np.ndarray  # (K, p, B)
    chi2: np.ndarray  # (K, p)
    p_value: np.ndarray  # (K, p)
    scheme: str
    converged: np.ndarray  # (K,) share of converged solves
    num_obs: int


def sbc_model(X, y=None, *, lam=1.0):
    """β ~ N(0, I/λ), y ~ N(Xβ, 1) (the conjugate ridge of the module docs)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def design(n=N_OBS, p=N_PARAMS, rho=RHO, seed=0):
    rng = np.random.default_rng(seed)
    cov = (1 - rho) * np.eye(p) + rho
    return rng.standard_normal((n, p)) @ np.linalg.cholesky(cov).T


def chi_square(ranks, num_draws, num_bins):
    """Binned rank counts and Pearson's chi-square against the uniform, per column.

    ``ranks``: (R, ...) ints in 0..L. Bins are equal when B divides L + 1."""
    from scipy.stats import chi2 as chi2_dist

    if (num_draws + 1) % num_bins:
        raise ValueError(f"num_bins={num_bins} must divide num_draws + 1 = {num_draws + 1}")
    bins = np.asarray(ranks) * num_bins // (num_draws + 1)
    counts = np.stack([(bins == b).sum(0) for b in range(num_bins)], -1)
    expected = bins.shape[0] / num_bins
    stat = ((counts - expected) ** 2 / expected).sum(-1)
    return counts, stat, chi2_dist.sf(stat, num_bins - 1)


def run_sbc(
    *,
    num_replicates=1000,
    num_draws=99,
    num_bins=10,
    lams=LAMBDAS,
    scheme="anchored",
    num_obs=N_OBS,
    seed=0,
    dtype=None,
    chunk=500,
):
    """Ranks of prior draws of β among ``num_draws`` exact WBB draws, ``num_replicates``
    times per λ. Returns an :class:`SBCResult`. ``num_bins`` must divide ``num_draws + 1``."""
    if dtype is None:
        dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    if (num_draws + 1) % num_bins:
        num_bins = next(b for b in range(min(num_bins, num_draws + 1), 0, -1) if (num_draws + 1) % b == 0)
    X = jnp.asarray(design(num_obs), dtype)
    n, p = X.shape
    problem = make_problem(sbc_model, (X, jnp.zeros(n, dtype)), {}, ("lam",), "exponential", scheme)
    init = problem.objective.init_params

    def one_replicate(key, lam):
        k_beta, k_y, k_wbb = jax.random.split(key, 3)
        beta = jax.random.normal(k_beta, (p,), dtype) / jnp.sqrt(lam)
        y = X @ beta + jax.random.normal(k_y, (n,), dtype)
        data = ((X, y), {})
        values = jnp.reshape(lam, (1, 1)).astype(dtype)
        v, pdraw = draws(problem, k_wbb, values, num_draws, data)
        pdraw = jax.tree_util.tree_map(lambda a: a[0], pdraw)
        theta0 = jnp.broadcast_to(init, (num_draws, init.shape[0]))
        vals = jnp.broadcast_to(values[0], (num_draws, 1))
        theta, info = solve_batch(problem, theta0, v, pdraw, vals, data, method="newton", tol=1e-6)
        rank = jnp.sum(theta < beta, axis=0)
        return rank, jnp.mean(info.converged)

    run = jax.jit(jax.vmap(one_replicate, in_axes=(0, None)))
    ranks, conv = [], []
    for k, lam in enumerate(lams):
        keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), k), num_replicates)
        # chunks of `chunk` replicates bound the memory (weights are chunk × L × n);
        # a last, shorter chunk compiles once more.
        out = [run(keys[i : i + chunk], jnp.asarray(lam, dtype)) for i in range(0, num_replicates, chunk)]
        ranks.append(np.concatenate([np.asarray(r) for r, _ in out]))
        conv.append(float(np.mean(np.concatenate([np.atleast_1d(np.asarray(c)) for _, c in out]))))
    ranks = np.stack(ranks)
    counts, stat, pval = zip(*(chi_square(r, num_draws, num_bins) for r in ranks), strict=True)
    return SBCResult(
        np.asarray(lams),
        ranks,
        num_draws,
        num_bins,
        np.stack(counts),
        np.stack(stat),
        np.stack(pval),
        scheme,
        np.asarray(conv),
        int(num_obs),
    )


def to_json(res: SBCResult) -> dict:
    return {
        "scheme": res.scheme,
        "num_replicates": int(res.ranks.shape[1]),
        "num_draws": res.num_draws,
        "num_bins": res.num_bins,
        "model": f"ridge n={res.num_obs}, p={N_PARAMS}, rho={RHO}, sigma=1, beta ~ N(0, I/lam)",
        "results": [
            {
                "lam": float(lam),
                "coordinate": j,
                "counts": res.counts[k, j].tolist(),
                "chi2": float(res.chi2[k, j]),
                "dof": res.num_bins - 1,
                "p_value": float(res.p_value[k, j]),
                "converged": float(res.converged[k]),
            }
            for k, lam in enumerate(res.lams)
            for j in range(res.ranks.shape[2])
        ],
    }


def plot_ranks(res: SBCResult, path=None, ax=None):
    """Rank histograms per λ (coordinates pooled for display only), with the 99 % band of a
    bin count under uniform ranks (binomial, per coordinate count × p)."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import binom

    K, R, p = res.ranks.shape
    if ax is None:
        _, ax = plt.subplots(1, K, figsize=(3.2 * K, 2.8), constrained_layout=True, squeeze=False)
        ax = ax[0]
    B = res.num_bins
    lo, hi = binom.ppf([0.005, 0.995], R * p, 1 / B)  # pooled count of p coordinates (independent)
    for a, k in zip(ax, range(K), strict=False):
        pooled = res.counts[k].sum(0)
        a.axhspan(lo, hi, color="0.85", label="99 % band (uniform)")
        a.bar(np.arange(B), pooled, width=0.9, color="C0")
        a.axhline(R * p / B, color="0.4", lw=0.8)
        a.set_title(f"λ = {res.lams[k]:g}, p = {res.p_value[k].min():.2g} (min over coords)", fontsize="small")
        a.set_xlabel(f"rank bin ({res.num_draws + 1} ranks in {B} bins)")
    ax[0].set_ylabel(f"count ({R} replicates × {p} coords)")
    ax[0].legend(fontsize="x-small")
    if path is not None:
        ax[0].figure.suptitle(f"SBC: {res.scheme} exact WBB, conjugate ridge", fontsize="medium")
        ax[0].figure.savefig(path, dpi=110)
        plt.close(ax[0].figure)
    return ax


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="wbbgen bench sbc", description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000, help="replicates per λ (default 1000)")
    parser.add_argument("--draws", type=int, default=99, help="WBB draws per replicate (default 99)")
    parser.add_argument("--power", action="store_true", help="20 000 replicates per λ")
    parser.add_argument("--schemes", nargs="+", default=["anchored"], choices=["anchored", "fixed", "random"])
    parser.add_argument("--num-obs", type=int, default=N_OBS, help=f"rows of the design (default {N_OBS})")
    parser.add_argument("--out", type=Path, help="folder for sbc.json and sbc_ranks_<scheme>.png")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    R = 20_000 if args.power else args.replicates
    out = {}
    for scheme in args.schemes:
        res = run_sbc(num_replicates=R, num_draws=args.draws, scheme=scheme, num_obs=args.num_obs)
        out[scheme] = to_json(res)
        for r in out[scheme]["results"]:
            where = f"{scheme:>9} λ={r['lam']:>7g} coord {r['coordinate']}"
            print(f"{where}: chi2/dof = {r['chi2'] / r['dof']:7.2f}  p = {r['p_value']:.3g}")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            plot_ranks(res, args.out / f"sbc_ranks_{scheme}.png")
    if args.out:
        (args.out / "sbc.json").write_text(json.dumps(out, indent=1))
    return out
