"""Data-parallel training (wbbgen.sharding) on 4 fake CPU devices gives the one-device result.

XLA_FLAGS must be set before jax is imported, so the comparisons run in a subprocess
(``--xla_force_host_platform_device_count=4``). The program and the random draws are the same
on one device and on four (JAX's random bits do not depend on the sharding); only the order of
floating-point sums across devices differs: ~1e-16 relative per reduction in float64 (as in
every test), and the training of a few dozen Adam steps keeps them at that level (measured:
≤ 5e-16). The tolerance, rtol 1e-9, is five orders of magnitude above that and far below any
real difference: a wrong sharding changes the draws, hence the losses at O(1e-2) or more.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

HEADER = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp, numpy as np, equinox as eqx
    sys.path.insert(0, "tests")
    from ridge_problem import HYPER, make_data, ridge
    assert len(jax.devices()) == 4, jax.devices()
    X, y = make_data()

    def rel(a, b):
        a, b = np.asarray(a), np.asarray(b)
        return float(np.max(np.abs(a - b), initial=0.0) / (np.abs(b).max(initial=0.0) + 1e-300))
    """
)

CORE = textwrap.dedent(
    """
    from wbbgen import training as T
    from wbbgen.generator import make_generator
    from wbbgen.hyper import make_domains
    from wbbgen.problem import make_problem
    from wbbgen.sharding import make_mesh, to_local

    # The fixed prior scheme keeps the compiled step small (no anchor search in it).
    problem = make_problem(ridge, (X, y), {}, ("lam",), "exponential", "fixed")
    domains = make_domains(HYPER)
    d = problem.objective.num_params
    gen = make_generator("mlp", problem.weights.num_weights, 1, 0, d, key=jax.random.key(0), output_scale=None,
                         dtype=jnp.float64, width=16)
    opt = T.default_optimizer(30)
    meshes = {"one": None, "draws2xdata2": make_mesh(jax.make_mesh((2, 2), ("draws", "data")))}
    runs, out = {}, {}
    for name, mesh in meshes.items():
        loss = T.criterion(problem, domains, batch_size=16, data_batch_size=20, mesh=mesh)
        trainer = T.trainer(loss, opt, gen)
        loop = T.run_loop(trainer.step, trainer.init(gen), jax.random.key(3), problem.objective.data,
                          num_steps=30, chunk_size=30, mesh=mesh)
        state, losses = loop.state, loop.info.loss
        state = to_local(state)
        runs[name] = (losses, jax.tree_util.tree_leaves(state.params))
        out[f"devices_after_{name}"] = len(runs[name][1][0].sharding.device_set)
        if name != "one":
            out[name] = max([rel(losses, runs["one"][0])] + [rel(a, b) for a, b in zip(runs[name][1], runs["one"][1])])
    print("RESULT", json.dumps(out))
    """
)

END_TO_END = textwrap.dedent(
    """
    from wbbgen import AmortizedWBB

    opts = dict(fidelity_samples=0, num_pilot=4, generator_options={"width": 16}, batch_size=16, chunk_size=20)
    runs = {}
    for devices in [None, 4]:
        infer = AmortizedWBB(ridge, hyper=HYPER, devices=devices, **opts)
        res = infer.run(jax.random.key(1), X, y, num_steps=40, progress_bar=False)
        s = infer.get_samples(jax.random.key(2), res, hyper={"lam": [0.1, 10.0]}, num_samples=8)
        runs[devices] = (res.losses, s["beta"], jax.tree_util.tree_leaves(eqx.filter(res.generator, eqx.is_array)))
    out = {
        "losses": rel(runs[4][0], runs[None][0]),
        "draws": rel(runs[4][1], runs[None][1]),
        "params": max(rel(a, b) for a, b in zip(runs[4][2], runs[None][2])),
    }
    print("RESULT", json.dumps(out))
    """
)


def _run(script: str) -> dict:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", HEADER + script], cwd=root, env=env, capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


@pytest.mark.slow
def test_four_devices_match_one_device():
    """The training core (trainer + run_loop, minibatched criterion) on a mesh of 2 draws ×
    2 data devices against one device: same losses and parameters within rtol 1e-9; the
    trained state comes back on one device. (A mesh over draws only, the default of
    ``devices=4``, is compared end to end in the slow test below.)"""
    out = _run(CORE)
    assert out["draws2xdata2"] < 1e-9, out
    assert all(v == 1 for k, v in out.items() if k.startswith("devices_after")), out


@pytest.mark.slow
def test_amortized_wbb_on_four_devices_matches_one_device():
    """AmortizedWBB(devices=4) end to end (pilot, training, sampling) against devices=None."""
    out = _run(END_TO_END)
    assert out["losses"] < 1e-9 and out["draws"] < 1e-9 and out["params"] < 1e-9, out


def test_bad_devices_are_refused():
    import jax
    from ridge_problem import HYPER, ridge

    from wbbgen import AmortizedWBB

    with pytest.raises(ValueError, match="JAX sees 1 device"):
        AmortizedWBB(ridge, hyper=HYPER, devices=8)
    with pytest.raises(ValueError, match="is unknown"):
        AmortizedWBB(ridge, hyper=HYPER, devices="gpu")
    with pytest.raises(TypeError, match="`devices` must be"):
        AmortizedWBB(ridge, hyper=HYPER, devices=2.5)
    one = jax.make_mesh((1, 1), ("draws", "data"))
    with pytest.raises(ValueError, match="has a 'data' axis of 1 devices"):
        AmortizedWBB(ridge, hyper=HYPER, devices=one)
    with pytest.raises(ValueError, match=r"wbbgen needs axes \('draws',\)"):
        AmortizedWBB(ridge, hyper=HYPER, devices=jax.make_mesh((1,), ("batch",)))
