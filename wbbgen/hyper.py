"""Hyperparameter domains: training distributions, the generator's encoding, grids.

``hyper={"lam": dist.LogUniform(1e-2, 1e3)}`` declares that λ is passed to the model as the
keyword ``lam`` and that the generator is trained over that distribution. Each
hyperparameter is encoded for the generator at O(1) scale:

    z = (t(λ) − c) / s,    t = log for positive supports, the identity otherwise,

with c, s the centre and half-width of t over the training support (from the support's
bounds when finite, else from the 0.1 %/99.9 % quantiles of 4096 draws with a fixed key).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution, constraints

__all__ = [
    "Choice",
    "HyperDomain",
    "make_domains",
    "grid_product",
    "check_grid",
    "ExtrapolationWarning",
    "encode",
    "encoded_width",
    "decode",
    "spread_values",
]


class Choice:
    """A discrete hyperparameter: one of a few numeric values, drawn uniformly in training
    and one-hot encoded for the generator. The model receives the value itself (traced), so
    it must use it arithmetically -- e.g. ``Choice([1.0, 4.0, 1e3])`` as a Student-t prior's
    degrees of freedom switches between Cauchy-like, heavy-tailed and near-Gaussian priors.

    Example:
        >>> import jax
        >>> from wbbgen.hyper import Choice
        >>> df = Choice([1.0, 4.0, 1e3])
        >>> df
        Choice([1.0, 4.0, 1000.0])
        >>> sorted(set(df.sample(jax.random.key(0), (50,)).tolist()))
        [1.0, 4.0, 1000.0]

    As a ``hyper=`` entry, next to a continuous hyperparameter (``model`` taking ``lam=`` and ``df=``)::

        infer = AmortizedWBB(model, hyper={"lam": dist.LogUniform(1e-2, 1e2), "df": Choice([1.0, 4.0, 1e3])})
    """

    def __init__(self, values):
        vals = np.asarray(values, dtype=np.float64).ravel()
        if vals.size < 2 or not np.all(np.isfinite(vals)) or np.unique(vals).size != vals.size:
            raise ValueError(f"Choice needs at least two distinct finite numbers, got {values!r}.")
        self.values = tuple(float(v) for v in vals)

    def sample(self, rng_key, batch_shape=()):
        """Uniform draws of the choices, of shape ``batch_shape`` (how training samples them)."""
        idx = jax.random.randint(rng_key, batch_shape, 0, len(self.values))
        return jnp.asarray(self.values)[idx]

    def __repr__(self):
        return f"Choice({list(self.values)})"


class ExtrapolationWarning(UserWarning):
    """A hyperparameter value lies outside the generator's training support."""


class HyperDomain(NamedTuple):
    """One scalar hyperparameter: its training distribution and encoding."""

    name: str
    distribution: Distribution
    log_scale: bool
    center: float
    half_width: float
    low: float  # training support (in the hyper's own units)
    high: float
    choices: tuple[float, ...] | None = None  # a discrete (Choice) hyperparameter's values

    @property
    def width(self) -> int:
        """Number of generator inputs: 1, or one per choice (one-hot)."""
        return 1 if self.choices is None else len(self.choices)

    def encode(self, value):
        """``(…,)`` values -> ``(…, width)`` generator inputs."""
        if self.choices is not None:
            c = jnp.asarray(self.choices, jnp.result_type(value))
            return (jnp.abs(value[..., None] - c) <= 1e-9 * (1.0 + jnp.abs(c))).astype(c.dtype)
        t = jnp.log(value) if self.log_scale else value
        return ((t - self.center) / self.half_width)[..., None]

    def sample(self, rng_key, batch_shape=()):
        return self.distribution.sample(rng_key, batch_shape)


def make_domains(hyper: Mapping[str, Distribution]) -> tuple[HyperDomain, ...]:
    """Validate ``hyper=`` and build one :class:`HyperDomain` per key."""
    if not isinstance(hyper, Mapping) or not hyper:
        raise ValueError(
            '`hyper` must be a non-empty dict like {"lam": dist.LogUniform(1e-2, 1e3)} mapping '
            "each hyperparameter keyword of the model to its training distribution."
        )
    domains = []
    for name, d in hyper.items():
        if isinstance(d, Choice):
            domains.append(HyperDomain(name, d, False, 0.0, 1.0, min(d.values), max(d.values), d.values))
            continue
        if not isinstance(d, Distribution):
            raise TypeError(
                f"`hyper[{name!r}]` must be a numpyro distribution (e.g. dist.LogUniform(1e-2, 1e3)) or a "
                "wbbgen.Choice, "
                f"got {type(d).__name__}. Grids go to get_samples/exact_wbb, not to AmortizedWBB."
            )
        if d.is_discrete or d.event_shape != () or d.batch_shape != ():
            raise ValueError(
                f"`hyper[{name!r}]` must be a scalar continuous distribution, got {d} with "
                f"batch_shape={d.batch_shape}, event_shape={d.event_shape}."
            )
        support = d.support
        if support is not constraints.real and not isinstance(
            support, (type(constraints.positive), type(constraints.interval(0.0, 1.0)))
        ):
            raise ValueError(
                f"`hyper[{name!r}]` has support {support}; wbbgen supports real, positive and interval supports."
            )
        bounded = isinstance(support, type(constraints.interval(0.0, 1.0)))
        log_scale = isinstance(support, type(constraints.positive)) or (
            bounded and float(np.asarray(support.lower_bound)) > 0
        )
        if bounded:
            low, high = float(np.asarray(support.lower_bound)), float(np.asarray(support.upper_bound))
        else:
            draws = np.asarray(d.sample(jax.random.key(0), (4096,)), dtype=np.float64)
            low, high = np.quantile(draws, [0.001, 0.999])
            low, high = float(low), float(high)
        t_low, t_high = (np.log(low), np.log(high)) if log_scale else (low, high)
        center, half = (t_low + t_high) / 2, max((t_high - t_low) / 2, 1e-12)
        domains.append(HyperDomain(name, d, bool(log_scale), float(center), float(half), low, high))
    return tuple(domains)


