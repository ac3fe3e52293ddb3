"""Plots of simulation runs (matplotlib, Agg backend: no display needed).

Population rates are smoothed: spikes are counted in bins of :data:`RATE_BIN_MS` and the counts
convolved with a Gaussian kernel of standard deviation :data:`RATE_SMOOTH_MS` (truncated at 4
standard deviations, normalised so that the rate keeps its mean and is not pulled down at the
edges). The axis labels state the kernel, so a reader knows what was done to the data.
"""

from __future__ import annotations

import numpy as np

from biosim.network.stats import population_rate

__all__ = ["raster_figure", "rate_figure", "smoothed_rate", "RATE_BIN_MS", "RATE_SMOOTH_MS"]

_MAX_RASTER = 500
#: bin width of the spike counts behind a population rate (ms)
RATE_BIN_MS = 0.5
#: standard deviation of the Gaussian kernel that smooths a population rate (ms)
RATE_SMOOTH_MS = 1.0


def _figure(**kw):
    """A matplotlib ``Figure`` outside pyplot: saving it needs no backend, and pyplot's backend
    (a notebook's inline one, a user's window) is left as it was."""
    from matplotlib.figure import Figure

    return Figure(**kw)


def smoothed_rate(times_ms, n_neurons: int, duration_ms: float, bin_ms: float = RATE_BIN_MS,
                  sigma_ms: float = RATE_SMOOTH_MS):
    """Population rate (Hz) smoothed by a Gaussian kernel; returns (bin centres in ms, rates in Hz).

    Spikes are counted in bins of ``bin_ms`` and convolved with a Gaussian of standard deviation
    ``sigma_ms`` truncated at 4 standard deviations; the kernel's weight is renormalised near the
    start and end, so a constant rate stays constant up to the edges. ``sigma_ms = 0``: no smoothing.
    """
    start, rate = population_rate(np.asarray(times_ms), n_neurons, duration_ms, bin_ms)
    centres = start + bin_ms / 2
    if sigma_ms <= 0 or len(rate) < 2:
        return centres, rate
    half = max(1, int(np.ceil(4 * sigma_ms / bin_ms)))
    x = np.arange(-half, half + 1) * bin_ms
    kernel = np.exp(-0.5 * (x / sigma_ms) ** 2)
    num = np.convolve(rate, kernel, mode="same")
    den = np.convolve(np.ones_like(rate), kernel, mode="same")
    if len(kernel) > len(rate):  # np.convolve's "same" is as long as the longer input: keep the middle
        cut = (len(kernel) - len(rate)) // 2
        num, den = num[cut:cut + len(rate)], den[cut:cut + len(rate)]
    return centres, num / den


def _rate_label(bin_ms: float, sigma_ms: float) -> str:
    if sigma_ms > 0:
        return f"rate (Hz)\nGaussian σ = {sigma_ms:g} ms"
    return f"rate (Hz)\n{bin_ms:g} ms bins"


def _rate_panels(fig, axes, result, bin_ms: float, sigma_ms: float) -> None:
    """One population per axis: its smoothed rate in its own colour, its name and mean rate."""
    for k, (ax, (name, (t, _))) in enumerate(zip(axes, result.spikes.items())):
        n = result.sizes[name]
        centres, rate = smoothed_rate(t, n, result.duration_ms, bin_ms, sigma_ms)
        mean = len(t) / max(n, 1) / (result.duration_ms * 1e-3) if result.duration_ms > 0 else 0.0
        ax.plot(centres, rate, lw=1.0, color=f"C{k}")
        ax.set_ylim(bottom=0, top=max(1.0, float(rate.max()) * 1.1) if rate.size else 1.0)
        ax.set_ylabel(_rate_label(bin_ms, sigma_ms), fontsize=8)
        # named above the panel, not over the curve
        ax.set_title(f"{name} (n = {n}), mean rate {mean:.3g} Hz", loc="left", fontsize=8, color=f"C{k}", pad=2)
        ax.grid(alpha=0.3)


def raster_figure(result, title: str, bin_ms: float = RATE_BIN_MS, sigma_ms: float = RATE_SMOOTH_MS):
    """Spike raster of up to 500 neurons per population (populations stacked, each its colour, named
    on the y axis) above each population's smoothed rate in its own panel, all on one time axis (ms)."""
    pops = list(result.spikes)
    fig = _figure(figsize=(8, 4.2 + 1.1 * len(pops)), layout="constrained")
    axes = fig.subplots(1 + len(pops), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [3.5] + [1] * len(pops)})[:, 0]
    ax = axes[0]
    offset, ticks, names = 0, [], []
    for k, (name, (t, i)) in enumerate(result.spikes.items()):
        n = result.sizes[name]
        shown = min(n, _MAX_RASTER)
        sel = i < shown
        ax.plot(t[sel], i[sel] + offset, "|", ms=2, color=f"C{k}")
        ticks.append(offset + shown / 2)
        names.append(f"{name}\n{shown} of {n}" if shown < n else f"{name}\nall {n}")
        offset += shown
        if k < len(pops) - 1:
            ax.axhline(offset - 0.5, color="0.5", lw=0.5)
    ax.set_ylim(-0.5, max(offset, 1) - 0.5)
    ax.set_yticks(ticks, names)
    ax.set_ylabel(f"neuron (up to {_MAX_RASTER} per population)")
    ax.set_title(title)  # no legend over the spikes: the tick labels name each population's block
    for label, k in zip(ax.get_yticklabels(), range(len(pops))):
        label.set_color(f"C{k}")
    _rate_panels(fig, axes[1:], result, bin_ms, sigma_ms)
    axes[-1].set_xlim(0, result.duration_ms)
    axes[-1].set_xlabel("time (ms)")
    return fig


def rate_figure(result, title: str, bin_ms: float = RATE_BIN_MS, sigma_ms: float = RATE_SMOOTH_MS):
    """Population rate (Hz) of each population in its own panel on a shared time axis (ms):
    spike counts in bins of ``bin_ms`` smoothed by a Gaussian of standard deviation ``sigma_ms``."""
    pops = list(result.spikes)
    fig = _figure(figsize=(8, 1.0 + 1.6 * max(len(pops), 1)), layout="constrained")
    axes = fig.subplots(max(len(pops), 1), 1, sharex=True, squeeze=False)[:, 0]
    _rate_panels(fig, axes, result, bin_ms, sigma_ms)
    axes[-1].set_xlim(0, result.duration_ms)
    axes[-1].set_xlabel("time (ms)")
    smooth = f"Gaussian kernel σ = {sigma_ms:g} ms on {bin_ms:g} ms bins" if sigma_ms > 0 else f"{bin_ms:g} ms bins"
    fig.suptitle(f"{title}\npopulation rate, {smooth}", fontsize=10)  # above the panels' own (left) titles
    return fig
