"""Plots of simulation runs (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from biosim.network.stats import population_rate

__all__ = ["raster_figure", "rate_figure"]

_MAX_RASTER = 500


def _figure(**kw):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(**kw)


def raster_figure(result, title: str):
    """Spike raster of up to 500 neurons per population, populations stacked."""
    fig = _figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    offset = 0
    for k, (name, (t, i)) in enumerate(result.spikes.items()):
        n = result.sizes[name]
        shown = min(n, _MAX_RASTER)
        sel = i < shown
        ax.plot(t[sel], i[sel] + offset, "|", ms=2, color=f"C{k}", label=f"{name} ({shown} of {n})")
        offset += shown
    ax.set_xlim(0, result.duration_ms)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8, markerscale=4)
    return fig


def rate_figure(result, title: str, bin_ms: float = 1.0):
    """Population rate (Hz) per population in bins of ``bin_ms``."""
    fig = _figure(figsize=(8, 3.2))
    ax = fig.add_subplot()
    for k, (name, (t, _)) in enumerate(result.spikes.items()):
        start, rate = population_rate(t, result.sizes[name], result.duration_ms, bin_ms)
        ax.plot(start, rate, lw=0.8, color=f"C{k}", label=name)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(f"rate (Hz, {bin_ms:g} ms bins)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(0, result.duration_ms)
    ax.set_ylim(bottom=0)
    return fig
