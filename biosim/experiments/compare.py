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
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from biosim.errors import BiosimError
from biosim.experiments import get_runner
from biosim.experiments.registry import apply_overrides, load_model
from biosim.files import atomic_write_json
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
    return {"name": name, "runner": spec["runner"], "builder": spec.get("builder", name), "backend": BACKEND,
            "seed": seed, "params": params}


def find_run(resolved: dict, runs_root: Path = Path("runs")) -> Path | None:
    """A finished run folder under ``runs_root/NAME`` whose ``config.json`` equals ``resolved``."""
    folder = Path(runs_root) / resolved["name"]
    if not folder.is_dir():
        return None
    want = json.loads(json.dumps(resolved))
    for config in sorted(folder.glob("*/config.json"), reverse=True):
        try:
            if json.loads(config.read_text()) == want and (config.parent / "metrics.json").is_file():
                json.loads((config.parent / "metrics.json").read_text())
                return config.parent
        except (OSError, ValueError):
            continue
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


def _stats(values: list[float]) -> dict:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return {"mean": mean, "std": std, "min": min(vals), "max": max(vals), "n": len(vals)}


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
    found = find_run(resolved, runs_root)
    if found is not None:
        log(f"{name} seed {seed}: reusing {found}")
        return {"run_dir": str(found), "reused": True, "seconds": 0.0,
                "metrics": json.loads((found / "metrics.json").read_text())}
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    out_dir = Path(runs_root) / name / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "config.json", resolved)
    log(f"{name} seed {seed}: training in {out_dir}")
    t0 = time.perf_counter()
    metrics = get_runner(spec["runner"])(spec, params, seed, BACKEND, out_dir, progress=progress)
    atomic_write_json(out_dir / "metrics.json", metrics)
    return {"run_dir": str(out_dir), "reused": False, "seconds": time.perf_counter() - t0,
            "metrics": json.loads((out_dir / "metrics.json").read_text())}


def compare(names: list[str], seeds: int = 3, out: str | Path | None = None, sets: list[str] | None = None,
            progress: bool = True, runs_root: str | Path = "runs",
            log: Callable[[str], None] | None = None) -> Path:
    """Train or reuse every named run for seeds ``0 .. seeds-1`` and write the comparison report.

    ``progress`` shows the runners' progress bars; ``log`` (if given) receives one line per run
    saying whether it was reused or is being trained, and where. Returns the report folder.
    """
    log = log or _silent
    if len(names) < 2:
        raise BiosimError(f"compare needs at least two run names, got {len(names)}")
    if len(set(names)) != len(names):
        raise BiosimError(f"compare: a run name is given twice ({', '.join(names)})")
    if not 1 <= seeds <= 100:
        raise BiosimError(f"--seeds = {seeds} is out of range (must be 1..100)")
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
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for seed in range(seeds):
        for name in names:
            runs[name].append(_train_or_reuse(name, specs[name], params[name], seed, runs_root, progress, log))
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
