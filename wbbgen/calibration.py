"""Calibration of WBB draws against a reference posterior (e.g. :func:`wbbgen.nuts_reference`).

Every scalar marginal θ_j of every site, at every hyperparameter value λ, is compared:
W = the WBB draws (independent, N_W of them, chains pooled), R = the reference draws
(MCMC, N_R of them with effective sample sizes from ArviZ). Notation: m, s, κ are the mean,
standard deviation and kurtosis (m₄/s⁴, 3 for a normal) of a draw set.

* ``sd_ratio`` r = s_W / s_R (ideal 1);
* ``mean_shift`` δ = (m_W − m_R) / s_R (ideal 0);
* ``coverage_50``, ``coverage_90``: share of R inside the central 50 % / 90 % interval of W
  (ideal 0.5 / 0.9);
* ``wasserstein``: W₁(F_W, F_R) / s_R = ∫|F_W(x) − F_R(x)| dx / s_R (ideal 0).

Monte Carlo standard errors (``*_mcse``), first order, W and R independent:

* Var(ŝ²) = (m₄ − s⁴)/n for n i.i.d. draws, and ŝ = √ŝ² (delta method) gives
  Var(ŝ) ≈ s²(κ − 1)/(4n). For MCMC draws n is ``az.ess(method="sd")``, the ESS of
  (x − x̄)². Hence se(r) = r·√[(κ_W − 1)/(4N_W) + (κ_R − 1)/(4 ESS_sd)].
* se(δ) = √[(s_W²/N_W + s_R²/ESS_mean)/s_R² + δ²(κ_R − 1)/(4 ESS_sd)]
  (the last term is the error of the s_R denominator).
* Coverage p̂ = mean of the indicators 1{lo_W ≤ R ≤ hi_W}: binomial with the indicator's
  ESS, p(1 − p)/ESS_ind, plus the error of the interval ends estimated from N_W draws: with
  U = F_R(Q̂_W) uniform order statistics when F_W = F_R, Var(U_(1+q)/2 − U_(1−q)/2) = q(1−q)/N_W.
  se(p̂) = √[p̂(1 − p̂)/ESS_ind + q(1 − q)/N_W] (first order in F_W ≈ F_R at the interval ends).
* W₁ has no first-order error at W₁ = 0, where its Monte Carlo *bias* dominates: for two
  samples of one distribution, √(1/N_W + 1/N_R)⁻¹·(F̂_W − F̂_R) is a Brownian bridge B(F(x))
  and E|B(u)| = √(2u(1−u)/π), so E[W₁] ≈ √(2/π)·√(1/N_W + 1/ESS_bulk)·∫√(F(1−F)) dx (F the
  pooled ECDF). ``wasserstein_mcse`` is this noise scale divided by s_R; W₁/mcse then has
  mean 1 and sd 0.35 (simulated, normal draws), so W₁ below ~3× it is Monte Carlo noise.
  For a normal, ∫√(Φ(1−Φ)) dx = 1.61 and the scale is 1.29·√(1/N_W + 1/ESS); for a shift
  well above the noise :math:`W_1 = |m_W - m_R|` and its sd √(1/N_W + 1/ESS)·s is 0.78× the scale.

Example:
    >>> cal = calibration(wbb_idata, nuts_idata)  # doctest: +SKIP
    >>> summarize(cal)[["coverage_90", "coverage_90_worst", "coverage_90_worst_param"]]  # doctest: +SKIP
         coverage_90  coverage_90_worst coverage_90_worst_param
    lam
    0.1        0.897              0.861                    b[3]
    1.0        0.900              0.874                   sigma
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

__all__ = ["calibration", "summarize", "plot_calibration", "METRICS", "IDEAL"]

#: The calibration metrics, in the order of :func:`summarize`'s columns.
METRICS = ("sd_ratio", "mean_shift", "coverage_50", "coverage_90", "wasserstein")
_CHUNK = 2**22  # elements per block of the W₁ computation (bounded memory)


def calibration(idata, reference, var_names: Sequence[str] | None = None) -> xr.Dataset:
    """Compare WBB draws with reference draws marginal by marginal, at each λ.

    Args:
        idata: WBB draws, InferenceData/DataTree (or its posterior Dataset) with
            ``posterior[site]`` dims ``(chain, draw, *hyper, *site dims)``; draws independent.
        reference: reference draws in the same layout (MCMC chains, e.g. ``nuts_reference``).
            Grid points are matched by value (``np.isclose``); only common ones are kept.
        var_names: sites to compare (default: every site in both).

    Returns:
        ``xarray.Dataset`` with dims ``(*hyper, param)`` — ``param`` labels each scalar
        marginal (``"b[0]"``, ``"sigma"``; non-index coordinate ``site``) — and variables
        ``sd_ratio``, ``mean_shift``, ``coverage_50``, ``coverage_90``, ``wasserstein``, each
        with ``*_mcse`` (formulas in the module docs), and ``ess_reference`` (bulk ESS).

    Example:
        >>> cal = calibration(wbb_idata, nuts_idata, var_names=["b"])  # doctest: +SKIP
        >>> cal.sd_ratio.sel(lam=1.0).median().item()  # doctest: +SKIP
        0.98
    """
    wbb, ref = _posterior(idata, "idata"), _posterior(reference, "reference")
    names = _var_names(wbb, ref, var_names)
    hyper = _hyper_dims(wbb, names[0])
    for name in names:
        for label, ds in (("idata", wbb), ("reference", ref)):
            found = _hyper_dims(ds, name)
            if found != hyper:
                raise ValueError(
                    f"{label}.posterior[{name!r}] has hyper dims {found}, expected {hyper}; "
                    "both inputs need the same hyperparameter dims in the same order."
                )
    wbb, ref = _match_grids(wbb, ref, hyper)

    w_draws, r_draws, labels, sites = [], [], [], []
    for name in names:
        site_dims = [d for d in wbb[name].dims if d not in ("chain", "draw", *hyper)]
        if [d for d in ref[name].dims if d not in ("chain", "draw", *hyper)] != site_dims or any(
            wbb.sizes[d] != ref.sizes[d] for d in site_dims
        ):
            raise ValueError(f"site {name!r} has different shapes in idata and reference.")
        w = wbb[name].transpose("chain", "draw", *hyper, *site_dims).values
        r = ref[name].transpose("chain", "draw", *hyper, *site_dims).values
        shape = w.shape[2 + len(hyper) :]
        w_draws.append(w.reshape(w.shape[0] * w.shape[1], *w.shape[2 : 2 + len(hyper)], -1))
        r_draws.append(r.reshape(*r.shape[: 2 + len(hyper)], -1))
        labels += _labels(name, shape)
        sites += [name] * int(np.prod(shape, dtype=int))
    w = np.concatenate(w_draws, axis=-1).astype(float)  # (N_W, *H, P)
    r = np.concatenate(r_draws, axis=-1).astype(float)  # (C_R, D_R, *H, P)
    out = _metrics(w, r, hyper)
    coords = {h: wbb[h].values for h in hyper}
    coords |= {"param": np.array(labels), "site": ("param", np.array(sites))}
    dims = (*hyper, "param")
    return xr.Dataset(
        {k: (dims, v) for k, v in out.items()},
        coords=coords,
        attrs={"n_wbb": w.shape[0], "n_reference": r.shape[0] * r.shape[1]},
    )


#: The ideal value of each metric: the worst marginal is the one farthest from it.
IDEAL = {"sd_ratio": 1.0, "mean_shift": 0.0, "coverage_50": 0.5, "coverage_90": 0.9, "wasserstein": 0.0}


def _distance(cal: xr.Dataset, metric: str) -> xr.DataArray:
    """How far each marginal's value is from the ideal: ``|log r|`` for the sd ratio, else ``|x − ideal|``."""
    x = cal[metric]
    if metric == "sd_ratio":
        return np.abs(np.log(x))
    return np.abs(x - IDEAL[metric])


