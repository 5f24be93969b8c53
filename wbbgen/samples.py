"""`WBBSamples`: draws over a hyperparameter grid, as a dict of arrays plus diagnostics.

``samples[site]`` has shape ``(K₁, …, K_m, num_samples, *site_shape)`` -- one axis per
hyperparameter (outer product of the grids), then the draws -- in the constrained space,
latent sites only. :func:`wbbgen.exact_wbb` and :meth:`wbbgen.AmortizedWBB.get_samples` both
return this type, so they can be compared directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

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
    """

    def __init__(
        self,
        samples,
        hyper,
        stats: Mapping | Callable[[], Mapping],
        attrs,
        log_likelihood: Callable | None = None,
        observed=None,
    ):
        super().__init__(samples)
        self.hyper = dict(hyper)
        self._stats = stats if callable(stats) else dict(stats)
        self.attrs = dict(attrs)
        self._log_likelihood = log_likelihood
        self._observed = dict(observed or {})

    @property
    def stats(self) -> dict:
        """Per-draw diagnostics (see the class docstring), computed on first access if lazy."""
        if callable(self._stats):
            self._stats = dict(self._stats())
        return self._stats

    @stats.setter
    def stats(self, value):
        self._stats = value if callable(value) else dict(value)

    @property
    def num_samples(self) -> int:
        """Draws per grid point."""
        return next(iter(self.values())).shape[len(self.hyper)]

    def to_inference_data(self, log_likelihood: bool = True):
        """ArviZ InferenceData with dims ``(chain=1, draw, *hyper, *site)`` (see
        :mod:`wbbgen.convert`); ``log_likelihood`` per observation when asked for."""
        from wbbgen.convert import build_inference_data

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
        shapes = ", ".join(f"{k}: {tuple(np.shape(v))}" for k, v in self.items())
        grids = ", ".join(f"{k}[{len(g)}]" for k, g in self.hyper.items())
        return f"WBBSamples({shapes}; hyper {grids}; {self.attrs.get('method', '')})"
