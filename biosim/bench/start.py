"""``biosim bench start``: how long a new ``biosim run cuba`` takes from its start to its first simulated step.

Each measurement is a fresh Python process (the same interpreter as this one) running what the
``biosim`` script runs, ``biosim.launch.main(["run", "cuba", ...])``, with a probe
(:mod:`biosim.bench.probe`, loaded by its path) installed before anything of biosim is imported.
``$BIOSIM_NO_WORKER`` is set for it, so that a worker the user may have running does not take the
command (it saves the child only the attempt to reach the worker's socket, about 0.1 ms).
The probe imports nothing of biosim: it is an import hook that stamps the end of
:mod:`biosim.cli`'s import and, when :mod:`biosim.network.simulate` is first imported, wraps its
``Simulation`` (and every kernel it sets as ``run_chunk``) to stamp the stages below; the first
kernel call with steps to do is cut to exactly one step, after which the child writes its stamps
to a JSON file and ends at once (``os._exit``; the parent removes the run's temporary output folder).

**The clock.** The parent reads ``time.monotonic()`` immediately before it starts the child, and the
child stamps with the same clock. ``time.monotonic`` is system-wide on Linux and macOS
(``CLOCK_MONOTONIC`` / ``mach_absolute_time``) and on Windows (``QueryPerformanceCounter``), so the
difference is the time from asking the system for the process to the stamp: it includes creating
the process and starting the interpreter, as a shell's launch of ``biosim`` does. (The kernel's
``/proc/<pid>/stat`` start time would exclude ``fork``, but it counts in clock ticks of 10 ms.)

**Stages**, each measured from the launch (the median over the timed launches):

- ``interpreter_ready``: Python started (``site`` and its ``.pth`` files run), the probe's first line;
- ``imports_done``: ``biosim.cli`` imported (with it the package, NumPy and Numba);
- ``network_defined``: the CLI parsed its arguments, read ``models/cuba.toml`` and built the
  network; the engine starts setting up the simulation;
- ``plan_compiled``: the network compiled into its plan (the synapses drawn);
- ``kernel_loaded``: the simulation's kernel generated, imported and loaded from Numba's on-disk
  cache (the set-up's warm-up call);
- ``first_step``: the first simulated step done.

**Warm caches.** ``warmup`` launches come first and are not timed: they fill Numba's cache of the
kernel and Python's bytecode cache. The children run with ``PYTHONDONTWRITEBYTECODE`` removed from
their environment, as a user's installation has it, so that a warm start means both caches are
filled. Each launch records whether Numba compiled the kernel instead of loading it from its cache
(``compiled_launches`` counts the timed launches that did: a warm start has none; another process
editing biosim's sources between launches would cause it).

**The Numba floor.** ``floor`` launches run another fresh process that imports NumPy and Numba as
the ``biosim`` command does (:func:`biosim._numba_import.import_numba`: without SciPy and PyYAML,
which ``import numba`` imports only to check them; about 0.05 s less than a plain ``import numba``)
and calls one ``njit(cache=True)`` function, loaded from Numba's cache as biosim loads its kernel
(:func:`biosim._numba_load.load_cached`, without Numba's typing and lowering registries, which a
first compile or plain cache load in a process imports, SciPy's BLAS wrappers among them: about
0.5 s here; and with NRT's functions loaded from biosim's cache folder instead of compiled, 0.02 s). It is what any start of a Numba-compiled simulation pays on this machine before
running any of its own code; the timed and floor launches alternate, so both see the same load.

**Beside another checkout** (``baseline=PATH``, ``biosim bench start --baseline PATH``): the same
launches of another biosim checkout (a folder holding ``biosim/``, such as a ``git worktree`` of an
earlier commit) alternate with this one's, through this checkout's probe and with that folder first
on ``$PYTHONPATH``, from a temporary working folder (so that nothing in the caller's folder shadows
it); each launch checks that it imported biosim from there. The machine's speed drifts by more than
most changes to the start (the floor moved by 0.1 s within an hour here), so a change is measured as
the median of the paired differences, launch by launch.

**Through the worker** (``worker=True``, ``biosim bench start --worker``): a resident worker
(:mod:`biosim.worker`) is started in a temporary folder of its own, and as many launches of the
same command as a user's ``biosim`` script runs it (:func:`biosim.launch.main`) alternate with the
others; the worker runs each in a fork of itself. The import hook cannot reach into that fork, so
the launch names its stamps file in ``$BIOSIM_BENCH_STAMPS``, which the fork honours
(:func:`biosim.bench.probe.stamp_in_fork`): it stamps ``forked`` (the command has reached the
worker, been checked and forked) and the stages from ``network_defined`` on, and ends after the
first step. The worker is stopped at the end.

:func:`run_start_bench` returns the report as a dict and prints nothing; :func:`format_start_report`
renders it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from biosim._generated import write_source
from biosim.bench import probe
from biosim.bench.common import machine
from biosim.bench.probe import ENV_STAMPS
from biosim.errors import BiosimError
from biosim.experiments.registry import apply_overrides, load_model

__all__ = ["run_start_bench", "format_start_report", "GOAL_S", "STAGES", "WORKER_STAGES", "DEFAULT_REPEATS"]

#: the goal: a warm start simulates its first step within this many seconds
GOAL_S = 0.5

#: timed launches by default
DEFAULT_REPEATS = 5

#: the stamps of a launch, in the order they happen (see the module docstring)
STAGES = ("interpreter_ready", "imports_done", "network_defined", "plan_compiled", "kernel_loaded", "first_step")

#: the stamps of a launch through the worker: ``forked`` is when the worker's fork for the command
#: starts (the ``biosim`` process started, reached the worker, the worker checked the request and forked)
WORKER_STAGES = ("forked", "network_defined", "plan_compiled", "kernel_loaded", "first_step")

#: the environment variable that keeps a command from a resident worker
#: (``biosim.worker.protocol.ENV_BYPASS``; this layer does not import the worker's)
NO_WORKER = "BIOSIM_NO_WORKER"

#: the child: ``python -c _CHILD <stamps.json> <probe.py> <cli arguments...>``. Before the ``biosim``
#: script's entry point it imports only modules the interpreter has imported already (sys, time, os,
#: importlib's) and the probe, loaded by its path (no biosim import).
_CHILD = r"""
import time
_t = {"interpreter_ready": time.monotonic()}
import importlib.util
import os
import sys

