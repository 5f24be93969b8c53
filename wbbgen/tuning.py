r"""Tuning with uncertainty: criteria over a hyperparameter grid, with their spread over w.

A criterion U(θ, λ) is evaluated for every WBB draw θ(w, ξ, λ) on the grid, giving an array
``(K₁, …, K_m, S)``. Its mean over the draws is the estimate of E_w[U(θ(w, λ), λ)] and its
spread over the draws is the uncertainty that the bootstrap weights carry into it:

* ``best``: the grid value with the best mean;
* ``best_1se``: the one-standard-error choice -- the most regularised value (largest or
  smallest, ``prefer=``) whose mean is within one sd (over w) of the best mean.

Criteria (each a :class:`Criterion`):

* :func:`heldout_log_density` -- mean over new observations of log p(ỹᵢ | θ, λ) from the
  model's own likelihood (higher is better);
* :func:`mse`, :func:`accuracy` -- for a user predictor ``predict(params, X)``;
* :func:`psis_loo` -- PSIS-LOO elpd computed by ArviZ on each ``idata.sel(lam=…)`` slice
  (never on the folded λ × observation axis); its spread is ArviZ's standard error;
* :func:`custom` -- any ``U(params, hyper) -> (S,)``.

:func:`gradient_search` instead follows the gradient of the held-out log density with respect
to the hyperparameters through the generator (continuous search, multi-start).

Example:
    >>> tuned = tune(infer, jax.random.key(3), result, criterion=heldout_log_density(X_val, y_val),
    ...              hyper={"lam": grid}, num_samples=500)
    >>> tuned.best, tuned.best_1se
    >>> tuned.plot()
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from wbbgen._data import same_static, static_part
from wbbgen.hyper import decode, encode
from wbbgen.samples import WBBSamples
from wbbgen.weights import CV_DELETION_RATE, CV_FOLD_SEED, fold_masks, resolve_fold_key, trained_fold_masks

__all__ = [
    "Criterion",
    "TuneResult",
    "heldout_log_density",
    "mse",
    "accuracy",
    "psis_loo",
    "custom",
    "evaluate",
    "choose",
    "tune",
    "GradientSearchResult",
    "gradient_search",
    "fold_masks",
    "trained_fold_masks",
    "CV_DELETION_RATE",
    "CV_FOLD_SEED",
    "kfold_cv",
    "exact_kfold_cv",
]


class Criterion(NamedTuple):
    """``evaluate(model, samples) -> (values (K…, S) or None, mean (K…), sd (K…))``."""

    name: str
    evaluate: Callable[[Any, WBBSamples], tuple[np.ndarray | None, np.ndarray, np.ndarray]]
    higher_is_better: bool


def _spread(values):
    return values, values.mean(-1), values.std(-1)


def heldout_log_density(*args, **kwargs) -> Criterion:
    """Mean log predictive density of new data ``model(*args, **kwargs)`` per draw."""

    def evaluate(model, samples):
        from wbbgen.criteria import mean_log_predictive

        return _spread(mean_log_predictive(model, samples, *args, **kwargs))

    return Criterion("heldout_log_density", evaluate, True)


def _per_lambda(samples: WBBSamples, fn):
    """Apply ``fn(params (S, …), hyper dict) -> (S,)`` at every grid point: ``(K…, S)``."""
    names = list(samples.hyper)
    shape = tuple(len(g) for g in samples.hyper.values())
    out = np.empty((*shape, samples.num_samples))
    for idx in np.ndindex(*shape):
        params = {k: np.asarray(v)[idx] for k, v in samples.items()}
        hyper = {n: samples.hyper[n][i] for n, i in zip(names, idx)}
        out[idx] = np.asarray(fn(params, hyper))
    return out


def mse(predict: Callable, X, y) -> Criterion:
    """Mean squared error of ``predict(params, X) -> (S, n)`` against ``y`` per draw."""
    y = np.asarray(y)

    def evaluate(model, samples):
        return _spread(_per_lambda(samples, lambda p, h: ((np.asarray(predict(p, X)) - y) ** 2).mean(-1)))

    return Criterion("mse", evaluate, False)


def accuracy(predict: Callable, X, y) -> Criterion:
    """Share of ``predict(params, X) -> (S, n)`` predicted labels equal to ``y`` per draw."""
    y = np.asarray(y)

    def evaluate(model, samples):
        return _spread(_per_lambda(samples, lambda p, h: (np.asarray(predict(p, X)) == y).mean(-1)))

    return Criterion("accuracy", evaluate, True)


def custom(fn: Callable, name: str = "criterion", higher_is_better: bool = True) -> Criterion:
    """Any utility ``fn(params, hyper) -> (S,)``, params a dict of ``(S, …)`` arrays."""

    def evaluate(model, samples):
        return _spread(_per_lambda(samples, fn))

    return Criterion(name, evaluate, higher_is_better)


def psis_loo() -> Criterion:
    """PSIS-LOO expected log pointwise predictive density per grid point (ArviZ ``loo`` on
    each slice); ``sd`` is ArviZ's standard error. Pareto-k warnings from ArviZ pass through."""

    def evaluate(model, samples):
        from wbbgen.convert import elpd_loo  # ArviZ 0.x and 1.x return different objects

        idata = samples.to_inference_data()
        names = list(samples.hyper)
        shape = tuple(len(g) for g in samples.hyper.values())
        mean, sd = np.empty(shape), np.empty(shape)
        for idx in np.ndindex(*shape):
            sel = {n: samples.hyper[n][i] for n, i in zip(names, idx)}
            mean[idx], sd[idx] = elpd_loo(idata.sel(**sel))
        return None, mean, sd

    return Criterion("elpd_loo", evaluate, True)


