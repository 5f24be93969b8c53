"""wbbgen.save / load (wbbgen.io): a round trip gives identical draws for the same key; a file
that does not match the model, the data or the settings, or that is damaged, is refused with
the difference named; a file of format version 1 (settings as repr strings) still loads."""

import atexit
import functools
import os
import pathlib
import shutil
import tempfile
import warnings
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import wbbgen
import wbbgen.io as wio
from wbbgen import AmortizedWBB
from wbbgen import weights as W
from wbbgen.training import FidelityWarning

# The runs here train for 20-40 steps: their fidelity is poor by design (the file, not the
# generator, is under test), so the fidelity warnings of run() and get_samples are expected.
pytestmark = pytest.mark.filterwarnings("ignore::wbbgen.training.FidelityWarning")

N, P = 40, 3
HYPER = {"lam": dist.LogUniform(1e-2, 1e2)}
GRID = {"lam": [0.1, 1.0, 10.0]}


def ridge(X, y=None, *, lam=1.0):
    beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def make_infer(model=ridge, **overrides):
    options = dict(
        hyper=HYPER,
        prior_weight="random",
        fidelity_samples=8,
        num_pilot=4,
        chunk_size=20,
        batch_size=16,
        generator_options={"width": 16, "depth": 1},
    )
    return AmortizedWBB(model, **{**options, **overrides})


def make_data():
    k1, k2 = jax.random.split(jax.random.key(0))
    X = jax.random.normal(k1, (N, P))
    return X, X @ jnp.array([1.0, -1.0, 0.5]) + jax.random.normal(k2, (N,))


NUM_STEPS = 40


@functools.cache
def trained():
    """One small trained run (with checkpoints every 20 steps) and its saved copy, shared with
    tests/test_bad_inputs.py: a training run costs two compilations, the checks do not."""
    X, y = make_data()
    infer = make_infer()
    folder = pathlib.Path(tempfile.mkdtemp(prefix="wbbgen-test-io-"))
    atexit.register(shutil.rmtree, folder, True)
    with warnings.catch_warnings():  # 40 steps: poor fidelity is expected (also when called from elsewhere)
        warnings.simplefilter("ignore", FidelityWarning)
        result = infer.run(
            jax.random.key(1),
            X,
            y,
            num_steps=NUM_STEPS,
            progress_bar=False,
            checkpoint_dir=folder / "checkpoints",
            checkpoint_every=20,
        )
    path = folder / "ridge.wbb"
    wio.save(path, result)
    return SimpleNamespace(infer=infer, result=result, X=X, y=y, path=path, checkpoint_dir=folder / "checkpoints")


@pytest.fixture(scope="module")
def data():
    run = trained()
    return run.X, run.y


@pytest.fixture(scope="module")
def saved():
    run = trained()
    return run.infer, run.result, run.path


