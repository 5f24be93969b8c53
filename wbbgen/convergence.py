r"""Why exact WBB draws did not converge, by site: what :class:`~wbbgen.exact.ConvergenceWarning` says.

For up to ``MAX_DIAGNOSED`` unconverged draws the Hessian H of each draw's own weighted
objective at its last iterate is decomposed, and the draw is put in the first class that fits:

* **non-finite**: the iterate or H has NaN/inf (the sites with non-finite entries);
* **runs off**: some coordinate is more than ``RUNAWAY`` converged-draw sds from the median of
  the converged draws at the same λ (or, with no converged draw there and no Hessian, beyond
  ``RUNAWAY`` in absolute value): the optimum is at infinity along it (separation in a
  classification model, a scale parameter collapsing to 0): a stronger prior (larger λ) or a
  proper prior on that site;
* **runs off or flat**: with no converged draw at that λ, a coordinate beyond ``RUNAWAY`` in
  absolute value along H's flattest direction, where that eigenvalue is under ``FLAT`` × the
  largest: at infinity, or barely identified (an uncentred predictor beside an intercept); the
  warning gives both remedies;
* **not convex**: the smallest eigenvalue of H is negative (a degenerate joint mode, typically a
  hierarchical scale parameter optimised jointly with its group effects);
* **flat**: the smallest eigenvalue is under ``FLAT`` × the largest (the data and prior do not
  identify a direction, or barely: collinear columns, a flat prior, an uncentred predictor beside
  an intercept), the sites loading on its eigenvector;
* **slow**: none of these: more ``max_steps`` or a looser ``tol`` will do.

Above ``MAX_DENSE`` coordinates (a neural net) the Hessian is not formed (it would not fit in
memory): the draws are checked for non-finite values and runaway coordinates only, the rest are
reported as "slow or ill-conditioned". Hessians are formed one draw at a time (``lax.map``), so
memory stays that of one d × d matrix.

Sites are named by the coordinates involved (the latent site whose constrained value moves with
each coordinate).
"""

from __future__ import annotations

from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np

from wbbgen.problem import Problem, loss, name_sites

__all__ = ["diagnose", "MAX_DIAGNOSED", "MAX_DENSE", "RUNAWAY", "FLAT"]

MAX_DIAGNOSED = 32
"""Unconverged draws whose Hessian is decomposed (the rest are counted, not diagnosed)."""
MAX_DENSE = 1000
"""Above this many coordinates the Hessian is not formed (curvature classes not checked)."""
RUNAWAY = 10.0
"""A coordinate this many sds (of the converged draws) from their median runs off."""
FLAT = 1e-8
"""An eigenvalue under this fraction of the largest is a flat direction."""

_ADVICE = {
    "non-finite": "the objective is NaN/inf there: check the model's support and the hyperparameter values",
    "runs off": "the optimum is at infinity along them (separation, or a scale collapsing to 0): a stronger "
    "prior (larger λ) or a proper, informative prior on those sites",
    "not convex": "the weighted objective is not convex there (a degenerate joint mode, e.g. a group scale "
    "optimised jointly with its group effects): integrate group effects out (declare them in a plate, see "
    "docs/howto/models.md) or use a stronger prior",
    "flat": "the data and prior do not identify that direction, or barely (collinear columns, a flat prior, "
    "a predictor far from zero beside an intercept): centre and scale the predictors, a proper prior on those "
    "sites, or drop the redundant column",
    "runs off or flat": "with no converged draw to compare with, a large coordinate along a flat direction: "
    "either the optimum is at infinity (separation, a scale collapsing to 0: a stronger prior) or the objective "
    "is badly conditioned (a predictor far from zero beside an intercept, collinear columns: centre and scale "
    "the predictors)",
    "slow": "nothing is wrong with the objective there: raise `max_steps` or loosen `tol`",
    "slow or ill-conditioned": "no runaway or non-finite coordinate; the curvature was not checked "
    f"(more than {MAX_DENSE} coordinates): raise `max_steps`, loosen `tol`, or strengthen the prior",
}


def diagnose(problem: Problem, thetas, converged, v, pdraw, values) -> str:
    """One line per cause among the unconverged draws (module docstring): count, sites, advice.

    Args:
        thetas: ``(K, S, d)`` last iterates; ``converged`` ``(K, S)`` booleans.
        v, pdraw: the draws' weights ``(S, ·)`` and prior draws ``(K, S, ...)``.
        values: ``(K, m)`` hyperparameter values.
    """
    th = np.asarray(thetas)
    ok = np.asarray(converged, bool)
    bad = np.argwhere(~ok)[:MAX_DIAGNOSED]
    if not len(bad):
        return ""
    k, s = bad[:, 0], bad[:, 1]
    data = problem.objective.data
    d = th.shape[-1]
    draw = jax.tree_util.tree_map(lambda a: a[k, s], pdraw)
    if d <= MAX_DENSE:

        def one(args):
            t, vv, dd, x = args
            return jax.hessian(lambda u: loss(problem, u, vv, dd, x, data))(t)

        hess = jax.jit(lambda *a: jax.lax.map(one, a))
        H = np.asarray(hess(jnp.asarray(th[k, s]), v[s], draw, jnp.asarray(values)[k]), np.float64)
    else:
        H = [None] * len(k)
    counts: Counter = Counter()
    for i, (kk, ss) in enumerate(zip(k, s)):
        cause, mask = _classify(th[kk, ss], H[i], th[kk][ok[kk]])
        sites = name_sites(problem, problem.objective.init_params, jnp.asarray(values)[kk], mask) if mask.any() else ""
        counts[(cause, sites)] += 1
    lines = []
    for (cause, sites), n in counts.most_common():
        where = f" in {sites}" if sites else ""
        lines.append(f"{n} of the {len(bad)} diagnosed: {cause}{where}: {_ADVICE[cause]}.")
    return " ".join(lines)


def _classify(theta, H, converged_k):
    """``(cause, coordinate mask)`` of one unconverged draw."""
    d = theta.size
    finite = np.isfinite(theta) & (np.all(np.isfinite(H), axis=1) if H is not None else True)
    if not finite.all():
        return "non-finite", ~finite
    if H is not None:
        eig, vec = np.linalg.eigh(0.5 * (H + H.T))
        top = max(float(np.abs(eig).max()), 1e-300)
        loading = np.abs(vec[:, 0]) > 0.3 if d > 1 else np.ones(1, bool)
    if len(converged_k) >= 2:
        centre, sd = np.median(converged_k, 0), converged_k.std(0) + 1e-12
        far = np.abs(theta - centre) > RUNAWAY * sd
    else:
        # No converged draw to measure against: a large value runs off only where the objective
        # flattens along it (at infinity the curvature vanishes). A large but well-curved value
        # (an intercept of 48 beside an uncentred predictor) is the curvature tests' to judge.
        far = np.abs(theta) > RUNAWAY
        if H is not None:
            far &= (abs(eig[0]) < FLAT * top) & (np.abs(vec[:, 0]) > 0.3)
            if far.any():  # at infinity, or barely identified: these checks cannot tell which
                return "runs off or flat", far
    if far.any():
        return "runs off", far
    if H is None:
        return "slow or ill-conditioned", np.zeros(d, bool)
    if eig[0] < -FLAT * top:
        return "not convex", loading
    if eig[0] < FLAT * top:
        return "flat", loading
    return "slow", np.zeros(d, bool)
