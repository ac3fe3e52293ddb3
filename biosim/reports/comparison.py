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
_LABELS = {
    "test_accuracy": "test accuracy, validation-selected (%)",
    "best_test_accuracy_seen": "test accuracy, best-test (%)",
    "val_accuracy": "validation accuracy (%)",
    "train_seconds": "training time (s)",
    "latency_ms_per_sample": "latency per sample (ms)",
    "n_params": "parameters",
    "footprint_bytes": "footprint (bytes)",
    "connection_sparsity": "connection sparsity (%)",
    "activation_sparsity": "activation sparsity (%)",
    "spikes_per_sample": "spikes / nonzero activations per sample",
    "synops_effective_acs": "effective ACs per sample",
    "synops_effective_macs": "effective MACs per sample",
    "synops_dense": "dense synaptic operations per sample",
    "energy_estimate_uJ": "energy ESTIMATE per sample (uJ)",
}


def _fmt(key: str, stats: dict) -> str:
    if stats.get("mean") is None:
        return "n/a"
    m, s = stats["mean"], stats["std"]
    if key in _PERCENT:
        return f"{100 * m:.2f} ± {100 * s:.2f}"
    if abs(m) >= 1e4:
        return f"{m:,.0f} ± {s:,.0f}"
    if 0 < abs(m) < 1e-2:
        return f"{m:.4g} ± {s:.2g}"
    return f"{m:.4g} ± {s:.3g}"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def figures(data: dict, confusion: dict) -> dict[str, tuple[str, bytes]]:
    """The report's plots: name -> (caption, PNG bytes)."""
    names = data["models"]
    per = data["per_seed"]
    out = {}

    def scatter(xkey, xlabel, logx):
        fig = _figure(figsize=(6, 4))
        ax = fig.add_subplot()
        for k, name in enumerate(names):
            xs = [r.get(xkey) for r in per[name]]
            ys = [100 * r["test_accuracy"] for r in per[name] if r.get("test_accuracy") is not None]
            xs = [x if x is not None else np.nan for x in xs][:len(ys)]
            marker = "o" if data["kinds"][name] == "snn" else "s"
            ax.plot(xs, ys, marker, color=f"C{k}", alpha=0.5, ms=5)
            if not ys or all(np.isnan(xs)):  # this model has no such measurement (e.g. STDP: no synops)
                continue
            ax.errorbar(np.nanmean(xs), np.mean(ys), yerr=np.std(ys, ddof=1) if len(ys) > 1 else 0,
                        fmt=marker, color=f"C{k}", ms=9, mec="k",
                        label=f"{name} ({'SNN' if data['kinds'][name] == 'snn' else data['kinds'][name].upper()})")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy, validation-selected (%)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        return fig

    out["accuracy_vs_time"] = ("Accuracy vs training wall time (small markers: seeds; large: mean ± std over "
                               "seeds; circles SNN, squares ANN).", _png(scatter("train_seconds",
                                                                                 "training time (s)", False)))
    for name in names:
        for r in per[name]:
            r["_synops"] = (r.get("synops_effective_acs") or 0) + (r.get("synops_effective_macs") or 0)
    out["accuracy_vs_synops"] = ("Accuracy vs effective synaptic operations per sample (ACs + MACs, NeuroBench; "
                                 "log scale).", _png(scatter("_synops", "effective synaptic operations per sample",
                                                             True)))
    out["accuracy_vs_energy"] = ("Accuracy vs ESTIMATED compute energy per sample (45 nm: MAC 4.6 pJ, AC 0.9 pJ; "
                                 "memory access excluded; log scale).",
                                 _png(scatter("energy_estimate_uJ", "estimated energy per sample (uJ)", True)))
    for name in names:
        for r in per[name]:
            r.pop("_synops", None)

    fig = _figure(figsize=(7, 3.8))
    ax = fig.add_subplot()
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        layers = [r.get("spikes_per_layer") or [] for r in per[name]]
        depth = max((len(v) for v in layers), default=0)
        if not depth:
            continue
        mat = np.array([v + [np.nan] * (depth - len(v)) for v in layers], dtype=float)
        mean = np.nanmean(mat, 0)
        std = np.nanstd(mat, 0, ddof=1) if len(mat) > 1 else np.zeros(depth)
        ax.bar(np.arange(depth) + k * width, mean, width, yerr=std, color=f"C{k}",
               label=f"{name} ({'spikes' if data['kinds'][name] == 'snn' else 'nonzero activations'})")
    ax.set_xlabel("neuron layer (0 = first hidden)")
    ax.set_ylabel("per sample, summed over steps")
    ax.set_yscale("symlog", linthresh=1)
    ax.legend(fontsize=8)
    out["spikes_per_layer"] = ("Spikes (SNN) or nonzero activations (ANN) per sample and neuron layer, mean ± std "
                               "over seeds.", _png(fig))

    mats = {name: [np.asarray(m) for m in confusion.get(name, []) if m is not None] for name in names}
    shown = [n for n in names if mats[n]]
    if shown:
        fig = _figure(figsize=(4.2 * len(shown), 3.8))
        axes = fig.subplots(1, len(shown), squeeze=False)[0]
        for ax, name in zip(axes, shown):
            m = np.sum(mats[name], 0)
            ax.imshow(m, cmap="Blues")
            if m.shape[0] <= 10:
                top = m.max()
                for r in range(m.shape[0]):
                    for c in range(m.shape[1]):
                        if m[r, c]:
                            ax.text(c, r, str(int(m[r, c])), ha="center", va="center", fontsize=6,
                                    color="white" if m[r, c] > top / 2 else "black")
            ax.set_title(f"{name} (summed over {len(mats[name])} seeds)", fontsize=9)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
        out["confusion"] = ("Confusion matrices on the test set (rows: true class, columns: predicted), "
                            "selected weights, summed over seeds.", _png(fig))
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
                    text = f"{_LABELS[key]}: {100 * ms:.2f} vs {100 * ma:.2f} ({100 * (ms - ma):+.2f} points)"
                else:
                    text = f"{_LABELS[key]}: {ms:.4g} vs {ma:.4g} (x{ms / ma:.3g})" if ma else f"{_LABELS[key]}"
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
                    lines.append(f"The accuracy difference between {s} and {a} ({100 * gap:.2f} points) is within "
                                 f"the spread over seeds ({100 * spread:.2f} points std).")
    lines.append("The energy figures are estimates of arithmetic alone; on real hardware memory access usually "
                 "dominates, and CPU time (above) is what was measured.")
    return lines


