r"""Prototype fixes for the three failure modes of anchored WBB (RESEARCH.md §3), measured.

Usage::

    python benchmarks/_calibration_fixes.py --out DIR [--smoke]

Failure modes (anchored exact WBB vs the reference, measured here):

1. **Intercept** (breast cancer, λ ≥ 10): the intercept's sd is 0.7× NUTS, with a flat prior
   *and* with the weak N(0, 10²) prior. First-order reason: the WBB covariance is
   A⁻¹(B + Λ)A⁻¹ with B = Σᵢ sᵢsᵢᵀ the empirical score covariance at the MAP, while the
   posterior's is A⁻¹ = (H + Λ)⁻¹, H the Fisher information. The anchor supplies Λ exactly;
   the data term supplies B where H is needed. For a shrunk fit on well-separated data the
   predicted pᵢ are under-confident and Σ(yᵢ − pᵢ)² < Σpᵢ(1 − pᵢ): B < H. In anchored
   directions Λ dominates at large λ and hides it; the intercept has (almost) no Λ.
2. **Near separation** (breast cancer, linearly separable, λ ≤ 0.1): the posterior is skewed
   and heavy-tailed (NUTS needs ~130 leapfrog steps per draw), WBB is close to a Laplace-like
   approximation: coverage below 0.85, means off.
3. **Strong signal, ridge** (λ ≥ 100): the same B ≠ H mechanism with the opposite sign:
   σ is known, but at a strongly shrunk mean the residuals still contain signal,
   Σrᵢ²xᵢxᵢᵀ > σ²XᵀX, so the sd is too large.
4. **Scale parameter with a skewed unconstrained prior** (diabetes ridge, σ ~ HalfNormal(1)):
   the anchored penalty log q(u − a) of u = log σ has a doubly-exponential right tail, so an
   anchor far in the left tail pulls the draw with force ≈ e^{2(u − a)}: σ's sd is ~2× NUTS.

Fixes tried (all prototypes outside the library):

* **Score top-up for weakly anchored coordinates** (``topup``, targets failure 1): add to each
  draw's objective a random linear term ε·b0 with Var(ε) = v(λ) chosen so that, to first order,
  the intercept's WBB variance equals the posterior's:
  v = [A⁻¹(H − B)A⁻¹]₀₀ / ([A⁻¹]₀₀)² (clipped at 0), A, H, B at the MAP. It is implemented
  inside the model, without touching wbbgen: two pseudo-observations in the data plate
  contribute +c·b0 and −c·b0 (c² = v/2). Their unweighted sum is zero, so the posterior (and
  NUTS) is unchanged, while under Exp(1) weights they add (w₊ − w₋)·c·b0, a Laplace
  perturbation with variance 2c² = v. c(λ) is interpolated in log λ from a table computed on
  the grid, so one exact_wbb call (or one generator) covers all λ.
* **PSIS importance re-weighting** (``is_reweight``, all failures): weights
  p(θ | y, λ) / q̂(θ) on the WBB draws themselves, q̂ the Gaussian fitted to them (the WBB
  density is unknown; q̂ is its first-order form), Pareto-smoothed (``arviz.psislw``), with
  k̂ reported (reliable below 0.7, Vehtari et al. 2024).
* **Prior-score tilt** (``tilt``, targets failure 4): for a Gaussian prior the anchored penalty
  equals log π(u) + εᵀ(u − m) with ε = Λ(u₀ − m) ~ N(0, Λ); keep that form for any prior,
  R(u) = log π_λ(u) + εᵀu with Var(ε) = Λ (the prior precision at its unconstrained mode), run
  with ``prior_weight="fixed"`` and the tilt supplied by zero-sum pseudo-observation pairs as in
  the top-up (ε is then a difference of Exp(1) weights: the right variance, Laplace-shaped).
* **WBB as an importance-sampling proposal** (``is_proposal``): fresh draws from a
  multivariate t₅ with the WBB draws' mean and covariance, weights p/q exact, PSIS, k̂. This
  is exact IS (asymptotically unbiased whatever the proposal); WBB only supplies the proposal.

Metrics for weighted draws are computed here (weighted mean, sd and quantiles) with the same
definitions as :func:`wbbgen.calibration`; MCSEs use the IS effective sample size
1/Σw̃² in place of N_W.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import calibration as study  # noqa: E402  (benchmarks/calibration.py)

# ----------------------------------------------------------------------------- fix 1: score top-up


def logistic_topup_model(X, y, sgn, log_grid, c_grid, *, lam=1.0, flat=True):
    """The breast-cancer logistic model plus two zero-sum pseudo-observations in the data plate.

    Rows with ``sgn == 0`` are the data; the rows with ``sgn = ±1`` contribute ±c(λ)·b0 to the
    log likelihood (their sum is 0: the posterior is that of the model without them).
    ``flat`` picks the intercept's prior: flat (True) or N(0, 10²) (False).
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    if flat:
        b0 = numpyro.sample("b0", dist.ImproperUniform(constraints.real, (), ()))
    else:
        b0 = numpyro.sample("b0", dist.Normal(0.0, 10.0))
    c = jnp.interp(jnp.log(lam), log_grid, c_grid)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b0 + X @ beta).mask(sgn == 0), obs=y)
        numpyro.factor("topup", c * sgn * b0)


