"""What a training step carries (:class:`TrainState`), what it reports (:class:`TrainInfo`)
and the draws it makes (:class:`Batch`).

Example:
    >>> import jax.numpy as jnp
    >>> from wbbgen.training import TrainInfo
    >>> TrainInfo(jnp.float32(0.5), jnp.float32(1.0), jnp.bool_(True)).finite
    Array(True, dtype=bool)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from wbbgen.hyper import encode
from wbbgen.problem import Problem, prior_draw

__all__ = ["Batch", "TrainState", "TrainInfo", "NonFiniteTrainingError", "sample_batch", "default_optimizer"]


class NonFiniteTrainingError(FloatingPointError):
    """Training produced a non-finite loss, gradient or parameter. ``.result`` holds the
    run result with the last finite generator."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


class Batch(NamedTuple):
    """One step's draws: weights ``v (B, num_weights)``, hyperparameter values ``values (B, m)``
    and their encoding ``z``, prior draws batched over B, and exact optimisers ``target (B, d)``
    (supervised training only)."""

    v: jax.Array
    values: jax.Array
    z: jax.Array
    draw: Any
    target: jax.Array | None = None


class TrainState(NamedTuple):
    """What a training step carries to the next: the generator's trainable arrays (the
    ``eqx.partition`` of its inexact arrays), the optimizer state and step counters."""

    params: Any
    opt_state: Any
    step: jax.Array  # steps taken (int32)
    num_skipped: jax.Array  # non-finite steps skipped
    first_nonfinite: jax.Array  # first non-finite step, -1 if none
    stopped: jax.Array  # bool: frozen after a non-finite step (on_nonfinite="stop")


class TrainInfo(NamedTuple):
    """Per-step diagnostics: the loss, the gradient norm, and whether the step was finite."""

    loss: jax.Array
    grad_norm: jax.Array
    finite: jax.Array


def sample_batch(problem: Problem, domains, rng_key, batch_size: int, data) -> Batch:
    """``batch_size`` fresh (w, λ, ξ) draws: λ from the domains' training distributions."""
    k_h, k_w, k_p = jax.random.split(rng_key, 3)
    hkeys = jax.random.split(k_h, len(domains))
    dtype = problem.objective.init_params.dtype
    values = jnp.stack([d.sample(k, (batch_size,)) for d, k in zip(domains, hkeys)], axis=-1).astype(dtype)
    v = problem.weights.sample(k_w, (batch_size,)).astype(dtype)
    pkeys = jax.random.split(k_p, batch_size)
    draw = jax.vmap(lambda k, x: prior_draw(problem, k, x, data))(pkeys, values)
    return Batch(v, values, encode(domains, values), draw)


def default_optimizer(num_steps: int, peak_lr: float = 3e-3) -> optax.GradientTransformation:
    """Adam with linear warm-up over 5 % of ``num_steps`` and cosine decay to 1 % of ``peak_lr``."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, peak_lr, max(1, num_steps // 20), max(2, num_steps), end_value=peak_lr * 1e-2
    )
    return optax.adam(schedule)
