"""Weight schemes: shapes, support, moments (tolerances from the schemes' own variances)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wbbgen import weights as W

N, DRAWS = 50, 2000
Z = 4.4  # two-sided normal quantile for a 1e-5 false-alarm rate per check


@pytest.mark.parametrize(
    "scheme, var",
    [
        (W.exponential(N), 1.0),
        (W.dirichlet(N), N / (N + 1)),
        (W.multinomial(N), 1 - 1 / N),
        (W.double_bootstrap(N, 0.25), 0.25),
    ],
)
def test_mean_one_and_variance(scheme, var):
    """E[wᵢ] = 1 and Var[wᵢ] as stated: Exp(1) → 1; n·Dir(1) → n/(n+1)·(1 − 1/n)·…≈ (n−1)/(n+1);
    multinomial counts → 1 − 1/n; Gamma(4, 4) → 1/4. The mean of DRAWS·N weights has
    sd √(var/(DRAWS·N)) (the Dirichlet/multinomial sums are fixed, so their mean is exact)."""
    w = np.asarray(scheme.sample(jax.random.key(0), (DRAWS,)))
    assert w.shape == (DRAWS, N) and scheme.num_weights == N
    assert np.all(w >= 0)
    assert abs(w.mean() - 1) < Z * np.sqrt(var / w.size) + 1e-12
    # Sample variance of ~1e5 draws: relative sd ≈ √((κ−1)/size) < 0.02 for these schemes.
    expected = {"dirichlet": (N - 1) / (N + 1)}.get(scheme.name, var)
    assert abs(w.var() / expected - 1) < 0.05


def test_dirichlet_and_multinomial_sum_to_n():
    assert np.allclose(np.asarray(W.dirichlet(N).sample(jax.random.key(1), (7,))).sum(-1), N)
    m = np.asarray(W.multinomial(N).sample(jax.random.key(1), (7,)))
    assert np.allclose(m.sum(-1), N) and np.allclose(m, np.round(m)) and (m == 0).any()
    assert W.multinomial(N).has_zeros


def test_block_weights_share_within_blocks_and_are_shuffled():
    scheme = W.block(N, 5, rng_key=jax.random.key(2))
    v = scheme.sample(jax.random.key(3), (4,))
    w = np.asarray(scheme.expand(v))
    assert v.shape == (4, 5) and w.shape == (4, N)
    # 5 distinct values per draw, each shared by N/5 rows.
    for row in w:
        values, counts = np.unique(row, return_counts=True)
        assert len(values) == 5 and np.all(counts == N // 5)
    # Shuffled: the first block is not the first N/5 rows in order...
    assert not np.all(w[0, : N // 5] == w[0, 0])
    # ...unless asked.
    contiguous = W.block(N, 5, shuffle=False)
    wc = np.asarray(contiguous.expand(contiguous.sample(jax.random.key(3), (1,))))[0]
    assert len(np.unique(wc[:5])) == 1


def test_deterministic_for_a_key():
    a = W.exponential(N).sample(jax.random.key(9), (3,))
    b = W.exponential(N).sample(jax.random.key(9), (3,))
    assert jnp.array_equal(a, b)


def test_fold_deletion_deletes_one_fold_in_a_share_of_draws():
    """``with_fold_deletion(rate=0.5)`` over 4 folds: a draw either has no zero (Exp(1) draws
    are positive) or zeros on exactly one fold's rows. With 4000 draws the share of deleted
    draws is 0.5 ± 4·√(0.25/4000) = ± 0.032, each fold's 0.125 ± 4·√(0.125·0.875/4000) = ± 0.021
    (binomial standard errors, 4 sd), and the kept weights keep mean 1 (± 4 sd of their mean)."""
    from wbbgen.weights import fold_masks

    n, draws = 20, 4000
    masks = fold_masks(n, 4, jax.random.key(0))
    v = np.asarray(W.with_fold_deletion(W.exponential(n), masks, 0.5).sample(jax.random.key(1), (draws,)))
    assert v.shape == (draws, n)
    zero = v == 0
    deleted = zero.any(1)
    which = np.array([np.flatnonzero((z[None] == (masks == 0)).all(1)) for z in zero[deleted]])
    assert which.shape == (deleted.sum(), 1)  # exactly one fold, the whole fold
    assert abs(deleted.mean() - 0.5) < 4 * np.sqrt(0.25 / draws)
    share = np.bincount(which[:, 0], minlength=4) / draws
    assert np.all(np.abs(share - 0.125) < 4 * np.sqrt(0.125 * 0.875 / draws))
    kept = v[~zero]
    assert abs(kept.mean() - 1.0) < 4 / np.sqrt(kept.size)
    with pytest.raises(ValueError, match=r"`masks` must have shape \(num_folds, 20\)"):
        W.with_fold_deletion(W.exponential(n), masks[:, :10], 0.5)
    with pytest.raises(ValueError, match=r"`rate` must be in \(0, 1\]"):
        W.with_fold_deletion(W.exponential(n), masks, 0.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: W.exponential(0), "`n` must be a positive integer"),
        (lambda: W.exponential(2.5), "`n` must be a positive integer"),
        (lambda: W.block(10, 20, rng_key=jax.random.key(0)), "exceeds the number of observations"),
        (lambda: W.block(10, 2), "needs `rng_key=`"),
        (lambda: W.double_bootstrap(10, -1.0), "`shape_scale` must be > 0"),
        (lambda: W.resolve_weights("bayes", 10), "unknown"),
        (lambda: W.resolve_weights(W.exponential(5), 10), "built for 5 observations"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
