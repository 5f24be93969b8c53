"""`AmortizedWBB`: train a generator once, then draw WBB posteriors at any λ in milliseconds
(:mod:`wbbgen.amortized.infer`); its results (:mod:`wbbgen.amortized.result`); checkpoints and
warm starts (:mod:`wbbgen.amortized.resume`)."""

from wbbgen.amortized.result import WBBRunResult, WBBTraining  # noqa: I001
from wbbgen.amortized.infer import MAX_NUM_WEIGHTS, AmortizedWBB, Options, check_num_weights

__all__ = ["AmortizedWBB", "WBBRunResult", "WBBTraining", "Options", "check_num_weights", "MAX_NUM_WEIGHTS"]
