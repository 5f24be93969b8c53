"""The settings of :class:`~wbbgen.AmortizedWBB`, grouped into immutable objects that check
themselves when built: :class:`GeneratorOptions` (what is trained), :class:`TrainingOptions`
(how), :class:`PilotOptions` (the exact solves that set the output scale) and
:class:`CheckOptions` (the closing fidelity check and the cost model's plan).
``AmortizedWBB(...)`` takes the same keywords as ever and forwards them here.

Example:
    >>> from wbbgen.options import TrainingOptions
    >>> TrainingOptions(batch_size=64).batch_size
    64
    >>> TrainingOptions(mode="supervised", data_batch_size=32)
    Traceback (most recent call last):
    ...
    ValueError: `data_batch_size` applies to mode='criterion' only (supervised mode uses no data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import optax

from wbbgen._checks import positive_int
from wbbgen.generator import GENERATORS, make_generator_compiled
from wbbgen.hyper import encoded_width
from wbbgen.problem import Problem
from wbbgen.training import Trainer, criterion, default_optimizer, supervised, trainer
from wbbgen.weights import CV_DELETION_RATE, trained_fold_masks, with_fold_deletion

__all__ = [
    "GeneratorOptions",
    "TrainingOptions",
    "PilotOptions",
    "CheckOptions",
    "Options",
    "forward_options",
    "check_num_weights",
    "MAX_NUM_WEIGHTS",
]

MODES = ("criterion", "supervised")

#: Above this many weights per draw (per-observation weights of a large data set) the
#: generator's first layer alone would hold width × n parameters: block weights are required.
MAX_NUM_WEIGHTS = 200_000


def _optional_positive(value, name):
    return None if value is None else positive_int(value, name)


@dataclass(frozen=True)
class GeneratorOptions:
    """The generator: ``kind`` (``"mlp"``, ``"linear"`` or a class with the same constructor)
    and its keyword ``options`` (``width``, ``depth``, ``activation``)."""

    kind: str | type = "mlp"
    options: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.kind, str) and self.kind not in GENERATORS:
            raise ValueError(
                f"`generator={self.kind!r}` is unknown; choose one of {sorted(GENERATORS)} or pass a class."
            )
        if not isinstance(self.kind, (str, type)):
            raise TypeError(f"`generator` must be a name or a class, got {self.kind!r}.")
        if not isinstance(self.options, Mapping):
            raise TypeError(f"`generator_options` must be a dict of keyword options, got {self.options!r}.")
        object.__setattr__(self, "options", dict(self.options))

    @property
    def cls(self) -> type:
        """The generator class."""
        return GENERATORS.get(self.kind, self.kind) if isinstance(self.kind, str) else self.kind

    @property
    def name(self) -> str:
        return self.kind if isinstance(self.kind, str) else self.kind.__name__

    def build(self, problem: Problem, domains, output_scale, key):
        """The generator for ``problem`` over ``domains`` (one compiled program per shape)."""
        objective = problem.objective
        return make_generator_compiled(
            self.kind,
            problem.weights.num_weights,
            encoded_width(domains),
            problem.prior.noise_dim(objective.num_params),
            objective.num_params,
            key=key,
            output_scale=output_scale,
            dtype=objective.init_params.dtype,
            **self.options,
        )


@dataclass(frozen=True)
class TrainingOptions:
    """How the generator is trained: the optax ``optimizer`` (None: Adam with warm-up and
    cosine decay over the run), ``batch_size`` draws per step, ``mode`` (``"criterion"`` or
    ``"supervised"`` on ``num_targets`` exact optimisers), ``chunk_size`` steps per compiled
    chunk, ``on_nonfinite`` (``"stop"`` or ``"skip"``), ``data_batch_size`` rows per step
    (criterion only) and ``cv_folds`` (train for K-fold CV by weight deletion)."""

    optimizer: optax.GradientTransformation | None = None
    batch_size: int = 256
    mode: str = "criterion"
    num_targets: int = 4096
    chunk_size: int = 500
    on_nonfinite: str = "stop"
    data_batch_size: int | None = None
    cv_folds: int | None = None

    def __post_init__(self):
        if self.optimizer is not None and not isinstance(self.optimizer, optax.GradientTransformation):
            raise TypeError(
                f"`optimizer` must be an optax GradientTransformation (e.g. optax.adam(1e-3)), got {self.optimizer!r}."
            )
        if self.mode not in MODES:
            raise ValueError(f"`mode={self.mode!r}` is unknown; choose 'criterion' or 'supervised'.")
        if self.on_nonfinite not in ("stop", "skip"):
            raise ValueError(f"`on_nonfinite={self.on_nonfinite!r}` is unknown; choose 'stop' or 'skip'.")
        for name in ("batch_size", "num_targets", "chunk_size"):
            object.__setattr__(self, name, positive_int(getattr(self, name), name))
        object.__setattr__(self, "data_batch_size", _optional_positive(self.data_batch_size, "data_batch_size"))
        if self.data_batch_size is not None and self.mode != "criterion":
            raise ValueError("`data_batch_size` applies to mode='criterion' only (supervised mode uses no data).")
        if self.cv_folds is not None:
            if positive_int(self.cv_folds, "cv_folds") < 2:
                raise ValueError(f"`cv_folds` must be an integer ≥ 2 (the number of CV folds), got {self.cv_folds!r}.")
            if self.mode != "criterion":
                raise ValueError(
                    "`cv_folds` applies to mode='criterion' only: supervised mode regresses on exact optimisers "
                    "of full-data weights and never sees deleted folds."
                )
            object.__setattr__(self, "cv_folds", int(self.cv_folds))

    def training_problem(self, problem: Problem) -> Problem:
        """The problem training draws from: with ``cv_folds``, its weights delete one fold of
        rows in half the draws (:func:`wbbgen.weights.with_fold_deletion`)."""
        if self.cv_folds is None:
            return problem
        if self.cv_folds > problem.weights.num_weights:
            raise ValueError(
                f"`cv_folds={self.cv_folds}` exceeds the {problem.weights.num_weights} weights of a draw "
                "(one per observation, or per block); use at most that many folds."
            )
        masks = trained_fold_masks(problem.weights.num_weights, self.cv_folds)
        return problem._replace(weights=with_fold_deletion(problem.weights, masks, CV_DELETION_RATE))

    def trainer(self, problem, domains, generator, optimizer, targets=None, data_batch_size=None, mesh=None) -> Trainer:
        """The :class:`~wbbgen.training.Trainer` of this loss: the criterion on
        :meth:`training_problem` (``data_batch_size`` rows per step), or supervised regression
        onto ``targets`` (:func:`wbbgen.training.supervised_targets`)."""
        if self.mode == "supervised" and targets is not None:
            loss = supervised(targets, batch_size=self.batch_size, mesh=mesh)
        else:
            loss = criterion(
                self.training_problem(problem), domains, batch_size=self.batch_size,
                data_batch_size=data_batch_size, mesh=mesh,
            )  # fmt: skip
        return trainer(loss, optimizer, generator, on_nonfinite=self.on_nonfinite)

    def optimizer_for(self, num_steps: int) -> optax.GradientTransformation:
        """The optimizer of a run of ``num_steps`` steps."""
        return self.optimizer or default_optimizer(num_steps)


@dataclass(frozen=True)
class PilotOptions:
    """The pilot exact solves: ``num_values`` hyperparameter values (at least 2m + 2),
    ``num_samples`` draws each (None: the fidelity check's, or 64), each solve capped at
    ``max_steps`` iterations (None: the solver's default)."""

    num_values: int = 12
    num_samples: int | None = None
    max_steps: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "num_values", positive_int(self.num_values, "num_pilot"))
        object.__setattr__(self, "num_samples", _optional_positive(self.num_samples, "num_pilot_samples"))
        object.__setattr__(self, "max_steps", _optional_positive(self.max_steps, "pilot_max_steps"))


@dataclass(frozen=True)
class CheckOptions:
    """The closing fidelity check (``fidelity_samples`` draws per checked value; 0 skips it)
    and the cost model's ``plan`` (number of hyperparameter values, draws per value)."""

    fidelity_samples: int = 64
    plan: tuple[int, int] = (50, 1000)

    def __post_init__(self):
        s = self.fidelity_samples
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"`fidelity_samples` must be an integer ≥ 0, got {s!r}.")
        object.__setattr__(self, "fidelity_samples", int(s))
        plan = self.plan
        if (
            not isinstance(plan, (tuple, list))
            or len(plan) != 2
            or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x <= 0 for x in plan)
        ):
            raise ValueError(f"`plan` must be (number of values, draws per value), two positive ints; got {plan!r}.")
        object.__setattr__(self, "plan", (int(plan[0]), int(plan[1])))


