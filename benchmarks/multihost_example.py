r"""Multi-host data-parallel training of an AmortizedWBB, runnable on one machine.

Every process runs this same script on the same data; ``jax.distributed.initialize`` joins
them, ``jax.devices()`` then lists every process's devices, and ``AmortizedWBB(...,
devices="all")`` trains over a mesh spanning them (:mod:`wbbgen.sharding`). Each process
ends with the same trained generator (replicated parameters, copied to a local device).

On a cluster, start one process per host (SLURM, Kubernetes, ...) with
``--coordinator HOST:PORT --num-processes N --process-id I`` (on GPU/TPU clusters
``jax.distributed.initialize()`` without arguments usually finds them itself).

On one machine, ``--launch 2`` starts two CPU processes with 2 fake devices each (4 devices
in all; cross-process sums via gloo) and checks that they agree::

    python benchmarks/multihost_example.py --launch 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def worker(coordinator: str, num_processes: int, process_id: int, num_steps: int) -> dict:
    import jax

    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)

    import numpy as np
    import numpyro.distributions as dist

    from wbbgen import AmortizedWBB
    from wbbgen.models import ridge

    rng = np.random.default_rng(0)  # the same data on every process
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = (X @ np.array([0.5, -0.5, 0.3, 0.0, 0.2], np.float32) + rng.normal(size=200)).astype(np.float32)
    infer = AmortizedWBB(
        ridge, hyper={"lam": dist.LogUniform(1e-2, 1e3)}, devices="all", batch_size=64, fidelity_samples=0
    )
    result = infer.run(jax.random.key(1), X, y, num_steps=num_steps, progress_bar=False)
    draws = infer.get_samples(jax.random.key(2), result, hyper={"lam": [0.1, 10.0]}, num_samples=100)
    return {
        "process": process_id,
        "global_devices": len(jax.devices()),
        "local_devices": len(jax.local_devices()),
        "final_loss": float(result.losses[-1]),
        "beta_mean": np.asarray(draws["beta"]).mean(1).round(5).tolist(),
    }


def launch(num_processes: int, num_steps: int, port: int = 12355) -> list[dict]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--coordinator", f"localhost:{port}", "--num-processes", str(num_processes),
             "--process-id", str(i), "--num-steps", str(num_steps)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(num_processes)
    ]  # fmt: skip
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(stderr[-3000:])
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    same = all(o["final_loss"] == outs[0]["final_loss"] and o["beta_mean"] == outs[0]["beta_mean"] for o in outs)
    print(json.dumps({"processes": outs, "identical_on_every_process": same}, indent=2))
    return outs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launch", type=int, help="start this many local CPU processes and compare them")
    parser.add_argument("--coordinator", default="localhost:12355")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--num-steps", type=int, default=200)
    args = parser.parse_args(argv)
    if args.launch:
        launch(args.launch, args.num_steps)
    else:
        print(json.dumps(worker(args.coordinator, args.num_processes, args.process_id, args.num_steps)))


if __name__ == "__main__":
    main()
