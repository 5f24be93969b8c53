r"""The weighted objective, built from a NumPyro model or from a plain log-likelihood.

For unconstrained parameters θ (a flat vector), observation weights w and hyperparameters λ,

.. math::

    L(θ; w, λ) = \sum_i w_i\,(-\ell_i(θ, λ)) - \log π_λ(θ),
    \qquad \ell_i(θ, λ) = \log p(y_i \mid T(θ), λ),

where T maps θ to the constrained space (NumPyro's ``biject_to`` of each site's support) and
the prior term depends on the prior scheme (:mod:`wbbgen.prior`). Two prior densities are
exposed:

* :func:`log_prior` -- the prior density of the *constrained* value T(θ), **without** the
  Jacobian (a WBB optimiser is a weighted MAP in the model's own parametrisation; NumPyro's
  ``potential_energy`` adds log|J|, which is right for MCMC and wrong here);
* :func:`log_prior_anchored` -- the randomised prior on the *unconstrained* space (density
  q_λ of θ there, Jacobian included), shifted by a random offset: :math:`\log q_λ(θ - a)`.
  For a site on the real line a = θ₀ − mode(q_λ) with θ₀ a prior draw; for a Gaussian prior
  N(m, Σ) this is −½(θ − θ₀)ᵀΣ⁻¹(θ − θ₀), the randomised prior. For a constrained site
  (HalfNormal, Exponential, Gamma, LogNormal scales; Beta, Uniform probabilities) a is drawn
  from the prior's Gaussian approximation at its mode, a = z/(−∂²log q_λ(mode))^{1/2},
  z ~ N(0, I) -- the same law for a Gaussian, and no anchors deep in the skewed tails of
  log-scale densities (a copy of log σ's density shifted to such an anchor pinned σ at 2× its
  posterior sd in the calibration study). A flat prior (``ImproperUniform``, e.g. an
  unpenalised intercept) has nothing to anchor: its site gets a zero offset.

This is the only module that knows NumPyro's conventions (sign, spaces, plates). Everything
else sees an :class:`Objective`: pure functions of ``(theta, hyper, data)`` where ``hyper`` is
a dict of traced scalars and ``data`` the model's array arguments (traced, so one
compilation serves every λ and every data set of the same shape).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions import ExpandedDistribution, ImproperUniform, Independent, MaskedDistribution
from numpyro.distributions.transforms import IdentityTransform, IndependentTransform, biject_to
from numpyro.infer.initialization import init_to_median

from wbbgen._data import split_data

__all__ = ["Objective", "FunctionModel", "build_objective", "unconstrained_mode"]

#: Newton iterations used to locate the mode of each prior in the unconstrained space.
_MODE_ITERS = 30


class Objective(NamedTuple):
    """A model reduced to pure functions of flat unconstrained parameters.

    Attributes:
        num_params: d, the length of θ.
        num_obs: n, the number of weighted observations.
        init_params: a starting θ (the prior medians), shape ``(d,)``.
        data: the model's array arguments, passed back to every function (traced).
        obs_sites: names of the observed sites (one ``log_likelihood`` entry each).
        latent_shapes: constrained shape of each latent site.
        observed: observed values, for ``observed_data`` in InferenceData.
        constrain: ``(theta, hyper, data) -> {site: value}`` in the constrained space.
        log_likelihood: ``(theta, hyper, data) -> {obs_site: (n,)}``.
        log_prior: ``(theta, hyper, data) -> scalar``, constrained density, no Jacobian.
        log_prior_anchored: ``(theta, shift, hyper, data) -> scalar``, log q_λ(θ − shift).
        anchor: ``(rng_key, hyper, data) -> (shift, noise)``: a prior draw's offset from
            the prior mode, and the same offset standardised for the generator.
        signature: a description of the model used to match saved generators.
    """

    num_params: int
    num_obs: int
    init_params: jax.Array
    data: Any
    obs_sites: tuple[str, ...]
    latent_shapes: dict[str, tuple[int, ...]]
    observed: dict[str, np.ndarray]
    constrain: Callable
    log_likelihood: Callable
    log_prior: Callable
    log_prior_anchored: Callable
    anchor: Callable
    signature: dict


class FunctionModel(NamedTuple):
    """A model given as plain functions instead of a NumPyro program.

    Args:
        log_likelihood: ``(theta, *data) -> (n,)`` per-observation log likelihoods.
        log_prior: ``(theta, **hyper) -> scalar`` log prior density of θ (θ unconstrained:
            transform inside these functions if a parameter is constrained).
        init_params: a pytree θ used as the starting point and to fix shapes.
        sample_prior: ``(rng_key, **hyper) -> theta``; needed by ``prior_weight="anchored"``.

    Example:
        >>> fm = FunctionModel(lambda th, X, y: -0.5 * (y - X @ th["b"]) ** 2,
        ...                    lambda th, lam: -0.5 * lam * jnp.sum(th["b"] ** 2),
        ...                    {"b": jnp.zeros(3)},
        ...                    lambda key, lam: {"b": jax.random.normal(key, (3,)) / jnp.sqrt(lam)})
    """

    log_likelihood: Callable
    log_prior: Callable
    init_params: Any
    sample_prior: Callable | None = None


# --------------------------------------------------------------------------------------
# helpers shared by both builders


def _newton_mode(logq, v0, diag: bool):
    """Mode of a concave-near-the-mode log density by safeguarded Newton (fixed iterations).

    ``diag=True`` assumes logq is a sum of elementwise terms, so its Hessian is diagonal and
    equals the Hessian-vector product with ones. Steps are capped at 2 (unconstrained units)
    and fall back to a gradient step where the curvature is not negative.
    """
    grad = jax.grad(logq)

    def curvature(v):
        if diag:
            return jax.jvp(grad, (v,), (jnp.ones_like(v),))[1]
        return jnp.diagonal(jax.hessian(logq)(v))

    def body(_, v):
        g = grad(v)
        h = curvature(v)
        step = jnp.where(h < 0, -g / jnp.where(h < 0, h, -1.0), g)
        step = jnp.clip(jnp.nan_to_num(step), -2.0, 2.0)
        return v + step

    mode = jax.lax.fori_loop(0, _MODE_ITERS, body, v0)
    return mode, curvature(mode), grad


def _factorised(fn) -> bool:
    while isinstance(fn, (Independent, ExpandedDistribution, MaskedDistribution)):
        fn = fn.base_dist
    return fn.event_shape == ()


def _real_line(fn) -> bool:
    """Whether a site lives on the real line (its bijection to the support is the identity)."""
    transform = biject_to(fn.support)
    while isinstance(transform, IndependentTransform):
        transform = transform.base_transform
    return isinstance(transform, IdentityTransform)


def _improper(fn) -> bool:
    while isinstance(fn, (Independent, ExpandedDistribution, MaskedDistribution)):
        fn = fn.base_dist
    return isinstance(fn, ImproperUniform)


def _start_value(fn):
    """A starting point for the mode search: the median, else the mean, else 0."""
    transform = biject_to(fn.support)
    shape = fn.shape()
    for getter in (lambda: fn.icdf(0.5 * jnp.ones(shape)), lambda: fn.mean):
        try:
            value = jnp.broadcast_to(getter(), shape)
        except (NotImplementedError, ImportError, AttributeError, TypeError, ValueError):
            continue
        u = transform.inv(value)
        return jnp.where(jnp.isfinite(u), u, 0.0)
    return jnp.zeros(transform.inverse_shape(shape))


def _site_logq(fn, u):
    """log q(u): the site's density in the unconstrained space, Jacobian included."""
    transform = biject_to(fn.support)
    x = transform(u)
    lp = jnp.sum(fn.log_prob(x))
    return lp + jnp.sum(transform.log_abs_det_jacobian(u, x))


