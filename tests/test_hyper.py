"""Hyperparameter domains: encodings, grids, discrete choices, extrapolation warnings."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from wbbgen import Choice, ExtrapolationWarning
from wbbgen.hyper import check_grid, encode, encoded_width, grid_product, make_domains, spread_values


def test_log_scale_encoding_spans_minus_one_to_one():
    (d,) = make_domains({"lam": dist.LogUniform(1e-2, 1e3)})
    assert d.log_scale and (d.low, d.high) == (1e-2, 1e3)
    np.testing.assert_allclose(d.encode(jnp.array([1e-2, 10**0.5, 1e3]))[:, 0], [-1.0, 0.0, 1.0], atol=1e-12)


def test_choice_is_one_hot_and_continuous_first():
    ds = make_domains({"df": Choice([1.0, 4.0, 1e3]), "lam": dist.LogUniform(1e-2, 1e2)})
    assert encoded_width(ds) == 4
    z = np.asarray(encode(ds, jnp.array([[4.0, 1.0], [1e3, 1e-2]])))
    np.testing.assert_allclose(z, [[0.0, 0, 1, 0], [-1.0, 0, 0, 1]], atol=1e-12)
    samples = np.asarray(ds[0].sample(jax.random.key(0), (3000,)))
    counts = np.array([(samples == c).sum() for c in (1.0, 4.0, 1e3)])
    # Uniform over 3 choices: each count ~ Binomial(3000, 1/3), sd 25.8; 4.4 sd ⇒ α ≈ 1e-5.
    assert np.all(np.abs(counts - 1000) < 4.4 * np.sqrt(3000 / 3 * 2 / 3))


def test_spread_values_cover_the_support_and_the_choices():
    ds = make_domains({"lam": dist.LogUniform(1e-2, 1e2), "df": Choice([1.0, 30.0])})
    v = spread_values(ds, 6, jax.random.key(0))
    np.testing.assert_allclose(v[[0, -1], 0], [1e-2, 1e2])
    assert set(v[:, 1]) == {1.0, 30.0}


def test_grids_of_choices_must_use_their_values():
    ds = make_domains({"df": Choice([1.0, 4.0]), "lam": dist.LogUniform(1e-2, 1e2)})
    grids, mesh = grid_product(ds, {"df": [4.0, 1.0], "lam": [0.1, 1.0, 10.0]})
    assert mesh.shape == (2, 3, 2)
    with pytest.raises(ValueError, match=r"values \[2.0\] are not among its choices \[1.0, 4.0\]"):
        grid_product(ds, {"df": [2.0], "lam": [1.0]})
    with pytest.raises(ValueError, match="at least two distinct finite numbers"):
        Choice([1.0, 1.0])


def test_extrapolation_warning_names_the_distance():
    ds = make_domains({"lam": dist.LogUniform(1e-2, 1e2)})
    with pytest.warns(ExtrapolationWarning, match=r"0.001 \(1 decades outside\)"):
        check_grid(ds, {"lam": np.array([1e-3, 1.0])}, "test")
    ds = make_domains({"mu": dist.Uniform(-1.0, 1.0)})
    with pytest.warns(ExtrapolationWarning, match=r"3 \(2 outside\)"):
        check_grid(ds, {"mu": np.array([3.0])}, "test")
