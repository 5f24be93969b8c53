"""Conversion of wbbgen draws to ArviZ (the only module that imports ArviZ).

Layout, shared by :func:`wbbgen.exact_wbb`, :meth:`wbbgen.AmortizedWBB.to_inference_data`
and :func:`wbbgen.nuts_reference`:

* ``posterior[site]``: dims ``(chain, draw, <hyper names...>, <site>_dim_0, ...)``;
* ``log_likelihood[obs]``: dims ``(chain, draw, <hyper names...>, <obs>_dim_0, ...)`` --
  its own dims, so ``idata.sel(lam=...)`` slices it too;
* ``observed_data[obs]``: dims ``(<obs>_dim_0, ...)`` (no hyper dims);
* ``sample_stats[name]``: dims ``(chain, draw, <hyper names...>)``.

On arviz 0.x (Python 3.11) the groups are wrapped in :class:`arviz.InferenceData`, on arviz
1.x (Python >= 3.12) in an :class:`xarray.DataTree`; both support ``idata.sel(lam=0.1)``,
``az.summary``, ``az.plot_forest``, and ``az.loo``/``az.compare`` on λ slices. The two lines
return ``az.loo`` results of different types: :func:`elpd_loo` reads either.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

__all__ = ["build_inference_data", "per_hyper", "elpd_loo", "arviz_major"]


def arviz_major() -> int:
    """The installed ArviZ major version: 0 (InferenceData) or 1 (DataTree)."""
    import arviz as az

    return int(az.__version__.split(".")[0])


def _site_dims(name: str, ndim: int) -> list[str]:
    return [f"{name}_dim_{i}" for i in range(ndim)]


def _dataset(
    arrays: Mapping[str, np.ndarray] | None,
    lead_dims: list[str],
    coords: dict[str, np.ndarray],
    attrs: dict,
) -> xr.Dataset | None:
    if not arrays:
        return None
    data_vars = {}
    for name, value in arrays.items():
        value = np.asarray(value)
        extra = value.ndim - len(lead_dims)
        if extra < 0:
            raise ValueError(f"array {name!r} has shape {value.shape}; expected leading dims {lead_dims}.")
        data_vars[name] = (lead_dims + _site_dims(name, extra), value)
    ds = xr.Dataset(data_vars)
    used = {k: v for k, v in coords.items() if k in ds.dims}
    return ds.assign_coords(used).assign_attrs(attrs)


def build_inference_data(
    posterior: Mapping[str, np.ndarray],
    hyper: Mapping[str, np.ndarray],
    *,
    log_likelihood: Mapping[str, np.ndarray] | None = None,
    observed_data: Mapping[str, np.ndarray] | None = None,
    sample_stats: Mapping[str, np.ndarray] | None = None,
    attrs: Mapping | None = None,
):
    """Wrap arrays laid out as ``(chain, draw, *hyper, *site)`` into InferenceData.

    Args:
        posterior: site name -> array ``(chain, draw, len(grid_1), ..., *site_shape)``.
        hyper: hyperparameter name -> 1-d grid, in the order of the hyper dims.
        log_likelihood: observed site -> ``(chain, draw, *hyper, n, ...)`` log densities.
        observed_data: observed site -> observed values.
        sample_stats: name -> ``(chain, draw, *hyper)`` per-draw diagnostics.
        attrs: metadata (scalars and strings) attached to every group.

    Returns:
        ``arviz.InferenceData`` (arviz 0.x) or ``xarray.DataTree`` (arviz 1.x).

    Example:
        >>> from wbbgen.convert import build_inference_data
        >>> import numpy as np
        >>> idata = build_inference_data({"b": np.zeros((1, 5, 3, 2))}, {"lam": np.array([.1, 1., 10.])})
        >>> idata.posterior["b"].sel(lam=1.0).shape
        (1, 5, 2)
    """
    hyper_names = list(hyper)
    coords = {name: np.asarray(grid) for name, grid in hyper.items()}
    lead = ["chain", "draw", *hyper_names]
    attrs = {k: _attr(v) for k, v in dict(attrs or {}).items()}
    groups = {
        "posterior": _dataset(posterior, lead, coords, attrs),
        "log_likelihood": _dataset(log_likelihood, lead, coords, attrs),
        "observed_data": _dataset(observed_data, [], coords, attrs),
        "sample_stats": _dataset(sample_stats, lead, coords, attrs),
    }
    groups = {k: v for k, v in groups.items() if v is not None}
    if arviz_major() >= 1:  # arviz 1.x works on DataTree (az.InferenceData is gone)
        return xr.DataTree.from_dict({f"/{k}": v for k, v in groups.items()})
    import arviz as az

    return az.InferenceData(**groups)


def _attr(value):
    """netCDF only stores numbers, strings and 1-d arrays of them."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    return str(value)


def per_hyper(idata, fn, **hyper):
    """Apply ``fn`` to each ``idata.sel(**{name: value})`` slice, e.g. ``az.loo`` per λ.

    ArviZ's ``loo``/``waic`` fold an extra hyper dimension into the observations; this
    helper evaluates them on each slice instead.

    Example:
        >>> per_hyper(idata, az.loo, lam=idata.posterior.lam.values)  # doctest: +SKIP
    """
    ((name, values),) = hyper.items()
    return {float(v): fn(idata.sel(**{name: v})) for v in np.atleast_1d(values)}


def elpd_loo(idata) -> tuple[float, float]:
    """PSIS-LOO ``(elpd, se)`` of one slice, ``az.loo(idata)``, on either ArviZ line.

    elpd_loo = Σᵢ log Σₛ w̃ᵢₛ p(yᵢ | θₛ) / Σₛ w̃ᵢₛ with Pareto-smoothed importance weights
    w̃ᵢₛ ∝ 1 / p(yᵢ | θₛ); ``se`` = √n · sd of the pointwise terms. ArviZ 0.x returns a
    Series (``res["elpd_loo"]``, ``res["se"]``), 1.x an object (``res.elpd``, ``res.se``).
    Pass one hyper slice (``idata.sel(lam=...)``): ArviZ folds an extra dimension into the
    observations. Pareto-k warnings from ArviZ pass through.

    Example:
        >>> elpd, se = elpd_loo(idata.sel(lam=1.0))  # doctest: +SKIP
    """
    import arviz as az

    res = az.loo(idata)
    if arviz_major() >= 1:
        return float(res.elpd), float(res.se)
    return float(res["elpd_loo"]), float(res["se"])
