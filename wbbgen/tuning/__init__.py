r"""Tuning with uncertainty: criteria over a hyperparameter grid, with their spread over w.

A criterion U(θ, λ) is evaluated for every WBB draw θ(w, ξ, λ) on a grid, giving an array
``(K₁, …, K_m, S)``. Its mean over the draws estimates E_w[U(θ(w, λ), λ)] and its spread
over the draws is the uncertainty that the bootstrap weights carry into it. The package:

* :mod:`wbbgen.tuning.criteria`: :class:`Criterion` and the criteria --
  :func:`heldout_log_density` (the model's own log p(ỹᵢ | θ, λ) on new data), :func:`mse`,
  :func:`accuracy`, :func:`custom`, :func:`psis_loo` (ArviZ on each λ slice) -- and
  :func:`evaluate`, a criterion's curve over the grid;
* :mod:`wbbgen.tuning.selection`: :func:`choose` (``best``, the best mean, and ``best_1se``,
  the most regularised value within one sd over w of it) and :func:`tune` (draw, evaluate, choose);
* :mod:`wbbgen.tuning.search`: :func:`gradient_search`, gradient ascent of the held-out log
  density on λ through the generator, from several starts;
* :mod:`wbbgen.tuning.cv`: :func:`kfold_cv` (K-fold CV by weight deletion through the
  generator) and :func:`exact_kfold_cv` (the same by exact solves).

The fold masks (:func:`fold_masks`, :func:`trained_fold_masks`, ``CV_FOLD_SEED``,
``CV_DELETION_RATE``) live in :mod:`wbbgen.weights` and are re-exported here.

Example:
    >>> import numpy as np
    >>> from wbbgen.samples import WBBSamples
    >>> from wbbgen.tuning import choose, custom, evaluate
    >>> samples = WBBSamples({"b": np.zeros((3, 4))}, {"lam": np.array([0.1, 1.0, 10.0])}, {}, {})
    >>> curve, values = evaluate(None, samples, custom(lambda p, h: -((h["lam"] - 1.0) ** 2) + p["b"]))
    >>> choose(curve)
    ({'lam': 1.0}, {'lam': 1.0})
"""

from wbbgen import weights as _weights
from wbbgen.tuning.criteria import (
    Criterion,
    accuracy,
    curve_from_values,
    custom,
    evaluate,
    heldout_log_density,
    mse,
    psis_loo,
)
from wbbgen.tuning.cv import exact_kfold_cv, kfold_cv
from wbbgen.tuning.search import FORWARD_MODE_MAX, GradientSearchResult, gradient_search
from wbbgen.tuning.selection import TuneResult, choose, tune
from wbbgen.weights import fold_masks, trained_fold_masks

#: With ``AmortizedWBB(cv_folds=K)``: the share of training draws with a fold deleted
#: (:data:`wbbgen.weights.CV_DELETION_RATE`, re-exported).
CV_DELETION_RATE = _weights.CV_DELETION_RATE
#: The PRNG key (as an int) of the folds ``AmortizedWBB(cv_folds=K)`` trains on and
#: :func:`kfold_cv` and :func:`exact_kfold_cv` use by default (:data:`wbbgen.weights.CV_FOLD_SEED`, re-exported).
CV_FOLD_SEED = _weights.CV_FOLD_SEED

__all__ = [
    "Criterion",
    "TuneResult",
    "heldout_log_density",
    "mse",
    "accuracy",
    "psis_loo",
    "custom",
    "evaluate",
    "curve_from_values",
    "choose",
    "tune",
    "GradientSearchResult",
    "gradient_search",
    "FORWARD_MODE_MAX",
    "fold_masks",
    "trained_fold_masks",
    "CV_DELETION_RATE",
    "CV_FOLD_SEED",
    "kfold_cv",
    "exact_kfold_cv",
]
