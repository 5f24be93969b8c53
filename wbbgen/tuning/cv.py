r"""K-fold cross-validation by weight deletion: through the generator, or by exact solves.

Rows (or, for block weights, blocks) are shuffled into folds F₁, …, F_K with 0/1 masks mₖ
(:func:`wbbgen.weights.fold_masks`, 0 on fold k). Deleting fold k sets its weights to zero:
θⱼₖ is draw j with weights wⱼ ⊙ mₖ, the WBB draw of the data without the fold, and the
criterion is the mean log density of the deleted rows,

.. math:: \mathrm{CV}_j(λ) = \frac{1}{n} \sum_{k=1}^{K} \sum_{i \in F_k} \log p(y_i \mid θ_{jk}(λ), λ).

:func:`kfold_cv` computes θⱼₖ with the trained generator (K folds for the price of one
training), :func:`exact_kfold_cv` with exact solves (the reference). With the same folds,
key and number of draws the two delete the same folds from the same draws and compare draw by draw.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from wbbgen._checks import as_key, positive_int
from wbbgen.exact import exact_wbb
from wbbgen.hyper import check_grid, encode, grid_product
from wbbgen.model import build_objective
from wbbgen.problem import draws, generate_grid, hyper_dict
from wbbgen.tuning.criteria import curve_from_values
from wbbgen.weights import fold_masks, resolve_fold_key, resolve_weights, trained_fold_masks

__all__ = ["kfold_cv", "exact_kfold_cv"]


def kfold_cv(
    infer, rng_key, result, *, hyper: Mapping, num_folds: int | None = None, num_samples: int = 200, fold_key=None
) -> tuple[xr.Dataset, np.ndarray]:
    r"""K-fold cross-validation by weight deletion, through the generator.

    θⱼₖ = g(wⱼ ⊙ mₖ, z_λ, ξⱼ) is the generator's draw j with fold k deleted, and
    CVⱼ(λ) = (1/n) Σₖ Σ_{i ∈ Fₖ} log p(yᵢ | θⱼₖ, λ) (see :mod:`wbbgen.tuning.cv`); the draws
    are those :meth:`~wbbgen.AmortizedWBB.get_samples` makes with ``rng_key``.

    Folds: ``num_folds`` (default: the ``cv_folds`` the generator was trained with, else 10),
    shuffled with ``fold_key`` (default ``jax.random.key(CV_FOLD_SEED)``): the folds an
    ``AmortizedWBB(cv_folds=K)`` generator was trained to delete, and those
    :func:`exact_kfold_cv` deletes by default. Other folds than the trained ones warn. A
    generator trained without ``cv_folds`` never saw a tenth of its weights at zero (Exp(1)
    weights are never 0); either way, on a large model compare a few λ with
    :func:`exact_kfold_cv` before trusting the curve (the tuning how-to shows a case where
    they disagree).

    Args:
        infer: the trained object (an :class:`~wbbgen.AmortizedWBB`); used through
            ``infer.check_result(result)``.
        rng_key: the key of the draws.
        result: the result of ``infer.run``; its ``problem``, ``domains``, ``generator`` and
            ``config["cv_folds"]`` are read.
        hyper: ``{name: grid}``; the product of the grids is evaluated.
        num_folds: folds K (2 ≤ K ≤ the number of weights).
        num_samples: draws S per grid point.
        fold_key: the key that shuffles rows (or blocks) into folds.

    Returns:
        ``(curve, values)``: the curve over the grid (mean, sd and 5/50/95 % quantiles over
        the draws) and the per-draw values ``(K₁, …, K_m, num_samples)``.

    Example:
        >>> curve, values = kfold_cv(infer, jax.random.key(3), result,
        ...                          hyper={"lam": np.logspace(-2, 2, 9)})  # doctest: +SKIP
        >>> float(curve["mean"].idxmax())  # λ̂  # doctest: +SKIP
        1.0
    """
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

    @jax.jit
    def cv(v, noise, z, values, masks, held_out):
        def total(theta, x):  # Σ over observed sites of log p(yᵢ | θ, λ): (n,)
            return sum(problem.objective.log_likelihood(theta, hyper_dict(problem, x), data).values())

        def fold(mask, rows):  # (K, S): the deleted rows' log density of every draw
            thetas = generate_grid(generator, v * mask, z, noise)  # (K, S, d)
            ll = jax.vmap(lambda th_k, x: jax.vmap(lambda th: total(th, x))(th_k))(thetas, values)  # (K, S, n)
            return ll @ rows

        return jax.vmap(fold)(masks, held_out).sum(0) / held_out.shape[1]

    masks, held_out = jnp.asarray(masks, v.dtype), jnp.asarray(held_out, v.dtype)
    out = np.asarray(cv(v, pdraw.noise, encode(domains, values), values, masks, held_out))
    out = out.reshape(*(len(g) for g in grids.values()), num_samples)
    return curve_from_values(out, grids, "kfold_cv"), out


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
    static_args=(),
    **kwargs,
) -> tuple[xr.Dataset, np.ndarray]:
    """:func:`kfold_cv` by exact WBB solves instead of the generator: the reference.

    Per fold k, :func:`wbbgen.exact_wbb` with the fold's weights set to zero (the draws
    wⱼ ⊙ mₖ), scored on the deleted rows. With the settings the generator was trained with
    (``weights``, ``prior_weight``) and the same ``num_folds``, ``fold_key``, ``rng_key`` and
    ``num_samples``, it deletes the same folds from the same draws as :func:`kfold_cv`, so the
    two compare draw by draw.

    Args:
        rng_key: the key of the draws (weights and prior draws, as in ``exact_wbb``).
        model: the model, followed by its training data (``*args, **kwargs``), as ``exact_wbb`` takes them.
        hyper: ``{name: grid}`` of the hyperparameters (their product is evaluated).
        num_folds: folds K; rows (or blocks) are shuffled into K folds of near-equal size.
        num_samples: WBB draws per fold and grid point.
        fold_key: the key that shuffles rows into folds (default ``key(CV_FOLD_SEED)``).
        weights, prior_weight, obs_plate, static_args: as in :func:`~wbbgen.exact_wbb`.

    Returns:
        ``(curve, values)``: the curve (mean, sd and quantiles over the draws) and the
        per-draw values ``(K₁, …, K_m, num_samples)``, the deleted rows' log density summed
        over folds and divided by n.

    Example:
        >>> exact, _ = exact_kfold_cv(jax.random.key(3), model, X, y, hyper={"lam": [0.1, 1.0, 10.0]},
        ...                           num_samples=8)  # doctest: +SKIP
        >>> mine, _ = kfold_cv(infer, jax.random.key(3), result, hyper={"lam": [0.1, 1.0, 10.0]},
        ...                    num_samples=8)  # doctest: +SKIP
        >>> exact["mean"].values, mine["mean"].values  # the same folds and draws  # doctest: +SKIP
    """
    base = resolve_weights(
        weights, build_objective(model, args, kwargs, tuple(hyper), obs_plate, static_args=static_args).num_obs
    )
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
            static_args=static_args,
            progress_bar=False,
            **kwargs,
        )
        ll = _pointwise_log_likelihood(s)  # (K…, S, n)
        total = total + ll @ (1.0 - np.asarray(base.expand(jnp.asarray(mask))))
    out = total / base.num_obs
    grids = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in hyper.items()}
    return curve_from_values(out, grids, "kfold_cv"), out


def _pointwise_log_likelihood(samples) -> np.ndarray:
    """log p(yᵢ | θ, λ) of the training rows, summed over observed sites: ``(K…, S, n)``,
    read from the draws' InferenceData (``log_likelihood`` group, dims (chain, draw, K…, n))."""
    group = samples.to_inference_data(log_likelihood=True).log_likelihood
    ll = sum(np.asarray(group[name].values) for name in group.data_vars)[0]  # (S, K…, n)
    return np.moveaxis(ll, 0, len(samples.hyper))


def _deleting(base, mask, name: str):
    """``base`` with the weights where ``mask`` is 0 set to zero: the same draws as
    ``base.sample(key) * mask`` (what :func:`kfold_cv` feeds the generator)."""

    def sample(key, shape=()):
        v = base.sample(key, shape)
        return v * mask.astype(v.dtype)

    return base._replace(name=name, sample=sample, has_zeros=True)
