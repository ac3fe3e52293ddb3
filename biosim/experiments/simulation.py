"""The ``simulation`` runner: build a reference network, simulate it, measure it, plot it."""

from __future__ import annotations

import importlib
import inspect
import logging
import time
from pathlib import Path

from biosim.errors import BiosimError, unknown
from biosim.experiments.config import get
from biosim.experiments.model_table import model_from_table
from biosim.files import atomic_savefig
from biosim.network.compile import available_bytes
from biosim.network.stats import cv_isi, mean_rate_hz
from biosim.reports.figures import raster_figure, rate_figure

_log = logging.getLogger(__name__)  # notes for the user; the CLI shows them on stderr

__all__ = ["BUILDERS", "build", "run_simulation", "spec_model", "run_checked"]

#: memory per recorded spike: the engine's buffer (int64 step + int32 index) grown by doubling, and
#: the per-population arrays of the result (float64 time + int64 index)
SPIKE_BYTES = 2 * 12 + 16

#: the first part of a long run, simulated to measure the spike rate before the rest is run
PROBE_MS = 100.0

#: builder name -> "module:function"; imported only when used.
BUILDERS = {
    "cuba": "biosim.experiments.networks:build_cuba",
    "brunel": "biosim.experiments.networks:build_brunel",
    "cobahh": "biosim.experiments.cobahh:build_cobahh",
    "population": "biosim.experiments.networks:build_population",
}


def build(builder: str, params: dict, seed: int, model=None):
    """Build the network named ``builder`` from ``params``; ``model`` (a
    :class:`~biosim.equations.Model`, from the run's ``[model]`` table) replaces its neuron model."""
    if builder not in BUILDERS:
        raise unknown("network builder", builder, BUILDERS)
    fn = _function(builder)
    if model is None:
        return fn(params, seed)
    if "model" not in inspect.signature(fn).parameters:
        takes = sorted(b for b in BUILDERS if "model" in inspect.signature(_function(b)).parameters)
        raise BiosimError(f"builder '{builder}' has no use for a [model] table (builders that take one: "
                          f"{', '.join(takes)})")
    return fn(params, seed, model=model)


def _function(builder: str):
    module, func = BUILDERS[builder].split(":")
    return getattr(importlib.import_module(module), func)


def spec_model(spec: dict):
    """The neuron model of the run's ``[model]`` table, or None when it has none."""
    if "model" not in spec:
        return None

    return model_from_table(spec["model"], f"models/{spec['name']}.toml")


def run_simulation(spec: dict, params: dict, seed: int, backend: str, out_dir: Path, progress: bool = True,
                   threads: int = 1) -> dict:
    """Run the named simulation (each step on ``threads`` of Numba's threads, numba-cpu; the same
    spikes whatever the number); write its plots into ``out_dir``; return its metrics."""
    t0 = time.perf_counter()
    bio_time_s = get(params, "bio_time_s", positive=True)
    model = spec_model(spec)
    if model is not None and progress:
        _log.info(f"{spec['name']}: {model.describe()}")
    net = build(spec.get("builder", spec["name"]), params, seed, model=model)
    result = run_checked(net, bio_time_s * 1e3, backend, progress, threads=threads)
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
        "threads": threads,
        "seed": seed,
        **({"model": model.describe(), "model_methods": dict(model.methods)} if model is not None else {}),
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


def run_checked(net, duration_ms: float, backend: str, progress: bool = True, threads: int = 1):
    """``net.run(duration_ms)`` on ``threads`` threads, refused with an estimate when what it records
    would not fit in memory.

    Where even a network firing at every step could not fill a quarter of the memory available, it is
    one ``net.run``. Otherwise the first :data:`PROBE_MS` are simulated alone, the spike rate there
    gives the number of spikes of the whole run, and a run whose spikes (and state traces) would not
    fit is refused before the rest is simulated. The random inputs are counter-based, so the run is
    the same either way."""
    dt = net.dt_ms
    total = int(round(duration_ms / dt))
    n = sum(p.n for p in net.populations)
    have = available_bytes()
    probe = min(total, max(1, int(round(PROBE_MS / dt))))
    if n * total * SPIKE_BYTES <= have / 4 or probe >= total:
        return net.run(duration_ms, backend=backend, progress=progress, threads=threads)
    net.run(probe * dt, backend=backend, progress=False, threads=threads)
    sim = net._sim
    spikes = sim.sp_n * total / probe
    plan = sim.plan
    traces = (total // max(int(plan.mon_every), 1)) * len(plan.mon_row) * plan.X.dtype.itemsize
    need = spikes * SPIKE_BYTES + traces
    if need > have:
        rate = sim.sp_n / (n * probe * dt * 1e-3)
        what = f"{spikes:.3g} spikes" + (f" and {traces / 2**30:.1f} GiB of state traces" if traces else "")
        raise BiosimError(f"the recorded spikes would not fit in memory: at the rate of the first {probe * dt:g} ms "
                          f"({rate:.3g} Hz per neuron), {duration_ms * 1e-3:g} s of {n} neurons make about {what}, "
                          f"about {need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB available; shorten bio_time_s")
    return net.run((total - probe) * dt, progress=progress)


def _pooled_cv(result) -> float:
    import numpy as np

    offset, ts, ids = 0, [], []
    for name, (t, i) in result.spikes.items():
        ts.append(t)
        ids.append(i + offset)
        offset += result.sizes[name]
    return cv_isi(np.concatenate(ts), np.concatenate(ids))
