"""Plots people would rather look at than read: regularisation paths and criterion curves."""

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

    Example:
        >>> plot_path(samples, "beta", coords=range(5), selected=1.0)  # doctest: +SKIP
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
    -> mean line and central ``prob`` band; ``selected`` marked."""
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