def evaluate(model, samples: WBBSamples, criterion: Criterion) -> tuple[xr.Dataset, np.ndarray | None]:
    """The criterion curve -- ``mean``, ``sd`` and, for per-draw criteria, the 5/50/95 %
    quantiles over w, as an xarray Dataset over the hyper dims -- and the per-draw values."""
    values, mean, sd = criterion.evaluate(model, samples)
    grids = {k: np.asarray(v) for k, v in samples.hyper.items()}
    if values is not None:
        curve = _curve_from_values(values, grids, criterion.name, criterion.higher_is_better)
    else:
        dims = list(grids)
        curve = xr.Dataset({"mean": (dims, mean), "sd": (dims, sd)}, coords=grids).assign_attrs(
            criterion=criterion.name, higher_is_better=int(criterion.higher_is_better)
        )
    return curve, values


class TuneResult(NamedTuple):
    """What :func:`tune` returns."""

    best: dict
    best_1se: dict
    curve: xr.Dataset
    values: np.ndarray | None  # (K…, S) per-draw criterion values, when per draw
    samples: WBBSamples

    def plot(self, ax=None):
        """Criterion curve with its 90 % band over w (or ±1 se for PSIS-LOO), best and 1-SE marked."""
        import matplotlib.pyplot as plt

        if len(self.curve.dims) != 1:
            raise ValueError("TuneResult.plot draws a curve over one hyperparameter.")
        name = next(iter(self.curve.dims))
        grid = self.curve[name].values
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4.5))
        mean = self.curve["mean"].values
        lo, hi = (
            (self.curve["q05"].values, self.curve["q95"].values)
            if "q05" in self.curve
            else (mean - self.curve["sd"].values, mean + self.curve["sd"].values)
        )
        (line,) = ax.plot(grid, mean, lw=2, label=f"{self.curve.attrs['criterion']} (mean over w)")
        ax.fill_between(
            grid,
            lo,
            hi,
            color=line.get_color(),
            alpha=0.2,
            lw=0,
            label="90 % band over w" if "q05" in self.curve else "± 1 se",
        )
        ax.axvline(self.best[name], color="k", ls="--", lw=1, label=f"best {name}={self.best[name]:.3g}")
        ax.axvline(self.best_1se[name], color="0.4", ls=":", lw=1.5, label=f"1-SE {name}={self.best_1se[name]:.3g}")
        if np.all(grid > 0):
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(self.curve.attrs["criterion"])
        ax.legend(fontsize=8)
        return ax


