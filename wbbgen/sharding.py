r"""Data-parallel training over several devices with :mod:`jax.sharding`.

A training step's work is a batch of B independent (w, λ, ξ) draws, each evaluating the
(minibatched) weighted objective. The mesh splits that batch over its ``"draws"`` axis and,
when it has one, the data minibatch's rows over a ``"data"`` axis; the generator's parameters,
the optimiser state and the full data are replicated. The step's program is the same as on one
device -- ``jax.lax.with_sharding_constraint`` only tells the compiler where the batch lives --
so the draws are identical (JAX's random numbers do not depend on the sharding) and the result
differs from a one-device run only by the order of floating-point sums: gradients are means
over the batch, reduced across devices in another order. That is a few ulps per step, which
Adam's normalisation carries on: runs agree to about 1e-4 relative after hundreds of float32
steps and to about 1e-12 in float64, not bit for bit.

Multi-host: after ``jax.distributed.initialize()`` on every process, ``jax.devices()`` lists
the devices of all hosts; :func:`make_mesh` with ``devices="all"`` spans them, and every
process runs the same script on the same data (see ``docs/howto_multidevice.md``).

Use through :class:`~wbbgen.AmortizedWBB`::

    AmortizedWBB(model, hyper=hyper, devices="all")                   # a 1-D mesh over draws
    mesh = jax.make_mesh((4, 2), ("draws", "data"))                   # draws × data rows
    AmortizedWBB(model, hyper=hyper, devices=mesh, data_batch_size=4096)

Example:
    >>> from wbbgen.sharding import check_divisible, make_mesh
    >>> make_mesh(None) is None                      # one device, no sharding
    True
    >>> mesh = make_mesh(1)                          # the first device, as a mesh
    >>> mesh.axis_names, mesh.shape["draws"]
    (('draws',), 1)
    >>> check_divisible(mesh, batch_size=256, data_batch_size=None)  # passes: returns None
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["make_mesh", "check_divisible", "constrain_leading", "replicate", "to_local", "to_host"]

DRAWS, DATA = "draws", "data"


def make_mesh(devices) -> Mesh | None:
    """``devices=`` of :class:`~wbbgen.AmortizedWBB` as a mesh, or None for one device.

    Args:
        devices: None (the default device, no sharding), ``"all"`` (every device JAX sees,
            all hosts after ``jax.distributed.initialize``), an int k (the first k devices),
            a sequence of devices, or a :class:`jax.sharding.Mesh` whose axes are
            ``("draws",)`` or ``("draws", "data")``.
    """
    if devices is None:
        return None
    if isinstance(devices, Mesh):
        names = tuple(devices.axis_names)
        if names not in ((DRAWS,), (DRAWS, DATA)):
            raise ValueError(
                f"`devices` is a Mesh with axes {names}; wbbgen needs axes ('draws',) or ('draws', 'data'), "
                "e.g. jax.make_mesh((4, 2), ('draws', 'data'))."
            )
        # The step places its batch with sharding constraints: the axes must be Auto (jax.make_mesh
        # makes Explicit ones by default in recent JAX).
        return Mesh(devices.devices, names, axis_types=(AxisType.Auto,) * len(names))
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"`devices={devices!r}` is unknown; pass 'all', an int, a list of devices or a Mesh.")
        found = jax.devices()
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"`devices={devices}` but JAX sees {len(available)} device(s) ({available[0].platform}); pass at "
                f"most {len(available)} (on CPU, more can be faked with "
                "XLA_FLAGS=--xla_force_host_platform_device_count=N set before jax is imported)."
            )
        found = available[:devices]
    elif isinstance(devices, Sequence) and devices and all(isinstance(d, jax.Device) for d in devices):
        found = list(devices)
    else:
        raise TypeError(
            f"`devices` must be None, 'all', an int, a list of jax devices or a jax.sharding.Mesh, got {devices!r}."
        )
    return Mesh(np.array(found), (DRAWS,), axis_types=(AxisType.Auto,))


def check_divisible(mesh: Mesh | None, batch_size: int, data_batch_size: int | None) -> None:
    """The batch must split evenly over the ``draws`` axis (and rows over ``data``)."""
    if mesh is None:
        return
    k = mesh.shape[DRAWS]
    if batch_size % k:
        raise ValueError(
            f"`batch_size={batch_size}` does not split over the mesh's {k} 'draws' devices; use a multiple of {k}."
        )
    if DATA in mesh.axis_names:
        kd = mesh.shape[DATA]
        if data_batch_size is None or data_batch_size % kd:
            raise ValueError(
                f"the mesh has a 'data' axis of {kd} devices, which splits the data minibatch: pass "
                f"`data_batch_size=` as a multiple of {kd} (got {data_batch_size})."
            )


def constrain_leading(tree, mesh: Mesh | None, axis: str, mask=None, dim: int = 0):
    """Shard axis ``dim`` (default the leading one) of every array -- of those where ``mask``,
    a tree of bools, is True -- over mesh ``axis``, inside jit; no-op without a mesh or
    when the mesh lacks that axis."""
    if mesh is None or axis not in mesh.axis_names:
        return tree

    def one(x, m=True):
        if not m:
            return x
        spec = [None] * x.ndim
        spec[dim] = axis
        return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(*spec)))

    return jax.tree_util.tree_map(one, tree) if mask is None else jax.tree_util.tree_map(one, tree, mask)


def replicate(tree, mesh: Mesh | None):
    """Place every array on all devices of the mesh (outside jit); no-op without a mesh."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, P())
    multihost = jax.process_count() > 1

    def one(x):
        if not isinstance(x, jax.Array):
            return x
        if multihost and x.is_fully_addressable:  # a process-local array: from the host, same on every process
            x = np.asarray(x)
        return jax.device_put(x, sharding)

    return jax.tree_util.tree_map(one, tree)


def to_local(tree):
    """Replicated multi-device arrays as arrays on one local device (the generator after
    training is used by single-device code, also on each host of a multi-host run)."""

    def one(x):
        if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
            if not x.is_fully_replicated:
                raise ValueError("to_local expects replicated arrays (the trained parameters).")
            return x.addressable_data(0)
        return x

    return jax.tree_util.tree_map(one, tree)


def to_host(x) -> np.ndarray:
    """``np.asarray`` that also works on replicated arrays spanning other hosts' devices."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)
