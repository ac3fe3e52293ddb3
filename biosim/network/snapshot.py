"""A running network's whole dynamic state, to continue it later exactly where it stopped.

:func:`take` copies everything a run changes: state variables, weights and synapse variables
(plasticity), STDP traces, refractory counters, spikes in flight, the clock, Poisson rates and what
the monitors have recorded. The random inputs have no state to save: they are counter-based
(:mod:`biosim.backends.philox`), a function of the seed, the input and the step, so the clock is
all a continuation needs to draw the same numbers. :func:`put` writes such a snapshot back into a
network built the same way (same populations, projections, inputs and seed; parameters changed
with ``set_params`` are part of how it is built, not of the snapshot). :func:`save` and
:func:`load` keep a snapshot in a safetensors file (never a pickle) with a SHA-256 digest of its
arrays, written atomically.

A network that continues from a snapshot gives the same spikes and weights as one that never
stopped (``tests/network/test_network_snapshot.py``).
"""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

import numpy as np

from biosim.errors import BiosimError
from biosim.files import atomic_binary

__all__ = ["Snapshot", "take", "put", "save", "load"]

FORMAT = "biosim-network-snapshot"
#: 3: a projection built with one weight keeps it once (``plan.pr_w``), ``plan.w`` only the weights
#: of projections with per-synapse weights, and no delayed-input accumulator (spikes in flight
#: through per-synapse delays are the ring's); version 2 files held a weight per synapse of every
#: projection and the accumulator; 2: no random-stream states (counter-based inputs); version 1
#: files held numpy Generator states
VERSION = 3

#: Fields of the plan that running (or ``Network.set_weights``/``normalize``) changes.
_PLAN_FIELDS = ("X", "ref_until", "hist", "hist_cnt", "w", "pr_w", "xpre", "xpost", "S", "s_last")


class Snapshot(NamedTuple):
    """Arrays by name and JSON-able facts (the clock, the network's layout)."""

    arrays: dict
    meta: dict


def _layout(net) -> dict:
    plan = net._sim.plan
    return {"dt_ms": net.dt_ms, "seed": net.seed, "dtype": np.dtype(net.dtype).name,
            "populations": [[p.name, p.spec.name, p.n] for p in net.populations],
            "inputs": [[g.name, g.kind, g.n] for g in net.inputs],
            "projections": [[p.src.name, p.tgt.name, p.n_syn] for p in net.projections],
            "shapes": {f: list(getattr(plan, f).shape) for f in _PLAN_FIELDS}}


def take(net) -> Snapshot:
    """The dynamic state of ``net`` now (after its first run)."""
    sim = net._sim
    if sim is None:
        raise BiosimError("snapshot: the network has not run yet; there is nothing to save (run(0) first)")
    arrays = {f"plan.{f}": np.array(getattr(sim.plan, f)) for f in _PLAN_FIELDS}
    arrays["record.spike_steps"] = sim.sp_step[:sim.sp_n].copy()
    arrays["record.spike_neurons"] = sim.sp_idx[:sim.sp_n].copy()
    parts = sim.rec_parts
    arrays["record.states"] = (np.concatenate(parts) if parts else np.zeros((0, len(sim.plan.mon_row)), sim.plan.X.dtype))
    for g in net.inputs:
        if g.kind == "poisson":
            arrays[f"rates.{g.index}"] = np.array(g.rates_hz, dtype=np.float64)
    meta = {
        "step": int(sim.step),
        "layout": _layout(net),
    }
    return Snapshot(arrays, meta)


def put(net, snap: Snapshot) -> None:
    """Write ``snap`` back into ``net``, which must be built as the network it was taken from."""
    if net._sim is None:
        raise BiosimError("restore: run the network once first (run(0) lays it out), then restore")
    sim = net._sim
    mine, theirs = _layout(net), snap.meta.get("layout")
    if mine != theirs:
        diff = next((k for k in mine if theirs is None or mine[k] != theirs.get(k)), "layout")
        raise BiosimError(f"restore: the snapshot is of another network (its {diff} differ); build the network "
                          "exactly as the one it was taken from")
    for f in _PLAN_FIELDS:
        getattr(sim.plan, f)[...] = snap.arrays[f"plan.{f}"]
    sim.step = int(snap.meta["step"])
    steps, neurons = snap.arrays["record.spike_steps"], snap.arrays["record.spike_neurons"]
    cap = max(len(sim.sp_step), 2 * len(steps))
    sim.sp_step = np.zeros(cap, np.int64)
    sim.sp_idx = np.zeros(cap, np.int32)
    sim.sp_step[:len(steps)], sim.sp_idx[:len(steps)] = steps, neurons
    sim.sp_n = len(steps)
    sim.rec_parts = [snap.arrays["record.states"].astype(sim.plan.X.dtype)]
    for g in net.inputs:
        if g.kind == "poisson":
            g.rates_hz = snap.arrays[f"rates.{g.index}"].copy()


def _digest(arrays: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(path, snap: Snapshot, extra: dict | None = None) -> None:
    """Write ``snap`` (and JSON-able ``extra`` facts, e.g. a runner's progress) to ``path``
    atomically, as safetensors."""
    from safetensors.numpy import save as st_save

    arrays = {k: np.ascontiguousarray(v) for k, v in snap.arrays.items()}
    blob = {"format": FORMAT, "version": VERSION, "meta": snap.meta, "extra": extra or {},
            "sha256": _digest(arrays)}
    data = st_save(arrays, metadata={"biosim": json.dumps(blob)})
    with atomic_binary(path) as fh:
        fh.write(data)


def load(path) -> tuple[Snapshot, dict]:
    """Read a snapshot written by :func:`save`; returns ``(snapshot, extra)``. A damaged or foreign
    file is refused with one line naming it."""
    from safetensors import safe_open
    from safetensors.numpy import load as st_load

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise BiosimError(f"cannot read snapshot {path}: {exc.strerror}") from None
    try:
        arrays = st_load(raw)
        with safe_open(str(path), framework="numpy") as fh:
            blob = json.loads((fh.metadata() or {}).get("biosim", "null"))
    except Exception as exc:  # safetensors raises its own error types; any failure means damage
        raise BiosimError(f"snapshot {path} is damaged or not a safetensors file ({exc}); delete it to start "
                          "over") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise BiosimError(f"{path} is not a biosim network snapshot")
    if blob.get("version") == 1:
        raise BiosimError(f"snapshot {path} has format version 1, whose random inputs were numpy streams; this "
                          f"biosim draws them from counters (version {VERSION}) and cannot continue it: start the "
                          "run over")
    if blob.get("version") == 2:
        raise BiosimError(f"snapshot {path} has format version 2, which kept a weight per synapse for every "
                          f"projection and delayed input in an accumulator; this biosim (version {VERSION}) keeps one "
                          "weight per projection built with a single weight and the spikes in flight instead, and "
                          "cannot continue it: start the run over")
    if blob.get("version") != VERSION:
        raise BiosimError(f"snapshot {path} has format version {blob.get('version')}; this biosim reads {VERSION}")
    if _digest(arrays) != blob.get("sha256"):
        raise BiosimError(f"snapshot {path} is damaged (its arrays do not match their digest); delete it to start over")
    return Snapshot(arrays, blob["meta"]), blob.get("extra", {})
