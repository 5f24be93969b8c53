r"""Performance targets of issue 6, measured side by side in one run.

Usage::

    python benchmarks/perf.py --out DIR [--smoke]      # or: wbbgen bench perf --out DIR [--smoke]

Targets (ratios are measured in this run, on this machine):

* **P1** λ path vs MCMC -- breast-cancer logistic (:func:`wbbgen.demo.logistic_model`), 50 λ on
  a log grid over [1e-2, 1e3] × 1000 draws: AmortizedWBB end to end (pilot, training with its
  compilation, fidelity check, evaluation) against :func:`wbbgen.nuts_reference` over the same
  grid (4 chains × 1000 warm-up + 250 draws = 1000 draws per λ). Goal ≥ 30× on 2 CPU cores
  (≥ 100× on a GPU). :func:`wbbgen.exact_wbb` over the same grid is reported beside them.
* **P3** evaluation -- after training, 50 λ × 1000 draws (``get_samples``, warm: median of 5
  calls after one compiling call) plus a held-out log-density curve. Goal ≤ 20 ms on 2 CPU
  cores (≤ 2 ms on an H100). The compilation time is reported apart.
* **P6** fidelity -- generator vs exact WBB on identical draws at 5 λ spread over the range
  (``result.fidelity``) for ridge and logistic: worst |sd ratio − 1| ≤ 0.05 and worst
  |mean shift| ≤ 0.05 sd at every λ.
* **P2** (digits MLP) and **P5** (n = 10⁶ with data minibatches) are reported as not measured
  until the library supports them (MLP benchmark model; minibatched criterion).

Outputs in ``--out``: ``perf.json`` (keyed by target: figure, goal, device, met), ``perf.md``
(the table) and ``perf_times.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist


def _device() -> str:
    d = jax.devices()[0]
    kind = getattr(d, "device_kind", d.platform)
    return f"{d.platform.upper()} ({kind}), {os.cpu_count()} cores, {platform.processor() or platform.machine()}"


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    leaves = jax.tree_util.tree_leaves(dict(out) if isinstance(out, dict) else out)
    jax.block_until_ready([x for x in leaves if isinstance(x, jax.Array)])
    return out, time.perf_counter() - t0


def ridge_model(X, y=None, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def p1_p3(smoke: bool) -> tuple[dict, dict, dict]:
    from wbbgen import AmortizedWBB, exact_wbb, nuts_reference
    from wbbgen.datasets import breast_cancer
    from wbbgen.demo import logistic_model
    from wbbgen.tuning import evaluate, heldout_log_density

    data = breast_cancer()
    X, y, Xte, yte = (jnp.asarray(a) for a in data[:4])
    K, S = (3, 50) if smoke else (50, 1000)
    num_steps = 200 if smoke else 10_000
    grid = np.logspace(-2, 3, K)
    keys = jax.random.split(jax.random.key(0), 4)

    t0 = time.perf_counter()
    infer = AmortizedWBB(logistic_model, hyper={"lam": dist.LogUniform(1e-2, 1e3)})
    result = infer.run(keys[0], X, y, num_steps=num_steps, progress_bar=False)
    _, t_first = _timed(infer.get_samples, keys[1], result, hyper={"lam": grid}, num_samples=S)
    t_amortized = time.perf_counter() - t0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, t_exact = _timed(
            exact_wbb, keys[1], logistic_model, X, y, hyper={"lam": grid}, num_samples=S, progress_bar=False
        )
        chains, warmup, draws = (1, 100, 50) if smoke else (4, 1000, 250)
        _, t_nuts = _timed(
            nuts_reference,
            keys[2],
            logistic_model,
            X,
            y,
            hyper={"lam": grid},
            num_chains=chains,
            num_warmup=warmup,
            num_samples=draws,
            progress_bar=False,
        )

    # P3: warm evaluation, then the criterion curve on the same draws.
    reps = []
    for r in range(5):
        samples, t = _timed(
            infer.get_samples, jax.random.fold_in(keys[3], r), result, hyper={"lam": grid}, num_samples=S
        )
        reps.append(t)
    crit = heldout_log_density(Xte, yte)
    evaluate(logistic_model, samples, crit)  # compile
    t_crit = statistics.median(_timed(evaluate, logistic_model, samples, crit)[1] for _ in range(3))
    t_eval = statistics.median(reps)

    p1 = {
        "figure": t_nuts / t_amortized,
        "unit": "× faster than NUTS (end to end)",
        "goal": 30.0,
        "met": bool(t_nuts / t_amortized >= 30.0),
        "times_s": {
            "amortized_end_to_end": t_amortized,
            "amortized_train": result.diagnostics["train_s"],
            "amortized_pilot": result.diagnostics["pilot_s"],
            "amortized_fidelity": result.diagnostics.get("fidelity_s", 0.0),
            "nuts_grid": t_nuts,
            "exact_wbb_grid": t_exact,
        },
        "exact_vs_nuts": t_nuts / t_exact,
        "setup": f"{K} λ × {S} draws; {num_steps} training steps; NUTS {chains} chains × ({warmup} + {draws})",
    }
    p3 = {
        "figure": 1e3 * (t_eval + t_crit),
        "unit": "ms (samples + criterion curve, warm)",
        "goal": 20.0,
        "met": bool(1e3 * (t_eval + t_crit) <= 20.0),
        "times_ms": {
            "get_samples": 1e3 * t_eval,
            "criterion_curve": 1e3 * t_crit,
            "first_call_with_compile": 1e3 * t_first,
        },
        "setup": f"{K} λ × {S} draws",
    }
    p6_logistic = result.fidelity
    return p1, p3, p6_logistic


def p6(smoke: bool, logistic_fidelity: dict) -> dict:
    from wbbgen import AmortizedWBB

    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    X = jax.random.normal(k1, (200, 10))
    y = X @ (0.5 * jax.random.normal(k2, (10,))) + jax.random.normal(k3, (200,))
    infer = AmortizedWBB(ridge_model, hyper={"lam": dist.LogUniform(1e-2, 1e3)})
    result = infer.run(jax.random.key(2), X, y, num_steps=200 if smoke else 10_000, progress_bar=False)
    rows = {}
    for name, fid in [("ridge", result.fidelity), ("logistic", logistic_fidelity)]:
        sd_err = np.maximum(np.abs(fid["sd_ratio_min"] - 1), np.abs(fid["sd_ratio_max"] - 1))
        rows[name] = {
            "lam": np.asarray(fid["values"])[:, 0].tolist(),
            "sd_ratio_median": np.asarray(fid["sd_ratio_median"]).tolist(),
            "worst_sd_error": sd_err.tolist(),
            "worst_mean_error": np.asarray(fid["mean_error_max"]).tolist(),
        }
    worst_sd = max(max(r["worst_sd_error"]) for r in rows.values())
    worst_mean = max(max(r["worst_mean_error"]) for r in rows.values())
    return {
        "figure": {"worst_sd_error": worst_sd, "worst_mean_error": worst_mean},
        "unit": "worst coordinate over 5 λ, ridge and logistic",
        "goal": {"worst_sd_error": 0.05, "worst_mean_error": 0.05},
        "met": bool(worst_sd <= 0.05 and worst_mean <= 0.05),
        "per_problem": rows,
    }


def run(out: str | Path, smoke: bool = False) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = _device()
    p1, p3, fid = p1_p3(smoke)
    results = {
        "P1": {**p1, "device": device},
        "P3": {**p3, "device": device},
        "P6": {**p6(smoke, fid), "device": device},
        "P2": {
            "figure": None,
            "goal": "≥ 30× less wall time than exact refits, accuracy within 0.5 pp",
            "met": None,
            "device": device,
            "note": "not measured: no MLP benchmark model yet",
        },
        "P5": {
            "figure": None,
            "goal": "n = 10⁶, p = 100 within 4 GB",
            "met": None,
            "device": device,
            "note": "not measured: the criterion has no data minibatches yet",
        },
        "smoke": smoke,
    }
    (out / "perf.json").write_text(json.dumps(results, indent=2))
    lines = ["| target | measured | goal | met | device |", "|---|---|---|---|---|"]
    fmt = {
        "P1": lambda r: (
            f"{r['figure']:.1f}× (NUTS {r['times_s']['nuts_grid']:.0f} s vs amortized "
            f"{r['times_s']['amortized_end_to_end']:.0f} s; exact WBB {r['times_s']['exact_wbb_grid']:.0f} s)"
        ),
        "P3": lambda r: (
            f"{r['figure']:.1f} ms (samples {r['times_ms']['get_samples']:.1f} + curve "
            f"{r['times_ms']['criterion_curve']:.1f}; compile {r['times_ms']['first_call_with_compile']:.0f} ms)"
        ),
        "P6": lambda r: f"sd {r['figure']['worst_sd_error']:.3f}, mean {r['figure']['worst_mean_error']:.3f} sd",
    }
    for key in ["P1", "P2", "P3", "P5", "P6"]:
        r = results[key]
        measured = fmt[key](r) if key in fmt else r["note"]
        met = {True: "yes", False: "no", None: "—"}[r["met"]]
        lines.append(f"| {key} | {measured} | {r['goal']} | {met} | {r['device']} |")
    table = "\n".join(lines) + "\n"
    (out / "perf.md").write_text(table)
    _plot(results["P1"], out / "perf_times.png")
    print(table)
    return results


def _plot(p1, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = p1["times_s"]
    names = ["NUTS (grid)", "exact WBB (grid)", "AmortizedWBB (end to end)"]
    vals = [t["nuts_grid"], t["exact_wbb_grid"], t["amortized_end_to_end"]]
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.barh(names, vals, color=["#888", "#4c72b0", "#dd8452"])
    ax.set_xlabel("wall time (s), same grid and draws")
    ax.set_title(f"P1: {p1['setup']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    run(args.out, args.smoke)


if __name__ == "__main__":
    main()