def choose(curve: xr.Dataset, prefer: str = "larger") -> tuple[dict, dict]:
    """Best and one-standard-error choices from a curve. ``prefer`` says which end of the
    first hyperparameter is more regularised (``"larger"`` for a prior precision)."""
    if prefer not in ("larger", "smaller"):
        raise ValueError(f"`prefer={prefer!r}` must be 'larger' or 'smaller'.")
    sign = 1.0 if curve.attrs["higher_is_better"] else -1.0
    score = sign * curve["mean"].values
    idx = np.unravel_index(np.argmax(score), score.shape)
    names = list(curve["mean"].dims)
    best = {n: float(curve[n].values[i]) for n, i in zip(names, idx)}
    within = score >= score[idx] - curve["sd"].values[idx]
    first = curve[names[0]].values
    order = np.argsort(first)[::-1] if prefer == "larger" else np.argsort(first)
    for i0 in order:  # the most regularised first-hyper value with an admissible point
        sub = within[i0]
        if np.any(sub):
            rest = np.unravel_index(np.argmax(np.where(sub, score[i0], -np.inf)), np.shape(sub))
            chosen = (i0, *rest)
            break
    return best, {n: float(curve[n].values[i]) for n, i in zip(names, chosen)}


def tune(
    infer, rng_key, result, *, criterion: Criterion, hyper: Mapping, num_samples: int = 500, prefer: str = "larger"
) -> TuneResult:
    """Evaluate ``criterion`` on generator draws over the ``hyper`` grid and choose.

    Args:
        infer, result: an :class:`~wbbgen.AmortizedWBB` and its run result.
        criterion: a :class:`Criterion` (e.g. ``heldout_log_density(X_val, y_val)``).
        hyper: ``{name: grid}`` (values outside the training support warn).
        prefer: which end of the first hyperparameter is more regularised, for the 1-SE rule.
    """
    if not isinstance(criterion, Criterion):
        raise TypeError(
            f"`criterion` must be a wbbgen Criterion such as wbbgen.tuning.heldout_log_density(X_val, "
            f"y_val), got {type(criterion).__name__}; wrap a function with wbbgen.tuning.custom(fn)."
        )
    samples = infer.get_samples(rng_key, result, hyper=hyper, num_samples=num_samples)
    curve, values = evaluate(infer.model, samples, criterion)
    best, best_1se = choose(curve, prefer)
    return TuneResult(best, best_1se, curve, values, samples)


class GradientSearchResult(NamedTuple):
    """What :func:`gradient_search` returns."""

    best: dict  # the hyperparameters of the best start at its last step
    value: float  # its criterion (mean held-out log density per observation)
    trace: dict  # name -> (num_starts, num_steps + 1) path of each start
    values: np.ndarray  # (num_starts, num_steps + 1) criterion along each path
    num_clipped: int  # steps that would have left the training support


