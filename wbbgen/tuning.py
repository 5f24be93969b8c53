r"""Tuning with uncertainty: criteria over a hyperparameter grid, with their spread over w.

A criterion U(θ, λ) is evaluated for every WBB draw θ(w, ξ, λ) on the grid, giving an array
``(K₁, …, K_m, S)``. Its mean over the draws is the estimate of E_w[U(θ(w, λ), λ)] and its
spread over the draws is the uncertainty that the bootstrap weights carry into it:

* ``best``: the grid value with the best mean;
* ``best_1se``: the one-standard-error choice -- the most regularised value (largest or
  smallest, ``prefer=``) whose mean is within one sd (over w) of the best mean.

Criteria (each a :class:`Criterion`):

* :func:`heldout_log_density` -- mean over new observations of log p(ỹᵢ | θ, λ) from the
  model's own likelihood (higher is better);
* :func:`mse`, :func:`accuracy` -- for a user predictor ``predict(params, X)``;
* :func:`psis_loo` -- PSIS-LOO elpd computed by ArviZ on each ``idata.sel(lam=…)`` slice
  (never on the folded λ × observation axis); its spread is ArviZ's standard error;
* :func:`custom` -- any ``U(params, hyper) -> (S,)``.

Example:
    >>> tuned = tune(infer, jax.random.key(3), result, criterion=heldout_log_density(X_val, y_val),
    ...              hyper={"lam": grid}, num_samples=500)
    >>> tuned.best, tuned.best_1se
    >>> tuned.plot()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from wbbgen.samples import WBBSamples

__all__ = [
    "Criterion",
    "TuneResult",
    "heldout_log_density",
    "mse",
    "accuracy",
    "psis_loo",
    "custom",
    "evaluate",
    "choose",
    "tune",
]


class Criterion(NamedTuple):
    """``evaluate(model, samples) -> (values (K…, S) or None, mean (K…), sd (K…))``."""

    name: str
    evaluate: Callable[[Any, WBBSamples], tuple[np.ndarray | None, np.ndarray, np.ndarray]]
    higher_is_better: bool


def _spread(values):
    return values, values.mean(-1), values.std(-1)


def heldout_log_density(*args, **kwargs) -> Criterion:
    """Mean log predictive density of new data ``model(*args, **kwargs)`` per draw."""

    def evaluate(model, samples):
        from wbbgen.criteria import log_predictive

        return _spread(log_predictive(model, samples, *args, **kwargs).mean(-1))

    return Criterion("heldout_log_density", evaluate, True)


def _per_lambda(samples: WBBSamples, fn):
    """Apply ``fn(params (S, …), hyper dict) -> (S,)`` at every grid point: ``(K…, S)``."""
    names = list(samples.hyper)
    shape = tuple(len(g) for g in samples.hyper.values())
    out = np.empty((*shape, samples.num_samples))
    for idx in np.ndindex(*shape):
        params = {k: np.asarray(v)[idx] for k, v in samples.items()}
        hyper = {n: samples.hyper[n][i] for n, i in zip(names, idx)}
        out[idx] = np.asarray(fn(params, hyper))
    return out


def mse(predict: Callable, X, y) -> Criterion:
    """Mean squared error of ``predict(params, X) -> (S, n)`` against ``y`` per draw."""
    y = np.asarray(y)

    def evaluate(model, samples):
        return _spread(_per_lambda(samples, lambda p, h: ((np.asarray(predict(p, X)) - y) ** 2).mean(-1)))

    return Criterion("mse", evaluate, False)


def accuracy(predict: Callable, X, y) -> Criterion:
    """Share of ``predict(params, X) -> (S, n)`` predicted labels equal to ``y`` per draw."""
    y = np.asarray(y)

    def evaluate(model, samples):
        return _spread(_per_lambda(samples, lambda p, h: (np.asarray(predict(p, X)) == y).mean(-1)))

    return Criterion("accuracy", evaluate, True)


def custom(fn: Callable, name: str = "criterion", higher_is_better: bool = True) -> Criterion:
    """Any utility ``fn(params, hyper) -> (S,)``, params a dict of ``(S, …)`` arrays."""

    def evaluate(model, samples):
        return _spread(_per_lambda(samples, fn))

    return Criterion(name, evaluate, higher_is_better)


def psis_loo() -> Criterion:
    """PSIS-LOO expected log pointwise predictive density per grid point (ArviZ ``loo`` on
    each slice); ``sd`` is ArviZ's standard error. Pareto-k warnings from ArviZ pass through."""

    def evaluate(model, samples):
        import arviz as az

        idata = samples.to_inference_data()
        names = list(samples.hyper)
        shape = tuple(len(g) for g in samples.hyper.values())
        mean, sd = np.empty(shape), np.empty(shape)
        for idx in np.ndindex(*shape):
            sel = {n: samples.hyper[n][i] for n, i in zip(names, idx)}
            res = az.loo(idata.sel(**sel))
            mean[idx], sd[idx] = res["elpd_loo"], res["se"]
        return None, mean, sd

    return Criterion("elpd_loo", evaluate, True)


