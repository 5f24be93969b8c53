r"""P2 -- amortisation where it matters: the digits MLP (64-100-10, 7,510 parameters).

Data: :func:`wbbgen.datasets.digits_small` (600 training, 400 validation, 797 test images);
model: :func:`wbbgen.models.mlp_classifier` with one weight decay λ ~ LogUniform(1e-2, 1e2).
For 50 λ × 200 draws, the posterior of every (w, λ) by

* **exact refits** -- :func:`wbbgen.exact_wbb` (L-BFGS above 200 parameters, each draw
  warm-started from its solution at the previous λ), and
* **AmortizedWBB** end to end (pilot, training, evaluation of the grid),

then λ chosen by the validation accuracy of the posterior predictive (class probabilities
averaged over the draws), and the test accuracy at the chosen λ. Goal: ≥ 30× less wall time
than the exact refits, selected-λ test accuracy within 0.5 percentage points.

Usage: ``python benchmarks/perf_p2.py [--smoke]`` (prints JSON).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from _perf_common import device, load, timed

GOAL_RATIO, GOAL_PP = 30.0, 0.5


def _accuracy(samples, X, y) -> np.ndarray:
    """Posterior-predictive accuracy per grid value: ``(K,)``."""
    from wbbgen.models import mlp_logits

    params = {k: jnp.asarray(v) for k, v in samples.items()}

    @jax.jit
    def acc(params):
        probs = jax.nn.softmax(jax.vmap(jax.vmap(lambda p: mlp_logits(p, X)))(params), -1).mean(1)
        return (probs.argmax(-1) == y).mean(-1)

    return np.asarray(acc(params))


def run(smoke: bool = False) -> dict:
    from wbbgen import AmortizedWBB, exact_wbb
    from wbbgen.datasets import digits_small
    from wbbgen.models import mlp_classifier

    load_start = load()
    d = digits_small()
    X, y = jnp.asarray(d.X_train), jnp.asarray(d.y_train)
    K, S = (3, 4) if smoke else (50, 200)
    num_steps = 50 if smoke else 10_000
    max_steps = 30 if smoke else None
    grid = np.logspace(-2, 2, K)
    keys = jax.random.split(jax.random.key(0), 3)

    t0 = time.perf_counter()
    infer = AmortizedWBB(
        mlp_classifier,
        hyper={"lam": dist.LogUniform(1e-2, 1e2)},
        plan=(K, S),
        num_pilot=4 if smoke else 12,  # smoke: the fewest pilot solves (each is 1000 L-BFGS steps)
        num_pilot_samples=4 if smoke else 16,
        fidelity_samples=0 if smoke else 16,
    )
    result = infer.run(keys[0], X, y, num_steps=num_steps, progress_bar=False)
    amortized, t_eval = timed(lambda: infer.get_samples(keys[1], result, hyper={"lam": grid}, num_samples=S))
    t_amortized = time.perf_counter() - t0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exact, t_exact = timed(
            lambda: exact_wbb(
                keys[1],
                mlp_classifier,
                X,
                y,
                hyper={"lam": grid},
                num_samples=S,
                max_steps=max_steps,
                progress_bar=False,
            )
        )
    converged = float(np.mean(exact.stats["converged"]))

    out = {}
    for name, samples in [("amortized", amortized), ("exact", exact)]:
        val = _accuracy(samples, jnp.asarray(d.X_val), jnp.asarray(d.y_val))
        test = _accuracy(samples, jnp.asarray(d.X_test), jnp.asarray(d.y_test))
        k = int(np.argmax(val))
        out[name] = {"selected_lam": float(grid[k]), "val_accuracy": val.tolist(), "test_at_selected": float(test[k])}
    ratio = t_exact / t_amortized
    gap_pp = 100 * abs(out["amortized"]["test_at_selected"] - out["exact"]["test_at_selected"])
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
        },
        "exact_converged_share": converged,
        "exact_warnings": sorted({str(w.message)[:120] for w in caught}),
        "selection": out,
        "cost_model": None if result.cost is None else result.cost._asdict(),
        "setup": f"{K} λ × {S} draws; {num_steps} training steps; exact max_steps {max_steps or 'default'}",
        "load_average": [load_start, load()],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.smoke), indent=2))


if __name__ == "__main__":
    main()
