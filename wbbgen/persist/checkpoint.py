"""Training checkpoints: write, find, check, restore.

``AmortizedWBB.run(..., checkpoint_dir=d, checkpoint_every=k)`` writes the training state
(generator parameters, optimizer state, step counters) and the losses so far to
``d/checkpoint-<step>.wbb`` between training chunks; ``run(..., checkpoint_dir=d,
resume=True)`` continues from the latest one. Step t's randomness is
``fold_in(rng_key, t)`` and the state is restored bit for bit, so a resumed run gives the
same generator and losses as an uninterrupted run with the same key (on the same machine
and software).

**File**: the container of :mod:`wbbgen.persist.container`, written atomically; after a
checkpoint is written the older ones in ``d`` are removed, so ``d`` holds one complete
checkpoint at any time. The payload is ``{"state": TrainState, "losses": (step,),
"output_scale": OutputScale}`` (the last is the pilot's fit, so a resumed run does not
repeat the pilot solves), read back against the state a fresh run builds.

**Header**: ``kind="checkpoint"``, the versions, ``num_steps``, ``step``, the model signature,
the data fingerprint, the settings (:func:`wbbgen.persist.fingerprint.describe_settings`),
a fingerprint of ``rng_key``, and the layout (path, shape, dtype) of the state's and the
output scale's arrays. :func:`check_header` compares the first five with the resuming call's;
:func:`wbbgen.persist.container.conform` checks the layout. Either raises a
:class:`~wbbgen.persist.container.MismatchError` naming the first difference.

**When checkpoints are written.** ``checkpoint_every`` is in steps; a checkpoint can only be
written between chunks of ``chunk_size`` steps, so the effective interval is
``checkpoint_every`` rounded *up* to a multiple of ``chunk_size`` (:func:`effective_interval`).
A last checkpoint is written after the final step.

Example:
    >>> from wbbgen.persist.checkpoint import checkpoint_path, effective_interval
    >>> effective_interval(300, 500), effective_interval(1000, 500)
    (500, 1000)
    >>> checkpoint_path("ckpt", 1500)
    'ckpt/checkpoint-000001500.wbb'
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen.persist.container import (
    FileFormatError,
    MismatchError,
    pack,
    parse_version,
    read_container,
    unpack_tree,
    wbbgen_version,
    write_atomic,
)
from wbbgen.persist.fingerprint import (
    compare_data,
    compare_dicts,
    data_fingerprint,
    describe_model_difference,
    key_fingerprint,
    legacy_settings,
    versions,
)

__all__ = [
    "checkpoint_path",
    "list_checkpoints",
    "latest_checkpoint",
    "remove_stale_temporaries",
    "effective_interval",
    "make_header",
    "check_header",
    "read_checkpoint",
    "restore",
    "write_checkpoint",
    "Checkpointer",
]

_NAME = re.compile(r"^checkpoint-(\d{9,})\.wbb$")
_TMP = re.compile(r"^\.checkpoint-\d{9,}\.wbb\..*\.tmp$")


def checkpoint_path(directory, step: int) -> str:
    """The path of the checkpoint after ``step`` steps: ``directory/checkpoint-<step>.wbb``."""
    return os.path.join(os.fspath(directory), f"checkpoint-{int(step):09d}.wbb")


def list_checkpoints(directory) -> list[tuple[int, str]]:
    """``[(step, path), ...]`` of the checkpoints in ``directory``, oldest first."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _NAME.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name)))
    return sorted(found)


