r"""Criteria U(θ, λ) evaluated for every WBB draw at every grid value, with their spread over w.

A :class:`Criterion` maps the draws θ(w, ξ, λ) on a grid of K = K₁ ⋯ K_m hyperparameter
values to per-draw values ``(K₁, …, K_m, S)``. Their mean over the S draws estimates
E_w[U(θ(w, λ), λ)]; their spread over the draws is the uncertainty that the bootstrap
weights carry into the criterion. :func:`evaluate` turns a criterion into a curve over the
grid (mean, sd and quantiles over the draws).

* :func:`heldout_log_density`: the mean over new observations of the model's own
  log p(ỹᵢ | θ, λ) (higher is better);
* :func:`mse`, :func:`accuracy`: of a user predictor ``predict(params, X)``;
* :func:`custom`: any utility ``fn(params, hyper) -> (S,)``;
* :func:`psis_loo`: PSIS-LOO elpd of the training data, computed by ArviZ on each λ slice;
  its spread is ArviZ's standard error, not a spread over draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from wbbgen.convert import elpd_loo
from wbbgen.predictive import mean_log_predictive
from wbbgen.samples import WBBSamples

__all__ = [
    "Criterion",
    "heldout_log_density",
    "mse",
    "accuracy",
    "custom",
    "psis_loo",
    "evaluate",
    "curve_from_values",
]


class Criterion(NamedTuple):
    """A tuning criterion: its name, how to evaluate it, and which direction is better.

    ``evaluate(model, samples) -> (values, mean, sd)``: ``values`` the per-draw criterion
    ``(K₁, …, K_m, S)`` (``None`` for a criterion not defined per draw, such as PSIS-LOO),
    ``mean`` and ``sd`` its curve over the grid ``(K₁, …, K_m)``.
    """

    name: str
    evaluate: Callable[[Any, WBBSamples], tuple[np.ndarray | None, np.ndarray, np.ndarray]]
    higher_is_better: bool


def _spread(values):
    return values, values.mean(-1), values.std(-1)


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


def heldout_log_density(*args, **kwargs) -> Criterion:
    r"""Mean log density of new data under each draw, from the model's own likelihood.

    For draw θₛ at λ and new data ``model(*args, **kwargs)`` with ñ observations,

    .. math:: U_s(λ) = \frac{1}{ñ} \sum_{i=1}^{ñ} \log p(ỹ_i \mid θ_s, λ),

    summed over the observed sites; higher is better. Its mean over the draws is the
    expected log predictive density E_w[U]; the log predictive density of the posterior
    predictive, (1/ñ) Σᵢ log (1/S) Σₛ p(ỹᵢ | θₛ, λ), is :func:`wbbgen.lppd` of
    :func:`wbbgen.log_predictive` instead.

    Args:
        *args, **kwargs: the validation data, observed values included, as the model takes
            them: ``heldout_log_density(X_val, y_val)`` for ``model(X, y=None, *, lam)``.

    Returns:
        A :class:`Criterion` named ``"heldout_log_density"``. Evaluating it refuses (``ValueError``)
        data with which the model samples a site that is neither observed nor a latent site
        of the draws: the observed validation values were left out.

    Example:
        >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
        >>> from wbbgen.samples import WBBSamples
        >>> def model(x, y=None, *, lam=1.0):
        ...     b = numpyro.sample("b", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)))
        ...     with numpyro.plate("data", x.shape[0]):
        ...         numpyro.sample("y", dist.Normal(b * x, 1.0), obs=y)
        >>> from wbbgen.tuning.criteria import heldout_log_density
        >>> samples = WBBSamples({"b": np.zeros((1, 2))}, {"lam": np.array([1.0])}, {}, {})
        >>> values, mean, sd = heldout_log_density(np.ones(3), np.zeros(3)).evaluate(model, samples)
        >>> values.shape, round(float(mean[0]), 4)  # b = 0: log N(0 | 0, 1)
        ((1, 2), -0.9189)
    """

    def evaluate(model, samples):
        return _spread(mean_log_predictive(model, samples, *args, **kwargs))

    return Criterion("heldout_log_density", evaluate, True)


def mse(predict: Callable, X, y) -> Criterion:
    r"""Mean squared error of a predictor per draw: U_s(λ) = (1/n) Σᵢ (ŷᵢ(θₛ) − yᵢ)² (lower is better).

    Args:
        predict: ``predict(params, X) -> (S, n)`` predictions, ``params`` a dict of
            constrained draws ``(S, …)`` per latent site.
        X, y: the validation inputs (passed to ``predict`` as they are) and targets ``(n,)``.

    Example:
        >>> import numpy as np
        >>> from wbbgen.samples import WBBSamples
        >>> from wbbgen.tuning.criteria import mse
        >>> samples = WBBSamples({"b": np.array([[[0.0], [2.0]]])}, {"lam": np.array([1.0])}, {}, {})
        >>> crit = mse(lambda p, X: p["b"] * X[None, :], np.ones(3), np.ones(3))
        >>> crit.evaluate(None, samples)[0].tolist()  # b = 0 and b = 2: errors of 1 at each row
        [[1.0, 1.0]]
    """
    y = np.asarray(y)

    def evaluate(model, samples):
        return _spread(_per_lambda(samples, lambda p, h: ((np.asarray(predict(p, X)) - y) ** 2).mean(-1)))

    return Criterion("mse", evaluate, False)


def accuracy(predict: Callable, X, y) -> Criterion:
    r"""Share of correct labels per draw: U_s(λ) = (1/n) Σᵢ 1[ŷᵢ(θₛ) = yᵢ] (higher is better).

    Args:
        predict: ``predict(params, X) -> (S, n)`` predicted labels, ``params`` a dict of
            constrained draws ``(S, …)`` per latent site.
        X, y: the validation inputs and labels ``(n,)``.

    Example:
        >>> import numpy as np
        >>> from wbbgen.samples import WBBSamples
        >>> from wbbgen.tuning.criteria import accuracy
        >>> samples = WBBSamples({"b": np.array([[[-1.0], [1.0]]])}, {"lam": np.array([1.0])}, {}, {})
        >>> crit = accuracy(lambda p, X: (p["b"] * X[None, :] > 0).astype(int), np.array([1.0, -1.0]), [1, 1])
        >>> crit.evaluate(None, samples)[0].tolist()
        [[0.5, 0.5]]
    """
    y = np.asarray(y)

    def evaluate(model, samples):
        return _spread(_per_lambda(samples, lambda p, h: (np.asarray(predict(p, X)) == y).mean(-1)))

    return Criterion("accuracy", evaluate, True)


def custom(fn: Callable, name: str = "criterion", higher_is_better: bool = True) -> Criterion:
    """Any utility U(θ, λ) given as ``fn(params, hyper) -> (S,)``.

    Args:
        fn: called once per grid point with ``params``, a dict of constrained draws ``(S, …)``
            per latent site, and ``hyper``, ``{name: value}`` at that point.
        name: the criterion's name (the curve's ``criterion`` attribute).
        higher_is_better: whether :func:`~wbbgen.tuning.choose` maximises (True) or minimises it.

    Example:
        >>> import numpy as np
        >>> from wbbgen.samples import WBBSamples
        >>> from wbbgen.tuning.criteria import custom
        >>> samples = WBBSamples({"b": np.zeros((2, 4, 3))}, {"lam": np.array([0.1, 1.0])}, {}, {})
        >>> values, mean, sd = custom(lambda p, h: h["lam"] * np.ones(4), "lam").evaluate(None, samples)
        >>> values.shape, mean.tolist(), sd.tolist()
        ((2, 4), [0.1, 1.0], [0.0, 0.0])
    """

    def evaluate(model, samples):
        return _spread(_per_lambda(samples, fn))

    return Criterion(name, evaluate, higher_is_better)


def psis_loo() -> Criterion:
    r"""PSIS-LOO expected log pointwise predictive density of the training data, per grid point.

    At each λ, ArviZ's ``loo`` on that λ's slice of the draws,

    .. math:: \widehat{\mathrm{elpd}}_{\mathrm{loo}}(λ) = \sum_i \log
              \frac{\sum_s \tilde w_{is}\, p(y_i \mid θ_s, λ)}{\sum_s \tilde w_{is}},
              \qquad \tilde w_{is} ∝ 1 / p(y_i \mid θ_s, λ) \text{ (Pareto-smoothed)},

    never on the folded λ × observation axis. The criterion is not per draw (``values`` is
    ``None``); its ``sd`` is ArviZ's standard error. Pareto-k̂ warnings from ArviZ pass through.

    Example:
        >>> from wbbgen.tuning.criteria import psis_loo
        >>> psis_loo().name, psis_loo().higher_is_better
        ('elpd_loo', True)
    """

    def evaluate(model, samples):
        idata = samples.to_inference_data()
        names = list(samples.hyper)
        shape = tuple(len(g) for g in samples.hyper.values())
        mean, sd = np.empty(shape), np.empty(shape)
        for idx in np.ndindex(*shape):
            sel = {n: samples.hyper[n][i] for n, i in zip(names, idx)}
            mean[idx], sd[idx] = elpd_loo(idata.sel(**sel))
        return None, mean, sd

    return Criterion("elpd_loo", evaluate, True)


def curve_from_values(values, grids, name: str, higher_is_better: bool = True) -> xr.Dataset:
    """The criterion curve of per-draw values: mean, sd and 5/50/95 % quantiles over the draws.

    Args:
        values: ``(K₁, …, K_m, S)`` per-draw criterion values.
        grids: ``{name: 1-d grid}`` of the hyperparameters, in axis order.
        name, higher_is_better: stored as the curve's attributes ``criterion`` and
            ``higher_is_better`` (read by :func:`~wbbgen.tuning.choose`).

    Returns:
        An xarray Dataset over the hyper dims with variables ``mean``, ``sd``, ``q05``, ``q50``, ``q95``.

    Example:
        >>> import numpy as np
        >>> from wbbgen.tuning.criteria import curve_from_values
        >>> curve = curve_from_values(np.array([[1.0, 3.0], [2.0, 2.0]]), {"lam": np.array([0.1, 1.0])}, "c")
        >>> curve["mean"].values.tolist(), curve["sd"].values.tolist()
        ([2.0, 2.0], [1.0, 0.0])
    """
    dims = list(grids)
    q = np.quantile(values, [0.05, 0.5, 0.95], axis=-1)
    data = {
        "mean": (dims, values.mean(-1)),
        "sd": (dims, values.std(-1)),
        "q05": (dims, q[0]),
        "q50": (dims, q[1]),
        "q95": (dims, q[2]),
    }
    return xr.Dataset(data, coords=grids).assign_attrs(criterion=name, higher_is_better=int(higher_is_better))


def evaluate(model, samples: WBBSamples, criterion: Criterion) -> tuple[xr.Dataset, np.ndarray | None]:
    """The criterion curve over the grid of ``samples``, and the per-draw values.

    Args:
        model: the model the draws are of (what the criterion evaluates, if it uses it).
        samples: draws over a grid, ``(K₁, …, K_m, S, …)`` per site.
        criterion: a :class:`Criterion`.

    Returns:
        ``(curve, values)``: the curve, an xarray Dataset over the hyper dims with ``mean``
        and ``sd`` and, for a per-draw criterion, the 5/50/95 % quantiles over the draws
        (:func:`curve_from_values`); the per-draw values ``(K₁, …, K_m, S)``, or ``None``.

    Example:
        >>> import numpy as np
        >>> from wbbgen.samples import WBBSamples
        >>> from wbbgen.tuning.criteria import custom, evaluate
        >>> samples = WBBSamples({"b": np.zeros((2, 4))}, {"lam": np.array([0.1, 1.0])}, {}, {})
        >>> curve, values = evaluate(None, samples, custom(lambda p, h: h["lam"] + p["b"]))
        >>> sorted(curve.data_vars), values.shape
        (['mean', 'q05', 'q50', 'q95', 'sd'], (2, 4))
    """
    values, mean, sd = criterion.evaluate(model, samples)
    grids = {k: np.asarray(v) for k, v in samples.hyper.items()}
    if values is not None:
        return curve_from_values(values, grids, criterion.name, criterion.higher_is_better), values
    dims = list(grids)
    curve = xr.Dataset({"mean": (dims, mean), "sd": (dims, sd)}, coords=grids).assign_attrs(
        criterion=criterion.name, higher_is_better=int(criterion.higher_is_better)
    )
    return curve, values
