r"""Calibration of a scale parameter: anchored exact WBB against NUTS on diabetes ridge with σ unknown.

Model: β ~ N(0, I/λ), σ ~ HalfNormal(1), y ~ N(Xβ, σ²) on :func:`wbbgen.datasets.diabetes`
(n = 342, p = 10; y scaled to unit sd), in float64. At λ = 0.1, 10 and 1000, anchored
:func:`wbbgen.exact_wbb` (2000 draws per λ) is compared with :func:`wbbgen.nuts_reference`
(2 chains × (500 + 1000)) by :func:`wbbgen.calibration`: the sd ratio, mean shift and 90 %
coverage of σ and of the last β coordinates are printed, and written to
``sigma_check.json`` in ``--out`` when given.

Usage: ``wbbgen bench sigma-check [--out DIR]``.
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

__all__ = ["sigma_model", "GRID", "main"]

GRID = (0.1, 10.0, 1000.0)


def sigma_model(X, y=None, *, lam=1.0):
    """Ridge with an unknown noise scale: β ~ N(0, I/λ), σ ~ HalfNormal(1), y ~ N(Xβ, σ²)."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="wbbgen bench sigma-check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for sigma_check.json")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    d = diabetes(dtype=np.float64)
    X, y = jnp.asarray(d.X_train), jnp.asarray(d.y_train / d.y_train.std())
    grid = np.asarray(GRID)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NUTS diagnostics and unconverged draws show in the numbers
        ref = nuts_reference(
            jax.random.key(0),
            sigma_model,
            X,
            y,
            hyper={"lam": grid},
            num_chains=2,
            num_warmup=500,
            num_samples=1000,
            progress_bar=False,
        )
        ex = exact_wbb(jax.random.key(1), sigma_model, X, y, hyper={"lam": grid}, num_samples=2000, progress_bar=False)
        cal = calibration(ex.to_inference_data(), ref)
    tables = {name: cal[name].to_pandas().T.tail(3).round(3) for name in ("sd_ratio", "mean_shift", "coverage_90")}
    for name, table in tables.items():
        print(f"{name}:\n{table}\n")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = {name: json.loads(table.to_json()) for name, table in tables.items()}
        (args.out / "sigma_check.json").write_text(json.dumps(payload, indent=1))
    return cal
