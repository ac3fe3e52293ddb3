"""``biosim bench sweep``: how much faster a sweep runs on more Dask workers.

The same grid of short CUBA runs (default 8 points: ``we_mv`` from 1.50 to 1.85 mV, one seed,
``bio_time_s = 1``) runs through :func:`biosim.experiments.sweep.run_sweep` on a local cluster of 1
worker and then of 2 (or the ``workers`` given), each point a full ``biosim run cuba`` into a
temporary folder. Timed: the sweep from submitting the points to having written ``sweep.csv``,
best of ``repeats`` (each into a fresh folder, so nothing is reused); not timed: starting the cluster and one warm-up run on every worker (importing biosim and
matplotlib, loading the Numba kernel from its cache), reported separately. The speed-up is the
time on the fewest workers over the time on the most (the goal: at least 1.7 on 2 cores).

The machine's load average before each measurement is reported: on a shared machine other work
takes cores away from the workers. :func:`run_sweep_bench` returns the report as a dict and prints
nothing; :func:`format_sweep_bench` renders it.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from biosim.errors import BiosimError
from biosim.experiments.registry import apply_overrides, load_model
from biosim.experiments.sweep import DaskExecutor, resolved_config, run_point, run_sweep

__all__ = ["run_sweep_bench", "format_sweep_bench", "DEFAULT_RUNS"]

DEFAULT_RUNS = 8
NAME = "cuba"
GOAL = 1.7


def _warm_up() -> float:
    """One tiny CUBA run in a temporary folder (on a worker): imports, the kernel, matplotlib."""
    t0 = time.perf_counter()
    spec = load_model(NAME)
    params = apply_overrides(spec["params"], ["n_exc=40", "n_inh=10", "bio_time_s=0.001"])
    with tempfile.TemporaryDirectory() as tmp:
        run_point(spec, resolved_config(NAME, spec, params, 0, "numba-cpu"), tmp)
    return time.perf_counter() - t0


def run_sweep_bench(n_runs: int = DEFAULT_RUNS, workers: Sequence[int] = (1, 2), sets: Sequence[str] = (),
                    repeats: int = 3, log: Callable[[str], None] | None = None) -> dict:
    """Time a grid of ``n_runs`` CUBA runs on local clusters of each number of ``workers`` (best of
    ``repeats``)."""
    log = log or (lambda _line: None)
    if not 2 <= n_runs <= 1000:
        raise BiosimError(f"bench sweep: {n_runs} runs is out of range (must be 2..1000)")
    if repeats < 1:
        raise BiosimError(f"--repeats = {repeats} must be >= 1")
    values = [round(1.5 + 0.05 * i, 4) for i in range(n_runs)]
    grid = ["we_mv=" + ",".join(f"{v:g}" for v in values)]
    sets = ["bio_time_s=1.0", *sets]
    apply_overrides(load_model(NAME)["params"], list(sets))  # bad --set fails before any cluster starts
    measured = []
    for k in workers:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        log(f"bench sweep: {n_runs} {NAME} runs on {k} worker{'s' * (k != 1)} ...")
        t0 = time.perf_counter()
        walls, run_sums = [], []
        with DaskExecutor(workers=k) as ex:
            ex.on_every_worker(_warm_up)
            warm_s = time.perf_counter() - t0
            for _ in range(repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    result = run_sweep(NAME, grid, seeds=1, sets=sets, out=Path(tmp), executor=ex, progress=False)
                    walls.append(time.perf_counter() - t0)
                if result["failed"]:
                    first = result["failed"][0]
                    raise BiosimError(f"bench sweep: point {first['label']} failed: {first['error']}")
                run_sums.append(sum(p["metrics"].get("total_wall_s") or 0.0 for p in result["points"]))
        best = min(range(repeats), key=walls.__getitem__)
        measured.append({"workers": k, "wall_s": walls[best], "all_wall_s": walls, "warm_up_s": warm_s,
                         "load_average_before": load, "runs": n_runs, "sum_of_run_s": run_sums[best]})
    first, last = measured[0], measured[-1]
    speedup = first["wall_s"] / last["wall_s"] if last["wall_s"] > 0 else None
    return {"benchmark": "sweep", "name": NAME, "grid": grid, "sets": list(sets), "runs": n_runs, "repeats": repeats,
            "cores": os.cpu_count(), "measurements": measured,
            "speedup": speedup, "speedup_of": [first["workers"], last["workers"]], "goal": GOAL,
            "meets_goal": speedup is not None and speedup >= GOAL}


def format_sweep_bench(report: dict) -> str:
    """The report as text lines."""
    lines = [f"bench sweep: {report['runs']} {report['name']} runs ({', '.join(report['grid'])}; "
             f"{' '.join('--set ' + s for s in report['sets'])}), {report['cores']} cores, "
             f"best of {report['repeats']}"]
    for m in report["measurements"]:
        load = "" if m["load_average_before"] is None else f", load average before {m['load_average_before']:.2f}"
        lines.append(f"  {m['workers']} worker{'s' * (m['workers'] != 1)}: {m['wall_s']:.2f} s "
                     f"(all: {', '.join(f'{w:.2f}' for w in m['all_wall_s'])} s) "
                     f"(runs' own time {m['sum_of_run_s']:.2f} s; start-up and warm-up {m['warm_up_s']:.2f} s, "
                     f"not counted{load})")
    a, b = report["speedup_of"]
    verdict = "meets" if report["meets_goal"] else "misses"
    lines.append(f"  speed-up {b} vs {a} workers: {report['speedup']:.2f}x ({verdict} the goal of {report['goal']}x; "
                 f"a shared machine lowers it)")
    return "\n".join(lines)
