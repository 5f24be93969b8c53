r"""P2 -- amortisation where it matters: the digits MLP (64-100-10, 7,510 parameters).

Data: :func:`wbbgen.datasets.digits_small` (600 training, 400 validation, 797 test images);
model: :func:`wbbgen.models.mlp_classifier` with one weight decay λ ~ LogUniform(1e-1, 1e3).
For K λ × S draws (λ log-spaced from 10³ down to 0.1), the posterior of every (w, λ) by

* **exact refits** -- :func:`wbbgen.exact_wbb` along the path (L-BFGS above 200 parameters;
  each draw warm-started from its solution at the previous λ), and
* **AmortizedWBB** end to end (pilot, training, fidelity check, evaluation of the grid);

then λ is chosen by the validation accuracy of the posterior predictive (class probabilities
averaged over the draws), and the test accuracy read at the chosen λ. Figures: exact time /
amortised time, and the gap between the two test accuracies in percentage points.

With ``exact_draws`` < S the exact refits run every λ with that many draws and their time is
scaled by the cost ratio of S draws to ``exact_draws`` measured at the first two λ of the path
(``exact_scaling`` in the JSON; batched solves need not cost in proportion to their draws).
"""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from wbbgen import AmortizedWBB, exact_wbb
from wbbgen.bench.harness import device, load, timed
from wbbgen.datasets import digits_small
from wbbgen.models import mlp_classifier, mlp_logits

__all__ = ["run", "GOAL_RATIO", "GOAL_PP"]

GOAL_RATIO, GOAL_PP = 30.0, 0.5
#: λ values at the head of the path whose cost at S and at ``exact_draws`` draws scales the time.
CHECK_VALUES = 2


def _accuracy(samples, X, y) -> np.ndarray:
    """Posterior-predictive accuracy per grid value: ``(K,)``."""
    params = {k: jnp.asarray(v) for k, v in samples.items()}

    @jax.jit
    def acc(params):
        probs = jax.nn.softmax(jax.vmap(jax.vmap(lambda p: mlp_logits(p, X)))(params), -1).mean(1)
        return (probs.argmax(-1) == y).mean(-1)

    return np.asarray(acc(params))


def _exact(key, X, y, grid, S, max_steps):
    """Warm-started exact refits of every (w, λ) of the path: ``(samples, seconds, warnings)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, seconds = timed(
            exact_wbb,
            key,
            mlp_classifier,
            X,
            y,
            hyper={"lam": grid},
            num_samples=S,
            max_steps=max_steps,
            progress_bar=False,
        )
    return out, seconds, caught


def run(
    shared: dict,
    *,
    num_values: int,
    num_samples: int,
    num_steps: int,
    batch_size: int,
    num_pilot: int,
    num_pilot_samples: int,
    fidelity_samples: int,
    max_steps: int | None,
    exact_draws: int | None,
) -> dict:
    """P2's JSON entry; ``max_steps`` caps the exact solves (None: the solver's default)."""
    load_start = load()
    d = digits_small()
    X, y = jnp.asarray(d.X_train), jnp.asarray(d.y_train)
    K, S = num_values, num_samples
    # From the most regularised λ down, so that each exact draw starts from its previous solution.
    grid = np.logspace(3, -1, K)
    keys = jax.random.split(jax.random.key(0), 3)
    S_exact = S if exact_draws is None else min(int(exact_draws), S)

    t0 = time.perf_counter()
    infer = AmortizedWBB(
        mlp_classifier,
        hyper={"lam": dist.LogUniform(1e-1, 1e3)},
        plan=(K, S),
        batch_size=batch_size,
        num_pilot=num_pilot,
        num_pilot_samples=num_pilot_samples,
        fidelity_samples=fidelity_samples,
    )
    result = infer.run(keys[0], X, y, num_steps=num_steps, progress_bar=False)
    amortized, t_eval = timed(lambda: infer.get_samples(keys[1], result, hyper={"lam": grid}, num_samples=S))
    t_amortized = time.perf_counter() - t0

    exact, t_exact_run, caught = _exact(keys[1], X, y, grid, S_exact, max_steps)
    scaling, t_exact = None, t_exact_run
    if S_exact < S:
        kc = min(CHECK_VALUES, K)
        _, t_sub, _ = _exact(keys[1], X, y, grid[:kc], S_exact, max_steps)
        _, t_full, _ = _exact(keys[1], X, y, grid[:kc], S, max_steps)
        scaling = {
            "values": kc,
            "seconds_at_exact_draws": t_sub,
            "seconds_at_all_draws": t_full,
            "draw_ratio": S / S_exact,
            "measured_time_ratio": t_full / t_sub,
        }
        t_exact = t_exact_run * (t_full / t_sub)

    selection = {}
    for name, samples in [("amortized", amortized), ("exact", exact)]:
        val = _accuracy(samples, jnp.asarray(d.X_val), jnp.asarray(d.y_val))
        test = _accuracy(samples, jnp.asarray(d.X_test), jnp.asarray(d.y_test))
        k = int(np.argmax(val))
        selection[name] = {
            "selected_lam": float(grid[k]),
            "val_accuracy": val.tolist(),
            "test_accuracy": test.tolist(),
            "test_at_selected": float(test[k]),
        }
    ratio = t_exact / t_amortized
    gap_pp = 100 * abs(selection["amortized"]["test_at_selected"] - selection["exact"]["test_at_selected"])
    diag = result.diagnostics
    return {
        "figure": {"time_ratio": ratio, "test_accuracy_gap_pp": gap_pp},
        "unit": "exact refits time / AmortizedWBB time; |Δ test accuracy| at the selected λ",
        "goal": {"time_ratio": GOAL_RATIO, "test_accuracy_gap_pp": GOAL_PP},
        "met": bool(ratio >= GOAL_RATIO and gap_pp <= GOAL_PP),
        "device": device(),
        "times_s": {
            "amortized_end_to_end": t_amortized,
            "amortized_pilot": diag["pilot_s"],
            "amortized_train_compile": diag.get("compile_s", 0.0),
            "amortized_train_run": diag["train_s"] - diag.get("compile_s", 0.0),
            "amortized_fidelity": diag.get("fidelity_s", 0.0),
            "amortized_grid_evaluation": t_eval,
            "exact_refits": t_exact,
            "exact_refits_measured": t_exact_run,
        },
        "exact_draws": S_exact,
        "exact_time": "measured"
        if S_exact == S
        else f"measured at {S_exact} draws per λ, scaled by the cost ratio of {S} draws measured at {CHECK_VALUES} λ",
        "exact_scaling": scaling,
        "exact_converged_share": float(np.mean(exact.stats["converged"])),
        "exact_warnings": sorted({str(w.message)[:120] for w in caught}),
        "fidelity": None
        if result.fidelity is None
        else {k: np.asarray(v).tolist() for k, v in result.fidelity.items()},
        "selection": selection,
        "cost_model": None if result.cost is None else result.cost._asdict(),
        "setup": (
            f"{K} λ × {S} draws, λ ∈ [0.1, 1e3]; {num_steps} training steps of {batch_size} draws; "
            f"exact: L-BFGS, max_steps {max_steps or 'default (1000)'}, warm-started along the path"
            + ("" if S_exact == S else f"; exact time measured at {S_exact} draws per λ, scaled to {S}")
        ),
        "load_average": [load_start, load()],
    }
