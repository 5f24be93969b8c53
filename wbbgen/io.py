"""Saving and loading trained generators: ``wbbgen.save(path, result)`` and
``wbbgen.load(path, infer_or_model, *data)``.

:func:`save` writes a :class:`~wbbgen.WBBRunResult` to one file; :func:`load` reads it back
against the model and the data it was trained on and returns a result that
:meth:`AmortizedWBB.get_samples <wbbgen.AmortizedWBB.get_samples>` accepts::

    result = infer.run(jax.random.key(0), X, y, num_steps=5000)
    wbbgen.save("ridge.wbb", result)
    ...
    result = wbbgen.load("ridge.wbb", infer, X, y)     # or load("ridge.wbb", ridge, X, y)
    samples = infer.get_samples(jax.random.key(1), result, hyper={"lam": grid})

The file is the container of :mod:`wbbgen.persist.container` (magic, format version, JSON
header, equinox payload, SHA-256; written atomically). Its payload is ``{"generator": ...,
"losses": (num_steps,)}``, read back against a template built as
:meth:`AmortizedWBB.run <wbbgen.AmortizedWBB.run>` builds the generator.

**Header** (JSON): ``kind="result"``; the wbbgen, JAX, equinox and NumPyro versions; the model
signature (name, latent and observed site shapes, hyperparameter names); the data
fingerprint (:func:`wbbgen.persist.fingerprint.data_fingerprint`); ``settings``, what the
draws depend on besides the arrays (weight and prior schemes, the weight layout, generator
class and options, hyperparameter domains, dtype:
:func:`wbbgen.persist.fingerprint.sampling_settings`); the built-in generator name; the run's
``config``, ``diagnostics`` and ``fidelity``; the layout (path, shape, dtype) of every array.

:func:`load` rebuilds the objective from ``model(*args, **kwargs)`` and refuses, naming the
difference, a model whose signature differs, data whose fingerprint differs, or settings
that differ from the saved ones. Files of format version 1 (generator options as a repr
string) are read too.
"""

from __future__ import annotations

import ast
import datetime
import os
import re
from collections.abc import Mapping

import equinox as eqx
import jax
import numpy as np

from wbbgen import weights as W
from wbbgen._checks import jsonable
from wbbgen.amortized import AmortizedWBB, WBBRunResult
from wbbgen.generator import OutputScale
from wbbgen.hyper import encoded_width
from wbbgen.persist.container import FORMAT_VERSION as FORMAT_VERSION  # importable from here as before
from wbbgen.persist.container import (
    FileFormatError,
    MismatchError,
    conform,
    is_output_scale,
    layout,
    pack,
    read_container,
    unpack_tree,
    write_atomic,
)
from wbbgen.persist.container import assemble as assemble  # importable from here as before
from wbbgen.persist.fingerprint import (
    compare_data,
    compare_dicts,
    data_fingerprint,
    describe_model_difference,
    generator_class,
    generator_kind,
    legacy_settings,
    options_value,
    rebuild_distribution,
    sampling_settings,
    strip_addresses,
    versions,
)
from wbbgen.problem import make_problem

__all__ = ["save", "load", "FileFormatError", "MismatchError"]


def _generator_options(config: Mapping):
    """The generator options of a run, as :func:`~wbbgen.persist.fingerprint.options_value`.

    ``config["generator_options"]`` is a mapping, or ``repr`` of one (what
    :class:`~wbbgen.AmortizedWBB` records for InferenceData attrs): a literal repr is parsed, any
    other is the options' :func:`~wbbgen.persist.fingerprint.normalised_repr`, as
    :func:`~wbbgen.persist.fingerprint.options_value` gives for them."""
    options = config.get("generator_options", {})
    if isinstance(options, Mapping):
        return options_value(options)
    try:
        parsed = ast.literal_eval(options)
    except (ValueError, SyntaxError):
        return strip_addresses(str(options))
    return options_value(parsed) if isinstance(parsed, dict) else strip_addresses(str(options))