_spec = importlib.util.spec_from_file_location("biosim_start_probe", sys.argv[2])
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def _finish():
    _t["package"] = getattr(sys.modules.get("biosim"), "__file__", None)
    probe.write_stamps(sys.argv[1], _t)
    os._exit(0)


sys.meta_path.insert(0, probe.Hook(_t, _finish, {"biosim.cli": "imports_done"}))
from biosim.launch import main
code = main(sys.argv[3:])
_t["exit_code"] = code
_finish()
"""

#: a launch through the worker: what the ``biosim`` script runs, ``python -c _CLIENT <cli arguments...>``
#: (the stamps file is named in the environment, ``$BIOSIM_BENCH_STAMPS``, for the worker's fork)
_CLIENT = "import sys; from biosim.launch import main; sys.exit(main())"

#: the floor's child: ``python -c _FLOOR <stamps.json> <folder> <module>``
_FLOOR = r"""
import time
_t = {"interpreter_ready": time.monotonic()}
import sys
import numpy
from biosim._numba_import import import_numba
import_numba()
_t["imports_done"] = time.monotonic()
sys.path.insert(0, sys.argv[2])
fn = __import__(sys.argv[3]).first_call
from biosim._numba_load import load_cached
load_cached(fn, (1.0,))
fn(1.0)
_t["first_call"] = time.monotonic()
_t["kernel_compiled"] = sum(fn.stats.cache_misses.values()) > 0
import json
with open(sys.argv[1], "w") as fh:
    json.dump(_t, fh)
"""

#: the floor's cached function
_FLOOR_SOURCE = '''"""Written by biosim.bench.start: one cached njit function, the Numba floor of a warm start."""

from numba import njit


@njit(cache=True)
def first_call(x):
    return x + 1.0
'''


def _environment() -> dict:
    """This process's environment for a launch, less what the bench sets per launch: the launches
    write bytecode as a user's would, and ``$BIOSIM_NO_WORKER`` (this bench's own launches set it,
    the ones through its worker must not have it) is dropped."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop(NO_WORKER, None)
    return env


