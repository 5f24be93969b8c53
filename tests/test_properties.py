"""Property-based tests (hypothesis) of the weights and the objective builder, and
determinism: the same key gives the same bits; float32 agrees with x64 within a derived bound.

Hypothesis settings: few examples (every example traces a NumPyro model or draws with JAX),
no deadline (the first example compiles), ``derandomize=True`` so a run is reproducible (a
seed is fixed, never hunted). Statistical checks use z = 5 (two-sided 6e-7 per check).
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.scipy import stats

from wbbgen import exact_wbb
from wbbgen import weights as W
from wbbgen.model import build_objective
from wbbgen.prior import prior_scheme, weighted_loss

FEW = settings(max_examples=6, deadline=None, derandomize=True)
# Shapes come from small sets: JAX compiles each new shape once, and that, not the checks,
# is what an example costs.
SIZES = st.sampled_from([1, 2, 7, 30])
Z = 5.0

# Var[wᵢ] of each scheme (multinomial and Dirichlet sum to n: their overall mean is exactly 1).
SCHEMES = {
    "exponential": (W.exponential, lambda n: 1.0),
    "dirichlet": (W.dirichlet, lambda n: (n - 1) / (n + 1)),
    "multinomial": (W.multinomial, lambda n: 1 - 1 / n),
    "double_bootstrap": (lambda n: W.double_bootstrap(n, 0.3), lambda n: 0.3),
}


# ---------------------------------------------------------------------------- weights


@FEW
@given(name=st.sampled_from(sorted(SCHEMES)), n=SIZES, seed=st.integers(0, 2**31 - 1))
def test_weights_shapes_support_and_mean_one(name, n, seed):
    """Shapes for a 2-d batch, finite non-negative weights, the sums of the schemes that fix
    them, and E[wᵢ] = 1: the mean of all S·n weights is within Z·√(Var/(S·n)) of 1 (exact
    for the schemes whose weights sum to n)."""
    make, var = SCHEMES[name]
    scheme = make(n)
    v = np.asarray(scheme.sample(jax.random.key(seed), (20, 20)))
    w = np.asarray(scheme.expand(v))
    assert v.shape == (20, 20, scheme.num_weights) and w.shape == (20, 20, n) and scheme.num_obs == n
    assert np.all(np.isfinite(w)) and np.all(w >= 0)
    if name == "multinomial":
        assert np.all(w == np.round(w)) and np.all(w.sum(-1) == n)
    elif name == "dirichlet":
        np.testing.assert_allclose(w.sum(-1), n, rtol=1e-10)
    else:
        assert np.all(w > 0)
    tol = 1e-12 if name in ("dirichlet", "multinomial") else Z * np.sqrt(var(n) / w.size)
    assert abs(w.mean() - 1.0) < tol


@FEW
@given(n=SIZES, data=st.data(), seed=st.integers(0, 2**31 - 1), shuffle=st.booleans())
def test_block_rows_share_their_block_weight(n, data, seed, shuffle):
    """Every row gets its block's weight, blocks differ in size by at most one and none is
    empty; unshuffled blocks are runs of consecutive rows."""
    S = data.draw(st.integers(1, n))
    scheme = W.block(n, S, rng_key=jax.random.key(seed), shuffle=shuffle)
    assert scheme.num_weights == S and scheme.num_obs == n
    assignment = np.asarray(scheme.expand(jnp.arange(S, dtype=jnp.result_type(float)))).astype(int)
    sizes = np.bincount(assignment, minlength=S)
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1
    v = np.asarray(scheme.sample(jax.random.key(seed + 1), (3,)))
    w = np.asarray(scheme.expand(v))
    np.testing.assert_array_equal(w, v[:, assignment])
    if not shuffle:
        assert np.all(np.diff(assignment) >= 0)


# ---------------------------------------------------------------------------- objective


def _regression(noise):
    """Normal regression with a Normal(0, 1/√λ) prior on β and, per ``noise``, a fixed
    noise sd or a HalfNormal / Exponential prior on σ."""

    def model(X, y=None, *, lam=1.0):
        beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
        if noise == "fixed":
            sigma = 0.7
        elif noise == "halfnormal":
            sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
        else:
            sigma = numpyro.sample("sigma", dist.Exponential(1.5))
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)

    return model


def _hand(theta, X, y, lam, noise, p):
    """Per-observation log likelihood, constrained log prior (no Jacobian) and the
    unconstrained log density log q (with log|dσ/du| = u for σ = eᵘ) -- written by hand."""
    beta = theta[:p]
    if noise == "fixed":
        sigma, lp_sigma, jac = 0.7, 0.0, 0.0
    else:
        u = theta[p]
        sigma, jac = jnp.exp(u), u
        if noise == "halfnormal":
            lp_sigma = jnp.log(2.0) + stats.norm.logpdf(sigma, 0.0, 2.0)
        else:
            lp_sigma = jnp.log(1.5) - 1.5 * sigma
    loglik = stats.norm.logpdf(y, X @ beta, sigma)
    logprior = jnp.sum(stats.norm.logpdf(beta, 0.0, 1.0 / jnp.sqrt(lam))) + lp_sigma
    return loglik, logprior, logprior + jac


def _problem(seed, n, p, noise):
    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.normal(size=(n, p)))
    y = jnp.asarray(X @ rng.normal(size=p) + rng.normal(size=n))
    d = p + (noise != "fixed")
    obj = build_objective(_regression(noise), (X, y), {}, ("lam",))
    assert obj.num_params == d and obj.num_obs == n
    theta = jnp.asarray(rng.normal(size=d))
    w = jnp.asarray(rng.exponential(size=n))
    return obj, X, y, theta, w, rng


@FEW
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.sampled_from([2, 9]),
    p=st.sampled_from([1, 3]),
    noise=st.sampled_from(["fixed", "halfnormal", "exponential"]),
    scheme=st.sampled_from(["fixed", "random", "anchored"]),
    lam=st.floats(1e-2, 1e2),
)
def test_objective_is_the_weighted_sum(seed, n, p, noise, scheme, lam):
    """L(θ; w, ξ, λ) = Σᵢ wᵢ(−ℓᵢ(θ)) − R(θ), with R = w₀ log π_λ(T(θ)) (fixed: w₀ = 1;
    random: w₀ ~ Exp(1)) or R = log q_λ(θ − a) (anchored), all written by hand."""
    obj, X, y, theta, w, _ = _problem(seed, n, p, noise)
    prior = prior_scheme(scheme)
    hyper = {"lam": jnp.asarray(lam)}
    draw = prior.sample(jax.random.key(seed), obj, hyper, obj.data)
    got = weighted_loss(obj, prior, theta, w, draw, hyper, obj.data)
    loglik, logprior, _ = _hand(theta, X, y, lam, noise, p)
    if scheme == "anchored":
        assert float(draw.weight) == 1.0
        want = -jnp.dot(w, loglik) - _hand(theta - draw.shift, X, y, lam, noise, p)[2]
    else:
        want = -jnp.dot(w, loglik) - draw.weight * logprior
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@FEW
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.sampled_from([2, 9]),
    p=st.sampled_from([1, 3]),
    noise=st.sampled_from(["fixed", "halfnormal"]),
    scheme=st.sampled_from(["fixed", "random", "anchored"]),
    a=st.floats(0.0, 3.0),
    b=st.floats(0.0, 3.0),
)
def test_objective_is_linear_in_the_weights(seed, n, p, noise, scheme, a, b):
    """L(θ; a·w₁ + b·w₂) − L(θ; 0) = a·(L(θ; w₁) − L(θ; 0)) + b·(L(θ; w₂) − L(θ; 0)):
    the data term is linear in w, and L(θ; 0) is the prior term alone."""
    obj, _, _, theta, w1, rng = _problem(seed, n, p, noise)
    w2 = jnp.asarray(rng.exponential(size=n))
    prior = prior_scheme(scheme)
    hyper = {"lam": jnp.asarray(2.0)}
    draw = prior.sample(jax.random.key(seed), obj, hyper, obj.data)

    def L(w):
        return float(weighted_loss(obj, prior, theta, w, draw, hyper, obj.data))

    base = L(jnp.zeros(n))
    lhs = L(a * w1 + b * w2) - base
    rhs = a * (L(w1) - base) + b * (L(w2) - base)
    scale = abs(a * (L(w1) - base)) + abs(b * (L(w2) - base)) + abs(base) + 1.0
    assert abs(lhs - rhs) <= 1e-12 * scale * n


# ---------------------------------------------------------------------------- determinism


def ridge(X, y, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


@pytest.fixture(scope="module")
def float32_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0], np.float32) + rng.normal(size=30).astype(np.float32)).astype(np.float32)
    return X, y


def _exp32(n):
    """Exp(1) weights drawn in float32 whatever the x64 setting (then cast to the default
    float), so the float32 and the x64 run see the same weights."""
    return W.WeightScheme(
        "exponential32",
        n,
        n,
        lambda key, batch=(): jax.random.exponential(key, (*batch, n), dtype=jnp.float32).astype(
            jnp.result_type(float)
        ),
        lambda v: v,
    )


def _enable_x64(flag):
    ctx = getattr(jax, "enable_x64", None)  # jax ≥ 0.5; older: jax.experimental.enable_x64
    return ctx(flag) if ctx is not None else jax.experimental.enable_x64(flag)


TOL, GRID, S = 1e-4, np.array([0.01, 1.0, 100.0]), 40
EXACT = dict(hyper={"lam": GRID}, num_samples=S, weights=_exp32, prior_weight="fixed", tol=TOL, progress_bar=False)


@pytest.fixture(scope="module")
def x64_runs(float32_data):
    X, y = (jnp.asarray(a, jnp.float64) for a in float32_data)
    return [exact_wbb(jax.random.key(1), ridge, X, y, **EXACT) for _ in range(2)]


def test_exact_wbb_same_key_same_bits(x64_runs):
    """Two calls with the same key: identical draws and diagnostics, bit for bit (and the
    draws do differ from one another, so the equality is not that of constants). Training
    across processes: tests/persist/test_checkpoint.py, whose first losses come from a killed
    subprocess; get_samples across AmortizedWBB instances: tests/test_io.py."""
    a, b = x64_runs
    np.testing.assert_array_equal(a["beta"], b["beta"])
    assert set(a.stats) == set(b.stats)
    for k in a.stats:
        np.testing.assert_array_equal(a.stats[k], b.stats[k])
    assert len(np.unique(a["beta"][..., 0])) == a["beta"][..., 0].size


def test_float32_agrees_with_x64_within_the_derived_bound(float32_data, x64_runs):
    r"""exact_wbb in float32 (``jax.enable_x64(False)`` inside this x64 session) vs x64, on
    identical inputs: float32 data, weights drawn in float32 (``_exp32``), a fixed prior
    (no prior randomness, whose draws would differ by dtype) and the same key.

    Bound, per draw and coordinate j. Each draw minimises the quadratic
    L(θ) = ½(θ − θ*)ᵀH(θ − θ*) + c, H = XᵀWX + λI, whose Newton decrement is
    δ = ‖θ − θ*‖_H; by Cauchy–Schwarz |θⱼ − θ*ⱼ| ≤ δ·sdⱼ with sdⱼ = √(H⁻¹)ⱼⱼ. The x64 run
    stops at δ ≤ tol. The float32 run stops when its *computed* δ ≤ tol; its true δ exceeds
    that by at most ‖e‖_{H⁻¹}, e the rounding error of its gradient, bounded (recursive
    summation, Higham §4) by |eⱼ| ≤ n·ε₃₂·Σᵢ wᵢ|xᵢⱼ|(|yᵢ| + |xᵢᵀθ|) + ε₃₂·λ|θⱼ|, which also
    covers λ's own rounding to float32. Hence

        |θ³²ⱼ − θ⁶⁴ⱼ| ≤ sdⱼ · (2·tol + ‖e‖_{H⁻¹}),

    with a 1 % allowance on tol for the float32 Hessian inside the computed δ. With
    tol = 1e-4 the bound is about 2e-4 sd; float32 Newton reaches δ ≈ 2e-5 here.
    """
    X32, y32 = float32_data
    tol, grid = TOL, GRID
    with _enable_x64(False):
        s32 = exact_wbb(jax.random.key(1), ridge, jnp.asarray(X32), jnp.asarray(y32), **EXACT)
        v32 = np.asarray(_exp32(30).sample(jax.random.split(jax.random.key(1))[0], (S,)))
    s64 = x64_runs[0]
    v64 = np.asarray(_exp32(30).sample(jax.random.split(jax.random.key(1))[0], (S,)))
    assert s32["beta"].dtype == np.float32 and s64["beta"].dtype == np.float64
    assert v32.dtype == np.float32 and np.array_equal(v32, v64)  # the same weights in both runs
    assert s32.stats["converged"].all() and s64.stats["converged"].all()

    X, y, w = X32.astype(np.float64), y32.astype(np.float64), v64.astype(np.float64)
    eps32 = float(np.finfo(np.float32).eps)
    n = X.shape[0]
    for k, lam in enumerate(grid):
        for j in range(S):
            theta = s64["beta"][k, j]
            H = X.T @ (w[j][:, None] * X) + lam * np.eye(X.shape[1])
            Hinv = np.linalg.inv(H)
            sd = np.sqrt(np.diag(Hinv))
            e = n * eps32 * (np.abs(X).T @ (w[j] * (np.abs(y) + np.abs(X @ theta)))) + eps32 * lam * np.abs(theta)
            bound = sd * (2 * tol * 1.01 + np.sqrt(e @ Hinv @ e))
            diff = np.abs(s32["beta"][k, j].astype(np.float64) - theta)
            assert np.all(diff <= bound), (lam, j, diff / sd, bound / sd)
