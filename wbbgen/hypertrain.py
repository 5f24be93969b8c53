r"""Local hyper-training (Lorraine & Duvenaud 2018, Alg. 3) for many hyperparameters.

For positive hyperparameters λ of any shape -- a prior scale per feature or group, a decay per
class, up to a decay per weight -- with u = log λ, the generator g_φ(w, z_u, ξ) and the
current estimate û are trained jointly, alternating

.. math::

    φ &← φ − α\,∇_φ\ \mathbb{E}_{ε, w, ξ}\Big[\tfrac1n L\big(g_φ(w, z_{û+σε}, ξ);\ w, ξ, e^{û+σε}\big)\Big]
    \qquad \text{(generator step, λ near } e^{û}),\\
    û &← û − β\,∇_u\Big(\mathbb{E}_{w, ξ}\Big[-\tfrac1{ñ}\textstyle\sum_i \log p(ỹ_i \mid g_φ(w, z_u, ξ))\Big]
    + \tfrac{1}{ñ}\,\tfrac{\lVert u - u_0\rVert^2}{2τ^2}\Big)
    \qquad \text{(hyper step, on validation data)}.

The generator only has to be right near û (it follows û as û moves), which is what makes
a thousand hyperparameters affordable; the price is the authors' caveat that only local
changes of λ are seen. The hyper step differentiates through the generator, not through an
inner optimisation.

**Validation overfitting.** With as many hyperparameters as weights, û can fit the
validation set (validation loss keeps falling while the test loss turns up). The remedy offered
is a Gaussian hyper-prior u ~ N(u₀, τ²) (``hyper_prior_scale=τ``): the hyper step is then
MAP estimation of u from the validation likelihood, and τ bounds how far û strays from the
starting point u₀ per observation of validation evidence. The trace records validation and
test loss against wall time so the effect can be seen.

Shape of the code: :func:`init` gives a :class:`HyperTrainState`; :func:`build_step` a pure
``step(state, rng_key, data) -> (state, HyperTrainInfo)``; :func:`local_hypertrain` runs it
in :func:`wbbgen.training.run_loop` (compiled ``lax.scan`` chunks: one compilation whatever
the number of hyperparameters) and records losses between chunks.

Example (it trains for minutes, so it is not run as a doctest; ``X, y`` and ``X_val, y_val``
are 64-feature, 10-class training and validation data, with a decay per weight)::

    import jax, jax.numpy as jnp
    from wbbgen.hypertrain import local_hypertrain
    from wbbgen.models import softmax_regression

    res = local_hypertrain(jax.random.key(0), softmax_regression, X, y,
                           hyper={"lam": jnp.ones((64, 10))}, val_args=(X_val, y_val),
                           num_steps=2000, hyper_prior_scale=2.0)
    res.hyper["lam"].shape, res.trace["val_loss"][-1]
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wbbgen._checks import as_key, positive_int
from wbbgen.exact import solve_path
from wbbgen.generator import MLPGenerator, OutputScale
from wbbgen.model import build_objective
from wbbgen.problem import Problem, hyper_dict, loss, make_problem, prior_draw
from wbbgen.training import ProgressBar, run_loop

__all__ = [
    "HyperTrainState",
    "HyperTrainInfo",
    "HyperTrainResult",
    "init",
    "build_step",
    "predictive_loss",
    "local_hypertrain",
]


class HyperTrainState(NamedTuple):
    """Generator parameters, log-hyperparameters û (flat), and both optimiser states."""

    params: Any
    opt_state: Any
    u: jax.Array  # (M,) log λ̂, the names' arrays flattened and concatenated
    hyper_opt_state: Any
    step: jax.Array


class HyperTrainInfo(NamedTuple):
    """Per-step diagnostics: the generator step's loss, the validation loss before the hyper
    step, and the norm of the hypergradient."""

    train_loss: jax.Array  # (1/n) weighted objective of the generator step
    val_loss: jax.Array  # E_w[−(1/ñ) Σ log p(ỹ | θ)] at û before the hyper step
    hyper_grad_norm: jax.Array


class HyperTrainResult(NamedTuple):
    """What :func:`local_hypertrain` returns.

    ``hyper``: ``{name: λ̂ array}``; ``trace``: numpy arrays ``step``, ``time`` (s since the
    start, compilation included), ``val_loss``, ``test_loss`` (posterior-predictive NLL per
    observation, NaN without test data), ``train_loss``, ``hyper_norm`` (‖û − u₀‖/√M);
    ``generator``: the trained generator; ``problem``; ``u0``; ``encode_scale``;
    ``num_compilations`` of the training chunk (1: no re-tracing)."""

    hyper: dict[str, np.ndarray]
    trace: dict[str, np.ndarray]
    generator: Any
    problem: Problem
    u0: np.ndarray
    encode_scale: float
    num_compilations: int

    def samples(self, rng_key, num_samples: int = 200):
        """Draws ``{site: (num_samples, …)}`` of the posterior at λ̂ from the generator."""
        u = jnp.log(jnp.concatenate([jnp.ravel(jnp.asarray(v)) for v in self.hyper.values()]))
        thetas = _draw_thetas(self.problem, self.generator, rng_key, u, self.u0, self.encode_scale, num_samples)
        obj = self.problem.objective
        h = hyper_dict(self.problem, jnp.exp(u))
        return {k: np.asarray(v) for k, v in jax.vmap(lambda t: obj.constrain(t, h, obj.data))(thetas).items()}


def _draw_thetas(problem, generator, rng_key, u, u0, scale, num_samples, data=None):
    """``(S, d)`` generator draws at log-hyperparameters ``u``."""
    data = problem.objective.data if data is None else data
    k_w, k_p = jax.random.split(rng_key)
    v = problem.weights.sample(k_w, (num_samples,)).astype(u.dtype)
    values = jnp.exp(u)
    # ξ enters the generator as standardised noise, a fixed random input: no gradient to λ
    # flows through the prior draw (its sampler need not be differentiable in λ).
    draw = jax.vmap(lambda k: prior_draw(problem, k, jax.lax.stop_gradient(values), data))(
        jax.random.split(k_p, num_samples)
    )
    z = (u - u0) / scale
    return jax.vmap(generator, in_axes=(0, None, 0))(v, z, draw.noise)


def _nll(objective, thetas, hyper, data):
    """Per-draw mean negative log likelihood ``(S,)`` and per-observation log densities (S, ñ)."""
    ll = jax.vmap(lambda t: sum(x for x in objective.log_likelihood(t, hyper, data).values()))(thetas)
    return -ll.mean(-1), ll


def predictive_loss(objective, thetas, hyper, data):
    r"""Posterior-predictive negative log density per observation,
    −(1/ñ) Σᵢ log((1/S) Σₛ p(ỹᵢ | θₛ)), for draws ``thetas (S, d)``."""
    _, ll = _nll(objective, thetas, hyper, data)
    return -jnp.mean(jax.scipy.special.logsumexp(ll, axis=0) - jnp.log(ll.shape[0]))


def init(generator, u0, optimizer, hyper_optimizer) -> HyperTrainState:
    """The initial :class:`HyperTrainState`: the generator's arrays, û = ``u0`` and both
    optimisers' states."""
    params, _ = eqx.partition(generator, eqx.is_inexact_array)
    u0 = jnp.asarray(u0)
    state = HyperTrainState(params, optimizer.init(params), u0, hyper_optimizer.init(u0), jnp.int32(0))
    return jax.tree_util.tree_map(jnp.copy, state)  # distinct buffers: the chunk donates the state


