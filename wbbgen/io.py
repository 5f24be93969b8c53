"""Saving and loading trained generators, and the file container they share with checkpoints.

:func:`save` writes a :class:`~wbbgen.WBBRunResult` to one file; :func:`load` reads it back
against the model and the data it was trained on and returns a result that
:meth:`AmortizedWBB.get_samples <wbbgen.AmortizedWBB.get_samples>` accepts::

    result = infer.run(jax.random.key(0), X, y, num_steps=5000)
    wbbgen.io.save("ridge.wbb", result)
    ...
    result = wbbgen.io.load("ridge.wbb", infer, X, y)     # or load("ridge.wbb", ridge, X, y)
    samples = infer.get_samples(jax.random.key(1), result, hyper={"lam": grid})

**File layout** (one container for saved results and for training checkpoints,
:mod:`wbbgen.checkpoint`)::

    8 bytes   magic  b"\\x89WBBGEN\\n"
    4 bytes   format version (little-endian uint32)
    8 bytes   header length h (uint64), then h bytes of UTF-8 JSON (the metadata)
    8 bytes   payload length p (uint64), then p bytes: equinox ``tree_serialise_leaves``
    32 bytes  SHA-256 of everything before it

The arrays are written by equinox (one ``np.save`` per leaf, read back against a template
built exactly as :meth:`AmortizedWBB.run` builds the generator); there is no wbbgen array
format. The format version sits before the header so that a file from a newer wbbgen is
named as such before anything else is parsed; the checksum turns a truncated or damaged
file into a clear :class:`FileFormatError` instead of a numpy or JSON error. Files are
written atomically: to a temporary file in the same folder, flushed and ``fsync``-ed, then
``os.replace``-d onto the target name, so a reader sees the old file or the new one, never
half of one.

**Metadata** (the JSON header of a saved result): wbbgen, JAX, equinox and NumPyro versions;
the model signature (name, latent and observed site shapes, hyperparameter names); a
fingerprint of the training data (SHA-256 per array of dtype, shape and bytes; the repr of
plain Python scalars); the hyperparameter domains (name, distribution and its parameters,
training support, encoding); the weight and prior scheme names; the generator kind and
options; the run's ``config``, ``diagnostics`` and ``fidelity``; the layout (shape, dtype)
of every saved array.

:func:`load` rebuilds the objective from ``model(*args, **kwargs)`` and refuses, naming the
difference, a model whose signature differs, data whose fingerprint differs, or (when given
an :class:`~wbbgen.AmortizedWBB`) settings that differ from the saved ones.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import struct
import tempfile
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "save",
    "load",
    "FileFormatError",
    "MismatchError",
    "FORMAT_VERSION",
    "data_fingerprint",
]

#: Version of the container and header layout. A reader refuses a file of a higher version.
FORMAT_VERSION = 1
MAGIC = b"\x89WBBGEN\n"
_PREAMBLE = struct.Struct("<IQ")  # format version, header length
_LENGTH = struct.Struct("<Q")
_DIGEST = 32


class FileFormatError(ValueError):
    """A wbbgen file is not one, is truncated or corrupt, holds something else (a
    checkpoint where a result was expected, or the reverse), or was written by a newer
    wbbgen."""


class MismatchError(ValueError):
    """A saved generator or checkpoint does not belong to this model, data or settings."""


# --------------------------------------------------------------------------------------
# the container


def wbbgen_version() -> str:
    from wbbgen import __version__

    return __version__


def parse_version(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: ``"0.10.2rc1" -> (0, 10, 2)``."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", str(text))
    if not match:
        return (0,)
    parts = tuple(int(p) for p in match.group(1).split("."))
    return parts + (0,) * (3 - len(parts)) if len(parts) < 3 else parts


def pack(header: Mapping, tree: Any) -> bytes:
    """Serialise ``header`` (JSON) and ``tree`` (equinox leaves) into the container bytes."""
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    return assemble(header, buf.getvalue())


def assemble(header: Mapping, payload: bytes, *, format_version: int = FORMAT_VERSION) -> bytes:
    """The container bytes of a JSON ``header`` and serialised ``payload``."""
    header = {k: v for k, v in header.items() if k != "format_version"}  # it lives in the preamble
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    body = b"".join([MAGIC, _PREAMBLE.pack(int(format_version), len(head)), head, _LENGTH.pack(len(payload)), payload])
    return body + hashlib.sha256(body).digest()


def write_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, flush,
    fsync, ``os.replace``, then fsync the folder so the rename itself is durable."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):  # POSIX: make the rename durable
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_container(path, what: str = "wbbgen file") -> tuple[dict, bytes]:
    """Read and verify a container: returns ``(header, payload)``.

    Raises :class:`FileFormatError` naming the problem: not a wbbgen file, a newer format,
    truncated (with the byte counts), or a checksum mismatch (corrupt).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    size = len(raw)
    if not raw.startswith(MAGIC):
        if MAGIC.startswith(raw):
            raise FileFormatError(f"{what} {path!r} is truncated: {size} bytes, shorter than its magic number.")
        raise FileFormatError(
            f"{path!r} is not a {what}: it does not start with wbbgen's magic number "
            "(files are written by wbbgen.io.save or AmortizedWBB.run(checkpoint_dir=...))."
        )
    pos = len(MAGIC)
    if size < pos + _PREAMBLE.size:
        raise FileFormatError(
            f"{what} {path!r} is truncated: {size} bytes, the preamble alone needs {pos + _PREAMBLE.size}."
        )
    fmt, head_len = _PREAMBLE.unpack_from(raw, pos)
    if fmt > FORMAT_VERSION:
        raise FileFormatError(
            f"{what} {path!r} has format version {fmt}, written by a newer wbbgen; this wbbgen "
            f"({wbbgen_version()}) reads format versions up to {FORMAT_VERSION}. Upgrade wbbgen to read it."
        )
    pos += _PREAMBLE.size
    need = pos + head_len + _LENGTH.size
    if size < need:
        raise FileFormatError(
            f"{what} {path!r} is truncated: {size} bytes, but its header alone announces {need} "
            "(the file was cut short after wbbgen wrote it: an interrupted copy or a full disk)."
        )
    head = raw[pos : pos + head_len]
    pos += head_len
    (payload_len,) = _LENGTH.unpack_from(raw, pos)
    pos += _LENGTH.size
    total = pos + payload_len + _DIGEST
    if size < total:
        raise FileFormatError(
            f"{what} {path!r} is truncated: {size} bytes, its header announces {total} "
            "(the file was cut short after wbbgen wrote it: an interrupted copy or a full disk)."
        )
    if size > total:
        raise FileFormatError(f"{what} {path!r} is corrupt: {size - total} unexpected bytes after its end.")
    if hashlib.sha256(raw[: total - _DIGEST]).digest() != raw[total - _DIGEST :]:
        raise FileFormatError(
            f"{what} {path!r} is corrupt: its SHA-256 checksum does not match its contents "
            "(the bytes changed after wbbgen wrote them)."
        )
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:  # pragma: no cover - checksum catches this
        raise FileFormatError(f"{what} {path!r} is corrupt: its header is not valid JSON ({err}).") from None
    header["format_version"] = fmt
    return header, raw[pos : pos + payload_len]


