r"""Hierarchical models against NUTS: eight schools (centred and non-centred) and a random intercept.

The local latents (school effects, group intercepts) are integrated out of each group by
Laplace (:mod:`wbbgen.model.hierarchical`), the global parameters bootstrapped over groups
(anchored exact WBB, 2000 draws per λ), the local latents drawn from their conditional. Each
coordinate (positive sites on the log scale, the space wbbgen works in) is compared with NUTS
(NumPyro, non-centred, 2 chains × (1000 + 5000), target acceptance 0.95; R-hat and divergences
reported): sd ratio and mean shift in reference sd, for the WBB draws and for the posterior
check's reweighted draws (:meth:`wbbgen.WBBSamples.posterior_check`), with the check's k̂, its
reweighted k̂ and whether it flags the value. The band of the issue: sd ratio in [0.8, 1.25],
|shift| ≤ 0.3.

Models: eight schools (Rubin 1981; y, σ as in posteriordb's ``eight_schools``) with
μ ~ N(0, 5/√λ), τ ~ HalfCauchy(5/√λ); a random intercept on simulated data (8 groups × 6,
one covariate): μ, b ~ N(0, 1/λ), τ ~ HalfNormal(1/√λ), σ ~ HalfNormal(2), a_g ~ N(μ, τ).

Usage: ``wbbgen bench hierarchical [--out DIR] [--smoke]``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from wbbgen import exact_wbb

__all__ = ["MODELS", "main", "eight_schools_centred", "eight_schools_noncentred", "random_intercept"]

Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
GRID = (0.1, 1.0, 10.0)
SD_BAND, SHIFT_BAND = (0.8, 1.25), 0.3


def eight_schools_centred(sigma, y=None, *, lam=1.0):
    """θ_j ~ N(μ, τ), y_j ~ N(θ_j, σ_j)."""
    mu = numpyro.sample("mu", dist.Normal(0, 5 / jnp.sqrt(lam)))
    tau = numpyro.sample("tau", dist.HalfCauchy(5 / jnp.sqrt(lam)))
    with numpyro.plate("J", sigma.shape[0]):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools_noncentred(sigma, y=None, *, lam=1.0):
    """θ̃_j ~ N(0, 1), θ_j = μ + τ θ̃_j, y_j ~ N(θ_j, σ_j)."""
    mu = numpyro.sample("mu", dist.Normal(0, 5 / jnp.sqrt(lam)))
    tau = numpyro.sample("tau", dist.HalfCauchy(5 / jnp.sqrt(lam)))
    with numpyro.plate("J", sigma.shape[0]):
        tt = numpyro.sample("theta_tilde", dist.Normal(0, 1))
        theta = numpyro.deterministic("theta", mu + tau * tt)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def random_intercept(g, x, y=None, *, lam=1.0):
    """a_g ~ N(μ, τ), y_i ~ N(a_{g_i} + b x_i, σ)."""
    mu = numpyro.sample("mu", dist.Normal(0, 1 / jnp.sqrt(lam)))
    b = numpyro.sample("b", dist.Normal(0, 1 / jnp.sqrt(lam)))
    tau = numpyro.sample("tau", dist.HalfNormal(1 / jnp.sqrt(lam)))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    with numpyro.plate("groups", 8):
        a = numpyro.sample("a", dist.Normal(mu, tau))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.Normal(a[g] + b * x, sigma), obs=y)


def _random_intercept_reference(g, x, y=None, *, lam=1.0):
    mu = numpyro.sample("mu", dist.Normal(0, 1 / jnp.sqrt(lam)))
    b = numpyro.sample("b", dist.Normal(0, 1 / jnp.sqrt(lam)))
    tau = numpyro.sample("tau", dist.HalfNormal(1 / jnp.sqrt(lam)))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    with numpyro.plate("groups", 8):
        z = numpyro.sample("z", dist.Normal(0, 1))
    a = numpyro.deterministic("a", mu + tau * z)
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", dist.Normal(a[g] + b * x, sigma), obs=y)


def _random_intercept_data():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(8), 6)
    x = rng.normal(size=48)
    y = 1.0 + rng.normal(0, 0.7, 8)[g] + 0.5 * x + rng.normal(0, 1.0, 48)
    return g, x, y


#: name -> (model, reference model (non-centred), data, compared sites, positive sites)
MODELS = {
    "eight_schools_centred": (
        eight_schools_centred, eight_schools_noncentred, (SIGMA, Y), ("mu", "tau", "theta"), ("tau",)
    ),
    "eight_schools_noncentred": (
        eight_schools_noncentred, eight_schools_noncentred, (SIGMA, Y), ("mu", "tau", "theta"), ("tau",)
    ),
    "random_intercept": (
        random_intercept, _random_intercept_reference, _random_intercept_data(), ("mu", "b", "tau", "sigma", "a"),
        ("tau", "sigma"),
    ),
}  # fmt: skip


def _nuts(model, data, lam, key, num_warmup, num_samples):
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(
        NUTS(model, target_accept_prob=0.95), num_warmup=num_warmup, num_samples=num_samples, num_chains=2,
        chain_method="sequential", progress_bar=False,
    )  # fmt: skip
    mcmc.run(key, *data, lam=lam, extra_fields=("diverging",))
    grouped = mcmc.get_samples(group_by_chain=True)
    rhat = max(float(np.max(numpyro.diagnostics.split_gelman_rubin(np.asarray(v)))) for v in grouped.values())
    return mcmc.get_samples(), rhat, int(np.sum(mcmc.get_extra_fields()["diverging"]))


def _compare(draws, ref, sites, positive):
    """{site: (sd ratios, shifts)} per coordinate, positive sites by their log."""
    out = {}
    for name in sites:
        a, r = np.asarray(draws[name]), np.asarray(ref[name])
        if name in positive:
            a, r = np.log(a), np.log(r)
        sd = r.std(0)
        out[name] = (np.atleast_1d(a.std(0) / sd), np.atleast_1d((a.mean(0) - r.mean(0)) / sd))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="wbbgen bench hierarchical", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for hierarchical.json and hierarchical.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the pipeline, not the numbers")
    parser.add_argument("--model", choices=sorted(MODELS), nargs="+", default=list(MODELS))
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    S, warm, keep = (200, 200, 300) if args.smoke else (2000, 1000, 5000)
    grid = np.asarray(GRID)
    rows, payload = [], {}
    for name in args.model:
        model, reference, data, sites, positive = MODELS[name]
        k_wbb, k_check, k_ref = jax.random.split(jax.random.key(0), 3)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unconverged draws and the check's warning show in the numbers
            ex = exact_wbb(k_wbb, model, *data, hyper={"lam": grid}, num_samples=S, progress_bar=False)
            check = ex.posterior_check(k_check, warn=False)
        wbb_s = time.perf_counter() - t0
        entry = {"wbb_seconds": wbb_s, "converged": float(np.mean(ex.stats["converged"])), "values": []}
        for k, lam in enumerate(grid):
            ref, rhat, div = _nuts(reference, data, float(lam), jax.random.fold_in(k_ref, k), warm, keep)
            here = {"lam": float(lam), "nuts_rhat_max": rhat, "nuts_divergences": div,
                    "k_hat": float(check.k_hat[k]), "reweighted_k_hat": float(check.reweighted_k_hat[k]),
                    "flagged": bool(check.flagged[k])}  # fmt: skip
            for label, draws in (("wbb", ex), ("reweighted", check.reweighted)):
                per = _compare({s: draws[s][k] for s in sites}, ref, sites, positive)
                here[label] = {s: {"sd_ratio": v[0].tolist(), "shift": v[1].tolist()} for s, v in per.items()}
                sd = np.concatenate([v[0] for v in per.values()])
                shift = np.concatenate([v[1] for v in per.values()])
                worst_sd = sd[np.argmax(np.abs(np.log(sd)))]
                inside = bool(
                    (sd >= SD_BAND[0]).all() and (sd <= SD_BAND[1]).all() and (np.abs(shift) <= SHIFT_BAND).all()
                )
                rows.append((name, lam, label, per, worst_sd, float(np.abs(shift).max()), inside, here))
            entry["values"].append(here)
        payload[name] = entry
    lines = _table(rows)
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "hierarchical.json").write_text(json.dumps(payload, indent=1))
        (args.out / "hierarchical.md").write_text("\n".join(lines) + "\n")
    return payload


def _table(rows) -> list[str]:
    lines = [
        "| model | λ | draws | worst sd ratio | worst \\|shift\\| | log τ sd ratio | in band | k̂ | reweighted k̂ "
        "| flagged | NUTS R-hat, divergences |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, lam, label, per, worst_sd, worst_shift, inside, here in rows:
        tau = per["tau"][0][0]
        lines.append(
            f"| {name} | {lam:g} | {label} | {worst_sd:.2f} | {worst_shift:.2f} | {tau:.2f} "
            f"| {'yes' if inside else 'no'} "
            f"| {here['k_hat']:.2f} | {here['reweighted_k_hat']:.2f} | {'yes' if here['flagged'] else 'no'} "
            f"| {here['nuts_rhat_max']:.3f}, {here['nuts_divergences']} |"
        )
    return lines
