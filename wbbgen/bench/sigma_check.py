r"""Calibration of a scale parameter: anchored exact WBB against NUTS on diabetes ridge with σ unknown.

Model: β ~ N(0, I/λ), σ ~ HalfNormal(1), y ~ N(Xβ, σ²) on :func:`wbbgen.datasets.diabetes`
(n = 342, p = 10; y scaled to unit sd), in float64. At λ = 0.1, 10 and 1000, anchored
:func:`wbbgen.exact_wbb` (2000 draws per λ) is compared with :func:`wbbgen.nuts_reference`
(2 chains × (500 + 1000)) by :func:`wbbgen.calibration`: the sd ratio, mean shift and 90 %
coverage of σ and of the last β coordinates are printed, and written to
``sigma_check.json`` in ``--out`` when given. The same for a Student-t likelihood (ν = 4,
``student_t``). Beside the WBB draws: the posterior check's Pareto k̂ per λ and its reweighted
draws (:meth:`wbbgen.WBBSamples.posterior_check`), calibrated the same way.

Usage: ``wbbgen bench sigma-check [--out DIR] [--model normal student_t]``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from wbbgen import calibration, exact_wbb, nuts_reference
from wbbgen.datasets import diabetes

__all__ = ["sigma_model", "student_model", "MODELS", "GRID", "main"]

GRID = (0.1, 10.0, 1000.0)


def sigma_model(X, y=None, *, lam=1.0):
    """Ridge with an unknown noise scale: β ~ N(0, I/λ), σ ~ HalfNormal(1), y ~ N(Xβ, σ²)."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def student_model(X, y=None, *, lam=1.0):
    """The same with Student-t noise (ν = 4): y ~ t₄(Xβ, σ)."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.StudentT(4.0, X @ beta, sigma), obs=y)


MODELS = {"normal": sigma_model, "student_t": student_model}


def _tables(cal) -> dict:
    """σ's and the last two β coordinates' sd ratio, mean shift and coverage per λ."""
    out = {name: cal[name].to_pandas().T.tail(3).round(3) for name in ("sd_ratio", "mean_shift", "coverage_90")}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="wbbgen bench sigma-check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for sigma_check.json")
    parser.add_argument("--model", choices=sorted(MODELS), nargs="+", default=sorted(MODELS))
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    d = diabetes(dtype=np.float64)
    X, y = jnp.asarray(d.X_train), jnp.asarray(d.y_train / d.y_train.std())
    grid = np.asarray(GRID)
    payload, cals = {}, {}
    for name in args.model:
        model = MODELS[name]
        k_ref, k_wbb, k_check = jax.random.split(jax.random.key(0), 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NUTS diagnostics and unconverged draws show in the numbers
            ref = nuts_reference(
                k_ref, model, X, y, hyper={"lam": grid}, num_chains=2, num_warmup=500, num_samples=1000,
                progress_bar=False,
            )  # fmt: skip
            ex = exact_wbb(k_wbb, model, X, y, hyper={"lam": grid}, num_samples=2000, progress_bar=False)
            check = ex.posterior_check(k_check, warn=False)
        cal = calibration(ex.to_inference_data(), ref)
        cal_rw = calibration(check.reweighted.to_inference_data(), ref)
        cals[name] = cal, cal_rw
        entry = {
            "pareto_k": check.k_hat.tolist(),
            "ess_fraction": check.ess.tolist(),
            "reweighted_k_hat": check.reweighted_k_hat.tolist(),
            "flagged": check.flagged.tolist(),
        }
        for label, c in (("exact_wbb", cal), ("reweighted", cal_rw)):
            tables = _tables(c)
            print(f"== {name}, {label} (lam = {list(GRID)}) ==")
            for metric, table in tables.items():
                print(f"{metric}:\n{table}\n")
            entry[label] = {metric: json.loads(table.to_json()) for metric, table in tables.items()}
        print(
            f"{name}: Pareto k̂ {np.round(check.k_hat, 2).tolist()}, ESS/M {np.round(check.ess, 3).tolist()}, "
            f"reweighted k̂ {np.round(check.reweighted_k_hat, 2).tolist()}, flagged {check.flagged.tolist()}\n"
        )
        payload[name] = entry
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sigma_check.json").write_text(json.dumps(payload, indent=1))
    return cals
