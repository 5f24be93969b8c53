r"""Exact grid search and random search, each point a full MAP refit of the shared inner model.

* **grid** -- ``G`` log-spaced values of λ over the box, fitted from the most regularised down,
  each fit warm-started at the previous solution (the λ path). ``G`` is the fit budget (or 30
  under a time-only budget; the grid is then cut where the time runs out). With several
  hyperparameters the grid is the *diagonal* λ₁ = … = λ_m (a full product grid of 10 decays is
  out of reach of any budget here); the other tuners search the full box.
* **random** -- λ log-uniform over the box (Bergstra & Bengio 2012), seeded; each fit
  warm-started at the solution of the nearest point fitted so far (in log λ).

Example (on the test suite's small task):
    >>> from wbbgen.baselines import Budget, get_task
    >>> from wbbgen.baselines.search import grid_search
    >>> res = grid_search(get_task("tiny-ridge"), Budget(fits=5))
    >>> res.x.shape                 # log λ of the best validation loss
    (1,)
"""

from __future__ import annotations

import numpy as np

from wbbgen.baselines.task import Task
from wbbgen.baselines.trace import Budget, Recorder, TunerResult

__all__ = ["grid_search", "random_search"]

#: Grid size under a time-only budget.
DEFAULT_GRID = 30


def grid_search(task: Task, budget: Budget, seed: int = 0) -> TunerResult:
    """Exact λ-path grid search (``seed`` is unused: the grid is deterministic)."""
    rec = Recorder(budget, task)
    size = int(budget.fits) if budget.fits is not None else DEFAULT_GRID
    size = max(size, 1)
    t = np.linspace(1.0, 0.0, size) if size > 1 else np.array([0.5])
    xs = task.log_low[None, :] + t[:, None] * (task.log_high - task.log_low)[None, :]
    theta = None
    for x in xs:
        if rec.exhausted(next_cost=1):
            break
        theta, _ = task.fit(x, theta)
        rec.add_fits(1)
        rec.log(x, task.val_loss(theta))
    return rec.result(grid=xs.tolist())


def random_search(task: Task, budget: Budget, seed: int = 0) -> TunerResult:
    """Log-uniform random search with nearest-neighbour warm starts."""
    rec = Recorder(budget, task)
    rng = np.random.default_rng(seed)
    done_x, done_theta = [], []
    while not rec.exhausted(next_cost=1):
        x = rng.uniform(task.log_low, task.log_high)
        theta0 = None
        if done_x:
            theta0 = done_theta[int(np.argmin(np.linalg.norm(np.asarray(done_x) - x, axis=1)))]
        theta, _ = task.fit(x, theta0)
        rec.add_fits(1)
        done_x.append(x)
        done_theta.append(theta)
        rec.log(x, task.val_loss(theta))
    return rec.result()
