"""What identifies a trained generator or a training run, as JSON: the data, the model
signature, the hyperparameter domains, the settings, the key; and the comparisons that name
a difference.

* **Data**: per argument leaf, the SHA-256 of (dtype, shape, bytes) of an array, the ``repr``
  of a plain scalar or string, the type name of anything else (:func:`data_fingerprint`).
* **Weights**: the scheme's name and :func:`weights_layout`, the SHA-256 of
  ``expand(0, 1, …, S − 1)`` (which observation gets which of the S weights).
* **Distributions**: type, parameters (as float64 lists) and base distribution
  (:func:`describe_distribution`); :func:`rebuild_distribution` inverts it when it can.
* **Settings** (:func:`sampling_settings`, :func:`describe_settings`): JSON values; generator
  options by :func:`options_value`. Files of format version 1 recorded the options as a repr
  string: :func:`legacy_settings` reads that form.

Example:
    >>> import numpy as np
    >>> from wbbgen.persist.fingerprint import compare_data, data_fingerprint
    >>> a = data_fingerprint((np.zeros(3), 2.0), {})
    >>> [leaf.get("value", leaf.get("shape")) for leaf in a["leaves"]]
    [[3], '2.0']
    >>> compare_data(a, data_fingerprint((np.ones(3), 2.0), {}))
    'args[0]: same shape (3,) and dtype, different values'
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from wbbgen._checks import is_array
from wbbgen.generator import GENERATORS
from wbbgen.hyper import Choice
from wbbgen.persist.container import wbbgen_version

__all__ = [
    "versions",
    "data_fingerprint",
    "compare_data",
    "key_fingerprint",
    "weights_layout",
    "strip_addresses",
    "normalised_repr",
    "options_value",
    "legacy_settings",
    "describe_distribution",
    "rebuild_distribution",
    "describe_domains",
    "generator_class",
    "class_name",
    "generator_kind",
    "sampling_settings",
    "describe_settings",
    "same_json",
    "compare_dicts",
    "describe_model_difference",
]

# Floats recorded in settings (a LogUniform's log-bounds, a domain's centre) are computed by
# jax.numpy, whose last bits differ across jax versions: 2.302585092994046 then
# 2.3025850929940455 for log(10). Settings agree when their floats agree to these tolerances.
REL_TOL = 1e-9
ABS_TOL = 1e-12


def same_json(a, b) -> bool:
    """Whether two JSON values agree, floats within ``REL_TOL``/``ABS_TOL`` (see above).

    >>> from wbbgen.persist.fingerprint import same_json
    >>> same_json({"x": [2.302585092994046]}, {"x": [2.3025850929940455]})
    True
    >>> same_json({"x": 1.0}, {"x": 1.001})
    False
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def versions() -> dict:
    """The wbbgen, JAX, equinox and NumPyro versions (recorded in every file)."""
    return {
        "wbbgen": wbbgen_version(),
        "jax": jax.__version__,
        "equinox": eqx.__version__,
        "numpyro": numpyro.__version__,
    }


# --------------------------------------------------------------------------------------
# data and keys


def _leaf_bytes(x) -> tuple[str, tuple, bytes]:
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    a = np.ascontiguousarray(np.asarray(x))
    return str(a.dtype), tuple(a.shape), a.tobytes()


def _path_name(path) -> str:
    (top, *rest) = path
    head = "args" if getattr(top, "idx", None) == 0 else "kwargs"
    return head + jax.tree_util.keystr(tuple(rest))


def data_fingerprint(args, kwargs) -> dict:
    """SHA-256 fingerprint of the model's data arguments.

    Arrays (NumPy, JAX, NumPy scalars) contribute their dtype, shape and bytes; plain Python
    scalars and strings their ``repr``; anything else only its type name (a function's repr
    holds a memory address). Returns ``{"sha256": ..., "leaves": [one entry per leaf]}``, so
    that a mismatch can be named (:func:`compare_data`).
    """
    flat, _ = jax.tree_util.tree_flatten_with_path((tuple(args), dict(kwargs)))
    leaves, total = [], hashlib.sha256()
    for path, x in flat:
        name = _path_name(path)
        if is_array(x):
            dtype, shape, data = _leaf_bytes(x)
            entry = {"path": name, "dtype": dtype, "shape": list(shape), "sha256": hashlib.sha256(data).hexdigest()}
        elif x is None or isinstance(x, (bool, int, float, complex, str)):
            entry = {"path": name, "value": repr(x)}
        else:
            entry = {"path": name, "type": f"{type(x).__module__}.{type(x).__qualname__}"}
        leaves.append(entry)
        total.update(json.dumps(entry, sort_keys=True).encode())
    return {"sha256": total.hexdigest(), "leaves": leaves}