def logistic_map(X, y, lam, b0_prec):
    """MAP of the logistic model (float64, Newton with a backtracking line search), with the
    Fisher information H, the empirical score covariance B and the prior precision Λ there."""
    X1 = np.c_[X, np.ones(len(y))].astype(np.float64)
    y = np.asarray(y, np.float64)
    prec = np.r_[np.full(X.shape[1], lam), b0_prec]

    def f(t):
        eta = X1 @ t
        return np.sum(np.logaddexp(0, eta) - y * eta) + 0.5 * np.sum(prec * t**2)

    t = np.zeros(X1.shape[1])
    for _ in range(200):
        p = 1 / (1 + np.exp(-(X1 @ t)))
        g = X1.T @ (p - y) + prec * t
        H = (X1 * (p * (1 - p))[:, None]).T @ X1 + np.diag(prec)
        step = np.linalg.solve(H, g)
        s = 1.0
        while f(t - s * step) > f(t) - 1e-4 * s * g @ step and s > 1e-10:
            s /= 2
        t = t - s * step
        if np.sqrt(max(g @ step, 0)) < 1e-10:
            break
    p = 1 / (1 + np.exp(-(X1 @ t)))
    H = (X1 * (p * (1 - p))[:, None]).T @ X1
    B = (X1 * ((y - p) ** 2)[:, None]).T @ X1
    return t, H, B, np.diag(prec)


def topup_variance(X, y, lam, b0_prec):
    """v(λ) of the module docs for the intercept (last coordinate), and the first-order sd
    ratio of the intercept without the fix, √([A⁻¹(B + Λ)A⁻¹]₀₀ / [A⁻¹]₀₀)."""
    _, H, B, L = logistic_map(X, y, lam, b0_prec)
    Ai = np.linalg.inv(H + L)
    post = Ai[-1, -1]
    wbb = (Ai @ (B + L) @ Ai)[-1, -1]
    v = (Ai @ (H - B) @ Ai)[-1, -1] / post**2
    return max(v, 0.0), float(np.sqrt(wbb / post))


def augment(X, y):
    """Append the two pseudo-rows (x = 0, y = 0, sgn = ±1)."""
    p = X.shape[1]
    Xa = np.r_[X, np.zeros((2, p))]
    ya = np.r_[y, [0.0, 0.0]]
    sgn = np.r_[np.zeros(len(y)), [1.0, -1.0]]
    return Xa, ya, sgn


# ----------------------------------------------------------------------------- fix 3: prior-score tilt


