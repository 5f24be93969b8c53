"""Argument checks shared by the public entry points (clear errors naming the argument)."""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["positive_int", "nonnegative_int", "as_key", "is_array", "jsonable"]


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


def nonnegative_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be an integer ≥ 0, got {value!r}.")
    return int(value)


def as_key(rng_key, name: str = "rng_key"):
    """Accept ``jax.random.key`` keys and legacy ``PRNGKey`` arrays; reject anything else."""
    if isinstance(rng_key, jax.Array):
        if jax.dtypes.issubdtype(rng_key.dtype, jax.dtypes.prng_key) and rng_key.shape == ():
            return rng_key
        if rng_key.dtype == np.uint32 and rng_key.shape == (2,):
            return jax.random.wrap_key_data(rng_key)
    raise TypeError(
        f"`{name}` must be a single PRNG key such as jax.random.key(0), got {rng_key!r}. "
        "Pass a key as the first argument (NumPyro's convention)."
    )


def is_array(x) -> bool:
    """A numpy or JAX array (or numpy scalar): what model arguments trace as data."""
    return isinstance(x, (np.ndarray, np.generic, jax.Array))


def jsonable(x, fallback=None):
    """numpy scalars/arrays, tuples and mappings -> Python floats, lists and dicts (JSON);
    NaN and inf stay floats (``json`` writes and reads them back). Any other leaf is returned
    as is, or as ``fallback(leaf)`` when given (e.g. ``repr``, for a report that must dump)."""
    from collections.abc import Mapping

    if isinstance(x, Mapping):
        return {str(k): jsonable(v, fallback) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v, fallback) for v in x]
    if is_array(x):
        a = np.asarray(x)
        if fallback is not None and a.dtype.kind not in "fiub":
            return fallback(x)
        return a.tolist() if a.ndim else a.item()
    if fallback is not None and not (x is None or isinstance(x, (str, bool, int, float))):
        return fallback(x)
    return x
