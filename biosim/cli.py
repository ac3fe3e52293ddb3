"""The ``biosim`` command line: ``list``, ``show``, ``run``, ``sweep``, ``bench``, ``compare``, ``nir``, ``data``,
``notebooks``, ``worker``.

User mistakes (unknown names or keys, bad values, impossible sizes, NaN during a run, an output
folder that is a file or already holds a run) print one line starting with ``biosim: error:`` and
exit with status 2, never a traceback. A run refused before it produced anything leaves no folder
behind.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from biosim.backends import BACKENDS
from biosim.errors import BiosimError, RunInterrupted, unknown
from biosim.experiments import get_runner
from biosim.experiments.registry import (_flat_keys, apply_overrides, as_typed, describe_keys, format_value,
                                         list_models, load_model)
from biosim.experiments.sweep import MAX_SEEDS, MAX_WORKERS, max_threads, resolved_config, run_sweep, thread_settings
from biosim.files import atomic_savefig, atomic_write_json, created_dirs, make_run_dir, remove_unused, run_dir_path
from biosim.reports.notebooks import render
from biosim.worker import client as worker_client
from biosim.worker.client import DEFAULT_IDLE_S

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (and the closest valid choice for a misspelt one)."""

    def error(self, message):
        m = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = [c.strip(" '") for c in m.group(3).split(",")]
            message = str(unknown(m.group(1).lower(), m.group(2), choices))
        self.exit(2, f"biosim: error: {message} (see biosim --help)\n")


#: the largest seed: seeds are 32-bit (the same range as NumPy's legacy seeding and most tools)
MAX_SEED = 2**32 - 1


#: the numeric options and their ranges, checked before any work: (command, dest) -> (flag, low, high)
_RANGES = {
    ("run", "seed"): ("--seed", 0, MAX_SEED), ("run", "threads"): ("--threads", 1, max_threads),
    ("sweep", "seeds"): ("--seeds", 1, MAX_SEEDS), ("sweep", "workers"): ("--workers", 1, MAX_WORKERS),
    ("compare", "seeds"): ("--seeds", 1, 100), ("compare", "workers"): ("--workers", 1, MAX_WORKERS),
    ("bench", "repeats"): ("--repeats", 1, 1000), ("bench", "layer"): ("--layer", 1, 100_000),
    ("bench", "threads"): ("--threads", 1, 1024), ("bench", "batches"): ("--batches", 1, 100_000),
    ("bench", "n_exc"): ("--n-exc", 1, 10_000), ("bench", "images"): ("--images", 1, 100_000),
    ("bench", "brian2_images"): ("--brian2-images", 1, 100_000),
    ("worker", "idle_timeout"): ("--idle-timeout", 0.1, math.inf),
    ("nir", "n"): ("--n", 1, 10**9), ("nir", "steps"): ("--steps", 1, 10**7), ("nir", "gain"): ("--gain", 0, math.inf),
}