def save(path, result) -> None:
    """Save a trained generator (a :class:`~wbbgen.WBBRunResult`) to ``path``, atomically.

    The file holds the generator's arrays and the training losses (equinox serialisation)
    and a JSON header with everything :func:`load` checks (module docstring). The data
    themselves are not saved, only their fingerprint: :func:`load` takes them again.

    Args:
        path: the file to write (a temporary file in its folder is renamed onto it).
        result: what :meth:`AmortizedWBB.run <wbbgen.AmortizedWBB.run>` returned.

    Raises:
        TypeError: ``result`` is not a :class:`~wbbgen.WBBRunResult`.
    """
    if not isinstance(result, WBBRunResult):
        raise TypeError(f"`result` must be the WBBRunResult returned by AmortizedWBB.run, got {type(result).__name__}.")
    problem = result.problem
    objective = problem.objective
    header = {
        "kind": "result",
        **versions(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": objective.signature,
        "data": data_fingerprint(result.model_args, result.model_kwargs),
        "num_params": objective.num_params,
        "num_obs": objective.num_obs,
        "settings": sampling_settings(
            type(result.generator), _generator_options(result.config), problem, result.domains
        ),
        "generator_kind": generator_kind(type(result.generator)),
        "static_args": [n for n in str(result.config.get("static_args", "")).split(",") if n],
        "config": jsonable(result.config),
        "diagnostics": jsonable(result.diagnostics),
        "fidelity": jsonable(result.fidelity) if result.fidelity is not None else None,
        "layout": layout(result.generator),
        "losses": {"length": int(len(result.losses)), "dtype": str(np.asarray(result.losses).dtype)},
    }
    tree = {"generator": result.generator, "losses": np.asarray(result.losses)}
    write_atomic(path, pack(header, tree))


def load(path, infer_or_model, *args, **kwargs) -> WBBRunResult:
    """Load a generator saved by :func:`save`, checking it against the model and the data.

    Args:
        path: the file written by :func:`save`.
        infer_or_model: the :class:`~wbbgen.AmortizedWBB` configured as for training, or the
            model itself (a NumPyro model or :class:`~wbbgen.FunctionModel`), in which case
            the settings are rebuilt from the file. Pass the AmortizedWBB when training used
            a custom weight scheme (a block scheme other than ``weights="block"``'s shuffle
            of exponential weights included), a generator class of your own, generator
            options that are not JSON values (an activation function), ``obs_plate=``, or a
            hyperparameter distribution that cannot be rebuilt from its name and parameters
            (the error says which).
        *args, **kwargs: the data the generator was trained on, exactly as passed to
            :meth:`AmortizedWBB.run <wbbgen.AmortizedWBB.run>` (same positions, same keywords).

    Returns:
        a :class:`~wbbgen.WBBRunResult` for ``AmortizedWBB(model, hyper=...).get_samples``
        (``fidelity``, ``diagnostics``, ``config`` and ``losses`` as saved): the same key
        gives the same draws as the result that was saved.

    Raises:
        FileFormatError: not a saved generator (e.g. a checkpoint), truncated, corrupt, or
            of a newer format.
        MismatchError: the model signature, the data or the settings differ (named).
        ValueError: a bare model was given and the file's settings cannot be rebuilt (named).
    """
    header, payload = read_container(path, "saved generator")
    if header.get("kind") != "result":
        raise FileFormatError(
            f"{os.fspath(path)!r} is a {header.get('kind', 'unknown')} file, not a saved generator; "
            "resume a checkpoint with AmortizedWBB.run(..., checkpoint_dir=..., resume=True)."
        )
    if header["format_version"] == 1:
        header["settings"] = legacy_settings(header["settings"])
    if isinstance(infer_or_model, AmortizedWBB):
        infer = infer_or_model
    else:
        infer = _rebuild_infer(infer_or_model, header, path)
    problem = make_problem(
        infer.model,
        args,
        kwargs,
        infer.hyper_names,
        infer.weights,
        infer.prior_weight,
        infer.obs_plate,
        static_args=infer.static_args,
    )
    objective = problem.objective
    where = f"saved generator {os.fspath(path)!r}"

    diff = describe_model_difference(header["model"], objective.signature)
    if diff:
        raise MismatchError(f"{where} was trained on another model: {diff}.")
    diff = compare_data(header["data"], data_fingerprint(args, kwargs))
    if diff:
        raise MismatchError(
            f"{where} was trained on other data: {diff}. Pass the arrays it was trained on "
            "(the objective, the observed data and the weight layout depend on them)."
        )
    current = sampling_settings(generator_class(infer.generator), infer.generator_options, problem, infer.domains)
    diffs = compare_dicts(header["settings"], current)
    if diffs:
        raise MismatchError(f"{where} was trained with other settings: " + "; ".join(diffs) + ".")

    dtype = objective.init_params.dtype
    scale_like = OutputScale.identity(objective.num_params, encoded_width(infer.domains), dtype)
    template = eqx.filter_eval_shape(lambda: infer.build_generator(problem, scale_like, jax.random.key(0)))
    template = conform(template, header["layout"], path, "saved generator", is_output_scale)
    losses_like = np.zeros(header["losses"]["length"], header["losses"]["dtype"])
    tree = unpack_tree(payload, {"generator": template, "losses": losses_like}, path, "saved generator")
    fidelity = header["fidelity"]
    if fidelity is not None:
        fidelity = {k: np.asarray(v) for k, v in fidelity.items()}
    return WBBRunResult(
        tree["generator"],
        tree["losses"],
        fidelity,
        dict(header["diagnostics"]),
        problem,
        infer.domains,
        tuple(args),
        dict(kwargs),
        dict(header["config"]),
    )


_BUILTIN_WEIGHTS = re.compile(r"^(exponential|dirichlet|multinomial|double_bootstrap\((?P<scale>[^)]*)\))$")
_BLOCK_WEIGHTS = re.compile(r"^block\((?P<blocks>\d+), exponential\)$")


def _weights_from_name(name: str):
    """The ``weights=`` argument that rebuilds a built-in scheme from its name, or None.

    ``block(S, exponential)`` is rebuilt with ``weights="block"``'s shuffle; a block scheme
    shuffled with another key then fails the saved ``weights_layout`` check."""
    block = _BLOCK_WEIGHTS.match(name)
    if block:
        blocks = int(block.group("blocks"))
        return lambda n: W.block(n, blocks, rng_key=jax.random.key(W.DEFAULT_BLOCK_SEED))
    match = _BUILTIN_WEIGHTS.match(name)
    if not match:
        return None
    if match.group("scale") is not None:
        scale = float(match.group("scale"))
        return lambda n: W.double_bootstrap(n, scale)
    return name


def _rebuild_infer(model, header: Mapping, path) -> AmortizedWBB:
    """An AmortizedWBB with the saved settings, when they can be rebuilt from the file."""
    s = header["settings"]
    missing, hyper = [], {}
    for d in s["hyper"]:
        distribution = rebuild_distribution(d["distribution"])
        if distribution is None:
            missing.append(f"the distribution {d['distribution']['repr']} of {d['name']!r}")
        hyper[d["name"]] = distribution
    weights = _weights_from_name(s["weights"])
    if weights is None:
        missing.append(f"the weight scheme {s['weights']!r}")
    kind = header.get("generator_kind")
    if kind is None:
        missing.append(f"the generator class {s['generator']}")
    options = s["generator_options"]
    if not isinstance(options, dict):
        missing.append(f"the generator options {options}")
    if missing:
        raise ValueError(
            f"saved generator {os.fspath(path)!r} cannot be rebuilt from the model alone: "
            + ", ".join(missing)
            + " cannot be restored from the file. Pass the AmortizedWBB configured as for training: "
            "wbbgen.load(path, AmortizedWBB(model, hyper=..., ...), *data)."
        )
    return AmortizedWBB(
        model,
        hyper=hyper,
        weights=weights,
        prior_weight=s["prior_weight"],
        generator=kind,
        generator_options=options,
        static_args=header.get("static_args", ()),
    )
