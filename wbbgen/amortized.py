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
from wbbgen.generator import make_generator
from wbbgen.hyper import HyperDomain, check_grid, grid_product, make_domains
from wbbgen.problem import Problem, draws, make_problem, objective_stats
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
        num_pilot: int = 8,
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
        if isinstance(fidelity_samples, bool) or not isinstance(fidelity_samples, (int, np.integer)) or fidelity_samples < 0:
            raise ValueError(f"`fidelity_samples` must be an integer ≥ 0, got {fidelity_samples!r}.")
        self.fidelity_samples = int(fidelity_samples)
        self.chunk_size = positive_int(chunk_size, "chunk_size")
        self.on_nonfinite = on_nonfinite
        self.obs_plate = obs_plate

    @property
    def hyper_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.domains)

    # ----------------------------------------------------------------------------------
    def run(self, rng_key, *args, num_steps: int = 10_000, progress_bar: bool = True, **kwargs) -> WBBRunResult:
        """Train the generator on ``model(*args, **kwargs)`` over the ``hyper`` range.

        Steps: pilot exact solves (output scale), training (criterion or supervised), and a
        fidelity check against exact solves. Returns a :class:`WBBRunResult`.
        """
        rng_key = as_key(rng_key)
        num_steps = positive_int(num_steps, "num_steps")
        problem = make_problem(self.model, args, kwargs, self.hyper_names, self.weights, self.prior_weight, self.obs_plate)
        k_pilot, k_gen, k_targets, k_train, k_fid = jax.random.split(rng_key, 5)
        data = problem.objective.data
        timings = {}

        t0 = time.perf_counter()
        output_scale = self._pilot(problem, k_pilot)
        timings["pilot_s"] = time.perf_counter() - t0

        objective = problem.objective
        gen = make_generator(
            self.generator,
            problem.weights.num_weights,
            len(self.domains),
            problem.prior.noise_dim(objective.num_params),
            objective.num_params,
            key=k_gen,
            output_scale=output_scale,
            dtype=objective.init_params.dtype,
            **self.generator_options,
        )
        targets = None
        if self.mode == "supervised":
            t0 = time.perf_counter()
            targets = self._targets(problem, output_scale, k_targets)
            timings["targets_s"] = time.perf_counter() - t0

        optimizer = self.optimizer or _train.default_optimizer(num_steps)
        params, static = eqx.partition(gen, eqx.is_inexact_array)
        step = _train.build_step(
            problem, self.domains, static, optimizer,
            batch_size=self.batch_size, num_steps=num_steps, mode=self.mode,
            on_nonfinite=self.on_nonfinite, targets=targets,
        )
        state = _train.init(gen, optimizer)
        state, losses, seconds = _train.train(
            step, state, k_train, data, num_steps=num_steps, chunk_size=self.chunk_size, progress_bar=progress_bar
        )
        timings["train_s"] = seconds
        gen = eqx.combine(state.params, static)
        diagnostics = {
            **timings,
            "num_steps_run": int(state.step),
            "num_skipped": int(state.num_skipped),
            "first_nonfinite": int(state.first_nonfinite),
        }
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

    def _pilot(self, problem: Problem, rng_key):
        """Exact solves at ``num_pilot`` hyperparameter values spread over the support."""
        P = max(self.num_pilot, 2 * len(self.domains) + 2)
        z = np.zeros((P, len(self.domains)))
        z[:, 0] = np.linspace(-1.0, 1.0, P)
        k_z, k_solve = jax.random.split(rng_key)
        for i in range(1, len(self.domains)):
            z[:, i] = np.asarray(jax.random.uniform(jax.random.fold_in(k_z, i), (P,), minval=-1.0, maxval=1.0))
        values = np.stack([_train._decode(d, z[:, i]) for i, d in enumerate(self.domains)], axis=-1)
        thetas, info, _, _ = solve_path(problem, k_solve, values, 16)
        ok = np.asarray(info.converged) & np.all(np.isfinite(np.asarray(thetas)), -1)
        thetas = np.where(ok[..., None], np.asarray(thetas), np.nan)
        thetas = np.where(np.isnan(thetas), np.nanmean(thetas, axis=1, keepdims=True), thetas)
        if not np.all(np.isfinite(thetas)):
            raise FloatingPointError(
                "no pilot exact solve converged at some hyperparameter values; check that the "
                "model's log density is finite over the whole `hyper` range."
            )
        return _train.fit_output_scale(thetas, z)

    def _targets(self, problem: Problem, output_scale, rng_key):
        """Exact optimisers of ``num_targets`` random (w, λ, ξ) draws (supervised mode)."""
        data = problem.objective.data

        @jax.jit
        def make(rng_key, data):
            batch = _train.sample_batch(problem, self.domains, rng_key, self.num_targets, data)
            theta0 = jax.vmap(lambda z: output_scale(z, jnp.zeros_like(output_scale.c0)))(batch.z)
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
