"""wbbgen.persist: a file saved by an older wbbgen (main 756df79, format version 1) loads and
draws what it drew then; the container and the settings values, unit by unit."""

import importlib
import pathlib

import jax
import numpy as np
import numpyro.distributions as dist
import pytest

import wbbgen
from wbbgen import AmortizedWBB
from wbbgen.generator import MLPGenerator
from wbbgen.persist import container, fingerprint

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SAVED = FIXTURES / "ridge-756df79.wbb"


def fixture_infer():
    """The AmortizedWBB the fixture was trained with (tests/persist/fixtures/, main 756df79)."""
    return AmortizedWBB(
        wbbgen.models.ridge,
        hyper={"lam": dist.LogUniform(1e-1, 1e1)},
        fidelity_samples=8,
        num_pilot=4,
        chunk_size=20,
        batch_size=16,
        generator_options={"width": 8, "depth": 1},
    )


@pytest.fixture(scope="module")
def draws():
    return dict(np.load(FIXTURES / "ridge-756df79-draws.npz"))


@pytest.mark.filterwarnings("ignore::wbbgen.training.FidelityWarning")
@pytest.mark.parametrize("how", ["model", "amortized"])
def test_file_from_756df79_loads_and_draws_as_then(draws, how):
    """Loaded from the model alone (settings rebuilt from the file) or against the
    AmortizedWBB, the generator gives the draws it gave when it was saved (40 training steps:
    its fidelity is poor, which the fidelity warning says; only equality matters here)."""
    X, y = draws["X"], draws["y"]
    infer = fixture_infer()
    result = wbbgen.load(SAVED, wbbgen.models.ridge if how == "model" else infer, X, y)
    assert isinstance(result.generator, MLPGenerator) and result.losses.shape == (40,)
    samples = infer.get_samples(jax.random.key(1), result, hyper={"lam": [0.3, 3.0]}, num_samples=5, refine=0)
    np.testing.assert_allclose(np.asarray(samples["beta"]), draws["beta"], rtol=1e-12, atol=0)


def test_file_from_756df79_records_a_class_path_that_resolves():
    header, _ = container.read_container(SAVED)
    assert header["format_version"] == 1
    module, _, name = header["settings"]["generator"].rpartition(".")
    assert (module, name) == ("wbbgen.generator", "MLPGenerator")
    assert getattr(importlib.import_module(module), name) is MLPGenerator
    assert fingerprint.class_name(MLPGenerator) == header["settings"]["generator"]


def test_container_round_trip_and_refusals(tmp_path):
    tree = {"a": np.arange(3.0), "b": (np.zeros((2, 2), np.int32),)}
    path = tmp_path / "x.wbb"
    container.write_atomic(path, container.pack({"kind": "test", "n": 1}, tree))
    header, payload = container.read_container(path)
    assert header == {"kind": "test", "n": 1, "format_version": container.FORMAT_VERSION}
    back = container.unpack_tree(payload, jax.tree_util.tree_map(np.zeros_like, tree), path, "test file")
    np.testing.assert_array_equal(back["a"], tree["a"])
    assert back["b"][0].dtype == np.int32
    assert container.layout(tree) == [["['a']", [3], "float64"], ["['b'][0]", [2, 2], "int32"]]
    like = jax.eval_shape(lambda: tree)  # ShapeDtypeStruct leaves have a layout too
    assert container.layout(like) == container.layout(tree)
    with pytest.raises(container.MismatchError, match=r"\['a'\]: saved \(4,\) float64, expected \(3,\) float64"):
        container.conform(tree, [["['a']", [4], "float64"], ["['b'][0]", [2, 2], "int32"]], path, "test file")
    widened = container.conform(tree, [["['a']", [4], "float64"], ["['b'][0]", [2, 2], "int32"]], path, "t", bool)
    assert widened["a"].shape == (4,)


def test_options_value_is_json_or_text():
    assert fingerprint.options_value({"width": 8, "sizes": (1, 2)}) == {"width": 8, "sizes": [1, 2]}
    # A NumPy scalar is not a JSON value: its repr is kept, as a format-1 file did.
    assert fingerprint.options_value({"width": np.int64(8)}) == "{'width': np.int64(8)}"
    text = fingerprint.options_value({"activation": jax.nn.relu})
    assert isinstance(text, str) and " at 0x" not in text


def test_legacy_settings_read_the_format_1_form_only():
    old = {"weights": "exponential", "generator_options": "{'depth': 1, 'width': 8}"}
    assert fingerprint.legacy_settings(old) == {"weights": "exponential", "generator_options": {"depth": 1, "width": 8}}
    opaque = {"generator_options": "{'activation': <function relu>}"}
    assert fingerprint.legacy_settings(opaque) == opaque
    new = {"generator_options": {"depth": 1}}
    assert fingerprint.legacy_settings(new) == new


def test_distributions_are_rebuilt_from_their_description():
    for d in [dist.LogUniform(0.1, 10.0), dist.Normal(0.0, 2.0), wbbgen.Choice([1.0, 4.0])]:
        desc = fingerprint.describe_distribution(d)
        assert fingerprint.describe_distribution(fingerprint.rebuild_distribution(desc)) == desc
    assert fingerprint.rebuild_distribution({"type": "NoSuchDistribution", "params": {}}) is None
