"""NUTS reference posteriors over a hyperparameter grid (the only module that imports BlackJAX).

For every grid point λ the target is the model's posterior p(θ | y, λ) ∝ p(y | θ) p(θ | λ),
sampled with BlackJAX NUTS after Stan-style window adaptation (step size and diagonal mass
matrix, per chain). The potential is numpyro's ``potential_energy`` — the function that
``initialize_model(..., dynamic_args=True)`` returns a generator of — evaluated with λ as a
*traced* model keyword, so one compiled program serves the whole grid.

Grid strategy (``grid_method``):

* ``"map"`` (default): one compiled per-λ program (chains vmapped), called for each λ from
  a host loop with a tqdm bar; the program is cached, so a new grid of any length, a new
  key or new data of the same shapes is not recompiled.
* ``"scan"``: ``lax.map`` over λ inside one compiled program (no progress bar).
* ``"vmap"``: ``jax.vmap`` over λ. NUTS trees are ``while_loop`` loops; batched over λ every
  lane waits for the deepest tree at any λ, so where the tree size varies with λ (a weak
  prior on near-separable data) it is several times slower than the other two.

``map`` is the default: as fast as ``scan`` on the problems measured (see the benchmarks
page), robust to heterogeneous λ, and it reports progress.

Deterministic sites (``numpyro.deterministic``) are returned in ``posterior`` beside the latent
sites, as NumPyro's MCMC returns them; the diagnostics are computed on the latent sites.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from wbbgen._data import FrozenStatic, argument_names, split_data, static_spec
from wbbgen.convert import build_inference_data
from wbbgen.model.inputs import TRACING_ERRORS, prepare_data

__all__ = ["nuts_reference", "ReferenceDiagnosticsWarning"]

_GRID_METHODS = ("map", "scan", "vmap")
RHAT_MAX = 1.01
ESS_MIN = 400


class ReferenceDiagnosticsWarning(UserWarning):
    """NUTS diagnostics (R-hat, bulk ESS, divergences) failed at some grid points."""


class _Static(NamedTuple):
    """Hashable configuration of the compiled sampler (a change means a new compilation)."""

    model: Callable
    static: FrozenStatic  # the non-array model arguments (and those named in static_args)
    hyper_names: tuple
    num_chains: int
    num_warmup: int
    num_samples: int
    grid_method: str


def nuts_reference(
    rng_key: jax.Array,
    model: Callable,
    *model_args: Any,
    hyper: Mapping[str, Sequence[float] | np.ndarray],
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    progress_bar: bool = True,
    grid_method: str = "map",
    static_args: Sequence[str] = (),
    **model_kwargs: Any,
):
    """Sample the posterior of ``model`` with NUTS at every point of a hyperparameter grid.

    For each λ in the outer product of the grids in ``hyper`` (dims in dict order), runs
    ``num_chains`` independent chains of BlackJAX NUTS on
    log p(θ | y, λ) = log p(y | θ) + log p(θ | λ) + const (in unconstrained space, with the
    log-Jacobian), each with its own window adaptation (``num_warmup`` steps), then keeps
    ``num_samples`` draws. λ enters the model as keyword arguments.

    Args:
        rng_key: a JAX PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``).
        model: a NumPyro model with continuous latent sites, taking each name in ``hyper``
            as a keyword argument.
        *model_args: positional model arguments (arrays are traced, Python scalars static).
        hyper: hyperparameter name -> 1-d grid of values.
        num_chains, num_warmup, num_samples: per grid point; all positive.
        progress_bar: show a tqdm bar over the grid (``grid_method="map"`` only).
        grid_method: ``"map"`` (default), ``"scan"`` or ``"vmap"`` (see the module docs).
        static_args: names of data arguments the model needs as constants (it computes shapes
            from their values, e.g. ``J = int(g.max()) + 1``); arrays are traced otherwise.
        **model_kwargs: other keyword arguments of ``model``.

    Returns:
        InferenceData (layout of :func:`wbbgen.convert.build_inference_data`) with groups
        ``posterior`` (latent and deterministic sites, constrained, dims ``(chain, draw, *hyper, ...)``),
        ``log_likelihood`` (per observed site and observation), ``observed_data`` and
        ``sample_stats`` (``diverging``, ``acceptance_rate``, ``tree_depth``, ``n_steps``,
        ``lp`` = unconstrained log density incl. log-Jacobian, ``energy``, ``step_size``).

    Warns:
        ReferenceDiagnosticsWarning: naming the grid points with R-hat > 1.01, bulk
        ESS < 400 or any divergence.

    Example:
        >>> def model(x, y, lam=1.0):
        ...     b = numpyro.sample("b", dist.Normal(0, 1 / jnp.sqrt(lam)).expand([x.shape[1]]))
        ...     with numpyro.plate("data", x.shape[0]):
        ...         numpyro.sample("y", dist.Bernoulli(logits=x @ b), obs=y)
        >>> idata = nuts_reference(jax.random.key(0), model, x, y,
        ...                        hyper={"lam": [0.1, 1.0, 10.0]})  # doctest: +SKIP
        >>> idata.posterior["b"].sel(lam=1.0).dims  # doctest: +SKIP
        ('chain', 'draw', 'b_dim_0')
    """
    try:
        import blackjax  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("nuts_reference needs BlackJAX, a dependency of wbbgen: `pip install blackjax`.") from err
    import numpyro.infer.util as nutil

    for name, value in (
        ("num_chains", num_chains),
        ("num_warmup", num_warmup),
        ("num_samples", num_samples),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if grid_method not in _GRID_METHODS:
        raise ValueError(f"grid_method must be one of {_GRID_METHODS}, got {grid_method!r}.")
    grids = _check_hyper(model, hyper, model_kwargs)
    key_init, key_run = jax.random.split(_raw_key(rng_key))
    names = tuple(grids)
    mesh = np.meshgrid(*grids.values(), indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=-1)  # (G, n_hyper)
    grid_shape = tuple(len(g) for g in grids.values())
    first = dict(zip(names, points[0].tolist(), strict=True))
    model_args, model_kwargs = prepare_data(model, model_args, model_kwargs, first)
    spec = static_spec(model_args, model_kwargs, static_args, argument_names(model, len(model_args)))
    dynamic, static_tree = split_data(model_args, model_kwargs, spec)

    # Set-up at the first grid point: validates the model, gives the unconstrained
    # structure of the latent sites and the observed data.
    info = nutil.initialize_model(
        key_init,
        model,
        model_args=model_args,
        model_kwargs={**model_kwargs, **first},
        dynamic_args=True,
    )
    trace = info.model_trace
    discrete = [
        k for k, s in trace.items() if s["type"] == "sample" and not s["is_observed"] and s["fn"].support.is_discrete
    ]
    if discrete:
        raise ValueError(
            f"nuts_reference needs continuous latent sites; {discrete} are discrete. Marginalise them out of the model."
        )
    template = jax.tree.map(jnp.zeros_like, info.param_info.z)
    observed = {k: np.asarray(s["value"]) for k, s in trace.items() if s["type"] == "sample" and s["is_observed"]}
    static = _Static(
        model,
        FrozenStatic(static_tree),
        names,
        int(num_chains),
        int(num_warmup),
        int(num_samples),
        "vmap" if grid_method == "vmap" else "scan",
    )
    keys = jax.random.split(key_run, len(points))
    hyper_points = jnp.asarray(points)

    try:
        if grid_method == "map":
            outs = []
            indices = range(len(points))
            if progress_bar:
                from tqdm.auto import tqdm

                indices = tqdm(indices, desc="nuts_reference", unit="λ")
            for g in indices:
                out = _sample_grid(keys[g : g + 1], hyper_points[g : g + 1], template, dynamic, static=static)
                outs.append(jax.device_get(out))
            out = jax.tree.map(lambda *xs: np.concatenate(xs), *outs)
        else:
            out = jax.device_get(_sample_grid(keys, hyper_points, template, dynamic, static=static))
    except TRACING_ERRORS as err:
        raise ValueError(
            "the model needs the values of a data argument to build its shapes (e.g. `J = int(g.max()) + 1`), but "
            "nuts_reference traces data arrays; name those arguments with `static_args=(...)` to close over them "
            f"as constants, or pass the sizes as Python ints ({type(err).__name__})."
        ) from err

    def layout(x):  # (G, chain, draw, ...) -> (chain, draw, *grid_shape, ...)
        x = np.asarray(x).reshape(grid_shape + x.shape[1:])
        k = len(grid_shape)
        return np.moveaxis(x, (k, k + 1), (0, 1))

    posterior, log_lik, stats = jax.tree.map(layout, out)
    idata = build_inference_data(
        posterior,
        grids,
        log_likelihood=log_lik,
        observed_data=observed,
        sample_stats=stats,
        attrs={
            "inference_library": "blackjax",
            "inference_library_version": blackjax.__version__,
            "sampler": "nuts",
            "num_warmup": int(num_warmup),
            "grid_method": grid_method,
        },
    )
    _warn_diagnostics(idata, names, tuple(template))
    return idata


@partial(jax.jit, static_argnames="static")
def _sample_grid(keys, hyper_points, template, dynamic, *, static: _Static):
    """Warm up and sample every grid point: pure, jitted, cached on ``static``."""
    import blackjax
    import numpyro.infer.util as nutil

    args, kwargs = eqx.combine(dynamic, static.static.tree)
    c, nw, ns = static.num_chains, static.num_warmup, static.num_samples

    def one_point(key, values):
        kw = {**kwargs, **dict(zip(static.hyper_names, values, strict=True))}

        def logdensity(z):
            return -nutil.potential_energy(static.model, args, kw, z)

        warmup = blackjax.window_adaptation(
            blackjax.nuts,
            logdensity,
            adaptation_info_fn=blackjax.adaptation.base.get_filter_adapt_info_fn(),
        )

        def one_chain(key):
            key_z, key_warm, key_draw = jax.random.split(key, 3)
            leaves, tdef = jax.tree.flatten(template)
            z_keys = jax.random.split(key_z, len(leaves))
            z0 = tdef.unflatten(
                [  # numpyro's init_to_uniform: U(-2, 2), unconstrained
                    jax.random.uniform(k, t.shape, t.dtype, -2.0, 2.0) for k, t in zip(z_keys, leaves, strict=True)
                ]
            )
            (state, params), _ = warmup.run(key_warm, z0, num_steps=nw)
            kernel = blackjax.nuts(logdensity, **params)

            def step(state, key):
                state, info = kernel.step(key, state)
                stats = {
                    "diverging": info.is_divergent,
                    "acceptance_rate": info.acceptance_rate,
                    "tree_depth": info.num_trajectory_expansions,
                    "n_steps": info.num_integration_steps,
                    "lp": state.logdensity,
                    "energy": info.energy,
                }
                return state, (state.position, stats)

            _, (z, stats) = jax.lax.scan(step, state, jax.random.split(key_draw, ns))
            stats["step_size"] = jnp.broadcast_to(params["step_size"], (ns,))
            return z, stats

        z, stats = jax.vmap(one_chain)(jax.random.split(key, c))
        posterior = nutil.constrain_fn(static.model, args, kw, z, return_deterministic=True, batch_ndims=2)
        latent = {k: posterior[k] for k in z}
        log_lik = nutil.log_likelihood(static.model, latent, *args, parallel=True, batch_ndims=2, **kw)
        return posterior, log_lik, stats

    if static.grid_method == "vmap":
        return jax.vmap(one_point)(keys, hyper_points)
    return jax.lax.map(lambda kv: one_point(*kv), (keys, hyper_points))


# --------------------------------------------------------------------------- helpers


def _raw_key(rng_key) -> jax.Array:
    """Accept new-style typed keys and legacy uint32 keys; return a legacy key."""
    key = jnp.asarray(rng_key) if not isinstance(rng_key, jax.Array) else rng_key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    if key.shape != (2,) or key.dtype != jnp.uint32:
        raise ValueError(
            f"rng_key must be a single PRNG key (jax.random.key(0)), got shape {key.shape} and dtype {key.dtype}."
        )
    return key


def _check_hyper(model, hyper, model_kwargs) -> dict[str, np.ndarray]:
    if not isinstance(hyper, Mapping) or not hyper:
        raise ValueError('hyper must be a non-empty dict of name -> 1-d grid, e.g. hyper={"lam": [0.1, 1.0]}.')
    try:
        params = inspect.signature(model).parameters
    except (TypeError, ValueError):  # builtins, some C callables: cannot check
        params = None
    var_kw = params is None or any(p.kind is p.VAR_KEYWORD for p in params.values())
    grids = {}
    for name, grid in hyper.items():
        accepts = var_kw or (
            name in params and params[name].kind in (params[name].POSITIONAL_OR_KEYWORD, params[name].KEYWORD_ONLY)
        )
        if not accepts:
            raise ValueError(
                f"hyper name {name!r} is not a keyword argument of the model "
                f"{getattr(model, '__name__', model)!r}; add `{name}=...` to its signature."
            )
        if name in model_kwargs:
            raise ValueError(f"{name!r} is given both in hyper and as a model keyword argument; pass it in hyper only.")
        grid = np.asarray(grid, dtype=float)
        if grid.ndim == 0:
            grid = grid[None]
        if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
            raise ValueError(f"hyper[{name!r}] must be a non-empty 1-d grid of finite numbers, got {grid!r}.")
        grids[name] = grid
    return grids


def _worst(ds, names, reduce, fill) -> np.ndarray:
    """Reduce every variable of ``ds`` over its non-hyper dims, then across variables."""
    per_var = [getattr(ds[v].fillna(fill), reduce)([d for d in ds[v].dims if d not in names]) for v in ds.data_vars]
    return getattr(np, reduce)(np.stack([np.asarray(a) for a in per_var]), 0).ravel()


def _warn_diagnostics(idata, names, sites=None) -> None:
    """Warn naming the grid points with R-hat > 1.01, bulk ESS < 400 or divergences of the
    latent ``sites`` (default: every posterior variable).

    NaN R-hat/ESS (constant draws: a stuck chain) count as failures.
    """
    import arviz as az

    post = idata.posterior
    if hasattr(post, "to_dataset"):  # arviz 1.x: a DataTree node
        post = post.to_dataset()
    if sites is not None:
        post = post.drop_vars([v for v in post.data_vars if v not in sites])
    with warnings.catch_warnings():  # constant draws make ArviZ warn; they show as NaN
        warnings.simplefilter("ignore")
        rhat = _worst(az.rhat(post), names, "max", np.inf)
        ess = _worst(az.ess(post, method="bulk"), names, "min", 0.0)
    n_div = np.asarray(idata.sample_stats["diverging"].sum(["chain", "draw"])).ravel()
    mesh = [m.ravel() for m in np.meshgrid(*(post[n].values for n in names), indexing="ij")]

    def where(bad):
        if len(names) == 1:
            return f"{names[0]}=[{', '.join(f'{mesh[0][i]:g}' for i in bad)}]"
        return ", ".join("(" + ", ".join(f"{n}={m[i]:g}" for n, m in zip(names, mesh, strict=True)) + ")" for i in bad)

    problems = []
    if (bad := np.flatnonzero(rhat > RHAT_MAX)).size:
        problems.append(f"R-hat > {RHAT_MAX} at {where(bad)} (max {np.max(rhat[bad]):.3f})")
    if (bad := np.flatnonzero(ess < ESS_MIN)).size:
        problems.append(f"bulk ESS < {ESS_MIN} at {where(bad)} (min {np.min(ess[bad]):.0f})")
    if (bad := np.flatnonzero(n_div > 0)).size:
        problems.append(f"divergences at {where(bad)} ({int(n_div[bad].sum())} in total)")
    if problems:
        warnings.warn(
            "nuts_reference: unreliable reference: " + "; ".join(problems) + ". Increase "
            "num_warmup/num_samples or reparameterise; see az.summary(idata.posterior.sel(...)).",
            ReferenceDiagnosticsWarning,
            stacklevel=3,
        )
