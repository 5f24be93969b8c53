"""`exact_wbb`: the weighted Bayesian bootstrap by exact optimisation of every draw.

For each draw j (weights wⱼ, prior randomness ξⱼ) and each grid value λₖ,
θⱼₖ = argmin_θ L(θ; wⱼ, ξⱼ, λₖ) -- batched over draws with ``vmap``, warm-started along the
λ path (draw j's solution at λₖ starts the solve at λₖ₊₁), one compilation for the whole grid
(λ is a traced argument). Every draw reports whether it converged.

Example:
    >>> from wbbgen import exact_wbb
    >>> import jax, jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
    >>> def ridge(X, y=None, *, lam=1.0):
    ...     beta = numpyro.sample("beta", dist.Normal(0, 1 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    ...     numpyro.deterministic("norm", jnp.sqrt(jnp.sum(beta**2)))
    ...     with numpyro.plate("data", X.shape[0]):
    ...         numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)
    >>> X = np.random.default_rng(0).normal(size=(20, 3)); y = X @ np.array([1.0, -1.0, 0.5])
    >>> samples = exact_wbb(jax.random.key(1), ridge, X, y, hyper={"lam": [0.1, 1.0]}, num_samples=100,
    ...                     progress_bar=False)
    >>> samples["beta"].shape, samples["norm"].shape    # (len(grid), num_samples, *site shape)
    ((2, 100, 3), (2, 100))
    >>> bool(samples.stats["converged"].all())
    True
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from wbbgen._checks import as_key, positive_int
from wbbgen.convergence import diagnose
from wbbgen.hyper import HyperDomain, grid_product
from wbbgen.posterior_check import K_HAT_MAX, posterior_check, warn_posterior_check
from wbbgen.problem import Problem, check_differentiable, draw_bytes, draws, hyper_dict, loss, make_problem
from wbbgen.samples import WBBSamples
from wbbgen.solver import SolverInfo, solve

__all__ = [
    "exact_wbb",
    "solve_batch",
    "solve_path",
    "solve_path_chunked",
    "draws_per_solve",
    "exact_method",
    "path_step",
    "resolve_method",
    "ConvergenceWarning",
    "samples_from_thetas",
]

#: Above this many parameters, Newton's d×d eigendecomposition gives way to L-BFGS.
NEWTON_MAX_DIM = 200


class ConvergenceWarning(UserWarning):
    """Some exact WBB draws did not reach the requested tolerance."""


def resolve_method(problem: Problem, method: str) -> str:
    """``method``, with ``"auto"`` resolved: Newton up to ``NEWTON_MAX_DIM`` parameters, else L-BFGS."""
    if method == "auto":
        return "newton" if problem.objective.num_params <= NEWTON_MAX_DIM else "lbfgs"
    return method


def solve_batch(problem: Problem, theta0, v, draw, values, data, *, method="auto", tol=1e-3, max_steps=None):
    """Solve a batch of draws, each with its own θ₀ ``(B, d)``, weights ``(B, ·)``, prior
    draw and hyperparameter values ``(B, m)``. Pure; jit it at the call site."""
    method = resolve_method(problem, method)

    def one(t0, vv, dd, xx):
        return solve(lambda th: loss(problem, th, vv, dd, xx, data), t0, method=method, max_steps=max_steps, tol=tol)

    return jax.vmap(one)(theta0, v, draw, values)


@eqx.filter_jit
def _draws(problem: Problem, rng_key, values, num_samples: int):
    return draws(problem, rng_key, values, num_samples, problem.objective.data)


@eqx.filter_jit
def path_step(problem: Problem, theta_prev, v, draw_k, value_k, method: str, tol: float, max_steps):
    """Solve every draw at one λ from the previous λ's solutions (compiled once per problem,
    shape and settings: λ is traced)."""
    vals = jnp.broadcast_to(value_k, (theta_prev.shape[0], value_k.shape[0]))
    data = problem.objective.data
    return solve_batch(problem, theta_prev, v, draw_k, vals, data, method=method, tol=tol, max_steps=max_steps)


def solve_path(
    problem: Problem, rng_key, values, num_samples, *, method="auto", tol=1e-3, max_steps=None, progress_bar=False
):
    """Exact draws over a list of hyperparameter values ``(K, m)``, warm-started in order.

    Returns ``(thetas (K, S, d), SolverInfo (K, S), v, prior_draws)``.
    """
    objective = problem.objective
    values = jnp.asarray(values, dtype=objective.init_params.dtype)
    check_finite_density(problem, values)
    v, pdraw = _draws(problem, rng_key, values, num_samples)
    method = resolve_method(problem, method)
    theta = jnp.broadcast_to(objective.init_params, (num_samples, objective.num_params))
    thetas, infos = [], []
    for k in tqdm(range(values.shape[0]), desc="exact WBB", disable=not progress_bar, leave=False):
        draw_k = jax.tree_util.tree_map(lambda x: x[k], pdraw)
        theta, info = path_step(problem, theta, v, draw_k, values[k], method, float(tol), max_steps)
        # An unconverged draw restarts the next λ from the prior median, not from its failure.
        ok = info.converged[:, None] & jnp.all(jnp.isfinite(theta), axis=1, keepdims=True)
        thetas.append(theta)
        infos.append(info)
        theta = jnp.where(ok, theta, objective.init_params)
    info = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *infos)
    return jnp.stack(thetas), info, v, pdraw


@eqx.filter_jit
def _log_density_at_start(problem: Problem, values):
    objective = problem.objective

    def density(x):
        h = hyper_dict(problem, x)
        ll = sum(jnp.sum(v) for v in objective.log_likelihood(objective.init_params, h, objective.data).values())
        return ll + objective.log_prior(objective.init_params, h, objective.data)

    return jax.vmap(density)(values)


def check_finite_density(problem: Problem, values) -> None:
    """Raise, naming the values, where the model's log density at the prior median is not
    finite (a hyperparameter outside its domain, e.g. a negative prior precision)."""
    bad = ~np.isfinite(np.asarray(_log_density_at_start(problem, values)))
    if bad.any():
        shown = ", ".join(
            "{" + ", ".join(f"{n}={x:g}" for n, x in zip(problem.hyper_names, row)) + "}"
            for row in np.asarray(values)[bad][:5]
        )
        raise ValueError(
            f"the model's log density is not finite at hyperparameter values {shown}; are they outside "
            "the hyperparameter's domain (e.g. a negative or zero prior precision)? Fix `hyper`."
        )


@eqx.filter_jit
def _constrain_all(problem: Problem, thetas, values):
    """Constrained site values of flat draws ``(K, S, d)`` at ``values (K, m)``."""
    data = problem.objective.data

    def at(theta_k, value_k):
        return jax.vmap(lambda th: problem.objective.constrain(th, hyper_dict(problem, value_k), data))(theta_k)

    return jax.vmap(at)(thetas, values)


@eqx.filter_jit
def _log_likelihood_all(problem: Problem, thetas, values):
    """Per-observation log likelihood of flat draws ``(K, S, d)``: ``{obs: (K, S, n)}``."""
    data = problem.objective.data
    ll = lambda th, x: problem.objective.log_likelihood(th, hyper_dict(problem, x), data)  # noqa: E731
    return jax.vmap(jax.vmap(ll, in_axes=(0, None)))(thetas, values)


@eqx.filter_jit
def _deterministic_all(problem: Problem, thetas, values):
    """The model's deterministic sites at flat draws ``(K, S, d)``: ``{site: (K, S, *shape)}``."""
    data = problem.objective.data
    det = lambda th, x: problem.objective.deterministic(th, hyper_dict(problem, x), data)  # noqa: E731
    return jax.vmap(jax.vmap(det, in_axes=(0, None)))(thetas, values)