def _leaves_equal(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(x.dtype == z.dtype and np.array_equal(x, z) for x, z in zip(la, lb, strict=True))


@pytest.mark.parametrize("how", ["model", "amortized"])
def test_round_trip_gives_identical_samples(saved, data, how):
    infer, result, path = saved
    X, y = data
    loaded = wio.load(path, ridge if how == "model" else make_infer(), X, y)
    assert _leaves_equal(loaded.generator, result.generator)
    np.testing.assert_array_equal(loaded.losses, result.losses)
    assert loaded.config == result.config and loaded.diagnostics == result.diagnostics
    assert set(loaded.fidelity) == set(result.fidelity)
    for k in result.fidelity:
        np.testing.assert_array_equal(loaded.fidelity[k], result.fidelity[k])
    # A fresh AmortizedWBB (as after a restart) draws exactly what the original draws.
    a = infer.get_samples(jax.random.key(5), result, hyper=GRID, num_samples=16)
    b = make_infer().get_samples(jax.random.key(5), loaded, hyper=GRID, num_samples=16)
    np.testing.assert_array_equal(a["beta"], b["beta"])
    np.testing.assert_array_equal(a.stats["loss"], b.stats["loss"])


def test_header_records_versions_model_data_and_settings(saved):
    _, result, path = saved
    header, _ = wio.read_container(path)
    assert header["kind"] == "result" and header["format_version"] == wio.FORMAT_VERSION
    assert header["wbbgen"] == __import__("wbbgen").__version__ and header["jax"] == jax.__version__
    assert header["model"] == {"model": "ridge", "latent": {"beta": [P]}, "observed": {"y": [N]}, "hyper": ["lam"]}
    assert [leaf["path"] for leaf in header["data"]["leaves"]] == ["args[0]", "args[1]"]
    s = header["settings"]
    assert s["weights"] == "exponential" and s["prior_weight"] == "random"
    assert s["generator"] == "wbbgen.generator.MLPGenerator" and header["generator_kind"] == "mlp"
    (lam,) = s["hyper"]
    assert lam["name"] == "lam" and lam["distribution"]["repr"] == "LogUniform(low=0.01, high=100)"
    assert (lam["low"], lam["high"], lam["log_scale"]) == (0.01, 100.0, True)
    assert header["losses"] == {"length": 40, "dtype": str(result.losses.dtype)}


def test_settings_are_json_values(saved):
    """The generator options are a JSON object, not a repr string to be parsed back."""
    _, _, path = saved
    header, _ = wio.read_container(path)
    assert header["settings"]["generator_options"] == {"width": 16, "depth": 1}


def test_non_json_generator_options_need_the_amortized_wbb(saved, data, tmp_path):
    """An activation function is recorded by its repr (no memory address): it is compared as
    text against the AmortizedWBB's options and cannot be rebuilt from the model alone."""
    _, result, _ = saved
    options = {"width": 16, "depth": 1, "activation": jax.nn.silu}  # silu is the default: same arrays
    path = tmp_path / "silu.wbb"
    wio.save(path, result._replace(config={**result.config, "generator_options": repr(options)}))
    recorded = wio.read_container(path)[0]["settings"]["generator_options"]
    assert isinstance(recorded, str) and "silu" in recorded and " at 0x" not in recorded
    loaded = wio.load(path, make_infer(generator_options=options), *data)
    assert _leaves_equal(loaded.generator, result.generator)
    with pytest.raises(ValueError, match=r"cannot be rebuilt from the model alone: the generator options"):
        wio.load(path, ridge, *data)
    with pytest.raises(wio.MismatchError, match=r"generator_options: saved"):
        wio.load(path, make_infer(), *data)


def test_top_level_save_and_load_are_wbbgen_io(saved, data, tmp_path):
    _, result, path = saved
    assert wbbgen.save is wio.save and wbbgen.load is wio.load
    assert "save" in wbbgen.__all__ and "load" in wbbgen.__all__
    wbbgen.save(tmp_path / "again.wbb", result)
    loaded = wbbgen.load(tmp_path / "again.wbb", ridge, *data)
    assert _leaves_equal(loaded.generator, result.generator)


@pytest.mark.slow
def test_format_1_settings_still_load(saved, data, tmp_path):
    """A file whose header holds the generator options as a repr string (format version 1)
    loads from the model alone and against the AmortizedWBB, with the same draws."""
    infer, result, path = saved
    header, payload = wio.read_container(path)
    header["settings"] = {**header["settings"], "generator_options": "{'depth': 1, 'width': 16}"}
    old = tmp_path / "format1.wbb"
    old.write_bytes(wio.assemble(header, payload, format_version=1))
    a = infer.get_samples(jax.random.key(5), result, hyper=GRID, num_samples=4)
    for how in (ridge, make_infer()):
        loaded = wio.load(old, how, *data)
        b = make_infer().get_samples(jax.random.key(5), loaded, hyper=GRID, num_samples=4)
        np.testing.assert_array_equal(a["beta"], b["beta"])
    with pytest.raises(wio.MismatchError, match=r"generator_options: saved \{\"depth\": 1, \"width\": 16\}"):
        wio.load(old, make_infer(generator_options={"width": 8, "depth": 1}), *data)


def test_another_model_is_refused(saved, data):
    X, y = data
    _, _, path = saved

    def wide(X, y=None, *, lam=1.0):  # same name as the saved model, one more coefficient
        beta = numpyro.sample("beta", dist.Normal(0.0, 1.0 / jnp.sqrt(lam)).expand([X.shape[1] + 1]).to_event(1))
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("y", dist.Normal(X @ beta[1:] + beta[0], 1.0), obs=y)

    wide.__qualname__ = "ridge"
    with pytest.raises(wio.MismatchError, match=r"another model: latent site 'beta': saved \[3\], now \[4\]"):
        wio.load(path, wide, X, y)

    def lasso(X, y=None, *, lam=1.0):
        beta = numpyro.sample("beta", dist.Laplace(0.0, 1.0 / lam).expand([X.shape[1]]).to_event(1))
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)

    with pytest.raises(wio.MismatchError, match=r"another model: model: saved 'ridge', now '.*lasso'"):
        wio.load(path, lasso, X, y)


def test_other_data_are_refused(saved, data):
    X, y = data
    _, _, path = saved
    with pytest.raises(wio.MismatchError, match=r"other data: args\[1\]: same shape \(40,\) and dtype, different"):
        wio.load(path, ridge, X, y.at[0].add(1e-9))
    with pytest.raises(wio.MismatchError, match=r"other data: args\[1\] was given when saving, not now; kwargs\['y'\]"):
        wio.load(path, ridge, X, y=y)
    with pytest.raises(wio.MismatchError, match=r"args\[0\]: saved \(40, 3\) float64, now \(40, 3\) float32"):
        wio.load(path, ridge, X.astype(jnp.float32), y.astype(jnp.float32))


