"""What every benchmark shares: the device description, timings with the device work finished,
the load average, and the peak memory of a child process."""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import statistics
import subprocess
import time

import jax

__all__ = ["device", "on_gpu", "block", "timed", "warm_median", "load", "run_child"]


def device() -> str:
    """The first JAX device, the CPU count and the processor, in words."""
    d = jax.devices()[0]
    kind = getattr(d, "device_kind", d.platform)
    return f"{d.platform.upper()} ({kind}), {os.cpu_count()} cores, {platform.processor() or platform.machine()}"


def on_gpu() -> bool:
    return jax.devices()[0].platform == "gpu"


def block(out):
    """Wait for the JAX arrays in ``out`` (a pytree, or a dict such as WBBSamples) and return it."""
    leaves = jax.tree_util.tree_leaves(dict(out) if isinstance(out, dict) else out)
    jax.block_until_ready([x for x in leaves if isinstance(x, jax.Array)])
    return out


def timed(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), seconds)``, the device work included.

    Example:
        >>> import jax.numpy as jnp
        >>> from wbbgen.bench.harness import timed
        >>> out, seconds = timed(jnp.add, jnp.ones(3), 1.0)
        >>> out.tolist(), seconds > 0
        ([2.0, 2.0, 2.0], True)
    """
    t0 = time.perf_counter()
    out = block(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


def warm_median(fn, reps: int = 5) -> tuple[float, float]:
    """``(seconds of the first call, median seconds of reps warm calls)``: the first compiles."""
    _, first = timed(fn)
    return first, statistics.median(timed(fn)[1] for _ in range(reps))


def load() -> float:
    """The 1-minute load average (contention inflates CPU timings); NaN where unknown."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def run_child(cmd: list[str], timeout: float) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v`` and return the last JSON line it prints, with
    ``peak_rss_gb`` (its maximum resident set size) and ``memory_tool`` added. Without
    /usr/bin/time, the peak RSS of this process's children from ``getrusage``."""
    timer = "/usr/bin/time"
    use_time = os.path.exists(timer)
    proc = subprocess.run(([timer, "-v"] if use_time else []) + cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{proc.stderr[-4000:]}")
    out = json.loads([x for x in proc.stdout.splitlines() if x.startswith("{")][-1])
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr) if use_time else None
    if match:
        out["peak_rss_gb"] = int(match.group(1)) / 2**20
        out["memory_tool"] = "/usr/bin/time -v (maximum resident set size)"
    else:
        out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        out["memory_tool"] = "getrusage(RUSAGE_CHILDREN).ru_maxrss"
    return out
