r"""`first_order_wbb`: WBB draws without training and without a solve per draw.

At each grid value λ the MAP θ̂_λ of the unweighted objective (w = 1, no prior randomness) is
found by Newton, warm-started along the path; each draw j is then one Newton step on its own
weighted objective L_j from θ̂_λ, with the Hessian shared by every draw:

.. math:: θ_j ≈ θ̂_λ - H_λ^{-1} ∇L_j(θ̂_λ), \qquad H_λ = ∇^2 L(θ̂_λ; 1, 0, λ),
          ∇L_j(θ̂_λ) = -\sum_i (w_{ij} - 1) ∇ℓ_i(θ̂_λ) - [∇R(θ̂_λ; ξ_j) - ∇R(θ̂_λ; 0)]

(the influence-function, first-order WBB: exact to first order in w − 1, close wherever the
weighted optimum stays near the MAP — strong priors, large n; it uses the unweighted Hessian, so
even for a quadratic objective it is not the weighted optimum). ``refine=k`` then takes at most k
damped Newton steps per draw on its own objective from there (the semi-amortised recipe), which
makes the draws exact WBB wherever it converges (one step for a quadratic objective). The cost: one
Hessian and one solve per λ, one gradient per draw (and k Hessians per draw when refining).

Example:
    >>> import jax, numpy as np
    >>> from wbbgen import exact_wbb, first_order_wbb, models
    >>> rng = np.random.default_rng(0); X = rng.normal(size=(50, 3)); y = X @ np.ones(3) + rng.normal(size=50)
    >>> grid = {"lam": [0.1, 10.0]}
    >>> fo = first_order_wbb(jax.random.key(0), models.ridge, X, y, hyper=grid, num_samples=100, refine=1)
    >>> ex = exact_wbb(jax.random.key(0), models.ridge, X, y, hyper=grid, num_samples=100, progress_bar=False)
    >>> bool(np.allclose(fo["beta"], ex["beta"], atol=1e-6))   # ridge: one Newton step is exact
    True
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from wbbgen._checks import as_key, positive_int
from wbbgen.exact import check_finite_density, resolve_method, samples_from_thetas, solve_batch
from wbbgen.hyper import HyperDomain, grid_product
from wbbgen.prior import PriorDraw
from wbbgen.problem import Problem, check_differentiable, draws, loss, make_problem
from wbbgen.samples import WBBSamples
from wbbgen.solver import solve

__all__ = ["first_order_wbb", "map_path", "first_order_draws"]


def _neutral(problem: Problem, like: PriorDraw) -> PriorDraw:
    """The prior draw without randomness: weight 1, no anchor offset."""
    return PriorDraw(jnp.ones_like(like.weight), jnp.zeros_like(like.shift), jnp.zeros_like(like.noise))


@eqx.filter_jit
def _map_step(problem: Problem, theta0, v1, neutral, value, tol):
    data = problem.objective.data
    return solve(lambda th: loss(problem, th, v1, neutral, value, data), theta0, method="newton", tol=tol)


def map_path(problem: Problem, values, neutral: PriorDraw, *, tol: float = 1e-4):
    """θ̂_λ ``(K, d)`` and its SolverInfo: the MAP at each of ``values (K, m)`` (w = 1, no prior
    randomness), Newton warm-started along the path."""
    v1 = jnp.ones(problem.weights.num_weights, problem.objective.init_params.dtype)
    theta = problem.objective.init_params
    thetas, infos = [], []
    for k in range(values.shape[0]):
        theta, info = _map_step(problem, theta, v1, neutral, values[k], tol)
        thetas.append(theta)
        infos.append(info)
        theta = jnp.where(info.converged & jnp.all(jnp.isfinite(theta)), theta, problem.objective.init_params)
    return jnp.stack(thetas), jax.tree_util.tree_map(lambda *x: jnp.stack(x), *infos)


@eqx.filter_jit
def first_order_draws(problem: Problem, theta_map, v, pdraw, neutral, values):
    """``(K, S, d)``: θ̂_λ − H_λ⁻¹∇L_j(θ̂_λ) for every draw (module docstring)."""
    data = problem.objective.data
    v1 = jnp.ones(v.shape[1], v.dtype)

    def at(theta_k, draw_k, value_k):
        H = jax.hessian(lambda th: loss(problem, th, v1, neutral, value_k, data))(theta_k)
        grads = jax.vmap(jax.grad(lambda th, vv, dd: loss(problem, th, vv, dd, value_k, data)), in_axes=(None, 0, 0))(
            theta_k, v, draw_k
        )
        eig, vec = jnp.linalg.eigh(0.5 * (H + H.T))
        floor = jnp.sqrt(jnp.finfo(H.dtype).eps) * jnp.max(jnp.abs(eig))
        inv = (vec / jnp.maximum(jnp.abs(eig), floor)) @ vec.T  # saddle-free, as the Newton solver
        return theta_k - grads @ inv

    return jax.vmap(at)(theta_map, pdraw, values)


def first_order_wbb(
    rng_key,
    model,
    *args,
    hyper: Mapping,
    num_samples: int = 1000,
    weights="exponential",
    prior_weight: str = "anchored",
    refine: int = 0,
    obs_plate: str | None = None,
    static_args=(),
    **kwargs,
) -> WBBSamples:
    """First-order WBB over a hyperparameter grid (module docstring), in :func:`wbbgen.exact_wbb`'s
    layout; the same ``rng_key`` gives the same weights and prior draws as ``exact_wbb``.

    The other arguments (``rng_key``, ``model``, the data ``*args`` and ``**kwargs``, ``hyper``,
    ``num_samples``, ``weights``, ``prior_weight``, ``obs_plate``, ``static_args``) are those of
    :func:`wbbgen.exact_wbb`.

    Args:
        refine: at most this many damped Newton steps per draw from its first-order value
            (0: none); ``stats["decrement"]`` then says how far each draw is from its exact
            WBB optimiser, in posterior sd.

    Returns:
        :class:`~wbbgen.samples.WBBSamples`; ``stats["map_converged"]`` per value (repeated over
        the draws), and with ``refine`` the solver's ``converged``, ``decrement``, ``num_steps``.
    """
    rng_key = as_key(rng_key)
    num_samples = positive_int(num_samples, "num_samples")
    if not isinstance(hyper, Mapping) or not hyper:
        raise ValueError('`hyper` must be a dict of grids, e.g. hyper={"lam": jnp.logspace(-2, 3, 20)}.')
    if int(refine) < 0:
        raise ValueError(f"`refine` must be >= 0 (Newton steps per draw), got {refine!r}.")
    names = tuple(hyper)
    problem = make_problem(model, args, kwargs, names, weights, prior_weight, obs_plate, static_args=static_args)
    unbounded = tuple(HyperDomain(n, None, False, 0.0, 1.0, -np.inf, np.inf) for n in names)
    grids, mesh = grid_product(unbounded, hyper)
    dtype = problem.objective.init_params.dtype
    values = jnp.asarray(mesh.reshape(-1, len(names)), dtype)
    check_differentiable(problem, values[0])
    check_finite_density(problem, values)
    start = time.perf_counter()
    v, pdraw = draws(problem, rng_key, values, num_samples, problem.objective.data)
    neutral = _neutral(problem, jax.tree_util.tree_map(lambda x: x[0, 0], pdraw))
    theta_map, map_info = map_path(problem, values, neutral)
    thetas = first_order_draws(problem, theta_map, v, pdraw, neutral, values)
    K, S = thetas.shape[:2]
    stats = {"map_converged": np.broadcast_to(np.asarray(map_info.converged)[:, None], (K, S)).copy()}
    if refine:
        thetas, info = _refine(problem, thetas, v, pdraw, values, int(refine))
        stats.update({k: np.asarray(getattr(info, k)) for k in ("converged", "decrement", "num_steps")})
    jax.block_until_ready(thetas)
    attrs = {
        "method": "first-order" + (f" + {int(refine)} Newton steps" if refine else ""),
        "weights": problem.weights.name,
        "prior_weight": problem.prior.name,
        "wall_time_s": time.perf_counter() - start,
    }
    key = jax.random.fold_in(rng_key, 0x10CA1)
    return samples_from_thetas(problem, thetas, values, grids, stats, attrs, key)


@eqx.filter_jit
def _refine(problem: Problem, thetas, v, pdraw, values, max_steps: int):
    method = resolve_method(problem, "auto")
    data = problem.objective.data

    def at(args):
        theta_k, draw_k, value_k = args
        vals = jnp.broadcast_to(value_k, (theta_k.shape[0], value_k.shape[0]))
        return solve_batch(problem, theta_k, v, draw_k, vals, data, method=method, tol=1e-3, max_steps=max_steps)

    return jax.lax.map(at, (thetas, pdraw, values))
