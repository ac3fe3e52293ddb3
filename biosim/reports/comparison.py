"""The comparison report of ``biosim compare``: ``report.md`` and one self-contained ``report.html``
(plots as base64 PNG, no external CSS, scripts or links; it opens offline).

:func:`biosim.experiments.compare.compare` trains or reuses the runs and hands their metrics here;
this module only renders them (and names the metrics it summarises, :data:`SUMMARY_KEYS`).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from biosim.bridge.metrics import ENERGY_ASSUMPTIONS, METRIC_DEFINITIONS
from biosim.files import atomic_binary, atomic_write_text
from biosim.reports.figures import _figure

__all__ = ["SUMMARY_KEYS", "write_reports", "figures", "findings"]

#: metrics summarised over seeds (mean, std, min, max), in report order
SUMMARY_KEYS = ("test_accuracy", "best_test_accuracy_seen", "val_accuracy", "train_seconds",
                "latency_ms_per_sample", "n_params", "footprint_bytes", "connection_sparsity",
                "activation_sparsity", "spikes_per_sample", "synops_effective_acs", "synops_effective_macs",
                "synops_dense", "energy_estimate_uJ")

_PERCENT = {"test_accuracy", "best_test_accuracy_seen", "val_accuracy", "connection_sparsity", "activation_sparsity"}
#: the quantity each metric measures (no unit; :data:`_UNITS` holds those)
_NAMES = {
    "test_accuracy": "test accuracy, validation-selected",
    "best_test_accuracy_seen": "test accuracy, best-test",
    "val_accuracy": "validation accuracy",
    "train_seconds": "training time",
    "latency_ms_per_sample": "latency per sample",
    "n_params": "parameters",
    "footprint_bytes": "footprint",
    "connection_sparsity": "connection sparsity",
    "activation_sparsity": "activation sparsity",
    "spikes_per_sample": "spikes / nonzero activations per sample",
    "synops_effective_acs": "effective ACs per sample",
    "synops_effective_macs": "effective MACs per sample",
    "synops_dense": "dense synaptic operations per sample",
    "energy_estimate_uJ": "energy ESTIMATE per sample",
}
#: the unit written after every number of a metric (percentages: the stored fraction x 100)
_UNITS = {**{k: "%" for k in _PERCENT}, "train_seconds": "s", "latency_ms_per_sample": "ms", "n_params": "parameters",
          "footprint_bytes": "bytes", "spikes_per_sample": "events", "synops_effective_acs": "ACs",
          "synops_effective_macs": "MACs", "synops_dense": "operations", "energy_estimate_uJ": "µJ"}
_COUNTS = {"n_params", "spikes_per_sample", "synops_effective_acs", "synops_effective_macs", "synops_dense"}
#: a metric's label: its quantity and its unit (counts: "count"; the cells name what is counted)
_LABELS = {k: f"{name} ({'count' if k in _COUNTS else _UNITS[k]})" for k, name in _NAMES.items()}


def _number(m: float, std: bool = False) -> str:
    """A value (or a spread, ``std``) with sensible precision; thousands separated."""
    if abs(m) >= 1e4:
        return f"{m:,.0f}"
    if 0 < abs(m) < 1e-2:
        return f"{m:.2g}" if std else f"{m:.4g}"
    return f"{m:.3g}" if std else f"{m:.4g}"


def _value(key: str, v: float) -> str:
    """One number of metric ``key`` with its unit: ``85.93 %``, ``2.37 s``, ``0.314 µJ``."""
    if key in _PERCENT:
        return f"{100 * v:.2f} %"
    return f"{_number(v)} {_UNITS.get(key, '')}".rstrip()


def _fmt(key: str, stats: dict) -> str:
    """Mean ± standard deviation over seeds, with the unit: ``85.93 ± 6.11 %``."""
    if stats.get("mean") is None:
        return "n/a"
    m, s = stats["mean"], stats["std"] or 0.0
    spread = stats.get("n", 2) > 1  # one seed has no spread to show (not a spread of 0)
    if key in _PERCENT:
        return f"{100 * m:.2f} ± {100 * s:.2f} %" if spread else f"{100 * m:.2f} %"
    text = f"{_number(m)} ± {_number(s, std=True)}" if spread else _number(m)
    return f"{text} {_UNITS.get(key, '')}".rstrip()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _kind(data: dict, name: str) -> str:
    kind = data["kinds"][name]
    return "SNN" if kind == "snn" else kind.upper()


def _legend_below(ax, ncol: int = 2) -> None:
    """A legend under the axes, where it hides no data."""
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=ncol, frameon=False)


def figures(data: dict, confusion: dict) -> dict[str, tuple[str, bytes]]:
    """The report's plots: name -> (caption, PNG bytes).

    Every axis names its quantity and unit; categorical axes (neuron layers, classes) carry the
    category names as tick labels; legends sit below the axes, where they hide no data; the
    confusion matrices label every class and have a colour bar of the counts."""
    names = data["models"]
    per = data["per_seed"]
    out = {}

    def scatter(xkey, xlabel, logx):
        fig = _figure(figsize=(6.4, 4.6), layout="constrained")
        ax = fig.add_subplot()
        for k, name in enumerate(names):
            rows = [r for r in per[name] if r.get("test_accuracy") is not None]
            xs = np.array([r.get(xkey) if r.get(xkey) is not None else np.nan for r in rows], dtype=float)
            ys = np.array([100 * r["test_accuracy"] for r in rows], dtype=float)
            marker = "o" if data["kinds"][name] == "snn" else "s"
            ax.plot(xs, ys, marker, color=f"C{k}", alpha=0.5, ms=5)
            if not len(ys) or np.all(np.isnan(xs)):  # this model has no such measurement (e.g. STDP: no synops)
                ax.plot([], [], marker, color=f"C{k}", ms=9, mec="k",
                        label=f"{name} ({_kind(data, name)}): not measured")
                continue
            ax.errorbar(np.nanmean(xs), np.mean(ys), yerr=np.std(ys, ddof=1) if len(ys) > 1 else 0,
                        fmt=marker, color=f"C{k}", ms=9, mec="k", capsize=3, label=f"{name} ({_kind(data, name)})")
        if logx:
            ax.set_xscale("log")
        ax.margins(0.08)  # no marker on the frame
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy,\nvalidation-selected (%)")
        ax.grid(alpha=0.3)
        _legend_below(ax)
        return fig

    out["accuracy_vs_time"] = ("Accuracy vs training wall time (small markers: seeds; large: mean ± std over "
                               "seeds; circles SNN, squares ANN).", _png(scatter("train_seconds",
                                                                                 "training wall time (s)", False)))
    for name in names:
        for r in per[name]:
            r["_synops"] = (r.get("synops_effective_acs") or 0) + (r.get("synops_effective_macs") or 0) or None
    out["accuracy_vs_synops"] = ("Accuracy vs effective synaptic operations per sample (ACs + MACs, NeuroBench; "
                                 "log scale).", _png(scatter("_synops", "effective synaptic operations per sample "
                                                             "(ACs + MACs, count)", True)))
    out["accuracy_vs_energy"] = ("Accuracy vs ESTIMATED compute energy per sample (45 nm: MAC 4.6 pJ, AC 0.9 pJ; "
                                 "memory access excluded; log scale).",
                                 _png(scatter("energy_estimate_uJ", "ESTIMATED compute energy per sample (µJ)", True)))
    for name in names:
        for r in per[name]:
            r.pop("_synops", None)

    depths = {name: max((len(r.get("spikes_per_layer") or []) for r in per[name]), default=0) for name in names}
    depth = max(depths.values(), default=0)
    fig = _figure(figsize=(max(5.5, 1.6 + 1.4 * depth), 4.2), layout="constrained")
    ax = fig.add_subplot()
    drawn = [n for n in names if depths[n]]
    width = 0.8 / max(len(drawn), 1)
    tops = [0.0]
    for k, name in enumerate(names):
        if name not in drawn:  # say so in the legend rather than leave it out silently
            ax.bar([0], [0], 0, color=f"C{k}", label=f"{name}: not measured")
            continue
        j = drawn.index(name)
        layers = [r.get("spikes_per_layer") or [] for r in per[name]]
        mat = np.array([v + [np.nan] * (depths[name] - len(v)) for v in layers], dtype=float)
        mean = np.nanmean(mat, 0)
        std = np.nanstd(mat, 0, ddof=1) if len(mat) > 1 else np.zeros(depths[name])
        tops.append(float(np.nanmax(mean + np.nan_to_num(std))))
        ax.bar(np.arange(depths[name]) + (j - (len(drawn) - 1) / 2) * width, mean, width, yerr=std, capsize=3,
               color=f"C{k}", label=f"{name} ({'spikes' if data['kinds'][name] == 'snn' else 'nonzero activations'})")
    ax.set_xticks(range(depth), [f"layer {i + 1}" for i in range(depth)])
    ax.set_xlim(-0.6, depth - 0.4)
    ax.set_xlabel("neuron layer (layer 1 = first hidden layer)")
    ax.set_ylabel("spikes or nonzero activations\nper sample (count, all steps)")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(0, max(10.0, 3 * max(tops)))  # room above the tallest bar and its error bar (log scale)
    ax.grid(alpha=0.3, axis="y")
    _legend_below(ax)
    out["spikes_per_layer"] = ("Spikes (SNN) or nonzero activations (ANN) per sample and neuron layer, summed over "
                               "time steps, mean ± std over seeds (symmetric log scale).", _png(fig))

    mats = {name: [np.asarray(m) for m in confusion.get(name, []) if m is not None] for name in names}
    shown = [n for n in names if mats[n]]
    if shown:
        k_max = max(np.asarray(mats[n][0]).shape[0] for n in shown)
        side = max(4.4, 0.36 * k_max + 1.6)
        cols = min(2, len(shown))  # at most two a row: readable at the page's width
        rows = -(-len(shown) // cols)
        fig = _figure(figsize=((side + 0.9) * cols, side * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax in axes[len(shown):]:
            ax.remove()
        for ax, name in zip(axes, shown):
            m = np.sum(mats[name], 0)
            k = m.shape[0]
            im = ax.imshow(m, cmap="Blues", vmin=0)
            if k <= 20:
                top = m.max()
                for r in range(k):
                    for c in range(k):
                        if m[r, c]:
                            ax.text(c, r, str(int(m[r, c])), ha="center", va="center", fontsize=7,
                                    color="white" if m[r, c] > top / 2 else "black")
            ax.set_xticks(range(k), [str(c) for c in range(k)])
            ax.set_yticks(range(k), [str(c) for c in range(k)])
            ax.set_title(f"{name} ({_kind(data, name)}), summed over {len(mats[name])} "
                         f"seed{'s' * (len(mats[name]) != 1)}", fontsize=9)
            ax.set_xlabel("predicted class")
            ax.set_ylabel("true class")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="test samples (count)")
        out["confusion"] = ("Confusion matrices on the test set (rows: true class, columns: predicted class; "
                            "counts), selected weights, summed over seeds.", _png(fig))
    return out


def findings(data: dict) -> list[str]:
    """Plain sentences: where each SNN is worse (and better) than each ANN in the comparison."""
    kinds, summary = data["kinds"], data["summary"]
    snns = [n for n in data["models"] if kinds[n] == "snn"]
    anns = [n for n in data["models"] if kinds[n] != "snn"]
    lines = []
    if not snns or not anns:
        return ["The comparison holds no SNN-ANN pair; differences between the models are in the table."]
    for s in snns:
        for a in anns:
            worse, better = [], []
            for key, higher in (("test_accuracy", True), ("best_test_accuracy_seen", True), ("train_seconds", False),
                                ("latency_ms_per_sample", False), ("energy_estimate_uJ", False),
                                ("n_params", False)):
                ms, ma = summary[s][key]["mean"], summary[a][key]["mean"]
                if ms is None or ma is None or ms == ma:
                    continue
                if key in _PERCENT:
                    text = (f"{_NAMES[key]}: {_value(key, ms)} vs {_value(key, ma)} "
                            f"({100 * (ms - ma):+.2f} percentage points)")
                else:
                    text = (f"{_NAMES[key]}: {_value(key, ms)} vs {_value(key, ma)}"
                            + (f" ({ms / ma:.3g} times)" if ma else ""))
                (better if (ms > ma) == higher else worse).append(text)
            if worse:
                lines.append(f"The SNN {s} is WORSE than the ANN {a} in " + "; ".join(worse) + ".")
            if better:
                lines.append(f"The SNN {s} is better than the ANN {a} in " + "; ".join(better) + ".")
            sa, aa = summary[s]["test_accuracy"], summary[a]["test_accuracy"]
            if sa["mean"] is not None and aa["mean"] is not None and sa["n"] > 1:
                gap = abs(sa["mean"] - aa["mean"])
                spread = max(sa["std"], aa["std"])
                if gap <= spread:
                    lines.append(f"The accuracy difference between {s} and {a} ({100 * gap:.2f} percentage points) "
                                 f"is within the spread over seeds (standard deviation {100 * spread:.2f} "
                                 "percentage points).")
    lines.append("The energy figures are estimates of arithmetic alone; on real hardware memory access usually "
                 "dominates, and CPU time (above) is what was measured.")
    return lines


def _note(data: dict, name: str) -> str:
    """The run's own caveat about how its metrics differ from the table's definitions, if any (the
    description it follows gets its full stop)."""
    note = data.get("notes", {}).get(name)
    if not note:
        return ""
    end = "" if str(data["descriptions"].get(name, "")).rstrip().endswith((".", ")", "!", "?")) else "."
    return f"{end} Note: {note}"


def _table_rows(data: dict) -> tuple[list[str], list[list[str]]]:
    header = ["metric", *data["models"], "definition"]
    rows = []
    for key in SUMMARY_KEYS:
        rows.append([_LABELS.get(key, key), *[_fmt(key, data["summary"][n][key]) for n in data["models"]],
                     METRIC_DEFINITIONS.get(key, "")])
    return header, rows


#: engine-agreement entries (:func:`biosim.bridge.nir_engine.engine_agreement`): key -> (name, format)
_AGREEMENT = {
    "same_class_fraction": ("samples given the same class", lambda v: f"{100 * v:.2f} %"),
    "identical_spike_counts_fraction": ("samples with identical hidden spike counts", lambda v: f"{100 * v:.2f} %"),
    "n_samples": ("test samples", lambda v: f"{int(v)}"),
    "engine_accuracy": ("engine accuracy", lambda v: f"{100 * v:.2f} %"),
    "torch_accuracy": ("torch accuracy", lambda v: f"{100 * v:.2f} %"),
    "mean_abs_spike_count_diff": ("|spike-count difference| summed over hidden neurons",
                                  lambda v: f"{v:.3g} spikes per sample"),
    "dt": ("dt", lambda v: f"{1e3 * v:g} ms"),  # NIR graphs store seconds
    "dtype": ("engine float type", str),
    "engine_setup_s": ("engine setup", lambda v: f"{v:.3g} s"),
    "engine_s": ("engine run", lambda v: f"{v:.3g} s"),
}


def _agreement_value(key: str, v) -> str:
    name, fmt = _AGREEMENT.get(key, (key, str))
    try:
        text = fmt(v) if v is not None else "n/a"
    except (TypeError, ValueError):
        text = str(v)
    return f"{name} = {text}" if key == "dt" else f"{name}: {text}"


def _agreement_lines(data: dict) -> list[str]:
    """One line per run: the NIR engine's agreement with torch, every number with its unit."""
    lines = []
    for name, entries in data.get("engine_agreement", {}).items():
        for seed, e in enumerate(entries):
            if e:
                keys = [k for k in _AGREEMENT if k in e] + [k for k in e if k not in _AGREEMENT]
                lines.append(f"{name} seed {seed}: " + ", ".join(_agreement_value(k, e[k]) for k in keys))
    return lines


