"""How the engine's cost grows with the network: ``biosim bench cuba --sizes 4000,40000,200000``.

Per size ``n`` (``0.8 n`` excitatory, ``0.2 n`` inhibitory neurons, the parameters of
``models/<name>.toml`` after ``--set``) it measures biosim's set-up (building the network, drawing
its synapses, laying out the plan and loading the kernel: everything before the first step), its
simulation loop (best of ``repeats``; on numba-cpu each repeat after the first in a new process, as
Brian2 standalone's repeats start its binary again: see :mod:`biosim.bench.runner`), the peak memory
Python allocated for both (``tracemalloc``: NumPy's arrays included) and the memory per synapse;
with ``against=("brian2",)`` the same network in Brian2's C++ standalone mode, side by side (its
own connectivity draw, same sizes and probability; its set-up is code generation, compilation and
the binary's work before the loop, ``compile_s`` the compiler's part).

The connection probability is the TOML's at every size (synapses grow as ``n**2``), or a fixed
``p_connect`` (``--p-connect 0.02``: the same, with the probability given), or ``per_neuron / n``
with ``per_neuron`` (``--per-neuron 80``: about 80 synapses per neuron at every size, so that the
work grows as ``n``). Before anything runs, every size is checked against the memory available
(:func:`memory_needed`): a size that would not fit is refused with the estimate, in one line.
:func:`format_scaling_table` prints the report; :func:`biosim.reports.bench_figures.scaling_figure`
draws it on log-log axes.

Threads (``threads=N``, ``--threads N``, numba-cpu): biosim runs each step on N threads and Brian2
standalone is built with OpenMP on N threads; for N > 1 both are also timed on one thread at every
size (``biosim_1_thread``, ``brian2_cpp_standalone_1_thread``; biosim's runs take turns), and each
size gets ``parallel_efficiency`` (``t1 / (N * tN)``), ``speedup`` and ``same_spikes_as_1_thread``
(biosim's spikes on N threads equal to its spikes on one, spike for spike).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Sequence

from biosim.backends import BACKENDS
from biosim.backends.numba_cuda import device_bytes
from biosim.bench.common import fmt, machine, spike_count
from biosim.bench.runner import (BENCHES, _builder, _load_params, _rate, _run_brian2, _silent, _versions, _warm_up,
                                 check_threads, in_new_process, same_count, same_spikes)
from biosim.errors import BiosimError, unknown
from biosim.network.compile import available_bytes, estimate_bytes

__all__ = ["run_scaling_bench", "format_scaling_table", "memory_needed", "BIOSIM_PEAK_BYTES_PER_SYNAPSE",
           "BRIAN2_PEAK_BYTES_PER_SYNAPSE"]

#: biosim's peak memory per synapse while it draws a network's synapses (measured: the peak
#: resident memory of a process building CUBA at p = 0.02 with 4000, 40000 and 80000 neurons --
#: 0.32, 32 and 128 million synapses -- grew by 24.7-25.5 bytes per synapse: the drawn int64
#: sources and targets and their drawing's temporaries, beside the plan's 4 bytes a synapse; 48
#: before one weight per projection was kept once and the drawn indices dropped after the layout).
#: :func:`biosim.network.compile.estimate_bytes` estimates the same peak from the network's
#: description; the bench takes the larger of the two.
BIOSIM_PEAK_BYTES_PER_SYNAPSE = 26

#: Brian2 standalone's peak resident memory per synapse (measured: its binary for CUBA with 40000
#: neurons at p = 0.02, 32 million synapses, peaked at 783 MiB, 25.7 bytes per synapse).
BRIAN2_PEAK_BYTES_PER_SYNAPSE = 26


def _p_connect(params: dict, n: int, per_neuron: float | None, p_connect: float | None = None) -> float:
    if per_neuron is not None:
        return min(1.0, float(per_neuron) / n)
    return float(params["p_connect"]) if p_connect is None else float(p_connect)


def _size_config(params: dict, n: int, per_neuron: float | None, p_connect: float | None) -> dict:
    n_exc = int(round(0.8 * n))
    return dict(params, n_exc=n_exc, n_inh=n - n_exc, p_connect=_p_connect(params, n, per_neuron, p_connect))


def memory_needed(net) -> dict:
    """About how much memory biosim and Brian2 standalone need for ``net`` (built, synapses not yet
    drawn): ``{"synapses": expected count, "biosim": bytes, "brian2_cpp_standalone": bytes}``."""
    n_syn = sum(p.rule.expected(p.src.n, p.tgt.n) for p in net.projections)
    return {"synapses": n_syn, "biosim": max(estimate_bytes(net), int(n_syn * BIOSIM_PEAK_BYTES_PER_SYNAPSE)),
            "brian2_cpp_standalone": int(n_syn * BRIAN2_PEAK_BYTES_PER_SYNAPSE)}


def _check_memory(builder, params: dict, sizes: Sequence[int], seed: int, per_neuron, p_connect,
                  brian2: bool) -> None:
    """A one-line refusal, before anything runs, of the first size that would not fit in memory."""
    have = available_bytes()
    for n in sizes:
        cfg = _size_config(params, n, per_neuron, p_connect)
        need = memory_needed(builder(cfg, seed))
        who = [("biosim", need["biosim"])]
        if brian2:
            who.append(("Brian2 standalone", need["brian2_cpp_standalone"]))
        for name, b in who:
            if b > have:
                raise BiosimError(
                    f"size {n} at p = {cfg['p_connect']:.3g} does not fit in memory: about {need['synapses'] / 1e6:.3g} "
                    f"million synapses, {name} needs about {b / 2**30:.1f} GiB, {have / 2**30:.1f} GiB available; "
                    f"leave out this size (or lower the connection probability)")


def _biosim_size(name: str, cfg: dict, seed: int, backend: str, duration_ms: float, repeats: int,
                 threads: Sequence[int] = (1,)) -> list[dict]:
    """One result per thread count in ``threads``; the runs take turns, ``repeats`` rounds; each
    result keeps the spikes of its first run under ``"spikes"``. On numba-cpu every round after the
    first runs in a new process (:func:`_size_run`), as in :func:`biosim.bench.runner.run_bench`; its
    spike count must equal the first's."""
    out = [{"loops": [], "setups": [], "peaks": []} for _ in threads]
    for rnd in range(repeats):
        for n_threads, o in zip(threads, out):
            if rnd == 0 or backend != "numba-cpu":
                r = _size_run(name, cfg, seed, backend, duration_ms, n_threads, warm_up=False)
                o.setdefault("spikes", r["spikes"])
                o.update({k: r[k] for k in ("n_syn", "n_spikes", "syn_bytes", "dev_bytes")})
            else:
                what = (f"bench {name} at {cfg['n_exc'] + cfg['n_inh']} neurons on {n_threads} "
                        f"thread{'s' * (n_threads != 1)}")
                r = same_count(in_new_process("biosim.bench.scaling:_size_run",
                                              [name, cfg, seed, backend, duration_ms, n_threads], f"{what}: a repeat"),
                               o["n_spikes"], what)
            o["loops"].append(r["loop_s"])
            o["setups"].append(r["setup_s"])
            o["peaks"].append(r["peak"])
    n = int(cfg["n_exc"]) + int(cfg["n_inh"])
    results = []
    for n_threads, o in zip(threads, out):
        loop_s, n_syn = min(o["loops"]), o["n_syn"]
        results.append({
            "threads": n_threads, "n_synapses": n_syn, "loop_s": loop_s, "loop_s_all": o["loops"],
            "setup_s": min(o["setups"]), "setup_s_all": o["setups"], "peak_mib": max(o["peaks"]) / 2**20,
            "wall_per_bio_s": loop_s * 1e3 / duration_ms,
            "realtime_factor": duration_ms * 1e-3 / loop_s if loop_s > 0 else None, "synapse_bytes": o["syn_bytes"],
            "bytes_per_synapse": o["syn_bytes"] / n_syn if n_syn else None, "device_bytes": o["dev_bytes"],
            "n_spikes": o["n_spikes"], "mean_rate_hz": _rate(o["n_spikes"], n, duration_ms), "spikes": o["spikes"]})
    return results


