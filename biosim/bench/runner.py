"""``biosim bench <name> --against brian2``: time biosim and Brian2 on the same network, in one process.

What is timed, for every simulator the same way:

- ``loop_s``: the simulation loop only -- biosim's :attr:`Result.loop_s` (its kernel compiled
  beforehand), Brian2's ``device._last_run_time`` (runtime: the time-step loop of ``Network.run``
  after code generation and compilation; standalone: ``Network::run`` inside the binary);
- ``setup_s``: everything else from the start of building to the end of the run (building the
  network and drawing connectivity, code generation, compilation, for standalone writing the project,
  starting the binary and reading results back);
- ``compile_s``: the compilation part of the first run in this process, where known (biosim: the
  Numba kernel, compiled or loaded from its on-disk cache during a tiny warm-up run; Brian2
  standalone: ``make``; Brian2 runtime: not separated, it is inside ``setup_s``).

Ratios are biosim's ``loop_s`` over the competitor's (below 1: biosim is faster).

Repeats (``repeats``, ``--repeats``): ``loop_s`` is the best of them. Brian2 standalone runs its binary
again, a new process each time; biosim's first run is in this process and every later one in a new
process too (which loads the kernel from Numba's cache, and must give the first run's spike count),
so that both are timed alike. Both loops move between a fast and a slow mode from run to run (CUBA at
4000 neurons: biosim about 0.062-0.075 or 0.09-0.10 s, standalone about 0.14-0.15 or 0.21-0.24 s),
within one process too; the cause was not found. Brian2's runtime targets repeat in this process
(``Network.restore``).

``model="equations"`` (``--model equations``) also runs the network with its neuron written as
equations (:mod:`biosim.equations.library`: ``lif`` for CUBA, ``hh`` for COBAHH), in the same process
and timed the same way, as the simulator ``biosim_equations``; ``ratio_equations_vs_builtin`` is its
``loop_s`` over the built-in model's (the goal: within 10 %, i.e. at most 1.10), and
``ratio_equations_vs_brian2_standalone`` / ``..._cython`` compare it with Brian2. The start-up time is
measured for the built-in model only. biosim runs on numba-cpu in float64.
``start_to_first_step_s`` times a fresh ``python -c`` process (warm Numba cache: best of two
launches) from its launch to the end of the network's first simulated step.

Threads (``threads=N``, ``--threads N``): biosim runs each step on N of Numba's threads
(``Network.run(threads=N)``), Brian2 standalone is built with OpenMP on N threads
(``prefs.devices.cpp_standalone.openmp_threads = N``; a project and g++ run of its own); with
``threads=1`` both run their serial code (biosim's one-thread kernel, standalone's
``openmp_threads = 0``). For N > 1 both are also timed on one thread (simulators ``biosim_1_thread``,
``brian2_cpp_standalone_1_thread``, and ``biosim_equations_1_thread`` with ``model="equations"``;
biosim's runs take turns with its N-thread runs) and the report adds ``parallel_efficiency`` and
``speedup`` per simulator (``t1 / (N * tN)`` and ``t1 / tN`` of the best loops),
``same_spikes_as_1_thread`` (biosim: every spike of its N-thread runs equal to its 1-thread run's, the
same seed) and ``brian2_same_spikes_as_1_thread`` (standalone's; its OpenMP build draws the random
connectivity and initial values per thread, so it need not hold). Every ratio compares runs on the
same number of threads: Brian2's runtime targets run on one, so with N > 1 they are compared with
``biosim_1_thread``; ``ratio_vs_brian2_standalone`` is biosim over standalone at N threads, and
``ratio_vs_brian2_standalone_1_thread`` the same on one thread.

:func:`run_bench` returns the report as a dict and prints nothing; :func:`format_table` renders it as
the text table that ``biosim bench`` prints (``--json`` prints the dict instead).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from biosim.bench import brian2_nets
from biosim.bench.common import fmt, machine, spike_count
from biosim.errors import BiosimError, unknown
from biosim.experiments.registry import apply_overrides, load_model
from biosim.experiments.sweep import max_threads

__all__ = ["BENCHES", "BENCH_MODELS", "COMPETITORS", "EQUATION_MODELS", "check_threads", "in_new_process", "run_bench",
           "format_table", "same_count", "same_spikes"]

#: bench name -> (biosim builder "module:function", Brian2 builder in biosim.bench.brian2_nets)
BENCHES = {
    "cuba": ("biosim.experiments.networks:build_cuba", "brian2_cuba"),
    "cobahh": ("biosim.experiments.cobahh:build_cobahh", "brian2_cobahh"),
}

#: ``--model`` choices: the built-in neuron only, or also its twin written as equations
BENCH_MODELS = ("builtin", "equations")

#: bench name -> the factory in :mod:`biosim.equations.library` of its neuron written as equations
EQUATION_MODELS = {"cuba": "lif", "cobahh": "hh"}

#: competitor name -> Brian2 targets it runs. ``brian2`` is the two fast ones.
COMPETITORS = {
    "brian2": ("cython", "cpp_standalone"),
    "brian2:cython": ("cython",),
    "brian2:cpp_standalone": ("cpp_standalone",),
    "brian2:numpy": ("numpy",),
}

#: simulator key in the report -> name of its ratio field
_RATIO_FIELDS = {"brian2_cpp_standalone": "ratio_vs_brian2_standalone", "brian2_cython": "ratio_vs_brian2_cython",
                 "brian2_numpy": "ratio_vs_brian2_numpy"}


def _silent(_line: str) -> None:
    pass


def check_threads(threads) -> int:
    """``threads`` checked for the engine benches: a whole number from 1 to the size of Numba's
    thread pool (``NUMBA_NUM_THREADS``); one line otherwise."""
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise BiosimError(f"threads = {threads!r} must be a whole number >= 1")
    most = max_threads()
    if not 1 <= threads <= most:
        raise BiosimError(f"--threads = {threads} is out of range (must be 1..{most}, Numba's NUMBA_NUM_THREADS "
                          f"on this machine)")
    return threads


def same_spikes(a: Mapping, b: Mapping) -> bool:
    """Whether two ``{population: (times_ms, indices)}`` spike records are equal, spike for spike."""
    import numpy as np

    return a.keys() == b.keys() and all(
        np.array_equal(a[k][0], b[k][0]) and np.array_equal(a[k][1], b[k][1]) for k in a)


def _load_params(name: str, overrides) -> tuple[dict, dict]:
    """The run's spec and its ``[params]`` after ``overrides`` (``["key=value", ...]`` or a mapping)."""
    spec = load_model(name)
    if overrides is None:
        sets = []
    elif isinstance(overrides, Mapping):
        sets = [f"{k}={_toml_value(v)}" for k, v in overrides.items()]
    elif isinstance(overrides, str):
        raise BiosimError("cfg_overrides must be a list of 'key=value' strings or a mapping")
    else:
        sets = list(overrides)
    return spec, apply_overrides(spec["params"], sets)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    raise BiosimError(f"override value {v!r} must be a number, a bool or a string")


