r"""The generator's fidelity: its draws against exact WBB solves of the same draws.

At a few hyperparameter values spread over the training support, the generator and the
exact solver see identical weights and prior draws; per value and flat coordinate j, with
g and e the S paired draws,

* sd ratio  r_j = sd(g_j) / sd(e_j),
* mean error |mean(g_j) − mean(e_j)| / sd(e_j),
* rmse  sqrt(mean((g_j − e_j)²)) / sd(e_j).

Example:
    >>> import numpy as np
    >>> from wbbgen.training import format_fidelity
    >>> fid = {"values": np.array([[0.1], [10.0]]), "sd_ratio_median": np.array([0.98, 1.01]),
    ...        "sd_ratio_min": np.array([0.9, 0.95]), "sd_ratio_max": np.array([1.05, 1.1]),
    ...        "mean_error_max": np.array([0.03, 0.02]), "rmse_median": np.array([0.1, 0.05]),
    ...        "exact_converged": np.array([1.0, 1.0])}
    >>> print(format_fidelity(fid, names=("lam",)).splitlines()[2].split()[:2])
    ['0.1', '0.980']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen.exact import solve_path_chunked
from wbbgen.hyper import encode, spread_values
from wbbgen.problem import Problem, generate_grid

__all__ = ["fidelity", "format_fidelity"]


def fidelity(
    problem: Problem,
    generator,
    domains,
    rng_key,
    *,
    num_values: int = 5,
    num_samples: int = 64,
    tol=1e-3,
    method: str = "auto",
    max_draws: int | None = None,
) -> dict:
    """Generator vs exact WBB on identical draws at ``num_values`` hyperparameter values.

    The values: the first continuous hyperparameter on equal steps over 90 % of its encoded
    range, the others at random in it, discrete ones cycling through their choices
    (:func:`wbbgen.hyper.spread_values`). Returns numpy arrays: ``values (V, m)``,
    ``sd_ratio_median/min/max``, ``mean_error_max``, ``rmse_median`` (over the flat
    coordinates, module docstring) and ``exact_converged`` (share of exact solves
    converged), each ``(V,)``. ``max_draws`` bounds the draws solved together.
    """
    values = spread_values(domains, num_values, rng_key, edge=0.9)
    thetas, info, v, pdraw = solve_path_chunked(
        problem, rng_key, values, num_samples, max_draws=max_draws, tol=tol, method=method
    )
    z = encode(domains, jnp.asarray(values, thetas.dtype))
    gen = jax.jit(generate_grid)(generator, v, z, pdraw.noise)
    exact, gen = np.asarray(thetas, np.float64), np.asarray(gen, np.float64)
    sd = exact.std(1)
    ratio = gen.std(1) / sd
    mean_err = np.abs(gen.mean(1) - exact.mean(1)) / sd
    rmse = np.sqrt(((gen - exact) ** 2).mean(1)) / sd
    return {
        "values": values,
        "sd_ratio_median": np.median(ratio, 1),
        "sd_ratio_min": ratio.min(1),
        "sd_ratio_max": ratio.max(1),
        "mean_error_max": mean_err.max(1),
        "rmse_median": np.median(rmse, 1),
        "exact_converged": np.asarray(info.converged).mean(1),
    }


def format_fidelity(fid: Mapping, name: str | None = None, *, names: Sequence[str] | None = None) -> str:
    """A table of :func:`fidelity` output, one row per checked value, labelled with every
    hyperparameter (``names``; default ``lam``, ``h1``, …, or ``name`` for the first)."""
    values = np.atleast_2d(np.asarray(fid["values"]))
    if names is None:
        names = [name or "lam"] + [f"h{i}" for i in range(1, values.shape[1])]
    names = list(names)
    label = ", ".join(names)
    width = max(10, len(label))
    lines = [
        "fidelity vs exact WBB (same draws):",
        f"  {label:>{width}} {'sd ratio (median)':>18} {'sd ratio range':>16} {'max |mean err|/sd':>18} "
        f"{'rmse/sd':>8} {'exact conv.':>11}",
    ]
    converged = np.asarray(fid.get("exact_converged", np.full(len(values), np.nan)))
    for i, row in enumerate(values):
        point = ", ".join(f"{x:.4g}" for x in row)
        lines.append(
            f"  {point:>{width}} {fid['sd_ratio_median'][i]:>18.3f} "
            f"{fid['sd_ratio_min'][i]:>7.2f}-{fid['sd_ratio_max'][i]:<8.2f} "
            f"{fid['mean_error_max'][i]:>18.3f} {fid['rmse_median'][i]:>8.3f} {converged[i]:>11.0%}"
        )
    return "\n".join(lines)
