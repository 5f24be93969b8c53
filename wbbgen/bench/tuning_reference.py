r"""Reference cases for tuning: wbbgen's choice of λ against exact grids (``wbbgen bench tuning-reference``).

Usage::

    wbbgen bench tuning-reference --out DIR [--smoke] [--case diabetes|digits|all]

* **Diabetes ridge, degree-2 features** (p = 65, 342 training rows): exact 10-fold CV
  (closed-form ridge refits, folds shuffled with seed 0, penalty α‖β‖² on the squared error,
  which is :func:`wbbgen.models.ridge` with σ = 1 and λ = α) over a quarter-decade grid
  10⁰…10⁴ gives λ*; wbbgen's CV through the generator (:func:`wbbgen.tuning.kfold_cv`, weight
  deletion, mean held-out log density over the draws) picks λ̂. The training range starts at
  λ = 1: the degree-2 features hold an exactly collinear pair (sex² is affine in sex), so
  below λ ≈ 1 float32 Newton solves do not converge. Goal: |log₁₀ λ̂ − log₁₀ λ*| ≤ 0.25 (one
  grid step).
* **Digits softmax regression** (650 parameters, 1257 training rows): the exact grid is
  scikit-learn's multinomial ``LogisticRegression(C)`` for λ = 1/C on a half-decade grid
  10⁻²…10⁴, fitted on all training rows (its best *test* accuracy is an oracle the tuners
  cannot see). wbbgen trains a generator over λ ∈ [10⁻², 10⁴] on 943 of the training rows and
  chooses λ by the held-out log density of the other 314 (mean over 200 WBB draws; the
  comparison harness's split). Goal: the exact grid's test accuracy at that λ within 0.5 pp of
  the oracle. Reported beside it: the generator's own posterior-predictive test accuracy per
  λ, the choices of PSIS-LOO and of 10-fold CV through the generator, and CV by exact WBB
  solves (:func:`wbbgen.tuning.exact_kfold_cv`, 8 draws, 6 λ) on the same folds.

Writes ``tuning_reference.json`` and ``tuning_reference.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import numpyro.distributions as dist

from wbbgen import AmortizedWBB, heldout_log_density, models
from wbbgen.baselines.tasks import carve_validation
from wbbgen.datasets import diabetes, digits
from wbbgen.tuning import exact_kfold_cv, kfold_cv, psis_loo
from wbbgen.weights import CV_FOLD_SEED

__all__ = ["exact_ridge_cv", "diabetes_case", "digits_case", "markdown_table", "main"]

#: Draws per λ and fold of the exact-WBB CV reference on digits (10 folds × 6 λ: about a minute).
EXACT_CV_DRAWS = 8


def exact_ridge_cv(X, y, grid, num_folds=10, seed=0):
    """Closed-form ridge refits: mean held-out MSE per grid value."""
    from sklearn.model_selection import KFold

    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    mse = np.zeros(len(grid))
    for tr, te in KFold(num_folds, shuffle=True, random_state=seed).split(X):
        A, b = X[tr].T @ X[tr], X[tr].T @ y[tr]
        for j, lam in enumerate(grid):
            beta = np.linalg.solve(A + lam * np.eye(X.shape[1]), b)
            mse[j] += np.sum((y[te] - X[te] @ beta) ** 2)
    return mse / X.shape[0]


def diabetes_case(smoke: bool):
    s = diabetes(degree=2)
    grid = np.logspace(0, 4, 17)
    mse = exact_ridge_cv(s.X_train, s.y_train, grid)
    lam_star = float(grid[np.argmin(mse)])
    t0 = time.perf_counter()
    infer = AmortizedWBB(
        models.ridge, hyper={"lam": dist.LogUniform(1.0, 1e4)}, fidelity_samples=0 if smoke else 64, cv_folds=10
    )
    result = infer.run(jax.random.key(0), s.X_train, s.y_train, num_steps=200 if smoke else 6000, progress_bar=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    curve, _ = kfold_cv(infer, jax.random.key(1), result, hyper={"lam": grid}, num_samples=200)
    cv_s = time.perf_counter() - t0
    lam_hat = float(grid[int(np.argmax(curve["mean"].values))])
    step = float(np.log10(grid[1] / grid[0]))
    return {
        "lambda_star_exact_cv": lam_star,
        "exact_cv_mse_at_star": float(mse.min()),
        "lambda_wbbgen_cv": lam_hat,
        "grid_steps_apart": abs(np.log10(lam_hat / lam_star)) / step,
        "goal": "within one grid step (0.25 decades)",
        "met": bool(abs(np.log10(lam_hat / lam_star)) <= step + 1e-9),
        "train_s": train_s,
        "cv_curve_s": cv_s,
        "cv_curve_mean": curve["mean"].values.tolist(),
        "exact_cv_mse": mse.tolist(),
        "grid": grid.tolist(),
    }


def _choice(grid, curve) -> float:
    return float(grid[int(np.argmax(curve["mean"].values))])


def digits_case(smoke: bool):
    from sklearn.linear_model import LogisticRegression

    s = digits()
    Xtr, ytr, Xva, yva = carve_validation(s.X_train, s.y_train)  # the harness's split: 943 / 314
    grid = np.logspace(-2, 4, 13)
    accs = []
    t0 = time.perf_counter()
    for lam in grid:  # the yardstick: MAP fits on all 1257 training rows
        clf = LogisticRegression(C=1.0 / lam, max_iter=5000).fit(s.X_train, s.y_train)
        accs.append(float(clf.score(s.X_test, s.y_test)))
    grid_s = time.perf_counter() - t0
    best_grid = float(max(accs))
    t0 = time.perf_counter()
    infer = AmortizedWBB(
        models.softmax_regression,
        hyper={"lam": dist.LogUniform(1e-2, 1e4)},
        fidelity_samples=0 if smoke else 64,
        cv_folds=10,
    )
    result = infer.run(jax.random.key(0), Xtr, ytr, num_steps=200 if smoke else 6000, progress_bar=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tuned = infer.tune(
        jax.random.key(1), result, criterion=heldout_log_density(Xva, yva), hyper={"lam": grid}, num_samples=200
    )
    tune_s = time.perf_counter() - t0
    lam_hat = float(tuned.best["lam"])
    with warnings.catch_warnings():  # Pareto-k warnings: recorded below through the choice they lead to
        warnings.simplefilter("ignore")
        loo = infer.tune(jax.random.key(1), result, criterion=psis_loo(), hyper={"lam": grid}, num_samples=200)
    cv, _ = kfold_cv(infer, jax.random.key(3), result, hyper={"lam": grid}, num_samples=100)
    exact_cv = None
    if not smoke:  # the reference for CV: exact WBB solves per fold, on the folds the generator deletes
        sub = grid[(grid > 0.02) & (grid < 50)]
        t0 = time.perf_counter()
        curve, _ = exact_kfold_cv(
            jax.random.key(3),
            models.softmax_regression,
            Xtr,
            ytr,
            hyper={"lam": sub},
            num_folds=10,
            num_samples=EXACT_CV_DRAWS,
            fold_key=jax.random.key(CV_FOLD_SEED),
        )
        exact_cv = {
            "grid": sub.tolist(),
            "mean": curve["mean"].values.tolist(),
            "sd": curve["sd"].values.tolist(),
            "draws": EXACT_CV_DRAWS,
            "lambda": _choice(sub, curve),
            "seconds": time.perf_counter() - t0,
        }
    draws = infer.get_samples(jax.random.key(2), result, hyper={"lam": grid}, num_samples=200)
    logits = jax.vmap(jax.vmap(lambda W, b: models.softmax_logits({"W": W, "b": b}, s.X_test)))(draws["W"], draws["b"])
    probs = np.asarray(jax.nn.softmax(logits, -1)).mean(1)  # (K, n_test, 10) posterior predictive
    gen_accs = (np.argmax(probs, -1) == s.y_test).mean(-1)
    at = list(grid).index
    acc = accs[at(lam_hat)]
    return {
        "grid": grid.tolist(),
        "split": "training rows carved 943 / 314 (wbbgen.baselines.tasks.carve_validation, seed 0)",
        "exact_grid_test_accuracy": accs,
        "best_exact_grid_test_accuracy": best_grid,
        "exact_grid_s": grid_s,
        "lambda_wbbgen_validation": lam_hat,
        "lambda_wbbgen_validation_1se": float(tuned.best_1se["lam"]),
        "wbbgen_validation_mean": tuned.curve["mean"].values.tolist(),
        "tune_s": tune_s,
        "test_accuracy_at_choice": acc,
        "generator_test_accuracy_per_lambda": gen_accs.tolist(),
        "generator_test_accuracy_at_choice": float(gen_accs[at(lam_hat)]),
        "lambda_wbbgen_psis_loo": float(loo.best["lam"]),
        "lambda_wbbgen_kfold": _choice(grid, cv),
        "wbbgen_kfold_mean": cv["mean"].values.tolist(),
        "exact_wbb_kfold": exact_cv,
        "gap_pp": 100 * (best_grid - acc),
        "goal": "within 0.5 pp of the exact grid's best test accuracy",
        "met": bool(best_grid - acc <= 0.005 + 1e-12),
        "train_s": train_s,
        "fidelity": None
        if result.fidelity is None
        else {k: np.asarray(v).tolist() for k, v in result.fidelity.items()},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="wbbgen bench tuning-reference", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for tuning_reference.json and tuning_reference.md")
    parser.add_argument("--smoke", action="store_true", help="200 training steps, no exact CV: checks the pipeline")
    parser.add_argument("--case", choices=["diabetes", "digits", "all"], default="all")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"device": str(jax.devices()[0]), "smoke": args.smoke}
    if args.case in ("diabetes", "all"):
        results["ridge-diabetes"] = diabetes_case(args.smoke)
    if args.case in ("digits", "all"):
        results["digits-softmax"] = digits_case(args.smoke)
    (out / "tuning_reference.json").write_text(json.dumps(results, indent=1))
    table = markdown_table(results)
    (out / "tuning_reference.md").write_text(table + "\n")
    print(table)
    return results


def markdown_table(results) -> str:
    """The results' table (also used to merge the JSON of separate ``--case`` runs)."""
    lines = ["| case | exact | wbbgen | goal | met | train s |", "|---|---|---|---|---|---|"]
    if "ridge-diabetes" in results:
        r = results["ridge-diabetes"]
        lines.append(
            f"| diabetes ridge CV λ | λ* = {r['lambda_star_exact_cv']:.3g} | λ̂ = {r['lambda_wbbgen_cv']:.3g} "
            f"({r['grid_steps_apart']:.1f} steps) | {r['goal']} | {r['met']} | {r['train_s']:.0f} |"
        )
    if "digits-softmax" in results:
        r = results["digits-softmax"]
        lines.append(
            f"| digits softmax accuracy | {r['best_exact_grid_test_accuracy']:.4f} | "
            f"{r['test_accuracy_at_choice']:.4f} "
            f"(validation λ̂ = {r['lambda_wbbgen_validation']:.3g}; through the generator: 10-fold CV λ̂ = "
            f"{r['lambda_wbbgen_kfold']:.3g}, PSIS-LOO λ̂ = {r['lambda_wbbgen_psis_loo']:.3g}) | {r['goal']} | "
            f"{r['met']} | {r['train_s']:.0f} |"
        )
    return "\n".join(lines)
