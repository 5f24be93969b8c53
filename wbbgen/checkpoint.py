"""Checkpoints of :meth:`AmortizedWBB.run <wbbgen.AmortizedWBB.run>`: write, find, check, restore.

``run(..., checkpoint_dir=d, checkpoint_every=k)`` writes the training state (generator
parameters, optimizer state, step counters) and the losses so far to
``d/checkpoint-<step>.wbb`` between ``lax.scan`` chunks; ``run(..., checkpoint_dir=d,
resume=True)`` continues from the latest one. Because step t's randomness is
``fold_in(rng_key, t)`` and the state is restored bit for bit, a resumed run gives the
same generator and losses, bit for bit, as an uninterrupted run with the same key (on the
same machine and software).

File: the container of :mod:`wbbgen.io` (magic, format version, JSON header, equinox
payload, SHA-256), written atomically (temporary file in ``d``, fsync, ``os.replace``);
after a checkpoint is written the older ones in ``d`` are removed, so ``d`` holds one
complete checkpoint at any time. The payload is ``{"state": TrainState, "losses": (step,),
"output_scale": OutputScale}`` (the last is the pilot's fit, so a resumed run does not
repeat the pilot solves), read back against the state ``run`` builds
(:func:`wbbgen.train.init` of :func:`wbbgen.generator.make_generator`) as the template.

Header: ``kind="checkpoint"``, the wbbgen/JAX/equinox/NumPyro versions, ``num_steps``,
``step``, the model signature, the data fingerprint, the settings
(:func:`wbbgen.io.describe_settings`), a fingerprint of ``rng_key``, and the layout (path,
shape, dtype) of the state's and the output scale's arrays. :func:`check_header` compares
the first five with the resuming call and :func:`wbbgen.io.conform` the layout; either
raises a :class:`~wbbgen.io.MismatchError` naming the first difference.

**When checkpoints are written.** ``checkpoint_every`` is in steps; a checkpoint can only
be written between chunks of ``chunk_size`` steps, so the effective interval is
``checkpoint_every`` rounded *up* to a multiple of ``chunk_size`` (e.g. 300 with
``chunk_size=500`` writes every 500 steps). A last checkpoint is written after the final
step, so a crash during the closing fidelity check does not lose the training.
"""

from __future__ import annotations

import datetime
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen import io as wio

__all__ = [
    "checkpoint_path",
    "list_checkpoints",
    "latest_checkpoint",
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
        **wio.versions(),
        "num_steps": int(num_steps),
        "model": problem.objective.signature,
        "data": wio.data_fingerprint(args, kwargs),
        "settings": settings,
        "rng_key": wio.key_fingerprint(rng_key),
    }


def read_checkpoint(path) -> tuple[dict, bytes]:
    """Read and verify a checkpoint file; refuse other kinds and newer wbbgen versions."""
    header, payload = wio.read_container(path, "checkpoint")
    if header.get("kind") != "checkpoint":
        raise wio.FileFormatError(
            f"{os.fspath(path)!r} is a {header.get('kind', 'unknown')} file, not a training checkpoint."
        )
    saved, mine = header.get("wbbgen", "0"), wio.wbbgen_version()
    if wio.parse_version(saved) > wio.parse_version(mine):
        raise wio.FileFormatError(
            f"checkpoint {os.fspath(path)!r} was written by wbbgen {saved}, newer than this wbbgen ({mine}); "
            "a resumed run is only bit-identical under the same code. Resume it with wbbgen "
            f"{saved} or later, or start a new run in an empty checkpoint_dir."
        )
    return header, payload


def check_header(saved: dict, current: dict, path) -> None:
    """Raise :class:`~wbbgen.io.MismatchError` naming the first difference between the
    checkpoint's header and the resuming call's."""
    where = f"checkpoint {os.fspath(path)!r}"
    diff = wio.describe_model_difference(saved["model"], current["model"])
    if diff:
        raise wio.MismatchError(f"{where} was written for another model: {diff}.")
    diff = wio.compare_data(saved["data"], current["data"])
    if diff:
        raise wio.MismatchError(f"{where} was written for other data: {diff}. Resume with the same data.")
    if saved["num_steps"] != current["num_steps"]:
        raise wio.MismatchError(
            f"{where} was written by a run of num_steps={saved['num_steps']}, this call asks for "
            f"num_steps={current['num_steps']}; resume with num_steps={saved['num_steps']} (the default "
            "optimizer's learning-rate schedule depends on num_steps)."
        )
    diffs = wio.compare_dicts(saved["settings"], current["settings"])
    if diffs:
        raise wio.MismatchError(
            f"{where} was written with other settings: "
            + "; ".join(diffs)
            + ". Resume with the same AmortizedWBB settings."
        )
    if saved["rng_key"] != current["rng_key"]:
        raise wio.MismatchError(
            f"{where} was written by a run with another rng_key; resume with the key the run was started with."
        )


def restore(path, header: dict, payload: bytes, template, output_scale_template):
    """``(state, losses, output_scale)`` read against ``template`` (the state
    :meth:`AmortizedWBB.run` builds) and the pilot's output scale. Each leaf is copied into
    its own buffer: the training chunk donates the state."""
    losses_like = np.zeros(header["losses"]["length"], header["losses"]["dtype"])
    like = {"state": template, "losses": losses_like, "output_scale": output_scale_template}
    tree = wio.unpack_tree(payload, like, path, "checkpoint")
    state = jax.tree_util.tree_map(jnp.copy, tree["state"])
    if int(state.step) != header["step"] or len(tree["losses"]) != header["step"]:
        raise wio.FileFormatError(
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
    wio.write_atomic(path, wio.pack(full, {"state": state, "losses": losses, "output_scale": output_scale}))
    for old_step, old in list_checkpoints(directory):
        if old_step < step:
            try:
                os.unlink(old)
            except OSError:
                pass
    return path


class Checkpointer:
    """The ``on_chunk`` callback of :func:`wbbgen.train.train`: collects the losses and
    writes a checkpoint at the first chunk end at or after each multiple of ``every``
    steps, and after the last step."""

    def __init__(self, directory, every: int, num_steps: int, header: dict, output_scale, losses=None, start: int = 0):
        self.directory = os.fspath(directory)
        self.output_scale = output_scale
        self.every = int(every)
        self.num_steps = int(num_steps)
        self.header = header
        self.losses = [np.asarray(losses)] if losses is not None and len(losses) else []
        self.last = int(start)
        self.written: list[str] = []

    def __call__(self, state, chunk_losses):
        self.losses.append(np.asarray(chunk_losses))
        step = int(state.step)
        if step >= self.num_steps or step // self.every > self.last // self.every:
            # Looked up at call time, so tests can wrap it.
            path = write_checkpoint(self.directory, self.header, state, np.concatenate(self.losses), self.output_scale)
            self.written.append(path)
            self.last = step
