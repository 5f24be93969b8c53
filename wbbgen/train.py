r"""Training a generator: the functional core behind :class:`wbbgen.AmortizedWBB`.

**Criterion-based** training minimises the expected weighted objective of the generator's
output over random draws,

.. math::

    \min_φ\ \mathbb{E}_{λ \sim p(λ),\, w,\, ξ}\Big[\tfrac{1}{n} L\big(g_φ(w, z_λ, ξ);\ w, ξ, λ\big)\Big],

whose minimiser (for a flexible enough g) is the exact WBB optimiser at every (w, ξ, λ).
**Supervised** training regresses onto exact optimisers θ*(w, ξ, λ) from :mod:`wbbgen.exact`,
in the generator's standardised units: min_φ E‖(g_φ − θ*) / s(z)‖².

Shape of the code (Optax/BlackJAX style): :func:`init` returns a :class:`TrainState`;
:func:`build_step` returns a pure ``step(state, rng_key, data) -> (state, TrainInfo)``;
:func:`train` scans it in chunks (``lax.scan``, one compilation, buffers donated, no host
round trip inside a chunk) under a tqdm bar. Step t uses ``fold_in(rng_key, t)``, so the
result does not depend on the chunking.

A non-finite loss, gradient or update never reaches the parameters: with
``on_nonfinite="stop"`` training freezes at that step and :func:`train` raises
:class:`NonFiniteTrainingError` carrying the last finite generator; with ``"skip"`` the
step is skipped and counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from wbbgen.generator import OutputScale
from wbbgen.problem import Problem, loss, prior_draw

__all__ = [
    "Batch",
    "TrainState",
    "TrainInfo",
    "NonFiniteTrainingError",
    "encode",
    "encoded_width",
    "spread_values",
    "sample_batch",
    "fit_output_scale",
    "default_optimizer",
    "init",
    "build_step",
    "train",
    "fidelity",
]


class NonFiniteTrainingError(FloatingPointError):
    """Training produced a non-finite loss, gradient or parameter. ``.result`` holds the
    run result with the last finite generator."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


class Batch(NamedTuple):
    v: jax.Array  # (B, num_weights)
    values: jax.Array  # (B, m) hyperparameter values
    z: jax.Array  # (B, m) encoded
    draw: Any  # PriorDraw batched over B
    target: jax.Array | None = None  # (B, d) exact optimisers (supervised)


class TrainState(NamedTuple):
    params: Any  # the generator's trainable arrays (equinox partition)
    opt_state: Any
    step: jax.Array  # number of steps taken (int)
    num_skipped: jax.Array  # non-finite steps skipped
    first_nonfinite: jax.Array  # first non-finite step, -1 if none
    stopped: jax.Array  # bool: frozen after a non-finite step (on_nonfinite="stop")


class TrainInfo(NamedTuple):
    loss: jax.Array
    grad_norm: jax.Array
    finite: jax.Array


def encode(domains, values):
    """Encode ``(…, m)`` hyperparameter values for the generator (:mod:`wbbgen.hyper`):
    ``(…, Σ width)``, continuous hyperparameters first (the first of them is the axis along
    which the output scale varies smoothly), then the one-hot blocks of discrete ones."""
    order = sorted(range(len(domains)), key=lambda i: domains[i].choices is not None)
    return jnp.concatenate([domains[i].encode(values[..., i]) for i in order], axis=-1)


def encoded_width(domains) -> int:
    return sum(d.width for d in domains)


def spread_values(domains, num_values: int, rng_key, edge: float = 1.0) -> np.ndarray:
    """``(P, m)`` hyperparameter values covering the training support: the first continuous
    hyperparameter on an even grid of its encoding over [−edge, edge], other continuous ones
    at random in it, discrete ones cycling through their choices."""
    values = np.zeros((num_values, len(domains)))
    first = next((i for i, d in enumerate(domains) if d.choices is None), None)
    for i, d in enumerate(domains):
        if d.choices is not None:
            values[:, i] = np.asarray(d.choices)[(np.arange(num_values) + i) % len(d.choices)]
        elif i == first:
            values[:, i] = _decode(d, np.linspace(-edge, edge, num_values))
        else:
            u = np.asarray(jax.random.uniform(jax.random.fold_in(rng_key, i), (num_values,), minval=-edge, maxval=edge))
            values[:, i] = _decode(d, u)
    return values


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