def test_other_settings_are_refused(saved, data):
    X, y = data
    _, _, path = saved
    with pytest.raises(wio.MismatchError, match=r"other settings: .*hyper: saved"):
        wio.load(path, make_infer(hyper={"lam": dist.LogUniform(1e-3, 1e2)}), X, y)
    with pytest.raises(wio.MismatchError, match=r"other settings: .*prior_weight: saved 'random', now 'anchored'"):
        wio.load(path, make_infer(prior_weight="anchored"), X, y)
    with pytest.raises(wio.MismatchError, match=r"generator_options: saved \{\"depth\": 1, \"width\": 16\}, now \{"):
        wio.load(path, make_infer(generator_options={"width": 8, "depth": 1}), X, y)
    block = make_infer(weights=lambda n: W.block(n, 10, rng_key=jax.random.key(0)))
    with pytest.raises(wio.MismatchError, match=r"weights: saved 'exponential', now 'block\(10, exponential\)'"):
        wio.load(path, block, X, y)


def test_unrebuildable_settings_ask_for_the_amortized_wbb(saved, data, tmp_path):
    X, y = data
    _, _, path = saved
    header, payload = wio.read_container(path)
    header["settings"] = {**header["settings"], "weights": "my_scheme(3)"}
    header["generator_kind"] = None
    other = tmp_path / "custom.wbb"
    other.write_bytes(wio.assemble(header, payload))
    with pytest.raises(
        ValueError,
        match=r"cannot be rebuilt from the model alone: the weight scheme "
        r"'my_scheme\(3\)', the generator class .*Pass the AmortizedWBB",
    ):
        wio.load(other, ridge, X, y)


@pytest.mark.slow
def test_block_weights_are_rebuilt_from_their_name(data, tmp_path):
    """``weights="block"`` is saved as ``block(S, exponential)`` and loads from the model alone;
    a block scheme with another shuffle is refused by its layout."""
    X, y = data
    infer = make_infer(weights="block", data_batch_size=8)
    result = infer.run(jax.random.key(2), X, y, num_steps=20, progress_bar=False)
    path = tmp_path / "block.wbb"
    wio.save(path, result)
    loaded = wio.load(path, ridge, X, y)  # from the model alone
    a = infer.get_samples(jax.random.key(3), result, hyper=GRID, num_samples=5)
    b = make_infer(weights="block").get_samples(jax.random.key(3), loaded, hyper=GRID, num_samples=5)
    np.testing.assert_array_equal(np.asarray(a["beta"]), np.asarray(b["beta"]))
    reshuffled = make_infer(weights=lambda n: W.block(n, n, rng_key=jax.random.key(1)), data_batch_size=8)
    with pytest.raises(wio.MismatchError, match="weights_layout"):
        wio.load(path, reshuffled, X, y)


def test_damaged_files_are_named(saved, data, tmp_path):
    X, y = data
    _, _, path = saved
    raw = path.read_bytes()
    bad = tmp_path / "bad.wbb"
    bad.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(wio.FileFormatError, match=r"saved generator .* is truncated: \d+ bytes, its header announces"):
        wio.load(bad, ridge, X, y)
    bad.write_bytes(raw[:10])
    with pytest.raises(wio.FileFormatError, match=r"is truncated"):
        wio.load(bad, ridge, X, y)
    flipped = bytearray(raw)
    flipped[-200] ^= 1
    bad.write_bytes(bytes(flipped))
    with pytest.raises(wio.FileFormatError, match=r"is corrupt: its SHA-256 checksum does not match"):
        wio.load(bad, ridge, X, y)
    bad.write_bytes(raw + b"\0")
    with pytest.raises(wio.FileFormatError, match=r"is corrupt: 1 unexpected bytes after its end"):
        wio.load(bad, ridge, X, y)
    bad.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(wio.FileFormatError, match=r"is not a saved generator"):
        wio.load(bad, ridge, X, y)
    header, payload = wio.read_container(path)
    bad.write_bytes(wio.assemble(header, payload, format_version=wio.FORMAT_VERSION + 1))
    newer = rf"has format version {wio.FORMAT_VERSION + 1}, written by a newer wbbgen"
    with pytest.raises(wio.FileFormatError, match=newer):
        wio.load(bad, ridge, X, y)
    bad.write_bytes(wio.assemble({**header, "kind": "checkpoint"}, payload))
    with pytest.raises(wio.FileFormatError, match=r"is a checkpoint file, not a saved generator"):
        wio.load(bad, ridge, X, y)


def test_save_is_atomic(saved, tmp_path, monkeypatch):
    """A write that fails half-way (here: fsync raises) leaves the previous file intact and
    no temporary file behind."""
    _, result, path = saved
    target = tmp_path / "g.wbb"
    wio.save(target, result)
    before = target.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        wio.save(target, result._replace(losses=result.losses[:3]))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.wbb"]


def test_save_refuses_other_objects(tmp_path):
    with pytest.raises(TypeError, match=r"`result` must be the WBBRunResult returned by AmortizedWBB.run"):
        wio.save(tmp_path / "x.wbb", {"generator": None})
