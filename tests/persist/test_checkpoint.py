"""Checkpoint and resume (wbbgen.persist.checkpoint): a run killed (SIGKILL) after its first
checkpoint and resumed gives the uninterrupted run's generator and losses bit for bit;
damaged, foreign and newer checkpoints are refused with a message naming the problem."""

import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import wbbgen.io as wio
import wbbgen.persist.checkpoint as ckpt
from wbbgen import AmortizedWBB
from wbbgen.amortized.resume import checkpoint_callback
from wbbgen.training import run_loop

N, P = 40, 3
NUM_STEPS, CHUNK = 300, 50
HYPER = {"lam": dist.LogUniform(1e-2, 1e2)}
KEY = 3


def ridge(X, y=None, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def make_data():
    k1, k2 = jax.random.split(jax.random.key(0))
    X = jax.random.normal(k1, (N, P))
    return X, X @ jnp.array([1.0, -1.0, 0.5]) + jax.random.normal(k2, (N,))


def make_infer(**overrides):
    """Small and cheap to compile: a fixed prior (no anchor solves in the training step)."""
    options = dict(
        hyper=HYPER,
        prior_weight="fixed",
        fidelity_samples=0,
        num_pilot=4,
        chunk_size=CHUNK,
        batch_size=16,
        generator_options={"width": 16, "depth": 1},
    )
    return AmortizedWBB(ridge, **{**options, **overrides})


def child(checkpoint_dir):
    """Run in a subprocess (x64 enabled by the caller, as in conftest.py): train as
    ``run(..., checkpoint_dir=d, checkpoint_every=CHUNK)`` does (``init``, then the loop with
    run's checkpoint callback), with one more callback that sleeps after the first checkpoint
    so that the parent kills the process in the middle of training."""

    def sleep(state, report):
        print("WROTE", ckpt.latest_checkpoint(checkpoint_dir), flush=True)
        time.sleep(600)
        os._exit(3)  # never continue training if the parent did not kill this process

    X, y = make_data()
    infer, key = make_infer(), jax.random.key(KEY)
    training = infer.init(key, X, y, num_steps=NUM_STEPS)
    write = checkpoint_callback(infer, training, key, checkpoint_dir, CHUNK)
    run_loop(
        training.trainer.step,
        training.state,
        training.rng_key,
        training.data,
        num_steps=NUM_STEPS,
        chunk_size=CHUNK,
        callbacks=[write, sleep],
    )
    raise SystemExit("training finished: the parent should have killed this process")


def _start_child(checkpoint_dir):
    tests = os.path.dirname(os.path.abspath(__file__))
    code = (
        "import jax; jax.config.update('jax_enable_x64', True)\n"
        f"import sys; sys.path[:0] = [{tests!r}, {os.path.dirname(tests)!r}]\n"
        f"import test_checkpoint; test_checkpoint.child({os.fspath(checkpoint_dir)!r})\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_after_first_checkpoint(proc, checkpoint_dir, timeout=300.0):
    deadline = time.monotonic() + timeout
    try:
        while not ckpt.list_checkpoints(checkpoint_dir):
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"child exited ({proc.returncode}) before a checkpoint:\n{out.decode()}\n{err.decode()}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within the timeout")
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    return proc.returncode


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def resumed(data, tmp_path_factory):
    """(uninterrupted result, resumed result, dir)."""
    X, y = data
    d = tmp_path_factory.mktemp("killed")
    proc = _start_child(d)
    try:  # the uninterrupted reference, computed while the child trains
        reference = make_infer().run(jax.random.key(KEY), X, y, num_steps=NUM_STEPS, progress_bar=False)
    finally:
        returncode = _kill_after_first_checkpoint(proc, d)
    assert returncode == -signal.SIGKILL
    ((step, path),) = ckpt.list_checkpoints(d)
    header, _ = ckpt.read_checkpoint(path)
    assert step == header["step"] == CHUNK < NUM_STEPS  # killed mid-training

    result = make_infer().run(
        jax.random.key(KEY), X, y, num_steps=NUM_STEPS, progress_bar=False, checkpoint_dir=d, resume=True
    )
    return SimpleNamespace(reference=reference, result=result, dir=d)


@pytest.mark.slow
def test_killed_run_resumes_bit_identical(resumed):
    ref, res = resumed.reference, resumed.result
    # Training continued from the checkpoint's state, without repeating the pilot.
    assert res.diagnostics["resumed_from_step"] == CHUNK and "pilot_s" not in res.diagnostics
    # The first CHUNK losses were computed by the killed subprocess, the rest in this one:
    # training is also deterministic across processes.
    np.testing.assert_array_equal(res.losses, ref.losses)
    assert res.losses.dtype == ref.losses.dtype and res.losses.shape == (NUM_STEPS,)
    a, b = jax.tree_util.tree_leaves(res.generator), jax.tree_util.tree_leaves(ref.generator)
    assert len(a) == len(b) > 0
    for x, z in zip(a, b, strict=True):
        assert x.dtype == z.dtype
        np.testing.assert_array_equal(x, z)
    # The resumed run keeps checkpointing; the last one (after the final step) replaces the rest.
    assert [s for s, _ in ckpt.list_checkpoints(resumed.dir)] == [NUM_STEPS]


def test_resume_from_final_checkpoint_skips_training(resumed, data, tmp_path):
    X, y = data
    d = tmp_path / "done"
    shutil.copytree(resumed.dir, d)
    again = make_infer().run(
        jax.random.key(KEY), X, y, num_steps=NUM_STEPS, progress_bar=False, checkpoint_dir=d, resume=True
    )
    # No chunk ran (nothing compiled): the loop returned at once.
    assert again.diagnostics["resumed_from_step"] == NUM_STEPS and "compile_s" not in again.diagnostics
    np.testing.assert_array_equal(again.losses, resumed.reference.losses)


def _copy_latest(resumed, tmp_path):
    d = tmp_path / "ckpt"
    shutil.copytree(resumed.dir, d)
    return d, ckpt.latest_checkpoint(d)


def _resume(d, data, *, key=KEY, num_steps=NUM_STEPS, infer=None, y=None):
    X, y0 = data
    infer = infer or make_infer()
    return infer.run(
        jax.random.key(key),
        X,
        y0 if y is None else y,
        num_steps=num_steps,
        progress_bar=False,
        checkpoint_dir=d,
        resume=True,
    )


@pytest.mark.parametrize(
    "change, match",
    [
        ({"num_steps": 400}, r"num_steps=300, this call asks for num_steps=400"),
        ({"key": 4}, r"another rng_key"),
        ({"y": "shifted"}, r"other data: args\[1\]: same shape \(40,\) and dtype, different values"),
        ({"infer": {"batch_size": 32}}, r"other settings: batch_size: saved 16, now 32"),
        ({"infer": {"prior_weight": "random"}}, r"other settings: prior_weight: saved 'fixed', now 'random'"),
        ({"infer": {"generator_options": {"width": 8, "depth": 1}}}, r"generator_options: saved"),
        ({"infer": {"hyper": {"lam": dist.LogUniform(1e-3, 1e2)}}}, r"other settings: hyper"),
        ({"infer": {"data_batch_size": 8}}, r"other settings: data_batch_size: saved '<absent>', now 8"),
    ],
)
def test_resume_names_the_difference(resumed, data, tmp_path, change, match):
    d, _ = _copy_latest(resumed, tmp_path)
    kwargs = dict(change)
    if kwargs.get("y") == "shifted":
        kwargs["y"] = data[1] + 1.0
    if "infer" in kwargs:
        kwargs["infer"] = make_infer(**kwargs["infer"])
    with pytest.raises(wio.MismatchError, match=match):
        _resume(d, data, **kwargs)


def test_resume_refuses_another_model(resumed, data, tmp_path):
    d, _ = _copy_latest(resumed, tmp_path)

    def lasso(X, y=None, *, lam=1.0):
        beta = numpyro.sample("beta", dist.Laplace(0.0, 1.0 / lam).expand([X.shape[1]]).to_event(1))
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)

    other = AmortizedWBB(
        lasso,
        hyper=HYPER,
        prior_weight="fixed",
        fidelity_samples=0,
        num_pilot=4,
        chunk_size=CHUNK,
        batch_size=16,
        generator_options={"width": 16, "depth": 1},
    )
    with pytest.raises(wio.MismatchError, match=r"another model: model: saved 'ridge', now .*lasso"):
        _resume(d, data, infer=other)


