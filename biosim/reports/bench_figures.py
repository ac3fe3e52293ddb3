"""Figures of the benchmarks: how cost grows with network size (log-log)."""

from __future__ import annotations

from biosim.reports.figures import _figure

__all__ = ["scaling_figure"]

_SIMULATORS = {"biosim": ("biosim", "C0", "o"), "brian2_cpp_standalone": ("Brian2 C++ standalone", "C1", "s")}


def scaling_figure(report: dict):
    """Loop time per biological second and set-up time against the number of neurons, both axes
    logarithmic, for biosim and (when the report has it) Brian2's C++ standalone (its set-up without
    the g++ run); with ``threads > 1`` the loops on one thread too (dashed); a dotted line of slope 1
    (cost proportional to size) through biosim's first point for reference, and at a fixed
    connection probability one of slope 2 (proportional to the synapses)."""
    fig = _figure(figsize=(9.5, 3.8), layout="constrained")
    ax_loop, ax_setup = fig.subplots(1, 2)
    n = [r["n_neurons"] for r in report["sizes"]]
    bio_s = report["bio_time_s"]
    threads = report.get("threads", 1)
    for key, (label, colour, marker) in _SIMULATORS.items():
        rows = [r[key] for r in report["sizes"] if key in r]
        if len(rows) != len(n):
            continue
        on = f", {threads} threads" if threads > 1 else ""
        ax_loop.plot(n, [x["loop_s"] / bio_s for x in rows], marker=marker, color=colour, label=label + on)
        ones = [r[f"{key}_1_thread"] for r in report["sizes"] if f"{key}_1_thread" in r]
        if threads > 1 and len(ones) == len(n):
            ax_loop.plot(n, [x["loop_s"] / bio_s for x in ones], "--", marker=marker, color=colour, alpha=0.6,
                         label=f"{label}, 1 thread")
        ax_setup.plot(n, [x.get("setup_without_compile_s", x["setup_s"]) for x in rows], marker=marker, color=colour,
                      label=label)
    first = report["sizes"][0]["biosim"]["loop_s"] / bio_s
    ax_loop.plot(n, [first * k / n[0] for k in n], ":", color="grey", label="proportional to size")
    if report.get("per_neuron") is None and len(n) > 1:
        ax_loop.plot(n, [first * (k / n[0]) ** 2 for k in n], "-.", color="grey", label="proportional to size²")
    ax_loop.set_ylabel("loop time per biological second (s)")
    ax_setup.set_ylabel("set-up time, without C++ compilation (s)")
    for ax in (ax_loop, ax_setup):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("network size (neurons)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if report.get("per_neuron") is not None:
        conn = f"about {report['per_neuron']:g} synapses per neuron"
    else:
        conn = f"p = {report.get('p_connect') or report['params'].get('p_connect')}"
    fig.suptitle(f"{report['name']}: cost against size ({conn}, dt = {report['dt_ms']:g} ms, {report['backend']})")
    return fig