def _check_ranges(args) -> None:
    """Every numeric option given is within its range (:data:`_RANGES`), else a one-line error
    quoting the value as typed."""
    for (command, dest), (flag, low, high) in _RANGES.items():
        value = getattr(args, dest, None) if args.command == command else None
        if value is None:
            continue
        high = high() if callable(high) else high  # a bound of this machine (Numba's threads)
        if not math.isfinite(value):
            raise BiosimError(f"{flag} = {value} is not a finite number")
        if not low <= value <= high:
            upper = "" if high == math.inf else f"..{high}"
            raise BiosimError(f"{flag} = {value} is out of range (must be {low}{upper})" if upper else
                              f"{flag} = {value} is out of range (must be >= {low})")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="biosim", description="Spiking neural networks: simulate, train, compare.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list every runnable name with its description")
    show = sub.add_parser("show", help="show a named run: its description and --set keys with defaults and meanings")
    show.add_argument("name", help="run name, e.g. cuba")

    run = sub.add_parser("run", help="run a named experiment (see `biosim list`)", add_help=False)
    run.add_argument("-h", "--help", action="store_true",
                     help="show this help; with NAME, also the run's --set keys (as biosim show NAME)")
    run.add_argument("name", nargs="?", help="run name, e.g. cuba")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="override a parameter of the run (repeatable), e.g. --set bio_time_s=2")
    run.add_argument("--backend", default="numba-cpu", help="simulation backend: numba-cpu, numpy, or numba-cuda (a GPU: pip install -e \".[cuda]\")")
    run.add_argument("--seed", type=int, default=None,
                     help=f"random seed 0..{MAX_SEED}, default 0 (same seed, same result)")
    run.add_argument("--out", default=None, metavar="DIR",
                     help="output folder, new or empty (default runs/NAME/<timestamp>)")
    run.add_argument("--overwrite", action="store_true",
                     help="let --out name a folder that already holds a run, and replace that run")
    run.add_argument("--resume", default=None, metavar="DIR",
                     help="continue the stopped training run in DIR with the settings of DIR/config.json")
    run.add_argument("--threads", type=int, default=None, metavar="N",
                     help="threads, 1 to Numba's NUMBA_NUM_THREADS: a simulation's steps on N threads of the "
                          "numba-cpu engine (default 1; the same spikes whatever N), or a training run's torch "
                          "threads (as --set learn.threads=N)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(format_help=run.format_help)

    sweep = sub.add_parser("sweep", help="run a named run at every point of a parameter grid and seed, on Dask")
    sweep.add_argument("name", help="run name, e.g. brunel")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="a swept parameter and its values (repeatable: the grid is every combination)")
    sweep.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help="override a parameter at every point (repeatable), e.g. --set bio_time_s=0.2")
    sweep.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 at every point (default 1)")
    sweep.add_argument("--workers", type=int, default=None, metavar="K",
                       help="worker processes of the local Dask cluster (default: one per core)")
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="submit to the Dask cluster of this scheduler (tcp://host:port) instead")
    sweep.add_argument("--backend", default="numba-cpu", help="simulation backend of every point (default numba-cpu)")
    sweep.add_argument("--metric", dest="metrics", action="append", default=[], metavar="NAME",
                       help="metric to plot (repeatable; default mean_rate_hz and cv_isi, or test_accuracy)")
    sweep.add_argument("--out", default=None, metavar="DIR",
                       help="sweep folder (default runs/sweep/NAME; the same folder again resumes the sweep)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")

    bench = sub.add_parser("bench", help="benchmark biosim against other libraries in one process")
    bench.add_argument("name", help="cuba or cobahh (engine vs Brian2), train (learning vs snnTorch/norse), "
                                    "stdp (Diehl & Cook STDP training vs Brian2 cython), sweep (a sweep's speed-up "
                                    "on 2 Dask workers), or start (a new `biosim run cuba` process: its "
                                    "start to its first simulated step, warm caches)")
    bench.add_argument("--against", default=None,
                       help="comma-separated competitors (default: brian2 for the engine and stdp, snntorch,norse "
                            "for train; '' for biosim alone)")
    bench.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    bench.add_argument("--repeats", type=int, default=None,
                       help="timed repetitions, best reported (default 1; train 3; start: launches, median "
                            "and best reported, default 5)")
    bench.add_argument("--layer", type=int, default=None, metavar="N",
                       help="train only: time one Linear(N,N)+LIF layer, 500 steps, batch 16")
    bench.add_argument("--threads", type=int, default=None, metavar="N",
                       help="train: torch threads (default: torch's); cuba/cobahh (also with --sizes): biosim's steps "
                            "on N threads (1 to Numba's NUMBA_NUM_THREADS) beside Brian2 standalone with OpenMP on "
                            "N threads; N > 1 also times both on 1 thread and prints their parallel efficiency")
    bench.add_argument("--batches", type=int, default=None, help="train only: timed batches per repeat")
    bench.add_argument("--model", default="builtin", choices=["builtin", "equations"],
                       help="cuba/cobahh: 'equations' also times the neuron written as equations, beside the "
                            "built-in one (default builtin)")
    bench.add_argument("--n-exc", dest="n_exc", type=int, default=None,
                       help="stdp only: excitatory (and inhibitory) neurons (default 400)")
    bench.add_argument("--images", type=int, default=None, help="stdp only: timed training images in biosim")
    bench.add_argument("--brian2-images", dest="brian2_images", type=int, default=None,
                       help="stdp only: timed training images in Brian2, after one warm-up image (default 3)")
    bench.add_argument("--backend", default=None,
                       help="cuba/cobahh: the backend timed at --sizes (numba-cpu, numba-cuda; default numba-cpu)")
    bench.add_argument("--sizes", default=None, metavar="N,N,...",
                       help="cuba/cobahh: comma-separated network sizes in neurons (80%% excitatory); prints loop "
                            "and set-up time, the real-time factor, peak memory and bytes per synapse per size, "
                            "beside Brian2's C++ standalone with --against brian2")
    bench.add_argument("--per-neuron", dest="per_neuron", type=float, default=None, metavar="K",
                       help="with --sizes: connection probability K/n at size n (about K synapses per neuron) "
                            "instead of the TOML's p_connect")
    bench.add_argument("--p-connect", dest="p_connect", type=float, default=None, metavar="P",
                       help="with --sizes: the fixed connection probability P at every size (synapses grow as n^2; "
                            "a size that would not fit in memory is refused before anything runs)")
    bench.add_argument("--plot", default=None, metavar="PNG",
                       help="with --sizes: write the log-log plot of cost against size to this file")
    bench.add_argument("--worker", action="store_true",
                       help="start only: also time the launches through a resident worker (biosim worker start; "
                            "one of its own, started and stopped by the bench)")
    bench.add_argument("--baseline", default=None, metavar="DIR",
                       help="start only: also time another biosim checkout's launches (a folder holding biosim/, "
                            "e.g. a git worktree of an earlier commit), alternating, and print the paired change")
    bench.add_argument("--json", action="store_true", help="print machine-readable JSON")

    comp = sub.add_parser("compare", help="train or reuse named runs over seeds and write a comparison report")
    comp.add_argument("names", nargs="+", metavar="NAME", help="run names, e.g. lif_mnist mlp_mnist")
    comp.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per run (default 3)")
    comp.add_argument("--out", default=None, metavar="DIR",
                      help="report folder, new or empty (default runs/compare/<timestamp>)")
    comp.add_argument("--overwrite", action="store_true", help="let --out name a folder that already holds a report")
    comp.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                      help="override a parameter in every run that has it (repeatable), e.g. --set learn.epochs=2")
    comp.add_argument("--workers", type=int, default=1, metavar="K",
                      help="train in parallel on a local Dask cluster of K processes (default 1: one after another)")
    comp.add_argument("--scheduler", default=None, metavar="ADDRESS",
                      help="train on the Dask cluster of this scheduler (tcp://host:port)")
    comp.add_argument("--quiet", action="store_true", help="no progress bars")

    nirp = sub.add_parser("nir", help="export a trained run to NIR, or run a NIR graph in the engine")
    nir_sub = nirp.add_subparsers(dest="nir_command", required=True, metavar="ACTION")
    nexp = nir_sub.add_parser("export", help="write a trained run's network as a NIR graph (HDF5)")
    nexp.add_argument("run_dir", metavar="RUN_DIR", help="a `biosim run` folder of a train model")
    nexp.add_argument("--out", required=True, metavar="FILE", help="the NIR file to write")
    nrun = nir_sub.add_parser("run", help="run a NIR graph in the engine on a data set's test images")
    nrun.add_argument("file", metavar="FILE", help="a NIR file")
    nrun.add_argument("--data", default="mnist5k", help="data set (default mnist5k)")
    nrun.add_argument("--n", type=int, default=None, help="first N test samples only")
    nrun.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    nrun.add_argument("--steps", type=int, default=None, help="time steps (default: the graph's)")
    nrun.add_argument("--gain", type=float, default=None, help="input current per unit intensity")

    data = sub.add_parser("data", help="list the data sets or download one")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    data_sub.add_parser("list", help="list the data sets with where they come from")
    fetch = data_sub.add_parser("fetch", help="download a data set (full MNIST) with MD5 checks")
    fetch.add_argument("dataset", choices=["mnist"], help="what to download (mnist)")
    fetch.add_argument("--dest", default=None, metavar="DIR",
                       help="folder for the files (default data/mnist, or $BIOSIM_DATA/mnist)")
    fetch.add_argument("--url", default=None, metavar="BASE",
                       help="base URL the file names are appended to (default: known mirrors)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")

    wk = sub.add_parser("worker", help="a resident worker that runs biosim commands without importing NumPy "
                                       "and Numba again (opt-in; Linux, macOS)")
    wk_sub = wk.add_subparsers(dest="worker_command", required=True, metavar="ACTION")
    wk_start = wk_sub.add_parser("start", help="start the worker in the background (it imports NumPy and Numba and "
                                               "loads the CUBA kernel once; then every biosim command of this "
                                               "Python runs in a fork of it)")
    wk_start.add_argument("--idle-timeout", dest="idle_timeout", type=float, default=None, metavar="S",
                          help=f"exit after S seconds without a command (default {DEFAULT_IDLE_S:g})")
    wk_sub.add_parser("stop", help="stop the worker (commands in flight finish)")
    wk_sub.add_parser("status", help="the worker's pid, uptime and commands served")

    nb = sub.add_parser("notebooks", help="execute the notebooks and write them as HTML with their figures")
    nb_sub = nb.add_subparsers(dest="notebooks_command", required=True, metavar="ACTION")
    nb_render = nb_sub.add_parser("render", help="execute every notebook (notebooks/*.ipynb) and write DIR/<name>.html")
    nb_render.add_argument("--out", required=True, metavar="DIR", help="folder for the HTML files")
    nb_render.add_argument("--fast", action="store_true", help="shortened runs (BIOSIM_FAST=1), as the tests run them")
    nb_render.add_argument("--dir", default=None, metavar="DIR", help="folder of the notebooks (default: the repository's)")
    return parser


