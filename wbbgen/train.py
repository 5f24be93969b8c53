r"""Training a generator: the functional core behind :class:`wbbgen.AmortizedWBB`.

**Criterion-based** training minimises the expected weighted objective of the generator's
output over random draws,

.. math::

    \min_φ\ \mathbb{E}_{λ \sim p(λ),\, w,\, ξ}\Big[\tfrac{1}{n} L\big(g_φ(w, z_λ, ξ);\ w, ξ, λ\big)\Big],

whose minimiser (for a flexible enough g) is the exact WBB optimiser at every (w, ξ, λ).
With ``data_batch_size=B`` the objective of each draw is the unbiased estimate from B rows
drawn with replacement (:mod:`wbbgen.minibatch`), so a step costs O(B), not O(n).
**Supervised** training regresses onto exact optimisers θ*(w, ξ, λ) from :mod:`wbbgen.exact`,
in the generator's standardised units: min_φ E‖(g_φ − θ*) / s(z)‖².

Shape of the code (Optax/BlackJAX style): :func:`init` returns a :class:`TrainState`;
:func:`build_step` returns a pure ``step(state, rng_key, data) -> (state, TrainInfo)``;
:func:`train` scans it in chunks (``lax.scan``, one compilation, buffers donated, no host
round trip inside a chunk) under a tqdm bar; the chunk is compiled ahead of time, so its
compilation is timed apart from the run. Step t uses ``fold_in(rng_key, t)``, so the result
does not depend on the chunking. With a mesh (:mod:`wbbgen.sharding`) the batch of draws and
the data rows are split over devices; the program and the draws are the same.

A non-finite loss, gradient or update never reaches the parameters: with
``on_nonfinite="stop"`` training freezes at that step and :func:`train` raises
:class:`NonFiniteTrainingError` carrying the last finite generator; with ``"skip"`` the
step is skipped and counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from wbbgen import sharding as _sharding
from wbbgen.generator import OutputScale
from wbbgen.hyper import encode, spread_values
from wbbgen.minibatch import minibatch_loss, sample_rows, take_rows
from wbbgen.problem import Problem, generate_grid, loss, prior_draw

__all__ = [
    "Batch",
    "TrainState",
    "TrainInfo",
    "NonFiniteTrainingError",
    "sample_batch",
    "fit_output_scale",
    "default_optimizer",
    "init",
    "build_step",
    "train",
    "fidelity",
]


#: Groups of draws with rows of their own in a minibatched step (:func:`build_step`).
DATA_GROUPS = 16


class NonFiniteTrainingError(FloatingPointError):
    """Training produced a non-finite loss, gradient or parameter. ``.result`` holds the
    run result with the last finite generator."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


class Batch(NamedTuple):
    """One training step's draws: weights, hyperparameter values and their encoding, prior draws, exact targets."""

    v: jax.Array  # (B, num_weights)
    values: jax.Array  # (B, m) hyperparameter values
    z: jax.Array  # (B, m) encoded
    draw: Any  # PriorDraw batched over B
    target: jax.Array | None = None  # (B, d) exact optimisers (supervised)


class TrainState(NamedTuple):
    """What a training step carries to the next: parameters, optimizer state and step counters."""

    params: Any  # the generator's trainable arrays (equinox partition)
    opt_state: Any
    step: jax.Array  # number of steps taken (int)
    num_skipped: jax.Array  # non-finite steps skipped
    first_nonfinite: jax.Array  # first non-finite step, -1 if none
    stopped: jax.Array  # bool: frozen after a non-finite step (on_nonfinite="stop")


class TrainInfo(NamedTuple):
    """Per-step training diagnostics: loss, gradient norm, and whether the step was finite."""

    loss: jax.Array
    grad_norm: jax.Array
    finite: jax.Array


def sample_batch(problem: Problem, domains, rng_key, batch_size: int, data) -> Batch:
    """A batch of (w, λ, ξ) draws: λ from the training distributions, w and ξ fresh."""
    k_h, k_w, k_p = jax.random.split(rng_key, 3)
    hkeys = jax.random.split(k_h, len(domains))
    dtype = problem.objective.init_params.dtype
    values = jnp.stack([d.sample(k, (batch_size,)) for d, k in zip(domains, hkeys)], axis=-1).astype(dtype)
    v = problem.weights.sample(k_w, (batch_size,)).astype(dtype)
    pkeys = jax.random.split(k_p, batch_size)
    draw = jax.vmap(lambda k, x: prior_draw(problem, k, x, data))(pkeys, values)
    return Batch(v, values, encode(domains, values), draw)