def build_step(
    problem: Problem,
    val_objective,
    static,
    optimizer,
    hyper_optimizer,
    *,
    u0,
    encode_scale: float,
    sigma: float,
    batch_size: int,
    val_batch_size: int,
    hyper_prior_scale: float | None,
    hyper_bounds: tuple[float, float],
):
    """Return the pure ``step(state, rng_key, data) -> (state, HyperTrainInfo)``; ``data`` is
    ``(train_data, val_data)``."""
    n = problem.objective.num_obs
    u0 = jnp.asarray(u0)
    lo, hi = hyper_bounds

    def gen_loss(params, u, rng_key, train):
        gen = eqx.combine(params, static)
        k_e, k_w, k_p = jax.random.split(rng_key, 3)
        us = u + sigma * jax.random.normal(k_e, (batch_size, u.shape[0]), u.dtype)
        values = jnp.exp(us)
        v = problem.weights.sample(k_w, (batch_size,)).astype(u.dtype)
        draws = jax.vmap(lambda k, x: prior_draw(problem, k, x, train))(jax.random.split(k_p, batch_size), values)
        thetas = jax.vmap(gen)(v, (us - u0) / encode_scale, draws.noise)
        per = jax.vmap(lambda th, vv, d, x: loss(problem, th, vv, d, x, train))(thetas, v, draws, values)
        return jnp.mean(per) / n

    def val_loss(u, params, rng_key, train, val):
        gen = eqx.combine(params, static)
        thetas = _draw_thetas(problem, gen, rng_key, u, u0, encode_scale, val_batch_size, train)
        nll, ll = _nll(val_objective, thetas, hyper_dict(problem, jnp.exp(u)), val)
        value = jnp.mean(nll)
        if hyper_prior_scale is None:
            return value, value
        penalty = jnp.sum((u - u0) ** 2) / (2.0 * hyper_prior_scale**2) / ll.shape[-1]
        return value + penalty, value

    def step(state: HyperTrainState, rng_key, data):
        train, val = data
        k_g, k_h = jax.random.split(rng_key)
        tl, grads = jax.value_and_grad(gen_loss)(state.params, jax.lax.stop_gradient(state.u), k_g, train)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        (_, vl), hg = jax.value_and_grad(val_loss, has_aux=True)(state.u, params, k_h, train, val)
        h_updates, hyper_opt_state = hyper_optimizer.update(hg, state.hyper_opt_state, state.u)
        u = jnp.clip(state.u + h_updates, lo, hi)
        new = HyperTrainState(params, opt_state, u, hyper_opt_state, state.step + 1)
        return new, HyperTrainInfo(tl, vl, jnp.linalg.norm(hg))

    return step