def _size_run(name: str, cfg: dict, seed: int, backend: str, duration_ms: float, threads: int,
              warm_up: bool = True) -> dict:
    """Build and run one size: ``loop_s``, ``setup_s``, ``peak`` (bytes Python allocated at most,
    ``tracemalloc``), ``n_syn``, ``n_spikes``, ``syn_bytes``, ``dev_bytes`` and ``spikes``; the
    kernel loaded on a tiny copy first unless ``warm_up`` is false."""
    builder = _builder(name)
    if warm_up:
        _warm_up(name, cfg, seed, None, threads, backend)
    tracemalloc.start()
    t0 = time.perf_counter()
    net = builder(cfg, seed)
    res = net.run(duration_ms, backend=backend, threads=threads)
    total = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    plan = net._sim.plan
    if backend == "numba-cuda":
        est = device_bytes(plan)
        syn_bytes, dev_bytes = est["synapses"], est["total"]
    else:
        syn_bytes, dev_bytes = plan.tgt.nbytes + plan.w.nbytes + plan.dly.nbytes, None
    return {"loop_s": res.loop_s, "setup_s": total - res.loop_s, "peak": peak, "n_syn": int(len(plan.tgt)),
            "n_spikes": spike_count(res.spikes), "syn_bytes": int(syn_bytes),
            "dev_bytes": None if dev_bytes is None else int(dev_bytes), "spikes": res.spikes}