@eqx.filter_jit
def _expand_all(problem: Problem, rng_key, thetas, values):
    """Joint draws ``(K, S, d_joint)`` of a hierarchical objective's global draws ``(K, S, d)``:
    each draw's local latents from their conditional given it (key per grid value and draw)."""
    data = problem.objective.data
    K, S = thetas.shape[:2]
    keys = jax.random.split(rng_key, K * S).reshape(K, S)

    def at(keys_k, theta_k, value_k):
        h = hyper_dict(problem, value_k)
        return jax.vmap(lambda key, th: problem.objective.expand(key, th, h, data))(keys_k, theta_k)

    return jax.vmap(at)(keys, thetas, values)


def samples_from_thetas(problem: Problem, thetas, values, grids, stats, attrs, rng_key=None):
    """Constrain flat draws ``(K, S, d)`` and lay them out as :class:`WBBSamples`.

    For a hierarchical objective (``objective.expand``) the draws are of the global parameters;
    each one's local latents are drawn from their conditional given it with ``rng_key``
    (required then), and the sites, deterministic sites and per-observation log likelihood are
    the joint model's.

    Latent sites are computed now; the model's deterministic sites, the per-observation log
    likelihood and (when given as a function) ``stats`` on first access. The jitted pieces are
    module-level ``filter_jit`` functions keyed on ``problem``, so repeated calls with the same
    problem and shapes do not recompile."""
    marginal, global_thetas = problem, thetas
    if problem.objective.expand is not None:
        if rng_key is None:
            raise ValueError("samples_from_thetas: a hierarchical objective needs `rng_key` for its local latents.")
        thetas = _expand_all(problem, rng_key, thetas, values)
        problem = problem._replace(objective=problem.objective.joint)
    objective = problem.objective
    hyper_shape = tuple(len(g) for g in grids.values())
    constrained = _constrain_all(problem, thetas, values)
    S = thetas.shape[1]

    def shaped(x):
        x = np.asarray(x)
        return x.reshape(*hyper_shape, S, *x.shape[2:])

    samples = {k: shaped(constrained[k]) for k in objective.latent_shapes}
    stats = stats if callable(stats) else {k: shaped(s) for k, s in stats.items()}

    def log_likelihood():
        return {k: shaped(x) for k, x in _log_likelihood_all(problem, thetas, values).items()}

    deterministic = None
    if objective.deterministic is not None:

        def deterministic():
            return {k: shaped(x) for k, x in _deterministic_all(problem, thetas, values).items()}

    def check(rng_key, num_draws, warn):
        out = posterior_check(rng_key, marginal, global_thetas, values, num_draws).reshaped(hyper_shape)
        if out.reweighted is not None:
            # resampled where usable (mixture k̂ ≤ 0.7), the WBB draws kept elsewhere
            usable = np.asarray(out.reweighted_k_hat <= K_HAT_MAX).reshape(-1)
            flat = jnp.where(jnp.asarray(usable)[:, None, None], out.reweighted, global_thetas)
            attrs_rw = {**attrs, "reweighted": "posterior_check (importance resampling of a Gaussian mixture fit)"}
            stats_rw = {"reweighted": np.broadcast_to(usable[:, None], flat.shape[:2]).reshape(*hyper_shape, -1)}
            key = None if marginal.objective.expand is None else jax.random.fold_in(rng_key, 1)
            out = out._replace(
                reweighted=samples_from_thetas(marginal, flat, values, grids, stats_rw, attrs_rw, rng_key=key)
            )
        if warn:  # the user's frame: WBBSamples.posterior_check -> check -> warn_posterior_check
            warn_posterior_check(out, grids, stacklevel=4)
        return out

    return WBBSamples(
        samples,
        grids,
        stats,
        attrs,
        log_likelihood,
        objective.observed,
        deterministic=deterministic,
        deterministic_names=tuple(objective.deterministic_shapes),
        check=check,
    )


