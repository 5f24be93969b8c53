r"""Choosing hyperparameters on a grid: the best value and the one-standard-error choice.

With a criterion's mean μ(λ) and its sd σ(λ) over the bootstrap draws (a curve from
:func:`~wbbgen.tuning.evaluate`), and the sign s = +1 for a criterion to maximise, −1 for a
loss:

* ``best``: λ̂ = argmax_λ s·μ(λ);
* ``best_1se``: the one-standard-error rule, the most regularised λ whose score is within
  one sd of the best, s·μ(λ) ≥ s·μ(λ̂) − σ(λ̂). The spread comes from the posterior over w,
  not from folds.

:func:`tune` draws from a trained generator on a grid, evaluates the criterion and chooses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import xarray as xr

from wbbgen.samples import WBBSamples
from wbbgen.tuning.criteria import Criterion, evaluate

__all__ = ["TuneResult", "choose", "tune"]


class TuneResult(NamedTuple):
    """What :func:`tune` returns.

    Attributes:
        best: ``{name: value}`` with the best mean criterion.
        best_1se: ``{name: value}``, the one-standard-error choice.
        curve: the criterion curve, an xarray Dataset over the hyper dims (``mean``, ``sd``
            and, for per-draw criteria, ``q05``, ``q50``, ``q95``).
        values: ``(K₁, …, K_m, S)`` per-draw criterion values, or ``None`` (PSIS-LOO).
        samples: the draws the criterion was evaluated on.
    """

    best: dict
    best_1se: dict
    curve: xr.Dataset
    values: np.ndarray | None
    samples: WBBSamples

    def plot(self, ax=None):
        """The criterion curve with its 90 % band over w (± 1 se for PSIS-LOO), best and 1-SE marked.

        One hyperparameter only. Returns the matplotlib axes (a new figure's if ``ax`` is None).
        """
        import matplotlib.pyplot as plt

        if len(self.curve.dims) != 1:
            raise ValueError("TuneResult.plot draws a curve over one hyperparameter.")
        name = next(iter(self.curve.dims))
        grid = self.curve[name].values
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        mean = self.curve["mean"].values
        lo, hi = (
            (self.curve["q05"].values, self.curve["q95"].values)
            if "q05" in self.curve
            else (mean - self.curve["sd"].values, mean + self.curve["sd"].values)
        )
        (line,) = ax.plot(grid, mean, lw=2, label=f"{self.curve.attrs['criterion']} (mean over w)")
        ax.fill_between(
            grid,
            lo,
            hi,
            color=line.get_color(),
            alpha=0.2,
            lw=0,
            label="90 % band over w" if "q05" in self.curve else "± 1 se",
        )
        ax.axvline(self.best[name], color="k", ls="--", lw=1, label=f"best {name}={self.best[name]:.3g}")
        ax.axvline(self.best_1se[name], color="0.4", ls=":", lw=1.5, label=f"1-SE {name}={self.best_1se[name]:.3g}")
        if np.all(grid > 0):
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(self.curve.attrs["criterion"])
        ax.legend(fontsize=8)
        return ax


def choose(curve: xr.Dataset, prefer: str = "larger") -> tuple[dict, dict]:
    r"""The best and the one-standard-error choices of a criterion curve.

    With score s·μ (s = +1 if ``higher_is_better``, else −1) and the best point λ̂,
    ``best`` is λ̂ and ``best_1se`` the most regularised point admissible under
    s·μ(λ) ≥ s·μ(λ̂) − σ(λ̂): the admissible value of the first hyperparameter at the
    regularised end, and at it the best-scoring admissible values of the others.

    Args:
        curve: a curve with ``mean`` and ``sd`` over the hyper dims and the attribute
            ``higher_is_better`` (:func:`~wbbgen.tuning.evaluate`, :func:`~wbbgen.tuning.kfold_cv`).
        prefer: which end of the first hyperparameter is more regularised: ``"larger"`` (a
            prior precision) or ``"smaller"`` (a prior scale).

    Returns:
        ``(best, best_1se)``, each ``{name: value}``.

    Example:
        >>> import xarray as xr
        >>> curve = xr.Dataset({"mean": ("lam", [1.0, 3.0, 2.5, 0.0]), "sd": ("lam", [0.1, 0.6, 0.1, 0.1])},
        ...                    coords={"lam": [0.1, 1.0, 10.0, 100.0]}).assign_attrs(higher_is_better=1)
        >>> from wbbgen.tuning.selection import choose
        >>> choose(curve)  # 2.5 ≥ 3.0 − 0.6: λ = 10 is within one sd of the best
        ({'lam': 1.0}, {'lam': 10.0})
    """
    if prefer not in ("larger", "smaller"):
        raise ValueError(f"`prefer={prefer!r}` must be 'larger' or 'smaller'.")
    sign = 1.0 if curve.attrs["higher_is_better"] else -1.0
    score = sign * curve["mean"].values
    idx = np.unravel_index(np.argmax(score), score.shape)
    names = list(curve["mean"].dims)
    best = {n: float(curve[n].values[i]) for n, i in zip(names, idx)}
    within = score >= score[idx] - curve["sd"].values[idx]
    first = curve[names[0]].values
    order = np.argsort(first)[::-1] if prefer == "larger" else np.argsort(first)
    for i0 in order:  # the most regularised first-hyper value with an admissible point
        sub = within[i0]
        if np.any(sub):
            rest = np.unravel_index(np.argmax(np.where(sub, score[i0], -np.inf)), np.shape(sub))
            chosen = (i0, *rest)
            break
    return best, {n: float(curve[n].values[i]) for n, i in zip(names, chosen)}


def tune(
    infer, rng_key, result, *, criterion: Criterion, hyper: Mapping, num_samples: int = 500, prefer: str = "larger"
) -> TuneResult:
    """Evaluate ``criterion`` on generator draws over the ``hyper`` grid and choose (:func:`choose`).

    Args:
        infer: the trained object (an :class:`~wbbgen.AmortizedWBB`); used through
            ``infer.get_samples(rng_key, result, hyper=..., num_samples=...)`` and ``infer.model``.
        rng_key: the key of the draws.
        result: the result of ``infer.run``.
        criterion: a :class:`~wbbgen.tuning.Criterion` (e.g. ``heldout_log_density(X_val, y_val)``).
        hyper: ``{name: grid}``; the product of the grids is evaluated (values outside the
            training support warn).
        num_samples: draws S per grid point.
        prefer: which end of the first hyperparameter is more regularised, for the 1-SE rule.

    Returns:
        A :class:`TuneResult`; ``values`` is ``(K₁, …, K_m, num_samples)``.

    Example:
        >>> tuned = tune(infer, jax.random.key(3), result, criterion=heldout_log_density(X_val, y_val),
        ...              hyper={"lam": np.logspace(-2, 2, 9)})  # doctest: +SKIP
        >>> tuned.best, tuned.best_1se  # doctest: +SKIP
        ({'lam': 1.0}, {'lam': 3.16...})
    """
    if not isinstance(criterion, Criterion):
        raise TypeError(
            f"`criterion` must be a wbbgen Criterion such as wbbgen.tuning.heldout_log_density(X_val, "
            f"y_val), got {type(criterion).__name__}; wrap a function with wbbgen.tuning.custom(fn)."
        )
    samples = infer.get_samples(rng_key, result, hyper=hyper, num_samples=num_samples)
    curve, values = evaluate(infer.model, samples, criterion)
    best, best_1se = choose(curve, prefer)
    return TuneResult(best, best_1se, curve, values, samples)