def _brian2_size(name: str, cfg: dict, seed: int, repeats: int, threads: int, bio: dict) -> dict:
    b2 = _run_brian2(name, "cpp_standalone", cfg, seed, repeats, threads=threads)
    b2.pop("spikes")
    b2["loop_ratio"] = bio["loop_s"] / b2["loop_s"] if b2["loop_s"] > 0 else None
    b2["setup_without_compile_s"] = max(b2["setup_s"] - (b2["compile_s"] or 0.0), 0.0)
    b2["setup_ratio"] = (bio["setup_s"] / b2["setup_without_compile_s"] if b2["setup_without_compile_s"] > 0
                         else None)
    b2["rss_bytes_per_synapse"] = (b2["peak_rss_mib"] * 2**20 / b2["n_synapses"]
                                   if b2.get("peak_rss_mib") and b2["n_synapses"] else None)
    return b2


def run_scaling_bench(name: str, sizes: Sequence[int], backend: str = "numba-cpu", cfg_overrides=None,
                      repeats: int = 1, *, seed: int = 1, against: Sequence[str] = (),
                      per_neuron: float | None = None, p_connect: float | None = None, threads: int = 1,
                      log: Callable[[str], None] | None = None) -> dict:
    """Time biosim on the named network at several sizes, and Brian2's C++ standalone beside it
    when ``against`` holds ``"brian2"``; return the report (see the module docstring).

    Per size: ``n_neurons``, ``p_connect`` and under ``"biosim"``: ``threads``, ``n_synapses``,
    ``loop_s`` (best of ``repeats``), ``setup_s``, ``peak_mib``, ``wall_per_bio_s``,
    ``realtime_factor`` (biological over wall time), ``synapse_bytes`` and ``bytes_per_synapse`` (on
    numba-cuda the GPU memory of the synapses, :func:`biosim.backends.numba_cuda.device_bytes`, and
    ``device_bytes`` the whole estimate), spikes and mean rate; under ``"brian2_cpp_standalone"`` its
    ``loop_s``, ``setup_s``, ``compile_s`` (g++), ``setup_without_compile_s``, ``peak_rss_mib`` (its
    binary's peak resident memory) and ``rss_bytes_per_synapse`` (that over its synapses: fixed costs
    included), synapses and rate, with ``loop_ratio`` and ``setup_ratio`` (biosim's over Brian2's on
    the same number of threads, set-up without the compiler: below 1 biosim is faster). With
    ``threads > 1`` also ``biosim_1_thread``, ``brian2_cpp_standalone_1_thread``,
    ``parallel_efficiency``, ``speedup`` and ``same_spikes_as_1_thread`` per size.
    """
    if name not in BENCHES:
        raise unknown("benchmark", name, BENCHES)
    if backend not in BACKENDS:
        raise unknown("backend", backend, BACKENDS)
    sizes = list(sizes)
    if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 10 for n in sizes):
        raise BiosimError(f"sizes = {sizes!r} must be whole numbers of neurons >= 10")
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise BiosimError(f"repeats = {repeats!r} must be an integer >= 1")
    against = list(against)
    for a in against:
        if a != "brian2":
            raise unknown("competitor of the scaling bench", a, ["brian2"])
    if per_neuron is not None and not (isinstance(per_neuron, (int, float)) and 0 < per_neuron < float("inf")):
        raise BiosimError(f"per_neuron = {per_neuron!r} must be a number of synapses per neuron > 0")
    if p_connect is not None:
        if per_neuron is not None:
            raise BiosimError("give a fixed connection probability (p_connect) or synapses per neuron (per_neuron), "
                              "not both")
        if isinstance(p_connect, bool) or not isinstance(p_connect, (int, float)) or not 0 < p_connect <= 1:
            raise BiosimError(f"p_connect = {p_connect!r} must be a probability in (0, 1]")
    threads = check_threads(threads)
    if threads > 1 and backend != "numba-cpu":
        raise BiosimError(f"--threads {threads} is for the numba-cpu backend, not {backend}")
    log = log or _silent
    _, params = _load_params(name, cfg_overrides)
    params.setdefault("bio_time_s", 1.0)
    params["bio_time_s"] = float(params["bio_time_s"])
    builder = _builder(name)
    _check_memory(builder, params, sizes, seed, per_neuron, p_connect, bool(against))
    dt_ms = float(params["dt_ms"])
    duration_ms = params["bio_time_s"] * 1e3
    counts = (threads, 1) if threads > 1 else (1,)
    log(f"bench {name} on {backend}: compiling on a tiny network ...")
    t0 = time.perf_counter()
    for n_threads in counts:
        _warm_up(name, params, seed, None, n_threads, backend)
    compile_s = time.perf_counter() - t0
    rows = []
    on = f" on {threads} and 1 threads" if threads > 1 else ""
    for n in sizes:
        cfg = _size_config(params, n, per_neuron, p_connect)
        p = cfg["p_connect"]
        log(f"bench {name} on {backend}: {n} neurons (p = {p:.3g}){on} ...")
        results = _biosim_size(name, cfg, seed, backend, duration_ms, repeats, counts)
        spikes = [r.pop("spikes") for r in results]
        row = {"n_neurons": n, "p_connect": p, "biosim": results[0]}
        if threads > 1:
            row["biosim_1_thread"] = results[1]
            row["same_spikes_as_1_thread"] = same_spikes(spikes[0], spikes[1])
        del spikes
        if against:
            for n_threads, key, bio in zip(counts, ("brian2_cpp_standalone", "brian2_cpp_standalone_1_thread"),
                                           results):
                log(f"bench {name}: {n} neurons in brian2 cpp_standalone on {n_threads} "
                    f"thread{'s' * (n_threads != 1)} (code generation and g++) ...")
                row[key] = _brian2_size(name, cfg, seed, repeats, n_threads, bio)
        if threads > 1:
            row["speedup"], row["parallel_efficiency"] = {}, {}
            for key in ("biosim", "brian2_cpp_standalone"):
                if key in row and row[key]["loop_s"] > 0:
                    speedup = row[f"{key}_1_thread"]["loop_s"] / row[key]["loop_s"]
                    row["speedup"][key], row["parallel_efficiency"][key] = speedup, speedup / threads
        rows.append(row)
    return {"name": name, "backend": backend, "seed": seed, "repeats": repeats, "bio_time_s": params["bio_time_s"],
            "dt_ms": dt_ms, "dtype": params.get("dtype", "float64"), "per_neuron": per_neuron,
            "p_connect": p_connect, "threads": threads, "against": against, "compile_s": compile_s, "sizes": rows,
            "params": params, "machine": machine(gpu=_gpu_name(backend), **_versions())}