def gradient_search(
    infer,
    rng_key,
    result,
    *args,
    num_starts: int = 4,
    num_steps: int = 200,
    learning_rate: float = 0.05,
    num_samples: int = 64,
    **kwargs,
) -> GradientSearchResult:
    r"""Maximise the held-out log density of new data ``model(*args, **kwargs)`` over the
    hyperparameters, by gradient ascent through the generator (Lorraine & Duvenaud 2018,
    global scheme: the generator is trained over p(λ) first, then λ follows
    ∇_λ E_w[(1/ñ) Σᵢ log p(ỹᵢ | g(w, z_λ, ξ_λ), λ)]).

    The draws (weights and prior keys) are fixed, so the objective is a deterministic, smooth
    function of λ; the search runs on the encoded scale z ∈ [−1, 1] (log λ for positive
    hyperparameters) with Adam, from ``num_starts`` points spread over the support. Steps
    that would leave the training support are clipped to it, counted, and warned about.

    Args:
        infer, result: the :class:`~wbbgen.AmortizedWBB` and the result of its ``run``.
        rng_key: the key of the draws; the same key and ``num_samples`` as
            :meth:`~wbbgen.AmortizedWBB.tune` gives the same criterion at the same λ.
        *args, **kwargs: the new (validation) data, as the model takes them.
        num_starts: starting points, evenly spaced on the encoded scale in [−0.8, 0.8].
        num_steps: Adam steps per start.
        learning_rate: Adam's step size on the encoded scale (the support is [−1, 1]).
        num_samples: draws (weights and prior keys) averaged in the criterion.

    Returns a :class:`GradientSearchResult`: ``best`` (the best start's end point),
    ``value``, the paths and criterion values of every start, and the clipped-step count.

    The search compiles once per trained result, ``num_steps`` and shapes, and later calls
    reuse the program. JAX's cache keeps it, and the result's objective, for the life of the
    process. Validation data whose non-array arguments differ from the training call's
    compile their own program on each call.

    Example:
        >>> found = wbbgen.gradient_search(infer, jax.random.key(4), result, X_val, y_val)
        >>> found.best, found.value
    """

    from wbbgen._checks import as_key, positive_int
    from wbbgen.objective import build_objective

    rng_key = as_key(rng_key)
    num_starts = positive_int(num_starts, "num_starts")
    num_steps = positive_int(num_steps, "num_steps")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.integer, np.floating)):
        raise ValueError(
            f"`learning_rate` must be a positive number (Adam's step size on the encoded scale, where the "
            f"support is [-1, 1]; e.g. 0.05), got {learning_rate!r}; schedules are not supported here."
        )
    if not 0 < float(learning_rate) < np.inf:
        raise ValueError(f"`learning_rate` must be a positive, finite number (e.g. 0.05), got {learning_rate}.")
    infer.check_result(result)
    problem, domains, generator = result.problem, result.domains, result.generator
    names = [d.name for d in domains]
    if any(d.choices is not None for d in domains):
        raise ValueError(
            "gradient_search follows gradients of continuous hyperparameters; for discrete (Choice) "
            "ones use tune() over a grid of their values."
        )
    val = build_objective(infer.model, args, kwargs, names, infer.obs_plate)
    if val.num_params != problem.objective.num_params:
        raise ValueError(
            f"the validation data give the model {val.num_params} parameters, the training data "
            f"{problem.objective.num_params}; pass validation data with the same columns."
        )
    # The training objective's likelihood evaluates new data of the same layout (its data are
    # an argument) and, unlike `val`'s, is the same function at every call: the compiled
    # search is then reused. Other non-array arguments than training's need `val`'s own.
    unchanged = same_static(static_part(result.model_args, result.model_kwargs), static_part(args, kwargs))
    loglik = problem.objective.log_likelihood if unchanged else val.log_likelihood
    dtype = problem.objective.init_params.dtype
    # The weights and prior keys :meth:`AmortizedWBB.get_samples` uses for this key, so the
    # criterion equals the one a grid evaluation with the same key computes.
    k_w, k_p = jax.random.split(rng_key)
    v = problem.weights.sample(k_w, (num_samples,))
    keys = jax.random.split(k_p, num_samples)
    starts = jnp.linspace(-0.8, 0.8, num_starts, dtype=dtype)[:, None] * jnp.ones((1, len(domains)), dtype)
    static_domains = tuple(d._replace(distribution=None) for d in domains)  # hashable by value
    paths, vals, clipped = _search(
        problem,
        static_domains,
        loglik,
        num_steps,
        len(domains) <= FORWARD_MODE_MAX,
        starts,
        generator,
        v,
        keys,
        val.data,
        jnp.asarray(learning_rate, dtype),
    )
    paths, vals = np.asarray(paths), np.asarray(vals)
    n_clipped = int(np.asarray(clipped).sum())
    if n_clipped:
        warnings.warn(
            f"gradient_search: {n_clipped} steps would have left the training support "
            f"{[(d.low, d.high) for d in domains]} and were clipped to it; the optimum may lie outside "
            "-- retrain over a wider `hyper` range.",
            UserWarning,
            stacklevel=2,
        )
    best = int(np.argmax(vals[:, -1]))
    trace = {d.name: decode(d, paths[..., i]) for i, d in enumerate(domains)}
    return GradientSearchResult(
        {n: float(trace[n][best, -1]) for n in names}, float(vals[best, -1]), trace, vals, n_clipped
    )


