r"""Generators g_φ(v, z_λ, ξ) → θ: equinox modules mapping weights and hyperparameters to draws.

Inputs arrive in separate first-layer blocks, each at O(1) scale (RESEARCH.md §3: this and
the centring of the weights were what made the generator accurate):

* ``v - 1``: the centred weights (per observation, or per block for block weights);
* ``z``: the encoded hyperparameters (log scale for positive ones, in [−1, 1] over the
  training support -- :mod:`wbbgen.hyper`);
* ``ξ``: the prior noise (log w₀ for ``random``; the standardised anchor for ``anchored``).

The output is θ = c(z) + s(z) ⊙ f_φ(·) (:class:`OutputScale`), with c and s a per-coordinate
centre and spread, log-linear in z, fitted to a pilot set of exact solves: f_φ works at O(1)
scale whatever the parameters' units and however the spread changes with λ.

* :class:`MLPGenerator` -- f_φ(v, z, ξ) = W_out σ(…σ(A_v(v−1) + A_z z + A_ξ ξ + b)…).
* :class:`LinearGenerator` -- linear in the weights, an influence-function expansion
  θ ≈ θ(1, λ, ξ) + diag(γ(λ)) B (v − 1), with θ(1, λ, ξ) and γ(λ) small MLPs: far fewer
  parameters per observation, exact for weighted least squares at fixed λ up to γ.

Example:
    >>> gen = MLPGenerator(num_weights=400, num_hyper=1, noise_dim=31, num_params=31,
    ...                    width=256, depth=2, key=jax.random.key(0))
    >>> gen(jnp.ones(400), jnp.zeros(1), jnp.zeros(31)).shape
    (31,)
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["OutputScale", "MLPGenerator", "LinearGenerator", "make_generator", "make_generator_compiled"]


class OutputScale(eqx.Module):
    """θ = c(z) + s(z) ⊙ f with a per-coordinate centre c and spread s fitted to pilot exact
    solves (:func:`wbbgen.train.fit_output_scale`) and frozen during training.

    Along the first hyperparameter, c and log s are polynomials (degree ≤ 5) in z₀ (the spread of WBB
    draws changes by orders of magnitude over a log-λ range, and not linearly; a smooth fit
    does not pass the pilot's sampling noise on as kinks); z₀ is clamped to [−1, 1], so the
    scale is held at its end values outside the training support. Along any other
    hyperparameters c and log s are linear. Keeping f at O(1) everywhere is what lets one
    network serve the whole range."""

    c_coef: jax.Array  # (degree + 1, d): c(z) = Σₖ c_coef[k] z₀ᵏ + C z₁:
    a_coef: jax.Array  # (degree + 1, d): log s(z) = Σₖ a_coef[k] z₀ᵏ + A z₁:
    C: jax.Array  # (d, m - 1)
    A: jax.Array

    def __init__(self, c_coef, a_coef, C, A):
        self.c_coef, self.a_coef, self.C, self.A = c_coef, a_coef, C, A

    @classmethod
    def identity(cls, num_params, num_hyper, dtype=None):
        dtype = dtype or jnp.result_type(float)
        zc = jnp.zeros((1, num_params), dtype)
        zm = jnp.zeros((num_params, num_hyper - 1), dtype)
        return cls(zc, zc, zm, zm)

    @staticmethod
    def _poly(coef, z0):
        # Powers by cumulative product: the gradient of x ** k at x = 0 is 0 * x ** -1 = NaN
        # for k = 0, which would poison a hypergradient taken at the centre of the support.
        x = jnp.clip(z0, -1.0, 1.0).astype(coef.dtype)
        powers = jnp.cumprod(jnp.concatenate([jnp.ones(1, coef.dtype), jnp.full(coef.shape[0] - 1, x)]))
        return powers @ coef

    def location(self, z):
        c, C = jax.lax.stop_gradient((self.c_coef, self.C))
        return self._poly(c, z[0]) + C @ z[1:]

    def spread(self, z):
        a, A = jax.lax.stop_gradient((self.a_coef, self.A))
        return jnp.exp(self._poly(a, z[0]) + A @ z[1:])

    def __call__(self, z, f):
        return self.location(z) + self.spread(z) * f


def _block(in_size, width, key, dtype):
    """A bias-free linear block of the first layer, weights ~ U(±√(3/in)) so each block's
    contribution has unit variance for unit-variance inputs."""
    if in_size == 0:
        return None
    lin = eqx.nn.Linear(in_size, width, use_bias=False, key=key, dtype=dtype)
    return eqx.tree_at(lambda m: m.weight, lin, lin.weight * jnp.sqrt(3.0))


def _zero(linear):
    """The same layer with every parameter zero."""
    return jax.tree_util.tree_map(lambda x: jnp.zeros_like(x) if eqx.is_inexact_array(x) else x, linear)


def _skip(in_size, rank, out_size, key, dtype):
    """The two maps of a gated low-rank skip: P (rank × in, unit-variance outputs) and U
    (out × rank, zero so the skip starts switched off)."""
    if in_size == 0:
        return None
    k1, k2 = jax.random.split(key)
    P = _block(in_size, rank, k1, dtype)
    U = _zero(eqx.nn.Linear(rank, out_size, use_bias=False, key=k2, dtype=dtype))
    return (P, U)


def _apply(block, x):
    return 0.0 if block is None else block(x)


class MLPGenerator(eqx.Module):
    """θ = c(z) + s(z) ⊙ f, with h = MLP(v − 1, z, ξ) (separate first-layer blocks) and

        f = W_out h + U_w (g_w(z) ⊙ P_w (v − 1)) + U_ξ (g_ξ(z) ⊙ P_ξ ξ),

    gated low-rank skip paths from the weights and the prior noise, whose gates
    g(z) = 1 + G σ(A z + b) depend on the hyperparameters only. For ridge with an
    anchored Gaussian prior, θ* = (XᵀWX + λI)⁻¹(XᵀWy + √λ ξ) = V diag(gᵢ(λ)) Vᵀ ξ + …: linear
    in ξ through a matrix whose *eigenvalues* move with λ, and to first order linear in w − 1
    the same way. A gated bilinear path of rank r = d represents that exactly; a plain MLP
    must approximate it, and its draws come out under-dispersed (RESEARCH.md §3)."""

    w_in: eqx.nn.Linear | None
    z_in: eqx.nn.Linear
    xi_in: eqx.nn.Linear | None
    bias: jax.Array
    hidden: tuple[eqx.nn.Linear, ...]
    out: eqx.nn.Linear
    skip_w: tuple | None
    skip_xi: tuple | None
    gate_in: eqx.nn.Linear
    gain: eqx.nn.Linear
    output_scale: OutputScale
    activation: Callable = eqx.field(static=True)

    def __init__(
        self,
        num_weights,
        num_hyper,
        noise_dim,
        num_params,
        *,
        width=256,
        depth=2,
        activation=jax.nn.silu,
        rank=None,
        output_scale=None,
        key,
        dtype=None,
    ):
        dtype = dtype or jnp.result_type(float)
        rank = min(num_params, 128) if rank is None else rank
        keys = jax.random.split(key, depth + 7)
        k_skip_w, k_skip_xi, k_gain, k_gate = keys[-4:]
        keys = keys[:-4]
        self.w_in = _block(num_weights, width, keys[0], dtype)
        self.z_in = _block(num_hyper, width, keys[1], dtype)
        self.xi_in = _block(noise_dim, width, keys[2], dtype)
        self.bias = jnp.zeros(width, dtype)
        self.hidden = tuple(eqx.nn.Linear(width, width, key=k, dtype=dtype) for k in keys[3:-1])
        out = eqx.nn.Linear(width, num_params, key=keys[-1], dtype=dtype)
        # Start at θ = c(z): zero output layers (their gradients are not zero; the hidden
        # layers' are until they move -- Adam handles that within a few steps).
        self.out = _zero(out)
        self.skip_w = _skip(num_weights, rank, num_params, k_skip_w, dtype)
        self.skip_xi = _skip(noise_dim, rank, num_params, k_skip_xi, dtype)
        self.gate_in = eqx.nn.Linear(num_hyper, width, key=k_gate, dtype=dtype)
        self.gain = _zero(eqx.nn.Linear(width, 2 * rank, use_bias=False, key=k_gain, dtype=dtype))
        self.output_scale = output_scale or OutputScale.identity(num_params, num_hyper, dtype)
        self.activation = activation

    def __call__(self, v, z, xi):
        x = _apply(self.w_in, v - 1.0) + self.z_in(z) + _apply(self.xi_in, xi) + self.bias
        x = self.activation(x)
        for layer in self.hidden:
            x = self.activation(layer(x))
        f = self.out(x)
        gain_w, gain_xi = jnp.split(1.0 + self.gain(self.activation(self.gate_in(z))), 2)
        if self.skip_w is not None:
            P, U = self.skip_w
            f = f + U(gain_w * P(v - 1.0))
        if self.skip_xi is not None:
            P, U = self.skip_xi
            f = f + U(gain_xi * P(xi))
        return self.output_scale(z, f)


class LinearGenerator(eqx.Module):
    """θ = c + s ⊙ (h(z, ξ) + γ(z) ⊙ B(v − 1)): linear in the weights (see module doc)."""

    base: MLPGenerator
    gain: eqx.nn.MLP
    B: eqx.nn.Linear

    def __init__(
        self,
        num_weights,
        num_hyper,
        noise_dim,
        num_params,
        *,
        width=128,
        depth=2,
        activation=jax.nn.silu,
        output_scale=None,
        key,
        dtype=None,
    ):
        dtype = dtype or jnp.result_type(float)
        k1, k2, k3 = jax.random.split(key, 3)
        self.base = MLPGenerator(
            0,
            num_hyper,
            noise_dim,
            num_params,
            width=width,
            depth=depth,
            activation=activation,
            output_scale=output_scale,
            key=k1,
            dtype=dtype,
        )
        self.gain = eqx.nn.MLP(num_hyper, num_params, width, depth, activation=activation, key=k2, dtype=dtype)
        lin = eqx.nn.Linear(num_weights, num_params, use_bias=False, key=k3, dtype=dtype)
        self.B = eqx.tree_at(lambda m: m.weight, lin, lin.weight / jnp.sqrt(3.0 * num_weights))

    def __call__(self, v, z, xi):
        theta0 = self.base(jnp.zeros((0,), v.dtype), z, xi)
        return theta0 + self.base.output_scale.spread(z) * (1.0 + self.gain(z)) * self.B(v - 1.0)


GENERATORS = {"mlp": MLPGenerator, "linear": LinearGenerator}


def make_generator(kind, num_weights, num_hyper, noise_dim, num_params, *, key, output_scale, **options):
    """Build a generator by name (``"mlp"``, ``"linear"``) or from a class with the same
    constructor signature."""
    cls = GENERATORS.get(kind, kind) if isinstance(kind, str) else kind
    if isinstance(cls, str):
        raise ValueError(f"`generator={kind!r}` is unknown; choose one of {sorted(GENERATORS)} or pass a class.")
    return cls(num_weights, num_hyper, noise_dim, num_params, output_scale=output_scale, key=key, **options)


@eqx.filter_jit
def _make_generator_compiled(kind, sizes, key, output_scale, options):
    return make_generator(kind, *sizes, key=key, output_scale=output_scale, **dict(options))


def make_generator_compiled(kind, num_weights, num_hyper, noise_dim, num_params, *, key, output_scale, **options):
    """:func:`make_generator` as one compiled program, cached across calls with the same
    class, sizes and options: built eagerly, each layer's random draw compiles on its own
    (for a 7,510-output generator on 2 CPU cores, 16 small compilations took 3.3 s; one
    program 1.8 s, then nothing for the next run). Options that cannot be hashed (and so
    cannot key the cache) fall back to the eager build."""
    items = tuple(sorted(options.items()))
    try:
        hash((kind, items))
    except TypeError:
        return make_generator(
            kind, num_weights, num_hyper, noise_dim, num_params, key=key, output_scale=output_scale, **options
        )
    return _make_generator_compiled(kind, (num_weights, num_hyper, noise_dim, num_params), key, output_scale, items)
