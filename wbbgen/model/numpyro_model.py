r"""An :class:`~wbbgen.model.Objective` from a NumPyro model.

The model is traced once with concrete data (latent sites at their prior medians) to find its
sites (:mod:`wbbgen.model.sites`): the latent sites become θ (flat, unconstrained: NumPyro's
``biject_to`` of each support), the observed sites and the factors inside the observation plate
the per-observation log likelihoods ℓᵢ, the other factors prior-side terms. Then

* **masked rows are dropped**: a row whose every observation is masked (``obs_mask=`` or
  ``numpyro.handlers.mask``) is removed from every data array indexed by observation (leading
  axis n) before the objective is built, so it has no weight, no place in the observation count
  n, in block weights or in data minibatches: the objective is the model's on the observed rows.
  Masked entries of kept rows contribute nothing. ``obs_mask``'s ``<name>_unobserved`` site is
  not a parameter (the WBB integrates masked observations out, it imputes nothing): it is held
  at a fixed value, and neither it nor the interleaved deterministic ``<name>`` is returned;
* **deterministic sites** (``numpyro.deterministic``) are evaluated on request
  (``Objective.deterministic``) from the constrained θ;
* **static arguments** (``static_args``) are closed over as constants, so the model may compute
  shapes from their values; every other array stays traced (one compilation for all data sets of
  the same shapes), the observed values always.

A model that cannot be traced with traced data (a shape computed from a data array) or traced
hyperparameters (a hyperparameter in Python control flow) is refused with the fix named.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import constrain_fn

from wbbgen._checks import is_array
from wbbgen._data import argument_names, per_row, split_data, static_names, static_spec, take_rows
from wbbgen.model.base import Objective, check_hyper_names
from wbbgen.model.hierarchical import find_local, marginalise
from wbbgen.model.inputs import TRACING_ERRORS, init_trace, prepare_data
from wbbgen.model.priors import improper, site_anchor, site_logq
from wbbgen.model.sites import (
    check_observed_shape,
    check_subsample,
    check_support,
    discrete_latent_error,
    find_plate,
    held_sites,
    is_factor,
    missing_data_error,
    per_observation,
    rows_observed,
    traced_frame,
)

__all__ = ["from_numpyro"]


class _Structure(NamedTuple):
    """What one trace of the model tells: its parts and the observation rows."""

    dynamic: Any  # traced data
    static: Any  # static configuration
    trace: dict
    latent: dict  # name -> site, trace order
    held: frozenset  # obs_mask's <name>_unobserved sites
    observed: dict  # observed site -> value
    frames: dict  # per-observation term -> plate frame (observed sites first, then factors)
    prior_factors: tuple
    deterministic: dict  # name -> shape
    num_obs: int
    keep: np.ndarray  # (n,) rows with at least one observation
    hyper: dict  # the hyperparameter values the model was traced with


def _call(static, data, hyper):
    a, kw = eqx.combine(data, static)
    return a, {**kw, **hyper}


def _held_value(held, offset, site):
    """The fixed value of a held site (0 in the unconstrained space, or ``offset``)."""
    if site["type"] != "sample" or site["name"] not in held:
        return None
    fn = site["fn"]
    if fn.support.is_discrete:
        return jnp.full(fn.shape(), 0 if offset == 0 else 1)
    transform = biject_to(fn.support)
    return transform(jnp.full(transform.inverse_shape(fn.shape()), offset, jnp.result_type(float)))


def _with_held(model, held, offset=0.0):
    return handlers.substitute(model, substitute_fn=partial(_held_value, held, offset)) if held else model


def _factor_error(name, site) -> ValueError:
    return ValueError(
        f"factor {name!r} has shape {site['fn'].batch_shape} outside any plate: wbbgen cannot tell a per-observation "
        "term from a prior-side one. If it holds one term per observation, put it inside the observation plate "
        "(`with numpyro.plate('data', n): numpyro.factor(...)`), where wbbgen weights it like an observed site; if "
        "it is a prior-side term (a penalty on the parameters), sum it to a scalar: numpyro.factor(name, jnp.sum(...))."
    )


def _structure(model, args, kwargs, spec, hyper0, obs_plate) -> _Structure:
    dynamic, static = split_data(args, kwargs, spec)
    a0, kw0 = _call(static, dynamic, hyper0)
    tr = init_trace(model, a0, kw0)
    check_subsample(tr)
    held = frozenset(held_sites(tr))
    observed, factors, latent, det = {}, {}, {}, {}
    for name, site in tr.items():
        if site["type"] == "deterministic":
            det[name] = tuple(np.shape(site["value"]))
        elif site["type"] == "sample" and site["is_observed"]:
            (factors if is_factor(site) else observed)[name] = site
        elif site["type"] == "sample" and name not in held:
            latent[name] = site
    frames = {name: find_plate(site, obs_plate) for name, site in observed.items()}
    plates = {f.name for f in frames.values()} if obs_plate is None else {obs_plate}
    if not plates:  # factors only: the plate that holds them indexes the observations
        plates = {find_plate(s, None).name for s in factors.values() if s["cond_indep_stack"]}
    prior_factors = []
    for name, site in factors.items():
        frame = next((f for f in site["cond_indep_stack"] if f.name in plates), None)
        if frame is not None:
            frames[name] = frame
            per_observation(site, frame)  # checks its axis now
        elif site["cond_indep_stack"] or site["fn"].batch_shape == ():
            prior_factors.append(name)
        else:
            raise _factor_error(name, site)
    if not frames:
        raise missing_data_error(tr)
    for site in latent.values():
        if site["fn"].is_discrete:
            raise discrete_latent_error(site)
    for name, site in observed.items():
        check_observed_shape(site, frames[name])
        check_support(site)
    sizes = {f.size for f in frames.values()}
    if len(sizes) > 1:
        raise ValueError(
            f"observed sites sit in plates of different sizes {dict((k, f.size) for k, f in frames.items())}; "
            "wbbgen needs one weight per observation shared by all observed sites."
        )
    if not latent:
        raise ValueError("the model has no latent sample site to optimise.")
    n = sizes.pop()
    keep = np.zeros(n, bool)
    for name, frame in frames.items():
        keep |= rows_observed(tr[name], frame)
    interleaved = {h[: -len("_unobserved")] for h in held}
    return _Structure(
        dynamic,
        static,
        tr,
        latent,
        held,
        {k: np.asarray(s["value"]) for k, s in observed.items()},
        frames,
        tuple(prior_factors),
        {k: v for k, v in det.items() if k not in interleaved},
        int(n),
        keep,
        dict(hyper0),
    )


def _objective(model, st: _Structure, hyper0, kept_rows=None, local=True) -> Objective:
    hyper_names = tuple(hyper0)
    latent, frames, factors = st.latent, st.frames, st.prior_factors
    call = partial(_call, st.static)
    init_flat, unravel = ravel_pytree({k: biject_to(s["fn"].support).inv(s["value"]) for k, s in latent.items()})
    held = _with_held(model, st.held)

    def model_trace(theta, hyper, data, held_model=held):
        a, kw = call(data, hyper)
        params = constrain_fn(held_model, a, kw, unravel(theta))
        tr = handlers.trace(handlers.substitute(handlers.seed(held_model, 0), data=params)).get_trace(*a, **kw)
        return params, tr

    def constrain(theta, hyper, data):
        return model_trace(theta, hyper, data)[0]

    def log_likelihood(theta, hyper, data, held_model=held):
        _, tr = model_trace(theta, hyper, data, held_model)
        # The plate as traced now: a data minibatch (wbbgen.minibatch) shrinks it to B rows.
        return {name: per_observation(tr[name], traced_frame(tr[name], frames[name])) for name in frames}

    def factor_terms(tr):
        return sum(jnp.sum(tr[f]["fn"].log_prob(tr[f]["value"])) for f in factors)

    def log_prior(theta, hyper, data):
        _, tr = model_trace(theta, hyper, data)
        return sum(jnp.sum(tr[k]["fn"].log_prob(tr[k]["value"])) for k in latent) + factor_terms(tr)

    def log_jacobian(theta, hyper, data):
        _, tr = model_trace(theta, hyper, data)
        u = unravel(theta)
        return sum(jnp.sum(biject_to(tr[k]["fn"].support).log_abs_det_jacobian(u[k], tr[k]["value"])) for k in latent)

    def log_prior_anchored(theta, shift, hyper, data):
        _, tr = model_trace(theta, hyper, data)
        u, s = unravel(theta), unravel(shift)
        return sum(site_logq(tr[k]["fn"], u[k] - s[k]) for k in latent) + factor_terms(tr)

    def anchor(rng_key, hyper, data):
        a, kw = call(data, hyper)
        k_prior, k_tilt = jax.random.split(rng_key)
        # Latent sites are drawn from the prior; flat (ImproperUniform) sites cannot be, so
        # they are held at the prior median and get no anchor.
        flat = {k: latent[k]["value"] for k in latent if improper(latent[k]["fn"])}
        prior_tr = handlers.trace(handlers.substitute(handlers.seed(held, k_prior), data=flat)).get_trace(*a, **kw)
        shifts, noises = {}, {}
        for i, k in enumerate(latent):
            shifts[k], noises[k] = site_anchor(prior_tr[k]["fn"], prior_tr[k]["value"], jax.random.fold_in(k_tilt, i))
        return ravel_pytree(shifts)[0], ravel_pytree(noises)[0]

    names = tuple(st.deterministic)

    def deterministic(theta, hyper, data):
        _, tr = model_trace(theta, hyper, data)
        return {k: jnp.asarray(tr[k]["value"]) for k in names}

    if st.held:  # the masked entries must not feed any other site
        base = log_likelihood(init_flat, hyper0, st.dynamic)
        moved = log_likelihood(init_flat, hyper0, st.dynamic, _with_held(model, st.held, 0.5))
        if any(not np.allclose(base[k], moved[k], equal_nan=True) for k in base):
            raise ValueError(
                f"the model uses the masked entries of {sorted(n[: -len('_unobserved')] for n in st.held)} "
                "(obs_mask=) elsewhere: wbbgen does not impute masked observations (a WBB draw optimises, it does "
                "not sample them). Use only the observed entries downstream, or drop the masked rows."
            )

    signature = {
        "model": getattr(model, "__qualname__", repr(model)),
        "latent": {k: list(np.shape(s["value"])) for k, s in latent.items()},
        "observed": {k: list(v.shape) for k, v in st.observed.items()},
        "hyper": list(hyper_names),
    }
    joint = Objective(
        num_params=int(init_flat.size),
        num_obs=st.num_obs,
        init_params=init_flat,
        data=st.dynamic,
        obs_sites=tuple(frames),
        latent_shapes={k: tuple(np.shape(s["value"])) for k, s in latent.items()},
        observed=st.observed,
        constrain=constrain,
        log_likelihood=log_likelihood,
        log_prior=log_prior,
        log_prior_anchored=log_prior_anchored,
        anchor=anchor,
        signature=signature,
        deterministic=deterministic if names else None,
        deterministic_shapes=dict(st.deterministic),
        kept_rows=kept_rows,
        log_jacobian=log_jacobian,
    )
    if not local:
        return joint
    index = unravel(jnp.arange(init_flat.size))
    per_obs = lambda th, h, d: sum(log_likelihood(th, h, d).values())  # noqa: E731
    layout = find_local(latent, index, per_obs, init_flat, st.num_obs, hyper0, st.dynamic)
    if layout is None:
        return joint
    site_trace = lambda th, h, d: model_trace(th, h, d)[1]  # noqa: E731
    return marginalise(joint, layout, site_trace, index, factors, hyper0)


def _check_traceable(model, args, kwargs, names, static_args, st: _Structure) -> None:
    """Trace the model abstractly with traced data, then with traced hyperparameters, and name
    the fix when a concrete value is needed (a shape from data, a hyperparameter in an ``if``)."""
    values = {k: s["value"] for k, s in st.latent.items()}
    held = _with_held(model, st.held)
    concrete = {k: np.asarray(v) for k, v in st.hyper.items()}  # numpy: stays concrete under tracing
    everything = tuple(n for n in names if n is not None) + tuple(kwargs)

    def traces(extra, hyper_traced=False) -> bool:
        dynamic, static = split_data(args, kwargs, static_spec(args, kwargs, (*static_args, *extra), names))

        def run(data, hyper):
            a, kw = _call(static, data, hyper)
            handlers.trace(handlers.substitute(handlers.seed(held, 0), data=values)).get_trace(*a, **kw)

        try:
            if hyper_traced:
                jax.eval_shape(lambda h: run(dynamic, h), st.hyper)
            else:
                jax.eval_shape(lambda d: run(d, concrete), dynamic)
        except TRACING_ERRORS:
            return False
        return True

    hyper_error = ValueError(
        f"the model uses the value of a hyperparameter ({', '.join(st.hyper)}) in Python (an `if`, `int()`, a "
        "shape), but hyperparameters are traced so that one compilation serves every value: use them "
        "arithmetically (jnp.where for a branch)."
    )
    if traces(()):
        if st.hyper and not traces(everything, hyper_traced=True):
            raise hyper_error
        return
    given = dict(zip(names, args)) | dict(kwargs)
    observed = [id(v) for v in st.observed.values()]
    arrays = [
        n
        for n in everything
        if n not in static_args
        and any(is_array(x) for x in jax.tree_util.tree_leaves(given[n]))
        and id(given[n]) not in observed
    ]
    found = next(((n,) for n in arrays if traces((n,))), tuple(arrays) if arrays and traces(arrays) else None)
    if found is None and st.hyper and not traces(everything, hyper_traced=True):
        raise hyper_error
    fix = f"`static_args={found!r}`" if found else "`static_args=(<names>,)`"
    raise ValueError(
        "the model needs the values of a data argument to build its shapes (e.g. `J = int(g.max()) + 1` or "
        "`len(np.unique(g))`), but wbbgen traces data arrays so that one compilation serves every data set. "
        f"Pass {fix} to exact_wbb, nuts_reference or AmortizedWBB to close over those arguments as constants "
        "(the model then computes on them with numpy: `g.max()`, not `jnp.max(g)`), or pass the sizes as Python "
        "ints (e.g. `num_groups=int(g.max()) + 1`). The observed data stay traced."
    )


def _check_static_not_observed(st: _Structure, names, static_args) -> None:
    static_args_, static_kwargs = st.static  # the values the model was traced with
    given = dict(zip(names, static_args_)) | dict(static_kwargs)
    observed = {id(v): k for k, v in ((k, st.trace[k]["value"]) for k in st.observed)}
    for name in static_args:
        hit = [observed[id(x)] for x in jax.tree_util.tree_leaves(given.get(name)) if id(x) in observed]
        if hit:
            raise ValueError(
                f"`static_args` names {name!r}, the observed data of site {hit[0]!r}: observed values stay traced "
                "(wbbgen weights them, takes minibatches of their rows and shards them); name only the arguments "
                "the model computes shapes from."
            )


def _check_dropped(full: Objective, reduced: Objective, keep, hyper0) -> None:
    """The model on the kept rows must give the kept rows' log likelihoods of the full model."""
    if full.latent_shapes != reduced.latent_shapes:
        return  # per-row latent sites shrank with the rows: nothing to compare one to one
    theta = reduced.init_params
    h = {k: jnp.asarray(v) for k, v in hyper0.items()}
    a = full.log_likelihood(theta, h, full.data)
    b = reduced.log_likelihood(theta, h, reduced.data)
    tol = 1e-4 if theta.dtype == jnp.float32 else 1e-9
    for k in b:
        x, y = np.asarray(a[k])[keep], np.asarray(b[k])
        if x.shape != y.shape or not np.allclose(x, y, rtol=tol, atol=tol):
            raise ValueError(_drop_message(int((~keep).sum()), "its log likelihood on the kept rows alone differs"))


