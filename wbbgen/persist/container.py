"""The wbbgen file container, shared by saved results (:mod:`wbbgen.io`) and training
checkpoints (:mod:`wbbgen.persist.checkpoint`).

**Layout**::

    8 bytes   magic  b"\\x89WBBGEN\\n"
    4 bytes   format version (little-endian uint32)
    8 bytes   header length h (uint64), then h bytes of UTF-8 JSON (the metadata)
    8 bytes   payload length p (uint64), then p bytes: equinox ``tree_serialise_leaves``
    32 bytes  SHA-256 of everything before it

The arrays are written by equinox (one ``np.save`` per leaf) and read back against a
template of the same structure, shapes and dtypes; there is no wbbgen array format. The
format version sits before the header, so a file of a newer format is named as such before
anything else is parsed; the checksum turns a truncated or damaged file into a
:class:`FileFormatError` instead of a numpy or JSON error. :func:`write_atomic` writes to a
temporary file in the same folder, flushes and ``fsync``-s it, then ``os.replace``-s it onto
the target name: a reader sees the old file or the new one, never half of one.

**Format versions.** 1: settings hold the generator options as one repr string. 2: settings
hold JSON values (:func:`wbbgen.persist.fingerprint.options_value`); the container bytes are
unchanged. A reader reads every version up to :data:`FORMAT_VERSION`.

Example:
    >>> import numpy as np
    >>> from wbbgen.persist.container import assemble, layout
    >>> raw = assemble({"kind": "example"}, b"")
    >>> raw[:8], len(raw) == 8 + 12 + len(b'{"kind": "example"}') + 8 + 32
    (b'\\x89WBBGEN\\n', True)
    >>> layout({"w": np.zeros((2, 3)), "name": "not an array"})
    [["['w']", [2, 3], 'float64']]
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax

from wbbgen._checks import is_array
from wbbgen._version import __version__

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "FileFormatError",
    "MismatchError",
    "wbbgen_version",
    "parse_version",
    "pack",
    "assemble",
    "write_atomic",
    "read_container",
    "unpack_tree",
    "layout",
    "conform",
    "is_output_scale",
]

#: Version of the container and header layout. A reader refuses a file of a higher version.
FORMAT_VERSION = 2
#: The first 8 bytes of every wbbgen file.
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


def wbbgen_version() -> str:
    """The version of this wbbgen (what files record as their writer)."""
    return __version__


def parse_version(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string, padded to three parts.

    >>> from wbbgen.persist.container import parse_version
    >>> parse_version("0.10.2rc1"), parse_version("v2")
    ((0, 10, 2), (2, 0, 0))
    """
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", str(text))
    if not match:
        return (0,)
    parts = tuple(int(p) for p in match.group(1).split("."))
    return parts + (0,) * (3 - len(parts)) if len(parts) < 3 else parts


def pack(header: Mapping, tree: Any) -> bytes:
    """The container bytes of ``header`` (JSON) and ``tree`` (its leaves, by equinox)."""
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    return assemble(header, buf.getvalue())


def assemble(header: Mapping, payload: bytes, *, format_version: int = FORMAT_VERSION) -> bytes:
    """The container bytes of a JSON ``header`` and a serialised ``payload``
    (``header["format_version"]``, if present, is dropped: it lives in the preamble)."""
    header = {k: v for k, v in header.items() if k != "format_version"}
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    body = b"".join([MAGIC, _PREAMBLE.pack(int(format_version), len(head)), head, _LENGTH.pack(len(payload)), payload])
    return body + hashlib.sha256(body).digest()


def write_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, flush,
    fsync, ``os.replace``, then fsync the folder so that the rename itself is durable. On
    failure the temporary file is removed and ``path`` is left as it was."""
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
    """Read and verify a container: ``(header, payload)``, with the format version as
    ``header["format_version"]``.

    Raises:
        FileFormatError: naming the problem (``what`` names the file in the message): not a
            wbbgen file, a newer format, truncated (with the byte counts), or a checksum
            mismatch (corrupt).
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
            "(files are written by wbbgen.save or AmortizedWBB.run(checkpoint_dir=...))."
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
    """The payload deserialised against ``template`` (same structure, shapes and dtypes).

    Raises:
        FileFormatError: the payload holds other arrays than ``template`` describes.
    """
    try:
        return eqx.tree_deserialise_leaves(io.BytesIO(payload), template)
    except (RuntimeError, ValueError, EOFError, OSError) as err:
        raise FileFormatError(
            f"{what} {os.fspath(path)!r} does not hold the arrays this call expects ({err}); "
            "it was written for another generator or training state."
        ) from None


def _has_layout(x) -> bool:
    """An array, or the shape-and-dtype stand-in of one (``jax.eval_shape`` templates)."""
    return is_array(x) or isinstance(x, jax.ShapeDtypeStruct)


def layout(tree) -> list[list]:
    """``[[path, shape, dtype], ...]`` of the array leaves of ``tree``: what its payload holds."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [[jax.tree_util.keystr(p), list(x.shape), str(x.dtype)] for p, x in flat if _has_layout(x)]


def conform(template, saved: list, path, what: str, flexible: Callable[[str], bool] = lambda name: False):
    """``template`` with the saved shapes and dtypes at the leaves whose path ``flexible``
    accepts (the pilot's output scale, whose shapes depend on the pilot), after checking that
    every other array leaf has the saved path, shape and dtype.

    Args:
        template: a pytree of arrays or ``jax.ShapeDtypeStruct``.
        saved: the :func:`layout` recorded in the file.
        path, what: name the file in errors.
        flexible: ``flexible(leaf_path) -> bool``.

    Raises:
        MismatchError: naming the first difference.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    arrays = [i for i, (_, x) in enumerate(flat) if _has_layout(x)]

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
    """Whether a :func:`layout` path lies in a generator's ``OutputScale`` (the leaves
    whose shapes the pilot sets, passed to :func:`conform` as ``flexible``)."""
    return ".output_scale" in name