def evaluate(model, samples: WBBSamples, criterion: Criterion) -> tuple[xr.Dataset, np.ndarray | None]:
    """The criterion curve -- ``mean``, ``sd`` and, for per-draw criteria, the 5/50/95 %
    quantiles over w, as an xarray Dataset over the hyper dims -- and the per-draw values."""
    values, mean, sd = criterion.evaluate(model, samples)
    dims = list(samples.hyper)
    data = {"mean": (dims, mean), "sd": (dims, sd)}
    if values is not None:
        q = np.quantile(values, [0.05, 0.5, 0.95], axis=-1)
        data.update({"q05": (dims, q[0]), "q50": (dims, q[1]), "q95": (dims, q[2])})
    curve = xr.Dataset(data, coords={k: np.asarray(v) for k, v in samples.hyper.items()}).assign_attrs(
        criterion=criterion.name, higher_is_better=int(criterion.higher_is_better)
    )
    return curve, values


class TuneResult(NamedTuple):
    """What :func:`tune` returns."""

    best: dict
    best_1se: dict
    curve: xr.Dataset
    values: np.ndarray | None  # (K…, S) per-draw criterion values, when per draw
    samples: WBBSamples

    def plot(self, ax=None):
        """Criterion curve with its 90 % band over w (or ±1 se for PSIS-LOO), best and 1-SE marked."""
        import matplotlib.pyplot as plt

        if len(self.curve.dims) != 1:
            raise ValueError("TuneResult.plot draws a curve over one hyperparameter.")
        name = next(iter(self.curve.dims))
        grid = self.curve[name].values
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        mean = self.curve["mean"].values
        lo, hi = (self.curve["q05"].values, self.curve["q95"].values) if "q05" in self.curve else (
            mean - self.curve["sd"].values, mean + self.curve["sd"].values)
        (line,) = ax.plot(grid, mean, lw=2, label=f"{self.curve.attrs['criterion']} (mean over w)")
        ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2, lw=0,
                        label="90 % band over w" if "q05" in self.curve else "± 1 se")
        ax.axvline(self.best[name], color="k", ls="--", lw=1, label=f"best {name}={self.best[name]:.3g}")
        ax.axvline(self.best_1se[name], color="0.4", ls=":", lw=1.5, label=f"1-SE {name}={self.best_1se[name]:.3g}")
        if np.all(grid > 0):
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(self.curve.attrs["criterion"])
        ax.legend(fontsize=8)
        return ax


def choose(curve: xr.Dataset, prefer: str = "larger") -> tuple[dict, dict]:
    """Best and one-standard-error choices from a curve. ``prefer`` says which end of the
    first hyperparameter is more regularised (``"larger"`` for a prior precision)."""
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


def tune(infer, rng_key, result, *, criterion: Criterion, hyper: Mapping, num_samples: int = 500,
         prefer: str = "larger") -> TuneResult:
    """Evaluate ``criterion`` on generator draws over the ``hyper`` grid and choose.

    Args:
        infer, result: an :class:`~wbbgen.AmortizedWBB` and its run result.
        criterion: a :class:`Criterion` (e.g. ``heldout_log_density(X_val, y_val)``).
        hyper: ``{name: grid}`` (values outside the training support warn).
        prefer: which end of the first hyperparameter is more regularised, for the 1-SE rule.
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
