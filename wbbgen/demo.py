"""`wbbgen demo`: breast-cancer logistic regression over λ ∈ [1e-2, 1e3], end to end.

Trains one generator, draws the posterior on a λ grid, picks λ by held-out log-loss, checks
the generator against exact WBB at 5 λ values (same draws), and writes InferenceData
(netCDF), the regularisation path and the validation curve to ``--out``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

__all__ = ["logistic_model", "run_demo"]


def logistic_model(X, y=None, *, lam=1.0):
    """L2 logistic regression: β ~ N(0, 1/λ), unpenalised-ish intercept b0 ~ N(0, 10²)."""
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    b0 = numpyro.sample("b0", dist.Normal(0.0, 10.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=b0 + X @ beta), obs=y)


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    jax.block_until_ready(jax.tree_util.tree_leaves(dict(out)) if isinstance(out, dict) else out)
    return out, time.perf_counter() - t0


def run_demo(
    out: str | Path = "demo-output",
    *,
    num_steps: int = 8000,
    num_samples: int = 1000,
    num_grid: int = 26,
    seed: int = 0,
    progress_bar: bool = True,
) -> dict:
    """Run the demo; returns the summary that is also written to ``out/summary.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wbbgen import AmortizedWBB, exact_wbb
    from wbbgen.datasets import breast_cancer
    from wbbgen.plots import plot_curve, plot_path
    from wbbgen.predictive import log_predictive

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = breast_cancer()
    X, y, Xte, yte = (jnp.asarray(a) for a in data[:4])
    print(
        f"wbbgen demo: breast-cancer logistic regression, n_train={X.shape[0]}, n_test={Xte.shape[0]}, "
        f"p={X.shape[1]}; λ ∈ [1e-2, 1e3]; {jax.devices()[0].platform.upper()}"
    )
    keys = jax.random.split(jax.random.key(seed), 4)

    infer = AmortizedWBB(logistic_model, hyper={"lam": dist.LogUniform(1e-2, 1e3)})
    t0 = time.perf_counter()
    result = infer.run(keys[0], X, y, num_steps=num_steps, progress_bar=progress_bar)
    t_run = time.perf_counter() - t0

    grid = np.logspace(-2, 3, num_grid)
    samples, t_first = _timed(infer.get_samples, keys[1], result, hyper={"lam": grid}, num_samples=num_samples)
    _, t_eval = _timed(infer.get_samples, keys[1], result, hyper={"lam": grid}, num_samples=num_samples)

    ll = log_predictive(logistic_model, samples, Xte, yte)  # (K, S, n_test)
    log_loss = -ll.mean(-1)  # (K, S)
    best = int(np.argmin(log_loss.mean(1)))
    lam_best = grid[best]

    beta = np.asarray(samples["beta"])
    show = np.argsort(-np.abs(beta[best].mean(0)))[:3]
    names = [data.feature_names[j][:14] for j in show]
    header = f"{'λ':>9} " + " ".join(f"{n:>20}" for n in names) + f" {'b0':>14} {'held-out log-loss':>20}"
    print("\nPosterior (mean ± sd over w) and held-out log-loss per λ")
    print(header)
    print("-" * len(header))
    rows = sorted(set(range(0, len(grid), 2)) | {best})
    for k in rows:
        cells = " ".join(f"{beta[k, :, j].mean():>11.3f} ± {beta[k, :, j].std():<6.3f}" for j in show)
        b0 = np.asarray(samples["b0"])[k]
        mark = "  <- selected" if k == best else ""
        print(
            f"{grid[k]:>9.3g} {cells} {b0.mean():>7.2f} ± {b0.std():<4.2f} "
            f"{log_loss[k].mean():>11.4f} ± {log_loss[k].std():<6.4f}{mark}"
        )
    print(
        f"\nselected λ = {lam_best:.4g} (lowest mean held-out log-loss {log_loss[best].mean():.4f}; "
        f"accuracy {_accuracy(samples, best, Xte, yte):.4f})"
    )

    # Fidelity: the same draws (same key) through the generator and the exact solver.
    fid_grid = np.logspace(-2, 3, 5)
    gen5, _ = _timed(infer.get_samples, keys[2], result, hyper={"lam": fid_grid}, num_samples=num_samples)
    exact5, t_exact = _timed(
        exact_wbb, keys[2], logistic_model, X, y, hyper={"lam": fid_grid}, num_samples=num_samples, progress_bar=False
    )
    print("\nFidelity: generator vs exact WBB on the same draws (β coordinates and b0)")
    print(f"{'λ':>9} {'sd ratio median':>16} {'sd ratio range':>16} {'max |Δmean|/sd':>15} {'exact converged':>16}")
    fidelity = []
    for k, lam in enumerate(fid_grid):
        g = np.concatenate([np.asarray(gen5["beta"][k]), np.asarray(gen5["b0"][k])[:, None]], 1)
        e = np.concatenate([np.asarray(exact5["beta"][k]), np.asarray(exact5["b0"][k])[:, None]], 1)
        ratio = g.std(0) / e.std(0)
        shift = np.abs(g.mean(0) - e.mean(0)) / e.std(0)
        conv = float(np.mean(exact5.stats["converged"][k]))
        fidelity.append(
            {
                "lam": float(lam),
                "sd_ratio_median": float(np.median(ratio)),
                "sd_ratio_min": float(ratio.min()),
                "sd_ratio_max": float(ratio.max()),
                "mean_shift_max": float(shift.max()),
                "exact_converged": conv,
            }
        )
        print(
            f"{lam:>9.3g} {np.median(ratio):>16.3f} {ratio.min():>8.2f}-{ratio.max():<7.2f} "
            f"{shift.max():>15.3f} {conv:>16.3f}"
        )

    timings = {
        "train_total_s": t_run,
        **{k: v for k, v in result.diagnostics.items() if k.endswith("_s")},
        "generator_first_call_s": t_first,
        "generator_eval_s": t_eval,
        "exact_wbb_5_lambdas_s": t_exact,
    }
    print(
        f"\nTimings: training {t_run:.1f} s (pilot {result.diagnostics['pilot_s']:.1f} s, "
        f"{num_steps} steps {result.diagnostics['train_s']:.1f} s, "
        f"fidelity {result.diagnostics.get('fidelity_s', 0):.1f} s); "
        f"generator {len(grid)} λ × {num_samples} draws: {t_eval * 1e3:.0f} ms "
        f"(first call with compilation {t_first:.2f} s); exact WBB 5 λ × {num_samples} draws: {t_exact:.1f} s"
    )

    idata = infer.to_inference_data(keys[3], result, hyper={"lam": grid}, num_samples=min(num_samples, 500))
    idata.to_netcdf(str(out / "posterior.nc"))

    fig, ax = plt.subplots(figsize=(8, 5))
    plot_path(samples, "beta", coords=show, selected=lam_best, ax=ax, labels=data.feature_names)
    fig.tight_layout()
    fig.savefig(out / "regularisation_path.png", dpi=120)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_curve(grid, log_loss, ylabel="held-out log-loss", selected=lam_best, ax=ax)
    ax.set_title("Validation curve (bands: spread over bootstrap weights)")
    fig.tight_layout()
    fig.savefig(out / "validation_curve.png", dpi=120)
    plt.close("all")

    summary = {
        "selected_lam": float(lam_best),
        "heldout_log_loss": float(log_loss[best].mean()),
        "timings": timings,
        "fidelity": fidelity,
        "num_steps": num_steps,
        "num_samples": num_samples,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nwrote {out}/posterior.nc, regularisation_path.png, validation_curve.png, summary.json")
    return summary


def _accuracy(samples, k, Xte, yte):
    logits = np.asarray(samples["b0"])[k][:, None] + np.asarray(samples["beta"])[k] @ np.asarray(Xte).T
    p = (1.0 / (1.0 + np.exp(-logits))).mean(0)
    return float(np.mean((p > 0.5) == (np.asarray(yte) > 0.5)))
