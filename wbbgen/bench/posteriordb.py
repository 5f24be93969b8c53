r"""Reference posteriors from posteriordb with their Stan models ported to NumPyro.

``wbbgen/bench/posteriordb_refs/<posterior>.json`` holds, per posterior of posteriordb
(https://github.com/stan-dev/posteriordb, the commit in each file's ``source``): the Stan code
(``stan_code``), the data (``data``, as posteriordb ships it), and summaries of the reference
draws (``reference``: per Stan parameter, vector parameters in index order, scalars as
one-element lists, ``mean``, ``sd`` (ddof 1), ``q05``, ``q95`` over all ``num_draws`` draws,
10 chains × 1000 of Stan's NUTS). The draws themselves are not vendored.

:data:`MODELS` maps each posterior name to ``(model, data_fn, sites)``:

* ``model(*args, lam=1.0, **kwargs)``, a NumPyro model whose density at ``lam=1`` is the Stan
  model's (up to the constants Stan's ``~`` drops). ``lam`` multiplies the precision of the
  priors on the regression coefficients and group-level parameters (their scales by
  ``1/√lam``); noise scales, GP length scales and the standard-normal innovations of a
  non-centred parametrisation are left alone, and flat priors have no scale to change (a model
  with only flat coefficient priors accepts ``lam`` and ignores it). Each model says which
  priors ``lam`` scales and which are flat (``ImproperUniform``, Stan's implicit prior);
* ``data_fn(json_data) -> (args, kwargs)``, the model's arguments from the file's ``data``
  (Stan's transformed data computed with NumPy; sizes that define shapes as Python ints);
* ``sites``, ``{reference parameter: (site name, transform or None)}``: the draws of the site,
  mapped by ``transform`` where one is given, estimate the reference parameter.

Observed sites sit in ``numpyro.plate("data", N)``; the group effects of a hierarchical model in
``numpyro.plate("groups", J)``, indexed per observation by a 0-based group index ``g``.

Posteriors (parameters, observations):

* ``eight_schools-eight_schools_noncentered`` (10; 8), hierarchical, non-centred;
* ``eight_schools-eight_schools_centered`` (10; 8), hierarchical, centred; posteriordb gives
  it the non-centred model's reference posterior (the same posterior of θ, μ, τ);
* ``kidiq-kidscore_momiq`` (3; 434), linear regression, flat coefficients;
* ``mesquite-logmesquite_logvas`` (8; 46), linear regression on logs, flat coefficients;
* ``kilpisjarvi_mod-kilpisjarvi`` (3; 62), linear trend with normal priors given in the data;
* ``arK-arK`` (7; 200, 195 modelled), autoregression of order 5;
* ``sblrc-blr`` (6; 100), Bayesian linear regression, 5 correlated covariates;
* ``gp_pois_regr-gp_pois_regr`` (13; 11), Poisson regression on a latent Gaussian process.

Usage::

    model, data_fn, sites = MODELS["kidiq-kidscore_momiq"]
    ref = load("kidiq-kidscore_momiq")
    args, kwargs = data_fn(ref["data"])
    # e.g. numpyro.infer.MCMC(NUTS(model), ...).run(key, *args, **kwargs, lam=1.0)
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

__all__ = [
    "MODELS",
    "NAMES",
    "METHODS",
    "REFS_DIR",
    "load",
    "eight_schools_noncentered",
    "eight_schools_centered",
    "kidscore_momiq",
    "logmesquite_logvas",
    "kilpisjarvi",
    "ark",
    "blr",
    "gp_pois_regr",
    "compare",
    "main",
]

REFS_DIR = Path(__file__).with_name("posteriordb_refs")


def _flat(shape=(), positive=False):
    """Stan's implicit flat prior: ImproperUniform on ℝ (or (0, ∞)), event shape ``shape``."""
    return dist.ImproperUniform(constraints.positive if positive else constraints.real, (), tuple(shape))


# --------------------------------------------------------------------------------------------
# Eight schools (Rubin 1981): J = 8 schools, one estimate y_j with known sd σ_j per school.
# --------------------------------------------------------------------------------------------


def eight_schools_noncentered(g, sigma, num_groups, y=None, *, lam=1.0):
    """θ̃_j ~ N(0, 1), θ_j = μ + τ θ̃_j, y_i ~ N(θ_{g_i}, σ_i).

    μ ~ N(0, 5/√lam), τ ~ HalfCauchy(5/√lam) (Stan: ``real<lower=0> tau; tau ~ cauchy(0, 5)``);
    ``lam`` scales both; θ̃'s N(0, 1) is left alone. No flat priors.
    """
    s = 1.0 / jnp.sqrt(lam)
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0 * s))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0 * s))
    with numpyro.plate("groups", num_groups):
        theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0))
    theta = numpyro.deterministic("theta", theta_trans * tau + mu)
    with numpyro.plate("data", sigma.shape[0]):
        numpyro.sample("y", dist.Normal(theta[g], sigma), obs=y)


