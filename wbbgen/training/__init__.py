"""Training a generator: the functional core behind :class:`wbbgen.AmortizedWBB`.

* a loss is a value: :func:`criterion` (the weighted objective), :func:`supervised`
  (regression onto exact optimisers);
* :func:`trainer` makes the pure pair ``init(generator) -> TrainState`` and
  ``step(state, rng_key, data) -> (state, TrainInfo)``;
* :func:`run_loop` scans a step in compiled chunks with callbacks between them (progress
  bar, checkpoints, cost probe, non-finite stop), for :class:`~wbbgen.AmortizedWBB` and
  :func:`wbbgen.local_hypertrain` alike;
* :func:`pilot` sets the output scale from exact solves; :func:`fidelity` checks the trained
  generator against exact solves of the same draws.
"""

from wbbgen.training.fidelity import (
    FidelityWarning,
    check_fidelity,
    fidelity,
    format_fidelity,
    near_flagged,
    warn_fidelity,
    warn_near_flagged,
)
from wbbgen.training.loop import ChunkReport, LoopResult, ProgressBar, every_chunk, run_loop, stop_when
from wbbgen.training.losses import Loss, criterion, supervised, supervised_targets  # noqa: I001
from wbbgen.training.pilot import CostProbe, PilotResult, find_output_scale, fit_output_scale, pilot
from wbbgen.training.state import Batch, NonFiniteTrainingError, TrainInfo, TrainState, default_optimizer, sample_batch
from wbbgen.training.trainer import Trainer, trainer

__all__ = [
    "Batch",
    "TrainState",
    "TrainInfo",
    "NonFiniteTrainingError",
    "sample_batch",
    "default_optimizer",
    "Loss",
    "criterion",
    "supervised",
    "supervised_targets",
    "Trainer",
    "trainer",
    "ChunkReport",
    "LoopResult",
    "run_loop",
    "ProgressBar",
    "stop_when",
    "every_chunk",
    "PilotResult",
    "CostProbe",
    "pilot",
    "fit_output_scale",
    "find_output_scale",
    "fidelity",
    "format_fidelity",
    "check_fidelity",
    "warn_fidelity",
    "near_flagged",
    "warn_near_flagged",
    "FidelityWarning",
]
