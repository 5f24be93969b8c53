"""The one training loop: a step scanned in compiled chunks, with callbacks between chunks.

:func:`run_loop` runs ``step(state, rng_key, data) -> (state, info)`` from ``state.step`` to
``num_steps`` in ``lax.scan`` chunks of ``chunk_size`` steps (one compilation, compiled
ahead of time and timed apart, the state's buffers donated, no host round trip inside a
chunk). Step t uses the key ``fold_in(rng_key, t)``, so the result does not depend on the
chunking; steps past ``num_steps`` in the last chunk leave the state unchanged. Between
chunks each callback is called with the state and a :class:`ChunkReport`; one that returns
True stops the loop. The callbacks here: :class:`ProgressBar`, :func:`stop_when`,
:func:`every_chunk`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from typing import NamedTuple
    >>> from wbbgen.training import run_loop
    >>> class S(NamedTuple):
    ...     x: jax.Array
    ...     step: jax.Array
    >>> step = lambda s, key, data: (S(s.x + data, s.step + 1), s.x)
    >>> out = run_loop(step, S(jnp.float32(0.0), jnp.int32(0)), jax.random.key(0), jnp.float32(1.0),
    ...                num_steps=5, chunk_size=2, callbacks=[])
    >>> float(out.state.x), out.info.tolist()
    (5.0, [0.0, 1.0, 2.0, 3.0, 4.0])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from wbbgen import sharding

__all__ = ["ChunkReport", "LoopResult", "run_loop", "ProgressBar", "stop_when", "every_chunk"]


class ChunkReport(NamedTuple):
    """What a callback sees after a chunk: its steps ``[start, stop)``, its per-step info
    (host numpy, trimmed to ``num_steps``), its wall time, and the chunk's compilation time
    (reported with the first chunk only, not included in ``seconds``)."""

    start: int
    stop: int
    info: Any
    seconds: float
    compile_s: float


class LoopResult(NamedTuple):
    """``state`` after the loop; ``info``: the per-step infos of the steps run, concatenated
    (host numpy; None when no step ran); ``seconds``: wall time, compilation included;
    ``compile_s``; ``chunk_s``: each chunk's wall time; ``num_traces``: how often the chunk
    was traced (1: one compilation served every chunk)."""

    state: Any
    info: Any
    seconds: float
    compile_s: float
    chunk_s: list
    num_traces: int = 0


def run_loop(
    step: Callable,
    state,
    rng_key,
    data,
    *,
    num_steps: int,
    chunk_size: int = 500,
    callbacks: Sequence[Callable] = (),
    mesh=None,
) -> LoopResult:
    """Run ``step`` from ``state.step`` to ``num_steps`` (module docstring).

    Args:
        step: a pure ``step(state, rng_key, data) -> (state, info)``; ``state`` has a
            ``step`` counter (int array).
        state, data: the initial state and the data (replicated over ``mesh``'s devices).
        rng_key: step t uses ``fold_in(rng_key, t)``.
        callbacks: ``callback(state, report) -> bool | None`` after each chunk; True stops.
            A callback with a ``close()`` method is closed when the loop ends.
    """
    chunk_size = int(min(chunk_size, num_steps))

    def guarded(s, key, d):
        new, info = step(s, key, d)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(s.step < num_steps, a, b), new, s), info

    traces = []

    def chunk(state, start, data):
        traces.append(1)  # runs once per trace, not per call
        keys = jax.vmap(lambda t: jax.random.fold_in(rng_key, t))(start + jnp.arange(chunk_size))
        return jax.lax.scan(lambda s, k: guarded(s, k, data), state, keys)

    t_start = time.perf_counter()
    state, data = sharding.replicate((state, data), mesh)
    first = int(sharding.to_host(state.step))
    infos, chunk_s, compile_s, run_chunk = [], [], 0.0, None
    try:
        for start in range(first, num_steps, chunk_size):
            if run_chunk is None:  # compiled ahead of time, once: its compilation timed apart
                t0 = time.perf_counter()
                run_chunk = jax.jit(chunk, donate_argnums=(0,)).lower(state, jnp.int32(start), data).compile()
                compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            state, info = run_chunk(state, jnp.int32(start), data)
            stop = min(start + chunk_size, num_steps)
            info = jax.tree_util.tree_map(lambda x: sharding.to_host(x)[: stop - start], info)
            chunk_s.append(time.perf_counter() - t0)
            infos.append(info)
            report = ChunkReport(start, stop, info, chunk_s[-1], compile_s if len(chunk_s) == 1 else 0.0)
            if any([bool(cb(state, report)) for cb in callbacks]):
                break
    finally:
        for cb in callbacks:
            if hasattr(cb, "close"):
                cb.close()
    info = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *infos) if infos else None
    return LoopResult(state, info, time.perf_counter() - t_start, compile_s, chunk_s, len(traces))


class ProgressBar:
    """A tqdm bar over the steps; ``postfix(info)`` names the value shown (default: the
    last finite ``loss``)."""

    def __init__(self, num_steps: int, initial: int = 0, desc: str = "training", disable: bool = False, postfix=None):
        self.bar = tqdm(total=num_steps, initial=initial, desc=desc, disable=disable, leave=False)
        self.postfix = postfix or _last_finite_loss

    def __call__(self, state, report: ChunkReport):
        self.bar.update(report.stop - report.start)
        shown = self.postfix(report.info)
        if shown:
            self.bar.set_postfix(shown)

    def close(self):
        self.bar.close()


def _last_finite_loss(info) -> dict:
    loss = np.asarray(getattr(info, "loss", np.zeros(0)))
    finite = loss[np.isfinite(loss)]
    return {"loss": f"{finite[-1]:.4g}"} if finite.size else {}


def stop_when(predicate: Callable) -> Callable:
    """A callback that stops the loop once ``predicate(state)`` holds (e.g. a frozen state)."""
    return lambda state, report: bool(sharding.to_host(predicate(state)))


def every_chunk(fn: Callable) -> Callable:
    """A callback that calls ``fn(state, report)`` after each chunk and never stops the loop."""

    def callback(state, report):
        fn(state, report)
        return False

    return callback
