"""Helpers shared by the performance scripts (benchmarks/perf_*.py): device description,
timing with compilation apart, peak memory of a child process."""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

import jax


def device() -> str:
    d = jax.devices()[0]
    kind = getattr(d, "device_kind", d.platform)
    return f"{d.platform.upper()} ({kind}), {os.cpu_count()} cores, {platform.processor() or platform.machine()}"


def on_gpu() -> bool:
    return jax.devices()[0].platform == "gpu"


def block(out):
    leaves = jax.tree_util.tree_leaves(dict(out) if isinstance(out, dict) else out)
    jax.block_until_ready([x for x in leaves if isinstance(x, jax.Array)])
    return out


def timed(fn, *args, **kwargs):
    """``(result, seconds)`` with the device work finished."""
    t0 = time.perf_counter()
    out = block(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


def warm_median(fn, reps: int = 5) -> tuple[float, float]:
    """``(first call seconds, median of reps warm calls)``: the first includes compilation."""
    _, first = timed(fn)
    return first, statistics.median(timed(fn)[1] for _ in range(reps))


def load() -> float:
    """The 1-minute load average (contention inflates CPU timings)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def run_child(script: str, args: list[str], timeout: float) -> dict:
    """Run ``python script args`` under ``/usr/bin/time -v`` and return its last JSON line
    with ``peak_rss_gb`` (maximum resident set size) added; without /usr/bin/time, the
    peak RSS of children from ``getrusage``."""
    cmd = [sys.executable, script, *args]
    timer = "/usr/bin/time"
    use_time = os.path.exists(timer)
    proc = subprocess.run(([timer, "-v"] if use_time else []) + cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{proc.stderr[-4000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("{")][-1]
    out = json.loads(line)
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr) if use_time else None
    if match:
        out["peak_rss_gb"] = int(match.group(1)) / 2**20
        out["memory_tool"] = "/usr/bin/time -v (maximum resident set size)"
    else:
        out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        out["memory_tool"] = "getrusage(RUSAGE_CHILDREN).ru_maxrss"
    return out
