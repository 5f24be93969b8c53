"""Model arguments: which parts are traced data and which are static configuration (the
one place that decides it, for the objective, the tuning criteria and the NUTS reference)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["split_data", "static_part", "same_static"]


def split_data(args, kwargs):
    """Arrays become traced ``data``; everything else is static configuration."""
    dynamic, static = eqx.partition((tuple(args), dict(kwargs)), eqx.is_array)
    leaves = jax.tree_util.tree_leaves(dynamic)
    for leaf in leaves:
        if jnp.issubdtype(leaf.dtype, jnp.inexact) and not bool(jnp.all(jnp.isfinite(leaf))):
            raise ValueError(
                "the data contain NaN or inf; remove or impute those rows before calling wbbgen "
                "(weights cannot mask non-finite values)."
            )
    float_dtypes = {leaf.dtype for leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.floating)}
    if len(float_dtypes) > 1:
        raise TypeError(
            f"the data mix floating dtypes {sorted(map(str, float_dtypes))}; cast every array to one "
            "dtype (float32 for speed, float64 with jax_enable_x64 for accuracy)."
        )
    return dynamic, static


def static_part(args, kwargs):
    """The non-array part of model arguments (what :func:`split_data` keeps static)."""
    return eqx.partition((tuple(args), dict(kwargs)), eqx.is_array)[1]


def same_static(a, b) -> bool:
    """Whether two static parts of model arguments (:func:`static_part`) agree."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    try:
        return ta == tb and all(type(x) is type(y) and bool(x == y) for x, y in zip(la, lb))
    except Exception:  # leaves without a plain equality: never assume them equal
        return False