def _launch(code: str, args: Sequence[str], folder: Path, stamps_in_env: bool = False,
            env: dict | None = None, cwd: Path | None = None) -> dict:
    """Start ``python -c code stamps.json *args`` (with ``stamps_in_env``: ``python -c code *args``
    with the stamps file in ``$BIOSIM_BENCH_STAMPS``); return its stamps (seconds from the launch),
    or raise a one-line :class:`BiosimError` when it ended without writing them."""
    stamps = folder / "stamps.json"
    stamps.unlink(missing_ok=True)
    env = {**_environment(), **(env or {})}
    if stamps_in_env:
        env[ENV_STAMPS] = str(stamps)
    argv = [sys.executable, "-c", code, *([] if stamps_in_env else [str(stamps)]), *args]
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=900)
    if not stamps.exists():
        tail = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise BiosimError(f"bench start: the launched process ended (status {proc.returncode}) before its "
                          f"first step{' in the worker' if stamps_in_env else ''}: {tail}")
    raw = json.loads(stamps.read_text())
    if "first_step" not in raw and "first_call" not in raw:
        raise BiosimError(f"bench start: the launched process returned {raw.get('exit_code')} without "
                          f"simulating a step (is the run a simulation?)")
    return {k: (v - t0 if isinstance(v, float) else v) for k, v in raw.items() if k != "exit_code"}


def _checkout(path) -> Path:
    """``path`` as a biosim checkout's folder (holding ``biosim/__init__.py``), or a one-line error."""
    folder = Path(path).expanduser().resolve()
    if not (folder / "biosim" / "__init__.py").is_file():
        raise BiosimError(f"--baseline {path}: not a biosim checkout (no biosim/__init__.py in {folder})")
    return folder


