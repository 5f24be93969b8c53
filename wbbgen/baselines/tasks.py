r"""The comparison's tasks (offline data bundled with scikit-learn), built by :func:`get_task`.

* ``ridge-diabetes`` -- :func:`wbbgen.models.ridge` on diabetes with degree-2 features
  (p = 65; :func:`wbbgen.datasets.diabetes`: 342 training / 100 test rows), targets divided
  by their training sd (σ = 1 is then roughly right; the MAP penalty is unchanged:
  λ is sklearn's α). λ ∈ [0.1, 1e4]: below λ ≈ 0.1 the float32 Newton solve of these
  collinear features stops short of its tolerance (measured: unconverged at 0.03, converged
  at 0.1), and the validation MSE there is 10 % above its minimum anyway.
* ``logistic-cancer`` -- :func:`wbbgen.models.logistic` (L2, intercept N(0, 10²)) on breast
  cancer (398 training / 171 test rows, 70/30 stratified). λ ∈ [1e-3, 1e3] (λ = 1/C).
* ``digits-softmax`` -- :func:`wbbgen.models.softmax_regression` on digits (1257 / 540)
  with one decay per class, ``lam0 … lam9`` (10 hyperparameters, 650 weights). λₖ ∈ [1e-2, 1e3].
* ``digits-mlp`` -- :func:`wbbgen.models.mlp_classifier` 64-100-10 (tanh, 7,510 weights) on the
  Sinha-style split (:func:`wbbgen.datasets.digits_small`: 600 train / 400 validation / 797
  test) with one decay ``lam``. The papers' CE + exp(u)·‖W‖² with a *mean* cross-entropy is
  λ = 2n·exp(u) here (λ a prior precision on the summed log likelihood): u ∈ [−10, 0] is
  λ ∈ [0.05, 1200]; we search λ ∈ [0.1, 1e3]. Below λ ≈ 0.1 the float32 L-BFGS solves of
  the WBB draws (1000 steps, tol 1e-3) mostly fail to converge (measured at λ = 0.01: 1 of 4;
  at 0.1: 3 of 4), and wbbgen's pilot solves need at least one converged draw per λ.
* ``digits-mlp-layers`` -- the same with one decay per layer (``lam1``, ``lam2``).

Validation rows: tasks whose data set has no validation split (all but the digits MLP) carve
one from the training rows: a seeded permutation (``numpy.random.default_rng(0)``) puts the
first quarter of the training rows into validation (ridge 256 / 86, cancer 299 / 99, digits
943 / 314). Features were standardised on the full training split before carving (the
transform is fixed, so no tuner sees test statistics).

``tiny-ridge`` is the test suite's task: n = 60 / 200 / 200 synthetic rows, p = 5.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from wbbgen import datasets, models
from wbbgen.baselines.task import Task

__all__ = ["TASKS", "get_task", "tiny_ridge", "carve_validation"]

#: The comparison's tasks (what ``--task all`` runs).
TASKS = ("ridge-diabetes", "logistic-cancer", "digits-softmax", "digits-mlp")
#: Tasks built by :func:`get_task` but not part of ``--task all``.
EXTRA_TASKS = ("digits-mlp-layers", "tiny-ridge")


# --------------------------------------------------------------------------- models
# Module-level, so AmortizedWBB can match results to models by qualified name.


def ridge_predict(params, X):
    return X @ params["beta"]


def logistic_predict(params, X):
    return params["b0"] + X @ params["beta"]


def softmax_per_class(
    X,
    y=None,
    *,
    lam0=1.0,
    lam1=1.0,
    lam2=1.0,
    lam3=1.0,
    lam4=1.0,
    lam5=1.0,
    lam6=1.0,
    lam7=1.0,
    lam8=1.0,
    lam9=1.0,
):
    """Softmax regression with one decay per class (column of W)."""
    lam = jnp.stack([jnp.asarray(v) for v in (lam0, lam1, lam2, lam3, lam4, lam5, lam6, lam7, lam8, lam9)])
    models.softmax_regression(X, y, lam=lam, num_classes=10)


def mlp_per_layer(X, y=None, *, lam1=1.0, lam2=1.0):
    """The 64-100-10 tanh network with one decay per layer."""
    models.mlp_classifier(X, y, lam=jnp.stack([jnp.asarray(lam1), jnp.asarray(lam2)]))


# --------------------------------------------------------------------------- splits
def carve_validation(X, y, fraction=0.25, seed=0):
    """Split training rows into (train, validation) with a seeded permutation."""
    perm = np.random.default_rng(seed).permutation(len(y))
    k = int(round(fraction * len(y)))
    val, tr = perm[:k], perm[k:]
    return X[tr], y[tr], X[val], y[val]


def _box(m, low, high):
    return np.full(m, float(low)), np.full(m, float(high))


#: Smoke runs cap the pilot's exact solves (they only set the generator's output scale).
SMOKE_PILOT_MAX_STEPS = 100


def _generator(smoke, steps, batch, width=128):
    """The amortised tuners' settings. Pilot: ``num_pilot`` values × ``pilot_samples`` exact
    draws (the output scale); ``fidelity_samples`` draws at 5 values for the closing check."""
    if smoke:  # the pipeline, not the numbers: the fewest pilot solves, no fidelity check
        return {
            "num_steps": 60,
            "batch_size": 16,
            "width": 32,
            "grid": 12,
            "search_steps": 20,
            "num_samples": 16,
            "num_pilot": 4,
            "pilot_samples": 1,
            "pilot_max_steps": SMOKE_PILOT_MAX_STEPS,
            "fidelity_samples": 0,
        }
    return {
        "num_steps": steps,
        "batch_size": batch,
        "width": width,
        "grid": 50,
        "search_steps": 150,
        "num_samples": 64,
        "num_pilot": 12,
        "pilot_samples": 4,
        "fidelity_samples": 4,
    }


def ridge_diabetes(smoke: bool = False) -> Task:
    d = datasets.diabetes(degree=2)
    scale = float(d.y_train.std())
    Xtr, ytr, Xva, yva = carve_validation(d.X_train, d.y_train / scale)
    low, high = _box(1, 0.1, 1e4)
    return Task(
        "ridge-diabetes",
        models.ridge,
        ("lam",),
        low,
        high,
        Xtr,
        ytr.astype(np.float32),
        Xva,
        yva.astype(np.float32),
        d.X_test,
        (d.y_test / scale).astype(np.float32),
        "regression",
        ridge_predict,
        y_scale=scale,
        epochs=60,
        batch_size=32,
        learning_rate=3e-2,
        settings=_generator(smoke, 3000, 128),
        description="diabetes, degree-2 features (p=65), ridge; 256 train / 86 val / 100 test; MSE in original units",
    )


def logistic_cancer(smoke: bool = False) -> Task:
    d = datasets.breast_cancer()
    Xtr, ytr, Xva, yva = carve_validation(d.X_train, d.y_train)
    low, high = _box(1, 1e-3, 1e3)
    return Task(
        "logistic-cancer",
        models.logistic,
        ("lam",),
        low,
        high,
        Xtr,
        ytr,
        Xva,
        yva,
        d.X_test,
        d.y_test,
        "classification",
        logistic_predict,
        epochs=60,
        batch_size=32,
        learning_rate=3e-2,
        settings=_generator(smoke, 3000, 128),
        description="breast cancer, L2 logistic (p=30 + intercept); 299 train / 99 val / 171 test; cross-entropy",
    )


def digits_softmax(smoke: bool = False) -> Task:
    d = datasets.digits()
    Xtr, ytr, Xva, yva = carve_validation(d.X_train, d.y_train)
    low, high = _box(10, 1e-2, 1e3)
    return Task(
        "digits-softmax",
        softmax_per_class,
        tuple(f"lam{k}" for k in range(10)),
        low,
        high,
        Xtr,
        ytr,
        Xva,
        yva,
        d.X_test,
        d.y_test,
        "classification",
        models.softmax_logits,
        method="lbfgs",
        max_steps=500,
        epochs=40,
        batch_size=64,
        learning_rate=1e-2,
        settings=_generator(smoke, 2000, 64, 256),
        description="digits, softmax regression with 10 per-class decays (650 weights); 943 / 314 / 540",
    )


def _mlp(name, model, names, smoke):
    d = datasets.digits_small()
    low, high = _box(len(names), 0.1, 1e3)
    return Task(
        name,
        model,
        names,
        low,
        high,
        d.X_train,
        d.y_train,
        d.X_val,
        d.y_val,
        d.X_test,
        d.y_test,
        "classification",
        models.mlp_logits,
        method="lbfgs",
        max_steps=100 if smoke else 400,
        random_init=True,
        epochs=60,
        batch_size=50,
        learning_rate=3e-3,
        # Smoke: half the generator steps and a quarter of the pilot's L-BFGS iterations of
        # the other tasks -- on this 7,510-weight network they run slowly at the low XLA
        # optimisation level `make bench-hpo-smoke` compiles with.
        settings=_generator(smoke, 1500, 32, 256) | ({"num_steps": 30, "pilot_max_steps": 25} if smoke else {}),
        description=f"digits MLP 64-100-10 tanh (7,510 weights), {len(names)} decay(s); 600 / 400 / 797 (Sinha-style)",
    )


def digits_mlp(smoke: bool = False) -> Task:
    return _mlp("digits-mlp", models.mlp_classifier, ("lam",), smoke)


def digits_mlp_layers(smoke: bool = False) -> Task:
    return _mlp("digits-mlp-layers", mlp_per_layer, ("lam1", "lam2"), smoke)


def tiny_ridge(smoke: bool = True, seed: int = 0) -> Task:
    """Synthetic ridge (n = 60 train, 200 validation, 200 test, p = 5, σ = 1, β ~ N(0, 0.3²)),
    for the tests: a large validation set makes the validation curve's minimum sharp."""
    rng = np.random.default_rng(seed)
    p = 5
    beta = 0.3 * rng.standard_normal(p)
    X = rng.standard_normal((460, p)).astype(np.float32)
    y = (X @ beta + rng.standard_normal(460)).astype(np.float32)
    low, high = _box(1, 1e-3, 1e3)
    return Task(
        "tiny-ridge",
        models.ridge,
        ("lam",),
        low,
        high,
        X[:60],
        y[:60],
        X[60:260],
        y[60:260],
        X[260:],
        y[260:],
        "regression",
        ridge_predict,
        epochs=30,
        batch_size=20,
        learning_rate=5e-2,
        settings=_generator(True, 0, 0),
        description="synthetic ridge, n=60/200/200, p=5",
    )


_BUILDERS = {
    "ridge-diabetes": ridge_diabetes,
    "logistic-cancer": logistic_cancer,
    "digits-softmax": digits_softmax,
    "digits-mlp": digits_mlp,
    "digits-mlp-layers": digits_mlp_layers,
    "tiny-ridge": tiny_ridge,
}


def get_task(name: str, smoke: bool = False) -> Task:
    """Build a task by identifier (see the module docstring); ``smoke`` shrinks the
    amortised tuners' settings and the networks' solver caps, not the data."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(_BUILDERS)}.")
    return _BUILDERS[name](smoke)