def fit_output_scale(thetas, z, degree: int = 5, ridge: float = 1e-6) -> OutputScale:
    """Centre and log spread of pilot solves ``thetas (P, S, d)`` at encoded points
    ``z (P, m)``: least-squares polynomials of ``degree`` (at most P − m − 1, so the fit keeps
    residual degrees of freedom) in z₀ and
    linear terms in the other hyperparameters."""
    thetas, z = np.asarray(thetas, np.float64), np.asarray(z, np.float64)
    mean = thetas.mean(1)
    logsd = np.log(np.maximum(thetas.std(1), 1e-6 * (1.0 + np.abs(mean))))
    P, m = z.shape
    degree = int(max(0, min(degree, P - m - 1, np.unique(z[:, 0]).size - 1)))
    F = np.concatenate([np.clip(z[:, :1], -1, 1) ** np.arange(degree + 1), z[:, 1:]], axis=1)
    gram = F.T @ F + ridge * np.eye(F.shape[1])
    coef_c = np.linalg.solve(gram, F.T @ mean)
    coef_a = np.linalg.solve(gram, F.T @ logsd)
    k = degree + 1
    dtype = jnp.result_type(float)
    return OutputScale(*(jnp.asarray(x, dtype) for x in (coef_c[:k], coef_a[:k], coef_c[k:].T, coef_a[k:].T)))


