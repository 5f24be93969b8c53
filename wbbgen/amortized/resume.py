"""Checkpoints and warm starts of :class:`~wbbgen.AmortizedWBB` runs: planning the folder,
the header a checkpoint is identified by, restoring a state, and the loop callback that
writes checkpoints (the file format is :mod:`wbbgen.persist.checkpoint`'s)."""

from __future__ import annotations

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from wbbgen._checks import positive_int
from wbbgen.generator import OutputScale
from wbbgen.hyper import encoded_width
from wbbgen.persist import checkpoint as ckpt
from wbbgen.persist.container import conform, is_output_scale, layout
from wbbgen.persist.fingerprint import describe_settings
from wbbgen.problem import Problem
from wbbgen.training import find_output_scale

__all__ = ["plan_checkpoints", "restore_checkpoint", "checkpoint_callback", "check_warm_start"]


def plan_checkpoints(checkpoint_dir, checkpoint_every, resume):
    """Validate the checkpoint arguments before any work; on ``resume`` read and verify the
    latest checkpoint: ``(path, header, payload)``, else None."""
    if not isinstance(resume, (bool, np.bool_)):
        raise TypeError(f"`resume` must be True or False, got {resume!r}.")
    if checkpoint_every is not None:
        positive_int(checkpoint_every, "checkpoint_every")
        if checkpoint_dir is None:
            raise ValueError("`checkpoint_every` needs `checkpoint_dir=`, the folder to write checkpoints to.")
    if checkpoint_dir is None:
        if resume:
            raise ValueError("`resume=True` needs `checkpoint_dir=`, the folder holding the checkpoints.")
        return None
    directory = os.fspath(checkpoint_dir)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(f"`checkpoint_dir={directory!r}` is a file, not a folder.")
    latest = ckpt.latest_checkpoint(directory)
    if not resume:
        if latest is not None:
            raise FileExistsError(
                f"`checkpoint_dir={directory!r}` already holds a checkpoint ({os.path.basename(latest)}); "
                "pass resume=True to continue that run, or use an empty folder for a new one."
            )
        os.makedirs(directory, exist_ok=True)
        ckpt.remove_stale_temporaries(directory)
        return None
    if latest is None:
        raise FileNotFoundError(
            f"`resume=True` but `checkpoint_dir={directory!r}` holds no checkpoint (checkpoint-<step>.wbb); "
            "start the run with resume=False."
        )
    ckpt.remove_stale_temporaries(directory)
    header, payload = ckpt.read_checkpoint(latest)
    return latest, header, payload


def _header(infer, problem: Problem, args, kwargs, num_steps: int, rng_key) -> dict:
    settings = describe_settings(infer, problem)
    return ckpt.make_header(
        problem=problem, args=args, kwargs=kwargs, settings=settings, num_steps=num_steps, rng_key=rng_key
    )


def restore_checkpoint(infer, problem: Problem, args, kwargs, num_steps: int, rng_key, checkpoint, make_trainer):
    """``(state, losses, output_scale)`` of ``checkpoint = (path, header, payload)``, after
    checking that it was written by this call (model, data, settings, key). The template is
    the state a fresh run builds, ``make_trainer(output_scale).init(generator)`` traced
    abstractly, so the two cannot drift apart."""
    path, saved, payload = checkpoint
    ckpt.check_header(saved, _header(infer, problem, args, kwargs, num_steps, rng_key), path)
    scale_like = OutputScale.identity(
        problem.objective.num_params, encoded_width(infer.domains), jnp.result_type(float)
    )

    def fresh():
        t, gen = make_trainer(scale_like)
        return t.init(gen)

    like = conform(eqx.filter_eval_shape(fresh), saved["layout"], path, "checkpoint", is_output_scale)
    scale_like = conform(scale_like, saved["output_scale_layout"], path, "checkpoint", lambda _: True)
    return ckpt.restore(path, saved, payload, like, scale_like)


def checkpoint_callback(infer, training, rng_key, checkpoint_dir, checkpoint_every):
    """The loop callback writing ``training``'s checkpoints to ``checkpoint_dir`` every
    ``checkpoint_every`` steps (rounded up to whole chunks) and after the last step."""
    header = _header(infer, training.problem, training.model_args, training.model_kwargs, training.num_steps, rng_key)
    header["layout"] = layout(training.state)
    header["output_scale_layout"] = layout(training.output_scale)
    every = ckpt.effective_interval(checkpoint_every or infer.chunk_size, infer.chunk_size)
    write = ckpt.Checkpointer(
        checkpoint_dir,
        every,
        training.num_steps,
        header,
        training.output_scale,
        training.previous_losses,
        int(training.state.step),
    )
    return lambda state, report: write(state, report.info.loss)


def check_warm_start(infer, problem: Problem, init, result_type) -> OutputScale:
    """The output scale of ``init`` (a ``result_type`` of a run of this model and settings),
    after checking that its generator has the layout this run would build."""
    if not isinstance(init, result_type):
        raise TypeError(f"`init_generator` must be the WBBRunResult of an earlier run(), got {type(init).__name__}.")
    mine, theirs = problem.objective.signature["model"], init.problem.objective.signature["model"]
    support = lambda domains: [(d.name, d.low, d.high, d.log_scale, d.choices) for d in domains]  # noqa: E731
    if mine != theirs or support(init.domains) != support(infer.domains):
        raise ValueError(
            f"`init_generator` was trained for model {theirs!r} over {support(init.domains)} (name, low, high, "
            f"log scale, choices); this run is for {mine!r} over {support(infer.domains)}. A generator reads "
            "λ relative to its training range: warm-start from a run of the same model and `hyper`."
        )
    scale = find_output_scale(init.generator)
    if scale is None:
        raise ValueError("`init_generator`'s generator holds no OutputScale; it was not built by AmortizedWBB.run.")
    like = eqx.filter_eval_shape(lambda: infer.build_generator(problem, scale, jax.random.key(0)))
    mine, theirs = layout(like), layout(init.generator)
    if mine != theirs or init.problem.weights.num_weights != problem.weights.num_weights:
        diff = next((f"{a} vs {b}" for a, b in zip(theirs, mine) if a != b), f"{len(theirs)} vs {len(mine)} arrays")
        raise ValueError(
            "`init_generator` holds a generator of another shape than this run builds (first difference, "
            f"given vs expected: {diff}); warm-start from a run with the same data, generator and "
            "generator_options."
        )
    return scale