def _criterion_loss(problem, generator, batch: Batch, data):
    thetas = jax.vmap(generator)(batch.v, batch.z, batch.draw.noise)
    per_draw = jax.vmap(lambda th, v, d, x: loss(problem, th, v, d, x, data))(thetas, batch.v, batch.draw, batch.values)
    return jnp.mean(per_draw) / problem.objective.num_obs


def _supervised_loss(problem, generator, batch: Batch, data):
    thetas = jax.vmap(generator)(batch.v, batch.z, batch.draw.noise)
    out = generator.output_scale if hasattr(generator, "output_scale") else generator.base.output_scale
    scale = jax.vmap(out.spread)(jax.lax.stop_gradient(batch.z))
    return jnp.mean(jnp.sum(((thetas - batch.target) / scale) ** 2, axis=-1))


def init(generator, optimizer: optax.GradientTransformation) -> TrainState:
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
) -> Callable:
    """Return the pure ``step(state, rng_key, data) -> (state, TrainInfo)``."""
    objective_fn = {"criterion": _criterion_loss, "supervised": _supervised_loss}[mode]

    def batch_for(rng_key, data):
        if mode == "supervised":
            idx = jax.random.randint(rng_key, (batch_size,), 0, targets.v.shape[0])
            return jax.tree_util.tree_map(lambda x: x[idx], targets)
        return sample_batch(problem, domains, rng_key, batch_size, data)

    def step(state: TrainState, rng_key, data):
        batch = batch_for(rng_key, data)

        def loss_fn(params):
            return objective_fn(problem, eqx.combine(params, static), batch, data)

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
):
    """Run ``num_steps`` steps in ``lax.scan`` chunks. Returns ``(state, losses, seconds)``.

    ``on_chunk(state, losses)`` is called on the host after each chunk (checkpoints).
    Training stops early, after the chunk, when the state is frozen by a non-finite step.
    """
    chunk_size = int(min(chunk_size, num_steps))

    def chunk(state, start, data):
        steps = start + jnp.arange(chunk_size)
        keys = jax.vmap(lambda t: jax.random.fold_in(rng_key, t))(steps)
        return jax.lax.scan(lambda s, k: step(s, k, data), state, keys)

    run_chunk = jax.jit(chunk, donate_argnums=(0,))
    losses = []
    start_time = time.perf_counter()
    first = int(state.step)
    with tqdm(total=num_steps, initial=first, desc="training", disable=not progress_bar, leave=False) as bar:
        for start in range(first, num_steps, chunk_size):
            state, info = run_chunk(state, jnp.int32(start), data)
            chunk_losses = np.asarray(info.loss)[: num_steps - start]
            losses.append(chunk_losses)
            bar.update(len(chunk_losses))
            finite = chunk_losses[np.isfinite(chunk_losses)]
            if finite.size:
                bar.set_postfix(loss=f"{finite[-1]:.4g}")
            if on_chunk is not None:
                on_chunk(state, chunk_losses)
            if bool(state.stopped):
                break
    losses = np.concatenate(losses) if losses else np.zeros(0)
    return state, losses, time.perf_counter() - start_time


def fidelity(problem: Problem, generator, domains, rng_key, *, num_values: int = 5, num_samples: int = 64, tol=1e-3):
    """Generator vs exact WBB on identical draws at ``num_values`` hyperparameter values.

    The values are spread over the training support (:func:`spread_values`, equal steps over
    90 % of the first continuous hyperparameter's encoded range). Per value, over the flat parameters:
    ``sd_ratio`` (generator sd / exact sd, median and worst coordinate), ``mean_error``
    (|mean difference| / exact sd, worst coordinate) and ``rmse`` (per-draw error / exact sd,
    median coordinate). Returns a dict of numpy arrays keyed by those names plus ``values``.
    """
    from wbbgen.exact import solve_path

    values = spread_values(domains, num_values, rng_key, edge=0.9)
    thetas, info, v, pdraw = solve_path(problem, rng_key, values, num_samples, tol=tol)
    zz = encode(domains, jnp.asarray(values, thetas.dtype))
    gen = jax.jit(jax.vmap(jax.vmap(generator, in_axes=(0, None, 0)), in_axes=(None, 0, 0)))(v, zz, pdraw.noise)
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


def _decode(domain, z):
    t = domain.center + domain.half_width * np.asarray(z)
    return np.exp(t) if domain.log_scale else t