def default_optimizer(num_steps: int, peak_lr: float = 3e-3) -> optax.GradientTransformation:
    """Adam with linear warm-up (5 % of the steps) and cosine decay to 1 % of the peak."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, peak_lr, max(1, num_steps // 20), max(2, num_steps), end_value=peak_lr * 1e-2
    )
    return optax.adam(schedule)


def _criterion_loss(problem, generator, batch: Batch, data, rows=None):
    """Mean over the batch of L/n; with ``rows = (idx (G, B), batch_data, row_mask)`` the
    unbiased minibatch estimate L̂/n of each draw's objective, the batch's draws split into
    G consecutive groups that each use their own B rows."""
    thetas = jax.vmap(generator)(batch.v, batch.z, batch.draw.noise)
    if rows is None:
        per_draw = jax.vmap(lambda th, v, d, x: loss(problem, th, v, d, x, data))(
            thetas, batch.v, batch.draw, batch.values
        )
        return jnp.mean(per_draw) / problem.objective.num_obs
    idx, batch_data, mask = rows  # idx (G, B): G groups of draws, each with its own rows
    G = idx.shape[0]

    def group(th, v, draw, values, idx_g, data_g):
        fn = lambda t, vv, d, x: minibatch_loss(problem, t, vv, d, x, data, data_g, idx_g)  # noqa: E731
        return jax.vmap(fn)(th, v, draw, values)

    split = lambda x: x.reshape(G, x.shape[0] // G, *x.shape[1:])  # noqa: E731  (-1 fails on size 0)
    per_draw = jax.vmap(group, in_axes=(0, 0, 0, 0, 0, jax.tree_util.tree_map(lambda m: 0 if m else None, mask)))(
        split(thetas), split(batch.v), jax.tree_util.tree_map(split, batch.draw), split(batch.values), idx, batch_data
    )
    return jnp.mean(per_draw) / problem.objective.num_obs


def _supervised_loss(problem, generator, batch: Batch, data, rows=None):
    thetas = jax.vmap(generator)(batch.v, batch.z, batch.draw.noise)
    out = generator.output_scale if hasattr(generator, "output_scale") else generator.base.output_scale
    scale = jax.vmap(out.spread)(jax.lax.stop_gradient(batch.z))
    return jnp.mean(jnp.sum(((thetas - batch.target) / scale) ** 2, axis=-1))


def init(generator, optimizer: optax.GradientTransformation) -> TrainState:
    """The initial :class:`TrainState` of ``generator`` under an optax ``optimizer``."""
    params, _ = eqx.partition(generator, eqx.is_inexact_array)
    # Distinct buffers for every leaf: the training chunk donates the whole state.
    state = TrainState(params, optimizer.init(params), jnp.int32(0), jnp.int32(0), jnp.int32(-1), jnp.bool_(False))
    return jax.tree_util.tree_map(jnp.copy, state)


def build_step(
    problem: Problem,
    domains,
    static,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    num_steps: int,
    mode: str = "criterion",
    on_nonfinite: str = "stop",
    targets: Batch | None = None,
    data_batch_size: int | None = None,
    row_mask=None,
    mesh=None,
    data_groups: int | None = None,
) -> Callable:
    """Return the pure ``step(state, rng_key, data) -> (state, TrainInfo)``.

    ``data_batch_size``: rows per step of the minibatched criterion (None: all n), with
    ``row_mask`` (:func:`wbbgen.minibatch.row_mask`) naming the per-observation arrays.
    ``data_groups``: the batch's draws form this many groups, each with rows of its own
    (default gcd(batch_size, 16)): the minibatch noise common to a group's draws then
    averages over the groups in the generator's gradient (on ridge, n = 100, B = 20: rmse to
    exact WBB 0.29 sd with one group, 0.20 with 16 or 256, at 6000 steps).
    ``mesh``: split the draws (and rows) over devices (:mod:`wbbgen.sharding`).
    """
    if data_groups is None:
        data_groups = math.gcd(batch_size, DATA_GROUPS)
    if batch_size % data_groups:
        raise ValueError(f"`data_groups={data_groups}` must divide `batch_size={batch_size}`.")
    objective_fn = {"criterion": _criterion_loss, "supervised": _supervised_loss}[mode]
    if data_batch_size is not None and row_mask is None:
        raise ValueError("`data_batch_size` needs `row_mask=` (wbbgen.minibatch.row_mask(problem)).")

    def batch_for(rng_key, data):
        if mode == "supervised":
            idx = jax.random.randint(rng_key, (batch_size,), 0, targets.v.shape[0])
            return jax.tree_util.tree_map(lambda x: x[idx], targets)
        return sample_batch(problem, domains, rng_key, batch_size, data)

    def rows_for(rng_key, data):
        if data_batch_size is None or mode != "criterion":
            return None
        # A key of its own (fold_in), so full-data training draws exactly what it drew before.
        idx = sample_rows(jax.random.fold_in(rng_key, 1), problem.objective.num_obs, data_groups * data_batch_size)
        idx = _sharding.constrain_leading(idx.reshape(data_groups, data_batch_size), mesh, _sharding.DATA, dim=1)
        batch_data = _sharding.constrain_leading(take_rows(data, row_mask, idx), mesh, _sharding.DATA, row_mask, dim=1)
        return idx, batch_data, row_mask

    def step(state: TrainState, rng_key, data):
        batch = _sharding.constrain_leading(batch_for(rng_key, data), mesh, _sharding.DRAWS)
        rows = rows_for(rng_key, data)

        def loss_fn(params):
            return objective_fn(problem, eqx.combine(params, static), batch, data, rows)

        value, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(value) & _all_finite(grads) & _all_finite(params)
        active = state.step < num_steps
        keep = finite & ~state.stopped & active
        params = _select(keep, params, state.params)
        opt_state = _select(keep, opt_state, state.opt_state)
        bad = active & ~finite & ~state.stopped
        new = TrainState(
            params,
            opt_state,
            state.step + active.astype(jnp.int32),
            state.num_skipped + bad.astype(jnp.int32),
            jnp.where(bad & (state.first_nonfinite < 0), state.step, state.first_nonfinite),
            state.stopped | (bad & (on_nonfinite == "stop")),
        )
        return new, TrainInfo(value, optax.tree.norm(grads), finite)

    return step


def _all_finite(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.bool_(True)


def _select(pred, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), new, old)


def train(
    step: Callable,
    state: TrainState,
    rng_key,
    data,
    *,
    num_steps: int,
    chunk_size: int = 500,
    progress_bar: bool = True,
    on_chunk: Callable[[TrainState, np.ndarray], None] | None = None,
    mesh=None,
    timings: dict | None = None,
):
    """Run ``num_steps`` steps in ``lax.scan`` chunks. Returns ``(state, losses, seconds)``.

    ``on_chunk(state, losses)`` is called on the host after each chunk (checkpoints).
    Training stops early, after the chunk, when the state is frozen by a non-finite step.
    With a ``mesh`` the state and data are replicated over its devices (the step, built
    with the same mesh, splits the batch). ``timings``, when given, receives
    ``compile_s`` (the chunk's ahead-of-time compilation, included in ``seconds``) and
    ``chunk_s`` (wall time of each chunk), filled in before ``on_chunk`` is called.
    """
    chunk_size = int(min(chunk_size, num_steps))
    timings = {} if timings is None else timings

    def chunk(state, start, data):
        steps = start + jnp.arange(chunk_size)
        keys = jax.vmap(lambda t: jax.random.fold_in(rng_key, t))(steps)
        return jax.lax.scan(lambda s, k: step(s, k, data), state, keys)

    losses = []
    start_time = time.perf_counter()
    state, data = _sharding.replicate((state, data), mesh)
    first = int(_sharding.to_host(state.step))
    timings["chunk_s"] = []
    run_chunk = None
    with tqdm(total=num_steps, initial=first, desc="training", disable=not progress_bar, leave=False) as bar:
        for start in range(first, num_steps, chunk_size):
            if run_chunk is None:  # compiled ahead of time, once: its compilation timed apart
                t0 = time.perf_counter()
                run_chunk = jax.jit(chunk, donate_argnums=(0,)).lower(state, jnp.int32(start), data).compile()
                timings["compile_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            state, info = run_chunk(state, jnp.int32(start), data)
            chunk_losses = _sharding.to_host(info.loss)[: num_steps - start]
            timings["chunk_s"].append(time.perf_counter() - t0)
            losses.append(chunk_losses)
            bar.update(len(chunk_losses))
            finite = chunk_losses[np.isfinite(chunk_losses)]
            if finite.size:
                bar.set_postfix(loss=f"{finite[-1]:.4g}")
            if on_chunk is not None:
                on_chunk(state, chunk_losses)
            if bool(_sharding.to_host(state.stopped)):
                break
    losses = np.concatenate(losses) if losses else np.zeros(0)
    return state, losses, time.perf_counter() - start_time


def fidelity(
    problem: Problem,
    generator,
    domains,
    rng_key,
    *,
    num_values: int = 5,
    num_samples: int = 64,
    tol=1e-3,
    method: str = "auto",
    max_draws: int | None = None,
):
    """Generator vs exact WBB on identical draws at ``num_values`` hyperparameter values.

    The values are spread over the training support (:func:`spread_values`, equal steps over
    90 % of the first continuous hyperparameter's encoded range). Per value, over the flat parameters:
    ``sd_ratio`` (generator sd / exact sd, median and worst coordinate), ``mean_error``
    (absolute mean difference / exact sd, worst coordinate) and ``rmse`` (per-draw error / exact sd,
    median coordinate). Returns a dict of numpy arrays keyed by those names plus ``values``.
    ``max_draws`` bounds the draws solved together (:func:`solve_path_chunked`).
    """
    from wbbgen.exact import solve_path_chunked

    values = spread_values(domains, num_values, rng_key, edge=0.9)
    thetas, info, v, pdraw = solve_path_chunked(
        problem, rng_key, values, num_samples, max_draws=max_draws, tol=tol, method=method
    )
    zz = encode(domains, jnp.asarray(values, thetas.dtype))
    gen = jax.jit(generate_grid)(generator, v, zz, pdraw.noise)
    exact, gen = np.asarray(thetas, np.float64), np.asarray(gen, np.float64)
    sd = exact.std(1)
    ratio = gen.std(1) / sd
    mean_err = np.abs(gen.mean(1) - exact.mean(1)) / sd
    rmse = np.sqrt(((gen - exact) ** 2).mean(1)) / sd
    return {
        "values": values,
        "sd_ratio_median": np.median(ratio, 1),
        "sd_ratio_min": ratio.min(1),
        "sd_ratio_max": ratio.max(1),
        "mean_error_max": mean_err.max(1),
        "rmse_median": np.median(rmse, 1),
        "exact_converged": np.asarray(info.converged).mean(1),
    }
