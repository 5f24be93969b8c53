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

import os
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wbbgen import train as _train
from wbbgen._checks import as_key, positive_int
from wbbgen.exact import solve_batch, solve_path
from wbbgen.generator import OutputScale, make_generator
from wbbgen.hyper import HyperDomain, check_grid, grid_product, make_domains
from wbbgen.problem import Problem, check_differentiable, draws, make_problem, objective_stats
from wbbgen.samples import WBBSamples

__all__ = ["AmortizedWBB", "WBBRunResult"]


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


class AmortizedWBB:
    """Amortised weighted Bayesian bootstrap over hyperparameters.

    Args:
        model: a NumPyro model whose hyperparameters are keyword arguments, or a
            :class:`~wbbgen.FunctionModel`.
        hyper: ``{name: distribution}``: the range the generator is trained over, e.g.
            ``{"lam": dist.LogUniform(1e-2, 1e3)}``.
        weights: observation weights: ``"exponential"`` (default), ``"dirichlet"``,
            ``"multinomial"``, ``"double_bootstrap"``, or a function ``n -> WeightScheme``
            such as ``lambda n: wbbgen.weights.block(n, 50, rng_key=key)``.
        prior_weight: ``"anchored"`` (default), ``"random"`` or ``"fixed"`` (:mod:`wbbgen.prior`).
        generator: ``"mlp"`` (default), ``"linear"`` (linear in the weights) or a class.
        generator_options: passed to the generator (``width``, ``depth``, ``activation``).
        optimizer: any optax ``GradientTransformation``; default Adam 3e-3 with warm-up and
            cosine decay over ``num_steps``.
        batch_size: (w, λ, ξ) draws per training step.
        mode: ``"criterion"`` (minimise the weighted objective) or ``"supervised"``
            (regress onto ``num_targets`` exact solutions).
        num_pilot: hyperparameter values of the pilot exact solves that set the output scale.
        fidelity_samples: draws per λ for the closing fidelity check (0 skips it).
        on_nonfinite: ``"stop"`` (raise with the last finite generator) or ``"skip"``.
        obs_plate: the plate that indexes observations, when an observed site sits in several.
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

    @property
    def hyper_names(self) -> tuple[str, ...]:
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
        """
        from wbbgen import checkpoint as _ckpt
        from wbbgen import io as _io

        rng_key = as_key(rng_key)
        num_steps = positive_int(num_steps, "num_steps")
        if isinstance(self.generator, str):  # named before the pilot solves, not after
            from wbbgen.generator import _GENERATORS

            if self.generator not in _GENERATORS:
                raise ValueError(
                    f"`generator={self.generator!r}` is unknown; choose one of {sorted(_GENERATORS)} or pass a class."
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
        if saved is None:  # a resumed run was checked when it started (same model signature)
            centre = [float(_train._decode(d, 0.0)) if d.choices is None else d.choices[0] for d in self.domains]
            check_differentiable(problem, centre)
        k_pilot, k_gen, k_targets, k_train, k_fid = jax.random.split(rng_key, 5)
        data = problem.objective.data
        objective = problem.objective
        timings = {}
        optimizer = self.optimizer or _train.default_optimizer(num_steps)

        def build(output_scale):
            return self._build_generator(problem, output_scale, k_gen)

        previous = np.zeros(0, np.asarray(objective.init_params).dtype)
        if saved is None:
            t0 = time.perf_counter()
            output_scale = self._pilot(problem, k_pilot)
            timings["pilot_s"] = time.perf_counter() - t0
            gen = build(output_scale)
            state = _train.init(gen, optimizer)
        else:
            # The template is the state a fresh run builds, with the pilot's output scale
            # (whose values come from the checkpoint: the pilot solves are not repeated).
            path, saved_header, payload = saved
            scale_like = OutputScale.identity(
                objective.num_params, _train.encoded_width(self.domains), jnp.result_type(float)
            )
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
            problem,
            self.domains,
            static,
            optimizer,
            batch_size=self.batch_size,
            num_steps=num_steps,
            mode=self.mode,
            on_nonfinite=self.on_nonfinite,
            targets=targets,
        )
        on_chunk = None
        if header is not None:
            header["layout"] = _io.layout(state)
            header["output_scale_layout"] = _io.layout(output_scale)
            every = _ckpt.effective_interval(checkpoint_every or self.chunk_size, self.chunk_size)
            on_chunk = _ckpt.Checkpointer(
                checkpoint_dir, every, num_steps, header, output_scale, previous, int(state.step)
            )
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
            )
        losses = np.concatenate([previous, losses]) if previous.size else losses
        timings["train_s"] = seconds
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
        result = WBBRunResult(gen, losses, None, diagnostics, problem, self.domains, args, dict(kwargs), config)
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
            fid = _train.fidelity(problem, gen, self.domains, k_fid, num_samples=self.fidelity_samples)
            diagnostics["fidelity_s"] = time.perf_counter() - t0
            result = result._replace(fidelity=fid)
        return result

    def _build_generator(self, problem: Problem, output_scale, key):
        """The generator :meth:`run` trains; also, traced abstractly, the template that a
        checkpoint (:mod:`wbbgen.checkpoint`) or a saved generator (:func:`wbbgen.io.load`)
        is read into, so the three cannot drift apart."""
        objective = problem.objective
        return make_generator(
            self.generator,
            problem.weights.num_weights,
            _train.encoded_width(self.domains),
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

    def _pilot(self, problem: Problem, rng_key):
        """Exact solves at ``num_pilot`` hyperparameter values spread over the support."""
        P = max(self.num_pilot, 2 * len(self.domains) + 2)
        k_z, k_solve = jax.random.split(rng_key)
        values = _train.spread_values(self.domains, P, k_z)
        # As many draws per value as the closing fidelity check uses: both then share one
        # compiled per-λ solve (the path step is compiled per problem and draw count).
        thetas, info, _, _ = solve_path(problem, k_solve, values, self.fidelity_samples or 64)
        ok = np.asarray(info.converged) & np.all(np.isfinite(np.asarray(thetas)), -1)
        thetas = np.where(ok[..., None], np.asarray(thetas), np.nan)
        thetas = np.where(np.isnan(thetas), np.nanmean(thetas, axis=1, keepdims=True), thetas)
        if not np.all(np.isfinite(thetas)):
            raise FloatingPointError(
                "no pilot exact solve converged at some hyperparameter values; check that the "
                "model's log density is finite over the whole `hyper` range."
            )
        return _train.fit_output_scale(thetas, np.asarray(_train.encode(self.domains, jnp.asarray(values))))

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
        }

    # ----------------------------------------------------------------------------------
    def _check_result(self, result):
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
        raise an :class:`~wbbgen.hyper.ExtrapolationWarning`.
        """
        rng_key = as_key(rng_key)
        self._check_result(result)
        num_samples = positive_int(num_samples, "num_samples")
        grids, mesh = grid_product(result.domains, hyper)
        check_grid(result.domains, grids, "get_samples", stacklevel=3)
        problem = result.problem
        values = jnp.asarray(mesh.reshape(-1, len(grids)), problem.objective.init_params.dtype)
        t0 = time.perf_counter()
        thetas, loss, grad_norm = _generate(problem, result.domains, result.generator, rng_key, values, num_samples)
        elapsed = time.perf_counter() - t0
        attrs = {**result.config, "wall_time_s": elapsed}
        from wbbgen.exact import samples_from_thetas

        return samples_from_thetas(problem, thetas, values, grids, {"loss": loss, "grad_norm": grad_norm}, attrs)

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

    def to_inference_data(self, rng_key, result: WBBRunResult, *, hyper: Mapping, num_samples: int = 1000):
        """:meth:`get_samples` as ArviZ InferenceData: posterior dims (chain, draw, <hyper>,
        ...), ``log_likelihood`` per observation, ``observed_data``, ``sample_stats``
        (objective value and gradient norm of each draw), settings in ``attrs``."""
        return self.get_samples(rng_key, result, hyper=hyper, num_samples=num_samples).to_inference_data()


@eqx.filter_jit
def _generate(problem, domains, generator, rng_key, values, num_samples):
    """Generator draws ``(K, S, d)`` at ``values (K, m)`` with their objective value and
    gradient norm (one compilation per (K, S) shape; λ is traced)."""
    data = problem.objective.data
    v, pdraw = draws(problem, rng_key, values, num_samples, data)
    z = _train.encode(domains, values)
    thetas = jax.vmap(jax.vmap(generator, in_axes=(0, None, 0)), in_axes=(None, 0, 0))(v, z, pdraw.noise)
    stats = jax.vmap(
        jax.vmap(lambda th, vv, dd, x: objective_stats(problem, th, vv, dd, x, data), in_axes=(0, 0, 0, None)),
        in_axes=(0, None, 0, 0),
    )(thetas, v, pdraw, values)
    return thetas, *stats


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