def eight_schools_centered(g, sigma, num_groups, y=None, *, lam=1.0):
    """θ_j ~ N(μ, τ), y_i ~ N(θ_{g_i}, σ_i).

    μ ~ N(0, 5/√lam), τ ~ HalfCauchy(5/√lam); ``lam`` scales both (θ's scale is τ itself).
    No flat priors. The centred geometry (a funnel in τ) gives NUTS divergences, in Stan too.
    """
    s = 1.0 / jnp.sqrt(lam)
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0 * s))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0 * s))
    with numpyro.plate("groups", num_groups):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
    with numpyro.plate("data", sigma.shape[0]):
        numpyro.sample("y", dist.Normal(theta[g], sigma), obs=y)


def _eight_schools_data(d):
    J = int(d["J"])
    sigma, y = np.asarray(d["sigma"], float), np.asarray(d["y"], float)
    return (np.arange(J), sigma, J, y), {}


# --------------------------------------------------------------------------------------------
# Regressions.
# --------------------------------------------------------------------------------------------


def kidscore_momiq(mom_iq, kid_score=None, *, lam=1.0):
    """kid_score_i ~ N(β₁ + β₂ mom_iq_i, σ).

    β flat (ImproperUniform on ℝ², Stan's implicit prior), σ ~ HalfCauchy(2.5). ``lam`` has no
    effect: the coefficients' prior is flat and σ is a noise scale.
    """
    beta = numpyro.sample("beta", _flat((2,)))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    with numpyro.plate("data", mom_iq.shape[0]):
        numpyro.sample("kid_score", dist.Normal(beta[0] + beta[1] * mom_iq, sigma), obs=kid_score)


def _kidiq_data(d):
    return (np.asarray(d["mom_iq"], float), np.asarray(d["kid_score"], float)), {}


def logmesquite_logvas(X, log_weight=None, *, lam=1.0):
    """log weight_i ~ N(β₁ + X_i · β₂…₇, σ).

    X's columns (the Stan model's transformed data): log canopy volume, log canopy area, log
    canopy shape, log total height, log density, group. β flat (ImproperUniform on ℝ⁷), σ flat on
    (0, ∞) (ImproperUniform, Stan's implicit prior on ``real<lower=0> sigma``). ``lam`` has no
    effect: every prior is flat.
    """
    beta = numpyro.sample("beta", _flat((X.shape[1] + 1,)))
    sigma = numpyro.sample("sigma", _flat(positive=True))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("log_weight", dist.Normal(beta[0] + X @ beta[1:], sigma), obs=log_weight)


def _mesquite_data(d):
    a = {k: np.asarray(v, float) for k, v in d.items() if k != "N"}
    X = np.stack(
        [
            np.log(a["diam1"] * a["diam2"] * a["canopy_height"]),
            np.log(a["diam1"] * a["diam2"]),
            np.log(a["diam1"] / a["diam2"]),
            np.log(a["total_height"]),
            np.log(a["density"]),
            a["group"],
        ],
        axis=1,
    )
    return (X, np.log(a["weight"])), {}


def kilpisjarvi(x, y=None, *, pmualpha, psalpha, pmubeta, psbeta, lam=1.0):
    """y_i ~ N(α + β x_i, σ) (summer temperature at Kilpisjärvi against year).

    α ~ N(pmualpha, psalpha/√lam), β ~ N(pmubeta, psbeta/√lam), the prior means and sds given in
    the data; ``lam`` scales both. σ flat on (0, ∞) (ImproperUniform, Stan's implicit prior).
    x is the year as posteriordb gives it (not centred), so α and β are correlated almost to -1.
    """
    s = 1.0 / jnp.sqrt(lam)
    alpha = numpyro.sample("alpha", dist.Normal(pmualpha, psalpha * s))
    beta = numpyro.sample("beta", dist.Normal(pmubeta, psbeta * s))
    sigma = numpyro.sample("sigma", _flat(positive=True))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)


def _kilpisjarvi_data(d):
    kw = {k: float(d[k]) for k in ("pmualpha", "psalpha", "pmubeta", "psbeta")}
    return (np.asarray(d["x"], float), np.asarray(d["y"], float)), kw