@eqx.filter_jit
def _search(problem, domains, loglik, num_steps, forward, starts, generator, v, keys, val_data, learning_rate):
    """Adam ascent of the held-out log density from each start ``(num_starts, m)``: the paths,
    criterion values ``(num_starts, num_steps + 1)`` and clipped-step counts.

    Compiled once per problem, likelihood, ``num_steps``, mode (``forward``) and shapes:
    the generator, the draws, the data and the learning rate are traced arguments. The scan
    runs ``num_steps + 1`` evaluations and drops the last update, so the program holds one
    copy of the criterion (with its gradient), not a second one for the end point."""
    import optax

    from wbbgen.problem import hyper_dict

    train_data = problem.objective.data
    opt = optax.adam(learning_rate)

    def decode(z):
        return jnp.stack(
            [
                jnp.exp(d.center + d.half_width * z[i]) if d.log_scale else d.center + d.half_width * z[i]
                for i, d in enumerate(domains)
            ]
        )

    def criterion(z):
        values = decode(z)
        h = hyper_dict(problem, values)
        pdraw = jax.vmap(lambda k: problem.prior.sample(k, problem.objective, h, train_data))(keys)
        thetas = jax.vmap(generator, in_axes=(0, None, 0))(v, encode(domains, values), pdraw.noise)
        ll = jax.vmap(lambda th: sum(x for x in loglik(th, h, val_data).values()))(thetas)
        return jnp.mean(ll)

    def value_and_grad(z):
        if not forward:
            return jax.value_and_grad(criterion)(z)
        # Few hyperparameters (``forward``): one forward-mode pass per coordinate, a smaller
        # program to compile than the reverse pass (measured on the digits MLP, one λ: 3.2 s
        # of XLA compilation instead of 4.6 s).
        basis = jnp.eye(z.shape[0], dtype=z.dtype)
        return jax.vmap(lambda t: jax.jvp(criterion, (z,), (t,)), out_axes=(None, 0))(basis)

    def run(z0):
        def step(carry, k):
            z, state, clipped = carry
            value, grad = value_and_grad(z)
            updates, state = opt.update(-grad, state, z)
            z_new = z + updates
            out = (k < num_steps) & jnp.any(jnp.abs(z_new) > 1.0)
            return (jnp.clip(z_new, -1.0, 1.0), state, clipped + out), (z, value)

        carry = (z0, opt.init(z0), 0)
        (_, _, clipped), (path, vals) = jax.lax.scan(step, carry, jnp.arange(num_steps + 1))
        return path, vals, clipped

    return jax.vmap(run)(starts)


#: gradient_search differentiates by forward mode up to this many hyperparameters.
FORWARD_MODE_MAX = 2