def summarize(cal: xr.Dataset):
    """Per-λ medians of each metric across the marginals, and the worst marginal beside each.

    For each metric m the table has ``m`` (the median over the marginals), ``m_worst`` (the
    value of the marginal farthest from the ideal: ``|log r|`` largest for the sd ratio, ``|x − ideal|``
    for the others, ideal 0 / 0.5 / 0.9 / 0) and ``m_worst_param`` (that marginal's label,
    e.g. ``"sigma"`` or ``"b[2]"``), then ``n_params``. A marginal whose metric is NaN (a
    constant draw set) is the worst one.

    Returns:
        ``pandas.DataFrame`` indexed by the hyper dims.

    Example:
        >>> from wbbgen.calibration import summarize
        >>> import numpy as np, xarray as xr
        >>> rows = {"sd_ratio": [1.0, 1.0, 0.5], "mean_shift": [0.0, 0.0, 0.3], "coverage_50": [0.5, 0.5, 0.3],
        ...         "coverage_90": [0.9, 0.9, 0.69], "wasserstein": [0.0, 0.0, 0.4]}
        >>> cal = xr.Dataset({m: (("lam", "param"), [v]) for m, v in rows.items()},
        ...                  coords={"lam": [1.0], "param": ["b[0]", "b[1]", "sigma"]})
        >>> table = summarize(cal)
        >>> print(table[["coverage_90", "coverage_90_worst", "coverage_90_worst_param"]])
        ... # doctest: +NORMALIZE_WHITESPACE
             coverage_90  coverage_90_worst coverage_90_worst_param
        lam
        1.0          0.9               0.69                   sigma
    """
    medians = cal[list(METRICS)].median("param").to_dataframe()
    table = medians[[]].copy()
    labels = np.asarray(cal["param"].values)
    for m in METRICS:
        dist = _distance(cal, m).fillna(np.inf)
        worst = dist.argmax("param")
        label = xr.DataArray(labels[np.asarray(worst)], coords=worst.coords, dims=worst.dims)
        table[m] = medians[m]
        table[f"{m}_worst"] = cal[m].isel(param=worst).drop_vars(["param", "site"], errors="ignore").to_series()
        table[f"{m}_worst_param"] = label.to_series()
    table["n_params"] = cal.sizes["param"]
    return table


