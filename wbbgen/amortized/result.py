"""What an :class:`~wbbgen.AmortizedWBB` run returns (:class:`WBBRunResult`) and what its
:meth:`~wbbgen.AmortizedWBB.init` / :meth:`~wbbgen.AmortizedWBB.update` pass along
(:class:`WBBTraining`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from wbbgen.cost import CostEstimate
from wbbgen.generator import OutputScale
from wbbgen.hyper import HyperDomain
from wbbgen.problem import Problem
from wbbgen.training import PilotResult, Trainer, TrainState

__all__ = ["WBBRunResult", "WBBTraining"]


class WBBRunResult(NamedTuple):
    """What :meth:`AmortizedWBB.run` returns: everything needed to sample later.

    Attributes:
        generator: the trained equinox generator (the last finite parameters).
        losses: training loss per step, ``(num_steps,)`` (L/n; in float32 its rounding hides
            sub-percent changes: judge convergence by ``fidelity``).
        fidelity: generator vs exact WBB on identical draws at 5 hyperparameter values
            (:func:`wbbgen.training.fidelity`), or None when ``fidelity_samples=0``.
        diagnostics: timings (pilot, compilation, training, fidelity), steps run, skipped and
            first non-finite step.
        problem: the objective, weight scheme and prior scheme (holds the data).
        domains: the hyperparameters' training distributions and encodings.
        model_args, model_kwargs: the data arguments the model was trained on.
        config: the settings of the run (recorded in InferenceData attrs).
        cost: the cost model's prediction of exact WBB vs this run for the ``plan``
            (:class:`wbbgen.cost.CostEstimate`), made after the first training chunk; None
            for a resumed or warm-started run and when the pilot is capped
            (``pilot_max_steps``), since its timing of exact solves is what the model
            extrapolates.
    """

    generator: Any
    losses: np.ndarray
    fidelity: dict | None
    diagnostics: dict
    problem: Problem
    domains: tuple[HyperDomain, ...]
    model_args: tuple
    model_kwargs: dict
    config: dict
    cost: CostEstimate | None = None


class WBBTraining(NamedTuple):
    """What :meth:`AmortizedWBB.init` returns and :meth:`~AmortizedWBB.update` advances
    (NumPyro's ``SVIState``): the :class:`~wbbgen.training.TrainState`, the pure
    :class:`~wbbgen.training.Trainer` it is stepped by, the training key (step t uses
    ``fold_in(rng_key, t)``), the data, and what the result records."""

    state: TrainState
    trainer: Trainer
    rng_key: jax.Array
    data: Any
    problem: Problem
    num_steps: int
    output_scale: OutputScale
    model_args: tuple
    model_kwargs: dict
    pilot: PilotResult | None = None
    previous_losses: np.ndarray | None = None
    diagnostics: dict | None = None
