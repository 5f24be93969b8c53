r"""Hyperband (Li et al. 2018) with optuna: :class:`optuna.pruners.HyperbandPruner` over
random configurations, epochs of the SGD inner trainer (:mod:`wbbgen.baselines.sgd`) as the
resource.

Choices: ``min_resource=1`` epoch, ``max_resource=task.epochs`` (a full fit),
``reduction_factor=3`` (optuna's default brackets); configurations from
:class:`optuna.samplers.RandomSampler` (seeded), as in the paper. Each trial reports its
validation loss after every epoch and stops when the pruner says so. Budget: each epoch
costs ``1 / task.epochs`` fit-equivalents. The choice is the completed (full-resource) trial
with the best validation loss; pruned trials are traced but never chosen.

Example (on the test suite's small task):
    >>> from wbbgen.baselines import Budget, get_task
    >>> from wbbgen.baselines.hyperband import hyperband
    >>> res = hyperband(get_task("tiny-ridge"), Budget(fits=3), seed=0)
    >>> res.x.shape
    (1,)
"""

from __future__ import annotations

import jax
import numpy as np

from wbbgen.baselines.bo import import_optuna, optimize_study, suggest_x
from wbbgen.baselines.sgd import sgd_epochs, sgd_init
from wbbgen.baselines.task import Task
from wbbgen.baselines.trace import Budget, BudgetExhausted, Recorder, TunerResult

__all__ = ["hyperband"]


def hyperband(task: Task, budget: Budget, seed: int = 0) -> TunerResult:
    """optuna Hyperband over epochs of minibatch Adam."""
    optuna = import_optuna()
    rec = Recorder(budget, task)
    E = int(task.epochs)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=E, reduction_factor=3)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=pruner,
        # the pruner assigns trials to brackets by a hash of the study name: fix the name
        study_name=f"hyperband-{task.name}-{seed}",
    )
    base = jax.random.key(seed)
    counts = {"completed": 0, "pruned": 0}

    def objective(trial):
        if rec.exhausted(next_cost=1.0 / E):
            raise BudgetExhausted
        x = suggest_x(trial, task)
        k_init, k_train = jax.random.split(jax.random.fold_in(base, trial.number))
        state = sgd_init(task, k_init if task.random_init else None)
        val = float("nan")
        for epoch in range(1, E + 1):
            if rec.exhausted(next_cost=1.0 / E):
                raise BudgetExhausted
            state, _ = sgd_epochs(task, state, jax.random.fold_in(k_train, epoch), x, 1)
            rec.add_fits(1.0 / E)
            val = task.val_loss(state[0])
            trial.report(val, epoch)
            if epoch < E and trial.should_prune():
                counts["pruned"] += 1
                rec.log(x, val, candidate=False, epochs=epoch)
                raise optuna.TrialPruned()
        counts["completed"] += 1
        rec.log(x, val, epochs=E)
        return val

    optimize_study(study, objective, rec, next_cost=1.0 / E)
    if rec.best_x is None:  # no trial reached the full resource: take the best partial one
        rows = [r for r in rec.rows if r["val_loss"] == r["val_loss"]]
        if rows:
            best = min(rows, key=lambda r: r["val_loss"])
            rec.best_x, rec.best_val = np.asarray(best["x"]), best["val_loss"]
    return rec.result(
        pruner="optuna.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)",
        sampler="optuna.RandomSampler",
        epochs_per_fit=E,
        **counts,
    )
