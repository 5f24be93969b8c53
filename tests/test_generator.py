"""wbbgen.generator: shapes and dtypes over batched inputs, the closed forms each generator has
(a fresh generator returns the output-scale location; LinearGenerator is affine in the
weights; OutputScale's location and spread are its polynomials), and the registry."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from wbbgen.generator import (
    GENERATORS,
    LinearGenerator,
    MLPGenerator,
    OutputScale,
    make_generator,
    make_generator_compiled,
)

D = 4  # parameters
N, M, K = 7, 2, 3  # weights, hyperparameters, noise dimensions of the main configuration
KINDS = {"mlp": MLPGenerator, "linear": LinearGenerator}


def random_scale(num_hyper, degree=3, dtype=jnp.float64, seed=5):
    k1, k2, k3, k4 = jax.random.split(jax.random.key(seed), 4)
    return OutputScale(
        jax.random.normal(k1, (degree + 1, D), dtype),
        0.3 * jax.random.normal(k2, (degree + 1, D), dtype),
        jax.random.normal(k3, (D, num_hyper - 1), dtype),
        0.3 * jax.random.normal(k4, (D, num_hyper - 1), dtype),
    )


def perturbed(gen, seed=9, scale=0.3):
    """Every array of ``gen`` moved by N(0, scale²) noise: a generator as after training
    (a fresh one has zero output layers, which would make several checks trivial)."""
    params, static = eqx.partition(gen, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    flat = flat + scale * jax.random.normal(jax.random.key(seed), flat.shape, flat.dtype)
    return eqx.combine(unravel(flat), static)


@eqx.filter_jit
def batched(gen, v, z, xi):
    """The generator over a leading batch axis of its three inputs (compiled)."""
    return jax.vmap(gen)(v, z, xi)


def inputs(num_weights, num_hyper, noise_dim, batch=5, dtype=jnp.float64, seed=1):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    v = jax.random.exponential(k1, (batch, num_weights), dtype)
    z = jax.random.uniform(k2, (batch, num_hyper), dtype, -1.0, 1.0)
    xi = jax.random.normal(k3, (batch, noise_dim), dtype)
    return v, z, xi


@pytest.fixture(scope="module")
def fresh():
    """One fresh generator of each kind (sizes N, M, K → D) with a random output scale."""
    scale = random_scale(M)
    return scale, {
        kind: make_generator_compiled(kind, N, M, K, D, width=16, output_scale=scale, key=jax.random.key(0))
        for kind in KINDS
    }


@pytest.mark.parametrize(
    "kind, sizes, dtype",
    [
        ("mlp", (N, M, K), jnp.float64),  # per-observation weights, two hyperparameters, prior noise
        ("linear", (N, M, K), jnp.float64),
        ("mlp", (3, 1, 0), jnp.float32),  # block weights, one hyperparameter, no noise, float32
        ("linear", (3, 1, 0), jnp.float32),
    ],
)
def test_batched_shapes_and_dtypes(fresh, kind, sizes, dtype):
    """vmap over a batch of B draws: (B, n) weights, (B, m) hyperparameters, (B, k) noise →
    (B, d) parameters, finite, in the dtype the generator was built with; one draw → (d,).
    (MLPGenerator without weights, n = 0, is LinearGenerator's base: covered there.)"""
    if dtype == jnp.float64:
        gen = fresh[1][kind]
    else:
        gen = make_generator_compiled(kind, *sizes, D, width=16, output_scale=None, key=jax.random.key(0), dtype=dtype)
    assert all(x.dtype == dtype for x in jax.tree_util.tree_leaves(eqx.filter(gen, eqx.is_inexact_array)))
    v, z, xi = inputs(*sizes, dtype=dtype)
    gen = perturbed(gen)
    theta = batched(gen, v, z, xi)
    assert theta.shape == (5, D) and theta.dtype == dtype
    assert np.all(np.isfinite(np.asarray(theta)))
    assert eqx.filter_jit(lambda g, *a: g(*a))(gen, v[0], z[0], xi[0]).shape == (D,)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fresh_generator_returns_the_output_scale_location(fresh, kind):
    """A new generator's output layers (and, for MLPGenerator, its skip paths) are zero, so
    θ = c(z) + s(z) ⊙ 0 = c(z) (to rounding) -- for MLPGenerator at any weights and noise, for
    LinearGenerator at v = 1 (its weight term is γ(z) ⊙ B(v − 1))."""
    scale, gens = fresh
    v, z, xi = inputs(N, M, K)
    if kind == "linear":
        v = jnp.ones_like(v)
    theta = batched(gens[kind], v, z, xi)
    # Equal up to the compiler's choice of fused operations in the two programs: a few ulps.
    np.testing.assert_allclose(theta, jax.vmap(scale.location)(z), rtol=4 * np.finfo(np.float64).eps, atol=0)


def test_linear_generator_is_affine_in_the_weights(fresh):
    """θ(v) = θ(1) + s(z)(1 + γ(z)) ⊙ B(v − 1) for any parameters: so
    θ(a v₁ + (1 − a) v₂) = a θ(v₁) + (1 − a) θ(v₂) to float64 rounding, and θ(v) − θ(1) is that
    closed form computed from the generator's own parts. (MLPGenerator, nonlinear, breaks the
    relation by far more: the check is not vacuous.)"""
    _, gens = fresh
    gen = perturbed(gens["linear"])
    (v1, v2), z, xi = inputs(N, M, K, batch=2)[0], jnp.array([0.3, -0.2]), jnp.array([0.5, -1.0, 2.0])
    a = 0.37
    mix = gen(a * v1 + (1 - a) * v2, z, xi)
    np.testing.assert_allclose(mix, a * gen(v1, z, xi) + (1 - a) * gen(v2, z, xi), rtol=1e-12, atol=1e-12)
    want = gen.base.output_scale.spread(z) * (1 + gen.gain(z)) * (gen.B.weight @ (v1 - 1))
    np.testing.assert_allclose(gen(v1, z, xi) - gen(jnp.ones(N), z, xi), want, rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(want)) > 0.1
    mlp = perturbed(gens["mlp"])
    gap = mlp(a * v1 + (1 - a) * v2, z, xi) - (a * mlp(v1, z, xi) + (1 - a) * mlp(v2, z, xi))
    assert np.max(np.abs(gap)) > 1e-3


def test_output_scale_is_its_polynomials():
    """location(z) = Σₖ c_k z₀ᵏ + C z₁:, spread(z) = exp(Σₖ a_k z₀ᵏ + A z₁:), z₀ clamped to
    [−1, 1]; f ↦ location + spread ⊙ f. Against numpy's polyval, to float64 rounding."""
    scale = random_scale(3, degree=4)
    c, a, C, A = (np.asarray(x) for x in (scale.c_coef, scale.a_coef, scale.C, scale.A))
    f = np.array([0.5, -1.0, 2.0, 0.0])
    for z in ([0.4, 0.1, -0.7], [-0.9, 1.0, 0.0], [0.0, 0.0, 0.0]):
        z = np.array(z)
        loc = np.array([np.polyval(c[::-1, j], z[0]) for j in range(D)]) + C @ z[1:]
        log_s = np.array([np.polyval(a[::-1, j], z[0]) for j in range(D)]) + A @ z[1:]
        np.testing.assert_allclose(scale.location(jnp.asarray(z)), loc, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(scale.spread(jnp.asarray(z)), np.exp(log_s), rtol=1e-12)
        np.testing.assert_allclose(scale(jnp.asarray(z), jnp.asarray(f)), loc + np.exp(log_s) * f, rtol=1e-12)
    # Outside the training support the scale is held at its end values.
    for outside, edge in ((1.7, 1.0), (-3.0, -1.0)):
        out, at_edge = jnp.array([outside, 0.2, 0.1]), jnp.array([edge, 0.2, 0.1])
        np.testing.assert_array_equal(scale.location(out), scale.location(at_edge))
        np.testing.assert_array_equal(scale.spread(out), scale.spread(at_edge))


def test_output_scale_identity_gradients_and_freezing():
    """identity(): location 0, spread 1. The derivative in z₀ at the centre is the linear
    coefficient c₁ (finite: powers by cumulative product, not x**k, whose gradient at 0 is nan);
    the coefficients get no gradient (stop_gradient: the scale is frozen during training)."""
    ident = OutputScale.identity(D, 2)
    np.testing.assert_array_equal(ident.location(jnp.array([0.3, -0.5])), np.zeros(D))
    np.testing.assert_array_equal(ident.spread(jnp.array([0.3, -0.5])), np.ones(D))
    scale = random_scale(2)
    jac = jax.jacobian(scale.location)(jnp.zeros(2))
    np.testing.assert_allclose(jac[:, 0], scale.c_coef[1], rtol=1e-12)
    np.testing.assert_allclose(jac[:, 1], scale.C[:, 0], rtol=1e-12)
    grads = eqx.filter_grad(lambda s: jnp.sum(s.location(jnp.array([0.2, 0.1])) + s.spread(jnp.array([0.2, 0.1]))))(
        scale
    )
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree_util.tree_leaves(grads))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_hypergradient_at_the_centre_is_finite(fresh, kind):
    """∂θ/∂z at z = 0 (where x**0's gradient would be nan) is finite for both generators."""
    gen = perturbed(fresh[1][kind])
    jac = jax.jacobian(lambda z: gen(jnp.full(N, 1.3), z, jnp.ones(K)))(jnp.zeros(M))
    assert jac.shape == (D, M) and np.all(np.isfinite(np.asarray(jac)))


def test_registry_and_make_generator():
    """GENERATORS names the built-in classes; make_generator builds by name or by class with the
    same parameters as the constructor (same key); make_generator_compiled agrees with it, also
    when an option cannot be hashed (it falls back to the eager build); unknown names are
    refused with the choices."""
    assert GENERATORS == {"mlp": MLPGenerator, "linear": LinearGenerator}
    sizes, key, scale = (N, 1, 0, D), jax.random.key(3), random_scale(1)
    direct = MLPGenerator(*sizes, width=8, output_scale=scale, key=key)
    for kind in ("mlp", MLPGenerator):
        built = make_generator(kind, *sizes, key=key, output_scale=scale, width=8)
        assert type(built) is MLPGenerator and bool(eqx.tree_equal(built, direct))
    compiled = make_generator_compiled("mlp", *sizes, key=key, output_scale=scale, width=8)
    assert type(compiled) is MLPGenerator
    got, want = (jax.tree_util.tree_leaves(eqx.filter(g, eqx.is_array)) for g in (compiled, direct))
    for x, y in zip(got, want, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)

    class Custom(MLPGenerator):
        def __init__(self, *sizes, widths, **kw):
            super().__init__(*sizes, width=widths[0], **kw)

    custom = make_generator_compiled(Custom, *sizes, key=key, output_scale=scale, widths=[8])  # a list: unhashable
    assert type(custom) is Custom and custom.bias.shape == (8,)
    with pytest.raises(ValueError, match=r"generator='resnet'.*\['linear', 'mlp'\]"):
        make_generator("resnet", *sizes, key=key, output_scale=scale)
