"""`AmortizedWBB`: train a generator once, then draw WBB posteriors at any λ in milliseconds
(:mod:`wbbgen.amortized.infer`); its results (:mod:`wbbgen.amortized.result`); checkpoints and
warm starts (:mod:`wbbgen.amortized.resume`); its draws (:mod:`wbbgen.amortized.sampling`)."""

from wbbgen.amortized.result import WBBRunResult, WBBTraining  # noqa: I001
from wbbgen.amortized.infer import AmortizedWBB, Options

__all__ = ["AmortizedWBB", "WBBRunResult", "WBBTraining", "Options"]
