"""A WBB problem: objective + weight scheme + prior scheme, and how draws are made.

Draws are made by one function, :func:`draws`, for the exact solver and the generator alike:
with the same ``rng_key`` both see identical weights and prior randomness, so their outputs
can be compared draw by draw. Draw j uses the same weights and the same prior key at every
hyperparameter value (common random numbers), so each draw traces a smooth path in λ and
the exact solver can warm-start along it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen.hyper import encode
from wbbgen.model import Objective, build_objective
from wbbgen.prior import PriorDraw, PriorScheme, prior_scheme, weighted_loss
from wbbgen.weights import WeightScheme, resolve_weights

__all__ = [
    "Problem",
    "draws",
    "generate",
    "generate_grid",
    "draw_bytes",
    "hyper_dict",
    "make_problem",
    "check_differentiable",
    "name_sites",
]


class Problem(NamedTuple):
    """Everything that defines the weighted objective of one draw."""

    objective: Objective
    weights: WeightScheme
    prior: PriorScheme
    hyper_names: tuple[str, ...]
    # Array-valued hyperparameters (wbbgen.hypertrain): the shape of each name's value; the
    # values vector then concatenates the flattened arrays. None: one scalar per name.
    hyper_shapes: tuple[tuple[int, ...], ...] | None = None


def hyper_dict(problem: Problem, values: jax.Array) -> dict[str, jax.Array]:
    """``(m,)`` hyperparameter values -> ``{name: value}`` (the model's keywords): one scalar
    per name, or, with ``problem.hyper_shapes``, consecutive slices reshaped to each shape."""
    if problem.hyper_shapes is None:
        return {name: values[i] for i, name in enumerate(problem.hyper_names)}
    out, start = {}, 0
    for name, shape in zip(problem.hyper_names, problem.hyper_shapes):
        size = int(np.prod(shape, dtype=int))
        out[name] = values[start : start + size].reshape(shape)
        start += size
    return out


def prior_draw(problem: Problem, rng_key, values, data) -> PriorDraw:
    """The prior randomness ξ of one draw at hyperparameter values ``values (m,)``."""
    return problem.prior.sample(rng_key, problem.objective, hyper_dict(problem, values), data)


def loss(problem: Problem, theta, v, draw: PriorDraw, values, data):
    """L(θ; w, ξ, λ) for one draw, ``v`` the scheme's (unexpanded) weights."""
    w = problem.weights.expand(v)
    return weighted_loss(problem.objective, problem.prior, theta, w, draw, hyper_dict(problem, values), data)


def draws(problem: Problem, rng_key, values, num_samples: int, data):
    """Weights ``(S, num_weights)`` shared across λ and prior draws batched ``(K, S, ...)``.

    Args:
        values: ``(K, m)`` hyperparameter values.
    """
    k_w, k_p = jax.random.split(rng_key)
    v = problem.weights.sample(k_w, (num_samples,))
    keys = jax.random.split(k_p, num_samples)
    per_value = jax.vmap(lambda k, x: prior_draw(problem, k, x, data), in_axes=(0, None))
    return v, jax.vmap(lambda x: per_value(keys, x))(values)


def generate_grid(generator, v, z, noise):
    """Generator draws ``(K, S, d)`` from weights ``v (S, num_weights)`` shared across the K
    encoded hyperparameter values ``z (K, width)`` and prior noise ``noise (K, S, …)``."""
    return jax.vmap(jax.vmap(generator, in_axes=(0, None, 0)), in_axes=(None, 0, 0))(v, z, noise)


def generate(problem: Problem, domains, generator, rng_key, values, num_samples: int, data=None):
    """Generator draws ``(K, S, d)`` at hyperparameter values ``values (K, m)``: the weights
    and prior draws of :func:`draws` with this key (the exact solver's draws), encoded λ."""
    data = problem.objective.data if data is None else data
    v, pdraw = draws(problem, rng_key, values, num_samples, data)
    return generate_grid(generator, v, encode(domains, values), pdraw.noise)


def draw_bytes(problem: Problem) -> int:
    """Bytes of one draw's linearisation of the data, n × d floats: what a vmapped Newton or
    quasi-Newton solve holds per draw, and what the memory rules of the exact solver size."""
    obj = problem.objective
    return obj.num_obs * obj.num_params * np.dtype(obj.init_params.dtype).itemsize


def objective_stats(problem: Problem, theta, v, draw, values, data):
    """Value and gradient ∞-norm of the weighted objective at θ (per-draw sample_stats)."""
    f, g = jax.value_and_grad(loss, argnums=1)(problem, theta, v, draw, values, data)
    return f, jnp.max(jnp.abs(g))


def make_problem(
    model, args, kwargs, hyper_names, weights, prior_weight, obs_plate=None, hyper_shapes=None, static_args=()
) -> Problem:
    """Build the :class:`Problem` for ``model(*args, **kwargs)`` (validates every input).

    Args:
        model, args, kwargs, obs_plate, static_args: as :func:`wbbgen.model.build_objective`.
        hyper_names: the hyperparameters' keyword names.
        weights: a weight scheme name, a :class:`~wbbgen.weights.WeightScheme` or ``n -> WeightScheme``,
            for the n observations of the objective (rows whose every observation is masked are not
            among them).
        prior_weight: ``"anchored"``, ``"random"`` or ``"fixed"``.
        hyper_shapes: declares array-valued hyperparameters (see :func:`hyper_dict`).

    Example:
        >>> from wbbgen.problem import make_problem
        >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
        >>> def mean(y, *, lam=1.0):
        ...     mu = numpyro.sample("mu", dist.Normal(0.0, 1 / jnp.sqrt(lam)))
        ...     with numpyro.plate("data", y.shape[0]):
        ...         numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)
        >>> problem = make_problem(mean, (np.zeros(6),), {}, ("lam",), "exponential", "anchored")
        >>> problem.weights.num_obs, problem.prior.name
        (6, 'anchored')
    """
    scheme = prior_scheme(prior_weight)
    init = None if hyper_shapes is None else {n: np.ones(sh) for n, sh in zip(hyper_names, hyper_shapes)}
    objective = build_objective(model, args, kwargs, hyper_names, obs_plate, hyper_init=init, static_args=static_args)
    kept = objective.kept_rows
    if kept is not None and isinstance(weights, WeightScheme) and weights.num_obs == kept.size != objective.num_obs:
        raise ValueError(
            f"`weights` was built for {kept.size} observations, but {kept.size - objective.num_obs} rows have every "
            f"observation masked and are not weighted: build the scheme for the {objective.num_obs} observed rows "
            "(Objective.kept_rows says which)."
        )
    shapes = None if hyper_shapes is None else tuple(tuple(int(k) for k in sh) for sh in hyper_shapes)
    return Problem(objective, resolve_weights(weights, objective.num_obs), scheme, tuple(hyper_names), shapes)


def check_differentiable(problem: Problem, values) -> None:
    """Refuse a model whose log density cannot be optimised by gradients.

    At hyperparameter ``values`` (m,) (skipped when the log density is not finite there: the
    pilot and the exact solver name such values):

    * the gradient of the log density (likelihood + prior) must be finite at the starting
      point θ₀ (the prior medians) wherever the density is: a NaN there (typically a
      ``jnp.where`` whose untaken branch is NaN, e.g. ``where(x > c, sqrt(x - c), x)``)
      stops every solve at its first step;
    * the log likelihood must not be flat to autodiff in a coordinate it depends on: a
      coordinate whose likelihood gradient is exactly 0 at θ₀ and at two random points
      θ₀ + 0.5ε (fixed key) while the likelihood changes when that coordinate moves by ±1
      is piecewise constant (``jnp.round``, ``floor``, comparisons, integer casts). Its
      draws would silently sit at the prior. Coordinates the likelihood does not depend on
      (a hierarchical scale seen only through the prior) are not flagged.

    Raises ValueError naming the sites. Called by :meth:`wbbgen.AmortizedWBB.run` (at the
    centre of the hyperparameters' support) and :func:`wbbgen.exact_wbb` (at the first grid value).
    """
    obj = problem.objective
    data = obj.data
    dtype = obj.init_params.dtype
    centre = jnp.asarray(values, dtype)
    theta0 = obj.init_params
    noise = 0.5 * jax.random.normal(jax.random.key(0), (2, obj.num_params), dtype)
    points = jnp.concatenate([theta0[None], theta0 + noise])

    def functions(centre, data):
        hyper = hyper_dict(problem, centre)

        def loglik(theta):
            return sum(jnp.sum(v) for v in obj.log_likelihood(theta, hyper, data).values())

        return loglik, lambda theta: loglik(theta) + obj.log_prior(theta, hyper, data)

    @jax.jit
    def gradients(points, centre, data):
        loglik, logdens = functions(centre, data)
        f0, g0 = jax.value_and_grad(logdens)(points[0])
        ll, gl = jax.vmap(jax.value_and_grad(loglik))(points)
        return f0, g0, ll, jnp.all(gl == 0.0, axis=0)

    @jax.jit
    def moves(point, steps, centre, data):
        loglik, _ = functions(centre, data)
        return jax.vmap(loglik)(point + steps), jax.vmap(loglik)(point - steps)

    f0, g0, ll, zero = (np.asarray(x) for x in gradients(points, centre, data))
    if not np.isfinite(f0):
        return
    if not np.all(np.isfinite(g0)):
        raise ValueError(
            "the gradient of the model's log density is NaN/inf at the starting point (the prior medians) "
            f"with respect to {name_sites(problem, theta0, centre, ~np.isfinite(g0))}, although the log "
            "density is finite there: typically a jnp.where whose untaken branch is NaN or inf (its "
            "gradient is still computed, and 0 * NaN = NaN), or sqrt/log at 0. Guard the branch's input "
            "too (the 'double where' trick: where(x > c, sqrt(where(x > c, x - c, 1.0)), x))."
        )
    candidates = np.flatnonzero(zero & np.isfinite(ll[1]))[:256]  # the ±1 probes cost a likelihood each
    if candidates.size == 0:
        return
    steps = jnp.zeros((candidates.size, obj.num_params), dtype).at[jnp.arange(candidates.size), candidates].set(1.0)
    up, down = (np.asarray(x) for x in moves(points[1], steps, centre, data))
    # A change beyond rounding: batched (vmapped) and single evaluations of the same sum may
    # differ by a few ulps of the total in float32, which is no dependence at all.
    tol = 32 * np.finfo(np.asarray(ll).dtype).eps * (1.0 + abs(float(ll[1])))
    moved = (np.isfinite(up) & (np.abs(up - ll[1]) > tol)) | (np.isfinite(down) & (np.abs(down - ll[1]) > tol))
    if moved.any():
        flat = np.zeros(obj.num_params, bool)
        flat[candidates[moved]] = True
        raise ValueError(
            f"the model's log likelihood changes with {name_sites(problem, theta0, centre, flat)} but its "
            "gradient with respect to them is exactly zero at three points: the likelihood is piecewise "
            "constant there (jnp.round, floor, comparisons, integer casts), so gradient-based WBB cannot "
            "move them from the prior. Make the model differentiable in its latent variables (e.g. a "
            "smooth relaxation), or marginalise discrete structure out."
        )


def name_sites(problem: Problem, theta0, centre, mask) -> str:
    """Name the latent sites of the flagged unconstrained coordinates (the site whose
    constrained value moves when the coordinate does)."""
    obj = problem.objective
    hyper = hyper_dict(problem, centre)
    base = obj.constrain(theta0, hyper, obj.data)
    hit = set()
    for j in np.flatnonzero(mask)[:64]:
        moved = obj.constrain(theta0.at[j].add(0.5), hyper, obj.data)
        names = [k for k in base if not np.array_equal(np.asarray(base[k]), np.asarray(moved[k]))]
        hit.add(repr(names[0]) if names else f"θ[{j}]")
    hit = sorted(hit)
    return "latent site" + ("s " if len(hit) > 1 else " ") + ", ".join(hit)
