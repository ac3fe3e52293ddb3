"""Plots of a parameter sweep (``biosim sweep``): a metric against a swept key, or a heat map over two.

Both take the sweep's per-grid-point summary (:func:`biosim.experiments.sweep.run_sweep` computes
it): a list of ``{"values": {key: value}, "n_ok": int, "metrics": {metric: {"mean", "std", ...}}}``.
Axis labels carry units where the key's name gives one (``_ms``, ``_mv``, ``_hz``...). Figures are
matplotlib (Agg) and written atomically (:func:`save_figure`).
"""

from __future__ import annotations

import math

from biosim.files import atomic_savefig
from biosim.reports.figures import _figure

__all__ = ["label", "metric_label", "metric_scale", "trend_figure", "heatmap_figure", "save_figure"]

#: name suffix -> unit
_UNITS = (("_ms", "ms"), ("_s", "s"), ("_mv", "mV"), ("_hz", "Hz"), ("_pa", "pA"), ("_na", "nA"), ("_ns", "nS"),
          ("_uj", "µJ"), ("_bytes", "bytes"), ("_pf", "pF"), ("_mohm", "MΩ"))

#: metrics with a better name than their key
_NAMES = {"mean_rate_hz": "mean rate (Hz)", "cv_isi": "CV of ISI (dimensionless)", "n_spikes": "spikes (count)",
          "test_accuracy": "test accuracy (%)", "val_accuracy": "validation accuracy (%)",
          "best_test_accuracy_seen": "best test accuracy (%)", "sim_wall_s": "simulation wall time (s)",
          "total_wall_s": "total wall time (s)", "setup_wall_s": "setup wall time (s)"}

#: metrics stored as fractions and plotted as percentages
_PERCENT = {"test_accuracy", "val_accuracy", "best_test_accuracy_seen", "activation_sparsity", "connection_sparsity"}


def label(key: str) -> str:
    """``we_mv`` -> ``we (mV)``, ``neuron.tau_mem_ms`` -> ``neuron.tau_mem (ms)``; no unit: the key."""
    for suffix, unit in _UNITS:
        if key.lower().endswith(suffix) and len(key) > len(suffix):
            return f"{key[:-len(suffix)]} ({unit})"
    return key


def metric_label(metric: str) -> str:
    """An axis or colour-bar label for a metric (dotted per-population metrics keep their prefix)."""
    prefix, _, last = metric.rpartition(".")
    name = _NAMES.get(last, f"{last} (%)" if last in _PERCENT else label(last))
    return f"{prefix}: {name}" if prefix else name


def metric_scale(metric: str) -> float:
    """The factor from a metric's stored value to the plotted one: 100 for fractions shown in %."""
    return 100.0 if metric.rpartition(".")[2] in _PERCENT else 1.0


