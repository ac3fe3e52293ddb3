"""Plots of unsupervised STDP runs: learned receptive fields and adaptive thresholds."""

from __future__ import annotations

import math

import numpy as np

from biosim.reports.figures import _figure

__all__ = ["receptive_fields_figure", "threshold_figure"]


def receptive_fields_figure(weights: np.ndarray, image_shape: tuple, title: str, max_neurons: int = 400):
    """Each excitatory neuron's input weights as an image, in a square grid (up to ``max_neurons``)."""
    n = min(len(weights), max_neurons)
    side = math.ceil(math.sqrt(n))
    h, w = image_shape
    grid = np.full((side * h, side * w), np.nan)
    for k in range(n):
        r, c = divmod(k, side)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = weights[k].reshape(h, w)
    fig = _figure(figsize=(6.4, 6.0))
    ax = fig.add_subplot()
    im = ax.imshow(grid, cmap="hot_r", vmin=0.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(f"{n} excitatory neurons, each a {h}x{w} input weight map")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="weight")
    ax.set_title(title, fontsize=9)
    return fig


def threshold_figure(theta_mv: np.ndarray, title: str):
    """Histogram of the adaptive threshold increments ``theta`` after training."""
    fig = _figure(figsize=(5.2, 3.6))
    ax = fig.add_subplot()
    ax.hist(np.asarray(theta_mv), bins=30, color="C0")
    ax.set_xlabel("adaptive threshold theta (mV)")
    ax.set_ylabel("neurons")
    ax.set_title(title, fontsize=9)
    return fig
