r"""Hierarchical models: local latents integrated out of each exchangeable unit.

A latent site inside a plate whose every observation depends on at most one index of that
plate (a random effect ``a[g]``, a per-school effect, a per-observation latent) is **local**.
Its plate's indices define the model's exchangeable *units* (groups of observations); the
other latent sites are **global** (θ). Bootstrapping observations while optimising the local
latents jointly with θ collapses the group-level scales (the joint mode of a hierarchical
model is degenerate), so wbbgen instead, as lme4, TMB and INLA do,

* integrates each unit's local latents b_g out of its term by Laplace at the conditional mode,

  .. math::
      \log p(y_g \mid θ) ≈ f_g(\hat b_g) + \tfrac{m}{2}\log 2π - \tfrac12 \log\det P_g,
      \quad f_g(b) = \sum_{i∈g} \log p(y_i \mid θ, b) + \log q(b \mid θ),
      \quad P_g = -∇^2_b f_g(\hat b_g)

  (q the local prior on the unconstrained space, Jacobian included; exact where the model is
  conditionally Gaussian in b), so the weighted objective is a sum over units with one weight
  per unit (observations of a group share it: block weights);
* bootstraps θ on that objective (every weight scheme, prior scheme, solver and generator
  works on it unchanged: it is an :class:`~wbbgen.model.Objective` of θ alone);
* draws each unit's local latents from their conditional given θ, N(b̂_g, P_g⁻¹)
  (:attr:`Objective.expand`), so the draws keep the model's layout, every site per λ.

Refused, naming the site: a local prior that couples the units (a multivariate prior over the
plate), a constrained support that is not elementwise, crossed groupings (an observation in
two units), a unit without observations, and a prior term of θ that depends on local latents.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Independent
from numpyro.distributions.transforms import IndependentTransform, biject_to

from wbbgen.model.base import Objective
from wbbgen.model.priors import site_logq

__all__ = ["LocalLayout", "find_local", "marginalise", "INNER_STEPS"]

#: Damped Newton iterations of each unit's conditional mode where the model is not conditionally
#: Gaussian in the local latents (where it is, one undamped step is exact and is all that is taken).
INNER_STEPS = 25
_STEP_SIZES = (1.0, 0.5, 0.25, 0.125, 0.0)


class LocalLayout(NamedTuple):
    """Where the local latents sit: ``units`` (U,), ``obs_unit`` (n,) the unit of each
    observation, ``coords`` (U, m) the flat θ coordinates of each unit's local latents,
    ``globals_`` the flat coordinates of θ, ``sites`` {local site: plate name}."""

    num_units: int
    obs_unit: np.ndarray
    coords: np.ndarray
    globals_: np.ndarray
    sites: dict
    plate_axis: dict  # local site -> (plate axis in its value, unit -> plate index)


def _plate_axis(site, frame) -> int:
    value_ndim = np.ndim(site["value"])
    event_ndim = len(site["fn"].event_shape)
    return value_ndim - event_ndim + frame.dim


def _elementwise(site) -> bool:
    fn = site["fn"]
    while isinstance(fn, Independent):
        fn = fn.base_dist
    try:
        lp_shape = jnp.shape(fn.log_prob(site["value"]))
    except Exception:  # noqa: BLE001 - any failure: not elementwise
        return False
    transform = biject_to(site["fn"].support)
    shape = np.shape(site["value"])
    return tuple(lp_shape) == shape and tuple(transform.inverse_shape(shape)) == shape


def _elementwise_logq(fn, u, x):
    """log q(u) elementwise, the shape of the site: log p(T(u)) + log|T′(u)|."""
    base = fn
    while isinstance(base, Independent):
        base = base.base_dist
    transform = biject_to(fn.support)
    while isinstance(transform, IndependentTransform):
        transform = transform.base_transform
    shape = jnp.shape(x)
    return jnp.broadcast_to(base.log_prob(x), shape) + jnp.broadcast_to(transform.log_abs_det_jacobian(u, x), shape)


def find_local(latent: dict, index: dict, per_obs_total: Callable, theta0, num_obs: int, hyper0, data):
    """The :class:`LocalLayout` of a model, or None where no latent site is local.

    Args:
        latent: ``{name: site}`` of the latent sites (one trace).
        index: ``{name: int array}`` the flat coordinates of each site (its unconstrained shape).
        per_obs_total: ``(theta, hyper, data) -> (n,)`` the log likelihood of each observation.
        theta0: a starting θ ``(d,)``.
    """
    points = theta0 + 0.5 * jax.random.normal(jax.random.key(0), (2, theta0.size), theta0.dtype)
    found, axes = {}, {}
    for name, site in latent.items():
        coords = np.asarray(index[name])
        if not site["cond_indep_stack"] or coords.size < 2:
            continue
        dependence = _dependence(per_obs_total, points, coords.ravel(), hyper0, data).reshape(num_obs, *coords.shape)
        for frame in site["cond_indep_stack"]:
            axis = _plate_axis(site, frame)
            if not 0 <= axis < coords.ndim or coords.shape[axis] != frame.size or frame.size < 2:
                continue
            by_index = np.moveaxis(dependence, axis + 1, 1).reshape(num_obs, frame.size, -1).any(-1)  # (n, G)
            if (by_index.sum(1) <= 1).all() and by_index.any(0).sum() >= 2:
                found[name], axes[name] = frame.name, (axis, by_index)
                break
    if not found:
        return None
    for name in found:
        if not _elementwise(latent[name]):
            raise ValueError(
                f"latent site {name!r} is local (each observation depends on one index of plate "
                f"{found[name]!r}), but its prior is not elementwise over the plate (a multivariate prior or a "
                "constrained support over several entries): wbbgen integrates each group's local latents out "
                "separately. Write it elementwise inside the plate (e.g. `with numpyro.plate(...): "
                "numpyro.sample(name, dist.Normal(mu, tau))`), or declare it outside any plate to treat it as global."
            )
    labels = []
    for name, (_, by_index) in axes.items():
        hit = by_index.any(1)
        if not hit.all():
            raise ValueError(
                f"latent site {name!r} is local to plate {found[name]!r}, but {int((~hit).sum())} observation(s) "
                f"depend on none of its entries, while others depend on one: wbbgen needs every observation in "
                "one group. Give every observation a group, or model those observations separately."
            )
        untouched = ~by_index.any(0)
        if untouched.any():
            raise ValueError(
                f"latent site {name!r} (plate {found[name]!r}) has {int(untouched.sum())} entr(ies) that no "
                f"observation depends on (indices {np.flatnonzero(untouched)[:5].tolist()}): a group without data. "
                "Drop the empty groups from the plate (their posterior is their prior given the group-level "
                "parameters; draw them afterwards with numpyro.infer.Predictive)."
            )
        labels.append(by_index.argmax(1))
    labels = np.stack(labels, 1)  # (n, number of local sites)
    unit_labels, obs_unit = np.unique(labels, axis=0, return_inverse=True)
    obs_unit = obs_unit.reshape(-1)
    names = list(axes)
    for j, name in enumerate(names):
        if len(np.unique(unit_labels[:, j])) != len(unit_labels):
            other = names[1 - j] if len(names) > 1 else name
            raise ValueError(
                f"local latent sites {name!r} and {other!r} group the observations differently (crossed or nested "
                "groupings): an observation belongs to two different groups, so the groups are not exchangeable "
                "units. wbbgen integrates out one grouping: keep one grouped effect local and declare the other "
                "outside any plate (`dist.Normal(...).expand([J]).to_event(1)`), which makes it global."
            )
    coords = []
    for j, name in enumerate(names):
        axis = axes[name][0]
        c = np.moveaxis(np.asarray(index[name]), axis, 0)
        coords.append(c.reshape(c.shape[0], -1)[unit_labels[:, j]])
    coords = np.concatenate(coords, 1)
    every = np.arange(theta0.size)
    globals_ = np.setdiff1d(every, coords.ravel())
    if globals_.size == 0:
        return None  # nothing global to bootstrap: the joint WBB of the local latents
    return LocalLayout(
        len(unit_labels),
        obs_unit,
        coords,
        globals_,
        found,
        {name: (axes[name][0], unit_labels[:, j]) for j, name in enumerate(names)},
    )


def _dependence(per_obs_total, points, coords, hyper0, data):
    """(n, len(coords)) booleans: observation i's log likelihood moves with coordinate c."""
    d = points.shape[1]
    out = None
    chunk = max(1, int(2e7 // max(1, per_obs_total(points[0], hyper0, data).size)))
    for start in range(0, coords.size, chunk):
        cols = coords[start : start + chunk]
        basis = jnp.zeros((cols.size, d), points.dtype).at[jnp.arange(cols.size), cols].set(1.0)
        part = np.asarray(_moves(per_obs_total, points, basis, hyper0, data)).T  # (n, cols)
        out = part if out is None else np.concatenate([out, part], 1)
    return out


@partial(jax.jit, static_argnums=0)
def _moves(per_obs_total, points, basis, hyper0, data):
    def tangent(p, t):
        return jax.jvp(lambda th: per_obs_total(th, hyper0, data), (p,), (t,))[1]

    jac = jax.vmap(lambda p: jax.vmap(lambda t: tangent(p, t))(basis))(points)
    return jnp.any(jac != 0, axis=0)


def marginalise(
    joint: Objective, layout: LocalLayout, site_trace: Callable, index: dict, prior_factors, hyper0
) -> Objective:
    """The :class:`Objective` of θ alone, each unit's local latents integrated out by Laplace
    (module docstring); ``expand`` draws them from their conditional given θ.

    Args:
        joint: the objective of all latent sites (θ and the local latents).
        layout: :func:`find_local`'s layout.
        site_trace: ``(theta, hyper, data) -> trace`` of the model at a flat θ of ``joint``.
        index: ``{latent site: int array}``, its flat coordinates in ``joint``'s θ (site-shaped).
        prior_factors: names of the prior-side factors.
        hyper0: hyperparameter values to run the checks at.
    """
    global_sites = [k for k in index if k not in layout.sites]
    U, m = layout.coords.shape
    gidx = jnp.asarray(layout.globals_)
    cidx = jnp.asarray(layout.coords)
    obs_unit = jnp.asarray(layout.obs_unit)
    unravel_index = dict(layout.plate_axis)
    unit_name = "+".join(dict.fromkeys(layout.sites.values()))
    d_full = joint.num_params

    def full(theta, B):
        return jnp.zeros(d_full, theta.dtype).at[gidx].set(theta).at[cidx].set(B)

    def unit_values(theta, B, hyper, data):
        th = full(theta, B)
        ll = sum(joint.log_likelihood(th, hyper, data).values())
        tr = site_trace(th, hyper, data)
        out = jax.ops.segment_sum(ll, obs_unit, num_segments=U)
        for name, (axis, plate_index) in unravel_index.items():
            fn, x = tr[name]["fn"], tr[name]["value"]
            u = biject_to(fn.support).inv(x)
            lq = jnp.moveaxis(_elementwise_logq(fn, u, x), axis, 0)
            out = out + jnp.sum(lq.reshape(lq.shape[0], -1)[plate_index], axis=1)
        return out

    def grad_b(theta, B, hyper, data):
        return jax.grad(lambda b: jnp.sum(unit_values(theta, b, hyper, data)))(B)

    def precision(theta, B, hyper, data):
        g = lambda b: grad_b(theta, b, hyper, data)  # noqa: E731
        cols = [jax.jvp(g, (B,), (jnp.zeros_like(B).at[:, s].set(1.0),))[1] for s in range(m)]
        H = jnp.stack(cols, axis=-1)  # (U, m, m): column s of every unit's block
        return -0.5 * (H + jnp.swapaxes(H, -1, -2))

    def safe(P):
        lam, vec = jnp.linalg.eigh(P)
        floor = 1e-8 * jnp.maximum(jnp.max(jnp.abs(lam), axis=-1, keepdims=True), 1e-30)
        return jnp.einsum("...ij,...j,...kj->...ik", vec, jnp.maximum(lam, floor), vec)

    gaussian = _conditionally_gaussian(precision, joint.init_params[gidx], joint.init_params[cidx], hyper0, joint.data)

    def newton_step(theta, B, hyper, data):
        g = grad_b(theta, B, hyper, data)
        P = safe(precision(theta, B, hyper, data))
        delta = jnp.linalg.solve(P, g[..., None])[..., 0]
        return B + jnp.where(jnp.isfinite(delta), delta, 0.0), P

    def mode(theta, hyper, data):
        """Each unit's conditional mode b̂_g and precision P_g: one Newton step where the model is
        conditionally Gaussian in b (exact), else damped Newton with per-unit step halving."""
        B0 = jax.lax.stop_gradient(joint.init_params[cidx])
        if gaussian:
            return newton_step(theta, B0, hyper, data)
        theta = jax.lax.stop_gradient(theta)

        def body(_, B):
            g = grad_b(theta, B, hyper, data)
            delta = jnp.linalg.solve(safe(precision(theta, B, hyper, data)), g[..., None])[..., 0]
            delta = jnp.where(jnp.isfinite(delta), delta, 0.0)
            steps = jnp.asarray(_STEP_SIZES, B.dtype)
            vals = jax.vmap(lambda t: unit_values(theta, B + t * delta, hyper, data))(steps)  # (T, U)
            vals = jnp.where(jnp.isfinite(vals), vals, -jnp.inf)
            best = steps[jnp.argmax(vals, axis=0)]
            return B + best[:, None] * delta

        B = jax.lax.fori_loop(0, INNER_STEPS, body, B0)
        return B, safe(precision(theta, B, hyper, data))

    def log_likelihood(theta, hyper, data):
        if gaussian:  # b̂(θ) = B₀ + P⁻¹g exactly, differentiable in θ; P does not depend on b
            B, P = mode(theta, hyper, data)
        else:  # one Newton step with gradients flowing: b̂(θ)'s first derivative (implicit function theorem)
            B, _ = newton_step(theta, jax.lax.stop_gradient(mode(theta, hyper, data)[0]), hyper, data)
            P = safe(precision(theta, B, hyper, data))
        logdet = jnp.linalg.slogdet(P)[1]
        return {unit_name: unit_values(theta, B, hyper, data) + 0.5 * m * math.log(2 * math.pi) - 0.5 * logdet}

    def expand(rng_key, theta, hyper, data):
        B, P = mode(theta, hyper, data)
        L = jnp.linalg.cholesky(P)
        z = jax.random.normal(rng_key, B.shape, B.dtype)
        b = jax.scipy.linalg.solve_triangular(jnp.swapaxes(L, -1, -2), z[..., None], lower=False)[..., 0]
        return full(theta, B + b)

    def at_mode(theta, hyper, data):
        return full(theta, mode(theta, hyper, data)[0])

    def global_terms(theta, hyper, data, shift=None, B=None):
        B = joint.init_params[cidx] if B is None else B
        tr = site_trace(full(theta, B), hyper, data)
        total = sum(jnp.sum(tr[f]["fn"].log_prob(tr[f]["value"])) for f in prior_factors)
        for name in global_sites:
            fn, x = tr[name]["fn"], tr[name]["value"]
            if shift is None:
                total = total + jnp.sum(fn.log_prob(x))
            else:
                u = biject_to(fn.support).inv(x)
                total = total + site_logq(fn, u - shift[name])
        return total

    def log_prior(theta, hyper, data):
        return global_terms(theta, hyper, data)

    site_index = _site_index(joint, layout, index, global_sites)
    _check_prior_separates(
        global_terms, joint.init_params[gidx], joint.init_params[cidx], hyper0, joint.data, layout, prior_factors
    )

    def log_prior_anchored(theta, shift, hyper, data):
        return global_terms(theta, hyper, data, {k: shift[idx] for k, idx in site_index.items()})

    def anchor(rng_key, hyper, data):
        shift, noise = joint.anchor(rng_key, hyper, data)
        return shift[gidx], noise[gidx]

    def constrain(theta, hyper, data):
        return joint.constrain(at_mode(theta, hyper, data), hyper, data)

    def log_jacobian(theta, hyper, data):
        tr = site_trace(full(theta, joint.init_params[cidx]), hyper, data)
        total = 0.0
        for name, idx in site_index.items():
            fn, x = tr[name]["fn"], tr[name]["value"]
            total = total + jnp.sum(biject_to(fn.support).log_abs_det_jacobian(theta[idx], x))
        return total

    signature = {**joint.signature, "local": {k: v for k, v in layout.sites.items()}, "units": int(U)}
    return joint._replace(
        num_params=int(layout.globals_.size),
        num_obs=int(U),
        init_params=joint.init_params[gidx],
        obs_sites=(unit_name,),
        constrain=constrain,
        log_likelihood=log_likelihood,
        log_prior=log_prior,
        log_prior_anchored=log_prior_anchored,
        anchor=anchor,
        signature=signature,
        deterministic=None,
        deterministic_shapes={},
        log_jacobian=log_jacobian,
        expand=expand,
        joint=joint,
        local_layout=layout,
    )


def _conditionally_gaussian(precision, theta0, B0, hyper0, data) -> bool:
    """Whether each unit's conditional log density is quadratic in its local latents: the
    precision is the same at three random points of b (and at two of θ)."""
    key_t, key_b = jax.random.split(jax.random.key(2))
    thetas = theta0 + 0.5 * jax.random.normal(key_t, (2, *theta0.shape), theta0.dtype)
    Bs = B0 + jax.random.normal(key_b, (3, *B0.shape), B0.dtype)
    at = jax.jit(lambda ts, bs, h, d: jax.vmap(lambda t: jax.vmap(lambda b: precision(t, b, h, d))(bs))(ts))
    P = at(thetas, Bs, hyper0, data)  # (2, 3, U, m, m)
    P = np.asarray(P)
    if not np.all(np.isfinite(P)):
        return False
    scale = np.abs(P).max(axis=(1, 2, 3, 4), keepdims=True) + 1e-300
    return bool(np.all(np.abs(P - P[:, :1]) <= 1e-6 * scale))


def _site_index(joint: Objective, layout: LocalLayout, index, global_sites) -> dict:
    """{global site: its coordinates in θ (the marginal objective's flat vector), site-shaped}."""
    position = -np.ones(joint.num_params, int)
    position[layout.globals_] = np.arange(layout.globals_.size)
    return {name: jnp.asarray(position[np.asarray(index[name])]) for name in global_sites}


def _check_prior_separates(global_terms, theta0, B0, hyper0, data, layout, prior_factors) -> None:
    """Refuse a prior-side term of θ (a global site's prior or a factor) that moves with the
    local latents: it would couple the units."""
    points = B0 + 0.5 * jax.random.normal(jax.random.key(1), (2, *B0.shape), B0.dtype)
    grad = jax.jit(lambda ps, h, d: jax.vmap(jax.grad(lambda B: global_terms(theta0, h, d, B=B)))(ps))
    grads = grad(points, hyper0, data)
    if not bool(jnp.all(grads == 0)):
        raise ValueError(
            f"a prior-side term of the model depends on the local latent sites {sorted(layout.sites)} "
            f"(the factors {list(prior_factors)}, or the prior of a global site given them): it couples the "
            "groups, which wbbgen integrates out one at a time. Move the term inside the groups' plate, or declare "
            "the local sites outside any plate (`.expand([J]).to_event(1)`) to treat them as global."
        )