def _check_hyper_grid(hyper):
    if not isinstance(hyper, Mapping) or not hyper:
        raise ValueError('`hyper` must be a dict of grids, e.g. hyper={"lam": jnp.logspace(-2, 3, 20)}.')
    return tuple(hyper)


def exact_wbb(
    rng_key,
    model,
    *args,
    hyper: Mapping,
    num_samples: int = 1000,
    weights="exponential",
    prior_weight: str = "anchored",
    method: str = "auto",
    tol: float = 1e-3,
    max_steps: int | None = None,
    obs_plate: str | None = None,
    static_args=(),
    progress_bar: bool = True,
    reweight: bool = False,
    **kwargs,
) -> WBBSamples:
    """Exact weighted Bayesian bootstrap over a hyperparameter grid.

    Args:
        rng_key: a JAX PRNG key; the same key as :meth:`AmortizedWBB.get_samples` gives the
            same weights and prior draws, so the two can be compared draw by draw.
        model: a NumPyro model or a :class:`~wbbgen.FunctionModel`.
        *args, **kwargs: the model's data arguments.
        hyper: ``{name: grid}``; several names give the outer product of the grids.
        num_samples: draws per grid point.
        weights: ``"exponential"`` (default), ``"dirichlet"``, ``"multinomial"``,
            ``"double_bootstrap"``, ``"block"``, a :class:`~wbbgen.weights.WeightScheme`, or a
            function ``n -> WeightScheme``.
        prior_weight: ``"anchored"`` (default), ``"random"`` or ``"fixed"`` (:mod:`wbbgen.prior`).
        method: ``"auto"`` (Newton up to 200 parameters, else L-BFGS), ``"newton"``,
            ``"lbfgs"`` or ``"bfgs"``.
        tol: Newton decrement tolerance -- the distance to the optimum in posterior sd.
        max_steps: iteration cap per solve (default 100 Newton / 1000 quasi-Newton steps).
        obs_plate: the plate that indexes observations, when an observed site sits in several.
        static_args: names of data arguments the model needs as constants (it computes shapes
            from their values, e.g. ``J = int(g.max()) + 1``); the observed data stay traced.
        progress_bar: show a bar over the grid.
        reweight: resample the draws toward the model's posterior where the posterior check
            finds that reliable (:meth:`wbbgen.WBBSamples.reweight`; the solver's per-draw stats
            are then replaced by the check's). Recommended for hierarchical models and scale
            parameters (docs/calibration.md).

    Returns:
        :class:`~wbbgen.samples.WBBSamples`: latent sites and, computed on first access, the
        model's ``numpyro.deterministic`` sites, each ``(*grid lengths, num_samples, *shape)``;
        ``stats`` holds ``converged``, ``grad_norm``, ``decrement``, ``num_steps`` and ``loss``
        per draw. Unconverged draws raise a :class:`ConvergenceWarning` with their count.
    """
    rng_key = as_key(rng_key)
    num_samples = positive_int(num_samples, "num_samples")
    if max_steps is not None:
        max_steps = positive_int(max_steps, "max_steps")
    if not tol > 0:
        raise ValueError(f"`tol` must be > 0, got {tol!r}.")
    names = _check_hyper_grid(hyper)
    problem = make_problem(model, args, kwargs, names, weights, prior_weight, obs_plate, static_args=static_args)
    # Grids without training domains: only their shape and finiteness are checked here; values
    # outside a hyperparameter's domain are named by the finite-density check in solve_path.
    unbounded = tuple(HyperDomain(n, None, False, 0.0, 1.0, -np.inf, np.inf) for n in names)
    grids, mesh = grid_product(unbounded, hyper)
    values = mesh.reshape(-1, len(names))
    check_differentiable(problem, values[0])
    start = time.perf_counter()
    thetas, info, v, pdraw = solve_path(
        problem, rng_key, values, num_samples, method=method, tol=tol, max_steps=max_steps, progress_bar=progress_bar
    )
    elapsed = time.perf_counter() - start
    _warn_unconverged(info, tol, lambda: diagnose(problem, thetas, info.converged, v, pdraw, values))
    stats = info._asdict()
    attrs = {
        "method": f"exact ({resolve_method(problem, method)})",
        "weights": problem.weights.name,
        "prior_weight": problem.prior.name,
        "tol": tol,
        "wall_time_s": elapsed,
    }
    local_key = jax.random.fold_in(rng_key, 0x10CA1)
    out = samples_from_thetas(problem, thetas, jnp.asarray(values, thetas.dtype), grids, stats, attrs, local_key)
    return out.reweight(jax.random.fold_in(rng_key, 2)) if reweight else out


