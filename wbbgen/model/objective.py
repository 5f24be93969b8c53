"""``build_objective``: any model wbbgen accepts, reduced to an :class:`Objective`."""

from __future__ import annotations

from wbbgen.model.base import FunctionModel, Objective
from wbbgen.model.functions import from_functions
from wbbgen.model.numpyro_model import from_numpyro

__all__ = ["Objective", "FunctionModel", "build_objective"]


def build_objective(
    model, args=(), kwargs=None, hyper_names=(), obs_plate=None, hyper_init=None, static_args=()
) -> Objective:
    """Reduce ``model(*args, **kwargs, **hyper)`` to an :class:`Objective`.

    Args:
        model: a NumPyro model (observed sites inside a plate over observations,
            hyperparameters as keyword arguments) or a :class:`FunctionModel`.
        args, kwargs: the model's data arguments (arrays are traced, the rest static; a list
            or pandas object holding observed data is converted to an array).
        hyper_names: keyword names that carry hyperparameters (traced, never constants).
        obs_plate: name of the plate indexing observations, when a site sits in several.
        hyper_init: ``{name: value}`` the model is traced with to find its sites' shapes
            (default 1.0 each); array-valued hyperparameters pass an array of their shape.
        static_args: names of data arguments the model needs as constants (it computes
            shapes from their values, e.g. ``J = int(g.max()) + 1``); never the observed data.

    Example:
        >>> from wbbgen.model import build_objective
        >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
        >>> def groups(g, y, *, lam=1.0):
        ...     a = numpyro.sample("a", dist.Normal(0, 1 / jnp.sqrt(lam)).expand([int(g.max()) + 1]).to_event(1))
        ...     with numpyro.plate("data", y.shape[0]):
        ...         numpyro.sample("y", dist.Normal(a[g], 1.0), obs=y)
        >>> obj = build_objective(groups, (np.array([0, 1, 1, 2]), np.zeros(4)), {}, ("lam",), static_args=("g",))
        >>> obj.latent_shapes, obj.num_obs
        ({'a': (3,)}, 4)
    """
    kwargs = dict(kwargs or {})
    clash = set(hyper_names) & set(kwargs)
    if clash:
        raise ValueError(f"{sorted(clash)} are given both as model keywords and in `hyper`; pass them in `hyper` only.")
    if isinstance(model, FunctionModel):
        return from_functions(model, args, kwargs, tuple(hyper_names), static_args)
    if not callable(model):
        raise TypeError(f"`model` must be a NumPyro model function or a FunctionModel, got {model!r}.")
    return from_numpyro(model, args, kwargs, tuple(hyper_names), obs_plate, hyper_init, static_args)
