"""The ``simulation`` runner: build a reference network, simulate it, measure it, plot it."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from biosim.errors import unknown
from biosim.experiments.config import get
from biosim.network.stats import cv_isi, mean_rate_hz
from biosim.reports.figures import raster_figure, rate_figure
from biosim.reports.output import atomic_savefig

__all__ = ["BUILDERS", "build", "run_simulation"]

#: builder name -> "module:function"; imported only when used.
BUILDERS = {
    "cuba": "biosim.experiments.networks:build_cuba",
    "brunel": "biosim.experiments.networks:build_brunel",
    "cobahh": "biosim.experiments.cobahh:build_cobahh",
}


def build(builder: str, params: dict, seed: int):
    """Build the network named ``builder`` from ``params``."""
    if builder not in BUILDERS:
        raise unknown("network builder", builder, BUILDERS)
    module, func = BUILDERS[builder].split(":")
    return getattr(importlib.import_module(module), func)(params, seed)


def run_simulation(spec: dict, params: dict, seed: int, backend: str, out_dir: Path, progress: bool = True) -> dict:
    """Run the named simulation; write its plots into ``out_dir``; return its metrics."""
    t0 = time.perf_counter()
    bio_time_s = get(params, "bio_time_s", positive=True)
    net = build(spec.get("builder", spec["name"]), params, seed)
    result = net.run(bio_time_s * 1e3, backend=backend, progress=progress)
    n_total = sum(result.sizes.values())
    all_t = [t for t, _ in result.spikes.values()]
    n_spikes = int(sum(len(t) for t in all_t))
    metrics = {
        "n_neurons": n_total,
        "n_synapses": int(len(net._sim.plan.tgt)),
        "n_spikes": n_spikes,
        "mean_rate_hz": mean_rate_hz(n_spikes, n_total, result.duration_ms),
        "cv_isi": _pooled_cv(result),
        "bio_time_s": result.duration_ms * 1e-3,
        "dt_ms": result.dt_ms,
        "sim_wall_s": result.loop_s,
        "setup_wall_s": result.setup_s,
        "backend": backend,
        "seed": seed,
        "populations": {
            name: {"n": result.sizes[name], "n_spikes": int(len(t)),
                   "mean_rate_hz": mean_rate_hz(len(t), result.sizes[name], result.duration_ms),
                   "cv_isi": cv_isi(t, i)}
            for name, (t, i) in result.spikes.items()
        },
    }
    title = f"{spec['name']} ({backend}, seed {seed})"
    atomic_savefig(raster_figure(result, title), out_dir / "raster.png")
    atomic_savefig(rate_figure(result, title), out_dir / "rate.png")
    metrics["total_wall_s"] = time.perf_counter() - t0
    return metrics


def _pooled_cv(result) -> float:
    import numpy as np

    offset, ts, ids = 0, [], []
    for name, (t, i) in result.spikes.items():
        ts.append(t)
        ids.append(i + offset)
        offset += result.sizes[name]
    return cv_isi(np.concatenate(ts), np.concatenate(ids))
