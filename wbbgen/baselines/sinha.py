r"""Sinha, Gunwal & Kumar (arXiv 2208.12118): bilevel tuning through a GP approximation of the
lower level's value function, solved by an augmented Lagrangian.

With f̄(θ, λ) = f(θ, λ)/n the training objective per row and F(θ) the validation loss
(mean negative log likelihood of the validation rows):

1. **Value function.** φ(λ) = min_θ f̄(θ, λ) at an initial design of log λ (one exact MAP fit
   each): ``n_init`` evenly spaced values for one hyperparameter (the paper uses the 10
   integers −10 … −1 of u), seeded uniform points otherwise; a GP (:mod:`wbbgen.baselines.gp`,
   tinygp Matérn-5/2) gives φ̂ and its gradient in λ.
2. **Single-level problem.** min_{θ, λ} F(θ) s.t. g(θ, λ) = f̄(θ, λ) − φ̂(λ) ≤ 0, by the
   augmented Lagrangian

   .. math:: \mathcal L_R(θ, λ; μ) = F(θ) + μ\,g^+ + \tfrac R2 (g^+)^2,\qquad g^+ = \max(g, 0),

   minimised jointly over (θ, log λ) by Adam (``inner_steps`` steps, lr 1e-2, log λ clipped
   to the box), from the initial design point with the lowest validation loss. Outer
   rounds (5, as in the authors' code): R₀ = 2, μ ← max(0, μ + R·g), R ← 1.5R.
3. **Refit.** After each round the exact φ(λₖ) is computed (one fit) and added to the GP,
   which is refitted; the round's true violation is gₖ = f̄(θₖ, λₖ) − φ(λₖ) ≥ 0.
4. **Choice.** The least-violating augmented-Lagrangian iterate (smallest gₖ, ties broken by
   the validation loss); the best initial point only if the budget allowed no round.

Budget: each exact φ evaluation is one fit and each augmented-Lagrangian minimisation
(``inner_steps`` full-batch gradient steps on train + validation rows) is counted as one fit.
The tuner's own validation loss is that of θₖ -- weights that were partly fitted *on the
validation loss*, as in the paper (its validation CE is far below its test CE); the harness
refits at λₖ before scoring.

Example (it trains, so it is not run as a doctest)::

    from wbbgen.baselines import Budget, get_task
    from wbbgen.baselines.sinha import sinha

    res = sinha(get_task("ridge-diabetes"), Budget(fits=20), seed=0)
    res.info["violations"]
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wbbgen.baselines.gp import build_gp, fit_gp
from wbbgen.baselines.task import Task
from wbbgen.baselines.trace import Budget, Recorder, TunerResult

__all__ = ["sinha"]

ROUNDS = 5
R0 = 2.0
GROWTH = 1.5


def _gp_mean(gp, u):
    """GP posterior mean at one unit-box point ``u (m,)``, differentiable (original units)."""
    model, _ = build_gp(gp.params, gp.U, gp.T, gp.diag, 1)
    ls = jnp.exp(jnp.clip(gp.params["log_ls"], np.log(0.02), np.log(5.0)))
    return model.condition(gp.y, (u / ls)[None]).gp.loc[0] * gp.y_sd + gp.y_mean


@lru_cache(maxsize=16)
def _al_solver(task: Task, inner_steps: int):
    n = task.X_train.shape[0]
    Xv, yv = jnp.asarray(task.X_val), jnp.asarray(task.y_val)
    lo, width = jnp.asarray(task.log_low), jnp.asarray(task.log_high - task.log_low)
    opt = optax.adam(1e-2)

    def violation(theta, x, gp):
        f = task.train_loss(theta, jnp.exp(x).astype(task.dtype)) / n
        return f - _gp_mean(gp, (x - lo) / width)

    @jax.jit
    def solve(theta, x, mu, R, gp):
        def lagrangian(z):
            th, xx = z
            g = jnp.maximum(violation(th, xx, gp), 0.0)
            return jnp.mean(task.nll(th, Xv, yv)) + mu * g + 0.5 * R * g**2

        def step(carry, _):
            z, s = carry
            grads = jax.grad(lagrangian)(z)
            upd, s = opt.update(grads, s, z)
            th, xx = optax.apply_updates(z, upd)
            return ((th, jnp.clip(xx, lo, lo + width)), s), None

        z0 = (theta, x)
        (z, _), _ = jax.lax.scan(step, (z0, opt.init(z0)), None, length=inner_steps)
        return z[0], z[1], violation(z[0], z[1], gp)

    return solve


def sinha(task: Task, budget: Budget, seed: int = 0, n_init: int | None = None, inner_steps: int = 300) -> TunerResult:
    """GP value function + augmented Lagrangian (module docstring)."""
    rec = Recorder(budget, task)
    rng = np.random.default_rng(seed)
    m, n = task.num_hyper, task.X_train.shape[0]
    lo, width = task.log_low, task.log_high - task.log_low
    if n_init is None:
        n_init = 6 if m == 1 else 2 * m + 2
    if budget.fits is not None:
        n_init = int(max(2, min(n_init, budget.fits // 2)))
    U = np.linspace(0.0, 1.0, n_init)[:, None] if m == 1 else rng.uniform(size=(n_init, m))
    U, phi, thetas, vals = list(U), [], [], []
    for u in U:
        theta, _ = task.fit(lo + u * width)
        rec.add_fits(1)
        phi.append(float(task.train_loss(theta, jnp.exp(jnp.asarray(lo + u * width, task.dtype)))) / n)
        thetas.append(theta)
        vals.append(task.val_loss(theta))
        rec.log(lo + u * width, vals[-1])
    start = int(np.argmin(vals))
    theta, x = thetas[start], jnp.asarray(lo + U[start] * width, task.dtype)
    candidates = []  # (violation, own val loss, x) of the augmented-Lagrangian iterates
    mu, R = 0.0, R0
    solve = _al_solver(task, inner_steps)
    violations = []
    for _ in range(ROUNDS):
        if rec.exhausted(next_cost=2):
            break
        gp = fit_gp(np.asarray(U), np.asarray(phi))
        theta, x, g_hat = solve(theta, x, jnp.asarray(mu, task.dtype), jnp.asarray(R, task.dtype), gp)
        rec.add_fits(1)
        xk = np.asarray(x, float)
        if not (np.all(np.isfinite(xk)) and np.isfinite(float(g_hat))):  # a diverged round ends the search
            break
        mu = max(0.0, mu + R * float(g_hat))
        R *= GROWTH
        theta_k, _ = task.fit(xk, theta)  # the exact lower level at λₖ: φ(λₖ) and the GP's new point
        rec.add_fits(1)
        f_k = float(task.train_loss(theta, jnp.exp(x))) / n
        phi_k = float(task.train_loss(theta_k, jnp.exp(x))) / n
        g_true = max(0.0, f_k - phi_k)
        U.append((xk - lo) / width)
        phi.append(phi_k)
        own_val = task.val_loss(theta)
        violations.append(g_true)
        candidates.append((g_true, own_val, xk))
        best = min(candidates, key=lambda c: (c[0], c[1]))
        rec.log(xk, own_val, incumbent=(best[2], best[1]), violation=g_true, mu=mu, R=R)
    if candidates:
        best = min(candidates, key=lambda c: (c[0], c[1]))
    else:  # no round fitted in the budget: the best initial point
        best = (0.0, vals[start], lo + U[start] * width)
    return rec.result(
        best[2],
        n_init=n_init,
        rounds=len(violations),
        violations=violations,
        inner_steps=inner_steps,
        own_val_loss=best[1],
    )
