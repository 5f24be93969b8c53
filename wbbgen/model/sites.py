"""Reading a NumPyro trace: which sites are observations, which plate indexes them, which rows
are masked, and the checks that name a mistake at its site.

A trace (``numpyro.handlers.trace(...).get_trace(...)``) is a dict ``{name: site}``. wbbgen
sorts its sample sites into

* **observed sites** (``obs=`` given): one log-likelihood term per observation, inside the
  plate that indexes observations (``obs_plate``); masked entries (``obs_mask=``,
  ``numpyro.handlers.mask``) contribute nothing;
* **factors** (``numpyro.factor``): inside the observation plate a per-observation term, weighted
  like an observed site; anywhere else a prior-side term added to the log prior;
* **held sites**: the ``<name>_unobserved`` site NumPyro adds for ``obs_mask=``: the masked
  entries of an observation, which the WBB marginalises (it integrates to one) instead of
  optimising; they are held at a fixed value and not returned;
* **latent sites**: every other sample site, the parameters θ.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from numpyro.distributions import MaskedDistribution, constraints
from numpyro.distributions.distribution import Unit

__all__ = [
    "is_factor",
    "site_mask",
    "held_sites",
    "find_plate",
    "traced_frame",
    "check_observed_shape",
    "per_observation",
    "rows_observed",
    "check_support",
    "check_subsample",
    "missing_data_error",
    "discrete_latent_error",
]

#: Supports whose check does not depend on the parameters (values outside them are bad data).
_FIXED_SUPPORTS = (
    constraints.real,
    constraints.positive,
    constraints.nonnegative,
    constraints.unit_interval,
)


def is_factor(site) -> bool:
    """Whether a sample site is a ``numpyro.factor`` (a ``Unit`` distribution, possibly masked)."""
    fn = site["fn"]
    while isinstance(fn, MaskedDistribution):
        fn = fn.base_dist
    return isinstance(fn, Unit)


def site_mask(site):
    """The mask of a site's distribution over its batch shape (``obs_mask=`` and
    ``numpyro.handlers.mask`` fold theirs into ``fn``), or None where it has none."""
    fn, mask = site["fn"], None
    while isinstance(fn, MaskedDistribution):
        m = np.asarray(fn._mask, bool)  # NumPyro keeps the mask of a MaskedDistribution here
        mask = m if mask is None else (mask & m)
        fn = fn.base_dist
    if mask is None:
        return None
    return np.broadcast_to(mask, site["fn"].batch_shape)


def held_sites(trace) -> set[str]:
    """The ``<name>_unobserved`` latent sites of ``obs_mask=`` (NumPyro writes an observed
    ``<name>_observed``, a latent ``<name>_unobserved`` and a deterministic ``<name>``)."""
    held = set()
    for name, site in trace.items():
        if site["type"] != "deterministic":
            continue
        obs, unobs = trace.get(f"{name}_observed"), trace.get(f"{name}_unobserved")
        if obs is not None and unobs is not None and obs.get("is_observed") and not unobs.get("is_observed"):
            held.add(f"{name}_unobserved")
    return held


def find_plate(site, obs_plate):
    """The frame of the plate indexing ``site``'s observations (``obs_plate`` or its only plate)."""
    frames = site["cond_indep_stack"]
    kind = "factor" if is_factor(site) else "observed site"
    if obs_plate is not None:
        frames = [f for f in frames if f.name == obs_plate]
        if not frames:
            raise ValueError(f"{kind} {site['name']!r} is not inside the plate `obs_plate={obs_plate!r}`.")
    if not frames:
        raise ValueError(
            f"observed site {site['name']!r} is not inside a plate, so wbbgen cannot weight its "
            "observations one by one; wrap it in `with numpyro.plate('data', n): ...`."
        )
    if len(frames) > 1:
        names = [f.name for f in frames]
        raise ValueError(
            f"{kind} {site['name']!r} is inside several plates {names}; say which one "
            "indexes the observations with `obs_plate=`."
        )
    return frames[0]


def traced_frame(site, frame):
    """The observation plate's frame in this trace (its size follows the data passed in)."""
    return next((f for f in site["cond_indep_stack"] if f.name == frame.name), frame)


def check_observed_shape(site, frame) -> None:
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