def ark(lags, y=None, *, lam=1.0):
    """y_t ~ N(α + Σ_k β_k y_{t-k}, σ) for t = K+1…T (the first K values are conditioned on).

    ``lags[t-K-1, k-1] = y_{t-k}`` (built from the data). α ~ N(0, 10/√lam), β_k ~ N(0, 10/√lam),
    ``lam`` scales both; σ ~ HalfCauchy(2.5), not scaled. No flat priors.
    """
    s = 1.0 / jnp.sqrt(lam)
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0 * s))
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0 * s).expand([lags.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    with numpyro.plate("data", lags.shape[0]):
        numpyro.sample("y", dist.Normal(alpha + lags @ beta, sigma), obs=y)


def _ark_data(d):
    K, T = int(d["K"]), int(d["T"])
    y = np.asarray(d["y"], float)
    lags = np.stack([y[K - k : T - k] for k in range(1, K + 1)], axis=1)
    return (lags, y[K:]), {}


def blr(X, y=None, *, lam=1.0):
    """y_i ~ N(X_i · β, σ) (no intercept).

    β_d ~ N(0, 10/√lam), ``lam`` scales it; σ ~ HalfNormal(10) (Stan: ``real<lower=0> sigma``
    with ``normal_lpdf(sigma | 0, 10)``), not scaled. No flat priors.
    """
    beta = numpyro.sample("beta", dist.Normal(0.0, 10.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(10.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def _blr_data(d):
    return (np.asarray(d["X"], float), np.asarray(d["y"], float)), {}


def gp_pois_regr(x, k=None, *, lam=1.0):
    """k_i ~ Poisson(exp f_i), f = L f̃, f̃ ~ N(0, I), L Lᵀ = K(x; α, ρ) + 10⁻¹⁰ I.

    K_ij = α² exp(-(x_i - x_j)² / (2ρ²)) (Stan's ``gp_exp_quad_cov``). ρ ~ Gamma(25, rate 4),
    not scaled (a length scale); α ~ HalfNormal(2/√lam) (Stan: ``real<lower=0> alpha;
    alpha ~ normal(0, 2)``), ``lam`` scales it (the GP's marginal sd, the latent f's scale); f̃'s
    N(0, 1) is left alone. No flat priors. f is a deterministic site.
    """
    n = x.shape[0]
    rho = numpyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = numpyro.sample("alpha", dist.HalfNormal(2.0 / jnp.sqrt(lam)))
    f_tilde = numpyro.sample("f_tilde", dist.Normal(0.0, 1.0).expand([n]).to_event(1))
    cov = alpha**2 * jnp.exp(-0.5 * ((x[:, None] - x[None, :]) / rho) ** 2) + 1e-10 * jnp.eye(n)
    f = numpyro.deterministic("f", jnp.linalg.cholesky(cov) @ f_tilde)
    with numpyro.plate("data", n):
        numpyro.sample("k", dist.Poisson(jnp.exp(f)), obs=k)


def _gp_pois_regr_data(d):
    return (np.asarray(d["x"], float), np.asarray(d["k"], np.int64)), {}


def _same(*names):
    return {n: (n, None) for n in names}


#: posterior name -> (model, data_fn: json data -> (args, kwargs), {reference param: (site, transform)})
MODELS = {
    "eight_schools-eight_schools_noncentered": (
        eight_schools_noncentered, _eight_schools_data, _same("theta", "mu", "tau")
    ),
    "eight_schools-eight_schools_centered": (eight_schools_centered, _eight_schools_data, _same("theta", "mu", "tau")),
    "kidiq-kidscore_momiq": (kidscore_momiq, _kidiq_data, _same("beta", "sigma")),
    "mesquite-logmesquite_logvas": (logmesquite_logvas, _mesquite_data, _same("beta", "sigma")),
    "kilpisjarvi_mod-kilpisjarvi": (kilpisjarvi, _kilpisjarvi_data, _same("alpha", "beta", "sigma")),
    "arK-arK": (ark, _ark_data, _same("alpha", "beta", "sigma")),
    "sblrc-blr": (blr, _blr_data, _same("beta", "sigma")),
    "gp_pois_regr-gp_pois_regr": (gp_pois_regr, _gp_pois_regr_data, _same("rho", "alpha", "f")),
}  # fmt: skip

NAMES = tuple(MODELS)

#: exact WBB solver per posterior where the default (Newton) is not used. gp_pois_regr: batched
#: Newton solves of 200 or more draws never return on jax/jaxlib 0.10.2 CPU (the XLA CPU runtime
#: waits on itself, no thread busy; fewer draws, or one core, finish in ~10 s); L-BFGS converges
#: on every draw.
METHODS = {"gp_pois_regr-gp_pois_regr": "lbfgs"}


@cache
def _read(name: str) -> str:
    path = REFS_DIR / f"{name}.json"
    if name not in MODELS or not path.is_file():
        raise KeyError(f"no vendored posteriordb reference {name!r}; known: {', '.join(NAMES)}")
    return path.read_text()


def load(name: str) -> dict:
    """The vendored JSON of posterior ``name``: ``posterior``, ``stan_code``, ``data``,
    ``reference`` ({param: {"mean", "sd", "q05", "q95"}: lists}), ``num_draws`` and provenance."""
    return json.loads(_read(name))


def compare(name: str, rng_key, num_samples: int = 2000, reweight: bool = True) -> dict:
    """Anchored exact WBB of posterior ``name`` at ``lam=1`` (and its posterior check) against the
    vendored reference: per reference parameter the sd ratios and mean shifts (in reference sd)
    of its coordinates, for the WBB draws and the reweighted ones; k̂, reweighted k̂, flagged."""
    import warnings

    import jax

    from wbbgen import exact_wbb

    model, data_fn, sites = MODELS[name]
    ref = load(name)
    args, kwargs = data_fn(ref["data"])
    k_wbb, k_check = jax.random.split(rng_key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the check's warning and unconverged draws show in the numbers
        ex = exact_wbb(
            k_wbb,
            model,
            *args,
            hyper={"lam": [1.0]},
            num_samples=num_samples,
            method=METHODS.get(name, "auto"),
            progress_bar=False,
            **kwargs,
        )
        check = ex.posterior_check(k_check, warn=False)
    out = {"method": METHODS.get(name, "auto"), "converged": float(np.mean(ex.stats["converged"]))}
    out["k_hat"] = float(check.k_hat[0])
    out["reweighted_k_hat"] = None if check.reweighted_k_hat is None else float(check.reweighted_k_hat[0])
    out["flagged"] = bool(check.flagged[0])
    draw_sets = {"wbb": ex} | ({"reweighted": check.reweighted} if reweight and check.reweighted is not None else {})
    for label, draws in draw_sets.items():
        per = {}
        for param, (site, transform) in sites.items():
            x = np.asarray(draws[site][0]).reshape(num_samples, -1)
            x = x if transform is None else transform(x)
            mean, sd = (np.asarray(ref["reference"][param][k]) for k in ("mean", "sd"))
            per[param] = {"sd_ratio": (x.std(0, ddof=1) / sd).tolist(), "shift": ((x.mean(0) - mean) / sd).tolist()}
        out[label] = per
    return out


def main(argv=None):
    """``wbbgen bench posteriordb [--out DIR] [--smoke]``: :func:`compare` for every vendored posterior."""
    import argparse

    import jax

    parser = argparse.ArgumentParser(prog="wbbgen bench posteriordb", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for posteriordb.json and posteriordb.md")
    parser.add_argument("--smoke", action="store_true", help="200 draws, two posteriors: checks the pipeline")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    names = NAMES[:2] if args.smoke else NAMES
    S = 200 if args.smoke else 2000
    results = {name: compare(name, jax.random.fold_in(jax.random.key(0), i), S) for i, name in enumerate(names)}
    lines = [
        "| posterior | converged | WBB sd ratio (min–max) | WBB max \\|shift\\| | k̂ | flagged | reweighted k̂ "
        "| reweighted sd ratio (min–max) | reweighted max \\|shift\\| |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cells = []
        for label in ("wbb", "reweighted"):
            per = r.get(label)
            if per is None:
                cells.append("– | –")
                continue
            sd = np.concatenate([v["sd_ratio"] for v in per.values()])
            sh = np.concatenate([v["shift"] for v in per.values()])
            cells.append(f"{sd.min():.2f}–{sd.max():.2f} | {np.abs(sh).max():.2f}")
        rk = "–" if r["reweighted_k_hat"] is None else f"{r['reweighted_k_hat']:.2f}"
        flag = "yes" if r["flagged"] else "no"
        lines.append(f"| {name} | {r['converged']:.0%} | {cells[0]} | {r['k_hat']:.2f} | {flag} | {rk} | {cells[1]} |")
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "posteriordb.json").write_text(json.dumps(results, indent=1))
        (args.out / "posteriordb.md").write_text("\n".join(lines) + "\n")
    return results
