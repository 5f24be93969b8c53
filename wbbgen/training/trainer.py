"""The training core: :func:`trainer` turns a :class:`~wbbgen.training.Loss` and an optax
optimizer into a :class:`Trainer`, a pair of pure functions

* ``init(generator) -> TrainState``
* ``step(state, rng_key, data) -> (state, TrainInfo)``

(the BlackJAX/Optax shape: no jit inside; :func:`wbbgen.training.run_loop` scans the step
in compiled chunks). A non-finite loss, gradient or update never reaches the parameters:
with ``on_nonfinite="stop"`` the state freezes at that step (``state.stopped``), with
``"skip"`` the step is skipped and counted.

Example:
    >>> import jax, numpy as np, optax, numpyro.distributions as dist
    >>> from wbbgen import models
    >>> from wbbgen.generator import MLPGenerator
    >>> from wbbgen.hyper import make_domains
    >>> from wbbgen.problem import make_problem
    >>> from wbbgen.training import criterion, trainer
    >>> X = np.ones((5, 2)); y = np.zeros(5)
    >>> problem = make_problem(models.ridge, (X, y), {}, ("lam",), "exponential", "anchored")
    >>> domains = make_domains({"lam": dist.LogUniform(0.1, 10.0)})
    >>> gen = MLPGenerator(5, 1, 2, 2, width=8, depth=1, key=jax.random.key(0))
    >>> t = trainer(criterion(problem, domains, batch_size=4), optax.adam(1e-3), gen)
    >>> state, info = t.step(t.init(gen), jax.random.key(1), problem.objective.data)
    >>> int(state.step), bool(info.finite)
    (1, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from wbbgen.training.losses import Loss
from wbbgen.training.state import TrainInfo, TrainState

__all__ = ["Trainer", "trainer"]


class Trainer(NamedTuple):
    """``init(generator) -> TrainState``; ``step(state, rng_key, data) -> (state, TrainInfo)``;
    ``generator(state)``: the generator the state's parameters make."""

    init: Callable
    step: Callable
    generator: Callable


def trainer(loss: Loss, optimizer: optax.GradientTransformation, generator, *, on_nonfinite: str = "stop") -> Trainer:
    """A :class:`Trainer` minimising ``loss`` over ``generator``'s inexact arrays with ``optimizer``.

    Args:
        loss: a :class:`~wbbgen.training.Loss` (``criterion(...)``, ``supervised(...)``).
        optimizer: any optax ``GradientTransformation``.
        generator: the generator (its non-trainable part is fixed here; ``init`` takes one of
            the same structure).
        on_nonfinite: ``"stop"`` (freeze at the first non-finite step) or ``"skip"``.
    """
    if on_nonfinite not in ("stop", "skip"):
        raise ValueError(f"`on_nonfinite={on_nonfinite!r}` is unknown; choose 'stop' or 'skip'.")
    _, static = eqx.partition(generator, eqx.is_inexact_array)

    def init(generator) -> TrainState:
        params, _ = eqx.partition(generator, eqx.is_inexact_array)
        state = TrainState(params, optimizer.init(params), jnp.int32(0), jnp.int32(0), jnp.int32(-1), jnp.bool_(False))
        return jax.tree_util.tree_map(jnp.copy, state)  # distinct buffers: the loop donates the state

    def step(state: TrainState, rng_key, data):
        batch = loss.batch(rng_key, data)
        value, grads = jax.value_and_grad(lambda p: loss.value(eqx.combine(p, static), batch, rng_key, data))(
            state.params
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(value) & _all_finite(grads) & _all_finite(params)
        keep = finite & ~state.stopped
        bad = ~finite & ~state.stopped
        new = TrainState(
            _select(keep, params, state.params),
            _select(keep, opt_state, state.opt_state),
            state.step + 1,
            state.num_skipped + bad.astype(jnp.int32),
            jnp.where(bad & (state.first_nonfinite < 0), state.step, state.first_nonfinite),
            state.stopped | (bad & (on_nonfinite == "stop")),
        )
        return new, TrainInfo(value, optax.tree.norm(grads), finite)

    return Trainer(init, step, lambda state: eqx.combine(state.params, static))


def _all_finite(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.bool_(True)


def _select(pred, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), new, old)
