"""`AmortizedWBB`: train a generator once, then draw WBB posteriors at any λ in milliseconds.

A thin NumPyro-style class over :mod:`wbbgen.train`: it stores configuration only;
:meth:`AmortizedWBB.run` returns a :class:`WBBRunResult` and every later call takes it.

Example:
    >>> infer = AmortizedWBB(model, hyper={"lam": dist.LogUniform(1e-2, 1e3)})
    >>> result = infer.run(jax.random.key(0), X, y, num_steps=5000)
    >>> samples = infer.get_samples(jax.random.key(1), result, hyper={"lam": grid}, num_samples=1000)
    >>> idata = infer.to_inference_data(jax.random.key(2), result, hyper={"lam": grid})
    >>> idata.posterior["beta"].sel(lam=1.0, method="nearest")
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from wbbgen import sharding as _sharding
from wbbgen import train as _train
from wbbgen._checks import as_key, positive_int
from wbbgen.cost import CostEstimate, estimate_cost, format_cost
from wbbgen.exact import draws_per_solve, exact_method, solve_batch, solve_path_chunked
from wbbgen.generator import OutputScale, make_generator_compiled
from wbbgen.hyper import (
    HyperDomain,
    check_grid,
    decode,
    encode,
    encoded_width,
    grid_product,
    make_domains,
    spread_values,
)
from wbbgen.minibatch import check_minibatch, row_mask
from wbbgen.problem import Problem, check_differentiable, draws, generate, make_problem, objective_stats
from wbbgen.samples import WBBSamples
from wbbgen.weights import CV_DELETION_RATE, trained_fold_masks, with_fold_deletion

__all__ = ["AmortizedWBB", "WBBRunResult"]

logger = logging.getLogger("wbbgen")

#: Above this many weights per draw (per-observation weights of a large data set) the
#: generator's first layer alone would hold width × n parameters: block weights are required.
MAX_NUM_WEIGHTS = 200_000


class WBBRunResult(NamedTuple):
    """What :meth:`AmortizedWBB.run` returns: everything needed to sample later.

    Attributes:
        generator: the trained equinox generator (the last finite parameters).
        losses: training loss per step, ``(num_steps,)`` (L/n; float32 rounding makes it
            useless for judging sub-percent convergence -- see ``fidelity``).
        fidelity: generator vs exact WBB on identical draws at 5 λ values
            (:func:`wbbgen.train.fidelity`), or None when ``fidelity_samples=0``.
        diagnostics: timings (pilot, training incl. compilation, fidelity), skipped and
            first non-finite step.
        problem: the objective, weight scheme and prior scheme (holds the data).
        domains: the hyperparameters' training distributions and encodings.
        model_args, model_kwargs: the data arguments the model was trained on.
        config: the settings of the run (recorded in InferenceData attrs).
        cost: the cost model's prediction of exact WBB vs this run for the ``plan``
            (:class:`wbbgen.cost.CostEstimate`: ``cheaper``, ``crossover_pairs``, ...), made
            after the first training chunk; None for a resumed run and when the pilot is
            capped (``pilot_max_steps``) or skipped (``init_generator``), since its timing
            of exact solves is what the model extrapolates.
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
        generator: ``"mlp"`` (default), ``"linear"`` (linear in the weights) or a class.
        generator_options: passed to the generator (``width``, ``depth``, ``activation``).
        optimizer: any optax ``GradientTransformation``; default Adam 3e-3 with warm-up and
            cosine decay over ``num_steps``.
        batch_size: (w, λ, ξ) draws per training step.
        mode: ``"criterion"`` (minimise the weighted objective) or ``"supervised"``
            (regress onto ``num_targets`` exact solutions).
        num_targets: exact solutions regressed on in supervised mode.
        num_pilot: hyperparameter values of the pilot exact solves that set the output scale.
        chunk_size: training steps per compiled ``lax.scan`` chunk; the progress bar,
            non-finite checks and checkpoints happen between chunks.
        fidelity_samples: draws per λ for the closing fidelity check (0 skips it).
        on_nonfinite: ``"stop"`` (raise with the last finite generator) or ``"skip"``.
        obs_plate: the plate that indexes observations, when an observed site sits in several.
        data_batch_size: rows of data per training step (criterion mode): each draw's
            objective is the unbiased estimate from that many rows drawn with replacement
            (:mod:`wbbgen.minibatch`), so a step costs O(data_batch_size), not O(n). None
            (default) uses every row. For large n combine with ``weights="block"``.
        devices: train data-parallel over several devices (:mod:`wbbgen.sharding`): None
            (default device), ``"all"``, an int, a list of devices, or a
            :class:`jax.sharding.Mesh` with axes ``("draws",)`` or ``("draws", "data")``.
        plan: ``(number of hyperparameter values, draws per value)`` you plan to evaluate;
            the cost model (``result.cost``, logged) says whether exact WBB of that plan
            would be cheaper than this run.
        num_pilot_samples: draws per pilot value (default: ``fidelity_samples``, or 64).
        pilot_max_steps: iteration cap of each pilot exact solve (default: the solver's, 100
            Newton or 1000 quasi-Newton steps). Solves stopped early still give a usable output
            scale (a standardisation); the fidelity check is never capped, and the cost model
            (which would time capped solves) is skipped.
        cv_folds: train for K-fold CV by weight deletion (:func:`wbbgen.kfold_cv`): half the
            training draws have the weights of one of ``cv_folds`` fixed folds set to zero
            (:func:`wbbgen.weights.with_fold_deletion`), so the generator learns the deleted
            weights that CV feeds it. Posterior draws are unaffected.
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
        optimizer: optax.GradientTransformation | None = None,
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
    ):
        from wbbgen.prior import prior_scheme

        self.model = model
        self.domains = make_domains(hyper)
        prior_scheme(prior_weight)  # validates the name
        if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(
                f"`optimizer` must be an optax GradientTransformation (e.g. optax.adam(1e-3)), got {optimizer!r}."
            )
        if mode not in ("criterion", "supervised"):
            raise ValueError(f"`mode={mode!r}` is unknown; choose 'criterion' or 'supervised'.")
        if on_nonfinite not in ("stop", "skip"):
            raise ValueError(f"`on_nonfinite={on_nonfinite!r}` is unknown; choose 'stop' or 'skip'.")
        self.hyper = dict(hyper)
        self.weights = weights
        self.prior_weight = prior_weight
        self.generator = generator
        self.generator_options = dict(generator_options or {})
        self.optimizer = optimizer
        self.batch_size = positive_int(batch_size, "batch_size")
        self.mode = mode
        self.num_targets = positive_int(num_targets, "num_targets")
        self.num_pilot = positive_int(num_pilot, "num_pilot")
        if (
            isinstance(fidelity_samples, bool)
            or not isinstance(fidelity_samples, (int, np.integer))
            or fidelity_samples < 0
        ):
            raise ValueError(f"`fidelity_samples` must be an integer ≥ 0, got {fidelity_samples!r}.")
        self.fidelity_samples = int(fidelity_samples)
        self.chunk_size = positive_int(chunk_size, "chunk_size")
        self.on_nonfinite = on_nonfinite
        self.obs_plate = obs_plate
        if data_batch_size is not None:
            data_batch_size = positive_int(data_batch_size, "data_batch_size")
            if mode != "criterion":
                raise ValueError("`data_batch_size` applies to mode='criterion' only (supervised mode uses no data).")
        self.data_batch_size = data_batch_size
        self.mesh = _sharding.make_mesh(devices)
        self.devices = devices
        _sharding.check_divisible(self.mesh, self.batch_size, data_batch_size)
        if (
            not isinstance(plan, (tuple, list))
            or len(plan) != 2
            or any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x <= 0 for x in plan)
        ):
            raise ValueError(f"`plan` must be (number of values, draws per value), two positive ints; got {plan!r}.")
        self.plan = (int(plan[0]), int(plan[1]))
        self.num_pilot_samples = (
            None if num_pilot_samples is None else positive_int(num_pilot_samples, "num_pilot_samples")
        )
        self.pilot_max_steps = None if pilot_max_steps is None else positive_int(pilot_max_steps, "pilot_max_steps")
        if cv_folds is not None:
            if positive_int(cv_folds, "cv_folds") < 2:
                raise ValueError(f"`cv_folds` must be an integer ≥ 2 (the number of CV folds), got {cv_folds!r}.")
            if mode != "criterion":
                raise ValueError(
                    "`cv_folds` applies to mode='criterion' only: supervised mode regresses on exact optimisers "
                    "of full-data weights and never sees deleted folds."
                )
            cv_folds = int(cv_folds)
        self.cv_folds = cv_folds

    @property
    def hyper_names(self) -> tuple[str, ...]:
        """The hyperparameter keywords, in the order of ``hyper=``."""
        return tuple(d.name for d in self.domains)

    # ----------------------------------------------------------------------------------
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
        """Train the generator on ``model(*args, **kwargs)`` over the ``hyper`` range.

        Steps: pilot exact solves (output scale), training (criterion or supervised), and a
        fidelity check against exact solves. Returns a :class:`WBBRunResult`.

        Args:
            rng_key: a JAX PRNG key.
            *args, **kwargs: the model's data arguments.
            num_steps: training steps.
            progress_bar: show a tqdm bar.
            checkpoint_dir: a folder for training checkpoints (:mod:`wbbgen.checkpoint`),
                one run per folder. Without ``resume`` it must hold no checkpoint yet.
            checkpoint_every: steps between checkpoints, rounded up to a multiple of
                ``chunk_size`` (checkpoints are written between ``lax.scan`` chunks);
                default: every chunk. A last checkpoint follows the final step.
            resume: continue from the latest checkpoint in ``checkpoint_dir``. The call
                must repeat the original one (same model, data, ``num_steps``, settings and
                ``rng_key``; a difference is named in a :class:`~wbbgen.io.MismatchError`);
                the result is then bit-identical to an uninterrupted run.
                ``diagnostics["resumed_from_step"]`` records where it started and
                ``train_s`` covers the resumed part only; the pilot solves are not
                repeated (their output scale is in the checkpoint).
            init_generator: a :class:`WBBRunResult` of the same model and settings to start
                from (warm start, e.g. a ``mode="supervised"`` run before criterion
                training): its generator, output scale included, replaces the pilot solves
                and the random initialisation; the optimizer starts fresh. Ignored when
                resuming from a checkpoint, which holds the state.
        """
        from wbbgen import checkpoint as _ckpt
        from wbbgen import io as _io

        rng_key = as_key(rng_key)
        num_steps = positive_int(num_steps, "num_steps")
        if isinstance(self.generator, str):  # named before the pilot solves, not after
            from wbbgen.generator import GENERATORS

            if self.generator not in GENERATORS:
                raise ValueError(
                    f"`generator={self.generator!r}` is unknown; choose one of {sorted(GENERATORS)} or pass a class."
                )
        saved = self._plan_checkpoints(checkpoint_dir, checkpoint_every, resume)
        problem = make_problem(
            self.model, args, kwargs, self.hyper_names, self.weights, self.prior_weight, self.obs_plate
        )
        header = None
        if checkpoint_dir is not None:
            header = _ckpt.make_header(
                problem=problem,
                args=args,
                kwargs=kwargs,
                settings=_io.describe_settings(self, problem),
                num_steps=num_steps,
                rng_key=rng_key,
            )
            if saved is not None:
                _ckpt.check_header(saved[1], header, saved[0])
        centre = [float(decode(d, 0.0)) if d.choices is None else d.choices[0] for d in self.domains]
        if saved is None:  # a resumed run was checked when it started (same model signature)
            check_differentiable(problem, centre)
        _check_num_weights(problem)
        training_problem = self._training_problem(problem)
        data_batch_size = check_minibatch(problem, self.data_batch_size, centre)
        k_pilot, k_gen, k_targets, k_train, k_fid = jax.random.split(rng_key, 5)
        data = problem.objective.data
        objective = problem.objective
        timings = {}
        optimizer = self.optimizer or _train.default_optimizer(num_steps)

        def build(output_scale):
            return self.build_generator(problem, output_scale, k_gen)

        previous = np.zeros(0, np.asarray(objective.init_params).dtype)
        exact_timing = {}
        if init_generator is not None and saved is None:
            gen, output_scale = self._warm_start(problem, init_generator, build)
            timings["warm_started"] = True
            state = _train.init(gen, optimizer)
        elif saved is None:
            t0 = time.perf_counter()
            # The cost model times one uncapped exact step; capped pilot solves cannot give it.
            output_scale = self._pilot(problem, k_pilot, exact_timing if self.pilot_max_steps is None else None)
            timings["pilot_s"] = time.perf_counter() - t0 - exact_timing.get("exact_step_s", 0.0)
            gen = build(output_scale)
            state = _train.init(gen, optimizer)
        else:
            # The template is the state a fresh run builds, with the pilot's output scale
            # (whose values come from the checkpoint: the pilot solves are not repeated).
            path, saved_header, payload = saved
            scale_like = OutputScale.identity(objective.num_params, encoded_width(self.domains), jnp.result_type(float))
            like = eqx.filter_eval_shape(lambda: _train.init(build(scale_like), optimizer))
            like = _io.conform(like, saved_header["layout"], path, "checkpoint", _io.is_output_scale)
            scale_like = _io.conform(
                scale_like, saved_header["output_scale_layout"], path, "checkpoint", lambda _: True
            )
            state, previous, output_scale = _ckpt.restore(path, saved_header, payload, like, scale_like)
            gen = build(output_scale)
        targets = None
        if self.mode == "supervised":
            t0 = time.perf_counter()
            targets = self._targets(problem, output_scale, k_targets)
            timings["targets_s"] = time.perf_counter() - t0

        params, static = eqx.partition(gen, eqx.is_inexact_array)
        step = _train.build_step(
            training_problem,
            self.domains,
            static,
            optimizer,
            batch_size=self.batch_size,
            num_steps=num_steps,
            mode=self.mode,
            on_nonfinite=self.on_nonfinite,
            targets=targets,
            data_batch_size=data_batch_size,
            row_mask=row_mask(problem) if data_batch_size is not None else None,
            mesh=self.mesh,
        )
        checkpointer = None
        if header is not None:
            header["layout"] = _io.layout(state)
            header["output_scale_layout"] = _io.layout(output_scale)
            every = _ckpt.effective_interval(checkpoint_every or self.chunk_size, self.chunk_size)
            checkpointer = _ckpt.Checkpointer(
                checkpoint_dir, every, num_steps, header, output_scale, previous, int(state.step)
            )
        train_timings: dict = {}
        cost: list = []

        def on_chunk(state, chunk_losses):
            if not cost and exact_timing:  # after the first chunk: the cost model
                steps = min(self.chunk_size, num_steps)
                per_draw_s = exact_timing["exact_step_s"] / exact_timing["exact_step_draws"]
                est = estimate_cost(
                    plan=self.plan,
                    exact_step_s=exact_timing["exact_step_s"],
                    exact_step_draws=exact_timing["exact_step_draws"],
                    pilot_s=timings["pilot_s"],
                    pilot_values=exact_timing["pilot_values"],
                    train_step_s=train_timings["chunk_s"][0] / steps,
                    batch_size=self.batch_size,
                    train_compile_s=train_timings.get("compile_s", 0.0),
                    num_steps=num_steps,
                    fidelity_s=5 * self.fidelity_samples * per_draw_s,
                )
                cost.append(est)
                logger.info(format_cost(est))
                if progress_bar:
                    tqdm.write(format_cost(est))
            if checkpointer is not None:
                checkpointer(state, chunk_losses)

        resumed_from = int(state.step) if saved is not None else None
        if bool(state.stopped) or int(state.step) >= num_steps:
            losses, seconds = np.zeros(0, previous.dtype), 0.0
        else:
            state, losses, seconds = _train.train(
                step,
                state,
                k_train,
                data,
                num_steps=num_steps,
                chunk_size=self.chunk_size,
                progress_bar=progress_bar,
                on_chunk=on_chunk,
                mesh=self.mesh,
                timings=train_timings,
            )
            timings["compile_s"] = train_timings.get("compile_s", 0.0)
        losses = np.concatenate([previous, losses]) if previous.size else losses
        timings["train_s"] = seconds
        state = _sharding.to_local(state)
        gen = eqx.combine(state.params, static)
        diagnostics = {
            **timings,
            "num_steps_run": int(state.step),
            "num_skipped": int(state.num_skipped),
            "first_nonfinite": int(state.first_nonfinite),
        }
        if checkpoint_dir is not None:
            diagnostics["resumed_from_step"] = resumed_from
        config = self._config(problem, num_steps)
        result = WBBRunResult(
            gen, losses, None, diagnostics, problem, self.domains, args, dict(kwargs), config, cost[0] if cost else None
        )
        if bool(state.stopped):
            bad = int(state.first_nonfinite)
            raise _train.NonFiniteTrainingError(
                f"training stopped at step {bad}: the loss, a gradient or an update was NaN/inf. "
                "Likely causes: a learning rate too high for this model (pass a smaller optax "
                "optimizer), a hyperparameter range where the model's log density overflows, or "
                "data on a very large scale (standardise it). `err.result` holds the generator "
                "with the last finite parameters; `on_nonfinite='skip'` skips such steps instead.",
                result,
            )
        if self.fidelity_samples:
            t0 = time.perf_counter()
            fid = _train.fidelity(
                problem,
                gen,
                self.domains,
                k_fid,
                num_samples=self.fidelity_samples,
                method=exact_method(problem),
                max_draws=draws_per_solve(problem),
            )
            diagnostics["fidelity_s"] = time.perf_counter() - t0
            result = result._replace(fidelity=fid)
        return result

    def _warm_start(self, problem: Problem, init, build):
        """The generator of ``init`` (a run of this model and settings), checked against the
        layout this run would build."""
        from wbbgen import io as _io

        if not isinstance(init, WBBRunResult):
            raise TypeError(
                f"`init_generator` must be the WBBRunResult of an earlier run(), got {type(init).__name__}."
            )
        mine, theirs = problem.objective.signature["model"], init.problem.objective.signature["model"]
        support = lambda domains: [(d.name, d.low, d.high, d.log_scale, d.choices) for d in domains]  # noqa: E731
        if mine != theirs or support(init.domains) != support(self.domains):
            raise ValueError(
                f"`init_generator` was trained for model {theirs!r} over {support(init.domains)} (name, low, high, "
                f"log scale, choices); this run is for {mine!r} over {support(self.domains)}. A generator reads "
                "λ relative to its training range: warm-start from a run of the same model and `hyper`."
            )
        leaves = jax.tree_util.tree_leaves(init.generator, is_leaf=lambda x: isinstance(x, OutputScale))
        scales = [x for x in leaves if isinstance(x, OutputScale)]
        if not scales:
            raise ValueError("`init_generator`'s generator holds no OutputScale; it was not built by AmortizedWBB.run.")
        scale = scales[0]
        like = eqx.filter_eval_shape(lambda: build(scale))
        mine, theirs = _io.layout(like), _io.layout(init.generator)
        if mine != theirs or init.problem.weights.num_weights != problem.weights.num_weights:
            diff = next((f"{a} vs {b}" for a, b in zip(theirs, mine) if a != b), f"{len(theirs)} vs {len(mine)} arrays")
            raise ValueError(
                "`init_generator` holds a generator of another shape than this run builds (first difference, "
                f"given vs expected: {diff}); warm-start from a run with the same data, generator and "
                "generator_options."
            )
        return jax.tree_util.tree_map(lambda x: x.copy() if eqx.is_array(x) else x, init.generator), scale

    def _training_problem(self, problem: Problem) -> Problem:
        """The problem training draws from: with ``cv_folds``, its weights delete a fold of
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

    def build_generator(self, problem: Problem, output_scale, key):
        """The generator :meth:`run` trains; also, traced abstractly, the template that a
        checkpoint (:mod:`wbbgen.checkpoint`) or a saved generator (:func:`wbbgen.io.load`)
        is read into, so the three cannot drift apart."""
        objective = problem.objective
        return make_generator_compiled(
            self.generator,
            problem.weights.num_weights,
            encoded_width(self.domains),
            problem.prior.noise_dim(objective.num_params),
            objective.num_params,
            key=key,
            output_scale=output_scale,
            dtype=objective.init_params.dtype,
            **self.generator_options,
        )

    def _plan_checkpoints(self, checkpoint_dir, checkpoint_every, resume):
        """Validate the checkpoint arguments before any work; on ``resume`` read and verify
        the latest checkpoint: ``(path, header, payload)``, else None."""
        from wbbgen import checkpoint as _ckpt

        if not isinstance(resume, (bool, np.bool_)):
            raise TypeError(f"`resume` must be True or False, got {resume!r}.")
        if checkpoint_every is not None:
            positive_int(checkpoint_every, "checkpoint_every")
            if checkpoint_dir is None:
                raise ValueError("`checkpoint_every` needs `checkpoint_dir=`, the folder to write checkpoints to.")
        if checkpoint_dir is None:
            if resume:
                raise ValueError("`resume=True` needs `checkpoint_dir=`, the folder holding the checkpoints.")
            return None
        directory = os.fspath(checkpoint_dir)
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise NotADirectoryError(f"`checkpoint_dir={directory!r}` is a file, not a folder.")
        latest = _ckpt.latest_checkpoint(directory)
        if not resume:
            if latest is not None:
                raise FileExistsError(
                    f"`checkpoint_dir={directory!r}` already holds a checkpoint ({os.path.basename(latest)}); "
                    "pass resume=True to continue that run, or use an empty folder for a new one."
                )
            os.makedirs(directory, exist_ok=True)
            _ckpt.remove_stale_temporaries(directory)
            return None
        if latest is None:
            raise FileNotFoundError(
                f"`resume=True` but `checkpoint_dir={directory!r}` holds no checkpoint (checkpoint-<step>.wbb); "
                "start the run with resume=False."
            )
        _ckpt.remove_stale_temporaries(directory)
        header, payload = _ckpt.read_checkpoint(latest)
        return latest, header, payload

    def _pilot(self, problem: Problem, rng_key, timing: dict | None = None):
        """Exact solves at ``num_pilot`` hyperparameter values spread over the support.

        With ``timing`` (a dict), one more warm λ step of the path is timed for the cost
        model: ``exact_step_s`` (seconds), ``exact_step_draws``, ``pilot_values``."""
        P = max(self.num_pilot, 2 * len(self.domains) + 2)
        k_z, k_solve = jax.random.split(rng_key)
        values = spread_values(self.domains, P, k_z)
        # As many draws per value as the closing fidelity check uses: both then share one
        # compiled per-λ solve (the path step is compiled per problem and draw count).
        S = self.num_pilot_samples or self.fidelity_samples or 64
        method = exact_method(problem)
        chunk = draws_per_solve(problem)
        thetas, info, v, pdraw = solve_path_chunked(
            problem, k_solve, values, S, max_draws=chunk, method=method, max_steps=self.pilot_max_steps
        )
        if timing is not None:  # one warm step of the compiled solve (a chunk's draws)
            k = min(chunk, S)
            sub = jax.tree_util.tree_map(lambda x: x[:, :k], pdraw)
            step = _time_path_step(problem, thetas[:, :k], v[:k], sub, values, method, self.pilot_max_steps)
            timing.update(step, pilot_values=P)
        thetas = np.asarray(thetas)
        finite = np.all(np.isfinite(thetas), -1)
        ok = np.asarray(info.converged) & finite
        # Where no draw of a value converged (large models whose quasi-Newton solves stop at
        # max_steps, e.g. neural networks), its finite draws still give a usable centre and
        # spread for the output scale: it is only a standardisation.
        ok = np.where(ok.any(1, keepdims=True), ok, finite)
        if not ok.any(1).all():
            raise FloatingPointError(
                "every pilot exact solve gave non-finite parameters at some hyperparameter values; check that the "
                "model's log density is finite over the whole `hyper` range."
            )
        thetas = np.where(ok[..., None], thetas, np.nan)
        thetas = np.where(np.isnan(thetas), np.nanmean(thetas, axis=1, keepdims=True), thetas)
        return _train.fit_output_scale(thetas, np.asarray(encode(self.domains, jnp.asarray(values))))

    def _targets(self, problem: Problem, output_scale, rng_key):
        """Exact optimisers of ``num_targets`` random (w, λ, ξ) draws (supervised mode)."""
        data = problem.objective.data

        @jax.jit
        def make(rng_key, data):
            batch = _train.sample_batch(problem, self.domains, rng_key, self.num_targets, data)
            theta0 = jax.vmap(output_scale.location)(batch.z)
            theta, info = solve_batch(problem, theta0, batch.v, batch.draw, batch.values, data)
            return batch._replace(target=theta), info.converged

        batch, ok = make(rng_key, data)
        ok = np.asarray(ok)
        if ok.mean() < 0.9:
            raise FloatingPointError(
                f"only {ok.mean():.0%} of the supervised targets converged; use mode='criterion' "
                "or narrow the `hyper` range."
            )
        idx = np.flatnonzero(ok)
        return jax.tree_util.tree_map(lambda x: x[idx], batch)

    def _config(self, problem: Problem, num_steps: int) -> dict:
        return {
            "method": f"amortized ({self.mode})",
            "weights": problem.weights.name,
            "prior_weight": problem.prior.name,
            "generator": self.generator if isinstance(self.generator, str) else self.generator.__name__,
            "generator_options": repr(self.generator_options),
            "optimizer": "default (adam, warmup-cosine, 3e-3)" if self.optimizer is None else repr(self.optimizer),
            "batch_size": self.batch_size,
            "num_steps": num_steps,
            "hyper_support": repr({d.name: (d.low, d.high) for d in self.domains}),
            "model": problem.objective.signature["model"],
        } | {k: v for k, v in (("cv_folds", self.cv_folds), ("pilot_max_steps", self.pilot_max_steps)) if v is not None}

    # ----------------------------------------------------------------------------------
    def check_result(self, result):
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

    def get_samples(self, rng_key, result: WBBRunResult, *, hyper: Mapping, num_samples: int = 1000) -> WBBSamples:
        """Draws from the trained generator on a grid: ``samples[site]`` has shape
        ``(len(grid), num_samples, *site_shape)`` (one axis per hyperparameter).

        The same ``rng_key`` as :func:`wbbgen.exact_wbb` gives the same weights and prior
        draws, so the two can be compared draw by draw. Values outside the training support
        raise an :class:`~wbbgen.hyper.ExtrapolationWarning`. The per-draw objective value
        and gradient norm (``samples.stats``, InferenceData ``sample_stats``) are computed on
        first access, not here: they cost more than the draws.
        """
        rng_key = as_key(rng_key)
        self.check_result(result)
        num_samples = positive_int(num_samples, "num_samples")
        grids, mesh = grid_product(result.domains, hyper)
        check_grid(result.domains, grids, "get_samples", stacklevel=3)
        problem = result.problem
        values = jnp.asarray(mesh.reshape(-1, len(grids)), problem.objective.init_params.dtype)
        t0 = time.perf_counter()
        thetas = _generate(problem, result.domains, result.generator, rng_key, values, num_samples)
        elapsed = time.perf_counter() - t0
        attrs = {**result.config, "wall_time_s": elapsed}
        from wbbgen.exact import samples_from_thetas

        samples = samples_from_thetas(problem, thetas, values, grids, {}, attrs)
        shape = tuple(len(g) for g in grids.values()) + (num_samples,)

        def stats():
            loss, grad_norm = _draw_stats(problem, thetas, rng_key, values)
            return {"loss": np.asarray(loss).reshape(shape), "grad_norm": np.asarray(grad_norm).reshape(shape)}

        return WBBSamples(
            dict(samples), samples.hyper, stats, samples.attrs, samples._log_likelihood, samples._observed
        )

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
        """Evaluate a criterion over a grid and choose (:func:`wbbgen.tuning.tune`): returns a
        :class:`~wbbgen.tuning.TuneResult` with ``best``, ``best_1se``, ``curve`` and ``plot()``.

        Example:
            >>> tuned = infer.tune(key, result, criterion=wbbgen.heldout_log_density(X_val, y_val),
            ...                    hyper={"lam": grid})
        """
        from wbbgen.tuning import tune

        return tune(self, rng_key, result, criterion=criterion, hyper=hyper, num_samples=num_samples, prefer=prefer)

    def to_inference_data(
        self, rng_key, result: WBBRunResult, *, hyper: Mapping, num_samples: int = 1000, log_likelihood: bool = True
    ):
        """:meth:`get_samples` as ArviZ InferenceData: posterior dims (chain, draw, <hyper>,
        ...), ``log_likelihood`` per observation (K × S × n numbers; ``log_likelihood=False``
        leaves it out), ``observed_data``, ``sample_stats`` (objective value and gradient
        norm of each draw), settings in ``attrs``.

        Example:
            >>> idata = infer.to_inference_data(jax.random.key(2), result, hyper={"lam": grid})
            >>> idata.posterior["beta"].sel(lam=1.0, method="nearest").mean(("chain", "draw"))
        """
        samples = self.get_samples(rng_key, result, hyper=hyper, num_samples=num_samples)
        return samples.to_inference_data(log_likelihood=log_likelihood)


_generate = eqx.filter_jit(generate)  # one compilation per (K, S) shape; λ is traced


@eqx.filter_jit
def _draw_stats(problem, thetas, rng_key, values):
    """Objective value and gradient ∞-norm of each draw ``(K, S)`` (the same draws as
    :func:`_generate` with this key)."""
    data = problem.objective.data
    v, pdraw = draws(problem, rng_key, values, thetas.shape[1], data)
    return jax.vmap(
        jax.vmap(lambda th, vv, dd, x: objective_stats(problem, th, vv, dd, x, data), in_axes=(0, 0, 0, None)),
        in_axes=(0, None, 0, 0),
    )(thetas, v, pdraw, values)


def _time_path_step(problem: Problem, thetas, v, pdraw, values, method: str, max_steps=None) -> dict:
    """Wall time of one warm λ step of the exact path (already compiled by the pilot): the
    draws at the middle pilot value, warm-started from its neighbour's solutions."""
    from wbbgen.exact import _method, _path_step

    k = max(1, len(values) // 2)
    vals = jnp.asarray(values, thetas.dtype)
    draw_k = jax.tree_util.tree_map(lambda x: x[k], pdraw)
    t0 = time.perf_counter()
    out = _path_step(problem, thetas[k - 1], v, draw_k, vals[k], _method(problem, method), 1e-3, max_steps)
    jax.block_until_ready(out)
    return {"exact_step_s": time.perf_counter() - t0, "exact_step_draws": int(thetas.shape[1])}


def _check_num_weights(problem: Problem) -> None:
    n = problem.weights.num_weights
    if n > MAX_NUM_WEIGHTS:
        raise ValueError(
            f"the weight scheme gives the generator {n} weights per draw (one per observation), so its "
            f"first layer alone would hold width × {n} parameters. Use block weights for data this large: "
            "weights='block' (1000 shuffled blocks) or weights=lambda n: wbbgen.weights.block(n, S, rng_key=key)."
        )


def format_fidelity(fid: Mapping, name: str = "lam") -> str:
    """A small table of :func:`wbbgen.train.fidelity` output."""
    lines = [
        "fidelity vs exact WBB (same draws):",
        f"  {name:>10} {'sd ratio (median)':>18} {'sd ratio range':>16} {'max |mean err|/sd':>18} {'rmse/sd':>8}",
    ]
    for i, x in enumerate(np.asarray(fid["values"])[:, 0]):
        lines.append(
            f"  {x:>10.4g} {fid['sd_ratio_median'][i]:>18.3f} "
            f"{fid['sd_ratio_min'][i]:>7.2f}-{fid['sd_ratio_max'][i]:<8.2f} "
            f"{fid['mean_error_max'][i]:>18.3f} {fid['rmse_median'][i]:>8.3f}"
        )
    return "\n".join(lines)
