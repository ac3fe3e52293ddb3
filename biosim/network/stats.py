"""Spike-train statistics used in metrics and comparisons."""

from __future__ import annotations

import numpy as np

__all__ = ["mean_rate_hz", "cv_isi", "population_rate"]


def mean_rate_hz(n_spikes: int, n_neurons: int, duration_ms: float) -> float:
    """Spikes per neuron per second."""
    return float(n_spikes) / n_neurons / (duration_ms * 1e-3) if n_neurons and duration_ms > 0 else 0.0


def cv_isi(times_ms: np.ndarray, indices: np.ndarray) -> float:
    """Mean over neurons (with at least 2 inter-spike intervals) of std(ISI)/mean(ISI); NaN if none.

    This is the usual definition in Brunel (2000) and Brian2's examples.
    """
    if len(times_ms) == 0:
        return float("nan")
    order = np.lexsort((times_ms, indices))
    t, i = np.asarray(times_ms)[order], np.asarray(indices)[order]
    same = i[1:] == i[:-1]
    isi, owner = np.diff(t)[same], i[1:][same]
    if len(isi) == 0:
        return float("nan")
    ids, inv, counts = np.unique(owner, return_inverse=True, return_counts=True)
    s1 = np.bincount(inv, weights=isi)
    s2 = np.bincount(inv, weights=isi * isi)
    keep = counts >= 2
    mean = s1[keep] / counts[keep]
    var = np.maximum(s2[keep] / counts[keep] - mean * mean, 0.0)
    return float(np.mean(np.sqrt(var) / mean)) if keep.any() else float("nan")


def population_rate(times_ms: np.ndarray, n_neurons: int, duration_ms: float, bin_ms: float = 1.0):
    """Population rate in Hz in bins of ``bin_ms``; returns (bin starts in ms, rates)."""
    edges = np.arange(0.0, duration_ms + bin_ms, bin_ms)
    counts, _ = np.histogram(times_ms, bins=edges)
    return edges[:-1], counts / max(n_neurons, 1) / (bin_ms * 1e-3)
