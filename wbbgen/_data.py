"""Model arguments: which parts are traced data and which are static configuration.

The one place that decides it, for the objective, the tuning criteria and the NUTS reference:

* arrays (numpy, JAX) are *data*: traced, so one compilation serves every data set of the
  same shapes; array-likes (a pandas Series or DataFrame, an xarray DataArray: anything with
  ``__array__``) are converted to numpy arrays first;
* everything else (Python numbers, strings, functions, None) is *static configuration*;
* arguments named in ``static_args`` are static even when they are arrays: the model sees
  their concrete values, so it may compute shapes from them (``J = int(g.max()) + 1``).

Example:
    >>> from wbbgen._data import split_data, static_spec
    >>> import numpy as np
    >>> dynamic, static = split_data((np.ones(3), 2), {"g": np.arange(3)}, static=static_spec(
    ...     (np.ones(3), 2), {"g": np.arange(3)}, static_args=("g",)))
    >>> [type(x).__name__ for x in dynamic[0]], dynamic[1]
    (['ndarray', 'NoneType'], {'g': None})
    >>> static[1]["g"]
    array([0, 1, 2])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from wbbgen._checks import is_array

__all__ = [
    "split_data",
    "static_part",
    "same_static",
    "static_spec",
    "static_names",
    "argument_names",
    "as_arrays",
    "array_from",
    "float_dtype",
    "FrozenStatic",
    "per_row",
    "take_rows",
]


def argument_names(fn: Callable, num_args: int, skip: int = 0) -> tuple[str | None, ...]:
    """The parameter name of each of ``num_args`` positional arguments of ``fn`` (after the
    first ``skip`` parameters); None where unknown (``*args``, or no signature)."""
    try:
        params = list(inspect.signature(fn).parameters.values())[skip:]
    except (TypeError, ValueError):
        return (None,) * num_args
    names: list[str | None] = []
    for p in params:
        if p.kind is inspect.Parameter.VAR_POSITIONAL or len(names) == num_args:
            break
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
    return tuple(names) + (None,) * (num_args - len(names))


def static_names(static_args) -> tuple[str, ...]:
    """``static_args`` as a tuple of names (one name may be given as a string).

    >>> from wbbgen._data import static_names
    >>> static_names("g"), static_names(["g", "J"]), static_names(None)
    (('g',), ('g', 'J'), ())
    """
    if static_args is None:
        return ()
    names = (static_args,) if isinstance(static_args, str) else tuple(static_args)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"`static_args` must name arguments by string (e.g. static_args=('g',)), got {bad!r}.")
    return names


def static_spec(args, kwargs, static_args: Iterable[str] = (), names: Sequence[str | None] | None = None):
    """The filter of :func:`split_data` with the arguments named in ``static_args`` static.

    Args:
        args, kwargs: the model's arguments.
        static_args: names of arguments whose values the model needs as constants (a name
            of a positional parameter, via ``names``, or a keyword).
        names: the parameter name of each positional argument (:func:`argument_names`).

    Returns:
        ``((f₀, f₁, …), {key: f})``, a prefix of ``(args, kwargs)``: ``False`` for a static
        argument, else :func:`equinox.is_array` (its arrays traced).
    """
    static_args = static_names(static_args)
    names = tuple(names) if names is not None else (None,) * len(args)
    known = {n for n in names if n is not None} | set(kwargs)
    for name in static_args:
        if not isinstance(name, str) or name not in known:
            shown = ", ".join(sorted(known)) or "none"
            raise ValueError(
                f"`static_args` names {name!r}, which is not an argument passed to the model (arguments "
                f"passed, by name: {shown}); name the data arguments whose values the model needs as constants."
            )
    spec_args = tuple(False if n in static_args else eqx.is_array for n in names)
    spec_kwargs = {k: False if k in static_args else eqx.is_array for k in kwargs}
    return spec_args, spec_kwargs


def _where(path) -> str:
    """``((0,), ...)`` key path -> ``args[0]`` / ``kwargs['y']`` (and any deeper keys)."""
    text = jax.tree_util.keystr(path)
    return {"[0]": "args", "[1]": "kwargs"}.get(text[:3], "data") + text[3:]


def float_dtype(leaves) -> np.dtype:
    """The floating dtype of the arrays among ``leaves`` when there is one, else JAX's default."""
    found = {np.dtype(x.dtype) for x in leaves if is_array(x) and jnp.issubdtype(x.dtype, jnp.floating)}
    return found.pop() if len(found) == 1 else np.dtype(jnp.result_type(float))


def array_from(value, where: str, float_dtype=None) -> np.ndarray:
    """``value`` (a list, a pandas Series/DataFrame, …) as a numeric numpy array; floating
    values take ``float_dtype`` (default: JAX's default float). Raises TypeError naming
    ``where`` when it is not numeric."""
    try:
        out = np.asarray(value)
    except Exception as err:  # noqa: BLE001 - whatever the object raises
        raise TypeError(f"{where} ({type(value).__name__}) cannot be converted to an array: {err}") from err
    if out.dtype == object or not (np.issubdtype(out.dtype, np.number) or out.dtype == bool):
        raise TypeError(
            f"{where} is a {type(value).__name__} of dtype {out.dtype}, not numbers; pass a numeric array "
            "(e.g. df[columns].to_numpy(dtype=float), or codes for categories)."
        )
    if np.issubdtype(out.dtype, np.floating):
        out = out.astype(float_dtype or jnp.result_type(float))
    return out