def test_truncated_and_corrupt_checkpoints_are_named(resumed, data, tmp_path):
    d, path = _copy_latest(resumed, tmp_path)
    raw = path_bytes(path)
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2])
    with pytest.raises(wio.FileFormatError, match=r"is truncated: \d+ bytes, its header announces \d+"):
        _resume(d, data)
    with open(path, "wb") as f:
        f.write(raw[:20])
    with pytest.raises(wio.FileFormatError, match=r"is truncated"):
        _resume(d, data)
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(flipped))
    with pytest.raises(wio.FileFormatError, match=r"is corrupt: its SHA-256 checksum does not match"):
        _resume(d, data)
    with open(path, "wb") as f:
        f.write(b"not a checkpoint at all")
    with pytest.raises(wio.FileFormatError, match=r"is not a checkpoint"):
        _resume(d, data)


def test_newer_format_or_wbbgen_version_is_refused(resumed, data, tmp_path):
    d, path = _copy_latest(resumed, tmp_path)
    header, payload = wio.read_container(path)
    with open(path, "wb") as f:
        f.write(wio.assemble(header, payload, format_version=wio.FORMAT_VERSION + 1))
    newer = rf"format version {wio.FORMAT_VERSION + 1}, written by a newer wbbgen"
    with pytest.raises(wio.FileFormatError, match=newer):
        _resume(d, data)
    with open(path, "wb") as f:
        f.write(wio.assemble({**header, "wbbgen": "99.0.0"}, payload))
    with pytest.raises(wio.FileFormatError, match=r"written by wbbgen 99\.0\.0, newer than this wbbgen"):
        _resume(d, data)
    # An older wbbgen's checkpoint of the same format is accepted (the check is not "any difference").
    with open(path, "wb") as f:
        f.write(wio.assemble({**header, "wbbgen": "0.0.1"}, payload))
    assert _resume(d, data).diagnostics["resumed_from_step"] == NUM_STEPS


