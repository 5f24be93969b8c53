r"""Generators g_φ(v, z_λ, ξ) → θ: equinox modules mapping weights and hyperparameters to draws.

Inputs arrive in separate first-layer blocks, each at O(1) scale (separate blocks and
centred weights are what make the generator accurate):

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

Shapes: one draw maps ``v (n,)``, ``z (m,)``, ``ξ (k,)`` to ``θ (d,)``; batches go through
``jax.vmap``.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from wbbgen.generator import MLPGenerator
    >>> gen = MLPGenerator(num_weights=40, num_hyper=1, noise_dim=3, num_params=3, width=16, key=jax.random.key(0))
    >>> gen(jnp.ones(40), jnp.zeros(1), jnp.zeros(3)).shape
    (3,)
    >>> jax.jit(jax.vmap(gen))(jnp.ones((8, 40)), jnp.zeros((8, 1)), jnp.zeros((8, 3))).shape
    (8, 3)
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["OutputScale", "MLPGenerator", "LinearGenerator", "GENERATORS", "make_generator", "make_generator_compiled"]


class OutputScale(eqx.Module):
    """θ = c(z) + s(z) ⊙ f with a per-coordinate centre c and spread s fitted to pilot exact
    solves (:func:`wbbgen.train.fit_output_scale`) and frozen during training.

    Along the first hyperparameter, c and log s are polynomials (degree ≤ 5) in z₀ (the spread of WBB
    draws changes by orders of magnitude over a log-λ range, and not linearly; a smooth fit
    does not pass the pilot's sampling noise on as kinks); z₀ is clamped to [−1, 1], so the
    scale is held at its end values outside the training support. Along any other
    hyperparameters c and log s are linear. Keeping f at O(1) everywhere is what lets one
    network serve the whole range.

    Args:
        c_coef: ``(degree + 1, d)`` polynomial coefficients of c in z₀ (constant term first).
        a_coef: ``(degree + 1, d)`` polynomial coefficients of log s in z₀.
        C: ``(d, m − 1)`` linear coefficients of c in the other hyperparameters.
        A: ``(d, m − 1)`` linear coefficients of log s in them.

    Example:
        >>> import jax.numpy as jnp
        >>> from wbbgen.generator import OutputScale
        >>> scale = OutputScale(jnp.array([[1.0], [2.0]]), jnp.zeros((2, 1)), jnp.zeros((1, 0)), jnp.zeros((1, 0)))
        >>> scale.location(jnp.array([0.5])), scale.spread(jnp.array([0.5]))  # c = 1 + 2 z₀, s = 1
        (Array([2.], dtype=float64), Array([1.], dtype=float64))
    """

    c_coef: jax.Array  # (degree + 1, d): c(z) = Σₖ c_coef[k] z₀ᵏ + C z₁:
    a_coef: jax.Array  # (degree + 1, d): log s(z) = Σₖ a_coef[k] z₀ᵏ + A z₁:
    C: jax.Array  # (d, m - 1)
    A: jax.Array

    def __init__(self, c_coef, a_coef, C, A):
        self.c_coef, self.a_coef, self.C, self.A = c_coef, a_coef, C, A

    @classmethod
    def identity(cls, num_params, num_hyper, dtype=None):
        """c = 0 and s = 1 (degree 0): θ = f."""
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
        """c(z), ``(d,)`` for ``z (m,)``; no gradient to the coefficients."""
        c, C = jax.lax.stop_gradient((self.c_coef, self.C))
        return self._poly(c, z[0]) + C @ z[1:]

    def spread(self, z):
        """s(z) > 0, ``(d,)`` for ``z (m,)``; no gradient to the coefficients."""
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
    must approximate it, and its draws come out under-dispersed.

    Args:
        num_weights: n, the length of v (observations, or blocks for block weights); 0 for none.
        num_hyper: m, the length of the encoded hyperparameters z.
        noise_dim: k, the length of the prior noise ξ; 0 for none.
        num_params: d, the length of θ.
        width, depth: hidden width and number of hidden layers.
        activation: the nonlinearity σ.
        rank: r, the rank of the skip paths (default min(d, 128)).
        output_scale: the :class:`OutputScale` (default :meth:`OutputScale.identity`).
        key: PRNG key for the initial weights.
        dtype: parameter dtype (default the default float).

    A new generator returns θ = c(z): its output layer and skip maps U start at zero.
    """

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
    """θ = c(z) + s(z) ⊙ (h(z, ξ) + (1 + γ(z)) ⊙ B(v − 1)): affine in the weights.

    h is an :class:`MLPGenerator` without weight inputs (its output scale supplies c and s), γ
    an MLP of z, and B a ``(d, n)`` matrix. At v = 1 a new generator returns c(z). Arguments
    as for :class:`MLPGenerator` (no ``rank``).
    """

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
"""The built-in generators by the name ``AmortizedWBB(generator=...)`` takes."""


def make_generator(kind, num_weights, num_hyper, noise_dim, num_params, *, key, output_scale, **options):
    """Build a generator by name (a key of ``GENERATORS``: ``"mlp"``, ``"linear"``) or from a
    class with the same constructor signature; ``options`` go to the constructor.

    Example:
        >>> import jax
        >>> from wbbgen.generator import make_generator
        >>> gen = make_generator("linear", 20, 1, 0, 2, key=jax.random.key(0), output_scale=None, width=8)
        >>> type(gen).__name__
        'LinearGenerator'
    """
    cls = GENERATORS.get(kind, kind) if isinstance(kind, str) else kind
    if isinstance(cls, str):
        raise ValueError(f"`generator={kind!r}` is unknown; choose one of {sorted(GENERATORS)} or pass a class.")
    return cls(num_weights, num_hyper, noise_dim, num_params, output_scale=output_scale, key=key, **options)


@eqx.filter_jit
def _make_generator_compiled(kind, sizes, key, output_scale, options):
    return make_generator(kind, *sizes, key=key, output_scale=output_scale, **dict(options))


def make_generator_compiled(kind, num_weights, num_hyper, noise_dim, num_params, *, key, output_scale, **options):
    """:func:`make_generator` as one compiled program, cached across calls with the same
    class, sizes and options. Built eagerly, each layer's random initialisation compiles on
    its own; as one program it compiles once, and not again for the next build of the same
    shape. Options that cannot be hashed (and so cannot key the cache) fall back to the
    eager build."""
    items = tuple(sorted(options.items()))
    try:
        hash((kind, items))
    except TypeError:
        return make_generator(
            kind, num_weights, num_hyper, noise_dim, num_params, key=key, output_scale=output_scale, **options
        )
    return _make_generator_compiled(kind, (num_weights, num_hyper, noise_dim, num_params), key, output_scale, items)