def _short(entry) -> str:
    return entry.get("value") or entry.get("type") or f"array {tuple(entry['shape'])} {entry['dtype']}"


def compare_data(saved: Mapping, current: Mapping) -> str | None:
    """None when two :func:`data_fingerprint` s agree, else the first (up to five) differences."""
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


def key_fingerprint(rng_key) -> str:
    """SHA-256 of a PRNG key's data (a checkpoint records its run's key this way)."""
    return hashlib.sha256(np.asarray(jax.random.key_data(rng_key)).tobytes()).hexdigest()


def weights_layout(scheme) -> str:
    """SHA-256 of ``expand(0, 1, …, num_weights − 1)`` in float64: which observation gets
    which weight (it tells two block schemes with different shuffles apart)."""
    idx = scheme.expand(jnp.arange(scheme.num_weights, dtype=jnp.result_type(float)))
    return hashlib.sha256(np.ascontiguousarray(np.asarray(idx, np.float64)).tobytes()).hexdigest()


# --------------------------------------------------------------------------------------
# option values


def strip_addresses(text: str) -> str:
    """``text`` without the memory addresses of reprs (they differ from process to process)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def normalised_repr(x) -> str:
    """``repr(x)`` without memory addresses."""
    return strip_addresses(repr(x))


def _is_json(x) -> bool:
    if x is None or type(x) in (bool, int, float, str):  # exact types: np.float64 is a float
        return True
    if type(x) in (list, tuple):
        return all(_is_json(v) for v in x)
    if type(x) is dict:
        return all(type(k) is str and _is_json(v) for k, v in x.items())
    return False


def _to_json(x):
    if isinstance(x, (list, tuple)):
        return [_to_json(v) for v in x]
    if isinstance(x, dict):
        return {k: _to_json(v) for k, v in x.items()}
    return x


def options_value(options: Mapping) -> dict | str:
    """Generator options as a settings value: a JSON object when every value is built of
    Python scalars, strings, lists, tuples and dicts (tuples become lists); otherwise (a
    function, a NumPy scalar) ``normalised_repr`` of the dict, compared as text and not
    rebuilt from a file.

    >>> from wbbgen.persist.fingerprint import options_value
    >>> options_value({"width": 8, "depth": 1})
    {'width': 8, 'depth': 1}
    >>> options_value({"activation": print})
    "{'activation': <built-in function print>}"
    """
    options = dict(options)
    return _to_json(options) if _is_json(options) else normalised_repr(options)


def legacy_settings(settings: Mapping) -> dict:
    """Settings as a file of format version 1 records them, in today's form.

    Format 1 stored the generator options as one string, the repr of the options dict with
    sorted keys when it was a literal, and the repr without memory addresses otherwise. A
    literal string becomes :func:`options_value` of its dict; any other string stays as it
    is, which is what :func:`options_value` gives for the same non-JSON options.

    >>> from wbbgen.persist.fingerprint import legacy_settings
    >>> legacy_settings({"generator_options": "{'depth': 1, 'width': 8}"})
    {'generator_options': {'depth': 1, 'width': 8}}
    """
    out = dict(settings)
    text = out.get("generator_options")
    if isinstance(text, str):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, dict):
            out["generator_options"] = options_value(parsed)
    return out


# --------------------------------------------------------------------------------------
# distributions, domains, generator classes


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def describe_distribution(d) -> dict:
    """A JSON description of a NumPyro distribution (``type``, ``params`` as float64 lists,
    ``base_dist``, a short ``repr``) or of a :class:`wbbgen.hyper.Choice` (its values)."""
    if isinstance(d, Choice):
        return {"type": "Choice", "params": {"values": list(d.values)}, "repr": repr(d)}
    params = {}
    for k in getattr(d, "arg_constraints", {}) or {}:
        try:
            value = np.asarray(getattr(d, k), dtype=np.float64)
        except (AttributeError, TypeError, ValueError):
            continue
        params[k] = value.tolist()
    out: dict[str, Any] = {"type": type(d).__name__, "params": params}
    base = getattr(d, "base_dist", None)
    if base is not None:
        out["base_dist"] = describe_distribution(base)
    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
    out["repr"] = f"{type(d).__name__}({shown})"
    return out


def rebuild_distribution(desc: Mapping):
    """The distribution :func:`describe_distribution` described, or None when it cannot be
    rebuilt from its type name and parameters to the same description."""
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
        if same_json(describe_distribution(d), dict(desc)):
            return d
    return None


def describe_domains(domains) -> list[dict]:
    """JSON of :class:`wbbgen.hyper.HyperDomain` s: name, distribution, encoding, support."""
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
    """The generator class of ``AmortizedWBB(generator=...)`` (a built-in name or a class)."""
    return GENERATORS.get(generator, generator) if isinstance(generator, str) else generator


def class_name(cls) -> str:
    """``module.qualname`` of a class, e.g. ``"wbbgen.generator.MLPGenerator"``."""
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', repr(cls))}"


def generator_kind(cls) -> str | None:
    """The built-in name of a generator class (``"mlp"``), None for a user's class."""
    return next((name for name, c in GENERATORS.items() if c is cls), None)


