"""Random observation weights for the weighted Bayesian bootstrap.

A weight scheme draws a vector ``v`` of ``num_weights`` random numbers with mean 1 and
expands it to one weight per observation, ``w = expand(v)`` of length ``n``. For
per-observation schemes ``v = w``; for block weights ``v`` holds one weight per block and
``num_weights = S``, which is what the generator sees (a much smaller input than ``n``).

Every scheme has E[wᵢ] = 1, so the weighted objective Σᵢ wᵢ ℓᵢ(θ) is, on average, the full
log-likelihood, and the generator's weight input is centred as ``v - 1``.

Schemes (all pure, no NumPyro):

* :func:`exponential` -- wᵢ ~ Exp(1) iid (Bayesian bootstrap; Newton, Polson & Xu 2021).
* :func:`dirichlet` -- w = n·Dirichlet(1, …, 1) (the normalised Bayesian bootstrap, Σw = n).
* :func:`multinomial` -- w = counts of n draws with replacement (Efron's bootstrap; has zeros).
* :func:`double_bootstrap` -- wᵢ ~ Gamma(a, a) with a = 1/`shape_scale` (a second-level
  bootstrap of the weights: Gamma(1, 1) = Exp(1)).
* :func:`block` -- observations are shuffled into S blocks that share a weight (GMS, Shin,
  Wang & Liu 2020); with ``shuffle=False`` blocks are contiguous by index.

Example:
    >>> import jax
    >>> from wbbgen.weights import block
    >>> scheme = block(1000, num_blocks=50, rng_key=jax.random.key(0))
    >>> v = scheme.sample(jax.random.key(1), (8,))      # (8, 50)
    >>> scheme.expand(v).shape
    (8, 1000)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen._checks import as_key, positive_int

__all__ = [
    "WeightScheme",
    "exponential",
    "dirichlet",
    "multinomial",
    "double_bootstrap",
    "block",
    "with_fold_deletion",
    "resolve_weights",
    "check_scheme",
    "take_weights",
    "DEFAULT_NUM_BLOCKS",
    "CV_DELETION_RATE",
    "CV_FOLD_SEED",
    "fold_masks",
    "trained_fold_masks",
    "resolve_fold_key",
]


class WeightScheme(NamedTuple):
    """A random weight distribution: ``sample(rng_key, batch_shape) -> v``, ``expand(v) -> w``.

    Attributes:
        name: short name recorded in results.
        num_obs: n, the number of observations weighted.
        num_weights: length of ``v`` (n, or S for block weights).
        sample: ``(rng_key, batch_shape) -> (*batch_shape, num_weights)`` with E[v] = 1.
        expand: ``(*batch, num_weights) -> (*batch, num_obs)``.
        has_zeros: whether weights can be exactly zero (multinomial).
        take: ``(v, idx) -> expand(v)[..., idx]`` without expanding all n weights (data
            minibatches, :mod:`wbbgen.minibatch`); None falls back to expanding.
    """

    name: str
    num_obs: int
    num_weights: int
    sample: Callable[[jax.Array, tuple[int, ...]], jax.Array]
    expand: Callable[[jax.Array], jax.Array]
    has_zeros: bool = False
    take: Callable[[jax.Array, jax.Array], jax.Array] | None = None


def _check_n(n, name="n"):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {n!r}.")
    return int(n)


def _identity(v):
    return v


def _take(v, idx):
    return jnp.take(v, idx, axis=-1)


def take_weights(scheme: WeightScheme, v, idx):
    """The weights of observations ``idx`` (B,): ``expand(v)[..., idx]`` in O(B) when the
    scheme has a ``take`` (every built-in scheme), else by expanding all n."""
    if scheme.take is not None:
        return scheme.take(v, idx)
    return jnp.take(scheme.expand(v), idx, axis=-1)


def exponential(n: int) -> WeightScheme:
    """wᵢ ~ Exp(1) iid: the Bayesian bootstrap (the default)."""
    n = _check_n(n)

    def sample(rng_key, batch_shape=()):
        return jax.random.exponential(rng_key, (*batch_shape, n))

    return WeightScheme("exponential", n, n, sample, _identity, take=_take)


def dirichlet(n: int) -> WeightScheme:
    """w = n · Dirichlet(1ₙ): Bayesian bootstrap normalised to Σᵢ wᵢ = n."""
    n = _check_n(n)

    def sample(rng_key, batch_shape=()):
        e = jax.random.exponential(rng_key, (*batch_shape, n))
        return n * e / e.sum(-1, keepdims=True)

    return WeightScheme("dirichlet", n, n, sample, _identity, take=_take)


def multinomial(n: int) -> WeightScheme:
    """w = counts of n draws with replacement from {1..n} (Efron's bootstrap, E[wᵢ] = 1)."""
    n = _check_n(n)

    def sample(rng_key, batch_shape=()):
        idx = jax.random.randint(rng_key, (*batch_shape, n), 0, n)
        one_hot_counts = jax.vmap(lambda i: jnp.bincount(i, length=n))
        flat = idx.reshape(-1, n)
        counts = one_hot_counts(flat).reshape(*batch_shape, n)
        return counts.astype(jnp.result_type(float))

    return WeightScheme("multinomial", n, n, sample, _identity, has_zeros=True, take=_take)


def double_bootstrap(n: int, shape_scale: float = 1.0) -> WeightScheme:
    """wᵢ ~ Gamma(a, rate=a), a = 1 / `shape_scale`: mean 1, variance `shape_scale`.

    ``shape_scale=1`` is Exp(1); smaller values give tighter weights (a first-level
    bootstrap whose weights are themselves resampled).
    """
    n = _check_n(n)
    if not shape_scale > 0:
        raise ValueError(f"`shape_scale` must be > 0, got {shape_scale!r}.")
    a = 1.0 / shape_scale

    def sample(rng_key, batch_shape=()):
        return jax.random.gamma(rng_key, a, (*batch_shape, n)) / a

    return WeightScheme(f"double_bootstrap({shape_scale:g})", n, n, sample, _identity, take=_take)


def block(
    n: int,
    num_blocks: int,
    *,
    rng_key: jax.Array | None = None,
    shuffle: bool = True,
    base: Callable[[int], WeightScheme] = exponential,
) -> WeightScheme:
    """S blocks of observations share one weight drawn from ``base(S)``.

    Rows are assigned to blocks by a random permutation drawn with ``rng_key`` (required
    when ``shuffle=True``), so a block is never a run of consecutive rows unless asked
    (``shuffle=False``): consecutive rows are often sorted by time or by class.
    """
    n = _check_n(n)
    num_blocks = _check_n(num_blocks, "num_blocks")
    if num_blocks > n:
        raise ValueError(f"`num_blocks`={num_blocks} exceeds the number of observations {n}.")
    if shuffle:
        if rng_key is None:
            raise ValueError("`block(..., shuffle=True)` needs `rng_key=` to shuffle rows into blocks.")
        perm = np.asarray(jax.random.permutation(rng_key, n))
    else:
        perm = np.arange(n)
    contiguous = (np.arange(n) * num_blocks) // n  # rows 0..n/S-1 -> block 0, ...
    assignment = np.empty(n, dtype=np.int32)
    assignment[perm] = contiguous
    inner = base(num_blocks)
    assignment = jnp.asarray(assignment)

    def expand(v):
        return jnp.take(v, assignment, axis=-1)

    def take(v, idx):
        return jnp.take(v, jnp.take(assignment, idx), axis=-1)

    return WeightScheme(
        f"block({num_blocks}, {inner.name})", n, num_blocks, inner.sample, expand, inner.has_zeros, take
    )


def with_fold_deletion(scheme: WeightScheme, masks, rate: float) -> WeightScheme:
    r"""Training weights for K-fold CV by deletion (GMS, Shin, Wang & Liu 2020): a draw of
    ``scheme`` whose weights are, with probability ``rate``, multiplied by the 0/1 mask of a
    fold chosen uniformly from ``masks`` ``(K, num_weights)``:

    .. math:: v = v_0 \odot m_F, \quad F \sim \text{Uniform}\{1..K\} \text{ w.p. } r, \; m_F = 1 \text{ otherwise}.

    The generator is conditional on w, so this does not move its target at any w; it
    trains it on the fold-deleted weights that :func:`wbbgen.tuning.kfold_cv` feeds it,
    which plain Exp(1) draws never contain (zero weights on a tenth of the rows at once).
    Used for training only (``AmortizedWBB(cv_folds=K)``), never for posterior draws.

    Example:
        >>> import jax
        >>> from wbbgen.weights import exponential, fold_masks, with_fold_deletion
        >>> s = with_fold_deletion(exponential(20), fold_masks(20, 4, jax.random.key(0)), 0.5)
        >>> s.sample(jax.random.key(1), (8,)).shape
        (8, 20)
    """
    masks = jnp.asarray(masks)
    if masks.ndim != 2 or masks.shape[1] != scheme.num_weights:
        raise ValueError(f"`masks` must have shape (num_folds, {scheme.num_weights}), got {masks.shape}.")
    if not 0.0 < float(rate) <= 1.0:
        raise ValueError(f"`rate` must be in (0, 1], got {rate!r}.")

    def sample(rng_key, batch_shape=()):
        k_v, k_f, k_u = jax.random.split(rng_key, 3)
        v = scheme.sample(k_v, batch_shape)
        fold = jax.random.randint(k_f, batch_shape, 0, masks.shape[0])
        delete = jax.random.bernoulli(k_u, rate, batch_shape)
        return v * jnp.where(delete[..., None], masks[fold].astype(v.dtype), 1.0)

    return scheme._replace(
        name=f"{scheme.name}, fold deletion ({masks.shape[0]} folds, rate {float(rate):g})",
        sample=sample,
        has_zeros=True,
    )


#: Blocks of ``weights="block"``: the generator's weight input has this many entries
#: (or n, if fewer), whatever the number of observations.
DEFAULT_NUM_BLOCKS = 1000
#: The PRNG key (as an int) of ``weights="block"``'s shuffle of rows into blocks.
DEFAULT_BLOCK_SEED = 0


def _default_block(n: int) -> WeightScheme:
    """``block(n, min(n, 1000))`` with a fixed shuffle (key 0): ``weights="block"``."""
    return block(n, min(n, DEFAULT_NUM_BLOCKS), rng_key=jax.random.key(DEFAULT_BLOCK_SEED))


_BY_NAME = {
    "block": _default_block,
    "exponential": exponential,
    "dirichlet": dirichlet,
    "multinomial": multinomial,
    "double_bootstrap": double_bootstrap,
}


#: Draws of a user's scheme checked by :func:`resolve_weights` (fixed key, once per call).
_CHECK_DRAWS = 8


def check_scheme(scheme: WeightScheme) -> WeightScheme:
    """Draw ``_CHECK_DRAWS`` weight vectors with a fixed key and check them: ``sample`` gives
    ``(draws, num_weights)``, ``expand`` gives ``(draws, num_obs)``, every weight is finite
    and ≥ 0, and no draw is all zero. A scheme that is only occasionally wrong (negative
    once in a million draws) can pass; the check catches schemes that are wrong by design.
    """
    batch = (_CHECK_DRAWS,)
    v = jnp.asarray(scheme.sample(jax.random.key(0), batch))
    if v.shape != (*batch, scheme.num_weights):
        raise ValueError(
            f"weight scheme {scheme.name!r}: sample(key, {batch}) returned shape {v.shape}, expected "
            f"{(*batch, scheme.num_weights)} (batch shape + num_weights={scheme.num_weights})."
        )
    w = np.asarray(scheme.expand(v))
    if w.shape != (*batch, scheme.num_obs):
        raise ValueError(
            f"weight scheme {scheme.name!r}: expand(v) returned shape {w.shape}, expected "
            f"{(*batch, scheme.num_obs)} (batch shape + num_obs={scheme.num_obs}, one weight per observation)."
        )
    if not np.issubdtype(w.dtype, np.number) or np.issubdtype(w.dtype, np.complexfloating):
        raise TypeError(f"weight scheme {scheme.name!r} returned weights of dtype {w.dtype}; weights must be real.")
    if not np.all(np.isfinite(w)):
        raise ValueError(
            f"weight scheme {scheme.name!r} drew NaN or inf weights ({int((~np.isfinite(w)).sum())} of {w.size} "
            "in a check with a fixed key); weights must be finite."
        )
    if np.any(w < 0):
        raise ValueError(
            f"weight scheme {scheme.name!r} drew negative weights (min {w.min():.3g}, in a check with a fixed "
            "key); WBB weights must be ≥ 0, or the weighted objective has no minimum."
        )
    if np.any(w.sum(-1) == 0):
        raise ValueError(
            f"weight scheme {scheme.name!r} drew a vector of all-zero weights (in a check with a fixed key); "
            "such a draw ignores the data, and its optimum is the prior's."
        )
    return scheme


def resolve_weights(weights, n: int) -> WeightScheme:
    """Turn ``weights=`` (a name, a factory ``n -> WeightScheme`` or a scheme) into a scheme.

    A user's scheme (given as a scheme or a factory) is validated by :func:`check_scheme`;
    the built-in names are not drawn (they are tested, and n may be large).
    """
    if isinstance(weights, WeightScheme):
        if weights.num_obs != n:
            raise ValueError(
                f"`weights` was built for {weights.num_obs} observations but the data have {n}; "
                "rebuild it with the data's length."
            )
        return check_scheme(weights)
    if isinstance(weights, str):
        if weights not in _BY_NAME:
            raise ValueError(f"`weights={weights!r}` is unknown; choose one of {sorted(_BY_NAME)}.")
        return _BY_NAME[weights](n)
    if callable(weights):
        return resolve_weights(weights(n), n)
    raise TypeError(
        f"`weights` must be a name, a WeightScheme or a function n -> WeightScheme, got {type(weights).__name__}."
    )


#: With ``AmortizedWBB(cv_folds=K)``: the share of training draws with a fold deleted.
CV_DELETION_RATE = 0.5
#: The PRNG key (as an int) of the folds ``AmortizedWBB(cv_folds=K)`` trains on and
#: :func:`kfold_cv` then uses.
CV_FOLD_SEED = 0


def trained_fold_masks(num_weights: int, num_folds: int) -> np.ndarray:
    """The folds an ``AmortizedWBB(cv_folds=num_folds)`` generator is trained to delete."""
    return fold_masks(num_weights, num_folds, resolve_fold_key(None))


def resolve_fold_key(fold_key):
    """``fold_key``, or the key of the default folds (``CV_FOLD_SEED``)."""

    return jax.random.key(CV_FOLD_SEED) if fold_key is None else fold_key


def fold_masks(num_weights: int, num_folds: int, rng_key) -> np.ndarray:
    """``(num_folds, num_weights)`` 0/1 masks: entries shuffled into ``num_folds`` folds of
    (near-)equal size with a seeded permutation; mask k is 0 on fold k."""

    num_folds = positive_int(num_folds, "num_folds")
    if num_folds < 2 or num_folds > num_weights:
        raise ValueError(f"`num_folds` must be between 2 and {num_weights}, got {num_folds}.")
    perm = np.asarray(jax.random.permutation(as_key(rng_key), num_weights))
    fold = np.empty(num_weights, dtype=int)
    fold[perm] = np.arange(num_weights) % num_folds
    return (fold[None, :] != np.arange(num_folds)[:, None]).astype(float)
