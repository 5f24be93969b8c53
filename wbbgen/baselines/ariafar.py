r"""Ariafar, Mariet, Brooks, Dy & Snoek (AISTATS 2021): Bayesian optimisation over
hyperparameters × an importance-sampling design of the inner training, by multi-task BO.

No code or tables are public; this follows the abstract's description, and every choice
below is ours:

* **Inner training** -- minibatch Adam with importance-sampled minibatches
  (:mod:`wbbgen.baselines.sgd`; Katharopoulos & Fleuret 2018: per-row gradient-norm bound
  from the output layer, a pre-sample of r·b rows resampled ∝ the bound, IS switched on per
  step only when the estimated variance reduction pays for the pre-sample).
* **Designs** (the BO's "tasks"): ``uniform`` (plain SGD) and IS with pre-sample ratios
  r = 2 and 4, each for ``task.epochs // 4`` epochs (cheap, noisy), and the target design,
  IS with r = 4 for the full ``task.epochs``. Cost in fit-equivalents:
  epochs/``task.epochs`` × (1 + r/3).
* **Surrogate** -- one GP over (log λ, design) with an intrinsic-coregionalisation kernel
  (Matérn-5/2 ARD × a 4 × 4 design covariance vvᵀ + diag(d), :mod:`wbbgen.baselines.gp`),
  fitted to all observations, so cheap designs inform the target through the fitted design
  correlation ρ.
* **Acquisition** -- expected improvement of the *target* design over its best observed
  value, at 2,048 seeded uniform candidates plus 256 perturbations of the incumbent; the
  design is chosen by EI · ρ²(design, target) / cost (the share of a design's observation
  that carries over to the target, per unit cost), and evaluated at its best candidate --
  except that once the cheap designs have cost more than the target evaluations plus one
  more, the target is run (a quota: cheap designs get at most about half of the spend;
  without it, correlated cheap designs win every round and the target is never run).
* **Start** -- two seeded uniform λ on each cheap design and one on the target (cut to the
  budget). Validation losses are modelled on the log scale for classification.
* **Choice** -- the target-design evaluation with the best validation loss (or, if the
  budget never reached the target, the observed λ with the best predicted target loss).

Example (it trains, so it is not run as a doctest)::

    from wbbgen.baselines import Budget, get_task
    from wbbgen.baselines.ariafar import ariafar

    res = ariafar(get_task("ridge-diabetes"), Budget(fits=20), seed=0)
    res.info["design_counts"]
"""

from __future__ import annotations

import jax
import numpy as np

from wbbgen.baselines.bo import transform_values
from wbbgen.baselines.gp import expected_improvement, fit_gp
from wbbgen.baselines.sgd import epoch_cost, sgd_epochs, sgd_init
from wbbgen.baselines.task import Task
from wbbgen.baselines.trace import Budget, Recorder, TunerResult

__all__ = ["ariafar", "designs"]


def designs(task: Task) -> list[tuple[str, int, int]]:
    """``(name, pre-sample ratio, epochs)`` of each design; the last is the target."""
    short = max(1, task.epochs // 4)
    return [("uniform", 0, short), ("is-r2", 2, short), ("is-r4", 4, short), ("is-r4-full", 4, task.epochs)]


def ariafar(task: Task, budget: Budget, seed: int = 0, num_candidates: int = 2048) -> TunerResult:
    """Multi-task BO over λ × importance-sampling design (module docstring)."""
    rec = Recorder(budget, task)
    rng = np.random.default_rng(seed)
    base = jax.random.key(seed)
    D = designs(task)
    target = len(D) - 1
    cost = [epochs / task.epochs * epoch_cost(r) for _, r, epochs in D]
    m = task.num_hyper
    lo, width = task.log_low, task.log_high - task.log_low
    plan = [0, 0, 1, 1, 2, 2, target]
    U, T, ys, shares = [], [], [], []

    def run(u, d):
        name, ratio, epochs = D[d]
        key = jax.random.fold_in(base, len(U))
        k_init, k_train = jax.random.split(key)
        state = sgd_init(task, k_init if task.random_init else None)
        x = lo + u * width
        state, share = sgd_epochs(task, state, k_train, x, epochs, ratio)
        rec.add_fits(cost[d])
        val = task.val_loss(state[0])
        if not np.isfinite(val):
            val = max([y for y in ys if np.isfinite(y)], default=1e6)
        U.append(u)
        T.append(d)
        ys.append(val)
        shares.append(share)
        rec.log(x, val, candidate=d == target, design=name, is_share=share)

    for d in plan:
        if rec.exhausted(next_cost=cost[d]):
            break
        run(rng.uniform(size=m), d)
    while not rec.exhausted(next_cost=min(cost)):
        gp = fit_gp(np.asarray(U), transform_values(task, np.asarray(ys)), tasks=np.asarray(T), num_tasks=len(D))
        on_target = [y for y, t in zip(ys, T) if t == target]
        if on_target:
            best = float(transform_values(task, min(on_target)))
            anchor = U[int(np.argmin([y if t == target else np.inf for y, t in zip(ys, T)]))]
        else:
            mean_obs, _ = gp.predict(np.asarray(U), np.full(len(U), target))
            best, anchor = float(mean_obs.min()), U[int(np.argmin(mean_obs))]
        cand = np.concatenate(
            [rng.uniform(size=(num_candidates, m)), np.clip(anchor + 0.05 * rng.standard_normal((256, m)), 0.0, 1.0)]
        )
        mean, sd = gp.predict(cand, np.full(len(cand), target))
        ei = expected_improvement(mean, sd, best)
        i = int(np.argmax(ei))
        rho = gp.task_correlation()[:, target]
        score = [
            ei[i] * rho[d] ** 2 / cost[d] if not rec.exhausted(next_cost=cost[d]) else -np.inf for d in range(len(D))
        ]
        cheap = sum(cost[t] for t in T if t != target)
        if cheap >= sum(cost[t] for t in T if t == target) + cost[target] and not rec.exhausted(cost[target]):
            score[target] = np.inf  # the quota: cheap designs get at most half of the spend
        run(cand[i], int(np.argmax(score)))
    x_final = rec.best_x
    if x_final is None:  # the target design was never run: best predicted target loss
        gp = fit_gp(np.asarray(U), transform_values(task, np.asarray(ys)), tasks=np.asarray(T), num_tasks=len(D))
        mean_obs, _ = gp.predict(np.asarray(U), np.full(len(U), target))
        x_final = lo + U[int(np.argmin(mean_obs))] * width
        rec.best_val = float(np.min(ys))
    counts = {name: int(sum(t == d for t in T)) for d, (name, _, _) in enumerate(D)}
    return rec.result(
        x_final,
        design_counts=counts,
        designs=[{"name": n, "ratio": r, "epochs": e, "cost": c} for (n, r, e), c in zip(D, cost)],
        is_share=float(np.mean([s for s, t in zip(shares, T) if D[t][1] > 0])) if any(D[t][1] for t in T) else 0.0,
    )
