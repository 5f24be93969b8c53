"""A reproducer, for an upstream report, of the XLA CPU hang that `exact_wbb` hits on the Poisson
GP regression (docs/bad-inputs.md, known gaps). Pure JAX, no wbbgen.

A batch of damped saddle-free Newton solves (``jnp.linalg.eigh`` of the Hessian) of an objective
with a ``jnp.linalg.cholesky`` inside, in one ``vmap``-ed ``lax.while_loop``. On jax/jaxlib 0.10.2,
CPU, 2 cores: 100 problems finish in ~1.4 s; 500 never return, with no thread busy (the main thread
waits in ``BlockUntilReady``). Replacing either the eigh (by a solve) or the Cholesky (by the
matrix itself) makes 500 finish in ~2 s. Which sizes hang depends on the compiled program: with
the data ``x`` passed as an argument, or built inside the objective, 100 hang too. The script gives up
after ``--timeout`` seconds.

    python benchmarks/xla_cpu_hang.py --batch 100     # finishes
    python benchmarks/xla_cpu_hang.py --batch 500     # hangs (reported after the timeout)
"""

import argparse
import faulthandler
import sys
import time

import jax
import jax.numpy as jnp


def make_newton(x, steps=30):
    """Damped saddle-free Newton on a Poisson GP regression's negative log density in
    (log ρ, log α, f̃), f = chol(K) f̃, with the data ``x`` closed over."""
    n = x.shape[0]

    def f(t):
        rho, alpha, ft = jnp.exp(t[0]), jnp.exp(t[1]), t[2:]
        K = alpha**2 * jnp.exp(-0.5 * ((x[:, None] - x[None, :]) / rho) ** 2) + 1e-10 * jnp.eye(n)
        fv = jnp.linalg.cholesky(K) @ ft
        return jnp.sum(jnp.exp(fv) - 3.0 * fv) + 0.5 * ft @ ft + 0.5 * t[0] ** 2 + 0.5 * t[1] ** 2

    def newton(t0):
        def body(c):
            t, k = c
            g, H = jax.grad(f)(t), jax.hessian(f)(t)
            e, v = jnp.linalg.eigh(H)
            return t - 0.5 * v @ ((v.T @ g) / jnp.maximum(jnp.abs(e), 1e-8)), k + 1

        return jax.lax.while_loop(lambda c: c[1] < steps, body, (t0, 0))[0]

    return newton


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # a script, not the library: float64 as the report ran
    print(jax.__version__, jax.devices(), flush=True)
    faulthandler.dump_traceback_later(args.timeout, exit=True, file=sys.stderr)
    newton = make_newton(jnp.linspace(-10, 10, 11))
    t0 = 0.01 * jax.random.normal(jax.random.key(0), (args.batch, 13))
    start = time.perf_counter()
    jax.jit(jax.vmap(newton))(t0).block_until_ready()
    faulthandler.cancel_dump_traceback_later()
    print(f"batch {args.batch}: finished in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
