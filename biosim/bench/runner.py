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

``model="equations"`` (``--model equations``) also runs the network with its neuron written as
equations (:mod:`biosim.equations.library`: ``lif`` for CUBA, ``hh`` for COBAHH), in the same process
and timed the same way, as the simulator ``biosim_equations``; ``ratio_equations_vs_builtin`` is its
``loop_s`` over the built-in model's (the goal: within 10 %, i.e. at most 1.10), and
``ratio_equations_vs_brian2_standalone`` / ``..._cython`` compare it with Brian2. The start-up time is
measured for the built-in model only. biosim runs on
numba-cpu in float64; its kernel is single-threaded, and Brian2 standalone is built with one thread
(``openmp_threads = 0``). ``start_to_first_step_s`` times a fresh ``python -c`` process (warm Numba
cache: best of two launches) from its launch to the end of the network's first simulated step.

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
from biosim.bench.common import fmt, machine
from biosim.errors import BiosimError, unknown
from biosim.experiments.registry import apply_overrides, load_model

__all__ = ["BENCHES", "BENCH_MODELS", "COMPETITORS", "EQUATION_MODELS", "run_bench", "format_table"]

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


def _run_biosim(name: str, params: dict, seed: int, repeats: int, models: Sequence = (None,)) -> list[dict]:
    """Time biosim on the network once per neuron model in ``models`` (None: the built-in one; else an
    equation-defined :class:`~biosim.equations.Model`). Each kernel is warmed up on a tiny copy of the
    network first; then the models take turns, ``repeats`` rounds of a fresh build and run each, so
    that a slow spell of the machine does not fall on one model only. One result per model."""
    builder = _builder(name)

    def build(cfg, model):
        return builder(cfg, seed) if model is None else builder(cfg, seed, model=model)

    dt_ms = float(params["dt_ms"])
    duration_ms = float(params["bio_time_s"]) * 1e3
    tiny = dict(params, n_exc=8, n_inh=2)
    out = []
    for model in models:
        t0 = time.perf_counter()
        build(tiny, model).run(10 * dt_ms)
        out.append({"compile_s": time.perf_counter() - t0, "loop_s_all": [], "setups": []})
    for _ in range(repeats):
        for model, o in zip(models, out):
            t0 = time.perf_counter()
            net = build(params, model)
            res = net.run(duration_ms)
            total = time.perf_counter() - t0
            o["loop_s_all"].append(res.loop_s)
            o["setups"].append(total - res.loop_s)
            o["n_spikes"] = int(sum(len(t) for t, _ in res.spikes.values()))
            o["n_neurons"] = int(sum(res.sizes.values()))
            o["n_synapses"] = int(len(net._sim.plan.tgt))
            del net, res
    return [{"loop_s": min(o["loop_s_all"]), "loop_s_all": o["loop_s_all"], "setup_s": o["setups"][0],
             "compile_s": o["compile_s"], "n_spikes": o["n_spikes"],
             "mean_rate_hz": _rate(o["n_spikes"], o["n_neurons"], duration_ms),
             "n_neurons": o["n_neurons"], "n_synapses": o["n_synapses"]} for o in out]


def _run_brian2(name: str, target: str, params: dict, seed: int, repeats: int) -> dict:
    out = getattr(brian2_nets, BENCHES[name][1])(params, seed, target, repeats=repeats)
    n_neurons = int(sum(out["sizes"].values()))
    return {"loop_s": out["loop_s"], "loop_s_all": out["loop_s_all"], "setup_s": out["setup_s"],
            "compile_s": out["compile_s"], "n_spikes": out["n_spikes"],
            "mean_rate_hz": _rate(out["n_spikes"], n_neurons, out["duration_ms"]), "n_neurons": n_neurons,
            "n_synapses": int(sum(len(i) for i, _ in out["i_j"].values()))}


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