def test_format_1_checkpoint_resumes(resumed, data, tmp_path):
    """A checkpoint whose settings hold the generator options as a repr string (format
    version 1) is read in today's form and resumes."""
    d, path = _copy_latest(resumed, tmp_path)
    header, payload = wio.read_container(path)
    assert header["settings"]["generator_options"] == {"width": 16, "depth": 1}
    header["settings"] = {**header["settings"], "generator_options": "{'depth': 1, 'width': 16}"}
    with open(path, "wb") as f:
        f.write(wio.assemble(header, payload, format_version=1))
    assert ckpt.read_checkpoint(path)[0]["settings"]["generator_options"] == {"depth": 1, "width": 16}
    again = _resume(d, data)
    assert again.diagnostics["resumed_from_step"] == NUM_STEPS
    np.testing.assert_array_equal(again.losses, resumed.reference.losses)


def test_a_saved_result_is_not_a_checkpoint(resumed, data, tmp_path):
    d = tmp_path / "ckpt"
    d.mkdir()
    wio.save(d / "checkpoint-000000100.wbb", resumed.reference)
    with pytest.raises(wio.FileFormatError, match=r"is a result file, not a training checkpoint"):
        _resume(d, data)


def test_checkpoint_arguments_are_checked_before_any_work(data, tmp_path, resumed):
    X, y = data
    infer = make_infer()
    run = lambda **kw: infer.run(jax.random.key(KEY), X, y, num_steps=NUM_STEPS, progress_bar=False, **kw)  # noqa: E731
    with pytest.raises(ValueError, match=r"`resume=True` needs `checkpoint_dir=`"):
        run(resume=True)
    with pytest.raises(ValueError, match=r"`checkpoint_every` needs `checkpoint_dir=`"):
        run(checkpoint_every=100)
    with pytest.raises(ValueError, match=r"`checkpoint_every` must be a positive integer"):
        run(checkpoint_dir=tmp_path / "a", checkpoint_every=0)
    with pytest.raises(FileNotFoundError, match=r"holds no checkpoint"):
        run(checkpoint_dir=tmp_path / "empty", resume=True)
    with pytest.raises(FileExistsError, match=r"already holds a checkpoint .*pass resume=True"):
        run(checkpoint_dir=resumed.dir)
    with pytest.raises(TypeError, match=r"`resume` must be True or False"):
        run(checkpoint_dir=tmp_path / "b", resume="yes")


class _State(SimpleNamespace):
    pass


def test_checkpoint_interval_is_rounded_up_to_whole_chunks(tmp_path):
    """checkpoint_every=70 with chunks of 50 writes at 100, 200, ... and after the last step."""
    assert ckpt.effective_interval(70, 50) == 100
    assert ckpt.effective_interval(100, 50) == 100
    assert ckpt.effective_interval(1, 50) == 50
    written = []
    write = lambda d, h, state, losses, scale: written.append((int(state.step), len(losses)))  # noqa: E731
    cb = ckpt.Checkpointer(tmp_path, ckpt.effective_interval(70, 50), 330, {}, None, write=write)
    previous = 0
    for step in [50, 100, 150, 200, 250, 300, 330]:
        cb(_State(step=step), np.zeros(step - previous))
        previous = step
    assert written == [(100, 100), (200, 200), (300, 300), (330, 330)]


def path_bytes(path):
    with open(path, "rb") as f:
        return f.read()
