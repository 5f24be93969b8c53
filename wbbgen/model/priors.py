r"""Prior densities on the unconstrained space: modes, curvatures and anchor offsets.

A latent site with prior p and bijection T onto its support (NumPyro's ``biject_to``) has the
unconstrained density :math:`q(u) = p(T(u))\,|T'(u)|`. The anchored prior scheme needs, per
site, the mode of q and the curvature :math:`∂^2 \log q` there, and draws an offset a:

* a site on the real line: :math:`a = u_0 - \operatorname{mode}(q)`, :math:`u_0` a prior draw
  (for a Gaussian prior N(m, Σ), the randomised prior :math:`-\tfrac12 (θ - θ_0)^T Σ^{-1} (θ - θ_0)`);
* a constrained site (scales, probabilities): :math:`a = z / \sqrt{-∂^2 \log q(\text{mode})}`,
  z ~ N(0, I), the offset of the prior's Gaussian approximation at its mode (the same law for a
  Gaussian; no anchors deep in the skewed tails of log-scale densities);
* a flat site (``ImproperUniform``): a = 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from numpyro.distributions import ExpandedDistribution, ImproperUniform, Independent, MaskedDistribution
from numpyro.distributions.transforms import IdentityTransform, IndependentTransform, biject_to

__all__ = [
    "MODE_ITERS",
    "newton_mode",
    "site_logq",
    "start_value",
    "factorised",
    "real_line",
    "improper",
    "site_anchor",
]

#: Newton iterations used to locate the mode of each prior in the unconstrained space.
MODE_ITERS = 30


def newton_mode(logq, v0, diag: bool):
    """Mode of a log density that is concave near its mode, by safeguarded Newton.

    ``MODE_ITERS`` iterations of v ← v − clip(g/h, ±2) with g, h the gradient and the
    (diagonal) curvature of ``logq``; where h ≥ 0 the step is the gradient g. ``diag=True``
    assumes ``logq`` is a sum of elementwise terms (its Hessian is diagonal and equals the
    Hessian-vector product with ones).

    Returns:
        ``(mode, curvature at the mode, grad)``, ``grad`` the gradient function of ``logq``.

    Example:
        >>> from wbbgen.model.priors import newton_mode
        >>> import jax.numpy as jnp
        >>> mode, curv, _ = newton_mode(lambda v: -jnp.sum((v - 3.0) ** 2), jnp.zeros(2), True)
        >>> mode.tolist(), curv.tolist()
        ([3.0, 3.0], [-2.0, -2.0])
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

    mode = jax.lax.fori_loop(0, MODE_ITERS, body, v0)
    return mode, curvature(mode), grad


def _base(fn):
    while isinstance(fn, (Independent, ExpandedDistribution, MaskedDistribution)):
        fn = fn.base_dist
    return fn


def factorised(fn) -> bool:
    """Whether ``fn``'s log density is a sum of elementwise terms (its base has no event shape)."""
    return _base(fn).event_shape == ()


def real_line(fn) -> bool:
    """Whether a site lives on the real line (its bijection to the support is the identity)."""
    transform = biject_to(fn.support)
    while isinstance(transform, IndependentTransform):
        transform = transform.base_transform
    return isinstance(transform, IdentityTransform)


def improper(fn) -> bool:
    """Whether ``fn`` is a flat prior (``ImproperUniform``, possibly expanded or masked)."""
    return isinstance(_base(fn), ImproperUniform)


def start_value(fn):
    """A starting point for the mode search on the unconstrained space: the median, else the
    mean, else 0 (mapped by the inverse bijection; non-finite entries set to 0)."""
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


def site_logq(fn, u):
    """log q(u) = log p(T(u)) + log|T′(u)|: the site's density on the unconstrained space, summed."""
    transform = biject_to(fn.support)
    x = transform(u)
    lp = jnp.sum(fn.log_prob(x))
    return lp + jnp.sum(transform.log_abs_det_jacobian(u, x))


def unconstrained_mode(fn):
    """Mode of a prior's density on the unconstrained space, q(u) = p(T(u))|T'(u)|, and the
    curvature ∂²log q there (used to place and standardise anchors).

    Example:
        >>> from wbbgen.model.priors import unconstrained_mode
        >>> import numpyro.distributions as dist
        >>> mode, curv = unconstrained_mode(dist.HalfNormal(2.0))   # u = log σ
        >>> round(float(mode), 4)   # log 2: q(u) ∝ exp(−e^{2u}/8) e^u peaks at σ = 2
        0.6931
    """
    mode, curv, _ = newton_mode(lambda v: site_logq(fn, v), start_value(fn), factorised(fn))
    return mode, curv


def site_anchor(fn, value, rng_key):
    """The anchor offset of one site and what the generator sees of it: ``(shift, noise)``.

    Args:
        fn: the site's prior distribution (at the hyperparameters of the draw).
        value: a prior draw of the site (constrained).
        rng_key: the key of the Gaussian offset of a constrained site.

    Returns:
        For a flat prior zeros; on the real line shift = u₀ − mode and noise = shift
        standardised by √(−∂²log q(mode)) where the density is curved there, else by
        ``|∂ log q(u₀)|`` (a Laplace prior: ``|θ₀ − m|/b``); for a constrained site shift = z/√(−∂²log q)
        and noise = z. Both have the site's unconstrained shape.
    """
    transform = biject_to(fn.support)
    u0 = transform.inv(value)
    if improper(fn):  # a flat prior: nothing to anchor, its term is constant
        zeros = jnp.zeros_like(u0)
        return zeros, zeros
    mode, curv, grad = newton_mode(lambda v: site_logq(fn, v), start_value(fn), factorised(fn))
    if not real_line(fn):
        z = jax.random.normal(rng_key, jnp.shape(u0), jnp.result_type(u0))
        curved = curv < 0
        return jnp.where(curved, z / jnp.sqrt(jnp.where(curved, -curv, 1.0)), 0.0), z
    shift = u0 - mode
    inv_scale = jnp.where(curv < 0, jnp.sqrt(jnp.abs(curv)), jnp.abs(grad(u0)))
    return shift, shift * inv_scale