def _warn_unconverged(info: SolverInfo, tol: float, why=None):
    """A :class:`ConvergenceWarning` with the count and, from ``why()``
    (:func:`wbbgen.convergence.diagnose`), the cause per site."""
    bad = ~np.asarray(info.converged)
    if bad.any():
        cause = why() if why is not None else ""
        warnings.warn(
            f"{int(bad.sum())} of {bad.size} exact WBB draws did not converge (Newton decrement > "
            f"tol={tol:g}, or the line search stalled); they are flagged in `stats['converged']`. "
            + (cause or "Raise `max_steps`, loosen `tol`, or check the model for separation / flat directions."),
            ConvergenceWarning,
            stacklevel=3,
        )


def solve_path_chunked(problem: Problem, rng_key, values, num_samples: int, *, max_draws: int | None = None, **kw):
    """:func:`wbbgen.exact.solve_path` over ``num_samples`` draws, at most ``max_draws`` solved
    together (None: all): the vmapped quasi-Newton solver keeps a copy of the data's
    linearisation per draw (n × d floats each), so for large data the draws are solved in
    chunks, chunk j with key ``fold_in(rng_key, j)``. Same return layout as ``solve_path``;
    with one chunk, the same draws."""
    if max_draws is None or max_draws >= num_samples:
        return solve_path(problem, rng_key, values, num_samples, **kw)
    parts = []
    for j, start in enumerate(range(0, num_samples, max_draws)):
        size = min(max_draws, num_samples - start)
        parts.append(solve_path(problem, jax.random.fold_in(rng_key, j), values, size, **kw))
    cat = lambda axis, *xs: jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=axis), *xs)  # noqa: E731
    thetas, info, v, pdraw = zip(*parts)
    return cat(1, *thetas), cat(1, *info), cat(0, *v), cat(1, *pdraw)


def draws_per_solve(problem: Problem, budget_bytes: int = 2**30) -> int:
    """How many draws :func:`solve_path_chunked` solves together: n × d floats each, within
    ``budget_bytes`` (at least 1)."""
    return max(1, int(budget_bytes // draw_bytes(problem)))


def exact_method(problem: Problem) -> str:
    """The method of the pilot and fidelity solves: Newton's Hessian costs n·d² per
    iteration and holds d tangents of every per-observation term, so above 256 MB of them
    per draw (large data) L-BFGS (n·d per iteration), else ``"auto"``."""
    return "lbfgs" if draw_bytes(problem) > 2**28 else "auto"