def _builder(name: str):
    module, func = BENCHES[name][0].split(":")
    return getattr(importlib.import_module(module), func)


def _rate(n_spikes: int, n_neurons: int, duration_ms: float) -> float:
    return n_spikes / n_neurons / (duration_ms * 1e-3) if n_neurons and duration_ms > 0 else 0.0


def _equation_model(name: str):
    from biosim.equations import library

    return getattr(library, EQUATION_MODELS[name])()


def _run_biosim(name: str, params: dict, seed: int, repeats: int, models: Sequence = (None,),
                threads: Sequence[int] = (1,)) -> list[dict]:
    """Time biosim on the network once per neuron model in ``models`` (None: the built-in one; else an
    equation-defined :class:`~biosim.equations.Model`, the one :func:`_equation_model` gives) and
    thread count in ``threads``. The runs take turns, ``repeats`` rounds of a fresh build and run
    each, so that a slow spell of the machine does not fall on one of them only. The first round
    runs in this process (each kernel warmed up on a tiny copy of the network first); every later
    one in a new process (:func:`_timed_run`, kernel loaded from the cache), as Brian2 standalone's
    repeats start its binary again; a new process's spike count must equal the first round's (same
    seed). One result per model and
    thread count (model-major), each with its ``threads`` and, under ``"spikes"``, the spikes of its
    first run (``{population: (times_ms, indices)}``)."""
    runs = [(model, n) for model in models for n in threads]
    out = []
    for model, n in runs:
        t0 = time.perf_counter()
        _warm_up(name, params, seed, model, n)
        out.append({"compile_s": time.perf_counter() - t0, "loop_s_all": [], "setups": []})
    for rnd in range(repeats):
        for (model, n), o in zip(runs, out):
            if rnd == 0:
                r = _timed_run(name, params, seed, model, n, warm_up=False)
                o.update(spikes=r.pop("spikes"), n_spikes=r["n_spikes"], n_neurons=r["n_neurons"],
                         n_synapses=r["n_synapses"])
            else:
                r = same_count(_timed_run_in_new_process(name, params, seed, model is not None, n), o["n_spikes"],
                               f"bench {name} on {n} thread{'s' * (n != 1)}")
            o["loop_s_all"].append(r["loop_s"])
            o["setups"].append(r["setup_s"])
    duration_ms = float(params["bio_time_s"]) * 1e3
    return [{"loop_s": min(o["loop_s_all"]), "loop_s_all": o["loop_s_all"], "setup_s": o["setups"][0],
             "compile_s": o["compile_s"], "threads": n, "n_spikes": o["n_spikes"],
             "mean_rate_hz": _rate(o["n_spikes"], o["n_neurons"], duration_ms),
             "n_neurons": o["n_neurons"], "n_synapses": o["n_synapses"], "spikes": o["spikes"]}
            for (_, n), o in zip(runs, out)]


