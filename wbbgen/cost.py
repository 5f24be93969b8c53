r"""Which is cheaper on this machine: exact WBB over the planned grid, or amortised training?

For a plan of K hyperparameter values × S draws (N = K·S pairs (w, λ)), both costs are
affine in N, each measured during :meth:`wbbgen.AmortizedWBB.run`:

.. math::

    T_\text{exact}(N) = C_e + N\,c_e, \qquad T_\text{amortised}(N) = F_a + N\,c_a,

* c_e -- seconds per exact solve: one warm λ step of the pilot's path (S_p draws solved
  together, warm-started from the neighbouring pilot value) divided by S_p;
* C_e -- the exact solver's compilation: the pilot's time less its P warm steps;
* F_a -- pilot + compilation of the training chunk + ``num_steps`` × the seconds per step
  of the first chunk + the closing fidelity check;
* c_a -- one generator draw: a third of a training step's time per draw (forward only;
  the step is forward and backward over B draws).

The crossover N* = (F_a − C_e)/(c_e − c_a) is where both cost the same (infinite when an
exact solve is not dearer than a generator draw, as for ridge). The exact cost is an upper
estimate: the pilot's values are farther apart than a dense grid's, so its warm starts are
worse. (``docs/concepts.md`` gives planning numbers.)

Example:
    >>> from wbbgen.cost import estimate_cost
    >>> est = estimate_cost(plan=(50, 1000), exact_step_s=0.05, exact_step_draws=64,
    ...                     pilot_s=2.0, pilot_values=12, train_step_s=0.004, batch_size=256,
    ...                     train_compile_s=3.0, num_steps=10_000)
    >>> est.cheaper
    'exact'
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["CostEstimate", "estimate_cost", "format_cost"]


class CostEstimate(NamedTuple):
    """Predicted wall times (seconds) of both routes for ``plan = (K, S)``."""

    plan: tuple[int, int]
    exact_s: float  # exact_wbb over the plan, compilation included
    amortized_s: float  # the whole AmortizedWBB run + evaluating the plan
    cheaper: str  # "exact" or "amortized"
    crossover_pairs: float  # N* (inf: exact is cheaper at any N)
    exact_per_pair_s: float  # c_e
    exact_compile_s: float  # C_e
    amortized_fixed_s: float  # F_a
    amortized_per_pair_s: float  # c_a


def estimate_cost(
    *,
    plan: tuple[int, int],
    exact_step_s: float,
    exact_step_draws: int,
    pilot_s: float,
    pilot_values: int,
    train_step_s: float,
    batch_size: int,
    train_compile_s: float,
    num_steps: int,
    fidelity_s: float = 0.0,
) -> CostEstimate:
    """The affine cost model of the module docstring from the measured pieces.

    Args:
        plan: ``(K, S)``, the hyperparameter values and draws per value to be evaluated.
        exact_step_s, exact_step_draws: seconds of one warm λ step of the pilot and its draws S_p.
        pilot_s, pilot_values: the pilot's seconds and its number of λ values P.
        train_step_s, batch_size: seconds per training step and draws per step B.
        train_compile_s: compilation of the training chunk, seconds.
        num_steps: training steps of the run.
        fidelity_s: the closing fidelity check, seconds.

    Returns:
        A :class:`CostEstimate`.
    """
    K, S = int(plan[0]), int(plan[1])
    pairs = K * S
    c_e = exact_step_s / exact_step_draws
    C_e = max(0.0, pilot_s - pilot_values * exact_step_s)
    c_a = train_step_s / (3.0 * batch_size)
    F_a = pilot_s + train_compile_s + num_steps * train_step_s + fidelity_s
    exact_s = C_e + pairs * c_e
    amortized_s = F_a + pairs * c_a
    crossover = (F_a - C_e) / (c_e - c_a) if c_e > c_a else math.inf
    return CostEstimate(
        (K, S),
        exact_s,
        amortized_s,
        "exact" if exact_s <= amortized_s else "amortized",
        max(crossover, 0.0),
        c_e,
        C_e,
        F_a,
        c_a,
    )


def format_cost(est: CostEstimate) -> str:
    """One line for the log: both predictions, the cheaper route and the crossover.

    Example:
        >>> from wbbgen.cost import estimate_cost, format_cost
        >>> est = estimate_cost(plan=(10, 100), exact_step_s=0.01, exact_step_draws=10, pilot_s=1.0,
        ...                     pilot_values=10, train_step_s=0.003, batch_size=100, train_compile_s=2.0,
        ...                     num_steps=1000)
        >>> format_cost(est).startswith("cost model for 10 values × 100 draws (1000 pairs)")
        True
    """
    K, S = est.plan
    cross = "never" if math.isinf(est.crossover_pairs) else f"{est.crossover_pairs:.3g}"
    return (
        f"cost model for {K} values × {S} draws ({K * S} pairs): exact WBB ≈ {est.exact_s:.3g} s, "
        f"AmortizedWBB ≈ {est.amortized_s:.3g} s (training included) -> {est.cheaper} is cheaper "
        f"on this machine; amortisation pays from ≈ {cross} pairs."
    )
