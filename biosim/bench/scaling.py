"""How the engine's cost grows with the network: ``biosim bench cuba --sizes 4000,40000,200000``.

Per size ``n`` (``0.8 n`` excitatory, ``0.2 n`` inhibitory neurons, the parameters of
``models/<name>.toml`` after ``--set``) it measures biosim's set-up (building the network, drawing
its synapses, laying out the plan and loading the kernel: everything before the first step), its
simulation loop (best of ``repeats``), the peak memory Python allocated for both (``tracemalloc``:
NumPy's arrays included) and the memory per synapse; with ``against=("brian2",)`` the same network
in Brian2's C++ standalone mode, side by side (its own connectivity draw, same sizes and
probability; its set-up is code generation, compilation and the binary's work before the loop,
``compile_s`` the compiler's part).

The connection probability is the TOML's at every size (synapses grow as ``n**2``), or
``per_neuron / n`` with ``per_neuron`` (``--per-neuron 80``: about 80 synapses per neuron at every
size, so that the work grows as ``n``). :func:`format_scaling_table` prints the report;
:func:`biosim.reports.bench_figures.scaling_figure` draws it on log-log axes.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Sequence

from biosim.backends import BACKENDS
from biosim.backends.numba_cuda import device_bytes
from biosim.bench.common import fmt, machine
from biosim.bench.runner import BENCHES, _builder, _load_params, _rate, _run_brian2, _silent, _versions
from biosim.errors import BiosimError, unknown

__all__ = ["run_scaling_bench", "format_scaling_table"]


def _p_connect(params: dict, n: int, per_neuron: float | None) -> float:
    return float(params["p_connect"]) if per_neuron is None else min(1.0, float(per_neuron) / n)


def _biosim_size(builder, cfg: dict, seed: int, backend: str, duration_ms: float, repeats: int) -> dict:
    loops, setups, peaks = [], [], []
    for _ in range(repeats):
        tracemalloc.start()
        t0 = time.perf_counter()
        net = builder(cfg, seed)
        res = net.run(duration_ms, backend=backend)
        total = time.perf_counter() - t0
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        loops.append(res.loop_s)
        setups.append(total - res.loop_s)
        plan = net._sim.plan
        n_syn = len(plan.tgt)
        n_spikes = int(sum(len(t) for t, _ in res.spikes.values()))
        if backend == "numba-cuda":
            est = device_bytes(plan)
            syn_bytes, dev_bytes = est["synapses"], est["total"]
        else:
            syn_bytes, dev_bytes = plan.tgt.nbytes + plan.w.nbytes + plan.dly.nbytes, None
        del net, res, plan
    loop_s = min(loops)
    n = int(cfg["n_exc"]) + int(cfg["n_inh"])
    return {"n_synapses": n_syn, "loop_s": loop_s, "loop_s_all": loops, "setup_s": min(setups),
            "setup_s_all": setups, "peak_mib": max(peaks) / 2**20, "wall_per_bio_s": loop_s * 1e3 / duration_ms,
            "realtime_factor": duration_ms * 1e-3 / loop_s if loop_s > 0 else None, "synapse_bytes": syn_bytes,
            "bytes_per_synapse": syn_bytes / n_syn if n_syn else None, "device_bytes": dev_bytes,
            "n_spikes": n_spikes, "mean_rate_hz": _rate(n_spikes, n, duration_ms)}


def run_scaling_bench(name: str, sizes: Sequence[int], backend: str = "numba-cpu", cfg_overrides=None,
                      repeats: int = 1, *, seed: int = 1, against: Sequence[str] = (),
                      per_neuron: float | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Time biosim on the named network at several sizes, and Brian2's C++ standalone beside it
    when ``against`` holds ``"brian2"``; return the report (see the module docstring).

    Per size: ``n_neurons``, ``p_connect`` and under ``"biosim"``: ``n_synapses``, ``loop_s`` (best
    of ``repeats``), ``setup_s``, ``peak_mib``, ``wall_per_bio_s``, ``realtime_factor`` (biological
    over wall time), ``synapse_bytes`` and ``bytes_per_synapse`` (on numba-cuda the GPU memory of
    the synapses, :func:`biosim.backends.numba_cuda.device_bytes`, and ``device_bytes`` the whole
    estimate), spikes and mean rate; under ``"brian2_cpp_standalone"`` its ``loop_s``,
    ``setup_s``, ``compile_s`` (g++), ``setup_without_compile_s``, synapses and rate, with
    ``loop_ratio`` and ``setup_ratio`` (biosim's over Brian2's, set-up without the compiler: below
    1 biosim is faster).
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
    log = log or _silent
    _, params = _load_params(name, cfg_overrides)
    params.setdefault("bio_time_s", 1.0)
    params["bio_time_s"] = float(params["bio_time_s"])
    builder = _builder(name)
    dt_ms = float(params["dt_ms"])
    duration_ms = params["bio_time_s"] * 1e3
    log(f"bench {name} on {backend}: compiling on a tiny network ...")
    t0 = time.perf_counter()
    builder(dict(params, n_exc=8, n_inh=2), seed).run(10 * dt_ms, backend=backend)
    compile_s = time.perf_counter() - t0
    rows = []
    for n in sizes:
        n_exc = int(round(0.8 * n))
        p = _p_connect(params, n, per_neuron)
        cfg = dict(params, n_exc=n_exc, n_inh=n - n_exc, p_connect=p)
        log(f"bench {name} on {backend}: {n} neurons (p = {p:.3g}) ...")
        row = {"n_neurons": n, "p_connect": p,
               "biosim": _biosim_size(builder, cfg, seed, backend, duration_ms, repeats)}
        if against:
            log(f"bench {name}: {n} neurons in brian2 cpp_standalone (code generation and g++) ...")
            b2 = _run_brian2(name, "cpp_standalone", cfg, seed, repeats)
            bio = row["biosim"]
            b2["loop_ratio"] = bio["loop_s"] / b2["loop_s"] if b2["loop_s"] > 0 else None
            b2["setup_without_compile_s"] = max(b2["setup_s"] - (b2["compile_s"] or 0.0), 0.0)
            b2["setup_ratio"] = (bio["setup_s"] / b2["setup_without_compile_s"]
                                 if b2["setup_without_compile_s"] > 0 else None)
            row["brian2_cpp_standalone"] = b2
        rows.append(row)
    return {"name": name, "backend": backend, "seed": seed, "repeats": repeats, "bio_time_s": params["bio_time_s"],
            "dt_ms": dt_ms, "dtype": params.get("dtype", "float64"), "per_neuron": per_neuron,
            "against": against, "compile_s": compile_s, "sizes": rows, "params": params,
            "machine": machine(gpu=_gpu_name(backend), **_versions())}


def format_scaling_table(report: dict) -> str:
    """The report of :func:`run_scaling_bench` as a text table (no final newline)."""
    gpu = report["machine"].get("gpu")
    conn = (f"p = {report['per_neuron']:g}/n" if report.get("per_neuron") is not None
            else f"p_connect {report['params'].get('p_connect')}")
    lines = [f"{report['name']} on {report['backend']}{f' ({gpu})' if gpu else ''}: {report['bio_time_s']:g} s "
             f"biological time, dt {report['dt_ms']:g} ms, {report['dtype']}, {conn}, "
             f"best loop of {report['repeats']}; kernel compiled in {report['compile_s']:.1f} s"]
    head = (f"{'neurons':>9}{'synapses':>13}{'loop_s':>9}{'setup_s':>9}{'x realtime':>11}{'peak_MiB':>10}"
            f"{'B/syn':>7}{'rate_hz':>9}")
    if report.get("against"):
        head += f"{'b2_loop_s':>11}{'b2_setup_s':>11}{'b2_g++_s':>10}{'loop_ratio':>11}{'setup_ratio':>12}"
    lines += [head, "-" * len(head)]
    for r in report["sizes"]:
        b = r["biosim"]
        line = (f"{r['n_neurons']:>9}{b['n_synapses']:>13}{fmt(b['loop_s'], '.3f'):>9}{fmt(b['setup_s'], '.2f'):>9}"
                f"{fmt(b['realtime_factor'], '.3f'):>11}{b['peak_mib']:>10.1f}{fmt(b['bytes_per_synapse'], '.1f'):>7}"
                f"{fmt(b['mean_rate_hz'], '.2f'):>9}")
        o = r.get("brian2_cpp_standalone")
        if o is not None:
            line += (f"{fmt(o['loop_s'], '.3f'):>11}{fmt(o['setup_without_compile_s'], '.2f'):>11}"
                     f"{fmt(o['compile_s'], '.1f'):>10}{fmt(o['loop_ratio'], '.2f'):>11}{fmt(o['setup_ratio'], '.2f'):>12}")
        lines.append(line)
    lines.append("loop_s: simulation loop only; setup_s: everything before the first step (synapses drawn, plan, "
                 "kernel loaded); x realtime = biological / wall time; peak_MiB: Python's peak allocation (biosim); "
                 "B/syn: memory per synapse (on numba-cuda: on the GPU)")
    if report.get("against"):
        lines.append("b2: Brian2 cpp_standalone, 1 thread (b2_setup_s: code generation and the binary's work before "
                     "its loop, without g++; b2_g++_s: the compiler); ratios: biosim / Brian2 (set-up without g++), "
                     "below 1 biosim is faster")
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
