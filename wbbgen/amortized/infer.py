"""`AmortizedWBB`: train a generator once, then draw WBB posteriors at any λ in milliseconds.

A thin NumPyro-style class over :mod:`wbbgen.training`: it stores configuration only (the
option groups of :mod:`wbbgen.options`). As NumPyro's ``SVI``: :meth:`AmortizedWBB.init`
builds the problem, runs the pilot and returns a :class:`WBBTraining`; :meth:`~AmortizedWBB.update`
takes one step; :meth:`~AmortizedWBB.run` is init, the chunked loop of steps
(:func:`wbbgen.training.run_loop`) and the closing check, returning a :class:`WBBRunResult`
that every later call takes.

Example:
    >>> import jax, numpy as np, numpyro.distributions as dist
    >>> from wbbgen import AmortizedWBB, models
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(20, 2)); y = X @ np.ones(2)
    >>> infer = AmortizedWBB(models.ridge, hyper={"lam": dist.LogUniform(0.1, 10.0)}, num_pilot=4,
    ...                      fidelity_samples=0, batch_size=16, generator_options={"width": 8, "depth": 1})
    >>> result = infer.run(jax.random.key(0), X, y, num_steps=20, progress_bar=False)
    >>> samples = infer.get_samples(jax.random.key(1), result, hyper={"lam": [0.3, 3.0]}, num_samples=10)
    >>> samples["beta"].shape
    (2, 10, 2)
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from wbbgen import sharding
from wbbgen._checks import as_key, nonnegative_int, positive_int
from wbbgen._data import static_names
from wbbgen.amortized.result import WBBRunResult, WBBTraining
from wbbgen.amortized.resume import check_warm_start, checkpoint_callback, plan_checkpoints, restore_checkpoint
from wbbgen.amortized.sampling import generator_samples
from wbbgen.exact import draws_per_solve, exact_method
from wbbgen.hyper import check_grid, decode, grid_product, make_domains
from wbbgen.minibatch import check_minibatch
from wbbgen.options import (
    CheckOptions,
    GeneratorOptions,
    Options,
    PilotOptions,
    TrainingOptions,
    check_num_weights,
    forward_options,
)
from wbbgen.prior import prior_scheme
from wbbgen.problem import Problem, check_differentiable, make_problem
from wbbgen.samples import WBBSamples
from wbbgen.training import (
    CostProbe,
    LoopResult,
    NonFiniteTrainingError,
    ProgressBar,
    TrainInfo,
    fidelity,
    near_flagged,
    pilot,
    run_loop,
    stop_when,
    supervised_targets,
    warn_fidelity,
    warn_near_flagged,
)
from wbbgen.tuning import tune as _tune

__all__ = ["AmortizedWBB"]

logger = logging.getLogger("wbbgen")

#: Newton steps per draw that get_samples takes by default at the values where the fidelity
#: check failed (and nowhere else). Measured on breast cancer after 3000 training steps: the
#: generator alone has median sd ratio 0.78 at λ = 0.01; one step 0.93, two steps 0.99 with
#: every coordinate within 5 % and mean errors ≤ 0.03 sd (docs/benchmarks.md).
AUTO_REFINE = 2
#: Largest Newton decrement (posterior sd) of a refined draw that is taken as converged.
REFINED_DECREMENT_MAX = 0.1


class AmortizedWBB:
    """Amortised weighted Bayesian bootstrap over hyperparameters.

    Args:
        model: a NumPyro model whose hyperparameters are keyword arguments, or a
            :class:`~wbbgen.FunctionModel`.
        hyper: ``{name: distribution}``: the range the generator is trained over, e.g.
            ``{"lam": dist.LogUniform(1e-2, 1e3)}``.
        weights: observation weights: ``"exponential"`` (default), ``"dirichlet"``,
            ``"multinomial"``, ``"double_bootstrap"``, ``"block"`` (min(n, 1000) shuffled blocks),
            a :class:`~wbbgen.weights.WeightScheme`, or a function ``n -> WeightScheme``
            such as ``lambda n: wbbgen.weights.block(n, 50, rng_key=key)``.
        prior_weight: ``"anchored"`` (default), ``"random"`` or ``"fixed"`` (:mod:`wbbgen.prior`).
        generator, generator_options: the generator (``"mlp"`` (default), ``"linear"`` or a
            class) and its options (``width``, ``depth``, ``activation``):
            :class:`~wbbgen.options.GeneratorOptions`.
        optimizer, batch_size, mode, num_targets, chunk_size, on_nonfinite, data_batch_size, cv_folds: how
            it is trained (:class:`~wbbgen.options.TrainingOptions`): any optax optimizer (default Adam 3e-3,
            warm-up and cosine decay over ``num_steps``), (w, λ, ξ) draws per step, ``"criterion"`` (minimise the
            weighted objective) or ``"supervised"`` (regress onto ``num_targets`` exact solutions), steps per
            compiled chunk (progress, non-finite checks and checkpoints happen between chunks), ``"stop"`` or
            ``"skip"`` on a non-finite step, rows of data per step (the unbiased minibatch objective of
            :mod:`wbbgen.minibatch`; combine with ``weights="block"`` for large n), and K-fold CV by weight deletion
            (half the training draws delete one of ``cv_folds`` fixed folds, :func:`wbbgen.kfold_cv`).
        num_pilot, num_pilot_samples, pilot_max_steps: the pilot exact solves that set the
            output scale (:class:`~wbbgen.options.PilotOptions`): how many hyperparameter
            values, draws per value (default: ``fidelity_samples``, or 64), and an iteration cap
            per solve (capped solves still standardise; the cost model is then skipped).
        fidelity_samples, plan: draws per value of the closing fidelity check (0 skips it), and
            ``(values, draws per value)`` you plan to evaluate, for the cost model
            (``result.cost``): :class:`~wbbgen.options.CheckOptions`.
        obs_plate: the plate that indexes observations, when an observed site sits in several.
        static_args: data arguments the model needs as constants (``J = int(g.max()) + 1``).
        devices: train data-parallel (:mod:`wbbgen.sharding`): None (default device), ``"all"``,
            an int, a list of devices, or a :class:`jax.sharding.Mesh` with axes ``("draws",)``
            or ``("draws", "data")``.

    The option groups are ``infer.options``; every keyword above is also an attribute.
    """

    def __init__(
        self,
        model,
        *,
        hyper: Mapping,
        weights="exponential",
        prior_weight: str = "anchored",
        generator="mlp",
        generator_options: Mapping | None = None,
        optimizer=None,
        batch_size: int = 256,
        mode: str = "criterion",
        num_targets: int = 4096,
        num_pilot: int = 12,
        fidelity_samples: int = 64,
        chunk_size: int = 500,
        on_nonfinite: str = "stop",
        obs_plate: str | None = None,
        data_batch_size: int | None = None,
        devices=None,
        plan: tuple[int, int] = (50, 1000),
        num_pilot_samples: int | None = None,
        pilot_max_steps: int | None = None,
        cv_folds: int | None = None,
        static_args=(),
    ):
        self.model = model
        self.domains = make_domains(hyper)
        self.hyper = dict(hyper)
        prior_scheme(prior_weight)  # validates the name
        self.weights, self.prior_weight, self.obs_plate = weights, prior_weight, obs_plate
        self.static_args = static_names(static_args)  # names, checked against the data by run()
        self.options = Options(
            GeneratorOptions(generator, generator_options or {}),
            TrainingOptions(
                optimizer, batch_size, mode, num_targets, chunk_size, on_nonfinite, data_batch_size, cv_folds
            ),
            PilotOptions(num_pilot, num_pilot_samples, pilot_max_steps),
            CheckOptions(fidelity_samples, plan),
        )
        self.devices = devices
        self.mesh = sharding.make_mesh(devices)
        sharding.check_divisible(self.mesh, self.batch_size, self.data_batch_size)

    @property
    def hyper_names(self) -> tuple[str, ...]:
        """The hyperparameter keywords, in the order of ``hyper=``."""
        return tuple(d.name for d in self.domains)

    def run(
        self,
        rng_key,
        *args,
        num_steps: int = 10_000,
        progress_bar: bool = True,
        checkpoint_dir=None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        init_generator: WBBRunResult | None = None,
        **kwargs,
    ) -> WBBRunResult:
        """Train the generator on ``model(*args, **kwargs)`` over the ``hyper`` range:
        :meth:`init` (pilot exact solves, or a warm start, or a checkpoint), the chunked
        training loop, then the fidelity check against exact solves.

        Args:
            rng_key: a JAX PRNG key.
            *args, **kwargs: the model's data arguments.
            num_steps: training steps.
            progress_bar: show a tqdm bar.
            checkpoint_dir: a folder for training checkpoints (:mod:`wbbgen.persist.checkpoint`),
                one run per folder. Without ``resume`` it must hold no checkpoint yet.
            checkpoint_every: steps between checkpoints, rounded up to a multiple of
                ``chunk_size``; default: every chunk. A last checkpoint follows the final step.
            resume: continue from the latest checkpoint in ``checkpoint_dir``. The call must
                repeat the original one (same model, data, ``num_steps``, settings and
                ``rng_key``; a difference is named in a :class:`~wbbgen.MismatchError`); the result
                is then bit-identical to an uninterrupted run (``diagnostics["resumed_from_step"]``).
            init_generator: a :class:`WBBRunResult` of the same model and settings to start
                from (warm start): its generator replaces the pilot solves and the random
                initialisation; the optimizer starts fresh. Ignored when resuming.
        """
        rng_key, num_steps = as_key(rng_key), positive_int(num_steps, "num_steps")
        saved = plan_checkpoints(checkpoint_dir, checkpoint_every, resume)
        training = self.init(
            rng_key, *args, num_steps=num_steps, init_generator=init_generator, checkpoint=saved, **kwargs
        )
        step = int(training.state.step)
        cost = CostProbe(training.pilot, self.plan, self.batch_size, num_steps, self.fidelity_samples, progress_bar)
        callbacks = [ProgressBar(num_steps, step, disable=not progress_bar), stop_when(lambda s: s.stopped), cost]
        if checkpoint_dir is not None:
            callbacks.append(checkpoint_callback(self, training, rng_key, checkpoint_dir, checkpoint_every))
        loop = run_loop(
            training.trainer.step, training.state, training.rng_key, training.data, num_steps=num_steps,
            chunk_size=self.chunk_size, callbacks=callbacks, mesh=self.mesh,
        )  # fmt: skip
        result = self._result(training, loop, cost.estimate)
        if checkpoint_dir is not None:
            result.diagnostics["resumed_from_step"] = step if saved is not None else None
        return self._check(result, jax.random.split(rng_key, 5)[4], bool(loop.state.stopped))

    def init(
        self, rng_key, *args, num_steps: int = 10_000, init_generator=None, checkpoint=None, **kwargs
    ) -> WBBTraining:
        """Build the problem of ``model(*args, **kwargs)`` and the initial training state: the
        pilot exact solves fit the output scale (or ``init_generator`` gives a generator, or
        ``checkpoint`` — ``(path, header, payload)`` of :func:`~wbbgen.persist.checkpoint.read_checkpoint`
        — a state to resume), the generator is built and the trainer made.
        Returns a :class:`WBBTraining` for :meth:`update` or :func:`wbbgen.training.run_loop`."""
        rng_key, num_steps = as_key(rng_key), positive_int(num_steps, "num_steps")
        problem = make_problem(self.model, args, kwargs, self.hyper_names, self.weights, self.prior_weight,
                               self.obs_plate, static_args=self.static_args)  # fmt: skip
        centre = [float(decode(d, 0.0)) if d.choices is None else d.choices[0] for d in self.domains]
        if checkpoint is None:  # a resumed run was checked when it started
            check_differentiable(problem, centre)
        check_num_weights(problem)
        data_batch_size = check_minibatch(problem, self.data_batch_size, centre)
        k_pilot, k_gen, k_targets, k_train, _ = jax.random.split(rng_key, 5)
        optimizer = self.options.training.optimizer_for(num_steps)
        diagnostics, previous, pilot_result = {}, None, None
        if checkpoint is not None:

            def make_trainer(scale):
                gen = self.build_generator(problem, scale, k_gen)
                return self.options.training.trainer(
                    problem, self.domains, gen, optimizer, None, data_batch_size, self.mesh
                ), gen

            state, previous, output_scale = restore_checkpoint(
                self, problem, args, kwargs, num_steps, rng_key, checkpoint, make_trainer
            )
        elif init_generator is not None:
            output_scale = check_warm_start(self, problem, init_generator, WBBRunResult)
            diagnostics["warm_started"] = True
        else:
            s = self.num_pilot_samples or self.fidelity_samples or 64
            pilot_result = pilot(
                problem, self.domains, k_pilot, num_values=self.num_pilot, num_samples=s,
                max_steps=self.pilot_max_steps, time_step=self.pilot_max_steps is None,
            )  # fmt: skip
            output_scale = pilot_result.output_scale
            diagnostics.update(pilot_s=pilot_result.seconds, pilot_max_solver_steps=pilot_result.max_solver_steps)
        gen = init_generator.generator if checkpoint is None and init_generator is not None else None
        gen = self.build_generator(problem, output_scale, k_gen) if gen is None else _copy(gen)
        targets = None
        if self.mode == "supervised":
            t0 = time.perf_counter()
            targets = supervised_targets(problem, self.domains, output_scale, k_targets, self.num_targets)
            diagnostics["targets_s"] = time.perf_counter() - t0
        t = self.options.training.trainer(problem, self.domains, gen, optimizer, targets, data_batch_size, self.mesh)
        state = t.init(gen) if checkpoint is None else state
        return WBBTraining(
            state, t, k_train, problem.objective.data, problem, num_steps, output_scale, tuple(args), dict(kwargs),
            pilot_result, previous, diagnostics,
        )  # fmt: skip

    def update(self, training: WBBTraining) -> tuple[WBBTraining, TrainInfo]:
        """One training step of ``training`` (its key folded with the step count), compiled
        once per trainer: returns the advanced :class:`WBBTraining` and the step's
        :class:`~wbbgen.training.TrainInfo`."""
        key = jax.random.fold_in(training.rng_key, training.state.step)
        state, info = _jit_step(training.trainer.step)(training.state, key, training.data)
        return training._replace(state=state), info

    def build_generator(self, problem: Problem, output_scale, key):
        """The generator :meth:`run` trains (also, traced abstractly, the template that a
        checkpoint or a saved generator is read into, so the three cannot drift apart)."""
        return self.options.generator.build(problem, self.domains, output_scale, key)

    def _result(self, training: WBBTraining, loop: LoopResult, cost) -> WBBRunResult:
        """The run's result from the loop's final state (no checks)."""
        state = sharding.to_local(loop.state)
        previous = training.previous_losses
        losses = (
            loop.info.loss if loop.info is not None else np.zeros(0, np.asarray(training.output_scale.c_coef).dtype)
        )
        if previous is not None and previous.size:
            losses = np.concatenate([previous, losses])
        diagnostics = {
            **training.diagnostics,
            "train_s": loop.seconds,
            "num_steps_run": int(state.step),
            "num_skipped": int(state.num_skipped),
            "first_nonfinite": int(state.first_nonfinite),
        }
        if loop.info is not None:
            diagnostics["compile_s"] = loop.compile_s
        gen = training.trainer.generator(state)
        problem = training.problem
        return WBBRunResult(
            gen, losses, None, diagnostics, problem, self.domains, training.model_args, training.model_kwargs,
            self.options.config(problem, self.domains, training.num_steps, self.static_args), cost,
        )  # fmt: skip

    def _check(self, result: WBBRunResult, rng_key, stopped: bool) -> WBBRunResult:
        """Raise on a frozen (non-finite) run; otherwise add the fidelity check."""
        if stopped:
            bad = result.diagnostics["first_nonfinite"]
            raise NonFiniteTrainingError(
                f"training stopped at step {bad}: the loss, a gradient or an update was NaN/inf. "
                "Likely causes: a learning rate too high for this model (pass a smaller optax "
                "optimizer), a hyperparameter range where the model's log density overflows, or "
                "data on a very large scale (standardise it). `err.result` holds the generator "
                "with the last finite parameters; `on_nonfinite='skip'` skips such steps instead.",
                result,
            )
        if not self.fidelity_samples:
            return result
        t0 = time.perf_counter()
        problem = result.problem
        fid = fidelity(
            problem, result.generator, self.domains, rng_key, num_samples=self.fidelity_samples,
            method=exact_method(problem), max_draws=draws_per_solve(problem),
        )  # fmt: skip
        result.diagnostics["fidelity_s"] = time.perf_counter() - t0
        warn_fidelity(fid, self.hyper_names, stacklevel=4)
        return result._replace(fidelity=fid)

    def check_result(self, result):
        """Refuse a ``result`` that is not a :class:`WBBRunResult` of this model and ``hyper``."""
        if not isinstance(result, WBBRunResult):
            raise TypeError(f"`result` must be the WBBRunResult returned by run(), got {type(result).__name__}.")
        mine = getattr(self.model, "__qualname__", repr(self.model))
        theirs = result.problem.objective.signature["model"]
        if mine != theirs or tuple(d.name for d in result.domains) != self.hyper_names:
            raise ValueError(
                f"`result` was trained for model {theirs!r} with hyper {[d.name for d in result.domains]}, "
                f"but this AmortizedWBB wraps {mine!r} with hyper {list(self.hyper_names)}; use the "
                "AmortizedWBB that produced it."
            )

    def get_samples(
        self, rng_key, result: WBBRunResult, *, hyper: Mapping, num_samples: int = 1000, refine=None, reweight=False
    ) -> WBBSamples:
        """Draws from the trained generator on a grid: ``samples[site]`` has shape
        ``(len(grid), num_samples, *site_shape)`` (one axis per hyperparameter).

        The same ``rng_key`` as :func:`wbbgen.exact_wbb` gives the same weights and prior
        draws, so the two can be compared draw by draw. Values outside the training support
        raise an :class:`~wbbgen.hyper.ExtrapolationWarning`. The per-draw objective value
        and gradient norm (``samples.stats``, InferenceData ``sample_stats``) are computed on
        first access, not here: they cost more than the draws.

        ``refine=k`` refines each draw by at most k damped Newton (L-BFGS for large models)
        steps on its own weighted objective (:mod:`wbbgen.amortized.sampling`); its Newton
        decrement (distance to the exact WBB draw, in posterior sd) is then in
        ``samples.stats["decrement"]``. The default (``refine=None``) refines by
        ``AUTO_REFINE`` steps the values nearest to a checked value where the generator failed
        its fidelity check, and nowhere else; a :class:`~wbbgen.training.FidelityWarning` says
        so when draws there stay unconverged (or with ``refine=0``, when they are not refined).
        ``reweight=True``: :meth:`wbbgen.WBBSamples.reweight` (the posterior check's resampling).
        """
        rng_key = as_key(rng_key)
        self.check_result(result)
        num_samples = positive_int(num_samples, "num_samples")
        grids, mesh = grid_product(result.domains, hyper)
        check_grid(result.domains, grids, "get_samples", stacklevel=3)
        values = jnp.asarray(mesh.reshape(-1, len(grids)), result.problem.objective.init_params.dtype)
        near = near_flagged(result.fidelity, result.domains, np.asarray(values))
        steps, where = (AUTO_REFINE, near) if refine is None else (nonnegative_int(refine, "refine"), None)
        samples = generator_samples(result, rng_key, grids, values, num_samples, steps, where=where)
        if near.any():
            dec = samples.stats.get("decrement")
            dec = None if dec is None else dec.reshape(len(values), -1)[near]
            if dec is None or not np.all(dec <= REFINED_DECREMENT_MAX):
                warn_near_flagged(np.asarray(values)[near], len(values), self.hyper_names, dec, stacklevel=3)
        return samples.reweight(jax.random.fold_in(rng_key, 2)) if reweight else samples

    def tune(
        self,
        rng_key,
        result: WBBRunResult,
        *,
        criterion,
        hyper: Mapping,
        num_samples: int = 500,
        prefer: str = "larger",
    ):
        """Evaluate a criterion over a grid and choose (:func:`wbbgen.tuning.tune`): a
        :class:`~wbbgen.tuning.TuneResult` (``best``, ``best_1se``, ``curve``, ``plot()``).

        Example (as in the module example)::

            tuned = infer.tune(key, result, criterion=wbbgen.heldout_log_density(X_val, y_val), hyper={"lam": grid})
        """
        return _tune(self, rng_key, result, criterion=criterion, hyper=hyper, num_samples=num_samples, prefer=prefer)

    def to_inference_data(
        self,
        rng_key,
        result: WBBRunResult,
        *,
        hyper: Mapping,
        num_samples: int = 1000,
        log_likelihood: bool = True,
        refine: int | None = None,
        reweight: bool = False,
    ):
        """:meth:`get_samples` as ArviZ InferenceData: posterior dims (chain, draw, <hyper>,
        ...), ``log_likelihood`` per observation (K × S × n numbers; ``log_likelihood=False``
        leaves it out), ``observed_data``, ``sample_stats`` (objective value and gradient
        norm of each draw; with ``refine``, the Newton decrement too), settings in ``attrs``.
        """
        samples = self.get_samples(
            rng_key, result, hyper=hyper, num_samples=num_samples, refine=refine, reweight=reweight
        )
        return samples.to_inference_data(log_likelihood=log_likelihood)


forward_options(AmortizedWBB)  # every option keyword stays readable as an attribute

_STEPS = weakref.WeakKeyDictionary()


def _jit_step(step):
    """``jax.jit(step)``, one per trainer (so :meth:`AmortizedWBB.update` compiles once)."""
    if step not in _STEPS:
        _STEPS[step] = jax.jit(step)
    return _STEPS[step]


def _copy(tree):
    return jax.tree_util.tree_map(lambda x: x.copy() if eqx.is_array(x) else x, tree)