def _worker(action: str, env: dict) -> None:
    """``biosim worker ACTION`` with ``env`` added to the environment; a one-line error if it failed."""
    proc = subprocess.run([sys.executable, "-c", _CLIENT, "worker", action], env={**_environment(), **env},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise BiosimError(f"bench start: biosim worker {action} failed (status {proc.returncode}): {tail}")


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _stage_medians(launches: Sequence[dict]) -> dict:
    """The median time from the launch of each of :data:`STAGES` that every launch stamped."""
    return {k: _median([s[k] for s in launches]) for k in STAGES if all(k in s for s in launches)}


def run_start_bench(name: str = "cuba", sets: Sequence[str] = (), backend: str | None = None,
                    repeats: int = DEFAULT_REPEATS, warmup: int = 1, floor: bool = True, worker: bool = False,
                    baseline: str | os.PathLike | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Time ``repeats`` fresh launches of ``biosim run <name>`` from their start to their first
    simulated step, after ``warmup`` untimed launches (and, with ``floor``, as many launches of the
    Numba floor between them); see the module docstring for what is timed and how.

    Parameters
    ----------
    name : str
        A run of the ``simulation`` runner (``models/<name>.toml``).
    sets : sequence of str
        ``KEY=VALUE`` overrides, passed to the run as ``--set``.
    backend : str, optional
        Passed to the run as ``--backend`` (default: the run's default, numba-cpu).
    repeats, warmup : int
        Timed and untimed launches (``repeats`` >= 1, ``warmup`` >= 0).
    floor : bool
        Also time the Numba floor.
    worker : bool
        Also time launches through a resident worker (``biosim worker start``, in a temporary folder
        of its own, stopped at the end), alternating with the others.
    baseline : path, optional
        Another biosim checkout (a folder holding ``biosim/``) whose launches of the same command
        alternate with these (see the module docstring).
    log : callable, optional
        Receives a line as each stage starts; default: silent.

    Returns
    -------
    dict
        ``start_to_first_step_s`` (median), ``..._best_s``, ``..._all_s``; ``stages_s`` (the median of
        each stage's time from the launch, :data:`STAGES`) and ``stages_all_s``; with ``floor``,
        ``numba_floor_s`` (median), ``..._best_s``, ``..._all_s`` and ``above_floor_s`` (the medians'
        difference); with ``worker``, ``worker_first_step_s`` (median), ``..._best_s``, ``..._all_s``,
        ``worker_stages_s`` (:data:`WORKER_STAGES`), ``worker_compiled_launches`` and
        ``worker_meets_goal``; with ``baseline``, ``baseline`` (its folder), ``baseline_first_step_s``
        (median), ``..._best_s``, ``..._all_s``, ``baseline_stages_s`` and ``change_s`` (the median of
        this checkout's first step minus the baseline's, launch by launch: < 0 is faster); ``goal_s``
        and ``meets_goal``; the command, the counts and the machine.
    """
    log = log or (lambda _line: None)
    if repeats < 1:
        raise BiosimError(f"--repeats = {repeats} must be >= 1")
    if warmup < 0:
        raise BiosimError(f"bench start: warmup = {warmup} must be >= 0")
    spec = load_model(name)
    if spec.get("runner") != "simulation":
        raise BiosimError(f"bench start times the simulation runs (such as cuba), not {name} "
                          f"(runner {spec.get('runner')})")
    apply_overrides(spec["params"], list(sets))  # a bad --set fails here, not in every child
    other = _checkout(baseline) if baseline is not None else None
    run_args = ["run", name, *(a for s in sets for a in ("--set", s)),
                *(("--backend", backend) if backend is not None else ())]
    floor_module = write_source("biosim_start_floor", _FLOOR_SOURCE) if floor else None
    starts: list[dict] = []
    floors: list[dict] = []
    served: list[dict] = []
    others: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="biosim-bench-start-") as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        worker_env = {"BIOSIM_WORKER_DIR": str(folder / "worker")}
        if worker:
            log("bench start: starting a worker (biosim worker start) ...")
            _worker("start", worker_env)
            stack.callback(_worker, "stop", worker_env)

        launches = itertools.count()

        def start(env: dict | None = None, cwd: Path | None = None) -> dict:
            out = folder / f"run{next(launches)}"
            return _launch(_CHILD, [probe.__file__, *run_args, "--out", str(out)], folder,
                           env={NO_WORKER: "1", **(env or {})}, cwd=cwd)

        def through_worker() -> dict:
            out = folder / f"run{next(launches)}"
            return _launch(_CLIENT, [*run_args, "--out", str(out)], folder, stamps_in_env=True, env=worker_env)

        def floor_once() -> dict:
            return _launch(_FLOOR, [str(floor_module.parent), floor_module.stem], folder)

        def baseline_once() -> dict:
            path = os.pathsep.join(p for p in (str(other), os.environ.get("PYTHONPATH")) if p)
            stamps = start({"PYTHONPATH": path}, cwd=folder)
            if not str(stamps.get("package")).startswith(str(other / "biosim") + os.sep):
                raise BiosimError(f"bench start: the baseline's launch imported biosim from {stamps.get('package')}, "
                                  f"not from {other}")
            return stamps

        for k in range(warmup):
            log(f"bench start: warm-up launch {k + 1} of {warmup} (fills the caches; may compile) ...")
            start()
            if worker:
                through_worker()
            if floor_module is not None:
                floor_once()
            if other is not None:
                baseline_once()
        log(f"bench start: {repeats} timed launches of biosim {' '.join(run_args)} ...")
        for _ in range(repeats):
            starts.append(start())
            if worker:
                served.append(through_worker())
            if floor_module is not None:
                floors.append(floor_once())
            if other is not None:
                others.append(baseline_once())
    firsts = [s["first_step"] for s in starts]
    stages = _stage_medians(starts)
    report = {
        "benchmark": "start", "name": name, "command": "biosim " + " ".join(run_args), "sets": list(sets),
        "backend": backend or "numba-cpu", "repeats": repeats, "warmup": warmup,
        "compiled_launches": sum(bool(s.get("kernel_compiled")) for s in starts),
        "start_to_first_step_s": _median(firsts), "start_to_first_step_best_s": min(firsts),
        "start_to_first_step_all_s": firsts,
        "stages_s": stages, "stages_all_s": [{k: s[k] for k in STAGES if k in s} for s in starts],
        "goal_s": GOAL_S, "meets_goal": _median(firsts) <= GOAL_S,
        "clock": "time.monotonic, from just before the process is started",
        "machine": machine(), "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if floors:
        calls = [f["first_call"] for f in floors]
        report.update({"numba_floor_s": _median(calls), "numba_floor_best_s": min(calls), "numba_floor_all_s": calls,
                       "numba_floor_stages_s": {"interpreter_ready": _median([f["interpreter_ready"] for f in floors]),
                                                "numpy_numba_imported": _median([f["imports_done"] for f in floors])},
                       "above_floor_s": _median(firsts) - _median(calls)})
    if others:
        theirs = [s["first_step"] for s in others]
        report.update({"baseline": str(other), "baseline_first_step_s": _median(theirs),
                       "baseline_first_step_best_s": min(theirs), "baseline_first_step_all_s": theirs,
                       "baseline_stages_s": _stage_medians(others),
                       "change_s": _median([a - b for a, b in zip(firsts, theirs)])})
    if served:
        firsts = [s["first_step"] for s in served]
        report.update({"worker_first_step_s": _median(firsts), "worker_first_step_best_s": min(firsts),
                       "worker_first_step_all_s": firsts,
                       "worker_stages_s": {k: _median([s[k] for s in served]) for k in WORKER_STAGES},
                       "worker_compiled_launches": sum(bool(s.get("kernel_compiled")) for s in served),
                       "worker_meets_goal": _median(firsts) <= GOAL_S})
    return report


#: how each stage is shown
_LABELS = {
    "interpreter_ready": "interpreter started (site, .pth files)",
    "imports_done": "biosim.cli imported (numpy, numba, biosim)",
    "network_defined": "arguments, config, network built",
    "plan_compiled": "plan compiled (synapses drawn)",
    "kernel_loaded": "kernel generated and loaded from cache",
    "first_step": "first step simulated",
    "forked": "worker reached, request checked, forked",
}


def _stage_lines(stages: dict) -> list[str]:
    """One line per stage: its label, its time from the launch and what it took."""
    lines, before = [], 0.0
    for key, at in stages.items():
        lines.append(f"  {_LABELS.get(key, key):<46}{at:>8.3f}{at - before:>9.3f}")
        before = at
    return lines


def format_start_report(report: dict) -> str:
    """The report of :func:`run_start_bench` as text lines (no final newline)."""
    lines = [f"bench start: {report['command']} in a new process, warm caches ({report['warmup']} warm-up "
             f"launch{'es' * (report['warmup'] != 1)}), {report['repeats']} timed launch"
             f"{'es' * (report['repeats'] != 1)}; {report['machine']['cores']} cores"
             + ("" if report["load_average"] is None else f", load average {report['load_average']:.2f}")]
    verdict = "met" if report["meets_goal"] else "NOT met"
    lines.append(f"start to first step: median {report['start_to_first_step_s']:.3f} s, best "
                 f"{report['start_to_first_step_best_s']:.3f} s (goal <= {report['goal_s']:g} s: {verdict})")
    lines.append(f"  {'stage (median time from the launch)':<46}{'at_s':>8}{'took_s':>9}")
    lines += _stage_lines(report["stages_s"])
    if "numba_floor_s" in report:
        fs = report["numba_floor_stages_s"]
        lines.append(f"numba floor (new process: numpy, numba, one cached njit call): median {report['numba_floor_s']:.3f} s, "
                     f"best {report['numba_floor_best_s']:.3f} s (interpreter {fs['interpreter_ready']:.3f} s, "
                     f"numpy+numba imported {fs['numpy_numba_imported']:.3f} s)")
        lines.append(f"biosim above the floor: {report['above_floor_s']:.3f} s")
    if "baseline_first_step_s" in report:
        lines.append(f"baseline {report['baseline']} (the same launches, alternating): median "
                     f"{report['baseline_first_step_s']:.3f} s, best {report['baseline_first_step_best_s']:.3f} s")
        lines.append(f"this checkout minus the baseline, launch by launch: median {report['change_s']:+.3f} s")
        lines += _stage_lines(report["baseline_stages_s"])
    if "worker_first_step_s" in report:
        verdict = "met" if report["worker_meets_goal"] else "NOT met"
        lines.append(f"through the worker (biosim worker start; the same command): median "
                     f"{report['worker_first_step_s']:.3f} s, best {report['worker_first_step_best_s']:.3f} s "
                     f"(goal <= {report['goal_s']:g} s: {verdict})")
        lines += _stage_lines(report["worker_stages_s"])
    if report.get("worker_compiled_launches"):
        lines.append(f"warning: {report['worker_compiled_launches']} launch(es) through the worker compiled the "
                     f"kernel: those were not warm starts")
    if report["compiled_launches"]:
        lines.append(f"warning: {report['compiled_launches']} timed launch(es) compiled the kernel (a source changed "
                     f"between launches?): those were not warm starts")
    return "\n".join(lines)