def per_observation(site, frame):
    """Sum a site's log density over everything but the data plate: shape ``(n,)``."""
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


def rows_observed(site, frame) -> np.ndarray:
    """``(n,)`` booleans: the rows of the plate where the site observes at least one entry."""
    mask = site_mask(site)
    if mask is None:
        return np.ones(frame.size, bool)
    axis = mask.ndim + frame.dim
    if axis < 0 or mask.shape[axis] != frame.size:
        return np.broadcast_to(mask.any(), (frame.size,)).copy()
    return np.moveaxis(mask, axis, 0).reshape(frame.size, -1).any(-1)


def _fixed(support) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support.is_discrete or any(support is c for c in _FIXED_SUPPORTS)


def check_support(site) -> None:
    """Raise, naming the site and the values, where observed data lie outside the support of
    the site's distribution (a support that does not depend on the parameters: discrete ones,
    positive, nonnegative, unit interval); masked entries are not checked."""
    fn, value = site["fn"], site["value"]
    support = fn.support
    if not _fixed(support):
        return
    ok = np.asarray(support(value), bool)
    mask = site_mask(site)
    if mask is not None:
        ok = ok | ~np.broadcast_to(mask, np.broadcast_shapes(mask.shape, ok.shape))
    if ok.all():
        return
    base = fn
    while hasattr(base, "base_dist"):
        base = base.base_dist
    shown = ""
    if jnp.ndim(value) == ok.ndim:  # scalar events: show the offending values themselves
        values = np.unique(np.asarray(value)[~ok])
        shown = ": " + ", ".join(f"{v:g}" for v in values[:5]) + (", …" if values.size > 5 else "")
    rows = np.flatnonzero(~ok.reshape(ok.shape[0], -1).all(-1)) if ok.ndim else np.zeros(1, int)
    if support is constraints.boolean:
        hint = "Bernoulli data take the values 0 and 1 (recode labels such as 1/2 or -1/1)"
    elif support.is_discrete:
        hint = "counts and categories are integers within the support (check the coding of the data)"
    else:
        hint = "check the data passed for this site"
    raise ValueError(
        f"observed site {site['name']!r} has {int((~ok).sum())} value(s) outside the support of its "
        f"{type(base).__name__} distribution ({support}){shown} (at rows {rows[:5].tolist()}); {hint}."
    )


def check_subsample(trace) -> None:
    """Refuse a plate that subsamples: wbbgen weights every observation."""
    for name, site in trace.items():
        if site["type"] == "plate" and site["args"][1] is not None and site["args"][1] != site["args"][0]:
            raise ValueError(
                f"plate {name!r} subsamples ({site['args'][1]} of {site['args'][0]}); wbbgen weights "
                "every observation and does its own minibatching: drop `subsample_size`."
            )


def _in_plate(site) -> str | None:
    frames = site.get("cond_indep_stack") or []
    return frames[-1].name if frames else None


def missing_data_error(trace) -> ValueError:
    """The error for a model with no observed site, naming the sites that look like
    observations whose data were not passed (latent sample sites inside a plate)."""
    candidates = [
        f"{name!r} (plate {_in_plate(s)!r})"
        for name, s in trace.items()
        if s["type"] == "sample" and not s["is_observed"] and _in_plate(s) is not None
    ]
    hint = (
        f" {', '.join(candidates)} would be observed: the data for {'them' if len(candidates) > 1 else 'it'} "
        "were not passed (obs=None)."
        if candidates
        else ""
    )
    return ValueError(
        "the model has no observed site (sample(..., obs=data)): no site was given data." + hint + " Pass the "
        "observed data as the model takes them, e.g. exact_wbb(key, model, X, y, hyper=...) or run(key, X, y)."
    )


def discrete_latent_error(site) -> ValueError:
    """The error for a discrete latent site (observed data not passed, when inside a plate)."""
    plate = _in_plate(site)
    data_hint = (
        f" If {site['name']!r} (inside plate {plate!r}) is an observation, its data were not passed (obs=None): "
        "pass them."
        if plate is not None
        else ""
    )
    return ValueError(
        f"latent site {site['name']!r} is discrete ({type(site['fn']).__name__}); the WBB "
        "optimises continuous parameters. Marginalise it out (e.g. numpyro.contrib.funsor's "
        "enumeration or a mixture distribution)." + data_hint
    )