def unconstrained_mode(fn):
    """Mode of a prior's density on the unconstrained space, q(u) = p(T(u))|T'(u)|, and the
    curvature ∂²log q there (used to place and standardise anchors).

    Example:
        >>> mode, curv = unconstrained_mode(dist.HalfNormal(2.0))   # u = log σ
        >>> float(mode)   # log 2: q(u) ∝ exp(−e^{2u}/8) e^u peaks at σ = 2
        0.693...
    """
    mode, curv, _ = _newton_mode(lambda v: _site_logq(fn, v), _start_value(fn), _factorised(fn))
    return mode, curv


def _check_hyper_names(model, hyper_names):
    try:
        params = inspect.signature(model).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for name in hyper_names:
        if name not in params or params[name].kind is inspect.Parameter.VAR_POSITIONAL:
            raise ValueError(
                f"hyperparameter {name!r} is not a keyword argument of the model "
                f"{getattr(model, '__name__', model)}{inspect.signature(model)}; add `{name}=...` "
                "to the model's signature or rename the key in `hyper`."
            )


# --------------------------------------------------------------------------------------
# NumPyro models


def _find_plate(site, obs_plate):
    frames = site["cond_indep_stack"]
    if obs_plate is not None:
        frames = [f for f in frames if f.name == obs_plate]
        if not frames:
            raise ValueError(f"observed site {site['name']!r} is not inside the plate `obs_plate={obs_plate!r}`.")
    if not frames:
        raise ValueError(
            f"observed site {site['name']!r} is not inside a plate, so wbbgen cannot weight its "
            "observations one by one; wrap it in `with numpyro.plate('data', n): ...`."
        )
    if len(frames) > 1:
        names = [f.name for f in frames]
        raise ValueError(
            f"observed site {site['name']!r} is inside several plates {names}; say which one "
            "indexes the observations with `obs_plate=`."
        )
    return frames[0]