def plot_calibration(cal: xr.Dataset, ax=None):
    """Plot the sd ratio and the 90 % coverage against λ (log axis).

    Lines are medians over the marginals, bands their interquartile range, and the grey
    bands the ideal regions ([0.9, 1.1] for the sd ratio, [0.85, 0.95] for coverage).

    Args:
        cal: output of :func:`calibration` with one hyper dim.
        ax: two matplotlib axes, or None to make a new figure.

    Returns:
        The two axes.

    Example:
        >>> axes = plot_calibration(calibration(wbb_idata, nuts_idata))  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    hyper = [d for d in cal.sd_ratio.dims if d != "param"]
    if len(hyper) != 1:
        raise ValueError(
            f"plot_calibration needs one hyper dim, got {hyper}; select the others first, "
            f"e.g. cal.sel({hyper[-1] if hyper else 'lam'}=...)."
        )
    (h,) = hyper
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    ax = np.asarray(ax, dtype=object).ravel()
    if ax.size != 2:
        raise ValueError(f"ax must be two matplotlib axes, got {ax.size}.")
    x = cal[h].values
    panels = (
        ("sd_ratio", "sd ratio (WBB / reference)", (0.9, 1.1), 1.0),
        ("coverage_90", "coverage of the 90 % interval", (0.85, 0.95), 0.9),
    )
    for a, (var, title, band, ideal) in zip(ax, panels, strict=True):
        q25, q50, q75 = (cal[var].quantile(q, "param").values for q in (0.25, 0.5, 0.75))
        a.axhspan(*band, color="0.85", zorder=0, label="ideal band")
        a.axhline(ideal, color="0.5", lw=0.8)
        a.fill_between(x, q25, q75, alpha=0.3, label="interquartile range")
        a.plot(x, q50, marker="o", label="median over parameters")
        if np.all(x > 0):
            a.set_xscale("log")
        a.set_xlabel(h)
        a.set_title(title)
    ax[0].legend(fontsize="small")
    return ax


# --------------------------------------------------------------------------- helpers


def _posterior(obj, arg: str) -> xr.Dataset:
    post = obj
    if hasattr(obj, "posterior"):
        post = obj.posterior
    elif isinstance(obj, xr.DataTree) and "posterior" in obj.children:
        post = obj["posterior"]
    if isinstance(post, xr.DataTree):
        post = post.to_dataset()
    if not isinstance(post, xr.Dataset):
        raise TypeError(
            f"{arg} must be InferenceData, a DataTree with a posterior group, or a Dataset; got {type(obj).__name__}."
        )
    return post


def _var_names(wbb, ref, var_names):
    if var_names is None:
        names = [v for v in wbb.data_vars if v in ref.data_vars]
        if not names:
            raise ValueError("idata and reference share no posterior site; pass var_names.")
        return names
    names = [var_names] if isinstance(var_names, str) else list(var_names)
    for name in names:
        for label, ds in (("idata", wbb), ("reference", ref)):
            if name not in ds.data_vars:
                raise ValueError(f"var_names: {name!r} is not in {label}.posterior (sites: {list(ds.data_vars)}).")
    return names


def _hyper_dims(ds, name) -> tuple[str, ...]:
    site = re.compile(rf"^{re.escape(name)}_dim_\d+$")
    return tuple(d for d in ds[name].dims if d not in ("chain", "draw") and not site.match(d))


def _match_grids(wbb, ref, hyper):
    for h in hyper:
        wv, rv = np.asarray(wbb[h].values, float), np.asarray(ref[h].values, float)
        close = np.isclose(wv[:, None], rv[None, :], rtol=1e-8, atol=0.0)
        i_w, i_r = np.nonzero(close)
        if i_w.size == 0:
            raise ValueError(f"idata and reference share no {h} value: {wv} vs {rv}; run both on one grid.")
        wbb = wbb.isel({h: i_w}).assign_coords({h: rv[i_r]})
        ref = ref.isel({h: i_r})
    return wbb, ref


def _labels(name, shape):
    if not shape:
        return [name]
    return [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)]


def _ess(r, hyper, method):
    """ArviZ ESS of draws ``(chain, draw, *H, P)`` per (λ, marginal); NaN where constant."""
    import arviz as az

    dims = ("chain", "draw", *hyper, "param")
    with warnings.catch_warnings():  # constant indicators make ArviZ warn; NaN is handled
        warnings.simplefilter("ignore")
        return np.asarray(az.ess(xr.Dataset({"x": (dims, r)}), method=method)["x"].values)


def _moments(x, axis):
    m = x.mean(axis)
    s = x.std(axis, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        kurt = ((x - np.expand_dims(m, axis)) ** 4).mean(axis) / x.var(axis) ** 2
    return m, s, kurt


def _metrics(w, r, hyper) -> dict[str, np.ndarray]:
    n_w = w.shape[0]
    r_flat = r.reshape(-1, *r.shape[2:])
    m_w, s_w, k_w = _moments(w, 0)
    m_r, s_r, k_r = _moments(r_flat, 0)
    ess_mean, ess_sd, ess_bulk = (_ess(r, hyper, m) for m in ("mean", "sd", "bulk"))
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = s_w / s_r
        out["sd_ratio"] = ratio
        out["sd_ratio_mcse"] = ratio * np.sqrt((k_w - 1) / (4 * n_w) + (k_r - 1) / (4 * ess_sd))
        shift = (m_w - m_r) / s_r
        out["mean_shift"] = shift
        out["mean_shift_mcse"] = np.sqrt(
            (s_w**2 / n_w + s_r**2 / ess_mean) / s_r**2 + shift**2 * (k_r - 1) / (4 * ess_sd)
        )
        for q in (0.5, 0.9):
            lo, hi = np.quantile(w, [(1 - q) / 2, (1 + q) / 2], axis=0)
            inside = ((r >= lo) & (r <= hi)).astype(float)
            p = inside.mean((0, 1))
            ess_ind = _ess(inside, hyper, "mean")
            ess_ind = np.where(np.isfinite(ess_ind), ess_ind, r_flat.shape[0])
            key = f"coverage_{round(100 * q)}"
            out[key] = p
            out[key + "_mcse"] = np.sqrt(p * (1 - p) / ess_ind + q * (1 - q) / n_w)
        w1, spread = _wasserstein(w, r_flat)
        out["wasserstein"] = w1 / s_r
        out["wasserstein_mcse"] = np.sqrt(2 / np.pi) * np.sqrt(1 / n_w + 1 / ess_bulk) * spread / s_r
    out["ess_reference"] = ess_bulk
    return out


def _wasserstein(a, b):
    """W₁ between the columns of ``a`` (N_a, ...) and ``b`` (N_b, ...) and ∫√(F(1−F)) dx.

    Sorted-merge formula: on the merged sorted values x₍ₖ₎, W₁ = Σ_k |F_a − F_b|(x₍ₖ₎)·Δx₍ₖ₎,
    with F the right-continuous ECDFs; F in the spread term is the pooled ECDF.
    """
    n_a, n_b = a.shape[0], b.shape[0]
    shape = a.shape[1:]
    a, b = a.reshape(n_a, -1), b.reshape(n_b, -1)
    w1 = np.empty(a.shape[1])
    spread = np.empty(a.shape[1])
    step = max(1, _CHUNK // (n_a + n_b))
    for start in range(0, a.shape[1], step):
        cols = slice(start, start + step)
        x = np.concatenate([a[:, cols], b[:, cols]])
        order = np.argsort(x, axis=0, kind="stable")
        xs = np.take_along_axis(x, order, axis=0)
        from_a = order < n_a
        f_a = np.cumsum(from_a, axis=0)[:-1] / n_a
        f_b = np.cumsum(~from_a, axis=0)[:-1] / n_b
        f = (f_a * n_a + f_b * n_b) / (n_a + n_b)
        dx = np.diff(xs, axis=0)
        w1[cols] = np.sum(np.abs(f_a - f_b) * dx, axis=0)
        spread[cols] = np.sum(np.sqrt(f * (1 - f)) * dx, axis=0)
    return w1.reshape(shape), spread.reshape(shape)
