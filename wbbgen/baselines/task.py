r"""A tuning *task*: a NumPyro model, train / validation / test data, a hyperparameter box, and
the shared inner model every tuner is scored with.

The inner model of every task is the MAP fit (the posterior mode) of the task's NumPyro model
at hyperparameters λ:

.. math:: \hat θ(λ) = \arg\min_θ\; f(θ, λ),\qquad
          f(θ, λ) = -\sum_{i \in \text{train}} \log p(y_i \mid θ) - \log p_λ(θ),

found by :func:`wbbgen.solver.solve` (damped Newton up to 200 parameters, L-BFGS above), from
the prior median (GLMs) or a fixed seeded Glorot start (networks: the all-zero start of a
tanh network is a saddle). Validation and test losses are those of :math:`\hat θ(λ)`: the mean
squared error in the response's original units (regression) or the mean cross-entropy
(classification). Every tuner's final choice is refitted and scored the same way
(:func:`evaluate`), so tuners that train their own inner models (SGD, hypernetworks, the
validation-fitted weights of Sinha et al.) are compared on equal terms.

Hyperparameters are scalar keywords of the model (``lam`` or ``lam0 … lam9``), searched on a
log-uniform box ``[low, high]`` per coordinate; tuners work on ``x = log λ``.

Example (on the test suite's small task):
    >>> import numpy as np
    >>> from wbbgen.baselines import evaluate, get_task
    >>> task = get_task("tiny-ridge")
    >>> theta, ok = task.fit(np.log([1.0]))
    >>> bool(ok), sorted(evaluate(task, np.log([1.0])))
    (True, ['converged', 'test_acc', 'test_loss', 'val_acc', 'val_loss'])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen.model import build_objective

__all__ = ["Task", "evaluate"]


@dataclass(frozen=True, eq=False)
class Task:
    """One tuning problem (hashed by identity, so its compiled pieces are cached on it).

    Args:
        name: identifier (``ridge-diabetes`` …).
        model: a module-level NumPyro model ``model(X, y=None, *, <hyper names>)``.
        hyper_names: the model's hyperparameter keywords (scalars).
        low, high: the log-uniform search box per hyperparameter (prior precisions).
        X_train … y_test: the fixed splits (float32 features; int32 labels or float32 targets).
        kind: ``"regression"`` (loss = MSE in original units) or ``"classification"``
            (loss = mean cross-entropy, plus accuracy).
        predict: ``(params, X) -> mean (regression, standardised units) or logits``.
        y_scale: regression targets were divided by this; MSE is reported times its square.
        method: the exact inner solver (``"newton"`` or ``"lbfgs"``); ``max_steps`` its cap.
        random_init: start fits from a seeded Glorot draw instead of the prior median.
        epochs: SGD epochs of a "full fit" (the resource of Hyperband and Ariafar et al.).
        batch_size, learning_rate: the SGD inner trainer's settings (Adam).
        settings: per-task settings of the amortised tuners (generator steps and size).
        description: the split and the model, for the docs and the JSON.
    """

    name: str
    model: Callable
    hyper_names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    kind: str
    predict: Callable
    y_scale: float = 1.0
    method: str = "newton"
    max_steps: int | None = None
    random_init: bool = False
    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 1e-2
    settings: dict = field(default_factory=dict)
    description: str = ""

    @property
    def num_hyper(self) -> int:
        return len(self.hyper_names)

    @property
    def log_low(self) -> np.ndarray:
        return np.log(np.asarray(self.low, float))

    @property
    def log_high(self) -> np.ndarray:
        return np.log(np.asarray(self.high, float))

    def hyper_dict(self, x) -> dict:
        """``log λ`` vector ``(m,)`` -> ``{name: λ}`` (floats)."""
        x = np.asarray(x, float).reshape(-1)
        return {n: float(np.exp(v)) for n, v in zip(self.hyper_names, x)}

    def clip(self, x) -> np.ndarray:
        """Clip ``log λ`` into the box."""
        return np.clip(np.asarray(x, float), self.log_low, self.log_high)

    # ------------------------------------------------------------------ the objective
    @cached_property
    def objective(self):
        """:func:`wbbgen.model.build_objective` of the model on the training rows."""
        return build_objective(self.model, (self.X_train, self.y_train), {}, self.hyper_names)

    @property
    def dtype(self):
        return self.objective.init_params.dtype

    def hyper_tree(self, lam) -> dict:
        """λ array ``(m,)`` (traced) -> the objective's ``{name: λ_i}``."""
        return {n: lam[i] for i, n in enumerate(self.hyper_names)}

    def train_loss(self, theta, lam, data=None):
        """f(θ, λ) = −Σ log p(y | θ) − log p_λ(θ) on ``data`` (default: the training rows)."""
        obj = self.objective
        data = obj.data if data is None else data
        h = self.hyper_tree(lam)
        ll = sum(jnp.sum(v) for v in obj.log_likelihood(theta, h, data).values())
        return -(ll + obj.log_prior(theta, h, data))

    def data_of(self, X, y):
        """The objective's ``data`` pytree for other rows (same structure, other length)."""
        return ((jnp.asarray(X), jnp.asarray(y)), {})

    def nll(self, theta, X, y):
        """Per-row negative log likelihood ``(n,)`` of rows ``X, y`` (no penalty)."""
        obj = self.objective
        lam = jnp.ones(self.num_hyper, self.dtype)
        ll = obj.log_likelihood(theta, self.hyper_tree(lam), self.data_of(X, y))
        return -sum(ll.values())

    def init_theta(self, rng_key=None):
        """The inner fits' start: the prior median, or a seeded Glorot draw for networks."""
        theta0 = self.objective.init_params
        if not self.random_init:
            return theta0
        key = jax.random.key(0) if rng_key is None else rng_key
        params = self.params(theta0)
        out, keys = {}, iter(jax.random.split(key, len(params)))
        for k, v in params.items():
            v = jnp.asarray(v)
            if v.ndim == 2:
                out[k] = jax.random.normal(next(keys), v.shape, v.dtype) * jnp.sqrt(2.0 / sum(v.shape))
            else:
                out[k] = jnp.zeros_like(v)
        from jax.flatten_util import ravel_pytree

        return ravel_pytree(out)[0].astype(theta0.dtype)

    @cached_property
    def _fit(self):
        from wbbgen.solver import solve

        @jax.jit
        def fit(theta0, x):
            lam = jnp.exp(x).astype(self.dtype)
            theta, info = solve(
                lambda th: self.train_loss(th, lam), theta0, method=self.method, max_steps=self.max_steps, tol=1e-3
            )
            return theta, info.converged

        return fit

    def fit(self, x, theta0=None):
        """MAP fit at ``log λ = x``: ``(theta, converged)``; ``theta0`` warm-starts it."""
        theta0 = self.init_theta() if theta0 is None else theta0
        theta, ok = self._fit(jnp.asarray(theta0, self.dtype), jnp.asarray(np.reshape(x, -1), self.dtype))
        return theta, bool(ok)

    # ------------------------------------------------------------------ scoring
    def params(self, theta):
        """Constrained ``{site: value}`` of flat θ (the hyperparameters do not enter)."""
        obj = self.objective
        return obj.constrain(theta, self.hyper_tree(jnp.ones(self.num_hyper, self.dtype)), obj.data)

    @cached_property
    def _scores(self):
        @jax.jit
        def scores(theta, X, y):
            out = self.predict(self.params(theta), X)
            if self.kind == "regression":
                loss = jnp.mean((out - y) ** 2) * self.y_scale**2
                return loss, jnp.nan * loss
            logp = jax.nn.log_softmax(out, -1) if out.ndim == 2 else None
            if logp is None:  # binary logits
                loss = jnp.mean(jnp.logaddexp(0.0, out) - y * out)
                acc = jnp.mean((out > 0) == (y > 0.5))
            else:
                loss = -jnp.mean(jnp.take_along_axis(logp, y[:, None].astype(jnp.int32), 1))
                acc = jnp.mean(jnp.argmax(out, -1) == y)
            return loss, acc

        return scores

    def score(self, theta, split: str) -> tuple[float, float]:
        """(loss, accuracy) of θ on ``"train"``, ``"val"`` or ``"test"`` (accuracy NaN for
        regression)."""
        X, y = {"train": (self.X_train, self.y_train), "val": (self.X_val, self.y_val)}.get(
            split, (self.X_test, self.y_test)
        )
        loss, acc = self._scores(theta, jnp.asarray(X), jnp.asarray(y))
        return float(loss), float(acc)

    def val_loss(self, theta) -> float:
        return self.score(theta, "val")[0]


def evaluate(task: Task, x, theta0=None) -> dict:
    """Refit the shared inner model at ``log λ = x`` and score it: ``val_loss``, ``test_loss``,
    ``val_acc``, ``test_acc``, ``converged``. The harness's common yardstick."""
    theta, ok = task.fit(x, theta0)
    val, val_acc = task.score(theta, "val")
    test, test_acc = task.score(theta, "test")
    return {"val_loss": val, "test_loss": test, "val_acc": val_acc, "test_acc": test_acc, "converged": ok}