def kfold_cv(
    infer, rng_key, result, *, hyper: Mapping, num_folds: int | None = None, num_samples: int = 200, fold_key=None
) -> tuple[xr.Dataset, np.ndarray]:
    r"""K-fold cross-validation by weight deletion, through the generator.

    For fold k the weights of its rows are set to zero (for block weights, whole blocks),
    θ = g(w ⊙ m_k, z_λ, ξ) is the WBB draw without them, and the criterion is the mean
    log density of the deleted rows:

    .. math:: CV(λ)_j = \frac{1}{n} \sum_k \sum_{i \in \text{fold } k} \log p(y_i \mid θ_{jk}, λ).

    Returns the curve (mean, sd and quantiles over draws j) and the values ``(K…, S)``.

    Folds: ``num_folds`` (default: the ``cv_folds`` the generator was trained with, else
    10) shuffled with ``fold_key`` (default ``jax.random.key(CV_FOLD_SEED)``): the folds an
    ``AmortizedWBB(cv_folds=K)`` generator was trained to delete, and the folds
    :func:`exact_kfold_cv` deletes by default. A generator trained without ``cv_folds``
    never saw a tenth of its weights at zero (Exp(1) weights are never 0). Either way,
    compare a few λ with :func:`exact_kfold_cv` on a large model: on digits softmax
    regression (650 parameters) the generator scored deleted rows as if fitted, even with
    ``cv_folds=10``, and CV picked the weakest λ (docs: tuning how-to).

    Example:
        >>> curve, values = kfold_cv(infer, jax.random.key(3), result, hyper={"lam": jnp.logspace(-2, 2, 9)})
        >>> float(curve["mean"].idxmax())   # λ̂
    """

    from wbbgen._checks import as_key, positive_int
    from wbbgen.hyper import check_grid, grid_product
    from wbbgen.problem import draws, hyper_dict

    rng_key = as_key(rng_key)
    num_samples = positive_int(num_samples, "num_samples")
    infer.check_result(result)
    problem, domains, generator = result.problem, result.domains, result.generator
    grids, mesh = grid_product(domains, hyper)
    check_grid(domains, grids, "kfold_cv")
    trained = result.config.get("cv_folds")
    num_weights = problem.weights.num_weights
    masks = fold_masks(num_weights, num_folds if num_folds is not None else (trained or 10), resolve_fold_key(fold_key))
    if trained is not None and not np.array_equal(masks, trained_fold_masks(num_weights, trained)):
        warnings.warn(
            f"the generator was trained to delete its own {trained} folds (AmortizedWBB(cv_folds={trained})); "
            "other folds (`num_folds`, `fold_key`) are outside what it learned. Leave both unset to use its folds.",
            UserWarning,
            stacklevel=2,
        )
    held_out = 1.0 - np.asarray(problem.weights.expand(jnp.asarray(masks)))  # (F, n) rows deleted per fold
    values = jnp.asarray(mesh.reshape(-1, len(domains)), problem.objective.init_params.dtype)
    data = problem.objective.data
    v, pdraw = draws(problem, rng_key, values, num_samples, data)
    z = encode(domains, values)

    @jax.jit
    def cv(v, pdraw, z, values, masks, held_out):
        def at(noise, zk, xk):  # one λ: (S,)
            h = hyper_dict(problem, xk)

            def fold(mask, rows):
                thetas = jax.vmap(generator, in_axes=(0, None, 0))(v * mask, zk, noise)
                ll = jax.vmap(lambda th: sum(problem.objective.log_likelihood(th, h, data).values()))(thetas)
                return ll @ rows

            return jax.vmap(fold)(masks, held_out).sum(0) / held_out.shape[1]

        return jax.vmap(at)(pdraw.noise, z, values)

    out = np.asarray(cv(v, pdraw, z, values, jnp.asarray(masks, v.dtype), jnp.asarray(held_out, v.dtype)))
    out = out.reshape(*(len(g) for g in grids.values()), num_samples)
    return _curve_from_values(out, grids, "kfold_cv"), out


