"""The training core (wbbgen.training): the trainer's pure init/step, one compilation for
every λ and every step, the chunked loop's semantics and callbacks, and AmortizedWBB's
init/update on top of it."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax
import pytest
from ridge_problem import HYPER, make_data, ridge

from wbbgen import AmortizedWBB
from wbbgen.generator import MLPGenerator
from wbbgen.hyper import make_domains
from wbbgen.options import GeneratorOptions, PilotOptions, TrainingOptions
from wbbgen.problem import make_problem
from wbbgen.training import Loss, criterion, every_chunk, run_loop, stop_when, trainer


@pytest.fixture(scope="module")
def setup():
    X, y = make_data()
    problem = make_problem(ridge, (X, y), {}, ("lam",), "exponential", "anchored")
    domains = make_domains(HYPER)
    d = problem.objective.num_params
    gen = MLPGenerator(problem.weights.num_weights, 1, problem.prior.noise_dim(d), d, width=8, depth=1,
                       key=jax.random.key(0), dtype=jnp.float64)  # fmt: skip
    return problem, domains, gen


def counting(loss: Loss):
    """``loss`` whose value counts its traces (a Python side effect runs once per trace)."""
    traces = []

    def value(*args):
        traces.append(1)
        return loss.value(*args)

    return loss._replace(value=value), traces


def test_one_compilation_for_every_lambda_and_step(setup):
    """λ is drawn inside the step (traced): ten steps at ten different λ batches and keys
    trace the loss once; a Python-float λ, which would force re-tracing, never reaches it."""
    problem, domains, gen = setup
    loss, traces = counting(criterion(problem, domains, batch_size=8))
    t = trainer(loss, optax.adam(1e-3), gen)
    step = jax.jit(t.step)
    state = t.init(gen)
    lams = []
    for i in range(10):
        batch = loss.batch(jax.random.key(i), problem.objective.data)
        lams.append(np.asarray(batch.values))
        state, info = step(state, jax.random.key(i), problem.objective.data)
    assert len(traces) == 1
    assert int(state.step) == 10 and bool(info.finite)
    assert len({float(x[0, 0]) for x in lams}) == 10  # the steps did see different λ


def test_loop_matches_stepping_by_hand_and_chunking_does_not_matter(setup):
    """run_loop's step t uses fold_in(key, t): any chunking gives the same parameters as
    stepping by hand (rtol 0: the same operations in the same order), and the last chunk's
    steps past num_steps leave the state unchanged."""
    problem, domains, gen = setup
    t = trainer(criterion(problem, domains, batch_size=8), optax.adam(1e-2), gen)
    key, data = jax.random.key(5), problem.objective.data
    state = t.init(gen)
    for i in range(7):
        state, _ = jax.jit(t.step)(state, jax.random.fold_in(key, i), data)
    outs = [run_loop(t.step, t.init(gen), key, data, num_steps=7, chunk_size=c) for c in (7, 3)]
    for out in outs:
        assert int(out.state.step) == 7 and out.info.loss.shape == (7,) and out.num_traces == 1
        for a, b in zip(jax.tree_util.tree_leaves(out.state.params), jax.tree_util.tree_leaves(state.params)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def test_callbacks_see_each_chunk_and_can_stop(setup):
    problem, domains, gen = setup
    t = trainer(criterion(problem, domains, batch_size=8), optax.adam(1e-2), gen)
    seen = []
    out = run_loop(
        t.step, t.init(gen), jax.random.key(0), problem.objective.data, num_steps=10, chunk_size=4,
        callbacks=[every_chunk(lambda s, r: seen.append((r.start, r.stop))), stop_when(lambda s: s.step >= 8)],
    )  # fmt: skip
    assert seen == [(0, 4), (4, 8)] and int(out.state.step) == 8 and out.info.loss.shape == (8,)


def test_nonfinite_step_freezes_or_is_skipped(setup):
    """A loss that is NaN on step 2 never reaches the parameters: "stop" freezes the state,
    "skip" skips that step and counts it."""
    problem, domains, gen = setup
    base = criterion(problem, domains, batch_size=8)
    bad_key = jax.random.key_data(jax.random.fold_in(jax.random.key(0), 2))  # step 2's key

    def nan_once(generator, batch, rng_key, data):
        value = base.value(generator, batch, rng_key, data)
        return jnp.where(jnp.all(jax.random.key_data(rng_key) == bad_key), jnp.nan, value)

    loss = base._replace(value=nan_once)
    for mode in ("stop", "skip"):
        t = trainer(loss, optax.adam(1e-2), gen, on_nonfinite=mode)
        out = run_loop(t.step, t.init(gen), jax.random.key(0), problem.objective.data, num_steps=6, chunk_size=6)
        s = out.state
        assert int(s.first_nonfinite) == 2 and np.isnan(out.info.loss[2])
        assert bool(s.stopped) == (mode == "stop") and int(s.num_skipped) == 1
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(s.params))


def test_amortized_init_update_compiles_once():
    """AmortizedWBB.init + update (NumPyro's SVI shape): three updates trace the step once
    and equal three steps of run()'s loop on the same key."""
    X, y = make_data()
    infer = AmortizedWBB(ridge, hyper=HYPER, num_pilot=4, fidelity_samples=0, batch_size=8,
                         generator_options={"width": 8, "depth": 1})  # fmt: skip
    training = infer.init(jax.random.key(0), X, y, num_steps=3)
    loss, traces = counting(criterion(training.problem, infer.domains, batch_size=8))
    training = training._replace(trainer=trainer(loss, optax.adam(1e-3), training.trainer.generator(training.state)))
    for _ in range(3):
        training, info = infer.update(training)
    assert len(traces) == 1 and int(training.state.step) == 3 and bool(info.finite)
    result = infer.run(jax.random.key(0), X, y, num_steps=3, progress_bar=False)
    assert result.losses.shape == (3,) and np.all(np.isfinite(result.losses))


def test_options_check_themselves():
    with pytest.raises(ValueError, match="`cv_folds` applies to mode='criterion' only"):
        TrainingOptions(mode="supervised", cv_folds=5)
    with pytest.raises(ValueError, match="`chunk_size` must be a positive integer"):
        TrainingOptions(chunk_size=0)
    with pytest.raises(ValueError, match="`generator='cnn'` is unknown"):
        GeneratorOptions("cnn")
    with pytest.raises(ValueError, match="`pilot_max_steps` must be a positive integer"):
        PilotOptions(max_steps=0)
    infer = AmortizedWBB(ridge, hyper={"lam": dist.LogUniform(0.1, 10.0)}, batch_size=32, num_pilot=5)
    assert infer.batch_size == infer.options.training.batch_size == 32 and infer.num_pilot == 5
    with pytest.raises(AttributeError):
        infer.batch_size = 4  # read-only: the options are immutable


def test_fidelity_band_from_the_figures():
    """check_fidelity on hand-made figures: inside the band nothing; each way out named."""
    from wbbgen.training import check_fidelity

    base = {
        "values": np.array([[0.1], [1.0], [10.0], [100.0]]),
        "sd_ratio_median": np.array([1.0, 0.85, 1.0, 1.0]),
        "sd_ratio_se": np.full(4, 0.01),
        "mean_error_max": np.array([0.05, 0.05, 0.3, 0.05]),
        "mean_error_excess": np.array([0.0, 0.0, 0.25, 0.0]),
        "exact_converged": np.array([1.0, 1.0, 1.0, 0.5]),
    }
    reasons = check_fidelity(base)
    assert reasons[0] == []
    assert "sd ratio 0.85" in reasons[1][0]
    assert "mean error up to 0.30" in reasons[2][0]
    assert "50% of the exact reference solves converged" in reasons[3][0]


@pytest.mark.pipeline
def test_guard_fires_on_an_undertrained_generator_and_refinement_repairs_it():
    """Twenty training steps: run() warns with the figures; get_samples(refine=0) warns that
    the draws are unrefined; the default refines them (ridge: Newton is exact in one step),
    stays quiet, and then equals exact WBB draw by draw (decrement ≤ 1e-3 posterior sd, so
    within 1e-3 sd of the exact optimiser: tolerance 2e-3 sd)."""
    from wbbgen import exact_wbb
    from wbbgen.training import FidelityWarning

    X, y = make_data()
    infer = AmortizedWBB(ridge, hyper=HYPER, num_pilot=4, fidelity_samples=16, batch_size=8,
                         generator_options={"width": 8, "depth": 1})  # fmt: skip
    with pytest.warns(FidelityWarning, match="outside the fidelity band"):
        result = infer.run(jax.random.key(0), X, y, num_steps=20, progress_bar=False)
    grid = {"lam": [0.3, 3.0]}
    with pytest.warns(FidelityWarning, match=r"refine=0"):
        infer.get_samples(jax.random.key(1), result, hyper=grid, num_samples=32, refine=0)
    samples = infer.get_samples(jax.random.key(1), result, hyper=grid, num_samples=32)  # no warning
    assert np.all(samples.stats["decrement"] <= 1e-3)
    exact = exact_wbb(jax.random.key(1), ridge, X, y, hyper=grid, num_samples=32, progress_bar=False)
    sd = exact["beta"].std(1, keepdims=True)
    assert np.max(np.abs(samples["beta"] - exact["beta"]) / sd) < 2e-3
