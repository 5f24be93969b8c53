r"""Budgets and traces: what every tuner receives and returns.

A :class:`Budget` caps a run in full inner fits, wall-clock seconds, or both (whichever runs
out first). A *full fit* is one MAP fit of the task's inner model; tuners that train by epochs
count ``epochs / task.epochs`` fit-equivalents (Hyperband, Ariafar et al.), and the amortised
tuners count their exact pilot solves (their generator training is reported in wall time,
the common unit of the comparison; see ``docs/hpo.md``).

A :class:`Recorder` keeps the clock (started when the tuner starts, so compilation and
generator training are included), the fit count and one trace row per evaluation:

    time_s, num_fits, x (log λ evaluated), val_loss (the tuner's own estimate there),
    best_x, best_val (the incumbent: the tuner's current choice).

The harness scores the incumbents afterwards with the clock stopped (:func:`wbbgen.baselines.task.evaluate`).

Example (a tuner that fits the same λ until the budget is spent; ``task`` is only stored):
    >>> import numpy as np
    >>> from wbbgen.baselines.trace import Budget, Recorder
    >>> rec = Recorder(Budget(fits=3), task=None)
    >>> while not rec.exhausted(next_cost=1):
    ...     rec.add_fits(1); rec.log(np.log([1.0]), 0.5)
    >>> result = rec.result(rec.best_x)
    >>> result.x.tolist(), result.info["num_fits"], len(result.trace)
    ([0.0], 3.0, 3)
"""

from __future__ import annotations

import math
import re
import time
from typing import NamedTuple

import numpy as np

__all__ = ["Budget", "Recorder", "TunerResult", "parse_budget", "BudgetExhausted"]


class Budget(NamedTuple):
    """A tuner's allowance: ``fits`` full inner fits and/or ``seconds`` of wall time."""

    fits: float | None = None
    seconds: float | None = None

    def check(self) -> Budget:
        if self.fits is None and self.seconds is None:
            raise ValueError("a Budget needs `fits=` or `seconds=` (or both).")
        for name, v in (("fits", self.fits), ("seconds", self.seconds)):
            if v is not None and not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"Budget `{name}` must be a positive number, got {v!r}.")
        return self


def parse_budget(text: str) -> Budget:
    """``"30"`` -> 30 fits, ``"120s"`` -> 120 seconds, ``"30,120s"`` -> both."""
    fits = seconds = None
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*(s|fits)?", part)
        if not m:
            raise ValueError(f"`--budget {text!r}`: use N (full fits), Ns (seconds) or both, e.g. '30' or '30,120s'.")
        if m.group(2) == "s":
            seconds = float(m.group(1))
        else:
            fits = float(m.group(1))
    return Budget(fits, seconds).check()


class BudgetExhausted(Exception):
    """Raised inside a tuner's objective when the budget runs out (optuna loops)."""


class TunerResult(NamedTuple):
    """What a tuner returns: its final choice ``x`` (log λ, ``(m,)``), the trace rows, and
    method-specific ``info`` (settings, bands, fitted values)."""

    x: np.ndarray
    trace: list
    info: dict


class Recorder:
    """The clock, the fit counter and the trace of one tuner run."""

    def __init__(self, budget: Budget, task):
        self.budget = budget.check()
        self.task = task
        self.t0 = time.perf_counter()
        self.fits = 0.0
        self.rows: list[dict] = []
        self.best_x = None
        self.best_val = np.inf

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def add_fits(self, n: float = 1.0) -> None:
        self.fits += float(n)

    def exhausted(self, next_cost: float = 0.0) -> bool:
        """Whether the budget is spent (``next_cost`` fits ahead are counted as spent)."""
        b = self.budget
        if b.fits is not None and self.fits + next_cost > b.fits + 1e-9:
            return True
        return b.seconds is not None and self.elapsed() >= b.seconds

    def log(self, x, val_loss: float, *, incumbent=None, candidate: bool = True, at=None, **extra) -> None:
        """Record an evaluation at ``x`` with the tuner's validation loss there. The incumbent
        is the best ``val_loss`` so far among candidates (``candidate=False``: a low-fidelity
        evaluation that cannot become the choice) unless the tuner names its own
        (``incumbent=(x, val)``). ``at`` overrides the time stamp (seconds since the start)."""
        x = np.asarray(x, float).reshape(-1)
        val_loss = float(val_loss)
        if incumbent is not None:
            self.best_x, self.best_val = np.asarray(incumbent[0], float).reshape(-1), float(incumbent[1])
        elif candidate and np.isfinite(val_loss) and val_loss < self.best_val:
            self.best_x, self.best_val = x, val_loss
        self.rows.append(
            {
                "time_s": self.elapsed() if at is None else float(at),
                "num_fits": self.fits,
                "x": x.tolist(),
                "val_loss": val_loss,
                "best_x": None if self.best_x is None else self.best_x.tolist(),
                "best_val": self.best_val,
                **extra,
            }
        )

    def result(self, x=None, **info) -> TunerResult:
        x = self.best_x if x is None else np.asarray(x, float).reshape(-1)
        if x is None:
            raise RuntimeError("the tuner finished without evaluating any hyperparameter; raise the budget.")
        info = {"wall_time_s": self.elapsed(), "num_fits": self.fits, **info}
        return TunerResult(np.asarray(x, float), self.rows, info)
