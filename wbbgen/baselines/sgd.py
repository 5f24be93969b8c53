r"""The epoch-based inner trainer of Hyperband and Ariafar et al.: minibatch Adam on the MAP
objective, optionally with importance-sampled minibatches (Katharopoulos & Fleuret 2018).

Per step, with a minibatch B of size b from n training rows,

.. math:: \hat f(θ) = \frac{1}{b}\sum_{i \in B} ω_i\, ℓ_i(θ) - \frac{1}{n}\log p_λ(θ),

where ℓᵢ is row i's negative log likelihood (the full objective is n · E[f̂]). Uniform
sampling: ωᵢ = 1. **Importance sampling** with pre-sample ratio r: draw r·b rows uniformly, compute
for each the bound Gᵢ = ‖∂ℓᵢ/∂η‖ on its gradient norm from the last layer (η the output:
the residual for Gaussian rows, |σ(η) − y| for Bernoulli rows, ‖softmax(η) − e_y‖ for
categorical rows -- one forward pass, no backward), resample b of them with probabilities
pᵢ ∝ Gᵢ and weight ωᵢ = 1/(r·b·pᵢ) (unbiased for the pre-sample mean). IS is switched on for
a step only when it pays: the variance ratio of IS to uniform sampling, estimated from the
bounds as ρ = (mean G)² / mean(G²), must be below 1/(1 + r/3) (a forward pass costs about a
third of a gradient, so the pre-sample costs r/3 of a uniform step). A full fit is
``task.epochs`` epochs of ⌈n/b⌉ steps, the learning rate decaying by a cosine from
``task.learning_rate`` to 5 % of it over those steps (a shorter run stops with a higher rate:
that is what makes it cheap and noisy); an IS epoch costs (1 + r/3) uniform epochs.

Example (on the test suite's small task):
    >>> import jax, numpy as np
    >>> from wbbgen.baselines import get_task
    >>> from wbbgen.baselines.sgd import sgd_epochs, sgd_init
    >>> task = get_task("tiny-ridge")
    >>> state = sgd_init(task, jax.random.key(0))
    >>> state, frac_is = sgd_epochs(task, state, jax.random.key(1), np.log([1.0]), 2, ratio=3)
    >>> 0.0 <= float(frac_is) <= 1.0
    True
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wbbgen.baselines.task import Task

__all__ = ["sgd_init", "sgd_epochs", "epoch_cost", "grad_bound"]


def epoch_cost(ratio: float) -> float:
    """Cost of one epoch relative to a uniform epoch (forward ≈ 1/3 of a gradient)."""
    return 1.0 + ratio / 3.0


def steps_per_epoch(task: Task) -> int:
    return int(np.ceil(task.X_train.shape[0] / min(task.batch_size, task.X_train.shape[0])))


def _optimizer(task: Task):
    """Adam with a cosine decay to 5 % of ``task.learning_rate`` over a full fit's steps."""
    total = task.epochs * steps_per_epoch(task)
    return optax.adam(optax.cosine_decay_schedule(task.learning_rate, total, alpha=0.05))


def sgd_init(task: Task, rng_key=None):
    """``(theta, opt_state)`` at the inner fits' start."""
    theta = task.init_theta(rng_key)
    return theta, _optimizer(task).init(theta)


def grad_bound(task: Task, theta, X, y):
    """Per-row gradient-norm bound ‖∂ℓᵢ/∂η‖ from the output layer ``(k,)``."""
    out = task.predict(task.params(theta), X)
    if task.kind == "regression":
        return jnp.abs(out - y)
    if out.ndim == 1:
        return jnp.abs(jax.nn.sigmoid(out) - y)
    onehot = jax.nn.one_hot(y, out.shape[-1], dtype=out.dtype)
    return jnp.linalg.norm(jax.nn.softmax(out, -1) - onehot, axis=-1)


@lru_cache(maxsize=32)
def _epoch_fn(task: Task, ratio: int):
    n = task.X_train.shape[0]
    b = min(task.batch_size, n)
    steps = steps_per_epoch(task)
    X, y = jnp.asarray(task.X_train), jnp.asarray(task.y_train)
    opt = _optimizer(task)
    pre = min(n, max(b, int(ratio * b)))  # the pre-sample, at most every row

    def step_loss(theta, lam, idx, w):
        nll = task.nll(theta, X[idx], y[idx])
        obj = task.objective
        h = task.hyper_tree(lam)
        return jnp.mean(w * nll) - obj.log_prior(theta, h, obj.data) / n

    @jax.jit
    def epoch(state, rng_key, x):
        lam = jnp.exp(x).astype(task.dtype)

        def step(carry, key):
            theta, s = carry
            if ratio == 0:
                idx = jax.random.choice(key, n, (b,), replace=False)
                w = jnp.ones(b, task.dtype)
                on = jnp.zeros((), bool)
            else:
                k1, k2 = jax.random.split(key)
                cand = jax.random.choice(k1, n, (pre,), replace=False)
                g = jax.lax.stop_gradient(grad_bound(task, theta, X[cand], y[cand])) + 1e-8
                p = g / jnp.sum(g)
                rho = jnp.mean(g) ** 2 / jnp.mean(g**2)
                on = rho < 1.0 / epoch_cost(ratio)
                pick = jax.random.choice(k2, pre, (b,), p=p)
                idx = jnp.where(on, cand[pick], cand[:b])
                w = jnp.where(on, 1.0 / (pre * p[pick]), 1.0).astype(task.dtype)
            grads = jax.grad(step_loss)(theta, lam, idx, w)
            upd, s = opt.update(grads, s, theta)
            return (optax.apply_updates(theta, upd), s), on

        (theta, s), on = jax.lax.scan(step, state, jax.random.split(rng_key, steps))
        return (theta, s), jnp.mean(on.astype(task.dtype))

    return epoch


def sgd_epochs(task: Task, state, rng_key, x, num_epochs: int, ratio: int = 0):
    """Train ``num_epochs`` epochs at ``log λ = x``; ``ratio`` > 0 turns on importance sampling
    with that pre-sample ratio. Returns ``(state, share of IS steps)``."""
    epoch = _epoch_fn(task, int(ratio))
    x = jnp.asarray(np.reshape(x, -1), task.dtype)
    shares = []
    for key in jax.random.split(rng_key, num_epochs):
        state, share = epoch(state, key, x)
        shares.append(float(share))
    return state, float(np.mean(shares)) if shares else 0.0