def _is_numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _distinct(values) -> list:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def trend_figure(summary: list[dict], key: str, metric: str, name: str, seeds: int, others=()):
    """``metric`` against the swept ``key``: the mean over seeds (and over the ``others`` swept keys,
    if any) with a band of one standard deviation, and every grid point's mean as a dot."""
    xs = _distinct(entry["values"][key] for entry in summary)
    numeric = _is_numeric(xs)
    if numeric:
        xs = sorted(xs)
    pos = {x: (x if numeric else i) for i, x in enumerate(xs)}
    scale = metric_scale(metric)
    fig = _figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    mean, std, shown = [], [], []
    for x in xs:
        entries = [_scaled(e["metrics"].get(metric, {}), scale) for e in summary if e["values"][key] == x]
        ok = [e for e in entries if e.get("mean") is not None]
        if not ok:
            continue
        # pooled over seeds (and the other keys): mean of the means, spread of the values
        n = sum(e["n"] for e in ok)
        m = sum(e["mean"] * e["n"] for e in ok) / n
        ss = sum((e["std"] ** 2) * (e["n"] - 1) + e["n"] * (e["mean"] - m) ** 2 for e in ok)
        shown.append(pos[x])
        mean.append(m)
        std.append(math.sqrt(ss / (n - 1)) if n > 1 else 0.0)
        ax.plot([pos[x]] * len(ok), [e["mean"] for e in ok], ".", color="0.6", ms=4,
                label="a grid point's mean over seeds" if len(mean) == 1 and others else None)
    if shown:
        ax.errorbar(shown, mean, yerr=std, color="C0", marker="o", capsize=3, label="mean ± std")
        ax.fill_between(shown, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color="C0", alpha=0.15, lw=0)
        # below the axes: the legend hides no point
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    if not numeric:  # categories: a tick per value, named
        ax.set_xticks(range(len(xs)), [_fmt(x) for x in xs])
    elif len(xs) <= 12:  # a few swept values: a tick at each, no in-between values that were not run
        ax.set_xticks(xs, [_fmt(x) for x in xs])
    elif all(isinstance(x, int) for x in xs):  # whole numbers: no fractional ticks
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    missing = [x for x in xs if pos[x] not in shown]
    if missing:
        ax.text(0.01, 0.01, f"failed: {key} = {', '.join(_fmt(x) for x in missing)}", transform=ax.transAxes,
                fontsize=7, color="C3", va="bottom")
    ax.set_xlabel(label(key))
    ax.set_ylabel(metric_label(metric))
    over = f"{seeds} seed{'s' * (seeds != 1)}" + (f" and {', '.join(others)}" if others else "")
    ax.set_title(f"{name}: {metric_label(metric)}, spread over {over}", fontsize=9)
    return fig


def _scaled(stats: dict, scale: float) -> dict:
    if scale == 1.0 or stats.get("mean") is None:
        return stats
    return {**stats, **{k: stats[k] * scale for k in ("mean", "std", "min", "max") if stats.get(k) is not None}}


def heatmap_figure(summary: list[dict], x_key: str, y_key: str, metric: str, name: str, seeds: int):
    """``metric`` (mean over seeds) on the grid of ``x_key`` x ``y_key``; cells where every seed
    failed are grey and marked; small grids show the values in the cells."""
    import numpy as np

    xs = _distinct(e["values"][x_key] for e in summary)
    ys = _distinct(e["values"][y_key] for e in summary)
    xs = sorted(xs) if _is_numeric(xs) else xs
    ys = sorted(ys) if _is_numeric(ys) else ys
    grid = np.full((len(ys), len(xs)), np.nan)
    for e in summary:
        m = e["metrics"].get(metric, {}).get("mean")
        if m is not None:
            grid[ys.index(e["values"][y_key]), xs.index(e["values"][x_key])] = m * metric_scale(metric)
    fig = _figure(figsize=(1.2 + max(4.0, 0.7 * len(xs)), 1.0 + max(3.0, 0.55 * len(ys))), layout="constrained")
    ax = fig.add_subplot()
    ax.set_facecolor("0.85")
    finite = grid[np.isfinite(grid)]
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap="viridis",
                      vmin=finite.min() if finite.size else None, vmax=finite.max() if finite.size else None)
    fig.colorbar(image, ax=ax, label=f"{metric_label(metric)}, mean over {seeds} seed{'s' * (seeds != 1)}")
    if len(xs) * len(ys) <= 100:
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for (r, c), v in np.ndenumerate(grid):
            text = "failed" if not np.isfinite(v) else f"{v:.3g}"
            color = "C3" if not np.isfinite(v) else ("black" if v > mid else "white")
            ax.text(c, r, text, ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(len(xs)), [_fmt(x) for x in xs])
    ax.set_yticks(range(len(ys)), [_fmt(y) for y in ys])
    ax.set_xlabel(label(x_key))
    ax.set_ylabel(label(y_key))
    ax.set_title(f"{name}: {metric_label(metric)}", fontsize=9)
    return fig


def save_figure(fig, path) -> None:
    """Write ``fig`` as PNG atomically."""
    atomic_savefig(fig, path)