def _traced_frame(site, frame):
    """The observation plate's frame in this trace (its size follows the data passed in)."""
    return next((f for f in site["cond_indep_stack"] if f.name == frame.name), frame)


def _check_observed_shape(site, frame):
    """The observed value itself must have an axis of the plate's size at the plate's dim
    (NumPyro would otherwise broadcast, e.g. a plate of 5 over 30 rows under .to_event(1))."""
    value, fn = site["value"], site["fn"]
    batch = jnp.shape(value)[: jnp.ndim(value) - len(fn.event_shape)]
    axis = len(batch) + frame.dim
    if axis < 0 or batch[axis] != frame.size:
        raise ValueError(
            f"observed site {site['name']!r} has value shape {jnp.shape(value)} (batch {batch}, event "
            f"{fn.event_shape}), which has no axis of length {frame.size} at dim {frame.dim} for plate "
            f"{frame.name!r}: its observations cannot be weighted one by one. Make the plate's size the "
            "number of rows and keep per-row dims in the event shape (.to_event(k))."
        )


def _per_observation(site, frame):
    """Sum a site's log density over everything but the data plate: shape (n,)."""
    lp = site["fn"].log_prob(site["value"])
    if site.get("scale") is not None:
        lp = lp * site["scale"]
    axis = lp.ndim + frame.dim
    if axis < 0 or lp.shape[axis] != frame.size:
        raise ValueError(
            f"observed site {site['name']!r} has log-density shape {lp.shape}, which has no axis "
            f"of length {frame.size} at dim {frame.dim} for plate {frame.name!r}; give the "
            "distribution a batch shape matching the plate (e.g. use .to_event() only for "
            "per-observation event dims)."
        )
    lp = jnp.moveaxis(lp, axis, 0)
    return lp.reshape(frame.size, -1).sum(-1)


