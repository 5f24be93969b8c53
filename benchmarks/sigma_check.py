"""Scale-parameter calibration check: diabetes ridge with sigma ~ HalfNormal(1), anchored exact WBB vs NUTS.

Usage: python benchmarks/sigma_check.py   (x64; ~1-2 min on 2 CPU cores). Prints the sd ratio,
mean shift and 90 % coverage of sigma (and the last two beta coordinates) at lam = 0.1, 10, 1000.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from wbbgen import calibration, exact_wbb, nuts_reference
from wbbgen.datasets import diabetes

jax.config.update("jax_enable_x64", True)  # a benchmark script, not the library

d = diabetes(dtype=np.float64)
X = jnp.asarray(d.X_train)
y = jnp.asarray(d.y_train / d.y_train.std())


def model(X, y=None, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


grid = np.array([0.1, 10.0, 1000.0])
warnings.simplefilter("ignore")
ref = nuts_reference(
    jax.random.key(0),
    model,
    X,
    y,
    hyper={"lam": grid},
    num_chains=2,
    num_warmup=500,
    num_samples=1000,
    progress_bar=False,
)
ex = exact_wbb(jax.random.key(1), model, X, y, hyper={"lam": grid}, num_samples=2000, progress_bar=False)
cal = calibration(ex.to_inference_data(), ref)
print(cal["sd_ratio"].to_pandas().T.tail(3).round(3))
print(cal["mean_shift"].to_pandas().T.tail(1).round(3))
print(cal["coverage_90"].to_pandas().T.tail(1).round(3))