# --------------------------------------------------------------------------------------
# settings


def sampling_settings(generator_cls, generator_options, problem, domains) -> dict:
    """What a trained generator's draws depend on besides its arrays (JSON).

    Args:
        generator_cls: the generator class.
        generator_options: its options, as given (a mapping) or already as
            :func:`options_value`.
        problem: the :class:`wbbgen.problem.Problem` (weights, prior scheme, dtype).
        domains: the hyperparameter domains.
    """
    if isinstance(generator_options, Mapping):
        generator_options = options_value(generator_options)
    return {
        "weights": problem.weights.name,
        "weights_layout": weights_layout(problem.weights),
        "prior_weight": problem.prior.name,
        "generator": class_name(generator_cls),
        "generator_options": generator_options,
        "hyper": describe_domains(domains),
        "dtype": str(problem.objective.init_params.dtype),
    }


def describe_settings(infer, problem) -> dict:
    """The settings of an :class:`~wbbgen.AmortizedWBB` (read through its attributes) that a
    training checkpoint depends on (JSON; memory addresses stripped). A custom optimizer is
    recorded by its repr, which does not show its learning rate: the state layout is
    checked instead."""
    return {
        **sampling_settings(generator_class(infer.generator), infer.generator_options, problem, infer.domains),
        "mode": infer.mode,
        "optimizer": "default" if infer.optimizer is None else normalised_repr(infer.optimizer),
        "batch_size": infer.batch_size,
        "num_targets": infer.num_targets if infer.mode == "supervised" else None,
        "num_pilot": infer.num_pilot,
        "on_nonfinite": infer.on_nonfinite,
        "obs_plate": infer.obs_plate,
    } | {  # recorded only when set, so checkpoints written before they were recorded still resume
        k: v
        for k, v in (
            ("data_batch_size", infer.data_batch_size),
            ("cv_folds", infer.cv_folds),
            ("static_args", list(infer.static_args) or None),
        )
        if v is not None
    }


def _brief(x, limit=160) -> str:
    text = json.dumps(x, sort_keys=True) if not isinstance(x, str) else repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compare_dicts(saved: Mapping, current: Mapping, keys=None) -> list[str]:
    """``["key: saved X, now Y", ...]`` for the keys (default: all) whose values differ."""
    keys = list(keys) if keys is not None else sorted(set(saved) | set(current))
    out = []
    for k in keys:
        a, b = saved.get(k, "<absent>"), current.get(k, "<absent>")
        if not same_json(a, b):
            out.append(f"{k}: saved {_brief(a)}, now {_brief(b)}")
    return out


def describe_model_difference(saved: Mapping, current: Mapping) -> str | None:
    """None when two model signatures (name, latent and observed site shapes,
    hyperparameter names) agree, else which entries differ."""
    saved, current = json.loads(json.dumps(saved)), json.loads(json.dumps(current))
    if saved == current:
        return None
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
