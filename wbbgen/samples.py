"""`WBBSamples`: draws over a hyperparameter grid, as a dict of arrays plus diagnostics.

``samples[site]`` has shape ``(K₁, …, K_m, num_samples, *site_shape)`` -- one axis per
hyperparameter (outer product of the grids), then the draws -- in the constrained space: the
latent sites, and the model's ``numpyro.deterministic`` sites, which are computed on first
access (``samples["a"]``, iterating over the values, or ``to_inference_data``), so drawing
stays as fast as for the latent sites alone. :func:`wbbgen.exact_wbb` and
:meth:`wbbgen.AmortizedWBB.get_samples` both return this type, so they can be compared directly.

Example:
    >>> from wbbgen.samples import WBBSamples
    >>> import numpy as np
    >>> s = WBBSamples({"mu": np.zeros((2, 5))}, {"lam": [0.1, 1.0]}, {}, {},
    ...                deterministic=lambda: {"mu2": np.ones((2, 5))}, deterministic_names=("mu2",))
    >>> list(s), s.num_samples
    (['mu', 'mu2'], 5)
    >>> s["mu2"].shape    # computed now
    (2, 5)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import numpy as np

from wbbgen.convert import build_inference_data

__all__ = ["WBBSamples"]


class WBBSamples(dict):
    """A dict ``site -> array`` with ``hyper`` (the grids), ``stats`` and ``attrs``.

    Attributes:
        hyper: ``{name: 1-d grid}``, in axis order.
        stats: per-draw diagnostics, each ``(K₁, …, K_m, num_samples)``: ``loss`` (objective
            value) and ``grad_norm`` always; ``converged`` and ``num_steps`` for exact draws.
            May be given as a function returning that dict: it is then computed on first
            access (generator draws: the statistics cost more than the draws themselves).
        attrs: how the draws were made (weights, prior scheme, method, settings).

    Args:
        samples: ``{site: (K₁, …, K_m, num_samples, *shape)}`` of the latent sites.
        hyper, stats, attrs: as the attributes.
        log_likelihood: ``() -> {obs_site: (K…, S, n)}``, for ``to_inference_data``.
        observed: ``{obs_site: values}``, InferenceData's ``observed_data``.
        deterministic: ``() -> {site: (K…, S, *shape)}``, the deterministic sites, called on
            the first access to any of them (or to ``keys``/``values``/``items``).
        deterministic_names: their names (listed before they are computed).
        check: ``(rng_key, num_draws, warn) -> PosteriorCheck`` shaped like the grid, for
            :meth:`posterior_check`.
    """

    def __init__(
        self,
        samples,
        hyper,
        stats: Mapping | Callable[[], Mapping],
        attrs,
        log_likelihood: Callable | None = None,
        observed=None,
        deterministic: Callable[[], Mapping] | None = None,
        deterministic_names: tuple[str, ...] = (),
        check: Callable | None = None,
    ):
        super().__init__(samples)
        self.hyper = dict(hyper)
        self._stats = stats if callable(stats) else dict(stats)
        self.attrs = dict(attrs)
        self._log_likelihood = log_likelihood
        self._observed = dict(observed or {})
        self._pending = deterministic
        self._pending_names = tuple(deterministic_names) if deterministic is not None else ()
        self._check = check

    # -- deterministic sites, computed on first access --------------------------------------

    def _materialise(self):
        if self._pending is not None:
            compute, self._pending, self._pending_names = self._pending, None, ()
            for k, v in compute().items():
                dict.__setitem__(self, k, v)

    def __missing__(self, key):
        if key in self._pending_names:
            self._materialise()
            return dict.__getitem__(self, key)
        raise KeyError(key)

    def __contains__(self, key):
        return dict.__contains__(self, key) or key in self._pending_names

    def __iter__(self):
        yield from dict.__iter__(self)
        yield from self._pending_names

    def __len__(self):
        return dict.__len__(self) + len(self._pending_names)

    def get(self, key, default=None):
        """``self[key]`` if the site exists, else ``default``."""
        return self[key] if key in self else default

    def keys(self):
        """The site names (deterministic sites computed first)."""
        self._materialise()
        return dict.keys(self)

    def values(self):
        """The site arrays (deterministic sites computed first)."""
        self._materialise()
        return dict.values(self)

    def items(self):
        """``(site, array)`` pairs (deterministic sites computed first)."""
        self._materialise()
        return dict.items(self)

    def copy(self) -> dict:
        """A plain dict of every site (deterministic sites computed)."""
        self._materialise()
        return dict.copy(self)

    @property
    def stats(self) -> dict:
        """Per-draw diagnostics (see the class docstring), computed on first access if lazy."""
        if callable(self._stats):
            self._stats = dict(self._stats())
        return self._stats

    @stats.setter
    def stats(self, value):
        self._stats = value if callable(value) else dict(value)

    def posterior_check(self, rng_key, num_draws: int = 4000, warn: bool = True):
        """Pareto k̂ per grid value of importance weights from a Gaussian fitted to these draws
        toward the model's posterior (:mod:`wbbgen.posterior_check`): a
        :class:`~wbbgen.posterior_check.PosteriorCheck` with arrays shaped like the grid and
        ``reweighted`` draws in this layout. Warns (``PosteriorCheckWarning``), naming the
        values, where k̂ > 0.7 or reweighting moves the draws out of
        the band. The result is also put in ``stats["pareto_k"]`` (one value per
        grid point, repeated over the draws) so that InferenceData's ``sample_stats`` carry it."""
        if self._check is None:
            raise ValueError("these draws were not made from a wbbgen problem; the posterior check needs one.")
        check = self._check(rng_key, int(num_draws), bool(warn))
        shape = check.k_hat.shape
        self.stats["pareto_k"] = np.broadcast_to(check.k_hat[..., None], (*shape, self.num_samples)).copy()
        if check.moved is not None:
            self.stats["posterior_check_moved"] = np.broadcast_to(
                check.moved[..., None], (*shape, self.num_samples)
            ).copy()
        return check

    def reweight(self, rng_key, num_draws: int = 4000) -> WBBSamples:
        """These draws, resampled toward the model's posterior by the posterior check wherever
        that is reliable (reweighted k̂ ≤ 0.7) and kept elsewhere, with a warning naming the
        values the check flags; ``stats["reweighted"]`` says which values were resampled,
        ``stats["pareto_k"]`` the check's k̂. Where k̂ is not available (too many parameters),
        warns and returns the draws unchanged. ``exact_wbb(..., reweight=True)`` and
        ``AmortizedWBB.get_samples(..., reweight=True)`` return this."""
        check = self.posterior_check(rng_key, num_draws, warn=True)
        if check.reweighted is None:
            warnings.warn(f"reweight=True: {check.reason}; the draws are returned unreweighted.", stacklevel=3)
            return self
        out = check.reweighted
        shape = check.k_hat.shape
        out.stats["pareto_k"] = np.broadcast_to(check.k_hat[..., None], (*shape, out.num_samples)).copy()
        return out

    @property
    def num_samples(self) -> int:
        """Draws per grid point."""
        return next(iter(dict.values(self))).shape[len(self.hyper)]

    def to_inference_data(self, log_likelihood: bool = True):
        """ArviZ InferenceData with dims ``(chain=1, draw, *hyper, *site)`` (see
        :mod:`wbbgen.convert`); ``log_likelihood`` per observation when asked for."""
        m = len(self.hyper)

        def layout(x):  # (K..., S, *rest) -> (1, S, K..., *rest)
            x = np.asarray(x)
            order = [m, *range(m), *range(m + 1, x.ndim)]
            return np.transpose(x, order)[None]

        loglik = None
        if log_likelihood and self._log_likelihood is not None:
            loglik = {k: layout(v) for k, v in self._log_likelihood().items()}
        return build_inference_data(
            {k: layout(v) for k, v in self.items()},
            self.hyper,
            log_likelihood=loglik,
            observed_data=self._observed,
            sample_stats={k: layout(v) for k, v in self.stats.items()},
            attrs=self.attrs,
        )

    def __repr__(self):
        shapes = ", ".join(f"{k}: {tuple(np.shape(v))}" for k, v in dict.items(self))
        shapes += "".join(f", {k}: (on access)" for k in self._pending_names)
        grids = ", ".join(f"{k}[{len(g)}]" for k, g in self.hyper.items())
        return f"WBBSamples({shapes}; hyper {grids}; {self.attrs.get('method', '')})"