def grid_product(domains, hyper_grid: Mapping) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Outer product of per-name grids: returns the 1-d grids and ``(K₁, …, K_m, m)`` values."""
    names = [d.name for d in domains]
    if not isinstance(hyper_grid, Mapping) or set(hyper_grid) != set(names):
        got = sorted(hyper_grid) if isinstance(hyper_grid, Mapping) else hyper_grid
        raise ValueError(f"`hyper` must give a grid for each of {names}, got {got}.")
    grids = {}
    for d in domains:
        g = np.atleast_1d(np.asarray(hyper_grid[d.name], dtype=np.float64))
        if g.ndim != 1 or g.size == 0:
            raise ValueError(f"`hyper[{d.name!r}]` must be a non-empty 1-d grid, got shape {g.shape}.")
        if not np.all(np.isfinite(g)):
            raise ValueError(f"`hyper[{d.name!r}]` contains NaN or inf: {g}.")
        if d.choices is not None:
            bad = [float(x) for x in g if not np.any(np.isclose(x, d.choices, rtol=1e-9, atol=0))]
            if bad:
                raise ValueError(
                    f"`hyper[{d.name!r}]` values {bad} are not among its choices {list(d.choices)}; "
                    "a discrete hyperparameter can only take the values it was trained on."
                )
        if d.log_scale and np.any(g <= 0):
            raise ValueError(
                f"`hyper[{d.name!r}]` must be > 0 (it is a positive, log-scale hyperparameter); got {g[g <= 0]}."
            )
        grids[d.name] = g
    mesh = np.stack(np.meshgrid(*grids.values(), indexing="ij"), axis=-1)
    return grids, mesh


def check_grid(domains, grids: Mapping[str, np.ndarray], where: str, stacklevel: int = 3) -> None:
    """Warn (naming the distance) when a grid value is outside the training support."""
    for d in domains:
        if d.choices is not None:  # validated by grid_product
            continue
        g = grids[d.name]
        # A relative tolerance of 1e-6: a grid end rounded to float32 is not extrapolation.
        tol = 1e-6 * max(abs(d.low), abs(d.high), 1e-300)
        out = g[(g < d.low - tol) | (g > d.high + tol)]
        if out.size:
            if d.log_scale:
                dist = np.maximum(np.log10(d.low / out), np.log10(out / d.high))
                how = ", ".join(f"{v:g} ({x:.2g} decades outside)" for v, x in zip(out, dist))
            else:
                dist = np.maximum(d.low - out, out - d.high)
                how = ", ".join(f"{v:g} ({x:.3g} outside)" for v, x in zip(out, dist))
            warnings.warn(
                f"{where}: `{d.name}` values {how} lie outside the training support "
                f"[{d.low:g}, {d.high:g}]; the generator is extrapolating. Widen `hyper` when "
                "training, or stay inside the support.",
                ExtrapolationWarning,
                stacklevel=stacklevel,
            )


def encode(domains, values):
    """Encode ``(…, m)`` hyperparameter values for the generator (:mod:`wbbgen.hyper`):
    ``(…, Σ width)``, continuous hyperparameters first (the first of them is the axis along
    which the output scale varies smoothly), then the one-hot blocks of discrete ones."""
    order = sorted(range(len(domains)), key=lambda i: domains[i].choices is not None)
    return jnp.concatenate([domains[i].encode(values[..., i]) for i in order], axis=-1)


def encoded_width(domains) -> int:
    """Number of generator inputs encoding the hyperparameters (the sum of the domains' widths)."""
    return sum(d.width for d in domains)


def spread_values(domains, num_values: int, rng_key, edge: float = 1.0) -> np.ndarray:
    """``(P, m)`` hyperparameter values covering the training support: the first continuous
    hyperparameter on an even grid of its encoding over [−edge, edge], other continuous ones
    at random in it, discrete ones cycling through their choices."""
    values = np.zeros((num_values, len(domains)))
    first = next((i for i, d in enumerate(domains) if d.choices is None), None)
    for i, d in enumerate(domains):
        if d.choices is not None:
            values[:, i] = np.asarray(d.choices)[(np.arange(num_values) + i) % len(d.choices)]
        elif i == first:
            values[:, i] = decode(d, np.linspace(-edge, edge, num_values))
        else:
            u = np.asarray(jax.random.uniform(jax.random.fold_in(rng_key, i), (num_values,), minval=-edge, maxval=edge))
            values[:, i] = decode(d, u)
    return values


def decode(domain: HyperDomain, z):
    """Inverse of the encoding of a continuous hyperparameter: ``z`` -> values (numpy for host
    numbers, jax.numpy for traced arrays, so it serves inside ``jit`` too)."""
    xp = jnp if isinstance(z, jax.Array) else np
    t = domain.center + domain.half_width * xp.asarray(z)
    return xp.exp(t) if domain.log_scale else t