def unpack_tree(payload: bytes, template: Any, path, what: str) -> Any:
    """Deserialise the payload against ``template`` (same structure, shapes and dtypes)."""
    try:
        return eqx.tree_deserialise_leaves(io.BytesIO(payload), template)
    except (RuntimeError, ValueError, EOFError, OSError) as err:
        raise FileFormatError(
            f"{what} {os.fspath(path)!r} does not hold the arrays this call expects ({err}); "
            "it was written for another generator or training state."
        ) from None


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


def layout(tree) -> list[list]:
    """``[[path, shape, dtype], ...]`` of the array leaves of ``tree`` (what the payload holds)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [[jax.tree_util.keystr(p), list(x.shape), str(x.dtype)] for p, x in flat if _is_array(x)]


def conform(template, saved: list, path, what: str, flexible=lambda name: False):
    """``template`` with the saved shapes and dtypes at the leaves where ``flexible(path)``
    holds (the pilot's output scale, whose shapes depend on the pilot), after checking that
    every other array leaf has the saved path, shape and dtype. Raises
    :class:`MismatchError` naming the first difference."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    arrays = [i for i, (_, x) in enumerate(flat) if _is_array(x)]

    def fail(detail):
        raise MismatchError(
            f"{what} {os.fspath(path)!r} holds arrays of another layout than this call builds ({detail}); "
            "the generator kind or options, the optimizer, the dtype (x64 on/off), the model's size or "
            "the wbbgen version differ."
        )

    if len(arrays) != len(saved):
        fail(f"{len(saved)} arrays saved, {len(arrays)} expected")
    leaves = [x for _, x in flat]
    for i, (name, shape, dtype) in zip(arrays, saved, strict=True):
        p, x = flat[i]
        here = jax.tree_util.keystr(p)
        if here != name:
            fail(f"saved array {name}, expected {here}")
        same = str(x.dtype) == dtype and list(x.shape) == list(shape)
        if not same and not flexible(name):
            fail(f"{name}: saved {tuple(shape)} {dtype}, expected {tuple(x.shape)} {x.dtype}")
        if not same:
            leaves[i] = jax.ShapeDtypeStruct(tuple(shape), dtype)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def is_output_scale(name: str) -> bool:
    return ".output_scale" in name


# --------------------------------------------------------------------------------------
# what identifies a run: data fingerprint, settings


def _leaf_bytes(x) -> tuple[str, tuple, bytes]:
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    a = np.ascontiguousarray(np.asarray(x))
    return str(a.dtype), tuple(a.shape), a.tobytes()


def data_fingerprint(args, kwargs) -> dict:
    """SHA-256 fingerprint of the model's data arguments.

    Arrays (NumPy, JAX, NumPy scalars) contribute their dtype, shape and bytes; plain Python
    scalars and strings their ``repr``; anything else only its type name (a function's
    repr holds a memory address). Returns ``{"sha256": ..., "leaves": [per argument]}``,
    so a mismatch can be named (:func:`compare_data`).
    """
    flat, _ = jax.tree_util.tree_flatten_with_path((tuple(args), dict(kwargs)))
    leaves, total = [], hashlib.sha256()
    for path, x in flat:
        name = _path_name(path)
        if isinstance(x, (np.ndarray, np.generic, jax.Array)):
            dtype, shape, data = _leaf_bytes(x)
            entry = {"path": name, "dtype": dtype, "shape": list(shape), "sha256": hashlib.sha256(data).hexdigest()}
        elif x is None or isinstance(x, (bool, int, float, complex, str)):
            entry = {"path": name, "value": repr(x)}
        else:
            entry = {"path": name, "type": f"{type(x).__module__}.{type(x).__qualname__}"}
        leaves.append(entry)
        total.update(json.dumps(entry, sort_keys=True).encode())
    return {"sha256": total.hexdigest(), "leaves": leaves}


def _path_name(path) -> str:
    (top, *rest) = path
    head = "args" if getattr(top, "idx", None) == 0 else "kwargs"
    return head + jax.tree_util.keystr(tuple(rest))


def compare_data(saved: Mapping, current: Mapping) -> str | None:
    """None when the fingerprints agree, else a description of the first differences."""
    if saved["sha256"] == current["sha256"]:
        return None
    a = {x["path"]: x for x in saved["leaves"]}
    b = {x["path"]: x for x in current["leaves"]}
    diffs = []
    for name in list(a) + [k for k in b if k not in a]:
        if name not in b:
            diffs.append(f"{name} was given when saving, not now")
        elif name not in a:
            diffs.append(f"{name} is given now, not when saving")
        elif a[name] != b[name]:
            x, y = a[name], b[name]
            if "shape" in x and "shape" in y and (x["shape"] != y["shape"] or x["dtype"] != y["dtype"]):
                diffs.append(f"{name}: saved {tuple(x['shape'])} {x['dtype']}, now {tuple(y['shape'])} {y['dtype']}")
            elif "sha256" in x and "sha256" in y:
                diffs.append(f"{name}: same shape {tuple(x['shape'])} and dtype, different values")
            else:
                diffs.append(f"{name}: saved {_short(x)}, now {_short(y)}")
    return "; ".join(diffs[:5]) or "the arguments are arranged differently"


def _short(entry):
    return entry.get("value") or entry.get("type") or f"array {tuple(entry['shape'])} {entry['dtype']}"


def normalised_repr(x) -> str:
    """``repr`` without memory addresses (they differ from process to process)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(x))


def describe_distribution(d) -> dict:
    """A JSON description of a NumPyro distribution (type, parameters, base distribution) or
    of a :class:`wbbgen.hyper.Choice` (its values)."""
    from wbbgen.hyper import Choice

    if isinstance(d, Choice):
        return {"type": "Choice", "params": {"values": list(d.values)}, "repr": repr(d)}
    params = {}
    for k in getattr(d, "arg_constraints", {}) or {}:
        try:
            value = np.asarray(getattr(d, k), dtype=np.float64)
        except (AttributeError, TypeError, ValueError):
            continue
        params[k] = value.tolist()
    out = {"type": type(d).__name__, "params": params}
    base = getattr(d, "base_dist", None)
    if base is not None:
        out["base_dist"] = describe_distribution(base)
    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
    out["repr"] = f"{type(d).__name__}({shown})"
    return out


def _fmt(v):
    return f"{v:g}" if isinstance(v, float) else str(v)


def rebuild_distribution(desc: Mapping):
    """Rebuild a distribution from :func:`describe_distribution`'s output, or None."""
    import numpyro.distributions as dist

    from wbbgen.hyper import Choice

    if desc.get("type") == "Choice":
        return Choice(desc["params"]["values"])
    cls = getattr(dist, desc.get("type", ""), None)
    if cls is None:
        return None
    params = {k: (float(v) if not isinstance(v, list) else jnp.asarray(v)) for k, v in desc["params"].items()}
    attempts = [lambda: cls(**params)]
    if "base_dist" in desc:
        attempts.append(lambda: cls(rebuild_distribution(desc["base_dist"]), **params))
    for attempt in attempts:
        try:
            d = attempt()
        except Exception:  # noqa: BLE001 - any failure means "cannot rebuild from the name"
            continue
        if describe_distribution(d) == dict(desc):
            return d
    return None


def describe_domains(domains) -> list[dict]:
    return [
        {
            "name": d.name,
            "distribution": describe_distribution(d.distribution),
            "log_scale": bool(d.log_scale),
            "center": float(d.center),
            "half_width": float(d.half_width),
            "low": float(d.low),
            "high": float(d.high),
            "choices": None if getattr(d, "choices", None) is None else list(d.choices),
        }
        for d in domains
    ]


def generator_class(generator) -> type:
    """The generator class ``AmortizedWBB(generator=...)`` builds (a name or a class)."""
    from wbbgen.generator import GENERATORS

    return GENERATORS.get(generator, generator) if isinstance(generator, str) else generator


def _class_name(cls) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', repr(cls))}"


def _generator_kind(cls) -> str | None:
    """The built-in name of a generator class, None for a user's class."""
    from wbbgen.generator import GENERATORS

    return next((name for name, c in GENERATORS.items() if c is cls), None)


def weights_layout(scheme) -> str:
    """SHA-256 of ``expand(0, 1, …, num_weights − 1)``: which observation gets which weight
    (it tells two block schemes with different shuffles apart)."""
    idx = scheme.expand(jnp.arange(scheme.num_weights, dtype=jnp.result_type(float)))
    return hashlib.sha256(np.ascontiguousarray(np.asarray(idx, np.float64)).tobytes()).hexdigest()


def sampling_settings(generator_cls, generator_options_repr: str, problem, domains) -> dict:
    """What a trained generator's draws depend on besides its arrays (JSON)."""
    return {
        "weights": problem.weights.name,
        "weights_layout": weights_layout(problem.weights),
        "prior_weight": problem.prior.name,
        "generator": _class_name(generator_cls),
        "generator_options": _options_repr(generator_options_repr),
        "hyper": describe_domains(domains),
        "dtype": str(problem.objective.init_params.dtype),
    }


def _options_repr(text: str) -> str:
    """Generator options as a canonical string: sorted keys when they are literals, the
    repr without memory addresses otherwise."""
    import ast

    try:
        options = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return re.sub(r" at 0x[0-9a-fA-F]+", "", text)
    return repr(dict(sorted(options.items()))) if isinstance(options, dict) else repr(options)


def describe_settings(infer, problem) -> dict:
    """The settings of an :class:`~wbbgen.AmortizedWBB` that a training checkpoint depends
    on (JSON; memory addresses stripped). A custom optimizer is recorded by its repr,
    which does not show its learning rate: the state layout is checked instead."""
    return {
        **sampling_settings(generator_class(infer.generator), repr(infer.generator_options), problem, infer.domains),
        "mode": infer.mode,
        "optimizer": "default" if infer.optimizer is None else normalised_repr(infer.optimizer),
        "batch_size": infer.batch_size,
        "num_targets": infer.num_targets if infer.mode == "supervised" else None,
        "num_pilot": infer.num_pilot,
        "on_nonfinite": infer.on_nonfinite,
        "obs_plate": infer.obs_plate,
    } | {  # recorded only when set, so checkpoints written before they were recorded still resume
        k: v for k, v in (("data_batch_size", infer.data_batch_size), ("cv_folds", infer.cv_folds)) if v is not None
    }


def compare_dicts(saved: Mapping, current: Mapping, keys=None) -> list[str]:
    """``["key: saved X, now Y", ...]`` for the keys whose values differ."""
    keys = list(keys) if keys is not None else sorted(set(saved) | set(current))
    out = []
    for k in keys:
        a, b = saved.get(k, "<absent>"), current.get(k, "<absent>")
        if a != b:
            out.append(f"{k}: saved {_brief(a)}, now {_brief(b)}")
    return out


def _brief(x, limit=160):
    text = json.dumps(x, sort_keys=True) if not isinstance(x, str) else repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_model_difference(saved: Mapping, current: Mapping) -> str | None:
    """None when two model signatures agree, else which entries differ."""
    if json.loads(json.dumps(saved)) == json.loads(json.dumps(current)):
        return None
    saved, current = json.loads(json.dumps(saved)), json.loads(json.dumps(current))
    diffs = []
    for k in sorted(set(saved) | set(current)):
        a, b = saved.get(k), current.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            for site in sorted(set(a) | set(b)):
                if a.get(site) != b.get(site):
                    diffs.append(f"{k} site {site!r}: saved {a.get(site, 'absent')}, now {b.get(site, 'absent')}")
        elif a != b:
            diffs.append(f"{k}: saved {a!r}, now {b!r}")
    return "; ".join(diffs)


def key_fingerprint(rng_key) -> str:
    return hashlib.sha256(np.asarray(jax.random.key_data(rng_key)).tobytes()).hexdigest()


def _jsonable(x):
    """numpy scalars/arrays -> Python floats/lists (for diagnostics and fidelity)."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        a = np.asarray(x)
        return a.tolist() if a.ndim else a.item()
    return x  # json writes NaN/Infinity as such, and json.loads reads them back


def versions() -> dict:
    import numpyro

    return {
        "wbbgen": wbbgen_version(),
        "jax": jax.__version__,
        "equinox": eqx.__version__,
        "numpyro": numpyro.__version__,
    }


# --------------------------------------------------------------------------------------
# saved results


def save(path, result) -> None:
    """Save a trained generator (a :class:`~wbbgen.WBBRunResult`) to ``path``, atomically.

    The file holds the generator's arrays and the training losses (equinox serialisation)
    and a JSON header with everything :func:`load` checks (module docstring). The data
    themselves are not saved, only their fingerprint: :func:`load` takes them again.
    """
    from wbbgen.amortized import WBBRunResult

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
            type(result.generator), result.config.get("generator_options", "{}"), problem, result.domains
        ),
        "generator_kind": _generator_kind(type(result.generator)),
        "config": _jsonable(result.config),
        "diagnostics": _jsonable(result.diagnostics),
        "fidelity": _jsonable(result.fidelity) if result.fidelity is not None else None,
        "layout": layout(result.generator),
        "losses": {"length": int(len(result.losses)), "dtype": str(np.asarray(result.losses).dtype)},
    }
    tree = {"generator": result.generator, "losses": np.asarray(result.losses)}
    write_atomic(path, pack(header, tree))


def load(path, model, *args, **kwargs):
    """Load a generator saved by :func:`save`, checking it against the model and the data.

    Args:
        path: the file written by :func:`save`.
        model: the :class:`~wbbgen.AmortizedWBB` configured as for training, or the model
            itself (a NumPyro model or :class:`~wbbgen.FunctionModel`), in which case the
            settings are rebuilt from the file. Pass the AmortizedWBB when training used a
            custom weight scheme (a block scheme other than ``weights="block"``'s shuffle of
            exponential weights included), a generator class of your own, generator options
            that are not literals (an activation function), ``obs_plate=``, or a
            hyperparameter distribution that cannot be rebuilt from its name and
            parameters (the error says which).
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
    """
    from wbbgen.amortized import AmortizedWBB, WBBRunResult
    from wbbgen.generator import OutputScale
    from wbbgen.problem import make_problem

    header, payload = read_container(path, "saved generator")
    if header.get("kind") != "result":
        raise FileFormatError(
            f"{os.fspath(path)!r} is a {header.get('kind', 'unknown')} file, not a saved generator; "
            "resume a checkpoint with AmortizedWBB.run(..., checkpoint_dir=..., resume=True)."
        )
    infer = model if isinstance(model, AmortizedWBB) else _rebuild_infer(model, header, path)
    problem = make_problem(
        infer.model, args, kwargs, infer.hyper_names, infer.weights, infer.prior_weight, infer.obs_plate
    )
    objective = problem.objective

    diff = describe_model_difference(header["model"], objective.signature)
    if diff:
        raise MismatchError(f"saved generator {os.fspath(path)!r} was trained on another model: {diff}.")
    diff = compare_data(header["data"], data_fingerprint(args, kwargs))
    if diff:
        raise MismatchError(
            f"saved generator {os.fspath(path)!r} was trained on other data: {diff}. Pass the arrays "
            "it was trained on (the objective, the observed data and the weight layout depend on them)."
        )
    cls = generator_class(infer.generator)
    current = sampling_settings(cls, repr(infer.generator_options), problem, infer.domains)
    diffs = compare_dicts(header["settings"], current)
    if diffs:
        raise MismatchError(
            f"saved generator {os.fspath(path)!r} was trained with other settings: " + "; ".join(diffs) + "."
        )

    scale_like = OutputScale.identity(objective.num_params, len(infer.domains), objective.init_params.dtype)
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

    ``block(S, exponential)`` is rebuilt with ``weights="block"``'s shuffle (key 0); a
    block scheme shuffled with another key then fails the saved ``weights_layout`` check."""
    import jax

    from wbbgen import weights as W

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


def _rebuild_infer(model, header: Mapping, path):
    """An AmortizedWBB with the saved settings, when they can be rebuilt from the file."""
    import ast

    from wbbgen.amortized import AmortizedWBB

    s = header["settings"]
    missing, hyper = [], {}
    for d in s["hyper"]:
        dist = rebuild_distribution(d["distribution"])
        if dist is None:
            missing.append(f"the distribution {d['distribution']['repr']} of {d['name']!r}")
        hyper[d["name"]] = dist
    weights = _weights_from_name(s["weights"])
    if weights is None:
        missing.append(f"the weight scheme {s['weights']!r}")
    kind = header.get("generator_kind")
    if kind is None:
        missing.append(f"the generator class {s['generator']}")
    try:
        options = ast.literal_eval(s["generator_options"])
    except (ValueError, SyntaxError):
        options = None
        missing.append(f"the generator options {s['generator_options']}")
    if missing:
        raise ValueError(
            f"saved generator {os.fspath(path)!r} cannot be rebuilt from the model alone: "
            + ", ".join(missing)
            + " cannot be restored from the file. Pass the AmortizedWBB configured as for training: "
            "wbbgen.io.load(path, AmortizedWBB(model, hyper=..., ...), *data)."
        )
    return AmortizedWBB(
        model, hyper=hyper, weights=weights, prior_weight=s["prior_weight"], generator=kind, generator_options=options
    )
