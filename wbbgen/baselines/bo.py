r"""Bayesian optimisation with exact refits: optuna's TPE, and GP-BO with tinygp + expected
improvement.

* **tpe** -- :class:`optuna.samplers.TPESampler` (seeded; optuna's defaults, including its 10
  random start-up trials, cut to a third of the fit budget when that is smaller), one float
  per hyperparameter with ``log=True`` over the box. Each trial is a full MAP refit.
* **gp-bo** -- our own GP-BO, not optuna's :class:`~optuna.samplers.GPSampler`: that sampler
  needs PyTorch, which is not installed with wbbgen. The only PyTorch on the package index
  reachable here is the CUDA build (several GB of ``nvidia-*`` wheels), too heavy for a
  baseline's optional extra and for CI. So: a Matérn-5/2 ARD GP on log λ scaled to the unit
  box (:mod:`wbbgen.baselines.gp`, kernel parameters by marginal likelihood at every step),
  expected improvement maximised over 2,048 seeded uniform candidates plus 256 Gaussian
  perturbations (sd 0.05 of the box) of the incumbent, after ``max(3, m + 1)`` seeded
  uniform initial points (at most a third of the fit budget). Validation losses are modelled
  on the log scale for classification (cross-entropies span orders of magnitude over the box)
  and as they are for MSE.

Both warm-start nothing (optuna's trials are independent) -- the convex GLM fits converge
from the prior median in a handful of Newton steps anyway.

Example (on the test suite's small task):
    >>> from wbbgen.baselines import Budget, get_task
    >>> from wbbgen.baselines.bo import gp_bo
    >>> res = gp_bo(get_task("tiny-ridge"), Budget(fits=6), seed=0)
    >>> res.x.shape, res.info["num_fits"] <= 6
    ((1,), True)
"""

from __future__ import annotations

import numpy as np

from wbbgen.baselines.gp import expected_improvement, fit_gp
from wbbgen.baselines.task import Task
from wbbgen.baselines.trace import Budget, BudgetExhausted, Recorder, TunerResult

__all__ = ["tpe", "gp_bo"]


def import_optuna():
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - the hpo extra is missing
        raise ImportError("the tpe and hyperband tuners need optuna: pip install 'wbbgen[hpo]'.") from err
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a trial stopped by the budget is not news
    return optuna


def suggest_x(trial, task: Task) -> np.ndarray:
    """One log-uniform float per hyperparameter, returned as log λ."""
    lam = [
        trial.suggest_float(n, float(lo), float(hi), log=True)
        for n, lo, hi in zip(task.hyper_names, task.low, task.high)
    ]
    return np.log(np.asarray(lam, float))


def tpe(task: Task, budget: Budget, seed: int = 0) -> TunerResult:
    """optuna TPE over the log box, one exact refit per trial."""
    optuna = import_optuna()
    rec = Recorder(budget, task)
    startup = 10 if budget.fits is None else int(max(2, min(10, budget.fits // 3)))
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    study = optuna.create_study(direction="minimize", sampler=sampler, study_name=f"tpe-{task.name}-{seed}")

    def objective(trial):
        if rec.exhausted(next_cost=1):
            raise BudgetExhausted
        x = suggest_x(trial, task)
        theta, _ = task.fit(x)
        rec.add_fits(1)
        val = task.val_loss(theta)
        rec.log(x, val)
        return val

    optimize_study(study, objective, rec)
    return rec.result(sampler="optuna.TPESampler", n_startup_trials=startup)


def optimize_study(study, objective, rec, next_cost: float = 1.0):
    """Run trials until the objective raises :class:`BudgetExhausted` or fewer than
    ``next_cost`` fits are left."""
    optuna = import_optuna()

    def stop_on_budget(study, trial):
        if rec.exhausted(next_cost=next_cost):
            study.stop()

    while not rec.exhausted(next_cost=next_cost):
        try:
            study.optimize(objective, n_trials=1, callbacks=[stop_on_budget], catch=())
        except BudgetExhausted:
            break
        except optuna.exceptions.TrialPruned:  # pragma: no cover - optimize handles it
            continue


def transform_values(task: Task, val):
    return np.log(np.maximum(val, 1e-12)) if task.kind == "classification" else np.asarray(val, float)


def gp_bo(task: Task, budget: Budget, seed: int = 0, num_candidates: int = 2048) -> TunerResult:
    """GP-BO (tinygp Matérn-5/2 ARD + expected improvement), one exact refit per point."""
    rec = Recorder(budget, task)
    rng = np.random.default_rng(seed)
    m = task.num_hyper
    lo, width = task.log_low, task.log_high - task.log_low
    n0 = max(3, m + 1)
    if budget.fits is not None:
        n0 = int(max(2, min(n0, budget.fits // 3)))
    U, ys = [], []
    while not rec.exhausted(next_cost=1):
        if len(U) < n0:
            u = rng.uniform(size=m)
        else:
            gp = fit_gp(np.asarray(U), transform_values(task, np.asarray(ys)))
            best = int(np.argmin(ys))
            cand = np.concatenate(
                [
                    rng.uniform(size=(num_candidates, m)),
                    np.clip(U[best] + 0.05 * rng.standard_normal((256, m)), 0.0, 1.0),
                ]
            )
            mean, sd = gp.predict(cand)
            ei = expected_improvement(mean, sd, float(transform_values(task, ys[best])))
            u = cand[int(np.argmax(ei))]
        x = lo + u * width
        theta, _ = task.fit(x)
        rec.add_fits(1)
        val = task.val_loss(theta)
        U.append(u)
        ys.append(val)
        rec.log(x, val)
    return rec.result(initial_points=n0, kernel="Matern52 ARD (tinygp)", acquisition="expected improvement")