def _from_numpyro(model, args, kwargs, hyper_names, obs_plate, hyper_init=None):
    _check_hyper_names(model, hyper_names)
    dynamic, static = split_data(args, kwargs)

    def call(data, hyper):
        a, kw = eqx.combine(data, static)
        return a, {**kw, **hyper}

    dummy_hyper = {name: jnp.asarray((hyper_init or {}).get(name, 1.0)) for name in hyper_names}
    a0, kw0 = call(dynamic, dummy_hyper)
    seeded = handlers.seed(model, jax.random.key(0))
    init_trace = handlers.trace(handlers.substitute(seeded, substitute_fn=init_to_median(num_samples=15))).get_trace(
        *a0, **kw0
    )

    latent, observed, frames = {}, {}, {}
    for name, site in init_trace.items():
        if site["type"] == "plate" and site["args"][1] is not None and site["args"][1] != site["args"][0]:
            raise ValueError(
                f"plate {name!r} subsamples ({site['args'][1]} of {site['args'][0]}); wbbgen weights "
                "every observation and does its own minibatching: drop `subsample_size`."
            )
        if site["type"] != "sample":
            continue
        if site["is_observed"]:
            if site["value"] is None:
                raise ValueError(f"observed site {name!r} has obs=None; pass its data.")
            frames[name] = _find_plate(site, obs_plate)
            _check_observed_shape(site, frames[name])
            observed[name] = np.asarray(site["value"])
        else:
            if site["fn"].is_discrete:
                raise ValueError(
                    f"latent site {name!r} is discrete ({type(site['fn']).__name__}); the WBB "
                    "optimises continuous parameters. Marginalise it out (e.g. "
                    "numpyro.contrib.funsor's enumeration or a mixture distribution)."
                )
            latent[name] = site
    if not observed:
        raise ValueError("the model has no observed site (sample(..., obs=data)); pass the data.")
    sizes = {f.size for f in frames.values()}
    if len(sizes) > 1:
        raise ValueError(
            f"observed sites sit in plates of different sizes {dict((k, f.size) for k, f in frames.items())}; "
            "wbbgen needs one weight per observation shared by all observed sites."
        )
    if not latent:
        raise ValueError("the model has no latent sample site to optimise.")
    n = sizes.pop()

    init_u = {k: biject_to(s["fn"].support).inv(s["value"]) for k, s in latent.items()}
    init_flat, unravel = ravel_pytree(init_u)
    latent_shapes = {k: tuple(jnp.shape(s["value"])) for k, s in latent.items()}
    factorised = {k: _factorised(s["fn"]) for k, s in latent.items()}
    # Constrained sites (scales, probabilities) take their anchor offset from the prior's
    # Gaussian approximation at its mode, not from a prior draw: their unconstrained
    # densities are skewed (log σ under a HalfNormal has an exponential left tail and a
    # doubly-exponential right one), and a copy shifted to an anchor deep in the left tail
    # pinned σ at 2× its posterior sd (calibration study, diabetes ridge).
    gaussian_offset = {k: not _real_line(s["fn"]) for k, s in latent.items()}

    def model_trace(theta, hyper, data):
        from numpyro.infer.util import constrain_fn

        a, kw = call(data, hyper)
        params = constrain_fn(model, a, kw, unravel(theta))
        tr = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=params)).get_trace(*a, **kw)
        return params, tr

    def constrain(theta, hyper, data):
        return model_trace(theta, hyper, data)[0]

    def log_likelihood(theta, hyper, data):
        _, tr = model_trace(theta, hyper, data)
        # The plate as traced now: a data minibatch (wbbgen.minibatch) shrinks it to B rows.
        return {name: _per_observation(tr[name], _traced_frame(tr[name], frames[name])) for name in observed}

    def log_prior(theta, hyper, data):
        _, tr = model_trace(theta, hyper, data)
        return sum(jnp.sum(tr[k]["fn"].log_prob(tr[k]["value"])) for k in latent)

    def log_prior_anchored(theta, shift, hyper, data):
        _, tr = model_trace(theta, hyper, data)
        u, s = unravel(theta), unravel(shift)
        return sum(_site_logq(tr[k]["fn"], u[k] - s[k]) for k in latent)

    def anchor(rng_key, hyper, data):
        a, kw = call(data, hyper)
        k_prior, k_tilt = jax.random.split(rng_key)
        # Latent sites are drawn from the prior; flat (ImproperUniform) sites cannot be, so
        # they are held at the prior median and get no anchor.
        flat = {k: latent[k]["value"] for k in latent if _improper(latent[k]["fn"])}
        prior_tr = handlers.trace(handlers.substitute(handlers.seed(model, k_prior), data=flat)).get_trace(*a, **kw)
        shifts, noises = {}, {}
        for i, k in enumerate(latent):
            fn = prior_tr[k]["fn"]
            if _improper(fn):  # a flat prior: nothing to anchor, its term is constant
                shifts[k] = noises[k] = jnp.zeros_like(biject_to(fn.support).inv(prior_tr[k]["value"]))
                continue
            u0 = biject_to(fn.support).inv(prior_tr[k]["value"])
            mode, curv, grad = _newton_mode(lambda v, fn=fn: _site_logq(fn, v), _start_value(fn), factorised[k])
            if gaussian_offset[k]:
                # a = z / √(−∂²log q(mode)), z ~ N(0, I): the offset drawn from the prior's
                # Gaussian approximation at its mode (for a Gaussian prior, the same law as
                # θ₀ − m). The generator sees z.
                z = jax.random.normal(jax.random.fold_in(k_tilt, i), jnp.shape(u0), jnp.result_type(u0))
                curved = curv < 0
                shifts[k] = jnp.where(curved, z / jnp.sqrt(jnp.where(curved, -curv, 1.0)), 0.0)
                noises[k] = z
                continue
            shift = u0 - mode
            # Standardise: sqrt(-curvature) where the density is curved at its mode (Gaussian:
            # exactly (θ₀ − m)/σ); else |∂ log q| at the anchor (Laplace: |θ₀ − m| / b).
            inv_scale = jnp.where(curv < 0, jnp.sqrt(jnp.abs(curv)), jnp.abs(grad(u0)))
            shifts[k], noises[k] = shift, shift * inv_scale
        return ravel_pytree(shifts)[0], ravel_pytree(noises)[0]

    signature = {
        "model": getattr(model, "__qualname__", repr(model)),
        "latent": {k: list(v) for k, v in latent_shapes.items()},
        "observed": {k: list(v.shape) for k, v in observed.items()},
        "hyper": list(hyper_names),
    }
    return Objective(
        num_params=int(init_flat.size),
        num_obs=int(n),
        init_params=init_flat,
        data=dynamic,
        obs_sites=tuple(observed),
        latent_shapes=latent_shapes,
        observed=observed,
        constrain=constrain,
        log_likelihood=log_likelihood,
        log_prior=log_prior,
        log_prior_anchored=log_prior_anchored,
        anchor=anchor,
        signature=signature,
    )