def format_scaling_table(report: dict) -> str:
    """The report of :func:`run_scaling_bench` as a text table (no final newline)."""
    gpu = report["machine"].get("gpu")
    threads = report.get("threads", 1)
    if report.get("per_neuron") is not None:
        conn = f"p = {report['per_neuron']:g}/n"
    elif report.get("p_connect") is not None:
        conn = f"fixed p = {report['p_connect']:g}"
    else:
        conn = f"p_connect {report['params'].get('p_connect')}"
    lines = [f"{report['name']} on {report['backend']}{f' ({gpu})' if gpu else ''}: {report['bio_time_s']:g} s "
             f"biological time, dt {report['dt_ms']:g} ms, {report['dtype']}, {conn}, "
             f"{threads} thread{'s' * (threads != 1)}, best loop of {report['repeats']}; kernel compiled in "
             f"{report['compile_s']:.1f} s"]
    b2 = bool(report.get("against"))
    head = f"{'neurons':>9}{'synapses':>13}{'loop_s':>9}"
    if threads > 1:
        head += f"{'loop_1t':>9}{'eff':>6}{'same':>6}"
    head += f"{'setup_s':>9}{'x realtime':>11}{'peak_MiB':>10}{'B/syn':>7}{'rate_hz':>9}"
    if b2:
        head += f"{'b2_loop_s':>11}"
        if threads > 1:
            head += f"{'b2_loop_1t':>11}{'b2_eff':>7}"
        head += f"{'b2_setup_s':>11}{'b2_g++_s':>10}{'b2_MiB':>9}{'b2_B/syn':>9}{'loop_ratio':>11}"
        if threads > 1:
            head += f"{'ratio_1t':>9}"
        head += f"{'setup_ratio':>12}"
    lines += [head, "-" * len(head)]
    for r in report["sizes"]:
        b = r["biosim"]
        line = f"{r['n_neurons']:>9}{b['n_synapses']:>13}{fmt(b['loop_s'], '.3f'):>9}"
        if threads > 1:
            same = "yes" if r["same_spikes_as_1_thread"] else "NO"
            line += (f"{fmt(r['biosim_1_thread']['loop_s'], '.3f'):>9}"
                     f"{fmt(r['parallel_efficiency'].get('biosim'), '.2f'):>6}{same:>6}")
        line += (f"{fmt(b['setup_s'], '.2f'):>9}{fmt(b['realtime_factor'], '.3f'):>11}{b['peak_mib']:>10.1f}"
                 f"{fmt(b['bytes_per_synapse'], '.1f'):>7}{fmt(b['mean_rate_hz'], '.2f'):>9}")
        o = r.get("brian2_cpp_standalone")
        if o is not None:
            line += f"{fmt(o['loop_s'], '.3f'):>11}"
            if threads > 1:
                line += (f"{fmt(r['brian2_cpp_standalone_1_thread']['loop_s'], '.3f'):>11}"
                         f"{fmt(r['parallel_efficiency'].get('brian2_cpp_standalone'), '.2f'):>7}")
            line += (f"{fmt(o['setup_without_compile_s'], '.2f'):>11}{fmt(o['compile_s'], '.1f'):>10}"
                     f"{fmt(o.get('peak_rss_mib'), '.1f'):>9}{fmt(o.get('rss_bytes_per_synapse'), '.1f'):>9}"
                     f"{fmt(o['loop_ratio'], '.2f'):>11}")
            if threads > 1:
                line += f"{fmt(r['brian2_cpp_standalone_1_thread']['loop_ratio'], '.2f'):>9}"
            line += f"{fmt(o['setup_ratio'], '.2f'):>12}"
        lines.append(line)
    lines.append("loop_s: simulation loop only; setup_s: everything before the first step (synapses drawn, plan, "
                 "kernel loaded); x realtime = biological / wall time; peak_MiB: Python's peak allocation (biosim); "
                 "B/syn: memory per synapse (on numba-cuda: on the GPU)")
    if threads > 1:
        lines.append(f"loop_1t: the same on 1 thread; eff: parallel efficiency t1/({threads} t{threads}); same: "
                     f"biosim's spikes on {threads} threads equal its spikes on 1 thread")
    if b2:
        one = "1 thread" if threads == 1 else f"OpenMP on {threads} threads"
        lines.append(f"b2: Brian2 cpp_standalone, {one} (b2_setup_s: code generation and the binary's work before "
                     "its loop, without g++; b2_g++_s: the compiler; b2_MiB: its binary's peak resident memory, "
                     "b2_B/syn that over its synapses, fixed costs included); ratios: biosim / Brian2 on the same "
                     "number of threads (set-up without g++), below 1 biosim is faster"
                     + ("; ratio_1t: the loop ratio on 1 thread" if threads > 1 else ""))
    return "\n".join(lines)


def _gpu_name(backend: str) -> str | None:
    if backend != "numba-cuda":
        return None
    try:
        from numba import cuda

        name = cuda.get_current_device().name
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - the report just leaves it out
        return None