def write_reports(out_dir: Path, data: dict, confusion: dict) -> None:
    """Write ``report.md``, ``report.html`` and the plots (PNG) into ``out_dir``."""
    out_dir = Path(out_dir)
    figs = figures(data, confusion)
    for key, (_, png) in figs.items():
        with atomic_binary(out_dir / f"{key}.png") as fh:
            fh.write(png)
    header, rows = _table_rows(data)
    facts = findings(data)
    agreement = _agreement_lines(data)
    seeds = len(data["seeds"])
    runs_lines = []
    for name in data["models"]:
        for r in data["per_seed"][name]:
            acc = {k: _value(k, r[k]) if r.get(k) is not None else "n/a"
                   for k in ("test_accuracy", "best_test_accuracy_seen")}
            runs_lines.append(f"{name} seed {r['seed']}: {'reused' if r['reused'] else 'trained'} {r['run_dir']} "
                              f"(test {acc['test_accuracy']}, best-test {acc['best_test_accuracy_seen']})")
    intro = (f"Models: {', '.join(data['models'])}; seeds 0..{seeds - 1} ({seeds}); each model trained with its "
             "named run's split, augmentation and budget (the twins share them)."
             + (f" Overrides: {' '.join(data['sets'])}." if data["sets"] else "")
             + " Values are mean ± standard deviation over seeds (sample std; a single seed shows its value "
               "alone).")

    md = ["# biosim compare: " + " vs ".join(data["models"]), "", intro, ""]
    md += [f"- **{n}** ({data['kinds'][n]}): {data['descriptions'][n]}" + _note(data, n) for n in data["models"]]
    md += ["", "## Where the SNN is worse (and better)", ""] + [f"- {f}" for f in facts]
    md += ["", "## Metrics", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", "Energy assumptions: " + ENERGY_ASSUMPTIONS, ""]
    md += ["## Engine agreement (NIR)", ""]
    md += ([f"- {x}" for x in agreement] if agreement else
           ["Not available in this build (hook: biosim.experiments.compare.engine_agreement, filled by "
            "biosim.bridge.nir_engine)."])
    md += ["", "## Plots", ""]
    md += [f"![{key}]({key}.png)\n\n{cap}\n" for key, (cap, _) in figs.items()]
    md += ["## Runs", ""] + [f"- {x}" for x in runs_lines] + [""]
    atomic_write_text(out_dir / "report.md", "\n".join(md))

    e = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>biosim compare</title><style>",
             "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;padding:3px 6px}"
             "th{background:#eee}td.def{color:#555;font-size:12px}.worse{color:#a00}img{max-width:100%}",
             "</style></head><body>", f"<h1>biosim compare: {e(' vs '.join(data['models']))}</h1>",
             f"<p>{e(intro)}</p><ul>"]
    parts += [f"<li><b>{e(n)}</b> ({e(data['kinds'][n])}): {e(data['descriptions'][n] + _note(data, n))}</li>"
              for n in data["models"]]
    parts += ["</ul><h2>Where the SNN is worse (and better)</h2><ul>"]
    parts += [f"<li{' class=worse' if 'WORSE' in f else ''}>{e(f)}</li>" for f in facts]
    parts += ["</ul><h2>Metrics</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"]
    for r in rows:
        parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r[:-1]) + f"<td class=def>{e(r[-1])}</td></tr>")
    parts += [f"</table><p><b>Energy assumptions.</b> {e(ENERGY_ASSUMPTIONS)}</p>",
              "<h2>Engine agreement (NIR)</h2>"]
    parts += ([f"<ul>{''.join(f'<li>{e(x)}</li>' for x in agreement)}</ul>"] if agreement else
              ["<p>Not available in this build (hook: biosim.experiments.compare.engine_agreement, filled by "
               "biosim.bridge.nir_engine).</p>"])
    parts.append("<h2>Plots</h2>")
    for key, (cap, png) in figs.items():
        b64 = base64.b64encode(png).decode()
        parts.append(f"<figure><img alt='{e(key)}' src='data:image/png;base64,{b64}'><figcaption>{e(cap)}"
                     "</figcaption></figure>")
    parts += ["<h2>Runs</h2><ul>"] + [f"<li>{e(x)}</li>" for x in runs_lines] + ["</ul></body></html>"]
    atomic_write_text(out_dir / "report.html", "\n".join(parts))
