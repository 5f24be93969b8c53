r"""Unbiased data minibatches of the weighted objective: a training step in O(B), not O(n).

For one draw (weights w, prior randomness ξ, hyperparameters λ) the weighted objective is
L(θ) = Σᵢ wᵢ aᵢ(θ) − R(θ; ξ, λ) with aᵢ = −ℓᵢ(θ, λ) (:mod:`wbbgen.prior`). With rows
i₁, …, i_B drawn uniformly from {1, …, n} with replacement,

.. math::

    \hat L(θ) = \frac{n}{B} \sum_{b=1}^{B} w_{i_b}\, a_{i_b}(θ) - R(θ; ξ, λ), \qquad
    \mathbb{E}[\hat L] = L, \qquad
    \operatorname{Var}[\hat L] = \frac{1}{B}\Big(n \sum_i (w_i a_i)^2 - \big(\textstyle\sum_i w_i a_i\big)^2\Big),

and likewise E[∇θ L̂] = ∇θ L, so criterion training (:mod:`wbbgen.training`) minimises the same
expected objective with a noisier gradient. Sampling with replacement keeps a step O(B) (no
permutation of n rows). One set of rows is shared by every (w, λ, ξ) draw of a training step
(one gather of B rows; the randomness of the rows is independent of the draws'); each draw's
weights at those rows come from :func:`wbbgen.weights.take_weights` without expanding all n
(block weights: the block of each row).

Which data are sliced: every array of the model's data whose leading axis has length n
(``X (n, p)``, ``y (n,)``); other arrays (a group table, a basis) are passed whole. The
model must take n from its data (``numpyro.plate("data", X.shape[0])``), not from a
constant: :func:`check_minibatch` evaluates the likelihood on a few rows both ways and
refuses a model where they disagree. The prior term R sees the full data (it is O(1) in n:
parts of the model that only feed the likelihood are removed by the compiler).

Use through :class:`~wbbgen.AmortizedWBB`::

    infer = AmortizedWBB(model, hyper=hyper, weights="block", data_batch_size=1024)
    result = infer.run(rng_key, X, y)          # X: (10**6, 100); each step touches 1024 rows

Example:
    >>> import jax, jax.numpy as jnp
    >>> from wbbgen.minibatch import sample_rows, take_rows
    >>> X, y, basis = jnp.ones((100, 3)), jnp.zeros(100), jnp.eye(3)
    >>> idx = sample_rows(jax.random.key(0), 100, 8)              # (B,) rows, with replacement
    >>> batch = take_rows((X, y, basis), (True, True, False), idx)  # per-observation arrays sliced
    >>> [a.shape for a in batch]
    [(8, 3), (8,), (3, 3)]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen._data import per_row, take_rows
from wbbgen.problem import Problem, hyper_dict
from wbbgen.weights import take_weights

__all__ = ["row_mask", "sample_rows", "take_rows", "minibatch_loss", "check_minibatch"]


def row_mask(problem: Problem):
    """A tree like the model's data: True for arrays indexed by observation (leading axis n,
    :func:`wbbgen._data.per_row`)."""
    return per_row(problem.objective.data, problem.objective.num_obs)


def sample_rows(rng_key, num_obs: int, batch_size: int):
    """``batch_size`` row indices uniform on {0, …, n − 1}, with replacement: ``(B,)`` int32."""
    return jax.random.randint(rng_key, (batch_size,), 0, num_obs, dtype=jnp.int32)


def minibatch_loss(problem: Problem, theta, v, draw, values, data, batch_data, idx):
    """L̂(θ; w, ξ, λ) = (n/B) Σ_b w_{i_b}(−ℓ_{i_b}) − R: the unbiased estimate of
    :func:`wbbgen.problem.loss` from rows ``idx`` (B,) whose data are ``batch_data``."""
    obj = problem.objective
    hyper = hyper_dict(problem, values)
    w = take_weights(problem.weights, v, idx)
    ll = obj.log_likelihood(theta, hyper, batch_data)
    scale = obj.num_obs / idx.shape[0]
    data_term = scale * sum(jnp.dot(w, x) for x in ll.values())
    return -data_term - problem.prior.log_prior(obj, theta, draw, hyper, data)


def check_minibatch(problem: Problem, batch_size, values, argument: str = "data_batch_size"):
    """Validate ``batch_size`` and check that the model can be evaluated on a subset of rows.

    Returns the batch size to use: None (full data) when ``batch_size`` is None or ≥ n.
    Raises ValueError when no data array has n rows, or when the per-observation log
    likelihood of 8 rows (fixed key, at the prior medians and hyperparameters ``values``)
    evaluated on those rows alone differs from the same rows of the full evaluation.
    """
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"`{argument}` must be a positive integer or None, got {batch_size!r}.")
    obj = problem.objective
    n = obj.num_obs
    if batch_size >= n:
        return None
    if obj.expand is not None:
        raise ValueError(
            f"`{argument}={batch_size}`: this is a hierarchical model (local latent sites "
            f"{sorted(obj.local_layout.sites)} are integrated out per group, {n} groups), and data minibatches "
            f'of groups are not supported: pass `{argument}=None` (or `weights="block"` for many groups).'
        )
    mask = row_mask(problem)
    if not any(jax.tree_util.tree_leaves(mask)):
        raise ValueError(
            f"`{argument}={batch_size}`: none of the model's data arrays has n = {n} rows on its first axis, "
            "so wbbgen cannot take a minibatch of observations; pass the data as arrays indexed by "
            f"observation first, or `{argument}=None`."
        )
    idx = sample_rows(jax.random.key(0), n, min(8, n))
    hyper = hyper_dict(problem, jnp.asarray(values, obj.init_params.dtype))

    theta0 = obj.init_params
    sub = take_rows(obj.data, mask, idx)
    try:
        shapes = jax.eval_shape(lambda d: obj.log_likelihood(theta0, hyper, d), sub)
    except (ValueError, TypeError, IndexError) as err:
        raise ValueError(
            f"`{argument}={batch_size}`: the model fails on a subset of the data rows ({err}). The model must "
            "take the number of observations from its data (numpyro.plate('data', X.shape[0])), and every "
            f"array indexed by observation must have it as its first axis; or pass `{argument}=None`."
        ) from err
    shapes_ok = all(s.shape == idx.shape for s in jax.tree_util.tree_leaves(shapes))
    if shapes_ok:
        loglik = jax.jit(lambda d: obj.log_likelihood(theta0, hyper, d))
        full, part = loglik(obj.data), loglik(sub)
    ok = shapes_ok
    if ok:
        for k, f in full.items():
            a, b = np.asarray(f)[np.asarray(idx)], np.asarray(part[k])
            tol = 1e-4 * (1.0 + np.abs(a)) if a.dtype == np.float32 else 1e-9 * (1.0 + np.abs(a))
            ok &= bool(np.all(np.abs(a - b) <= tol))
    if not ok:
        raise ValueError(
            f"`{argument}={batch_size}`: the log likelihood of a subset of rows, evaluated on those rows alone, "
            "differs from the same rows of the full evaluation: some array indexed by observation does not "
            "have n as its first axis, or an array with n rows is not per observation (the model must take n "
            f"from its data, e.g. numpyro.plate('data', X.shape[0])). Pass `{argument}=None` for this model."
        )
    return int(batch_size)