class Options(NamedTuple):
    """The option groups of an :class:`AmortizedWBB` (this module)."""

    generator: GeneratorOptions
    training: TrainingOptions
    pilot: PilotOptions
    check: CheckOptions

    def config(self, problem: Problem, domains, num_steps: int, static_args=()) -> dict:
        """The settings a run records (``result.config``, InferenceData attrs; ``static_args``
        comma-joined, recorded when set)."""
        t = self.training
        return {
            "method": f"amortized ({t.mode})",
            "weights": problem.weights.name,
            "prior_weight": problem.prior.name,
            "generator": self.generator.name,
            "generator_options": repr(self.generator.options),
            "optimizer": "default (adam, warmup-cosine, 3e-3)" if t.optimizer is None else repr(t.optimizer),
            "batch_size": t.batch_size,
            "num_steps": num_steps,
            "hyper_support": repr({d.name: (d.low, d.high) for d in domains}),
            "model": problem.objective.signature["model"],
        } | {
            k: v
            for k, v in (
                ("cv_folds", t.cv_folds),
                ("pilot_max_steps", self.pilot.max_steps),
                ("static_args", ",".join(static_args) or None),
            )
            if v is not None
        }


# AmortizedWBB's keyword -> (option group, field): each stays readable as an attribute.
_FORWARDED = {
    "generator": ("generator", "kind"),
    "generator_options": ("generator", "options"),
    "optimizer": ("training", "optimizer"),
    "batch_size": ("training", "batch_size"),
    "mode": ("training", "mode"),
    "num_targets": ("training", "num_targets"),
    "chunk_size": ("training", "chunk_size"),
    "on_nonfinite": ("training", "on_nonfinite"),
    "data_batch_size": ("training", "data_batch_size"),
    "cv_folds": ("training", "cv_folds"),
    "num_pilot": ("pilot", "num_values"),
    "num_pilot_samples": ("pilot", "num_samples"),
    "pilot_max_steps": ("pilot", "max_steps"),
    "fidelity_samples": ("check", "fidelity_samples"),
    "plan": ("check", "plan"),
}


def forward_options(cls):
    """Give ``cls`` (whose instances hold ``options: Options``) a read-only attribute per
    option keyword of :class:`~wbbgen.AmortizedWBB` (``infer.batch_size`` is
    ``infer.options.training.batch_size``)."""
    for name, (group, attr) in _FORWARDED.items():
        getter = lambda self, g=group, a=attr: getattr(getattr(self.options, g), a)  # noqa: E731
        getter.__doc__ = f"The ``{name}`` keyword (read-only): ``options.{group}.{attr}``."
        setattr(cls, name, property(getter))
    return cls


def check_num_weights(problem: Problem, limit: int = MAX_NUM_WEIGHTS) -> None:
    """Refuse more than ``limit`` weights per draw: the generator's first layer would hold
    width × that many parameters (per-observation weights of large data need block weights)."""
    n = problem.weights.num_weights
    if n > limit:
        raise ValueError(
            f"the weight scheme gives the generator {n} weights per draw (one per observation), so its "
            f"first layer alone would hold width × {n} parameters. Use block weights for data this large: "
            "weights='block' (1000 shuffled blocks) or weights=lambda n: wbbgen.weights.block(n, S, rng_key=key)."
        )
