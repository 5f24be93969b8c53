r"""Lorraine & Duvenaud (2018) hypernetwork hyper-training, through the library (no copies).

* **lorraine-global** -- the global scheme: a hypernetwork θ = g_φ(λ) is trained over
  p(λ) = LogUniform(box) to minimise E_λ[f(g_φ(λ), λ)] (the training objective), then λ
  follows the gradient of the validation loss through it. Here the hypernetwork is
  wbbgen's generator with every bootstrap weight fixed at 1 and the prior term unweighted
  (``weights`` = a constant-ones scheme, ``prior_weight="fixed"``): its optimum is the best
  response θ*(λ) itself, as in the paper. Training and search are
  :class:`wbbgen.AmortizedWBB` + :func:`wbbgen.gradient_search` (Adam on log λ from 4 starts,
  ``search_steps`` steps; with constant weights one draw suffices). The generator's settings
  are the wbbgen tuner's (``task.settings``), and one pilot draw per λ.
* **lorraine-local** -- the local (joint) scheme: alternate one hypernetwork step on λ drawn
  near the current λ̂ (log λ ~ N(log λ̂, 0.5²)) with one λ̂ step on the validation loss. It is
  :func:`wbbgen.hypertrain.local_hypertrain` (the tuning issue's implementation) with the
  same deterministic hypernetwork as the global scheme (weights = 1, ``prior_weight="fixed"``,
  no pilot solves: unit output scale around the prior median), ``num_steps`` alternating steps
  (``task.settings``), 32 draws per step at most, λ̂ started at the centre of the log box for
  every seed and kept in the box; the wall-time budget, if any, is passed on as
  ``time_budget``. Its trace records the validation loss between chunks (hypertrain does not
  record the path of λ̂, so only the end point is a choice).

Example (it trains a generator, so it is not run as a doctest)::

    from wbbgen.baselines import Budget, get_task
    from wbbgen.baselines.lorraine import lorraine_global

    res = lorraine_global(get_task("ridge-diabetes"), Budget(fits=20), seed=0)
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen.baselines.generative import log_path, loss_from_log_density, train_amortized
from wbbgen.baselines.task import Task
from wbbgen.baselines.trace import Budget, Recorder, TunerResult

__all__ = ["lorraine_global", "lorraine_local", "ones"]


def ones(n: int):
    """A constant weight scheme (every wᵢ = 1): one generator input, always 1."""
    from wbbgen.weights import WeightScheme

    def sample(rng_key, batch_shape=()):
        return jnp.ones((*batch_shape, 1))

    def expand(v):
        return jnp.broadcast_to(v, (*v.shape[:-1], n))

    return WeightScheme("ones", n, 1, sample, expand)


def lorraine_global(task: Task, budget: Budget, seed: int = 0) -> TunerResult:
    """Global hyper-training: hypernet over p(λ), then gradient steps on λ through it."""
    import wbbgen

    rec = Recorder(budget, task)
    s = task.settings
    k_train, k_search = jax.random.split(jax.random.key(seed))
    infer, result = train_amortized(task, k_train, rec, weights=ones, prior_weight="fixed", samples=1)
    train_s = rec.elapsed()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search = wbbgen.gradient_search(
            infer, k_search, result, task.X_val, task.y_val, num_starts=4, num_steps=s["search_steps"], num_samples=1
        )
    log_path(task, rec, search)
    x = np.log([search.best[n] for n in task.hyper_names])
    val = float(loss_from_log_density(task, search.value))
    rec.log(x, val, incumbent=(x, val), final=True)
    return rec.result(
        x,
        generator_steps=s["num_steps"],
        train_s=train_s,
        search_warnings=[str(w.message)[:200] for w in caught],
        hypernet="wbbgen generator, weights = 1, prior_weight='fixed'",
    )


def lorraine_local(task: Task, budget: Budget, seed: int = 0) -> TunerResult:
    """Local (joint) hyper-training via :func:`wbbgen.hypertrain.local_hypertrain`."""
    try:
        from wbbgen import hypertrain
    except ImportError as err:
        raise NotImplementedError(
            "lorraine-local needs wbbgen.hypertrain.local_hypertrain (the tuning issue's implementation), "
            "which this checkout does not have yet; run the other methods, or update wbbgen."
        ) from err
    return _local(hypertrain, task, budget, seed)


def _local(hypertrain, task: Task, budget: Budget, seed: int) -> TunerResult:
    rec = Recorder(budget, task)
    s = task.settings
    start = 0.5 * (task.log_low + task.log_high)
    num_steps = int(s["num_steps"])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = hypertrain.local_hypertrain(
            jax.random.key(seed),
            task.model,
            task.X_train,
            task.y_train,
            hyper={n: np.float64(np.exp(v)) for n, v in zip(task.hyper_names, start)},
            val_args=(task.X_val, task.y_val),
            num_steps=num_steps,
            chunk_size=max(1, num_steps // 20),
            hyper_bounds=(float(task.log_low.min()), float(task.log_high.max())),
            batch_size=min(32, s["batch_size"]),
            width=s["width"],
            weights=ones,
            prior_weight="fixed",
            num_pilot=0,
            time_budget=budget.seconds,
            progress_bar=False,
        )
    total = rec.elapsed()
    tr = res.trace
    offset = total - float(tr["time"][-1])  # problem building before hypertrain's clock started
    x = np.log(np.concatenate([np.ravel(res.hyper[n]) for n in task.hyper_names]))
    vals = loss_from_log_density(task, -np.asarray(tr["val_loss"]))
    for k in range(len(tr["step"])):
        last = k == len(tr["step"]) - 1
        # hypertrain records losses, not the path of λ̂: only the end point is a choice
        rec.log(
            x if last else np.full_like(x, np.nan),
            vals[k],
            candidate=False,
            at=offset + tr["time"][k],
            step=int(tr["step"][k]),
        )
    rec.log(x, float(vals[-1]), incumbent=(x, float(vals[-1])), final=True)
    return rec.result(
        x,
        generator_steps=num_steps,
        start=start.tolist(),
        hypernet="wbbgen.hypertrain.local_hypertrain, weights = 1, prior_weight='fixed', num_pilot=0",
    )
