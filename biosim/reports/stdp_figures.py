"""Plots of unsupervised STDP runs: learned receptive fields and adaptive thresholds."""

from __future__ import annotations

import math

import numpy as np

from biosim.reports.figures import _figure

__all__ = ["receptive_fields_figure", "threshold_figure"]


def receptive_fields_figure(weights: np.ndarray, image_shape: tuple, title: str, max_neurons: int = 400):
    """Each excitatory neuron's input weights as an image, in a square grid (up to ``max_neurons``),
    the tiles separated by a one-pixel grey line so that no two neurons' maps run together."""
    n = min(len(weights), max_neurons)
    side = max(1, math.ceil(math.sqrt(n)))
    h, w = image_shape
    gap = 1
    grid = np.full((side * (h + gap) - gap, side * (w + gap) - gap), np.nan)
    for k in range(n):
        r, c = divmod(k, side)
        grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = weights[k].reshape(h, w)
    fig = _figure(figsize=(6.4, 6.0), layout="constrained")
    ax = fig.add_subplot()
    ax.set_facecolor("0.6")  # the gaps between tiles (NaN)
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="hot_r", vmin=0.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{n} excitatory neurons, each a {h}x{w} map of its input weights (row by row from the top left)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                 label="input weight w (dimensionless, max 1)")
    ax.set_title(title, fontsize=9)
    return fig


def threshold_figure(theta_mv: np.ndarray, title: str):
    """Histogram of the adaptive threshold increments ``theta`` (mV) after training."""
    fig = _figure(figsize=(5.2, 3.6), layout="constrained")
    ax = fig.add_subplot()
    theta = np.asarray(theta_mv)
    ax.hist(theta, bins=30, color="C0")
    ax.set_xlabel("adaptive threshold increment θ (mV)")
    ax.set_ylabel("neurons (count)")
    median = float(np.median(theta)) if theta.size else 0.0
    ax.set_title(f"{title}\n{theta.size} excitatory neurons, median θ = {median:.3g} mV", fontsize=9)
    return fig