def _drop_message(dropped: int, what: str) -> str:
    return (
        f"{dropped} rows have every observation masked (obs_mask= / handlers.mask), and wbbgen drops such rows "
        f"from every data array indexed by observation (leading axis n); but the model fails on the kept rows: "
        f"{what}. Put the rows first in every per-observation array, or drop the masked rows before calling wbbgen."
    )


def from_numpyro(model, args, kwargs, hyper_names, obs_plate=None, hyper_init=None, static_args=()) -> Objective:
    """The :class:`Objective` of ``model(*args, **kwargs, **hyper)`` (see the module docs).

    Args:
        model: a NumPyro model, observed sites inside a plate over observations.
        args, kwargs: its data arguments.
        hyper_names: keyword names that carry hyperparameters (traced).
        obs_plate: the plate indexing observations, when a site sits in several.
        hyper_init: ``{name: value}`` to trace the model with (default 1.0 each).
        static_args: names of arguments to close over as constants.

    Example:
        >>> from wbbgen.model.numpyro_model import from_numpyro
        >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
        >>> def model(y, mask, *, lam=1.0):
        ...     mu = numpyro.sample("mu", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)))
        ...     numpyro.deterministic("mu2", 2 * mu)
        ...     with numpyro.plate("data", y.shape[0]):
        ...         numpyro.sample("y", dist.Normal(mu, 1.0), obs=y, obs_mask=mask)
        >>> obj = from_numpyro(model, (np.arange(4.0), np.array([True, False, True, True])), {}, ("lam",))
        >>> obj.num_obs, obj.obs_sites, obj.kept_rows.tolist(), obj.deterministic_shapes
        (3, ('y_observed',), [True, False, True, True], {'mu2': ()})
    """
    check_hyper_names(model, hyper_names)
    static_args = static_names(static_args)
    clash = set(static_args) & set(hyper_names)
    if clash:
        raise ValueError(f"{sorted(clash)} are named both in `static_args` and in `hyper`; hyperparameters are traced.")
    hyper0 = {name: jnp.asarray((hyper_init or {}).get(name, 1.0)) for name in hyper_names}
    args, kwargs = prepare_data(model, args, kwargs, hyper0)
    names = argument_names(model, len(args))
    spec = static_spec(args, kwargs, static_args, names)
    full = _structure(model, args, kwargs, spec, hyper0, obs_plate)
    _check_static_not_observed(full, names, static_args)
    _check_traceable(model, args, kwargs, names, static_args, full)
    if full.keep.all():
        return _objective(model, full, hyper0)
    if not full.keep.any():
        raise ValueError("every observation is masked (obs_mask= / handlers.mask): there is no data to weight.")
    rows = per_row((tuple(args), dict(kwargs)), full.num_obs)
    kept_args, kept_kwargs = take_rows((tuple(args), dict(kwargs)), rows, np.flatnonzero(full.keep))
    try:
        reduced = _structure(model, kept_args, kept_kwargs, spec, hyper0, obs_plate)
    except (ValueError, TypeError, IndexError) as err:
        raise ValueError(_drop_message(int((~full.keep).sum()), str(err))) from err
    objective = _objective(model, reduced, hyper0, kept_rows=full.keep)
    reduced_joint = objective if objective.joint is None else objective.joint
    _check_dropped(_objective(model, full, hyper0, local=False), reduced_joint, full.keep, hyper0)
    return objective