def _array_like(x) -> bool:
    return hasattr(x, "__array__") and not is_array(x) and not isinstance(x, (bool, int, float, complex, str))


def as_arrays(args, kwargs):
    """``(args, kwargs)`` with array-likes (pandas, xarray: objects with ``__array__``)
    converted to numpy arrays (floating ones in the floating dtype of the arrays passed)."""
    tree = (tuple(args), dict(kwargs))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    if not any(_array_like(x) for _, x in leaves):
        return tree
    dtype = float_dtype([x for _, x in leaves])
    out = [array_from(x, _where(p), dtype) if _array_like(x) else x for p, x in leaves]
    return jax.tree_util.tree_unflatten(treedef, out)


def split_data(args, kwargs, static=None):
    """``(dynamic, static)``: the arrays of the model's arguments (traced data) and the rest.

    Array-likes are converted first (:func:`as_arrays`). ``static`` is a filter from
    :func:`static_spec` (default: every array is data). Combine the parts back with
    ``equinox.combine(dynamic, static)``.

    Raises:
        ValueError: a data array holds NaN or inf (named by its position).
        TypeError: the data mix floating dtypes.
    """
    tree = as_arrays(args, kwargs)
    dynamic, static_tree = eqx.partition(tree, eqx.is_array if static is None else static)
    # Arrays made static are numpy arrays: the model computes on them in numpy (`int(g.max())`),
    # which stays concrete under tracing (a JAX operation would be traced).
    static_tree = jax.tree_util.tree_map(lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, static_tree)
    leaves = jax.tree_util.tree_flatten_with_path(dynamic)[0]
    for path, leaf in leaves:
        if jnp.issubdtype(leaf.dtype, jnp.inexact):
            bad = int(np.sum(~np.isfinite(np.asarray(leaf))))
            if bad:
                raise ValueError(
                    f"the data contain NaN or inf ({_where(path)}: {bad} non-finite value(s)); remove or impute "
                    "those rows before calling wbbgen (weights cannot mask non-finite values). To leave "
                    "observations out, pass obs_mask= to the observed site and any finite value in the "
                    "masked entries (e.g. np.nan_to_num(y))."
                )
    float_dtypes = {leaf.dtype for _, leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.floating)}
    if len(float_dtypes) > 1:
        raise TypeError(
            f"the data mix floating dtypes {sorted(map(str, float_dtypes))}; cast every array to one "
            "dtype (float32 for speed, float64 with jax_enable_x64 for accuracy)."
        )
    return dynamic, static_tree


def static_part(args, kwargs, static=None):
    """The static part of model arguments (what :func:`split_data` does not trace)."""
    static_tree = eqx.partition(as_arrays(args, kwargs), eqx.is_array if static is None else static)[1]
    return jax.tree_util.tree_map(lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, static_tree)


def _same_leaf(x, y) -> bool:
    if is_array(x) or is_array(y):
        return (
            is_array(x)
            and is_array(y)
            and np.shape(x) == np.shape(y)
            and np.dtype(x.dtype) == np.dtype(y.dtype)
            and bool(np.array_equal(np.asarray(x), np.asarray(y)))
        )
    return type(x) is type(y) and bool(x == y)


def same_static(a, b) -> bool:
    """Whether two static parts of model arguments (:func:`static_part`) agree (arrays
    named in ``static_args`` compare by shape, dtype and values)."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    try:
        return ta == tb and all(_same_leaf(x, y) for x, y in zip(la, lb))
    except Exception:  # leaves without a plain equality: never assume them equal
        return False


class FrozenStatic:
    """A static part of model arguments as a hashable value (a ``jax.jit`` static argument).

    Arrays among its leaves (``static_args``) hash by shape, dtype and bytes; other leaves must
    be hashable. ``.tree`` is the static part itself.
    """

    def __init__(self, tree):
        leaves, self._treedef = jax.tree_util.tree_flatten(tree)
        keys = []
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            if is_array(leaf):
                a = np.asarray(leaf)
                keys.append(("array", a.shape, str(a.dtype), a.tobytes()))
                continue
            try:
                hash(leaf)
            except TypeError as err:
                raise TypeError(
                    f"{_where(path)} ({type(leaf).__name__}) is neither an array nor a hashable constant; convert "
                    "it with np.asarray or bind it into the model with functools.partial."
                ) from err
            keys.append(leaf)
        self.tree = tree
        self._key = (self._treedef, tuple(keys))

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, FrozenStatic) and same_static(self.tree, other.tree)


def per_row(data, num_rows: int):
    """A tree like ``data``: True for arrays indexed by observation (leading axis ``num_rows``)."""
    return jax.tree_util.tree_map(lambda x: bool(is_array(x) and np.ndim(x) >= 1 and np.shape(x)[0] == num_rows), data)


def take_rows(data, mask, idx):
    """``data`` restricted to rows ``idx``: the arrays flagged by ``mask`` (:func:`per_row`)
    gathered along their first axis, the others whole."""

    def take(x, m):
        if not m:
            return x
        if isinstance(x, np.ndarray) and not isinstance(idx, jax.Array):
            return np.take(x, idx, axis=0)
        return jnp.take(x, idx, axis=0)

    return jax.tree_util.tree_map(take, data, mask)
