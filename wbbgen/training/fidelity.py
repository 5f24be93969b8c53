r"""The generator's fidelity: its draws against exact WBB solves of the same draws.

At a few hyperparameter values spread over the training support, the generator and the
exact solver see identical weights and prior draws; per value and flat coordinate j, with
g and e the S paired draws,

* sd ratio  r_j = sd(g_j) / sd(e_j),
* mean error |mean(g_j) − mean(e_j)| / sd(e_j),
* rmse  sqrt(mean((g_j − e_j)²)) / sd(e_j).

**The guard** (:func:`check_fidelity`): a checked value is *outside the band* when

* the median over coordinates of r_j lies outside [0.9, 1.1] (the median is robust to the
  noise of single coordinates; its Monte Carlo error, from resampling the S paired draws,
  is reported beside it as ``sd_ratio_se``), or
* some coordinate's mean error exceeds 0.1 sd by more than its Monte Carlo error allows:
  err_j − z·se_j > 0.1 with se_j = sd(g_j − e_j)/(√S·sd(e_j)) and z = Φ⁻¹(1 − 0.01/(2d)),
  so that over d coordinates a generator exactly at 0.1 sd is flagged by noise with
  probability ≤ 1 % (the worst of many coordinates over few paired draws is noisy), or
* fewer than 90 % of the exact reference solves converged (the check itself is then
  unreliable).

:class:`~wbbgen.AmortizedWBB` warns (:class:`FidelityWarning`) with the values, the figures
and the remedies when any checked value is outside the band; :meth:`~wbbgen.AmortizedWBB.get_samples`
refines the draws nearest to such values by Newton steps and warns if that is not enough.

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

import warnings
from collections.abc import Mapping, Sequence
from statistics import NormalDist

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen.exact import solve_path_chunked
from wbbgen.hyper import encode, spread_values
from wbbgen.problem import Problem, generate_grid

__all__ = [
    "fidelity",
    "format_fidelity",
    "check_fidelity",
    "warn_fidelity",
    "near_flagged",
    "warn_near_flagged",
    "FidelityWarning",
    "SD_RATIO_BAND",
    "MEAN_ERROR_MAX",
    "CONVERGED_MIN",
]

#: The band of the median sd ratio (generator / exact) at a checked value.
SD_RATIO_BAND = (0.9, 1.1)
#: The largest mean error (in exact-posterior sd) allowed beyond its Monte Carlo error.
MEAN_ERROR_MAX = 0.1
#: The smallest share of converged exact reference solves that makes a check trustworthy.
CONVERGED_MIN = 0.9
#: Resamples of the paired draws for the sd ratio's Monte Carlo error.
_BOOTSTRAP = 200


class FidelityWarning(UserWarning):
    """The trained generator's draws are outside the fidelity band against exact WBB at some
    hyperparameter values (:func:`check_fidelity`)."""


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
    coordinates, module docstring), ``exact_converged`` (share of exact solves converged),
    and the guard's inputs ``sd_ratio_se`` (Monte Carlo error of the median sd ratio) and
    ``mean_error_excess`` (max over coordinates of err_j − z·se_j), each ``(V,)``.
    ``max_draws`` bounds the draws solved together.
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
    S, d = exact.shape[1], exact.shape[2]
    z = NormalDist().inv_cdf(1.0 - 0.01 / (2 * d))
    se = (gen - exact).std(1) / (np.sqrt(S) * sd)
    idx = np.random.default_rng(0).integers(0, S, size=(_BOOTSTRAP, S))
    boot = np.median(gen[:, idx].std(2) / exact[:, idx].std(2), axis=-1)  # (V, B)
    return {
        "values": values,
        "sd_ratio_median": np.median(ratio, 1),
        "sd_ratio_min": ratio.min(1),
        "sd_ratio_max": ratio.max(1),
        "mean_error_max": mean_err.max(1),
        "rmse_median": np.median(rmse, 1),
        "exact_converged": np.asarray(info.converged).mean(1),
        "sd_ratio_se": boot.std(1),
        "mean_error_excess": (mean_err - z * se).max(1),
    }


def check_fidelity(fid: Mapping) -> list[list[str]]:
    """Per checked value, the reasons it is outside the band (module docstring); an empty
    list for a value inside it. Checks without the guard's inputs (saved by older versions)
    are judged on the median sd ratio and the convergence alone."""
    lo, hi = SD_RATIO_BAND
    out = []
    for i, r in enumerate(np.asarray(fid["sd_ratio_median"])):
        reasons = []
        if not (lo <= r <= hi):
            se = fid.get("sd_ratio_se")
            reasons.append(f"sd ratio {r:.2f}" + (f" ± {se[i]:.2f}" if se is not None else "") + f" (band {lo}-{hi})")
        excess = fid.get("mean_error_excess")
        if excess is not None and excess[i] > MEAN_ERROR_MAX:
            reasons.append(f"mean error up to {fid['mean_error_max'][i]:.2f} sd (> {MEAN_ERROR_MAX} beyond MC error)")
        conv = fid.get("exact_converged")
        if conv is not None and conv[i] < CONVERGED_MIN:
            reasons.append(f"only {conv[i]:.0%} of the exact reference solves converged")
        if not np.all(np.isfinite([r])):
            reasons.append("non-finite draws")
        out.append(reasons)
    return out


def _label(row, names) -> str:
    return ", ".join(f"{n}={x:.4g}" for n, x in zip(names, row))


def warn_fidelity(fid: Mapping, names: Sequence[str], stacklevel: int = 3) -> None:
    """Warn (:class:`FidelityWarning`) naming each checked value outside the band, why, and
    the remedies; silent when every value is inside it."""
    values = np.atleast_2d(np.asarray(fid["values"]))
    bad = [(_label(values[i], names), r) for i, r in enumerate(check_fidelity(fid)) if r]
    if not bad:
        return
    rows = "; ".join(f"{label}: {', '.join(r)}" for label, r in bad)
    warnings.warn(
        f"the generator's draws are outside the fidelity band against exact WBB at {len(bad)} of "
        f"{len(values)} checked values ({rows}). The generator alone is not the WBB posterior there. "
        "get_samples refines the draws near those values by Newton steps unless refine=0 (and says "
        "when that is not enough); or train longer (num_steps), narrow the `hyper` range, or use "
        "exact_wbb there. `result.fidelity` holds the figures (wbbgen.format_fidelity).",
        FidelityWarning,
        stacklevel=stacklevel,
    )


def near_flagged(fid: Mapping | None, domains, values) -> np.ndarray:
    """``(K,)`` bool: which of ``values (K, m)`` lie nearest (in the generator's encoding) to
    a checked value that is outside the band (all False without a check)."""
    values = np.atleast_2d(np.asarray(values))
    if fid is None:
        return np.zeros(len(values), bool)
    flagged = np.array([bool(r) for r in check_fidelity(fid)])
    if not flagged.any():
        return np.zeros(len(values), bool)
    checked = np.asarray(encode(domains, jnp.asarray(np.atleast_2d(fid["values"]), jnp.float32)))
    asked = np.asarray(encode(domains, jnp.asarray(values, jnp.float32)))
    return flagged[np.argmin(((asked[:, None, :] - checked[None]) ** 2).sum(-1), axis=1)]


def warn_near_flagged(values, num_values: int, names, decrement=None, stacklevel: int = 3) -> None:
    """Warn that the draws at ``values`` (nearest to a checked value outside the band) are
    not refined, or (``decrement``, per draw) that refinement left some unconverged."""
    shown = ", ".join(_label(v, names) for v in np.asarray(values)[:5])
    more = f" and {len(values) - 5} more" if len(values) > 5 else ""
    if decrement is None:
        state = "are the generator's alone (refine=0); pass refine=2 (or more) to refine them"
    else:
        bad = np.mean(~(np.asarray(decrement) <= 0.1))
        state = (
            f"were refined by Newton steps, but {bad:.0%} of them are still more than 0.1 posterior sd "
            "(Newton decrement, stats['decrement']) from their exact WBB optimum; pass a larger refine="
        )
    warnings.warn(
        f"{len(values)} of the {num_values} requested hyperparameter values ({shown}{more}) lie nearest to a "
        f"value where the generator failed its fidelity check (see the warning from run()); their draws {state}.",
        FidelityWarning,
        stacklevel=stacklevel,
    )


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
