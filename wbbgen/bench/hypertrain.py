r"""Digits softmax regression with many decays: local hyper-training vs random search.

Usage::

    wbbgen bench hypertrain --out DIR [--smoke] [--budget SECONDS]

Data: :func:`wbbgen.datasets.digits` (1257 training rows, 540 test rows); 30 % of the
training rows (stratified, seed 0) are the validation set. Model:
:func:`wbbgen.models.softmax_regression` (650 parameters), decays λ per class (10
hyperparameters) or per weight (640).

Runs, each with the same wall-time budget (compilation included), all starting from λ = 1:

* ``local/per-class``, ``local/per-weight`` -- :func:`wbbgen.hypertrain.local_hypertrain`;
* ``local+prior/per-weight`` -- the same with the hyper-prior log λ ~ N(0, 1²) (the remedy to
  validation overfitting);
* ``random/per-class`` -- the comparison harness's random search
  (:func:`wbbgen.baselines.search.random_search`): log λ_k ~ U(log 1e-3, log 1e3)
  independently per class, each trial a MAP refit warm-started from the nearest trial so far,
  best-so-far by validation loss; its test loss is that of the incumbent's refit.

Losses are negative log predictive densities per observation on validation and test rows:
the posterior predictive over 32 generator draws for hyper-training, the MAP plug-in for
random search. Outputs: ``hypertrain.json`` (the traces), ``hypertrain.md`` (final values),
``hypertrain.png`` (validation and test loss against wall time).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np

from wbbgen import models
from wbbgen.baselines import Budget, get_task, run_method
from wbbgen.datasets import digits
from wbbgen.hypertrain import local_hypertrain

__all__ = ["run_local", "run_random", "main"]


def _split():
    from sklearn.model_selection import train_test_split

    s = digits()
    Xtr, Xva, ytr, yva = train_test_split(s.X_train, s.y_train, test_size=0.3, random_state=0, stratify=s.y_train)
    return Xtr, ytr, Xva, yva, s.X_test, s.y_test


def run_local(data, shape, budget, *, hyper_prior_scale=None, seed=0, smoke=False):
    Xtr, ytr, Xva, yva, Xte, yte = data
    res = local_hypertrain(
        jax.random.key(seed),
        models.softmax_regression,
        Xtr,
        ytr,
        hyper={"lam": np.ones(shape)},
        val_args=(Xva, yva),
        test_args=(Xte, yte),
        num_steps=40 if smoke else 100_000,
        chunk_size=20 if smoke else 100,
        hyper_prior_scale=hyper_prior_scale,
        num_pilot=4 if smoke else 16,
        time_budget=budget,
        progress_bar=False,
    )
    acc = _accuracy_local(res, Xte, yte)
    return {k: v.tolist() for k, v in res.trace.items()} | {"test_accuracy": acc}


def _accuracy_local(res, X, y):
    draws = res.samples(jax.random.key(99), 64)
    probs = jax.nn.softmax(
        jax.vmap(lambda W, b: models.softmax_logits({"W": W, "b": b}, X))(draws["W"], draws["b"]), -1
    )
    return float(np.mean(np.argmax(np.asarray(probs).mean(0), -1) == y))


def run_random(data, shape, budget, *, seed=0, smoke=False):
    """The harness's ``random`` tuner (:mod:`wbbgen.baselines.search`: warm-started MAP refits)
    on the ``digits-softmax`` task with this benchmark's split and box."""
    if shape != (10,):
        raise ValueError("the harness's digits-softmax task has one decay per class: shape (10,)")
    Xtr, ytr, Xva, yva, Xte, yte = data
    task = dataclasses.replace(
        get_task("digits-softmax"),
        X_train=Xtr,
        y_train=ytr,
        X_val=Xva,
        y_val=yva,
        X_test=Xte,
        y_test=yte,
        low=np.full(10, 1e-3),
        high=np.full(10, 1e3),
    )
    run = run_method(task, "random", Budget(fits=3) if smoke else Budget(seconds=budget), seed)
    if "error" in run:
        raise RuntimeError(run["error"])
    trace = run["trace"]
    return {
        "step": [r["num_fits"] for r in trace],
        "time": [r["time_s"] for r in trace],
        "val_loss": [r["val_loss"] for r in trace],
        "test_loss": [r["test_loss"] for r in trace],  # of the incumbent's refit
        "best_val_loss": [r["best_val"] for r in trace],
        "best_test_loss": [r["test_loss"] for r in trace],
        "test_accuracy": run["test_acc"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="wbbgen bench hypertrain", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for hypertrain.json, hypertrain.md and the plot")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets: checks the pipeline")
    parser.add_argument("--budget", type=float, default=None, help="seconds per run (default 120; smoke 5)")
    args = parser.parse_args(argv)
    budget = args.budget or (5.0 if args.smoke else 120.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = _split()
    per_class, per_weight = (10,), (64, 10)
    runs = {
        "local/per-class": lambda: run_local(data, per_class, budget, smoke=args.smoke),
        "random/per-class": lambda: run_random(data, per_class, budget, smoke=args.smoke),
        "local/per-weight": lambda: run_local(data, per_weight, budget, smoke=args.smoke),
        "local+prior/per-weight": lambda: run_local(data, per_weight, budget, hyper_prior_scale=1.0, smoke=args.smoke),
    }
    results = {}
    for name, fn in runs.items():
        print(f"running {name} ({budget:g} s budget)", flush=True)
        results[name] = fn()
    payload = {
        "device": str(jax.devices()[0]),
        "budget_s": budget,
        "smoke": args.smoke,
        "validation_rows": int(data[2].shape[0]),
        "runs": results,
    }
    (out / "hypertrain.json").write_text(json.dumps(payload, indent=1))
    lines = [
        "| run | wall s | steps/trials | final val loss | best val loss | test loss at the end | test accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        val = r.get("best_val_loss", r["val_loss"])
        test = r.get("best_test_loss", r["test_loss"])
        lines.append(
            f"| {name} | {r['time'][-1]:.1f} | {r['step'][-1]:.0f} | {r['val_loss'][-1]:.4f} | "
            f"{np.nanmin(val):.4f} | {test[-1]:.4f} | {r['test_accuracy']:.4f} |"
        )
    table = "\n".join(lines)
    (out / "hypertrain.md").write_text(table + "\n")
    print(table)
    _plot(results, out / "hypertrain.png")
    return payload


def _plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for name, r in results.items():
        val = r.get("best_val_loss", r["val_loss"])
        test = r.get("best_test_loss", r["test_loss"])
        axes[0].plot(r["time"], val, label=name)
        axes[1].plot(r["time"], test, label=name)
    axes[0].set(xlabel="wall time (s)", ylabel="validation NLL", title="validation (best so far for random)")
    axes[1].set(xlabel="wall time (s)", ylabel="test NLL", title="test")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
