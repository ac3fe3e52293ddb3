"""``biosim sweep NAME --grid key=v1,v2 ...``: a named run at every point of a parameter grid and seed, on Dask.

Nothing here schedules, retries or moves data by itself: the runs go to a Dask cluster,
:class:`DaskExecutor` -- by default a ``dask.distributed.LocalCluster`` of K worker processes with
one thread each on this machine, or an existing cluster given by its scheduler's address. Each
task sets Numba, torch and the BLAS libraries to one thread, so K workers use K cores.

Every point (grid values and seed) is an ordinary run folder, ``OUT/points/<label>/``, holding the
``config.json`` and ``metrics.json`` that ``biosim run NAME --set ... --seed S`` writes, written by
the worker that runs it (on a cluster elsewhere ``OUT`` must be a folder the workers see); the
client gathers only the metrics. A point whose folder already holds a finished run of the same
resolved configuration (:func:`finished_run`, which :func:`biosim.experiments.compare.find_run`
also uses) is reused, so running an interrupted sweep again runs only what is missing. A point
that fails (a bad value, NaN during the run, a worker that died: Dask retries a dead worker's task
on another worker, an exception is not retried) is recorded with its one-line error, the others go
on, and :func:`run_sweep` reports it in ``failed``.

The sweep writes ``OUT/sweep.csv`` (one row per point and seed: the grid values, the status and
every scalar metric), ``OUT/sweep.json`` (the same plus mean and spread over seeds per grid point)
and plots (:mod:`biosim.reports.sweep_figures`): a metric against a swept key (mean and standard
deviation over seeds), or a heat map over two keys. Same seed, same result: a point's metrics do
not depend on where or beside what it ran.

Dask is imported inside the functions that start or reach a cluster (it is slow to import).
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import inspect
import io
import itertools
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from biosim.backends import BACKENDS
from biosim.backends.numba_cpu import MAX_THREADS as max_threads  # the engine's own limit, re-exported for the CLI
from biosim.errors import BiosimError, unknown
from biosim.experiments import get_runner
from biosim.experiments.registry import _flat_keys, apply_overrides, as_typed, load_model
from biosim.files import atomic_write_json, atomic_write_text, make_dir
from biosim.reports.sweep_figures import heatmap_figure, save_figure, trend_figure

__all__ = ["DaskExecutor", "finished_run", "parse_grid", "run_sweep", "spread", "one_line", "DEFAULT_METRICS",
           "max_threads", "resolved_config", "run_point", "thread_settings"]

#: metrics plotted when ``metrics`` is not given, the first ones present (simulations, then classifiers)
DEFAULT_METRICS = ("mean_rate_hz", "cv_isi", "test_accuracy")

#: most worker processes a local cluster may be asked for
MAX_WORKERS = 256
MAX_SEEDS = 10_000

#: read by torch and the BLAS libraries when they load. Not NUMBA_NUM_THREADS: Numba rereads its
#: environment at every compilation and refuses a changed value once its threads run; its number of
#: threads is set with numba.set_num_threads instead.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _silent(_line: str) -> None:
    pass


# --------------------------------------------------------------------------------------------------
# finished runs


def finished_run(run_dir: str | Path, resolved: dict) -> dict | None:
    """The metrics of the run folder ``run_dir`` if it holds a finished run (a readable
    ``metrics.json``) whose ``config.json`` equals ``resolved``, but for the engine's ``threads``
    (which do not change a run's results); None otherwise."""
    run_dir = Path(run_dir)

    def same(config) -> dict:
        return {k: v for k, v in json.loads(json.dumps(config)).items() if k != "threads"}

    try:
        config = json.loads((run_dir / "config.json").read_text())
        if not isinstance(config, dict) or same(config) != same(resolved):
            return None
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def resolved_config(name: str, spec: dict, params: dict, seed: int, backend: str, threads: int | None = None) -> dict:
    """What ``biosim run NAME`` writes into ``config.json``; for a runner that simulates in the
    engine also ``threads``, its threads per step (default 1; see :func:`thread_settings`)."""
    out = {"name": name, "runner": spec["runner"], "builder": spec.get("builder", name), "backend": backend,
           "seed": seed, "params": params}
    if threads is None and _takes_threads(get_runner(spec["runner"])):
        threads = 1
    if threads is not None:
        out["threads"] = threads
    return out


def _takes_threads(runner) -> bool:
    return "threads" in inspect.signature(runner).parameters


def thread_settings(spec: dict, params: dict, threads: int | None, backend: str,
                    sets: Sequence[str] = ()) -> tuple[dict, int | None]:
    """``biosim run NAME --threads N``: the run's parameters and the engine's threads to record and
    pass to its runner.

    A runner that simulates in the engine (it takes ``threads``: the simulation and STDP runners)
    runs each step on ``threads`` of Numba's threads (default 1; on numba-cpu only; the results
    are the same whatever the number); a training run's ``threads`` become its torch threads
    (``learn.threads``, which ``sets`` must then leave alone). Returns ``(params, threads)``, with
    ``threads`` None for a runner that does not take it. ``threads`` must be 1 ..
    :func:`max_threads`; a runner that uses no threads refuses it."""
    runner = get_runner(spec["runner"])
    if threads is not None:
        most = max_threads()
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= most:
            raise BiosimError(f"--threads = {threads!r} is out of range (must be 1..{most}, Numba's "
                              f"NUMBA_NUM_THREADS on this machine)")
    if _takes_threads(runner):
        threads = 1 if threads is None else threads
        if threads > 1 and backend != "numba-cpu":
            raise BiosimError(f"--threads {threads} is for the numba-cpu backend, not {backend}")
        return params, threads
    if threads is None:
        return params, None
    learn = params.get("learn")
    if isinstance(learn, dict) and "threads" in learn:
        if any(s.split("=", 1)[0].strip() == "learn.threads" for s in sets):
            raise BiosimError("give the torch threads once: --threads N or --set learn.threads=N, not both")
        return apply_overrides(params, [f"learn.threads={threads}"]), None
    raise BiosimError(f"run '{spec['name']}' does not use --threads (its runner '{spec['runner']}' has no threads "
                      f"to set)")


def run_point(spec: dict, resolved: dict, out_dir: str) -> dict:
    """Run one configuration into ``out_dir`` as ``biosim run`` does (``config.json``, the runner's
    files, ``metrics.json``); return the metrics as ``metrics.json`` holds them. Runs on a worker."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").unlink(missing_ok=True)  # a stale result never sits beside a new config
    atomic_write_json(out / "config.json", resolved)
    runner = get_runner(resolved["runner"])
    extra = {"threads": resolved["threads"]} if "threads" in resolved and _takes_threads(runner) else {}
    metrics = runner(spec, resolved["params"], resolved["seed"], resolved["backend"], out, progress=False, **extra)
    atomic_write_json(out / "metrics.json", metrics)
    return json.loads((out / "metrics.json").read_text())


# --------------------------------------------------------------------------------------------------
# the executor


def one_line(exc: BaseException) -> str:
    """A one-line description of an exception raised by a task (the message of a
    :class:`BiosimError`, else its type and first line)."""
    if type(exc).__name__ == "KilledWorker":
        return "the worker running it died (killed, out of memory or crashed) every time Dask tried it"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, BiosimError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Raised:
    """A task's :class:`BiosimError`, returned rather than raised: the user's mistake is recorded
    without the worker logging a traceback (other exceptions, bugs, raise and are logged)."""

    def __init__(self, error: BiosimError):
        self.error = error


def _single_threaded(fn: Callable, *args):
    """Call ``fn(*args)`` with Numba, torch and the BLAS libraries on one thread (runs on a worker)."""
    for var in _THREAD_VARIABLES:  # for libraries imported from here on
        os.environ[var] = "1"
    import numba

    numba.set_num_threads(1)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(1)
    try:
        return fn(*args)
    except BiosimError as exc:
        return _Raised(exc)


def _scheduler_address(address: str) -> str:
    """``address`` as ``scheme://host:port`` (``host:port`` means tcp), or a one-line error."""
    text = address.strip()
    if "://" not in text:
        text = f"tcp://{text}"
    m = re.fullmatch(r"(tcp|tls|ws|wss|ucx)://(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})", text)
    if not m or not 0 < int(m.group(3)) < 65536:
        raise BiosimError(f"--scheduler '{address}' is not a Dask scheduler address (expected tcp://HOST:PORT, "
                          f"e.g. tcp://127.0.0.1:8786)")
    return text


def check_workers(workers: int | None) -> None:
    """A one-line error unless ``workers`` is None or 1 .. MAX_WORKERS."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or not 1 <= workers <= MAX_WORKERS):
        raise BiosimError(f"--workers = {workers!r} is out of range (must be 1..{MAX_WORKERS})")


class DaskExecutor:
    """A Dask client for fanning tasks out: ``with DaskExecutor(workers=2) as ex: ex.run(fn, jobs)``.

    Without ``scheduler`` it starts a ``LocalCluster(n_workers=workers, threads_per_worker=1,
    processes=True)`` (``workers`` defaults to the cores this process may use) and stops it on exit;
    with ``scheduler`` (``tcp://host:port``) it connects to that cluster, whose workers must be able
    to import biosim and reach the output folders. Connection timeouts follow Dask's configuration
    (``distributed.comm.timeouts.connect``).
    """

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        check_workers(workers)
        if scheduler is not None and workers is not None:
            raise BiosimError("--workers is for the local cluster; a cluster given by --scheduler has its own workers")
        self.address = _scheduler_address(scheduler) if scheduler is not None else None
        self.workers = workers if workers is not None else (None if scheduler else _cores())
        self.cluster = self.client = None

    def __enter__(self) -> DaskExecutor:
        from dask.distributed import Client, LocalCluster

        try:
            if self.address is None:
                # no dashboard, and the scheduler's HTTP server on a free port: its default, 8787,
                # is taken when two clusters start at once (two pytest workers, two sweeps)
                self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                            dashboard_address=":0", scheduler_kwargs={"dashboard": False},
                                            env={var: "1" for var in _THREAD_VARIABLES})
                self.client = Client(self.cluster)
            else:
                self.client = Client(self.address)
        except (OSError, TimeoutError, ValueError) as exc:
            self.close()
            where = f"the Dask scheduler at {self.address}" if self.address else "a local Dask cluster"
            raise BiosimError(f"cannot reach {where} ({one_line(exc)})") from None
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def describe(self) -> str:
        """One line: where the tasks run."""
        n, threads = self.n_workers(), self.n_threads()
        where = f"the Dask cluster at {self.address}" if self.address else "a local Dask cluster"
        return f"{where}: {n} worker{'s' * (n != 1)}, {threads} thread{'s' * (threads != 1)}"

    def n_threads(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def n_workers(self) -> int:
        return len(self.client.nthreads())

    def on_every_worker(self, fn: Callable, *args) -> dict:
        """``fn(*args)`` on every worker (single-threaded as the tasks are); worker address -> result."""
        return self.client.run(_single_threaded, fn, *args)

    def run(self, fn: Callable, jobs: Sequence[tuple], progress: bool = False, desc: str = "runs",
            unit: str = "run") -> Iterator[tuple[int, object, BaseException | None]]:
        """Submit ``fn(*job)`` for every job; yield ``(index, result, None)`` or ``(index, None,
        exception)`` as they finish. A progress bar (tqdm, on stderr) counts done, running and failed.
        Stopping early (or Ctrl-C) cancels what has not finished."""
        from dask.distributed import as_completed
        from tqdm import tqdm

        futures = [self.client.submit(_single_threaded, fn, *job, pure=False) for job in jobs]
        index = {f.key: i for i, f in enumerate(futures)}
        threads, failed = self.n_threads(), 0
        bar = tqdm(total=len(futures), desc=desc, unit=unit, disable=not progress, leave=False)
        try:
            bar.set_postfix_str(f"running {min(threads, len(futures))}, failed 0")
            for done, future in enumerate(as_completed(futures), start=1):
                error = future.exception() if future.status == "error" else None
                if future.status == "cancelled":
                    error = BiosimError("cancelled by the Dask scheduler")
                result = future.result() if error is None else None
                if isinstance(result, _Raised):
                    result, error = None, result.error
                failed += error is not None
                bar.update(1)
                bar.set_postfix_str(f"running {min(threads, len(futures) - done)}, failed {failed}")
                yield index[future.key], result, error
        finally:
            bar.close()
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending)

    def map(self, fn: Callable, jobs: Sequence[tuple], progress: bool = False, desc: str = "runs") -> list:
        """``[fn(*job) for job in jobs]`` in parallel, in order; the first failure is raised (as a
        :class:`BiosimError` unless it is one) and the rest cancelled."""
        results: list = [None] * len(jobs)
        for i, result, error in self.run(fn, jobs, progress=progress, desc=desc):
            if error is not None:
                if isinstance(error, BiosimError):
                    raise error
                raise BiosimError(one_line(error)) from error
            results[i] = result
        return results


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------------
# the grid


def _split_values(text: str) -> list[str]:
    """``v1,v2,...`` split at the commas outside brackets and quotes (``[32,64]`` is one value)."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_grid(params: dict, grid: Sequence[str]) -> dict[str, list[str]]:
    """``["key=v1,v2", ...]`` -> ``{key: ["v1", "v2"]}``, the keys checked against ``params`` (an
    unknown key names the closest valid one). The values stay text: each is parsed and checked when
    its point is resolved, so a bad value fails its points only."""
    if not grid:
        raise BiosimError("sweep needs at least one --grid KEY=V1,V2,...")
    keys = _flat_keys(params)
    axes: dict[str, list[str]] = {}
    for item in grid:
        if "=" not in item:
            raise BiosimError(f"--grid expects KEY=V1,V2,..., got '{item}'")
        key, text = (s.strip() for s in item.split("=", 1))
        if key not in keys:
            raise unknown("--grid key", key, keys)
        if key in axes:
            raise BiosimError(f"--grid {key} is given twice")
        values = _split_values(text)
        if any(v == "" for v in values):
            raise BiosimError(f"--grid {key}: an empty value in '{text}'")
        if len(set(values)) != len(values):
            raise BiosimError(f"--grid {key}: a value is given twice in '{text}'")
        axes[key] = values
    return axes


def _leaf(params: dict, key: str):
    for part in key.split("."):
        params = params[part]
    return params


def _label(values: dict, seed: int) -> str:
    """The folder name of a point: ``key=value,...,seed=S`` (odd characters replaced, a hash of the
    exact text added then, and for long names)."""
    raw = ",".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in values.items()) + f",seed={seed}"
    safe = re.sub(r"[^A-Za-z0-9._+=,-]", "_", raw)
    if safe != raw or len(safe) > 120:
        safe = f"{safe[:100]}-{hashlib.sha256(raw.encode()).hexdigest()[:10]}"
    return safe


def _flatten(metrics: dict, prefix: str = "") -> dict:
    """The scalar metrics (numbers, strings, booleans, None), nested tables as dotted keys; lists left out."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif v is None or isinstance(v, (int, float, str, bool)):
            out[prefix + k] = v
    return out


def spread(values) -> dict:
    """Mean, sample standard deviation, min, max and count of the finite numbers among ``values``."""
    vals = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(vals), "max": max(vals), "n": len(vals)}


# --------------------------------------------------------------------------------------------------
# the sweep


def run_sweep(name: str, grid: Sequence[str], seeds: int = 1, sets: Sequence[str] = (), out: str | Path | None = None,
              workers: int | None = None, scheduler: str | None = None, backend: str = "numba-cpu",
              metrics: Sequence[str] | None = None, progress: bool = True, executor: DaskExecutor | None = None,
              log: Callable[[str], None] | None = None) -> dict:
    """Run ``name`` at every point of ``grid`` (``["key=v1,v2", ...]``) for seeds ``0 .. seeds-1``.

    ``sets`` are ``--set`` overrides of every point; ``out`` the sweep folder (default
    ``runs/sweep/NAME``: running the same sweep again resumes it); ``workers``/``scheduler`` choose
    the cluster (see :class:`DaskExecutor`), or ``executor`` is one already open; ``metrics`` the
    metrics to plot (default: those of :data:`DEFAULT_METRICS` present). ``log`` receives a few
    lines (where it runs, what is reused). Returns the content of ``sweep.json`` with ``out_dir``.
    """
    log = log or _silent
    spec = load_model(name)
    if backend not in BACKENDS:
        raise unknown("backend", backend, BACKENDS)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise BiosimError(f"--seeds = {seeds!r} is out of range (must be 1..{MAX_SEEDS})")
    check_workers(workers)
    if scheduler is not None:
        _scheduler_address(scheduler)
        if workers is not None:
            raise BiosimError("--workers is for the local cluster; a cluster given by --scheduler has its own workers")
    base = apply_overrides(spec["params"], list(sets))
    axes = parse_grid(base, grid)
    set_keys = {s.split("=", 1)[0].strip() for s in sets}
    for key in axes:
        if key in set_keys:
            raise BiosimError(f"--grid {key} is also given with --set; sweep it or fix it, not both")
    out_dir = Path(out) if out is not None else Path("runs") / "sweep" / name
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "points").is_dir() \
            and not (out_dir / "sweep.json").exists():
        raise BiosimError(f"--out {out_dir}: the folder holds files but no sweep; choose a new folder (the same "
                          f"sweep folder again resumes that sweep)")
    make_dir(out_dir)
    started = _dt.datetime.now().isoformat(timespec="seconds")

    points, typed = [], {}  # typed: each point's overrides as typed, for its error message
    for combo in itertools.product(*axes.values()):
        texts = dict(zip(axes, combo))
        try:
            params = apply_overrides(base, [f"{k}={t}" for k, t in texts.items()])
            values, error = {k: _leaf(params, k) for k in axes}, None
        except BiosimError as exc:
            params, values, error = None, dict(texts), as_typed(str(exc), [f"{k}={t}" for k, t in texts.items()])
        for seed in range(seeds):
            point = {"label": _label(values, seed), "values": values, "seed": seed, "status": "failed",
                     "error": error, "run_dir": None, "metrics": {}}
            typed[point["label"]] = [*sets, *(f"{k}={t}" for k, t in texts.items())]
            if params is not None:
                point["resolved"] = resolved_config(name, spec, params, seed, backend)
                point["run_dir"] = str((out_dir / "points" / point["label"]).resolve())
            points.append(point)

    labels = [p["label"] for p in points if p["error"] is None]
    if len(set(labels)) != len(labels):
        same = next(label for label in labels if labels.count(label) > 1)
        raise BiosimError(f"--grid: two values of a key are the same value once read ({same})")
    todo = []
    for i, point in enumerate(points):
        if point["error"] is not None:
            continue
        found = finished_run(point["run_dir"], point["resolved"])
        if found is not None:
            point.update(status="reused", metrics=found)
        else:
            todo.append(i)
    n_reused = sum(p["status"] == "reused" for p in points)
    if n_reused:
        log(f"{name}: reusing {n_reused} finished point{'s' * (n_reused != 1)} in {out_dir / 'points'}")
    where = None
    if todo:
        jobs = [(spec, points[i]["resolved"], points[i]["run_dir"]) for i in todo]
        own = executor is None
        ex = DaskExecutor(workers=workers, scheduler=scheduler) if own else executor
        if own:
            ex.__enter__()
        try:
            where = ex.describe()
            log(f"{name}: {len(todo)} point{'s' * (len(todo) != 1)} on {where}")
            for j, result, error in ex.run(run_point, jobs, progress=progress, desc=f"sweep {name}", unit="point"):
                point = points[todo[j]]
                if error is None:
                    point.update(status="ran", metrics=result)
                else:
                    point.update(status="failed", error=as_typed(one_line(error), typed[point["label"]]))
        finally:
            if own:
                ex.close()
    return _write_outputs(out_dir, name, spec, axes, seeds, list(sets), backend, points, metrics, where, started)


def _write_outputs(out_dir: Path, name: str, spec: dict, axes: dict, seeds: int, sets: list, backend: str,
                   points: list[dict], metrics: Sequence[str] | None, where: str | None, started: str) -> dict:
    rows, metric_keys = [], []
    fixed = {"point", "seed", "status", "error", "run_dir", *axes}  # columns of their own (a run's seed too)
    for p in points:
        flat = _flatten(p["metrics"])
        metric_keys += [k for k in flat if k not in metric_keys and k not in fixed]
        rows.append((p, flat))
    numeric = [k for k in metric_keys
               if any(isinstance(f.get(k), (int, float)) and not isinstance(f.get(k), bool) for _, f in rows)]

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["point", "seed", *axes, "status", "error", "run_dir", *metric_keys])
    for p, flat in rows:
        writer.writerow([",".join(f"{k}={v}" for k, v in p["values"].items()), p["seed"], *(p["values"][k] for k in axes), p["status"],
                         p["error"] or "", p["run_dir"] or "",
                         *("" if flat.get(k) is None else flat.get(k) for k in metric_keys)])
    atomic_write_text(out_dir / "sweep.csv", buf.getvalue())

    summary = []  # points are grid-major, seeds innermost
    for start in range(0, len(rows), seeds):
        group = rows[start:start + seeds]
        ok = [flat for p, flat in group if p["status"] != "failed"]
        summary.append({"values": group[0][0]["values"], "n_ok": len(ok),
                        "metrics": {k: spread([f.get(k) for f in ok]) for k in numeric}})

    plots = _plots(out_dir, name, axes, seeds, summary, numeric, metrics)
    failed = [p for p in points if p["status"] == "failed"]
    data = {
        "name": name, "runner": spec["runner"], "backend": backend, "sets": sets,
        "grid": {k: list(_distinct(entry["values"][k] for entry in summary)) for k in axes},
        "seeds": list(range(seeds)), "started": started, "executor": where,
        "counts": {status: sum(p["status"] == status for p in points) for status in ("ran", "reused", "failed")},
        "points": [{k: p[k] for k in ("label", "values", "seed", "status", "error", "run_dir")}
                   | {"metrics": flat} for p, flat in rows],
        "summary": summary,
        "failed": [{"label": p["label"], "error": p["error"]} for p in failed],
        "plots": plots,
    }
    atomic_write_json(out_dir / "sweep.json", data)
    return {**data, "out_dir": str(out_dir)}


def _distinct(values) -> list:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _plots(out_dir: Path, name: str, axes: dict, seeds: int, summary: list[dict], numeric: list[str],
           wanted: Sequence[str] | None) -> list[str]:
    """Write the plots; return their file names. One swept key (or three and more): the metric
    against each swept key; two: a heat map."""
    if wanted:
        for metric in wanted:
            if metric not in numeric:
                if not numeric:
                    raise BiosimError(f"--metric {metric}: no point finished, so there is nothing to plot")
                raise unknown("--metric", metric, numeric)
        chosen = list(wanted)
    else:
        chosen = [m for m in DEFAULT_METRICS if m in numeric] or numeric[:1]
    swept = [k for k, v in axes.items() if len(v) > 1]
    if not chosen or not swept:
        return []
    names = []
    for metric in chosen:
        if len(swept) == 2:
            fig = heatmap_figure(summary, swept[0], swept[1], metric, name, seeds)
            file = f"heatmap_{_file_part(metric)}.png"
            save_figure(fig, out_dir / file)
            names.append(file)
            continue
        for key in swept:
            fig = trend_figure(summary, key, metric, name, seeds, others=[k for k in swept if k != key])
            file = f"{_file_part(metric)}_vs_{_file_part(key)}.png"
            save_figure(fig, out_dir / file)
            names.append(file)
    return names


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)