def _note(data: dict, name: str) -> str:
    """The run's own caveat about how its metrics differ from the table's definitions, if any."""
    note = data.get("notes", {}).get(name)
    return f" Note: {note}" if note else ""


def _table_rows(data: dict) -> tuple[list[str], list[list[str]]]:
    header = ["metric", *data["models"], "definition"]
    rows = []
    for key in SUMMARY_KEYS:
        rows.append([_LABELS.get(key, key), *[_fmt(key, data["summary"][n][key]) for n in data["models"]],
                     METRIC_DEFINITIONS.get(key, "")])
    return header, rows


def _agreement_lines(data: dict) -> list[str]:
    lines = []
    for name, entries in data.get("engine_agreement", {}).items():
        got = [e for e in entries if e]
        if got:
            for seed, e in enumerate(entries):
                if e:
                    lines.append(f"{name} seed {seed}: " + ", ".join(f"{k} = {v}" for k, v in e.items()))
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
            runs_lines.append(f"{name} seed {r['seed']}: {'reused' if r['reused'] else 'trained'} {r['run_dir']} "
                              f"(test {100 * (r['test_accuracy'] or 0):.2f} %, best-test "
                              f"{100 * (r['best_test_accuracy_seen'] or 0):.2f} %)")
    intro = (f"Models: {', '.join(data['models'])}; seeds 0..{seeds - 1} ({seeds}); each model trained with its "
             "named run's split, augmentation and budget (the twins share them)."
             + (f" Overrides: {' '.join(data['sets'])}." if data["sets"] else "")
             + " Values are mean ± standard deviation over seeds (sample std; 0 for one seed).")

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
