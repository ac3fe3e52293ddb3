"""``biosim compare A B [C ...]``: train (or reuse) named runs over several seeds and report them side by side.

For every name and seed the resolved configuration (name, runner, builder, backend, seed and the
``[params]`` after ``--set``) is what ``biosim run NAME --seed S`` writes into ``config.json``; a
finished run folder under ``runs/NAME/`` (one with ``metrics.json``) whose ``config.json`` is equal
is reused instead of trained again. The comparison folder (default ``runs/compare/<timestamp>/``)
gets ``metrics.json`` (per model, per seed, mean and standard deviation, differences between the
models), ``report.md`` and ``report.html`` (one self-contained file, see
:mod:`biosim.reports.comparison`).

Progress lines ("NAME seed S: reusing DIR" / "...: training in DIR") go to the ``log`` callable
the caller passes (the CLI prints them); the library itself prints nothing.

``workers=K`` (or ``scheduler=ADDRESS``) trains the runs that are not reused in parallel on Dask,
with the executor of ``biosim sweep`` (:class:`biosim.experiments.sweep.DaskExecutor`); the reuse
check and the run folders are the same, and each run gives the same metrics as in the plain loop
that ``workers=1`` keeps.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Callable
from pathlib import Path

from biosim.errors import BiosimError, RunInterrupted
from biosim.experiments import get_runner
from biosim.experiments.registry import apply_overrides, load_model
from biosim.experiments.sweep import DaskExecutor, check_workers, finished_run, resolved_config, spread
from biosim.files import atomic_write_json, created_dirs, make_dir, make_run_dir, remove_unused
from biosim.reports.comparison import SUMMARY_KEYS, write_reports

__all__ = ["SUMMARY_KEYS", "resolve_params", "find_run", "compare", "summarise", "engine_agreement"]

#: for each summarised metric: True if higher is better
HIGHER_IS_BETTER = {"test_accuracy": True, "best_test_accuracy_seen": True, "val_accuracy": True,
                    "train_seconds": False, "latency_ms_per_sample": False, "n_params": False,
                    "footprint_bytes": False, "synops_effective_acs": False, "synops_effective_macs": False,
                    "synops_dense": False, "energy_estimate_uJ": False}

BACKEND = "numba-cpu"

#: runners whose runs are classifiers with a test accuracy: supervised training (SNN or ANN) and
#: unsupervised STDP learning with labels assigned from the training set
CLASSIFIER_RUNNERS = ("train", "stdp")


def resolve_params(specs: dict[str, dict], sets: list[str]) -> dict[str, dict]:
    """``[params]`` of every model after the overrides; a key applies to the models that have it.

    A key that no model has is an error (naming the closest valid key).
    """
    params = {name: spec["params"] for name, spec in specs.items()}
    for item in sets:
        applied, first_error = False, None
        for name in params:
            try:
                params[name] = apply_overrides(params[name], [item])
                applied = True
            except BiosimError as exc:
                if "--set key" not in str(exc):
                    raise
                first_error = first_error or exc
        if not applied and first_error is not None:
            raise first_error
    return params


def _resolved(name: str, spec: dict, params: dict, seed: int) -> dict:
    return resolved_config(name, spec, params, seed, BACKEND)


def find_run(resolved: dict, runs_root: Path = Path("runs")) -> Path | None:
    """A finished run folder under ``runs_root/NAME`` whose ``config.json`` equals ``resolved``."""
    folder = Path(runs_root) / resolved["name"]
    if not folder.is_dir():
        return None
    for config in sorted(folder.glob("*/config.json"), reverse=True):
        if finished_run(config.parent, resolved) is not None:
            return config.parent
    return None


def engine_agreement(run_dir: Path) -> dict | None:
    """The NIR engine-agreement numbers of a trained SNN run, or None where not available.

    HOOK for the NIR work: if :mod:`biosim.bridge.nir_engine` exists and defines
    ``engine_agreement(run_dir) -> dict | None`` (e.g. ``{"same_class": 0.9995,
    "same_spike_counts": 0.995, "samples": 1000}``), its result is returned; otherwise None.
    """
    try:
        from biosim.bridge import nir_engine
    except ImportError:
        return None
    func = getattr(nir_engine, "engine_agreement", None)
    if func is None:
        return None
    try:
        return func(Path(run_dir))
    except BiosimError as exc:
        return {"error": str(exc)}


def _silent(_line: str) -> None:
    pass


_stats = spread  # mean, std (n - 1), min, max, n of the numbers given


def summarise(per_seed: dict[str, list[dict]]) -> tuple[dict, dict]:
    """Mean / std per model and metric, and the differences between every pair of models.

    Returns ``(summary, differences)``; ``differences["B - A"][metric]`` holds ``difference``
    (mean of B minus mean of A), ``ratio`` (B / A) and ``better`` (the name of the better model,
    None where equal or undefined).
    """
    summary = {name: {k: _stats([m.get(k) for m in runs]) for k in SUMMARY_KEYS} for name, runs in per_seed.items()}
    names = list(per_seed)
    diffs = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            entry = {}
            for k in SUMMARY_KEYS:
                ma, mb = summary[a][k]["mean"], summary[b][k]["mean"]
                if ma is None or mb is None:
                    continue
                better = None
                if k in HIGHER_IS_BETTER and ma != mb:
                    better = (b if mb > ma else a) if HIGHER_IS_BETTER[k] else (b if mb < ma else a)
                entry[k] = {"difference": mb - ma, "ratio": mb / ma if ma else None, "better": better}
            diffs[f"{b} - {a}"] = entry
    return summary, diffs


def _train_or_reuse(name: str, spec: dict, params: dict, seed: int, runs_root: Path, progress: bool,
                    log: Callable[[str], None]) -> dict:
    resolved = _resolved(name, spec, params, seed)
    found = _reuse(resolved, runs_root, log)
    if found is not None:
        return found
    out_dir = _new_run_dir(runs_root, name)
    log(f"{name} seed {seed}: training in {out_dir}")
    return _train(spec, resolved, out_dir, progress)


def _reuse(resolved: dict, runs_root: Path, log: Callable[[str], None]) -> dict | None:
    found = find_run(resolved, runs_root)
    if found is None:
        return None
    log(f"{resolved['name']} seed {resolved['seed']}: reusing {found}")
    return {"run_dir": str(found), "reused": True, "seconds": 0.0,
            "metrics": json.loads((found / "metrics.json").read_text())}


def _new_run_dir(runs_root: Path, name: str) -> Path:
    while True:  # parallel runs are created in quick succession: one folder each
        out_dir = Path(runs_root) / name / _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        try:
            out_dir.mkdir(parents=True)
            return out_dir
        except FileExistsError:
            continue


def _train(spec: dict, resolved: dict, out_dir: Path, progress: bool) -> dict:
    """Train ``resolved`` into ``out_dir`` (``config.json``, the runner's files, ``metrics.json``);
    in the caller's process or on a Dask worker."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "config.json", resolved)
    t0 = time.perf_counter()
    try:
        metrics = get_runner(spec["runner"])(spec, resolved["params"], resolved["seed"], resolved["backend"],
                                             out_dir, progress=progress)
    except BiosimError as exc:
        if not isinstance(exc, RunInterrupted) and [f.name for f in out_dir.iterdir()] == ["config.json"]:
            remove_unused([out_dir])  # refused before it produced anything: no half run left to reuse
        raise
    atomic_write_json(out_dir / "metrics.json", metrics)
    return {"run_dir": str(out_dir), "reused": False, "seconds": time.perf_counter() - t0,
            "metrics": json.loads((out_dir / "metrics.json").read_text())}


def _train_all(names: list[str], specs: dict, params: dict, seeds: int, runs_root: Path, progress: bool,
               log: Callable[[str], None], workers: int, scheduler: str | None) -> dict[str, list[dict]]:
    """Every name's runs for seeds ``0 .. seeds-1``: reused, else trained (in parallel on Dask
    unless ``workers == 1`` and no ``scheduler``)."""
    runs: dict[str, list] = {name: [None] * seeds for name in names}
    if workers == 1 and scheduler is None:
        for seed in range(seeds):
            for name in names:
                runs[name][seed] = _train_or_reuse(name, specs[name], params[name], seed, runs_root, progress, log)
        return runs
    slots, jobs = [], []
    for seed in range(seeds):
        for name in names:
            resolved = _resolved(name, specs[name], params[name], seed)
            runs[name][seed] = _reuse(resolved, runs_root, log)
            if runs[name][seed] is None:
                out_dir = _new_run_dir(runs_root, name)
                log(f"{name} seed {seed}: training in {out_dir}")
                slots.append((name, seed))
                jobs.append((specs[name], resolved, str(out_dir.resolve()), False))
    if jobs:
        with DaskExecutor(workers=None if scheduler else workers, scheduler=scheduler) as ex:
            log(f"training {len(jobs)} run{'s' * (len(jobs) != 1)} on {ex.describe()}")
            for (name, seed), result in zip(slots, ex.map(_train, jobs, progress=progress, desc="compare")):
                runs[name][seed] = result
    return runs


def compare(names: list[str], seeds: int = 3, out: str | Path | None = None, sets: list[str] | None = None,
            progress: bool = True, runs_root: str | Path = "runs",
            log: Callable[[str], None] | None = None, workers: int = 1, scheduler: str | None = None,
            overwrite: bool = False) -> Path:
    """Train or reuse every named run for seeds ``0 .. seeds-1`` and write the comparison report.

    ``progress`` shows the runners' progress bars (with ``workers > 1``: one bar over the runs);
    ``log`` (if given) receives one line per run saying whether it was reused or is being trained,
    and where. ``workers`` > 1 trains in parallel on a local Dask cluster of that many processes,
    ``scheduler`` (``tcp://host:port``) on an existing cluster. ``out`` must be a new or empty folder
    unless ``overwrite`` (then the report in it is replaced). Returns the report folder.
    """
    log = log or _silent
    if len(names) < 2:
        raise BiosimError(f"compare needs at least two run names, got {len(names)}")
    if len(set(names)) != len(names):
        raise BiosimError(f"compare: a run name is given twice ({', '.join(names)})")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 100:
        raise BiosimError(f"--seeds = {seeds} is out of range (must be 1..100)")
    check_workers(workers)
    if scheduler is not None:
        DaskExecutor(scheduler=scheduler)  # checks the address before any training
        if workers != 1:
            raise BiosimError("--workers is for the local cluster; a cluster given by --scheduler has its own workers")
    specs = {name: load_model(name) for name in names}  # unknown names fail here, before any training
    for name, spec in specs.items():
        if spec["runner"] not in CLASSIFIER_RUNNERS:
            raise BiosimError(f"run '{name}' does not train a classifier (runner '{spec['runner']}'); compare "
                              f"takes runs of the runners {', '.join(CLASSIFIER_RUNNERS)}")
    params = resolve_params(specs, list(sets or []))
    runs_root = Path(runs_root)
    if out is None:
        out_dir = runs_root / "compare" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    else:
        out_dir = Path(out)
    created = created_dirs(out_dir)
    if out is None:
        make_dir(out_dir)
    else:
        make_run_dir("compare", str(out), overwrite=overwrite)
    try:
        runs = _train_all(names, specs, params, seeds, runs_root, progress, log, workers, scheduler)
    except BiosimError:
        remove_unused(created, files=())  # the report folder, if it is still empty
        raise
    per_seed = {name: [r["metrics"] for r in rs] for name, rs in runs.items()}
    summary, diffs = summarise(per_seed)
    agreement = {}
    for name, rs in runs.items():
        if rs and specs[name]["runner"] == "train" and rs[0]["metrics"].get("model_kind", "snn") == "snn":
            agreement[name] = [engine_agreement(Path(r["run_dir"])) for r in rs]
    data = {
        "models": names,
        "seeds": list(range(seeds)),
        "sets": list(sets or []),
        "descriptions": {name: spec["description"] for name, spec in specs.items()},
        "kinds": {name: rs[0]["metrics"].get("model_kind", "snn") for name, rs in runs.items()},
        "notes": {name: rs[0]["metrics"].get("report_note") for name, rs in runs.items()},
        "per_seed": {name: [{"seed": s, "run_dir": r["run_dir"], "reused": r["reused"],
                             **{k: r["metrics"].get(k) for k in SUMMARY_KEYS},
                             "spikes_per_layer": r["metrics"].get("spikes_per_layer"),
                             "dataset": r["metrics"].get("dataset"), "epochs": r["metrics"].get("epochs")}
                            for s, r in enumerate(rs)] for name, rs in runs.items()},
        "summary": summary,
        "differences": diffs,
        "engine_agreement": agreement,
    }
    confusion = {name: [r["metrics"].get("confusion_matrix", {}).get("rows_true_cols_predicted") for r in rs]
                 for name, rs in runs.items()}
    write_reports(out_dir, data, confusion)
    atomic_write_json(out_dir / "metrics.json", data)
    return out_dir