def _build(name: str, params: dict, seed: int, model):
    builder = _builder(name)
    return builder(params, seed) if model is None else builder(params, seed, model=model)


def _warm_up(name: str, params: dict, seed: int, model, threads: int, backend: str | None = None) -> None:
    """Compile (or load from the cache) the kernel on a tiny copy of the network."""
    _build(name, dict(params, n_exc=8, n_inh=2), seed, model).run(10 * float(params["dt_ms"]), backend=backend,
                                                                   threads=threads)


def _timed_run(name: str, params: dict, seed: int, model, threads: int, warm_up: bool = True) -> dict:
    """Build the network and run it on ``threads`` threads: ``loop_s``, ``setup_s`` (the rest of
    building and running), ``n_spikes``, ``n_neurons``, ``n_synapses`` and ``spikes``; the kernel
    warmed up first (:func:`_warm_up`) unless ``warm_up`` is false. ``model`` as in
    :func:`_run_biosim`, or True for :func:`_equation_model`'s."""
    if model is True:
        model = _equation_model(name)
    if warm_up:
        _warm_up(name, params, seed, model, threads)
    t0 = time.perf_counter()
    net = _build(name, params, seed, model)
    res = net.run(float(params["bio_time_s"]) * 1e3, threads=threads)
    total = time.perf_counter() - t0
    return {"loop_s": res.loop_s, "setup_s": total - res.loop_s,
            "n_spikes": spike_count(res.spikes), "n_neurons": int(sum(res.sizes.values())),
            "n_synapses": int(len(net._sim.plan.tgt)), "spikes": res.spikes}


_IN_NEW_PROCESS = r"""
import importlib, json, sys
module, func = sys.argv[1].split(":")
out = getattr(importlib.import_module(module), func)(*json.loads(sys.argv[2]))
out.pop("spikes", None)
print(json.dumps(out))
"""


