"""The inputs of a NumPyro model as wbbgen traces them: data conversion and the first trace.

Data arguments reach the model as arrays: array-likes (pandas, xarray) are converted to numpy
arrays, and an observed value given as a Python list or tuple is converted too (the first trace
shows which argument holds observed data).
"""

from __future__ import annotations

import jax
from numpyro import handlers
from numpyro.infer.initialization import init_to_median

from wbbgen._checks import is_array
from wbbgen._data import array_from, as_arrays, float_dtype, split_data
from wbbgen.model.sites import is_factor

__all__ = ["prepare_data", "init_trace", "TRACING_ERRORS"]

#: What JAX raises when a traced value is used where a concrete one is needed.
TRACING_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerBoolConversionError,
)


def init_trace(model, args, kwargs):
    """The model's trace with every latent site at its prior median (15 draws, key 0)."""
    seeded = handlers.seed(model, jax.random.key(0))
    substituted = handlers.substitute(seeded, substitute_fn=init_to_median(num_samples=15))
    return handlers.trace(substituted).get_trace(*args, **kwargs)


def prepare_data(model, args, kwargs, hyper):
    """``(args, kwargs)`` as wbbgen traces them: array-likes (pandas, xarray) converted to
    arrays, and an observed value given as a Python list or tuple converted to an array (the
    argument that holds it). Raises ValueError for non-finite data, TypeError for data that mix
    floating dtypes and for observed values of any other non-array type.

    Example:
        >>> from wbbgen.model.inputs import prepare_data
        >>> import numpyro, numpyro.distributions as dist
        >>> def model(y, *, lam=1.0):
        ...     mu = numpyro.sample("mu", dist.Normal(0.0, 1.0 / lam))
        ...     with numpyro.plate("data", len(y)):
        ...         numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
        >>> args, kwargs = prepare_data(model, ([0.5, 1.5],), {}, {"lam": 1.0})
        >>> type(args[0]).__name__, args[0].shape
        ('ndarray', (2,))
    """
    args, kwargs = as_arrays(args, kwargs)
    split_data(args, kwargs)  # finite data of one floating dtype, before the model sees them
    tr = init_trace(model, args, {**kwargs, **hyper})
    args, kwargs = list(args), dict(kwargs)
    dtype = float_dtype(jax.tree_util.tree_leaves((args, kwargs)))
    for name, site in tr.items():
        if site["type"] != "sample" or not site["is_observed"] or is_factor(site) or is_array(site["value"]):
            continue
        value = site["value"]
        where = [i for i, a in enumerate(args) if a is value] + [k for k, a in kwargs.items() if a is value]
        if not isinstance(value, (list, tuple)) or not where:
            raise TypeError(
                f"observed site {name!r} was given a {type(value).__name__} as its data; pass a numpy or JAX "
                "array (np.asarray(y)), or a pandas Series/DataFrame."
            )
        for w in where:
            label = f"the data of observed site {name!r} ({'args' if isinstance(w, int) else 'kwargs'}[{w!r}])"
            if isinstance(w, int):
                args[w] = array_from(value, label, dtype)
            else:
                kwargs[w] = array_from(value, label, dtype)
    return tuple(args), kwargs
