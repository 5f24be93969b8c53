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