def local_hypertrain(
    rng_key,
    model,
    *args,
    hyper: Mapping[str, Any],
    val_args: tuple = (),
    val_kwargs: Mapping | None = None,
    test_args: tuple | None = None,
    test_kwargs: Mapping | None = None,
    num_steps: int = 2000,
    chunk_size: int = 100,
    perturb_scale: float = 0.5,
    encode_scale: float = 2.0,
    hyper_bounds: tuple[float, float] = (-12.0, 12.0),
    learning_rate: float = 1e-3,
    hyper_learning_rate: float = 0.03,
    batch_size: int = 32,
    val_batch_size: int = 8,
    hyper_prior_scale: float | None = None,
    num_pilot: int = 16,
    width: int = 128,
    depth: int = 1,
    weights="exponential",
    prior_weight: str = "anchored",
    obs_plate: str | None = None,
    static_args=(),
    time_budget: float | None = None,
    num_eval_samples: int = 32,
    progress_bar: bool = True,
    **kwargs,
) -> HyperTrainResult:
    """Local hyper-training of positive, array-valued hyperparameters (module docstring).

    Args:
        rng_key: a JAX PRNG key.
        model: a NumPyro model taking each hyperparameter as a keyword; ``*args, **kwargs``
            its training data.
        hyper: ``{name: initial value}``, each a positive scalar or array (its shape is kept).
        val_args, val_kwargs: the model's validation data (the hyper step's criterion).
        test_args, test_kwargs: optional test data, only recorded in the trace.
        num_steps: alternating steps (one generator step and one hyper step each).
        chunk_size: steps per compiled ``lax.scan`` chunk; losses are recorded between chunks.
        perturb_scale: sd σ of the log-λ perturbation of the generator step (the neighbourhood
            it learns).
        encode_scale: the generator sees z = (u − u₀)/encode_scale.
        hyper_bounds: û is kept in this box (log scale).
        learning_rate, hyper_learning_rate: Adam step sizes for φ and û.
        batch_size, val_batch_size: (w, ξ) draws per generator / hyper step.
        hyper_prior_scale: τ of the hyper-prior u ~ N(u₀, τ²); None for none.
        num_pilot: exact WBB draws at the initial λ that set the generator's output scale
            (0: unit scale around the prior median).
        width, depth: the generator's MLP (:class:`~wbbgen.generator.MLPGenerator`).
        weights, prior_weight, obs_plate, static_args: as in :func:`~wbbgen.exact_wbb`.
        time_budget: stop after the first chunk that ends past this many seconds.
        num_eval_samples: draws for the recorded predictive losses.
    """
    rng_key = as_key(rng_key)
    num_steps = positive_int(num_steps, "num_steps")
    chunk_size = min(positive_int(chunk_size, "chunk_size"), num_steps)
    if not isinstance(hyper, Mapping) or not hyper:
        raise ValueError('`hyper` must be a non-empty dict {name: initial positive value}, e.g. {"lam": jnp.ones(10)}.')
    names = tuple(hyper)
    init_values = {}
    for name, value in hyper.items():
        a = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(
                f"`hyper[{name!r}]` must hold positive finite initial values (hyper-training works on log λ)."
            )
        init_values[name] = a
    shapes = tuple(a.shape for a in init_values.values())
    problem = make_problem(
        model, args, kwargs, names, weights, prior_weight, obs_plate, hyper_shapes=shapes, static_args=static_args
    )
    objective = problem.objective
    dtype = objective.init_params.dtype
    init_hyper = {n: np.ones(s) for n, s in zip(names, shapes)}
    val = build_objective(
        model, val_args, dict(val_kwargs or {}), names, obs_plate, hyper_init=init_hyper, static_args=static_args
    )
    test = None
    if test_args is not None:
        test = build_objective(
            model, test_args, dict(test_kwargs or {}), names, obs_plate, hyper_init=init_hyper, static_args=static_args
        )
    for label, other in (("validation", val), ("test", test)):
        if other is not None and other.num_params != objective.num_params:
            raise ValueError(
                f"the {label} data give the model {other.num_params} parameters, the training data "
                f"{objective.num_params}; pass {label} data with the same columns."
            )
    u0 = jnp.asarray(np.log(np.concatenate([a.ravel() for a in init_values.values()])), dtype)
    M, d = u0.shape[0], objective.num_params

    k_pilot, k_gen, k_train, k_eval = jax.random.split(rng_key, 4)
    if num_pilot:
        thetas, info, _, _ = solve_path(problem, k_pilot, jnp.exp(u0)[None], num_pilot)
        th = np.asarray(thetas[0], np.float64)[np.asarray(info.converged[0])]
        if th.shape[0] < 2:
            raise FloatingPointError("the pilot exact solves at the initial hyperparameters did not converge.")
        mean, sd = th.mean(0), np.maximum(th.std(0), 1e-6 * (1.0 + np.abs(th.mean(0))))
    else:
        mean, sd = np.asarray(objective.init_params, np.float64), np.ones(d)
    zeros = jnp.zeros((d, M - 1), dtype)
    scale = OutputScale(jnp.asarray(mean[None], dtype), jnp.asarray(np.log(sd)[None], dtype), zeros, zeros)
    generator = MLPGenerator(
        problem.weights.num_weights,
        M,
        problem.prior.noise_dim(d),
        d,
        width=width,
        depth=depth,
        output_scale=scale,
        key=k_gen,
        dtype=dtype,
    )
    _, static = eqx.partition(generator, eqx.is_inexact_array)
    optimizer = optax.adam(learning_rate)
    hyper_optimizer = optax.adam(hyper_learning_rate)
    step = build_step(
        problem,
        val,
        static,
        optimizer,
        hyper_optimizer,
        u0=u0,
        encode_scale=float(encode_scale),
        sigma=float(perturb_scale),
        batch_size=positive_int(batch_size, "batch_size"),
        val_batch_size=positive_int(val_batch_size, "val_batch_size"),
        hyper_prior_scale=None if hyper_prior_scale is None else float(hyper_prior_scale),
        hyper_bounds=(float(hyper_bounds[0]), float(hyper_bounds[1])),
    )
    state = init(generator, u0, optimizer, hyper_optimizer)

    @jax.jit
    def evaluate(params, u, train, data):
        gen = eqx.combine(params, static)
        thetas = _draw_thetas(problem, gen, k_eval, u, u0, encode_scale, num_eval_samples, train)
        h = hyper_dict(problem, jnp.exp(u))
        v_loss = predictive_loss(val, thetas, h, data[0])
        t_loss = predictive_loss(test, thetas, h, data[1]) if test is not None else jnp.nan
        return v_loss, t_loss

    data = (objective.data, val.data)
    eval_data = (val.data, None if test is None else test.data)
    rows = {k: [] for k in ("step", "time", "val_loss", "test_loss", "train_loss", "hyper_norm")}
    start_time = time.perf_counter()

    def record(state, train_loss):
        v_loss, t_loss = (float(x) for x in evaluate(state.params, state.u, objective.data, eval_data))
        rows["step"].append(int(state.step))
        rows["time"].append(time.perf_counter() - start_time)
        rows["val_loss"].append(v_loss)
        rows["test_loss"].append(t_loss)
        rows["train_loss"].append(train_loss)
        rows["hyper_norm"].append(float(jnp.linalg.norm(state.u - u0) / np.sqrt(M)))

    record(state, np.nan)

    def after_chunk(state, report):
        train_loss = float(np.mean(report.info.train_loss))
        if not np.isfinite(train_loss):
            raise FloatingPointError(
                f"hyper-training produced a non-finite loss in steps {report.start}-{report.stop}; lower "
                "`learning_rate`/`hyper_learning_rate` or narrow `hyper_bounds`."
            )
        record(state, train_loss)
        return time_budget is not None and rows["time"][-1] >= time_budget

    bar = ProgressBar(
        num_steps,
        desc="hyper-training",
        disable=not progress_bar,
        postfix=lambda _: {"val": f"{rows['val_loss'][-1]:.4g}"},
    )
    loop = run_loop(
        step, state, k_train, data, num_steps=num_steps, chunk_size=chunk_size, callbacks=[after_chunk, bar]
    )
    state = loop.state
    out = {k: np.asarray(v, np.float64) for k, v in hyper_dict(problem, jnp.exp(state.u)).items()}
    gen = eqx.combine(state.params, static)
    return HyperTrainResult(
        out,
        {k: np.asarray(v, float) for k, v in rows.items()},
        gen,
        problem,
        np.asarray(u0),
        float(encode_scale),
        loop.num_traces,
    )