def _from_functions(fm: FunctionModel, args, kwargs, hyper_names):
    _check_hyper_names(fm.log_prior, hyper_names)
    if kwargs:
        raise TypeError(f"FunctionModel takes data as positional arguments only; got keywords {sorted(kwargs)}.")
    dynamic, static = split_data(args, {})
    init_flat, unravel = ravel_pytree(fm.init_params)

    def log_likelihood(theta, hyper, data):
        a, _ = eqx.combine(data, static)
        ll = jnp.asarray(fm.log_likelihood(unravel(theta), *a))
        return {"obs": ll}

    a0, _ = eqx.combine(dynamic, static)
    n_shape = jax.eval_shape(lambda: fm.log_likelihood(fm.init_params, *a0)).shape
    if len(n_shape) != 1:
        raise ValueError(f"`log_likelihood` must return one value per observation (shape (n,)), got shape {n_shape}.")

    def log_prior(theta, hyper, data):
        return jnp.asarray(fm.log_prior(unravel(theta), **hyper))

    def log_prior_anchored(theta, shift, hyper, data):
        return log_prior(theta - shift, hyper, data)

    def anchor(rng_key, hyper, data):
        if fm.sample_prior is None:
            raise ValueError(
                '`prior_weight="anchored"` needs FunctionModel(..., sample_prior=...) to draw '
                'anchors; pass one, or use prior_weight="random" or "fixed".'
            )
        u0 = ravel_pytree(fm.sample_prior(rng_key, **hyper))[0]
        logq = lambda v: log_prior(v, hyper, data)  # noqa: E731
        diag = init_flat.size > 256
        mode, curv, grad = _newton_mode(logq, jnp.zeros_like(init_flat), diag)
        shift = u0 - mode
        inv_scale = jnp.where(curv < 0, jnp.sqrt(jnp.abs(curv)), jnp.abs(grad(u0)))
        return shift, shift * inv_scale

    def constrain(theta, hyper, data):
        return unravel(theta)

    return Objective(
        num_params=int(init_flat.size),
        num_obs=int(n_shape[0]),
        init_params=init_flat,
        data=dynamic,
        obs_sites=("obs",),
        latent_shapes={k: tuple(jnp.shape(v)) for k, v in _as_dict(fm.init_params).items()},
        observed={},
        constrain=constrain,
        log_likelihood=log_likelihood,
        log_prior=log_prior,
        log_prior_anchored=log_prior_anchored,
        anchor=anchor,
        signature={"model": "FunctionModel", "params": int(init_flat.size), "hyper": list(hyper_names)},
    )


def _as_dict(tree):
    return tree if isinstance(tree, Mapping) else {"theta": tree}


def build_objective(model, args=(), kwargs=None, hyper_names=(), obs_plate=None, hyper_init=None) -> Objective:
    """Reduce ``model(*args, **kwargs, **hyper)`` to an :class:`Objective`.

    Args:
        model: a NumPyro model (observed sites inside a plate over observations,
            hyperparameters as keyword arguments) or a :class:`FunctionModel`.
        args, kwargs: the model's data arguments.
        hyper_names: keyword names that carry hyperparameters (traced, never constants).
        obs_plate: name of the plate indexing observations, when a site sits in several.
        hyper_init: ``{name: value}`` the model is traced with to find its sites' shapes
            (default 1.0 each); array-valued hyperparameters pass an array of their shape.
    """
    kwargs = dict(kwargs or {})
    clash = set(hyper_names) & set(kwargs)
    if clash:
        raise ValueError(f"{sorted(clash)} are given both as model keywords and in `hyper`; pass them in `hyper` only.")
    if isinstance(model, FunctionModel):
        return _from_functions(model, args, kwargs, tuple(hyper_names))
    if not callable(model):
        raise TypeError(f"`model` must be a NumPyro model function or a FunctionModel, got {model!r}.")
    return _from_numpyro(model, args, kwargs, tuple(hyper_names), obs_plate, hyper_init)