def latest_checkpoint(directory) -> str | None:
    """The path of the newest checkpoint in ``directory``, or None."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def remove_stale_temporaries(directory) -> None:
    """Remove temporary files left by a writer killed mid-write (one run per directory)."""
    for name in os.listdir(directory):
        if _TMP.match(name):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def effective_interval(checkpoint_every: int, chunk_size: int) -> int:
    """``checkpoint_every`` rounded up to a multiple of ``chunk_size``."""
    return -(-int(checkpoint_every) // int(chunk_size)) * int(chunk_size)


def make_header(*, problem, args, kwargs, settings: dict, num_steps: int, rng_key) -> dict:
    """The header fields that identify a run; ``layout`` (of the training state) is added
    once the state is built, ``step`` and ``losses`` at each write."""
    return {
        "kind": "checkpoint",
        **versions(),
        "num_steps": int(num_steps),
        "model": problem.objective.signature,
        "data": data_fingerprint(args, kwargs),
        "settings": settings,
        "rng_key": key_fingerprint(rng_key),
    }


def read_checkpoint(path) -> tuple[dict, bytes]:
    """Read and verify a checkpoint file: ``(header, payload)``, the settings of a format-1
    file in today's form (:func:`~wbbgen.persist.fingerprint.legacy_settings`).

    Raises:
        FileFormatError: another kind of file, or one written by a newer wbbgen (a resumed
            run is bit-identical only under the same code), besides the container's errors.
    """
    header, payload = read_container(path, "checkpoint")
    if header.get("kind") != "checkpoint":
        raise FileFormatError(
            f"{os.fspath(path)!r} is a {header.get('kind', 'unknown')} file, not a training checkpoint."
        )
    saved, mine = header.get("wbbgen", "0"), wbbgen_version()
    if parse_version(saved) > parse_version(mine):
        raise FileFormatError(
            f"checkpoint {os.fspath(path)!r} was written by wbbgen {saved}, newer than this wbbgen ({mine}); "
            "a resumed run is only bit-identical under the same code. Resume it with wbbgen "
            f"{saved} or later, or start a new run in an empty checkpoint_dir."
        )
    if header["format_version"] == 1 and "settings" in header:
        header["settings"] = legacy_settings(header["settings"])
    return header, payload


def check_header(saved: dict, current: dict, path) -> None:
    """Raise :class:`~wbbgen.persist.container.MismatchError` naming the first difference
    between a checkpoint's header and the resuming call's (:func:`make_header`)."""
    where = f"checkpoint {os.fspath(path)!r}"
    diff = describe_model_difference(saved["model"], current["model"])
    if diff:
        raise MismatchError(f"{where} was written for another model: {diff}.")
    diff = compare_data(saved["data"], current["data"])
    if diff:
        raise MismatchError(f"{where} was written for other data: {diff}. Resume with the same data.")
    if saved["num_steps"] != current["num_steps"]:
        raise MismatchError(
            f"{where} was written by a run of num_steps={saved['num_steps']}, this call asks for "
            f"num_steps={current['num_steps']}; resume with num_steps={saved['num_steps']} (the default "
            "optimizer's learning-rate schedule depends on num_steps)."
        )
    diffs = compare_dicts(saved["settings"], current["settings"])
    if diffs:
        raise MismatchError(
            f"{where} was written with other settings: "
            + "; ".join(diffs)
            + ". Resume with the same AmortizedWBB settings."
        )
    if saved["rng_key"] != current["rng_key"]:
        raise MismatchError(
            f"{where} was written by a run with another rng_key; resume with the key the run was started with."
        )


def restore(path, header: dict, payload: bytes, template, output_scale_template):
    """``(state, losses, output_scale)`` read against ``template`` (the state a fresh run
    builds) and the pilot's output scale. Each leaf is copied into its own buffer: the
    training chunk donates the state.

    Raises:
        FileFormatError: the header's step disagrees with the state's or the losses' length.
    """
    losses_like = np.zeros(header["losses"]["length"], header["losses"]["dtype"])
    like = {"state": template, "losses": losses_like, "output_scale": output_scale_template}
    tree = unpack_tree(payload, like, path, "checkpoint")
    state = jax.tree_util.tree_map(jnp.copy, tree["state"])
    if int(state.step) != header["step"] or len(tree["losses"]) != header["step"]:
        raise FileFormatError(
            f"checkpoint {os.fspath(path)!r} is inconsistent: header step {header['step']}, state step "
            f"{int(state.step)}, {len(tree['losses'])} losses."
        )
    return state, tree["losses"], tree["output_scale"]


def write_checkpoint(directory, header: dict, state, losses: np.ndarray, output_scale) -> str:
    """Write one checkpoint atomically, then remove the older ones. Returns its path."""
    step = int(state.step)
    losses = np.asarray(losses)
    full = {
        **header,
        "step": step,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "losses": {"length": int(losses.shape[0]), "dtype": str(losses.dtype)},
    }
    path = checkpoint_path(directory, step)
    write_atomic(path, pack(full, {"state": state, "losses": losses, "output_scale": output_scale}))
    for old_step, old in list_checkpoints(directory):
        if old_step < step:
            try:
                os.unlink(old)
            except OSError:
                pass
    return path


class Checkpointer:
    """Collects the losses chunk by chunk and writes a checkpoint at the first chunk end at
    or after each multiple of ``every`` steps, and after the last step.

    Args:
        directory: the checkpoint folder.
        every: steps between checkpoints (already a multiple of the chunk size).
        num_steps: the run's length.
        header: :func:`make_header` plus the layouts.
        output_scale: the pilot's output scale (saved with every checkpoint).
        losses: the losses before ``start`` (of a resumed run), or None.
        start: the step training starts from.
        write: ``write(directory, header, state, losses, output_scale) -> path``
            (:func:`write_checkpoint`; a test passes its own).

    Call it as ``checkpointer(state, chunk_losses)`` after each chunk; ``written`` lists the
    paths written.
    """

    def __init__(
        self,
        directory,
        every: int,
        num_steps: int,
        header: dict,
        output_scale,
        losses=None,
        start: int = 0,
        write: Callable = write_checkpoint,
    ):
        self.directory = os.fspath(directory)
        self.output_scale = output_scale
        self.every = int(every)
        self.num_steps = int(num_steps)
        self.header = header
        self.losses = [np.asarray(losses)] if losses is not None and len(losses) else []
        self.last = int(start)
        self.write = write
        self.written: list[str] = []

    def __call__(self, state, chunk_losses) -> None:
        self.losses.append(np.asarray(chunk_losses))
        step = int(state.step)
        if step >= self.num_steps or step // self.every > self.last // self.every:
            path = self.write(self.directory, self.header, state, np.concatenate(self.losses), self.output_scale)
            self.written.append(path)
            self.last = step
