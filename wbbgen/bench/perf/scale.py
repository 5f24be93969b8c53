r"""P5 -- scale: synthetic logistic regression with n rows and p features trains within 4 GB.

A child process generates X ~ N(0, I) (n × p, float32, in row chunks), β = 0.7·z/√p
(z ~ N(0, I): logits of sd ≈ 0.7), y ~ Bernoulli(σ(b₀ + Xβ)) with b₀ = −0.3, and trains
:class:`wbbgen.AmortizedWBB` on :func:`wbbgen.models.logistic` over λ ~ LogUniform(1e-2, 1e3)
with block weights (``weights="block"``: the generator sees one weight per block of rows, not
n) and the minibatched criterion (``data_batch_size`` rows per step, whatever n). The pilot
and fidelity solves run on the full data. The parent runs the child under
``/usr/bin/time -v`` and reports its peak resident memory (maximum RSS: the whole process --
Python, JAX's runtime, the data, every buffer) against the goal; on a GPU the figure is the
device's peak memory from JAX's ``memory_stats`` where available.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from wbbgen import AmortizedWBB
from wbbgen.bench.harness import device, load, on_gpu, run_child
from wbbgen.models import logistic

__all__ = ["run", "child", "child_main", "GOAL_GB", "TARGET_SIZES"]

GOAL_GB = 4.0
#: (n, p) at which the goal is judged: on CPU and on a GPU.
TARGET_SIZES = ((1_000_000, 100), (10_000_000, 100))
_CHILD = "import sys; from wbbgen.bench.perf.scale import child_main; child_main(sys.argv[1:])"


def child(n: int, p: int, num_steps: int, data_batch_size: int, seed: int = 0) -> dict:
    """Make the data, train, and return the times, the fidelity and the memory in use."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    beta = 0.7 * rng.normal(size=p).astype(np.float32) / np.sqrt(p)
    X_np, y_np = np.empty((n, p), np.float32), np.empty(n, np.float32)
    for start in range(0, n, 100_000):  # in row chunks: no n × p temporaries beside X
        rows = rng.normal(size=(min(100_000, n - start), p)).astype(np.float32)
        X_np[start : start + len(rows)] = rows
        prob = 1.0 / (1.0 + np.exp(-(rows @ beta - 0.3)))
        y_np[start : start + len(rows)] = rng.uniform(size=len(rows)) < prob
    X, y = jnp.asarray(X_np), jnp.asarray(y_np)
    del X_np, y_np
    jax.block_until_ready((X, y))
    t_data = time.perf_counter() - t0
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    infer = AmortizedWBB(
        logistic,
        hyper={"lam": dist.LogUniform(1e-2, 1e3)},
        weights="block",
        data_batch_size=data_batch_size,
        num_pilot=4,
        num_pilot_samples=8,
        fidelity_samples=16,
        chunk_size=min(500, num_steps),
    )
    t0 = time.perf_counter()
    result = infer.run(jax.random.key(seed), X, y, num_steps=num_steps, progress_bar=False)
    t_run = time.perf_counter() - t0
    d, fid = result.diagnostics, result.fidelity
    sd_err = np.maximum(np.abs(fid["sd_ratio_min"] - 1), np.abs(fid["sd_ratio_max"] - 1))
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    mem = stats.get("peak_bytes_in_use", stats.get("bytes_in_use")) if stats else None
    train_run = d["train_s"] - d.get("compile_s", 0.0)
    return {
        "n": n,
        "p": p,
        "num_steps": num_steps,
        "data_batch_size": data_batch_size,
        "data_gb": (X.nbytes + y.nbytes) / 2**30,
        "peak_rss_after_data_gb": rss_data,
        "times_s": {
            "make_data": t_data,
            "run_total": t_run,
            "pilot": d["pilot_s"],
            "train_compile": d.get("compile_s", 0.0),
            "train_run": train_run,
            "per_step_ms": 1e3 * train_run / num_steps,
            "fidelity": d.get("fidelity_s", 0.0),
        },
        "device_peak_gb": None if mem is None else mem / 2**30,
        "fidelity": {
            "lam": np.asarray(fid["values"])[:, 0].tolist(),
            "worst_sd_error": sd_err.tolist(),
            "worst_mean_error": np.asarray(fid["mean_error_max"]).tolist(),
            "rmse_median": np.asarray(fid["rmse_median"]).tolist(),
        },
        "cost_model": None if result.cost is None else result.cost._asdict(),
        "child_platform": dev.platform,
    }


def child_main(argv) -> None:
    """The child process: print :func:`child`'s result as one JSON line."""
    parser = argparse.ArgumentParser()
    for name in ("--n", "--p", "--num-steps", "--data-batch-size"):
        parser.add_argument(name, type=int, required=True)
    a = parser.parse_args(argv)
    print(json.dumps(child(a.n, a.p, a.num_steps, a.data_batch_size)))


def run(shared: dict, *, n: int, n_gpu: int, p: int, num_steps: int, data_batch_size: int) -> dict:
    """P5's JSON entry: ``n`` rows on CPU, ``n_gpu`` on a GPU."""
    load_start = load()
    gpu = on_gpu()
    n = n_gpu if gpu else n
    args = ["--n", n, "--p", p, "--num-steps", num_steps, "--data-batch-size", data_batch_size]
    out = run_child([sys.executable, "-c", _CHILD, *map(str, args)], timeout=3 * 3600)
    peak = (out["device_peak_gb"] or out["peak_rss_gb"]) if gpu else out["peak_rss_gb"]
    judged = (n, p) in TARGET_SIZES
    return {
        "figure": peak,
        "unit": f"GB peak memory ({'GPU' if gpu else 'process RSS'}), n = {n:.0e}, p = {p}",
        "goal": GOAL_GB,
        "met": bool(peak <= GOAL_GB) if judged else None,
        "note": None if judged else "not the target's n, so not judged",
        **out,
        "device": device(),
        "load_average": [load_start, load()],
    }