def in_new_process(func: str, args: list, what: str) -> dict:
    """``module:function`` (a dict of JSON values, ``"spikes"`` dropped) called with ``args`` (JSON
    values) in a new ``python -c`` process with this environment; a failure is a one-line
    :class:`BiosimError` about ``what``."""
    proc = subprocess.run([sys.executable, "-c", _IN_NEW_PROCESS, func, json.dumps(args)], capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise BiosimError(f"{what} in a new process failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same_count(repeat: dict, n_spikes: int, what: str) -> dict:
    """``repeat`` (a run's result in a new process), checked to hold ``n_spikes`` spikes, the first
    run's with the same seed; else a one-line :class:`BiosimError` about ``what``."""
    if repeat["n_spikes"] != n_spikes:
        raise BiosimError(f"{what}: a new process gave {repeat['n_spikes']} spikes, the first run {n_spikes} "
                          f"(same seed)")
    return repeat


def _timed_run_in_new_process(name: str, params: dict, seed: int, equations: bool, threads: int) -> dict:
    """:func:`_timed_run` in a new process (:func:`in_new_process`); its result without the spikes."""
    return in_new_process("biosim.bench.runner:_timed_run", [name, params, seed, True if equations else None, threads],
                          f"bench {name}: a repeat")


def _run_brian2(name: str, target: str, params: dict, seed: int, repeats: int, threads: int = 1) -> dict:
    """Brian2 on ``target`` (standalone on ``threads`` OpenMP threads, 1: serial); its spikes under
    ``"spikes"``."""
    out = getattr(brian2_nets, BENCHES[name][1])(params, seed, target, repeats=repeats, threads=threads,
                                                 connectivity=False)
    n_neurons = int(sum(out["sizes"].values()))
    return {"loop_s": out["loop_s"], "loop_s_all": out["loop_s_all"], "setup_s": out["setup_s"],
            "compile_s": out["compile_s"], "threads": threads, "n_spikes": out["n_spikes"],
            "mean_rate_hz": _rate(out["n_spikes"], n_neurons, out["duration_ms"]), "n_neurons": n_neurons,
            "n_synapses": out["n_synapses"], "peak_rss_mib": out["peak_rss_mib"], "spikes": out["spikes"]}


_START_CODE = r"""
import time, json, sys
t_launch = float(sys.argv[1])
import importlib
module, func, cfg, seed = sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5])
build = getattr(importlib.import_module(module), func)
t_import = time.time()
net = build(cfg, seed)
t_built = time.time()
net.run(float(cfg["dt_ms"]))
t_step = time.time()
print(json.dumps({"import": t_import - t_launch, "build": t_built - t_launch, "first_step": t_step - t_launch}))
"""


def _start_to_first_step(name: str, params: dict, seed: int, tries: int = 2) -> dict:
    """Launch ``python -c`` and time, from the launch, its imports, the network's definition and the
    end of its first step (which draws the synapses and loads the kernel). The best of ``tries``
    launches is reported: the first one may still have to compile the kernel (the Numba cache is keyed
    on the package's files, so an edited file anywhere in biosim invalidates it) and write the cache."""
    module, func = BENCHES[name][0].split(":")
    best = None
    for _ in range(tries):
        t_launch = time.time()
        proc = subprocess.run([sys.executable, "-c", _START_CODE, repr(t_launch), module, func, json.dumps(params),
                               str(seed)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return {"error": f"start-up process failed: {tail}"}
        times = json.loads(proc.stdout.strip().splitlines()[-1])
        if best is None or times["first_step"] < best["first_step"]:
            best = times
    return {"start_to_first_step_s": best["first_step"],
            "start_breakdown_s": {"imports_done": best["import"], "network_defined": best["build"],
                                  "first_step_done": best["first_step"]}}


def _same_threads_ratio(sims: dict, key: str, threads: int) -> float | None:
    """biosim's loop over simulator ``key``'s, both on ``key``'s number of threads."""
    other = sims.get(key)
    if other is None or other["loop_s"] <= 0:
        return None
    bio = sims["biosim"] if other["threads"] == threads else sims.get("biosim_1_thread", sims["biosim"])
    return bio["loop_s"] / other["loop_s"]


def format_table(report: dict) -> str:
    """The report of :func:`run_bench` as a text table (several lines, no final newline)."""
    sims = report["simulators"]
    threads = report.get("threads", 1)
    lines = []
    add = lines.append
    add(f"{report['name']}: {report['n_neurons']} neurons, {report['n_synapses']} synapses (biosim), "
        f"{report['bio_time_s']:g} s biological time, dt {report['dt_ms']:g} ms, {report['dtype']}, "
        f"{threads} thread{'s' * (threads != 1)}, best loop of {report['repeats']}")
    head = (f"{'simulator':<32}{'threads':>8}{'setup_s':>10}{'compile_s':>11}{'loop_s':>10}{'biosim/this':>13}"
            f"{'spikes':>9}{'rate_hz':>9}")
    add(head)
    add("-" * len(head))
    for key, s in sims.items():
        if key.startswith("biosim_equations"):
            base = sims["biosim" if s.get("threads", 1) == threads else "biosim_1_thread"]
            ratio = base["loop_s"] / s["loop_s"] if s["loop_s"] > 0 else None
        elif key.startswith("biosim"):
            ratio = 1.0
        else:
            ratio = _same_threads_ratio(sims, key, threads)
        add(f"{key:<32}{s.get('threads', 1):>8}{fmt(s['setup_s']):>10}{fmt(s['compile_s']):>11}"
            f"{fmt(s['loop_s'], '.4f'):>10}{fmt(ratio, '.2f'):>13}{s['n_spikes']:>9}{fmt(s['mean_rate_hz'], '.2f'):>9}")
    if threads > 1:
        eff, speed = report["parallel_efficiency"], report["speedup"]
        parts = [f"{key} {fmt(eff[key], '.2f')} (speed-up {fmt(speed[key], '.2f')}x)" for key in eff]
        add(f"parallel efficiency t1/({threads} t{threads}) on {threads} threads: " + "; ".join(parts))
        r_n, r_1 = report.get("ratio_vs_brian2_standalone"), report.get("ratio_vs_brian2_standalone_1_thread")
        if r_n is not None:
            add(f"biosim/brian2_cpp_standalone loop_s: {r_n:.3f} on {threads} threads, {fmt(r_1, '.3f')} on 1")
        same = "yes" if report["same_spikes_as_1_thread"] else "NO"
        line = f"biosim's spikes on {threads} threads equal its spikes on 1 thread: {same}"
        if report.get("brian2_same_spikes_as_1_thread") is not None:
            line += (f"; brian2_cpp_standalone's: {'yes' if report['brian2_same_spikes_as_1_thread'] else 'no'} "
                     f"(its OpenMP build draws random numbers per thread)")
        add(line)
    if report.get("start_to_first_step_s") is not None:
        b = report["start_breakdown_s"]
        add(f"start to first step (new process, warm cache, 1 thread): {report['start_to_first_step_s']:.2f} s "
            f"(imports done at {b['imports_done']:.2f} s; the first step draws the synapses)")
    elif report.get("start_to_first_step_error"):
        add(f"start to first step: {report['start_to_first_step_error']}")
    if "ratio_equations_vs_builtin" in report:
        r = report["ratio_equations_vs_builtin"]
        add(f"equations/built-in loop_s: {sims['biosim_equations']['loop_s']:.4f} / {sims['biosim']['loop_s']:.4f} s "
            f"= {r:.3f} ({report['equation_model']}; goal <= 1.10: {'met' if r <= 1.10 else 'NOT met'})")
        for key, field in (("brian2_cpp_standalone", "ratio_equations_vs_brian2_standalone"),
                           ("brian2_cython", "ratio_equations_vs_brian2_cython")):
            if report.get(field) is not None:
                add(f"equations/{key} loop_s: {report[field]:.3f}")
    add("loop_s: simulation loop only; biosim/this: biosim's loop over this one's, both on this row's number of "
        "threads (< 1: biosim is faster)")
    if report["repeats"] > 1:
        add("repeats: biosim's after the first each in a new process, as brian2_cpp_standalone's are (both loops "
            "move between a fast and a slow mode from run to run)")
    return "\n".join(lines)


def run_bench(name: str, against: Sequence[str], cfg_overrides=None, repeats: int = 1, *, seed: int = 1,
              start_time: bool = True, model: str = "builtin", threads: int = 1,
              log: Callable[[str], None] | None = None) -> dict:
    """Benchmark the named network in biosim and the competitors in ``against``; return the report.

    Parameters
    ----------
    name : str
        A benchmark in :data:`BENCHES` (``cuba``, ``cobahh``); its parameters come from
        ``models/<name>.toml``.
    against : list of str
        Competitors from :data:`COMPETITORS`: ``brian2`` (cython runtime and cpp_standalone), or one
        target: ``brian2:cython``, ``brian2:cpp_standalone``, ``brian2:numpy``.
    cfg_overrides : list of "key=value" strings (``--set``) or a mapping key -> value
    repeats : int
        Timed runs per simulator; ``loop_s`` is the best, ``loop_s_all`` has them all.
    seed : int
        Seed of both simulators (each draws its own connectivity).
    start_time : bool
        Also time a fresh process to its first simulated step (``start_to_first_step_s``).
    model : {"builtin", "equations"}
        ``"equations"`` also times the network with its neuron written as equations (simulator
        ``biosim_equations``) and adds ``ratio_equations_vs_builtin``, ``equation_model`` (its one-line
        description) and ``ratio_equations_vs_brian2_standalone`` / ``..._cython``.
    threads : int
        Threads of biosim's steps and of Brian2 standalone's OpenMP build, 1 to Numba's
        ``NUMBA_NUM_THREADS``; above 1 also timed on one thread (see the module docstring).
    log : callable, optional
        Receives a line as each stage starts (the CLI prints them on stderr); default: silent.

    Returns
    -------
    dict
        ``simulators`` (per simulator ``loop_s``, ``loop_s_all``, ``setup_s``, ``compile_s``,
        ``threads``, ``n_spikes``, ``mean_rate_hz``, ``n_neurons``, ``n_synapses``; standalone also
        ``peak_rss_mib``), ``ratio_vs_brian2_standalone``, ``ratio_vs_brian2_cython`` (None when not
        run), ``threads``; for ``threads > 1`` also ``parallel_efficiency``, ``speedup``,
        ``same_spikes_as_1_thread``, ``brian2_same_spikes_as_1_thread`` and
        ``ratio_vs_brian2_standalone_1_thread``; the run's parameters and the machine.
    """
    if name not in BENCHES:
        raise unknown("benchmark", name, BENCHES)
    if isinstance(against, str):
        against = [against]
    for comp in against:
        if comp not in COMPETITORS:
            raise unknown("competitor", comp, COMPETITORS)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise BiosimError(f"repeats = {repeats!r} must be an integer >= 1")
    if model not in BENCH_MODELS:
        raise unknown("bench model", model, BENCH_MODELS)
    threads = check_threads(threads)
    log = log or _silent
    spec, params = _load_params(name, cfg_overrides)
    builder = spec.get("builder", name)
    if builder != name:
        raise BiosimError(f"models/{name}.toml builds '{builder}', but the benchmark '{name}' expects '{name}'")
    params.setdefault("bio_time_s", 1.0)
    params["bio_time_s"] = float(params["bio_time_s"])
    targets = list(dict.fromkeys(t for comp in against for t in COMPETITORS[comp]))
    counts = (threads, 1) if threads > 1 else (1,)
    on = f" on {threads} and 1 threads, taking turns" if threads > 1 else ""

    eq_model = _equation_model(name) if model == "equations" else None
    if eq_model is None:
        log(f"bench {name}: biosim numba-cpu{on} ...")
        results = _run_biosim(name, params, seed, repeats, threads=counts)
        keys = ["biosim", "biosim_1_thread"]
    else:
        log(f"bench {name}: biosim numba-cpu, built-in neuron and {eq_model.describe()}{on}, taking turns ...")
        results = _run_biosim(name, params, seed, repeats, models=(None, eq_model), threads=counts)
        keys = ["biosim", "biosim_1_thread", "biosim_equations", "biosim_equations_1_thread"]
    if threads == 1:
        keys = [k for k in keys if not k.endswith("_1_thread")]
    sims = dict(zip(keys, results))
    for target in targets:
        if target == "cpp_standalone":
            for n in counts:
                log(f"bench {name}: brian2 cpp_standalone on {n} thread{'s' * (n != 1)} (code generation and g++) ...")
                key = "brian2_cpp_standalone" if n == threads else "brian2_cpp_standalone_1_thread"
                sims[key] = _run_brian2(name, target, params, seed, repeats, threads=n)
        else:
            log(f"bench {name}: brian2 {target} (1 thread) ...")
            sims[f"brian2_{target}"] = _run_brian2(name, target, params, seed, repeats)
    spikes = {key: s.pop("spikes") for key, s in sims.items()}

    bio = sims["biosim"]
    report = {
        "name": name, "seed": seed, "repeats": repeats, "bio_time_s": params["bio_time_s"],
        "dt_ms": float(params["dt_ms"]), "dtype": params.get("dtype", "float64"), "threads": threads,
        "n_neurons": bio["n_neurons"], "n_synapses": bio["n_synapses"], "params": params,
        "simulators": sims,
    }
    for key, field in _RATIO_FIELDS.items():
        ratio = _same_threads_ratio(sims, key, threads)
        if ratio is not None or key != "brian2_numpy":  # the standalone and cython fields are always there
            report[field] = ratio
    if threads > 1:
        report["ratio_vs_brian2_standalone_1_thread"] = _same_threads_ratio(
            sims, "brian2_cpp_standalone_1_thread", threads)
        report["parallel_efficiency"], report["speedup"] = {}, {}
        for key in sims:
            one = sims.get(f"{key}_1_thread")
            if one is not None:
                speedup = one["loop_s"] / sims[key]["loop_s"] if sims[key]["loop_s"] > 0 else None
                report["speedup"][key] = speedup
                report["parallel_efficiency"][key] = None if speedup is None else speedup / threads
        report["same_spikes_as_1_thread"] = all(
            same_spikes(spikes[key], spikes[f"{key}_1_thread"]) for key in sims
            if key.startswith("biosim") and not key.endswith("_1_thread"))
        b2_n, b2_1 = spikes.get("brian2_cpp_standalone"), spikes.get("brian2_cpp_standalone_1_thread")
        report["brian2_same_spikes_as_1_thread"] = None if b2_n is None else same_spikes(b2_n, b2_1)
    if eq_model is not None:
        eq = sims["biosim_equations"]
        report["model"] = model
        report["equation_model"] = eq_model.describe()
        report["ratio_equations_vs_builtin"] = eq["loop_s"] / bio["loop_s"]
        for key, field in (("brian2_cpp_standalone", "ratio_equations_vs_brian2_standalone"),
                           ("brian2_cython", "ratio_equations_vs_brian2_cython")):
            other = sims.get(key)
            mine = eq if other is None or other["threads"] == threads else sims["biosim_equations_1_thread"]
            report[field] = mine["loop_s"] / other["loop_s"] if other is not None and other["loop_s"] > 0 else None
    if start_time:
        log(f"bench {name}: start-up time of a new process ...")
        st = _start_to_first_step(name, params, seed)
        if "error" in st:
            report["start_to_first_step_s"] = None
            report["start_to_first_step_error"] = st["error"]
        else:
            report.update(st)
    report["machine"] = machine(**_versions())
    return report


def _versions() -> dict:
    out = {}
    for mod in ("numpy", "numba", "brian2", "Cython"):
        try:
            out[mod.lower()] = importlib.import_module(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is just not reported
            out[mod.lower()] = None
    return out