def exact_kfold_cv(
    rng_key,
    model,
    *args,
    hyper: Mapping,
    num_folds: int = 10,
    num_samples: int = 50,
    fold_key=None,
    weights="exponential",
    prior_weight: str = "anchored",
    obs_plate: str | None = None,
    **kwargs,
) -> tuple[xr.Dataset, np.ndarray]:
    """:func:`kfold_cv` by exact WBB solves instead of the generator (the reference): per
    fold, :func:`wbbgen.exact_wbb` with the fold's weights set to zero, scored on the
    deleted rows. ``weights`` and ``prior_weight`` are :func:`~wbbgen.exact_wbb`'s; with
    the settings the generator was trained with and the same ``num_folds``, ``fold_key``
    (default: the ``CV_FOLD_SEED`` folds), ``rng_key`` and ``num_samples``, the two delete
    the same folds from the same draws and compare draw by draw.

    Args:
        rng_key: the key of the draws (weights and prior draws, as in ``exact_wbb``).
        model: the model, followed by its training data (``*args, **kwargs``), as ``exact_wbb`` takes them.
        hyper: ``{name: grid}`` of the hyperparameters (their product is evaluated).
        num_folds: folds K; rows (or blocks) are shuffled into K folds of near-equal size.
        num_samples: WBB draws per fold and grid point.
        fold_key: the key that shuffles rows into folds (default ``key(CV_FOLD_SEED)``).
        weights, prior_weight, obs_plate: as in :func:`~wbbgen.exact_wbb`.

    Returns ``(curve, values)``: the xarray curve (mean, sd and quantiles over the draws)
    and the per-draw values ``(K…, num_samples)``, the mean log density per row of the
    deleted rows, summed over folds and divided by n.

    Example:
        >>> exact, _ = exact_kfold_cv(jax.random.key(3), model, X, y, hyper={"lam": [0.1, 1.0, 10.0]})
        >>> generator, _ = kfold_cv(infer, jax.random.key(3), result, hyper={"lam": [0.1, 1.0, 10.0]}, num_samples=50)
    """

    from wbbgen.exact import exact_wbb
    from wbbgen.objective import build_objective
    from wbbgen.weights import resolve_weights

    base = resolve_weights(weights, build_objective(model, args, kwargs, tuple(hyper), obs_plate).num_obs)
    masks = fold_masks(base.num_weights, num_folds, resolve_fold_key(fold_key))
    total = 0.0
    for k, mask in enumerate(masks):
        scheme = _deleting(base, jnp.asarray(mask), f"{base.name}, fold {k} deleted")
        s = exact_wbb(
            rng_key,
            model,
            *args,
            hyper=hyper,
            num_samples=num_samples,
            weights=scheme,
            prior_weight=prior_weight,
            obs_plate=obs_plate,
            progress_bar=False,
            **kwargs,
        )
        ll = sum(s._log_likelihood().values())  # (K…, S, n)
        total = total + np.asarray(ll) @ (1.0 - np.asarray(base.expand(jnp.asarray(mask))))
    out = total / base.num_obs
    grids = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in hyper.items()}
    return _curve_from_values(out, grids, "kfold_cv"), out


def _deleting(base, mask, name: str):
    """``base`` with the weights where ``mask`` is 0 set to zero: the same draws as
    ``base.sample(key) * mask`` (what :func:`kfold_cv` feeds the generator)."""

    def sample(key, shape=()):
        v = base.sample(key, shape)
        return v * mask.astype(v.dtype)

    return base._replace(name=name, sample=sample, has_zeros=True)


def _curve_from_values(values, grids, name, higher_is_better: bool = True) -> xr.Dataset:
    """Mean, sd and 5/50/95 % quantiles over the draws (last axis) of per-draw values."""
    dims = list(grids)
    q = np.quantile(values, [0.05, 0.5, 0.95], axis=-1)
    data = {
        "mean": (dims, values.mean(-1)),
        "sd": (dims, values.std(-1)),
        "q05": (dims, q[0]),
        "q50": (dims, q[1]),
        "q95": (dims, q[2]),
    }
    return xr.Dataset(data, coords=grids).assign_attrs(criterion=name, higher_is_better=int(higher_is_better))
