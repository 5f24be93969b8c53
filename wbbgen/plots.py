"""Plots people would rather look at than read: regularisation paths and criterion curves.

Both draw on a matplotlib ``Axes`` (a new figure when ``ax=None``) and return it; matplotlib
is imported only when a plot is made.
"""

from __future__ import annotations

import numpy as np

from wbbgen.samples import WBBSamples

__all__ = ["plot_path", "plot_curve"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 4.5))
    return ax


def plot_path(samples: WBBSamples, site: str, *, coords=None, prob: float = 0.9, selected=None, ax=None, labels=None):
    """Bayesian regularisation path: posterior mean and central ``prob`` band of each
    coordinate of ``site`` against the (single) hyperparameter, the chosen value marked.

    Args:
        samples: :class:`~wbbgen.samples.WBBSamples` over one hyperparameter; ``samples[site]``
            of shape ``(K, S, *site_shape)``.
        site: the latent site to draw; its coordinates are flattened.
        coords: which flattened coordinates (default all).
        prob: the mass of the central band (quantiles (1 ∓ prob)/2 over the S draws).
        selected: a hyperparameter value to mark with a dashed line.
        ax: the axes to draw on.
        labels: one legend label per coordinate (default ``site[j]``).

    Returns:
        The matplotlib ``Axes``.

    Example:
        >>> import numpy as np
        >>> from wbbgen.plots import plot_path
        >>> from wbbgen.samples import WBBSamples
        >>> grid = np.array([0.1, 1.0, 10.0])
        >>> beta = np.random.default_rng(0).normal(size=(3, 50, 2)) / np.sqrt(grid)[:, None, None]
        >>> samples = WBBSamples({"beta": beta}, {"lam": grid}, stats={}, attrs={})
        >>> ax = plot_path(samples, "beta", selected=1.0)
        >>> len(ax.lines)  # two means, the selected value and the zero line
        4
    """
    if len(samples.hyper) != 1:
        raise ValueError("plot_path draws paths over one hyperparameter; select a slice of the others first.")
    ((name, grid),) = samples.hyper.items()
    x = np.asarray(samples[site])  # (K, S, *shape)
    x = x.reshape(x.shape[0], x.shape[1], -1)
    coords = range(x.shape[-1]) if coords is None else list(coords)
    ax = _axes(ax)
    lo, hi = np.quantile(x, [(1 - prob) / 2, (1 + prob) / 2], axis=1)
    mean = x.mean(1)
    for j in coords:
        label = labels[j] if labels is not None else f"{site}[{j}]"
        (line,) = ax.plot(grid, mean[:, j], lw=1.5, label=label)
        ax.fill_between(grid, lo[:, j], hi[:, j], color=line.get_color(), alpha=0.15, lw=0)
    if np.all(np.asarray(grid) > 0):
        ax.set_xscale("log")
    if selected is not None:
        ax.axvline(selected, color="k", ls="--", lw=1, label=f"selected {name}={selected:.3g}")
    ax.axhline(0.0, color="0.6", lw=0.5)
    ax.set_xlabel(name)
    ax.set_ylabel(f"{site} (mean, {prob:.0%} band)")
    ax.set_title("Bayesian regularisation path")
    ax.legend(fontsize=7, ncol=2)
    return ax


def plot_curve(
    grid, values, *, name: str = "lam", ylabel: str = "criterion", prob: float = 0.9, selected=None, ax=None, label=None
):
    """A criterion per hyperparameter value with its spread over draws: ``values (K, S)``
    over ``grid (K,)`` -> mean line and central ``prob`` band; ``selected`` marked; a log
    x-axis when every grid value is positive. Returns the ``Axes``.

    Example:
        >>> import numpy as np
        >>> from wbbgen.plots import plot_curve
        >>> grid = np.logspace(-2, 2, 5)
        >>> values = -np.log(grid)[:, None] ** 2 + np.random.default_rng(0).normal(size=(5, 20))
        >>> ax = plot_curve(grid, values, ylabel="elpd", selected=1.0)
        >>> ax.get_xscale()
        'log'
    """
    values = np.asarray(values)
    ax = _axes(ax)
    lo, hi = np.quantile(values, [(1 - prob) / 2, (1 + prob) / 2], axis=1)
    (line,) = ax.plot(grid, values.mean(1), lw=2, label=label or "mean over w")
    ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2, lw=0, label=f"{prob:.0%} band over w")
    if np.all(np.asarray(grid) > 0):
        ax.set_xscale("log")
    if selected is not None:
        ax.axvline(selected, color="k", ls="--", lw=1, label=f"selected {name}={selected:.3g}")
    ax.set_xlabel(name)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return ax
