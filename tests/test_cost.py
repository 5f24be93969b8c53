"""The cost model (wbbgen.cost): its arithmetic, and the estimate a run reports and logs."""

import logging
import math

import jax
import pytest
from ridge_problem import HYPER, make_data, ridge

from wbbgen import AmortizedWBB
from wbbgen.cost import CostEstimate, estimate_cost, format_cost

PIECES = dict(
    exact_step_s=0.064,  # one warm λ step of 64 draws: c_e = 1 ms per pair
    exact_step_draws=64,
    pilot_s=2.0,  # 12 steps of 0.064 s + 1.232 s compilation
    pilot_values=12,
    train_step_s=0.003,  # c_a = 0.003 / (3 · 250) = 4 µs per pair
    batch_size=250,
    train_compile_s=4.0,
    num_steps=1000,
    fidelity_s=1.0,
)


def test_affine_model_and_crossover():
    """T_exact = C_e + N c_e and T_amortised = F_a + N c_a (module docstring) with hand-computed
    pieces; at the crossover N* both are equal, below it exact is cheaper, above it amortised."""
    est = estimate_cost(plan=(50, 1000), **PIECES)
    assert est.exact_per_pair_s == pytest.approx(1e-3)
    assert est.exact_compile_s == pytest.approx(2.0 - 12 * 0.064)
    assert est.amortized_per_pair_s == pytest.approx(0.003 / 750)
    assert est.amortized_fixed_s == pytest.approx(2.0 + 4.0 + 1000 * 0.003 + 1.0)
    assert est.exact_s == pytest.approx(1.232 + 50_000 * 1e-3)
    assert est.cheaper == "amortized"
    n_star = (10.0 - 1.232) / (1e-3 - 4e-6)
    assert est.crossover_pairs == pytest.approx(n_star)
    below = estimate_cost(plan=(1, int(n_star * 0.9)), **PIECES)
    above = estimate_cost(plan=(1, int(n_star * 1.1)), **PIECES)
    assert below.cheaper == "exact" and above.cheaper == "amortized"
    assert "amortisation pays from ≈ 8.8e+03 pairs" in format_cost(est)


def test_exact_never_dearer_per_pair_means_no_crossover():
    """When an exact solve costs no more than a generator draw (ridge: one Newton step), the
    crossover is infinite and exact WBB is cheaper at every plan size."""
    pieces = {**PIECES, "exact_step_s": 64 * 1e-6}
    est = estimate_cost(plan=(1000, 10_000), **pieces)
    assert math.isinf(est.crossover_pairs) and est.cheaper == "exact"
    assert "pays from ≈ never" in format_cost(est)


@pytest.mark.slow
def test_run_reports_and_logs_the_estimate(caplog):
    """A run's ``result.cost`` is built from its own measurements (plan as asked, positive
    times, the cheaper route consistent with them) and logged on the "wbbgen" logger."""
    X, y = make_data()
    infer = AmortizedWBB(ridge, hyper=HYPER, fidelity_samples=0, num_pilot=4, plan=(7, 300), chunk_size=10)
    with caplog.at_level(logging.INFO, logger="wbbgen"):
        result = infer.run(jax.random.key(1), X, y, num_steps=20, progress_bar=False)
    est = result.cost
    assert isinstance(est, CostEstimate) and est.plan == (7, 300)
    assert est.exact_per_pair_s > 0 and est.amortized_per_pair_s > 0 and est.amortized_fixed_s > 0
    assert est.exact_s == pytest.approx(est.exact_compile_s + 2100 * est.exact_per_pair_s)
    assert est.cheaper == ("exact" if est.exact_s <= est.amortized_s else "amortized")
    assert any("cost model for 7 values × 300 draws" in r.getMessage() for r in caplog.records)
    assert result.diagnostics["compile_s"] > 0
    with pytest.raises(ValueError, match="`plan` must be"):
        AmortizedWBB(ridge, hyper=HYPER, plan=(0, 10))