def format_table(report: dict) -> str:
    """The report of :func:`run_bench` as a text table (several lines, no final newline)."""
    sims = report["simulators"]
    lines = []
    add = lines.append
    add(f"{report['name']}: {report['n_neurons']} neurons, {report['n_synapses']} synapses (biosim), "
        f"{report['bio_time_s']:g} s biological time, dt {report['dt_ms']:g} ms, {report['dtype']}, 1 thread, "
        f"best loop of {report['repeats']}")
    head = f"{'simulator':<24}{'setup_s':>10}{'compile_s':>11}{'loop_s':>10}{'biosim/this':>13}{'spikes':>9}{'rate_hz':>9}"
    add(head)
    add("-" * len(head))
    for key, s in sims.items():
        ratio = report.get(_RATIO_FIELDS.get(key, ""), 1.0 if key == "biosim" else None)
        if key == "biosim_equations":
            ratio = 1.0 / report["ratio_equations_vs_builtin"]
        add(f"{key:<24}{fmt(s['setup_s']):>10}{fmt(s['compile_s']):>11}{fmt(s['loop_s'], '.4f'):>10}"
            f"{fmt(ratio, '.2f'):>13}{s['n_spikes']:>9}{fmt(s['mean_rate_hz'], '.2f'):>9}")
    if report.get("start_to_first_step_s") is not None:
        b = report["start_breakdown_s"]
        add(f"start to first step (new process, warm cache): {report['start_to_first_step_s']:.2f} s "
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
    add("loop_s: simulation loop only; biosim/this < 1 means biosim is faster")
    return "\n".join(lines)


def run_bench(name: str, against: Sequence[str], cfg_overrides=None, repeats: int = 1, *, seed: int = 1,
              start_time: bool = True, model: str = "builtin", log: Callable[[str], None] | None = None) -> dict:
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
    log : callable, optional
        Receives a line as each stage starts (the CLI prints them on stderr); default: silent.

    Returns
    -------
    dict
        ``simulators`` (per simulator ``loop_s``, ``loop_s_all``, ``setup_s``, ``compile_s``, ``n_spikes``,
        ``mean_rate_hz``, ``n_neurons``, ``n_synapses``), ``ratio_vs_brian2_standalone``,
        ``ratio_vs_brian2_cython`` (None when not run), the run's parameters and the machine.
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
    log = log or _silent
    spec, params = _load_params(name, cfg_overrides)
    builder = spec.get("builder", name)
    if builder != name:
        raise BiosimError(f"models/{name}.toml builds '{builder}', but the benchmark '{name}' expects '{name}'")
    params.setdefault("bio_time_s", 1.0)
    params["bio_time_s"] = float(params["bio_time_s"])
    targets = list(dict.fromkeys(t for comp in against for t in COMPETITORS[comp]))

    eq_model = _equation_model(name) if model == "equations" else None
    if eq_model is None:
        log(f"bench {name}: biosim numba-cpu ...")
        sims = {"biosim": _run_biosim(name, params, seed, repeats)[0]}
    else:
        log(f"bench {name}: biosim numba-cpu, built-in neuron and {eq_model.describe()}, taking turns ...")
        builtin, equations = _run_biosim(name, params, seed, repeats, models=(None, eq_model))
        sims = {"biosim": builtin, "biosim_equations": equations}
    for target in targets:
        log(f"bench {name}: brian2 {target} ...")
        sims[f"brian2_{target}"] = _run_brian2(name, target, params, seed, repeats)

    bio = sims["biosim"]
    report = {
        "name": name, "seed": seed, "repeats": repeats, "bio_time_s": params["bio_time_s"],
        "dt_ms": float(params["dt_ms"]), "dtype": params.get("dtype", "float64"), "threads": 1,
        "n_neurons": bio["n_neurons"], "n_synapses": bio["n_synapses"], "params": params,
        "simulators": sims,
    }
    for key, field in _RATIO_FIELDS.items():
        ran = key in sims and sims[key]["loop_s"] > 0
        if ran or key != "brian2_numpy":  # the standalone and cython fields are always there
            report[field] = bio["loop_s"] / sims[key]["loop_s"] if ran else None
    if eq_model is not None:
        eq = sims["biosim_equations"]
        report["model"] = model
        report["equation_model"] = eq_model.describe()
        report["ratio_equations_vs_builtin"] = eq["loop_s"] / bio["loop_s"]
        for key, field in (("brian2_cpp_standalone", "ratio_equations_vs_brian2_standalone"),
                           ("brian2_cython", "ratio_equations_vs_brian2_cython")):
            report[field] = eq["loop_s"] / sims[key]["loop_s"] if key in sims and sims[key]["loop_s"] > 0 else None
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
