r"""wbbgen's own tuner: train an :class:`~wbbgen.AmortizedWBB` generator once over the whole
box, then search λ through it -- a grid with bands over the bootstrap weights w, and
gradient search (:func:`wbbgen.gradient_search`).

Settings (``task.settings``): ``num_steps`` training steps at ``batch_size`` draws per step, an
MLP generator of ``width`` (depth 2), default weights (Exp(1)) and prior scheme (anchored);
``max(num_pilot, 2m + 2)`` values × ``pilot_samples`` draws of pilot exact solves for m
hyperparameters (they set the generator's output scale; 12 × 4 at full size with one; capped
at ``pilot_max_steps`` iterations when set, as in smoke runs), and
a closing fidelity check at 5 λ with ``fidelity_samples`` draws (4; none in smoke runs). The
hyperparameters are trained over ``LogUniform(low, high)`` each.

Search: with one or two hyperparameters, the held-out log density of the validation rows
(:func:`wbbgen.heldout_log_density`, mean over ``num_samples`` WBB draws) on a log grid of
``grid`` values per hyperparameter (:meth:`~wbbgen.AmortizedWBB.tune`; the 5-95 % band over
w of each grid value is kept in ``info["band"]``); then gradient ascent of the same criterion
from 4 starts (``search_steps`` Adam steps each), on the same draws (one key for both, so
their values are comparable). The choice is the better of the two.
Validation losses are converted from the log density: cross-entropy = −log density;
MSE = (−2 log density − log 2π)·y_scale² (σ = 1 Gaussian rows).

Budget: generator training is not cut by a fit budget -- its cost is in the wall time, the
comparison's common unit; the exact pilot and fidelity solves count as fits.

Example (it trains a generator, so it is not run as a doctest)::

    from wbbgen.baselines import Budget, get_task
    from wbbgen.baselines.generative import wbbgen_tuner

    res = wbbgen_tuner(get_task("ridge-diabetes"), Budget(fits=20), seed=0)
    res.info["band"]      # 5/50/95 % of the validation loss over w, per grid value
"""

from __future__ import annotations

import warnings

import jax
import numpy as np
import numpyro.distributions as dist

from wbbgen.baselines.task import Task
from wbbgen.baselines.trace import Budget, Recorder, TunerResult

__all__ = ["wbbgen_tuner", "loss_from_log_density", "train_amortized", "log_path"]

FIDELITY_SAMPLES = 4
NUM_STARTS = 4


def loss_from_log_density(task: Task, ld):
    """The task's validation loss from a mean held-out log density (per row)."""
    ld = np.asarray(ld, float)
    if task.kind == "regression":
        return (-2.0 * ld - np.log(2 * np.pi)) * task.y_scale**2
    return -ld


def _pilot_count(task: Task, num_pilot: int, pilot_samples: int, fidelity_samples: int) -> int:
    """Exact solves of a run: the pilot's values × draws, and 5 fidelity values × draws."""
    return max(num_pilot, 2 * task.num_hyper + 2) * pilot_samples + 5 * fidelity_samples


def train_amortized(task: Task, rng_key, rec: Recorder, *, samples: int | None = None, **options):
    """Build and train an AmortizedWBB over the task's box: ``(infer, result)``.

    ``samples`` sets the pilot's draws per value and caps the fidelity check's (default:
    ``task.settings``' ``pilot_samples`` and ``fidelity_samples``)."""
    from wbbgen import AmortizedWBB

    s = task.settings
    hyper = {n: dist.LogUniform(float(lo), float(hi)) for n, lo, hi in zip(task.hyper_names, task.low, task.high)}
    num_pilot = s.get("num_pilot", 12)
    pilot = s.get("pilot_samples", FIDELITY_SAMPLES) if samples is None else samples
    fidelity = s.get("fidelity_samples", FIDELITY_SAMPLES)
    fidelity = fidelity if samples is None else min(samples, fidelity)
    infer = AmortizedWBB(
        task.model,
        hyper=hyper,
        generator_options={"width": s["width"]},
        batch_size=s["batch_size"],
        num_pilot=num_pilot,
        num_pilot_samples=pilot,
        pilot_max_steps=s.get("pilot_max_steps"),
        fidelity_samples=fidelity,
        **options,
    )
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # convergence notes of pilot solves go to info
        result = infer.run(rng_key, task.X_train, task.y_train, num_steps=s["num_steps"], progress_bar=False)
    rec.add_fits(_pilot_count(task, num_pilot, pilot, fidelity))
    return infer, result


def log_path(task: Task, rec: Recorder, search, max_rows: int = 25):
    """Trace the best start of a :func:`wbbgen.gradient_search` (subsampled)."""
    best = int(np.argmax(search.values[:, -1]))
    steps = search.values.shape[1]
    for k in np.unique(np.linspace(0, steps - 1, min(steps, max_rows)).astype(int)):
        x = np.log([search.trace[n][best, k] for n in task.hyper_names])
        rec.log(x, float(loss_from_log_density(task, search.values[best, k])), candidate=False, search_step=int(k))


def wbbgen_tuner(task: Task, budget: Budget, seed: int = 0) -> TunerResult:
    """AmortizedWBB + grid (with bands over w) and gradient search through the generator."""
    import wbbgen

    rec = Recorder(budget, task)
    s = task.settings
    # One key for the grid and the gradient search: both then see the same weights and prior
    # draws, so their criterion values are comparable when the better of the two is taken.
    k_train, k_eval = jax.random.split(jax.random.key(seed))
    infer, result = train_amortized(task, k_train, rec)
    train_s = rec.elapsed()
    criterion = wbbgen.heldout_log_density(task.X_val, task.y_val)
    info = {"generator_steps": s["num_steps"], "train_s": train_s, "diagnostics": result.diagnostics}
    grid_best = None
    if task.num_hyper <= 2:
        grids = {n: np.geomspace(lo, hi, s["grid"]) for n, lo, hi in zip(task.hyper_names, task.low, task.high)}
        tuned = infer.tune(k_eval, result, criterion=criterion, hyper=grids, num_samples=s["num_samples"])
        mean = tuned.curve["mean"].values
        q05, q95 = tuned.curve["q05"].values, tuned.curve["q95"].values
        mesh = np.stack(np.meshgrid(*grids.values(), indexing="ij"), -1).reshape(-1, task.num_hyper)
        for lam, ld in zip(mesh, mean.reshape(-1)):
            rec.log(np.log(lam), float(loss_from_log_density(task, ld)))
        grid_best = (rec.best_x, rec.best_val)
        info["band"] = {
            "lam": mesh.tolist(),
            "val_loss_q05": loss_from_log_density(task, q95).reshape(-1).tolist(),  # a higher density is a lower loss
            "val_loss_mean": loss_from_log_density(task, mean).reshape(-1).tolist(),
            "val_loss_q95": loss_from_log_density(task, q05).reshape(-1).tolist(),
        }
        info["best_1se"] = tuned.best_1se
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search = wbbgen.gradient_search(
            infer,
            k_eval,
            result,
            task.X_val,
            task.y_val,
            num_starts=NUM_STARTS,
            num_steps=s["search_steps"],
            num_samples=s["num_samples"],
        )
    info["search_warnings"] = [str(w.message)[:200] for w in caught]
    log_path(task, rec, search)
    x_search = np.log([search.best[n] for n in task.hyper_names])
    val_search = float(loss_from_log_density(task, search.value))
    if grid_best is None or val_search < grid_best[1]:
        choice = (x_search, val_search)
    else:
        choice = grid_best
    rec.log(choice[0], choice[1], incumbent=choice, final=True)
    return rec.result(choice[0], **info)