def _cmd_list(args) -> int:
    models = list_models()
    width = max((len(n) for n in models), default=0)
    for name, description in models.items():
        print(f"{name:<{width}}  {description}")
    return 0


def _key_table(name: str) -> str:
    """The ``--set`` keys of the named run, one a line: key, default (as written in TOML), meaning."""
    keys = describe_keys(name)
    shown = [(key, format_value(default), meaning) for key, default, meaning in keys]
    kw = max((len(k) for k, _, _ in shown), default=0)
    vw = min(max((len(v) for _, v, _ in shown), default=0), 24)
    return "\n".join(f"  {k:<{kw}}  {v:<{vw}}  {m}".rstrip() for k, v, m in shown)


def _cmd_show(args) -> int:
    spec = load_model(args.name)
    print(f"{args.name}: {spec['description']}")
    print(f"runner: {spec['runner']}; change a key with --set KEY=VALUE (default shown):")
    print(_key_table(args.name))
    return 0


def _cmd_run(args) -> int:
    if args.help:
        table = _key_table(args.name) if args.name is not None else None  # an unknown name: one line
        print(args.format_help().rstrip())
        if table is not None:
            print(f"\nkeys of {args.name} (--set KEY=VALUE; default, meaning):\n{table}")
        return 0
    if args.name is None:
        raise BiosimError("biosim run needs a run name, e.g. biosim run cuba (see biosim list)")
    spec = load_model(args.name)
    runner = get_runner(spec["runner"])
    if args.resume is not None:
        resolved = _resume_config(args, spec, runner)
        out_dir = Path(args.resume)
        params, seed, backend = resolved["params"], resolved["seed"], resolved["backend"]
        threads = resolved.get("threads")
    else:
        params = _as_typed(lambda: apply_overrides(spec["params"], args.sets), args.sets)
        seed, backend = (0 if args.seed is None else args.seed), args.backend
    if backend not in BACKENDS:
        raise unknown("backend", backend, BACKENDS)
    if args.resume is None:
        params, threads = thread_settings(spec, params, args.threads, backend, args.sets)
    more = {} if threads is None else {"threads": threads}  # for a runner that simulates in the engine
    if args.resume is None:
        planned = run_dir_path(args.name, args.out)
        created = created_dirs(planned)
        out_dir = make_run_dir(args.name, args.out or str(planned), overwrite=args.overwrite)
        resolved = resolved_config(args.name, spec, params, seed, backend, threads)
        atomic_write_json(out_dir / "config.json", resolved)
        before = set(os.listdir(out_dir))
        try:
            metrics = _as_typed(lambda: runner(spec, params, seed, backend, out_dir, progress=not args.quiet, **more),
                                args.sets)
        except KeyboardInterrupt as exc:
            raise _stopped(exc, args.name, out_dir) from None
        except BiosimError as exc:
            if not isinstance(exc, RunInterrupted) and set(os.listdir(out_dir)) == before:
                # refused before it produced anything: leave nothing (a folder that was there stays)
                if created:
                    remove_unused(created)
                else:
                    (out_dir / "config.json").unlink(missing_ok=True)
            raise
    else:
        try:
            metrics = runner(spec, params, seed, backend, out_dir, progress=not args.quiet, resume=True, **more)
        except KeyboardInterrupt as exc:
            raise _stopped(exc, args.name, out_dir) from None
    atomic_write_json(out_dir / "metrics.json", metrics)
    shown = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    width = max(map(len, shown), default=0)
    for key, value in shown.items():
        print(f"{key:>{width}}: {value:.6g}" if isinstance(value, float) else f"{key:>{width}}: {value}")
    print(f"wrote {out_dir}")
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (as Ctrl-C raises KeyboardInterrupt)."""


def _raise_terminated(signum, frame):
    raise _Terminated


def _stopped(exc: KeyboardInterrupt, name: str, out_dir: Path) -> RunInterrupted:
    """The one line for a run stopped at once by a signal (not at a checkpoint by the runner's own
    handler): which signal, and what its folder holds."""
    sig = signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT
    if (out_dir / "checkpoint.safetensors").exists():
        where = (f"the last checkpoint is {out_dir / 'checkpoint.safetensors'}; resume with: biosim run {name} "
                 f"--resume {out_dir}")
    else:
        where = f"this run keeps no checkpoint; {out_dir} holds its config.json only"
    return RunInterrupted(f"stopped by {sig.name} before the run finished; {where}", exit_code=128 + sig)


def _as_typed(call, sets: list[str]):
    """``call()``, with a :class:`BiosimError` that quotes a ``--set`` value after conversion
    (``dt_ms = -1.0 is out of range``) quoting it as the user typed it (``dt_ms = -1``)."""
    try:
        return call()
    except RunInterrupted:
        raise
    except BiosimError as exc:
        message = as_typed(str(exc), sets)
        if message == str(exc):
            raise
        raise type(exc)(message) from None


def _resume_config(args, spec: dict, runner) -> dict:
    """The saved configuration of the run folder ``args.resume``, checked against ``spec``."""
    import inspect
    import json

    if "resume" not in inspect.signature(runner).parameters:
        raise BiosimError(f"run '{args.name}' cannot be resumed (only training runs keep checkpoints)")
    if args.sets or args.seed is not None or args.out is not None or args.overwrite or args.threads is not None:
        raise BiosimError("--resume DIR continues the run with the settings saved in DIR/config.json; "
                          "leave out --set, --seed, --threads, --out and --overwrite")
    folder = Path(args.resume)
    if folder.exists() and not folder.is_dir():
        raise BiosimError(f"--resume {args.resume}: is a file, not a run folder")
    path = folder / "config.json"
    try:
        resolved = json.loads(path.read_text())
    except FileNotFoundError:
        raise BiosimError(f"--resume {args.resume}: no config.json there (not a run folder)") from None
    except (OSError, ValueError) as exc:
        raise BiosimError(f"--resume: cannot read {path} ({exc})") from None
    if not isinstance(resolved, dict) or not {"name", "seed", "params", "backend"} <= resolved.keys():
        raise BiosimError(f"--resume: {path} is not a biosim run configuration")
    if resolved["name"] != args.name:
        raise BiosimError(f"--resume: {args.resume} holds a run of '{resolved['name']}', not '{args.name}'")
    if sorted(_flat_keys(resolved["params"])) != sorted(_flat_keys(spec["params"])):
        raise BiosimError(f"--resume: the parameters in {path} no longer match models/{args.name}.toml")
    return resolved


def _cmd_bench(args) -> int:
    if (args.per_neuron is not None or args.plot is not None or args.p_connect is not None) and args.sizes is None:
        raise BiosimError("--per-neuron, --p-connect and --plot need --sizes (the scaling bench)")
    for flag, value in (("--worker", args.worker), ("--baseline", args.baseline)):
        if value and args.name != "start":
            raise BiosimError(f"{flag} is for bench start, not {args.name}")
    if args.name == "sweep":
        return _bench_sweep(args)
    if args.name == "start":
        return _bench_start(args)
    import json

    from biosim.bench.runner import format_table, run_bench
    from biosim.bench.scaling import format_scaling_table, run_scaling_bench
    from biosim.bench.stdp_bench import DEFAULT_IMAGES, format_stdp_report, run_stdp_bench
    from biosim.bench.train_bench import format_report, run_train_bench
    from biosim.reports.bench_figures import scaling_figure

    if args.repeats is not None and args.repeats < 1:
        raise BiosimError(f"--repeats = {args.repeats} must be >= 1")
    stdp_flags = (("--n-exc", args.n_exc), ("--images", args.images), ("--brian2-images", args.brian2_images))
    if args.name != "stdp":
        for flag, value in stdp_flags:
            if value is not None:
                raise BiosimError(f"{flag} is for bench stdp, not {args.name}")
    if args.backend is not None or args.sizes is not None:
        if args.name not in ("cuba", "cobahh"):
            raise BiosimError(f"--backend and --sizes are for bench cuba and cobahh, not {args.name}")
        if args.model != "builtin":
            raise BiosimError("--backend/--sizes time the built-in models: leave out --model")
        sizes = _sizes(args.sizes) if args.sizes is not None else [_default_size(args.name, args.sets)]
        against = [a.strip() for a in (args.against or "").split(",") if a.strip()]
        if args.per_neuron is not None and args.p_connect is not None:
            raise BiosimError("--per-neuron K and --p-connect P both set the connection probability: give one")
        if args.p_connect is not None and not 0 < args.p_connect <= 1:
            raise BiosimError(f"--p-connect = {args.p_connect:g} is out of range (must be a probability in (0, 1])")
        report = run_scaling_bench(args.name, sizes, args.backend or "numba-cpu", args.sets,
                                   repeats=args.repeats or 1, against=against, per_neuron=args.per_neuron,
                                   p_connect=args.p_connect, threads=args.threads or 1, log=_progress_line)
        print(json.dumps(report, indent=2) if args.json else format_scaling_table(report))
        if args.plot is not None:
            atomic_savefig(scaling_figure(report), args.plot)
            print(f"wrote {args.plot}")
        return 0
    if args.name == "stdp":
        for flag, value in (("--repeats", args.repeats), ("--layer", args.layer), ("--threads", args.threads),
                            ("--batches", args.batches), ("--set", args.sets or None)):
            if value is not None:
                raise BiosimError(f"{flag} is not an option of bench stdp")
        if args.model != "builtin":
            raise BiosimError("--model equations is for the engine benchmarks (cuba, cobahh), not stdp")
        for flag, value in stdp_flags:
            if value is not None and value < 1:
                raise BiosimError(f"{flag} = {value} must be >= 1")
        report = run_stdp_bench(n_exc=args.n_exc or 400, n_images=args.images or DEFAULT_IMAGES,
                                brian2_images=args.brian2_images or 3,
                                against=args.against if args.against is not None else "brian2", log=_progress_line)
        print(json.dumps(report, indent=2) if args.json else format_stdp_report(report))
        return 0
    if args.name == "train":
        if args.model != "builtin":
            raise BiosimError("--model equations is for the engine benchmarks (cuba, cobahh), not train")
        for flag, value in (("--layer", args.layer), ("--threads", args.threads), ("--batches", args.batches)):
            if value is not None and value < 1:
                raise BiosimError(f"{flag} = {value} must be >= 1")
        report = run_train_bench(args.against if args.against is not None else "snntorch,norse", layer=args.layer,
                                 n_batches=args.batches, threads=args.threads, repeats=args.repeats or 3,
                                 log=_progress_line)
        text = format_report
    else:
        for flag, value in (("--layer", args.layer), ("--batches", args.batches)):
            if value is not None:
                raise BiosimError(f"{flag} is for bench train, not {args.name}")
        spec = load_model(args.name)
        apply_overrides(spec["params"], args.sets)  # validate before the long part
        against = args.against if args.against is not None else "brian2"
        report = run_bench(args.name, [a.strip() for a in against.split(",") if a.strip()],
                           args.sets, repeats=args.repeats or 1, model=args.model, threads=args.threads or 1,
                           log=_progress_line)
        text = format_table
    print(json.dumps(report, indent=2) if args.json else text(report))
    return 0


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise BiosimError(f"--sizes {text!r} must be comma-separated whole numbers, e.g. 4000,32000") from None
    if not sizes or min(sizes) < 10:
        raise BiosimError(f"--sizes {text!r} must be network sizes of at least 10 neurons")
    return sizes


def _default_size(name: str, sets) -> int:
    """The size of the network as configured (``n_exc + n_inh`` after ``--set``)."""
    params = apply_overrides(load_model(name)["params"], sets)
    return int(params["n_exc"]) + int(params["n_inh"])


def _bench_sweep(args) -> int:
    """``biosim bench sweep``: a grid of CUBA runs on 1 and on 2 Dask workers (best of --repeats, default 3),
    and the speed-up."""
    import json

    from biosim.bench.sweep_bench import DEFAULT_RUNS, format_sweep_bench, run_sweep_bench

    for flag, value in (("--against", args.against), ("--layer", args.layer),
                        ("--threads", args.threads), ("--batches", args.batches), ("--n-exc", args.n_exc),
                        ("--images", args.images), ("--brian2-images", args.brian2_images),
                        ("--backend", args.backend), ("--sizes", args.sizes)):
        if value is not None:
            raise BiosimError(f"{flag} is not an option of bench sweep")
    if args.model != "builtin":
        raise BiosimError("--model equations is for the engine benchmarks (cuba, cobahh), not sweep")
    report = run_sweep_bench(DEFAULT_RUNS, (1, 2), args.sets, repeats=args.repeats or 3, log=_progress_line)
    print(json.dumps(report, indent=2) if args.json else format_sweep_bench(report))
    return 0


def _bench_start(args) -> int:
    """``biosim bench start``: new ``biosim run cuba`` processes timed from their start to their first
    simulated step (warm caches; median of --repeats, default 5), beside the Numba floor."""
    import json

    from biosim.bench.start import DEFAULT_REPEATS as START_REPEATS
    from biosim.bench.start import format_start_report, run_start_bench

    for flag, value in (("--against", args.against), ("--layer", args.layer),
                        ("--threads", args.threads), ("--batches", args.batches), ("--n-exc", args.n_exc),
                        ("--images", args.images), ("--brian2-images", args.brian2_images),
                        ("--sizes", args.sizes)):
        if value is not None:
            raise BiosimError(f"{flag} is not an option of bench start")
    if args.model != "builtin":
        raise BiosimError("--model equations is for the engine benchmarks (cuba, cobahh), not start")
    if args.backend is not None and args.backend not in BACKENDS:
        raise unknown("backend", args.backend, BACKENDS)
    report = run_start_bench("cuba", args.sets, backend=args.backend, repeats=args.repeats or START_REPEATS,
                             worker=args.worker, baseline=args.baseline, log=_progress_line)
    print(json.dumps(report, indent=2) if args.json else format_start_report(report))
    return 0


def _cmd_sweep(args) -> int:
    result = run_sweep(args.name, args.grid, seeds=args.seeds, sets=args.sets, out=args.out, workers=args.workers,
                       scheduler=args.scheduler, backend=args.backend, metrics=args.metrics or None,
                       progress=not args.quiet, log=lambda line: print(line, flush=True))
    out, counts = Path(result["out_dir"]), result["counts"]
    total = sum(counts.values())
    print(f"{total} runs ({len(result['summary'])} grid points x {len(result['seeds'])} seeds): {counts['ran']} ran, "
          f"{counts['reused']} reused, {counts['failed']} failed")
    for failed in result["failed"]:
        print(f"failed: {failed['label']}: {failed['error']}")
    plots = ", ".join(str(out / p) for p in result["plots"])
    print(f"wrote {out / 'sweep.csv'}, {out / 'sweep.json'}" + (f", {plots}" if plots else ""))
    if result["failed"]:
        names = ", ".join(f["label"] for f in result["failed"][:5]) + (", ..." if len(result["failed"]) > 5 else "")
        raise BiosimError(f"{len(result['failed'])} of {total} runs failed ({names}); see {out / 'sweep.json'}")
    return 0


def _progress_line(line: str) -> None:
    """Progress of a long command, on stderr (stdout keeps the result, e.g. bench --json)."""
    print(line, file=sys.stderr, flush=True)


def _cmd_compare(args) -> int:
    from biosim.experiments.compare import compare

    out_dir = _as_typed(lambda: compare(args.names, seeds=args.seeds, out=args.out, sets=args.sets,
                                        progress=not args.quiet, log=lambda line: print(line, flush=True),
                                        workers=args.workers, scheduler=args.scheduler, overwrite=args.overwrite),
                        args.sets)
    print(f"wrote {out_dir / 'report.html'}, {out_dir / 'report.md'} and {out_dir / 'metrics.json'}")
    return 0


def _cmd_nir(args) -> int:
    if args.nir_command == "export":
        from biosim.bridge.nir import export_nir

        graph = export_nir(args.run_dir, args.out)
        print(f"wrote {args.out} ({len(graph.nodes)} nodes, dt = {graph.metadata['dt']:g} s)")
        return 0
    from biosim.bridge.nir_engine import run_dataset

    r = run_dataset(args.file, data=args.data, n=args.n, dtype=args.dtype, steps=args.steps, gain=args.gain)
    print(f"{args.file} on {args.data}: accuracy {100 * r['accuracy']:.2f} % over {r['n_samples']} test samples, "
          f"{r['spikes_per_sample']:.0f} spikes/sample, {r['steps']} steps of {1e3 * r['dt']:g} ms "
          f"({r['source']} graph, {r['seconds']:.2f} s)")
    return 0


def _cmd_data(args) -> int:
    from biosim.datasets import DATASETS, fetch_mnist
    from biosim.datasets.mnist import find_mnist

    if args.data_command == "list":
        width = max(len(n) for n in DATASETS)
        for name, description in DATASETS.items():
            if name == "mnist":
                try:
                    description += f" [files in {next(iter(find_mnist().values())).parent}]"
                except BiosimError:
                    description += " [not downloaded]"
            print(f"{name:<{width}}  {description}")
        return 0
    dest = fetch_mnist(args.dest, base_url=args.url, progress=not args.quiet,
                       log=None if args.quiet else _progress_line)
    print(f"MNIST files verified in {dest}")
    return 0


def _cmd_notebooks(args) -> int:
    for path in render(args.out, notebooks_dir=args.dir, fast=args.fast):
        print(f"wrote {path}")
    return 0


def _cmd_worker(args) -> int:
    if args.worker_command == "start":
        info, new = worker_client.start(DEFAULT_IDLE_S if args.idle_timeout is None else args.idle_timeout)
        print(f"{'started' if new else 'already running:'} worker {info['pid']} on {info['socket']} "
              f"(idle timeout {info['idle_timeout_s']:g} s; log {info['log']})")
        return 0
    if args.worker_command == "stop":
        pid = worker_client.stop()
        print("no worker running" if pid is None else f"stopped worker {pid}")
        return 0
    info = worker_client.status()
    if info is None:
        print("no worker running")
        return 0
    print(f"worker {info['pid']}: up {info['uptime_s']:.0f} s, {info['served']} command"
          f"{'s' * (info['served'] != 1)} served, idle timeout {info['idle_timeout_s']:g} s\n"
          f"socket {info['socket']}\nlog {info['log']}")
    return 0


def _show_library_notes() -> None:
    """Show what the library logs, one plain line each: its notes (data used, the chosen integration
    methods, a resumed run) on stdout beside the results, warnings (a stop request) on stderr.
    The library itself never prints."""
    import logging

    logger = logging.getLogger("biosim")
    for old in [h for h in logger.handlers if getattr(h, "biosim_cli", False)]:
        logger.removeHandler(old)
    for stream, keep in ((sys.stdout, lambda r: r.levelno < logging.WARNING),  # streams of this call:
                         (sys.stderr, lambda r: r.levelno >= logging.WARNING)):  # tests replace them
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.addFilter(keep)
        handler.biosim_cli = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``biosim`` command.

    What is alive when it starts (the modules, their classes and functions) lives as long as the
    process: ``gc.freeze`` keeps the cyclic garbage collector from scanning it again at every
    collection while the command runs (about 0.06 s of a warm ``biosim run cuba`` start), and
    ``gc.unfreeze`` on the way out restores the state for a caller of ``main`` in the same process.
    """
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        return _main(argv)
    finally:
        if freeze:
            gc.unfreeze()


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    _show_library_notes()
    handlers = {"list": _cmd_list, "show": _cmd_show, "run": _cmd_run, "sweep": _cmd_sweep, "bench": _cmd_bench, "compare": _cmd_compare, "nir": _cmd_nir,
                "data": _cmd_data, "notebooks": _cmd_notebooks, "worker": _cmd_worker}
    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        _check_ranges(args)
        return handlers[args.command](args)
    except BiosimError as exc:  # RunInterrupted carries 130 / 143 (checkpoint saved)
        print(f"biosim: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt as exc:
        name = "SIGTERM" if isinstance(exc, _Terminated) else "SIGINT"
        print(f"biosim: stopped by {name}", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    except OSError as exc:  # a file or folder the system refused (full disk, no permission, ...)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"biosim: error: {(exc.strerror or str(exc)).lower()}{where}", file=sys.stderr)
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_term if old_term is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
