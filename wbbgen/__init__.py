"""wbbgen: generative Bayesian hyperparameter tuning for NumPyro.

Weighted Bayesian bootstrap draws (:func:`exact_wbb`), amortised over hyperparameters by a
generator trained once (:class:`AmortizedWBB`), as ArviZ InferenceData with a hyperparameter
dimension.
"""

from wbbgen import datasets, hypertrain, io, models, tuning, weights
from wbbgen._version import __version__ as __version__
from wbbgen.amortized import AmortizedWBB, WBBRunResult
from wbbgen.calibration import calibration, plot_calibration, summarize
from wbbgen.convert import build_inference_data, per_hyper
from wbbgen.exact import ConvergenceWarning, exact_wbb
from wbbgen.first_order import first_order_wbb
from wbbgen.hyper import Choice, ExtrapolationWarning
from wbbgen.hypertrain import local_hypertrain
from wbbgen.io import FileFormatError, MismatchError, load, save
from wbbgen.model import FunctionModel
from wbbgen.plots import plot_curve, plot_path
from wbbgen.posterior_check import PosteriorCheckWarning
from wbbgen.predictive import log_predictive, lppd, mean_log_predictive
from wbbgen.reference import ReferenceDiagnosticsWarning, nuts_reference
from wbbgen.samples import WBBSamples
from wbbgen.training import NonFiniteTrainingError, format_fidelity
from wbbgen.tuning import (
    accuracy,
    custom,
    exact_kfold_cv,
    gradient_search,
    heldout_log_density,
    kfold_cv,
    mse,
    psis_loo,
    tune,
)

__all__ = [
    "AmortizedWBB",
    "WBBRunResult",
    "WBBSamples",
    "exact_wbb",
    "first_order_wbb",
    "nuts_reference",
    "calibration",
    "summarize",
    "plot_calibration",
    "ReferenceDiagnosticsWarning",
    "FunctionModel",
    "Choice",
    "weights",
    "io",
    "datasets",
    "models",
    "hypertrain",
    "local_hypertrain",
    "tuning",
    "tune",
    "heldout_log_density",
    "mse",
    "accuracy",
    "psis_loo",
    "custom",
    "gradient_search",
    "kfold_cv",
    "exact_kfold_cv",
    "build_inference_data",
    "per_hyper",
    "log_predictive",
    "mean_log_predictive",
    "lppd",
    "plot_path",
    "plot_curve",
    "format_fidelity",
    "ConvergenceWarning",
    "ExtrapolationWarning",
    "PosteriorCheckWarning",
    "NonFiniteTrainingError",
    "save",
    "load",
    "FileFormatError",
    "MismatchError",
]