def ridge_sigma_tilt_model(X, y, tilt_idx, tilt_sgn, *, lam=1.0):
    """Diabetes ridge with σ ~ HalfNormal(1), plus zero-sum pseudo-observations that tilt the
    objective by ε_j·u_j, u = (β, log σ), for use with ``prior_weight="fixed"``.

    Pseudo-rows come in pairs (sign ±1) per coordinate j with c_j² = Λ_j/2, Λ the prior's
    precision at its mode in the unconstrained space (λ for β; 2 for log σ under HalfNormal(1)):
    under Exp(1) weights the pair adds (w₊ − w₋)c_j·u_j, a zero-mean tilt with variance Λ_j. For a
    Gaussian prior this is the anchored scheme to first order (−½(u − u₀)ᵀΛ(u − u₀) = prior +
    linear tilt in u); for a skewed unconstrained prior it keeps the prior's exact log density
    and perturbs it linearly instead of shifting it (no exponential pull from far anchors).
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    p = X.shape[1]
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([p]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    u = jnp.concatenate([beta, jnp.log(sigma)[None]])
    c = jnp.concatenate([jnp.full(p, jnp.sqrt(lam / 2.0)), jnp.ones(1)])  # √(Λ/2)
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma).mask(tilt_sgn == 0), obs=y)
        numpyro.factor("tilt", tilt_sgn * c[tilt_idx] * u[tilt_idx])


def ridge_sigma_model(X, y=None, *, lam=1.0):
    """The same model without pseudo-rows (the NUTS reference and the library's schemes)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def augment_tilt(X, y):
    """Append one (+, −) pair of pseudo-rows per coordinate of u = (β, log σ)."""
    n, p = X.shape
    k = p + 1
    Xa = np.r_[X, np.zeros((2 * k, p))]
    ya = np.r_[y, np.zeros(2 * k)]
    idx = np.r_[np.zeros(n, int), np.repeat(np.arange(k), 2)]
    sgn = np.r_[np.zeros(n), np.tile([1.0, -1.0], k)]
    return Xa, ya, idx, sgn


# ----------------------------------------------------------------------------- fix 2: importance sampling


def flatten(draws: dict, k: int) -> np.ndarray:
    """``{site: (K, S, ...)}`` at grid index k -> (S, d), sites in sorted order."""
    return np.concatenate(
        [np.asarray(draws[s][k], np.float64).reshape(np.shape(draws[s])[1], -1) for s in sorted(draws)], -1
    )


def unflatten(theta: np.ndarray, shapes: dict) -> dict:
    out, i = {}, 0
    for s in sorted(shapes):
        size = int(np.prod(shapes[s], dtype=int))
        out[s] = theta[:, i : i + size].reshape(-1, *shapes[s])
        i += size
    return out


def log_posterior(model, args, lam, shapes):
    """Unnormalised log posterior of flat draws (S, d), in float64 where x64 is on."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import log_density

    def one(theta):
        params = {s: v[0] for s, v in unflatten(theta[None], shapes).items()}
        return log_density(model, args, {"lam": lam}, params)[0]

    fn = jax.jit(jax.vmap(one))
    return lambda theta: np.asarray(fn(jnp.asarray(theta, args[0].dtype)), np.float64)


def _psis(lw):
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lws, k = az.psislw(lw - lw.max())
    w = np.exp(lws - lws.max())
    w /= w.sum()
    return w, float(k), float(1 / np.sum(w**2))


def is_reweight(theta, logp):
    """PSIS weights for WBB draws ``theta`` (S, d) with q̂ = N(mean, cov) of the draws."""
    from scipy.stats import multivariate_normal

    q = multivariate_normal(theta.mean(0), np.cov(theta.T), allow_singular=True)
    return theta, *_psis(logp(theta) - q.logpdf(theta))


def is_proposal(theta, logp, rng, num=None, df=5.0):
    """Fresh draws from t_df(mean, cov of the WBB draws), with PSIS weights."""
    from scipy.stats import multivariate_t

    q = multivariate_t(theta.mean(0), np.cov(theta.T) * (df - 2) / df, df=df, allow_singular=True)
    fresh = q.rvs(size=num or theta.shape[0], random_state=rng).reshape(-1, theta.shape[1])
    return fresh, *_psis(logp(fresh) - q.logpdf(fresh))


def weighted_metrics(theta, w, ref):
    """sd ratio, mean shift and 90 % coverage of weighted draws vs reference draws (N, d),
    per coordinate, with MCSEs from the IS effective sample size."""
    w = np.asarray(w, np.float64) / np.sum(w)
    ess = 1 / np.sum(w**2)
    m = w @ theta
    var = w @ (theta - m) ** 2 / (1 - np.sum(w**2))
    k_w = (w @ (theta - m) ** 4) / var**2
    m_r, s_r = ref.mean(0), ref.std(0, ddof=1)
    k_r = ((ref - m_r) ** 4).mean(0) / ref.var(0) ** 2
    ratio = np.sqrt(var) / s_r
    shift = (m - m_r) / s_r
    order = np.argsort(theta, 0)
    cov = np.empty(theta.shape[1])
    for j in range(theta.shape[1]):
        cw = np.cumsum(w[order[:, j]])
        xs = theta[order[:, j], j]
        lo, hi = xs[np.searchsorted(cw, 0.05)], xs[min(np.searchsorted(cw, 0.95), len(xs) - 1)]
        cov[j] = np.mean((ref[:, j] >= lo) & (ref[:, j] <= hi))
    n_r = ref.shape[0]
    return {
        "sd_ratio": ratio,
        "sd_ratio_mcse": ratio * np.sqrt(np.maximum(k_w - 1, 0) / (4 * ess) + (k_r - 1) / (4 * n_r)),
        "mean_shift": shift,
        "mean_shift_mcse": np.sqrt(var / s_r**2 / ess + 1 / n_r),
        "coverage_90": cov,
        "coverage_90_mcse": np.sqrt(cov * (1 - cov) / n_r + 0.09 / ess),
        "ess": ess,
    }


def _row(met, names, extra=None):
    """Median sd ratio / coverage, the worst |shift|, and the intercept's numbers if any."""
    j = int(np.argmax(np.abs(met["mean_shift"])))
    row = {
        "sd_ratio": float(np.median(met["sd_ratio"])),
        "sd_ratio_mcse": float(np.median(met["sd_ratio_mcse"])),
        "coverage_90": float(np.median(met["coverage_90"])),
        "coverage_90_mcse": float(np.median(met["coverage_90_mcse"])),
        "max_abs_mean_shift": float(abs(met["mean_shift"][j])),
        "max_abs_mean_shift_mcse": float(met["mean_shift_mcse"][j]),
        "max_abs_mean_shift_param": names[j],
        "ess": float(met["ess"]),
    }
    for site in ("b0", "sigma"):  # scalar sites the median hides
        if site in names:
            i = names.index(site)
            row |= {
                f"{site}_sd_ratio": float(met["sd_ratio"][i]),
                f"{site}_sd_ratio_mcse": float(met["sd_ratio_mcse"][i]),
                f"{site}_mean_shift": float(met["mean_shift"][i]),
                f"{site}_coverage_90": float(met["coverage_90"][i]),
            }
    return row | (extra or {})


def _names(shapes):
    """Coordinate labels in :func:`wbbgen.calibration`'s style (``beta[3]``, ``b0``)."""
    names = []
    for s in sorted(shapes):
        names += [s] if shapes[s] == () else [f"{s}[{','.join(map(str, i))}]" for i in np.ndindex(*shapes[s])]
    return names


# ----------------------------------------------------------------------------- experiments


def _reference(name, model, jargs, grid, sizes, out: Path, record):
    import arviz as az
    import jax

    from wbbgen import nuts_reference

    cache = out / f"reference_{name}.nc"
    if cache.exists():
        return az.from_netcdf(str(cache))
    ref = record(
        f"{name}/nuts",
        nuts_reference,
        jax.random.key(0),
        model,
        *jargs,
        hyper={"lam": grid},
        num_chains=sizes.nuts_chains,
        num_warmup=sizes.nuts_warmup,
        num_samples=sizes.nuts_samples,
        progress_bar=False,
    )
    ref.to_netcdf(str(cache))
    return ref


def _ref_draws(ref, k, shapes):
    post = ref.posterior
    parts = []
    for s in sorted(shapes):
        x = post[s].isel(lam=k).values  # (chain, draw, ...)
        parts.append(x.reshape(x.shape[0] * x.shape[1], -1))
    return np.concatenate(parts, -1).astype(np.float64)


def evaluate(draws, ref_at, logp_at, grid, shapes, rng, *, importance=True):
    """Rows per λ for the raw draws and (optionally) the two IS fixes."""
    names = _names(shapes)
    rows = {"wbb": [], "is_reweight": [], "is_proposal": []}
    for k, lam in enumerate(grid):
        theta, ref = flatten(draws, k), ref_at(k)
        ok = np.all(np.isfinite(theta), 1)
        theta = theta[ok]
        rows["wbb"].append(_row(weighted_metrics(theta, np.ones(len(theta)), ref), names, {"lam": float(lam)}))
        if not importance:
            continue
        logp = logp_at(k)
        for key, fn in (
            ("is_reweight", lambda: is_reweight(theta, logp)),
            ("is_proposal", lambda: is_proposal(theta, logp, rng)),
        ):
            th, w, khat, ess = fn()
            rows[key].append(_row(weighted_metrics(th, w, ref), names, {"lam": float(lam), "pareto_k": khat}))
    return {k: v for k, v in rows.items() if v}


def run(out: Path, smoke=False):
    import jax
    import jax.numpy as jnp

    from wbbgen import exact_wbb

    sizes = study.SMOKE if smoke else study.FULL
    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    grid = np.asarray(sizes.grid, dtype)
    record = study._Recorder()
    rng = np.random.default_rng(0)
    report = {
        "sizes": "smoke" if smoke else "full",
        "dtype": np.dtype(dtype).name,
        "grid": grid.tolist(),
        "experiments": {},
    }
    key = jax.random.key(1)

    # ---- failures 1 and 2: breast cancer, flat and weak intercept
    for name, flat in (("breast_cancer_flat", True), ("breast_cancer", False)):
        model, args, info = study.make_data(name, sizes, dtype)
        jargs = tuple(jnp.asarray(a) for a in args)
        t0 = time.perf_counter()
        ref = _reference(name, model, jargs, grid, sizes, out, record)
        t_ref = time.perf_counter() - t0
        shapes = {"beta": (args[0].shape[1],), "b0": ()}
        ref_at = lambda k, ref=ref, shapes=shapes: _ref_draws(ref, k, shapes)  # noqa: E731
        logp_at = lambda k, model=model, jargs=jargs, shapes=shapes: log_posterior(model, jargs, grid[k], shapes)  # noqa: E731

        t0 = time.perf_counter()
        base = record(
            f"{name}/anchored",
            exact_wbb,
            key,
            model,
            *jargs,
            hyper={"lam": grid},
            num_samples=sizes.num_samples,
            progress_bar=False,
        )
        t_base = time.perf_counter() - t0
        entry = {"info": info, "timings": {"reference_s": t_ref, "anchored_exact_s": t_base}}
        entry |= {f"anchored_{k}": v for k, v in evaluate(base, ref_at, logp_at, grid, shapes, rng).items()}

        # top-up: v(λ) on the grid, interpolated in log λ
        X64, y64 = (np.asarray(a, np.float64) for a in args)
        b0_prec = 0.0 if flat else 1e-2
        table = [topup_variance(X64, y64, float(lam), b0_prec) for lam in grid]
        c_grid = np.sqrt(np.array([v for v, _ in table]) / 2)
        Xa, ya, sgn = augment(X64, y64)
        targs = tuple(jnp.asarray(a, dtype) for a in (Xa, ya, sgn, np.log(grid.astype(np.float64)), c_grid))
        t0 = time.perf_counter()
        fixed = record(
            f"{name}/topup",
            exact_wbb,
            key,
            logistic_topup_model,
            *targs,
            hyper={"lam": grid},
            num_samples=sizes.num_samples,
            progress_bar=False,
            flat=flat,
        )
        entry["timings"]["topup_exact_s"] = time.perf_counter() - t0
        entry["topup_table"] = [
            {"lam": float(lam), "v": float(v), "first_order_b0_sd_ratio": r, "c": float(c)}
            for lam, (v, r), c in zip(grid, table, c_grid, strict=True)
        ]
        entry["topup_converged"] = np.asarray(fixed.stats["converged"]).mean(-1).tolist()
        entry["topup"] = evaluate(fixed, ref_at, logp_at, grid, shapes, rng, importance=False)["wbb"]
        report["experiments"][name] = entry
        print(
            f"[{name}] b0 sd ratio anchored",
            [round(r["b0_sd_ratio"], 2) for r in entry["anchored_wbb"]],
            "topup",
            [round(r["b0_sd_ratio"], 2) for r in entry["topup"]],
            "IS k",
            [round(r["pareto_k"], 2) for r in entry["anchored_is_proposal"]],
        )

    # ---- scale prior: diabetes ridge with σ ~ HalfNormal(1) (found by notebooks/compare_mcmc.py)
    from wbbgen.datasets import diabetes

    d = diabetes(dtype=np.float64)
    rows = sizes.bc_rows
    X, y = d.X_train[:rows, : sizes.bc_cols], d.y_train[:rows] / d.y_train.std()
    jargs = (jnp.asarray(X, dtype), jnp.asarray(y, dtype))
    shapes = {"beta": (X.shape[1],), "sigma": ()}
    ref = _reference("diabetes_sigma", ridge_sigma_model, jargs, grid, sizes, out, record)
    ref_at = lambda k: _ref_draws(ref, k, shapes)  # noqa: E731
    entry = {"info": {"n": X.shape[0], "p": X.shape[1], "prior": "beta ~ N(0, I/lam), sigma ~ HalfNormal(1)"}}
    for scheme in ("anchored", "fixed"):
        draws = record(
            f"diabetes_sigma/{scheme}",
            exact_wbb,
            key,
            ridge_sigma_model,
            *jargs,
            hyper={"lam": grid},
            num_samples=sizes.num_samples,
            prior_weight=scheme,
            progress_bar=False,
        )
        entry[f"{scheme}_wbb"] = evaluate(draws, ref_at, None, grid, shapes, rng, importance=False)["wbb"]
    targs = tuple(jnp.asarray(a, dtype) if a.dtype.kind == "f" else jnp.asarray(a) for a in augment_tilt(X, y))
    draws = record(
        "diabetes_sigma/tilt",
        exact_wbb,
        key,
        ridge_sigma_tilt_model,
        *targs,
        hyper={"lam": grid},
        num_samples=sizes.num_samples,
        prior_weight="fixed",
        progress_bar=False,
    )
    entry["tilt"] = evaluate(draws, ref_at, None, grid, shapes, rng, importance=False)["wbb"]
    report["experiments"]["diabetes_sigma"] = entry
    print(
        "[diabetes_sigma] sigma sd ratio / shift: "
        + "; ".join(
            f"{m}: " + " ".join(f"{r['sigma_sd_ratio']:.2f}/{r['sigma_mean_shift']:+.2f}" for r in entry[m])
            for m in ("anchored_wbb", "fixed_wbb", "tilt")
        )
    )

    # ---- failure 3: strong-signal ridge (exact reference)
    n, p = sizes.ridge_n, sizes.ridge_p
    r = np.random.default_rng(1)
    X = r.standard_normal((n, p))
    beta = 1.5 * r.standard_normal(p)
    y = X @ beta + r.standard_normal(n)
    shapes = {"beta": (p,)}
    jargs = (jnp.asarray(X, dtype), jnp.asarray(y, dtype))
    ref = study.ridge_reference(X, y, grid, num_chains=sizes.nuts_chains, num_samples=sizes.nuts_samples)
    ref_at = lambda k: _ref_draws(ref, k, shapes)  # noqa: E731
    logp_at = lambda k: log_posterior(study.ridge_model, jargs, grid[k], shapes)  # noqa: E731
    base = record(
        "ridge_strong/anchored",
        exact_wbb,
        key,
        study.ridge_model,
        *jargs,
        hyper={"lam": grid},
        num_samples=sizes.num_samples,
        progress_bar=False,
    )
    entry = {"info": {"n": n, "p": p, "signal_var": float(beta @ beta), "sigma": 1.0}}
    entry |= {f"anchored_{k}": v for k, v in evaluate(base, ref_at, logp_at, grid, shapes, rng).items()}
    report["experiments"]["ridge_strong"] = entry
    print(
        "[ridge_strong] sd ratio anchored",
        [round(r["sd_ratio"], 2) for r in entry["anchored_wbb"]],
        "IS-proposal",
        [round(r["sd_ratio"], 2) for r in entry["anchored_is_proposal"]],
    )

    report["warnings"] = record.messages
    (out / "fixes.json").write_text(json.dumps(report, indent=1))
    (out / "fixes.md").write_text(markdown(report))
    return report


def markdown(report):
    lines = [
        "# Fixes for anchored WBB's failure modes (prototype)",
        "",
        f"Sizes {report['sizes']}, dtype {report['dtype']}. Median over coordinates ± MCSE; b0 = intercept; "
        "k̂ = PSIS Pareto shape (IS is reliable for k̂ < 0.7).",
        "",
    ]
    for name, e in report["experiments"].items():
        lines += [f"## {name}", "", f"{e['info']}", ""]
        site = next((x for x in ("b0", "sigma") if f"{x}_sd_ratio" in e["anchored_wbb"][0]), None)
        head = (
            "| λ | method | sd ratio | cov 90 | max\\|shift\\| | "
            + (f"{site} sd ratio | {site} shift | " if site else "")
            + "k̂ | ESS |"
        )
        lines += [head, "|" + "---|" * (head.replace("\\|", "").count("|") - 1)]
        order = ("anchored_wbb", "fixed_wbb", "tilt", "topup", "anchored_is_reweight", "anchored_is_proposal")
        methods = [k for k in order if k in e]
        for k in range(len(e["anchored_wbb"])):
            for m in methods:
                r = e[m][k]
                cells = [
                    f"{r['lam']:g}",
                    m.replace("anchored_", "").replace("fixed_wbb", "fixed"),
                    f"{r['sd_ratio']:.2f} ± {r['sd_ratio_mcse']:.2f}",
                    f"{r['coverage_90']:.3f}",
                    f"{r['max_abs_mean_shift']:.2f} ({r['max_abs_mean_shift_param']})",
                ]
                if site:
                    cells += [
                        f"{r[f'{site}_sd_ratio']:.2f} ± {r[f'{site}_sd_ratio_mcse']:.2f}",
                        f"{r[f'{site}_mean_shift']:+.2f}",
                    ]
                cells += [f"{r['pareto_k']:.2f}" if "pareto_k" in r else "–", f"{r['ess']:.0f}"]
                lines.append("| " + " | ".join(cells) + " |")
        if "topup_table" in e:
            lines += [
                "",
                "Top-up table: "
                + ", ".join(
                    f"λ={t['lam']:g}: v={t['v']:.1f}, first-order b0 sd ratio {t['first_order_b0_sd_ratio']:.2f}"
                    for t in e["topup_table"]
                ),
            ]
        lines.append("")
    if report["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--x64", action="store_true")
    a = parser.parse_args()
    if a.x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    a.out.mkdir(parents=True, exist_ok=True)
    run(a.out, a.smoke)
