r"""Simulation-based calibration (SBC) of anchored exact WBB on a conjugate ridge (slow).

Model (:mod:`wbbgen.bench.sbc`): σ = 1 known, β ~ N(0, I₂/λ), y ~ N(Xβ, I_n), fixed design X with
n = 200 rows N(0, [[1, .5], [.5, 1]]). Per replicate: β from the prior, y from the model,
L = 99 anchored exact WBB draws, and the rank of each βⱼ among them. If the draws were the
posterior the ranks would be uniform on {0, …, 99} at every λ.

Why anchored WBB should pass here: each draw minimises the quadratic
Σᵢ wᵢ(yᵢ − xᵢᵀβ)²/2 + λ‖β − β₀‖²/2 (wᵢ ~ Exp(1), β₀ ~ N(0, I/λ)), so the first-order
(delta-method) theory has no Taylor remainder in β: β̂ − m = A_w⁻¹[Xᵀ(W − I)r + λβ₀] exactly,
m the posterior mean, r = y − Xm, A_w = XᵀWX + λI. Its covariance to first order is
A⁻¹(Σᵢ rᵢ²xᵢxᵢᵀ + λI)A⁻¹; averaged over the prior predictive (what SBC does) E[rrᵀ] = I − H,
H = XA⁻¹Xᵀ, so this is the posterior covariance A⁻¹ up to the leverage term Σᵢhᵢᵢxᵢxᵢᵀ and the
randomness of A_w, both O(p/n) = 1 % relative. The anchor supplies the prior's share λI exactly
(the ``fixed`` scheme omits it, the ``random`` one scales it by a random w₀).

Test and its false-alarm rate: R = 1000 replicates per λ ∈ {0.1, 50, 1000} (data-dominated,
prior weight λ/(n + λ) = 0.2, prior-dominated), ranks in B = 10 bins, Pearson chi-square
(9 dof) per λ and coordinate: 6 tests, family-wise α = 1e-3 by Bonferroni (reject at
χ² > 32.4). The O(p/n) terms are not zero, and SBC sees them: measured with
``wbbgen bench sbc --power --num-obs 200`` (R = 20 000, float64) the chi-square per
dof is 5.1 and 4.1 at λ = 0.1 (non-centrality ≈ 37 and 28, i.e. ≈ 1.9 and 1.4 at R = 1000) and
within noise of 1 at λ = 50 and 1000 (the anchor dominates there). With those
non-centralities the per-test false-alarm probability at λ = 0.1 is 1.2e-3 and 0.9e-3
(non-central χ²), so the suite's actual family-wise false-alarm rate is ≈ 3e-3, not 1e-3.
At n = 50 the same bias is plain (χ²/dof = 25 at R = 20 000): it is the bootstrap's small-n
deficit (the empirical score covariance), not the anchor. Seeds are fixed (0), not searched.

Power: the same test must reject the ``fixed`` and ``random`` schemes at λ = 1000 (prior-
dominated, where they omit or mis-scale the prior's share): sd ratio √(n/(n + λ)) ≈ 0.4 for
``fixed``; both give χ² in the hundreds to thousands at R = 1000.
"""

import numpy as np
import pytest
from scipy.stats import chi2

from wbbgen.bench import sbc

pytestmark = pytest.mark.slow

ALPHA = 1e-3
NUM_REPLICATES, NUM_DRAWS, NUM_BINS = 1000, 99, 10


def test_chi_square_helper_on_uniform_counts():
    """Exactly uniform ranks give χ² = 0 and p = 1; one bin doubled gives the textbook value."""
    ranks = np.tile(np.arange(100), 10)[:, None]  # 1000 ranks, 100 per value
    counts, stat, p = sbc.chi_square(ranks, 99, 10)
    assert counts.tolist() == [[100] * 10] and stat[0] == 0 and p[0] == 1
    skewed = np.concatenate([ranks, np.zeros((100, 1), int)])  # +100 in bin 0 of 1100
    _, stat, _ = sbc.chi_square(skewed, 99, 10)
    e = 110.0
    np.testing.assert_allclose(stat[0], ((200 - e) ** 2 + 9 * (100 - e) ** 2) / e)


def test_anchored_wbb_ranks_are_uniform():
    res = sbc.run_sbc(num_replicates=NUM_REPLICATES, num_draws=NUM_DRAWS, num_bins=NUM_BINS, scheme="anchored", seed=0)
    assert np.all(res.converged == 1.0)
    m = res.chi2.size  # λ values × coordinates
    critical = chi2.ppf(1 - ALPHA / m, NUM_BINS - 1)
    report = "\n".join(
        f"λ={lam:g}: χ² = {np.round(res.chi2[k], 1)}, counts {res.counts[k].tolist()}" for k, lam in enumerate(res.lams)
    )
    assert np.all(res.chi2 < critical), f"rank histograms not uniform (critical {critical:.1f}):\n{report}"


@pytest.mark.parametrize("scheme", ["fixed", "random"])
def test_sbc_rejects_schemes_that_miss_the_prior(scheme):
    res = sbc.run_sbc(
        num_replicates=NUM_REPLICATES, num_draws=NUM_DRAWS, num_bins=NUM_BINS, lams=(1000.0,), scheme=scheme, seed=0
    )
    critical = chi2.ppf(1 - ALPHA / res.chi2.size, NUM_BINS - 1)
    assert np.all(res.chi2 > critical), f"{scheme}: χ² = {res.chi2}"
