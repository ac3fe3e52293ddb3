"""Brian2 reference networks for the comparison tests (tests/network/test_brian2_compare.py).

Each builder runs a network in Brian2 (float64, the code-generation target given) and returns
plain NumPy data: spike trains as integer steps and indices, plus whatever the biosim side needs
to rebuild the same network exactly (synapse indices, initial values).
Brian2 is imported lazily so that importing this module costs nothing when Brian2 is missing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["brian2_cuba", "brian2_feedforward", "spike_steps", "first_difference"]


def _setup(target: str, seed: int | None):
    import brian2 as b2

    b2.start_scope()
    b2.prefs.codegen.target = target
    b2.prefs.core.default_float_dtype = np.float64
    b2.defaultclock.dt = 0.1 * b2.ms
    if seed is not None:
        b2.seed(seed)
    return b2


def spike_steps(times_s, indices, dt_s):
    """Brian2 spike times (s) -> (steps, indices) as int64 arrays, sorted by (step, index)."""
    steps = np.round(np.asarray(times_s) / dt_s).astype(np.int64)
    idx = np.asarray(indices).astype(np.int64)
    order = np.lexsort((idx, steps))
    return steps[order], idx[order]


def first_difference(a, b):
    """Step of the first difference between two (steps, indices) spike trains, or None if equal."""
    sa = set(zip(*(x.tolist() for x in a)))
    sb = set(zip(*(x.tolist() for x in b)))
    diff = sa ^ sb
    return min(s for s, _ in diff) if diff else None


def brian2_cuba(duration_ms: float, seed: int = 1, target: str = "numpy", n: int = 4000,
                n_exc: int | None = None, p: float = 0.02, record_v: int = 0):
    """Brian2's CUBA example (DESIGN.md section 5), ``n`` neurons of which 80 % excitatory.

    Returns a dict: ``steps``, ``idx`` (spike train), ``ce_i``, ``ce_j``, ``ci_i``, ``ci_j``
    (synapse indices within the single group of ``n``), ``v0_mv`` (initial v), ``n_exc`` and,
    when ``record_v`` > 0, ``v_mv`` of neurons ``0..record_v-1`` (shape (steps, record_v)).
    """
    b2 = _setup(target, seed)
    ms, mV = b2.ms, b2.mV
    n_exc = int(0.8 * n) if n_exc is None else n_exc
    ns = dict(taum=20 * ms, taue=5 * ms, taui=10 * ms, Vt=-50 * mV, Vr=-60 * mV, El=-49 * mV,
              we=(60 * 0.27 / 10) * mV, wi=(-20 * 4.5 / 10) * mV, n_exc=n_exc)
    eqs = """dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
             dge/dt = -ge/taue : volt
             dgi/dt = -gi/taui : volt"""
    P = b2.NeuronGroup(n, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms, method="exact",
                       namespace=ns)
    P.v = "Vr + rand() * (Vt - Vr)"
    P.ge = 0 * mV
    P.gi = 0 * mV
    Ce = b2.Synapses(P, P, on_pre="ge += we", namespace=ns)
    Ci = b2.Synapses(P, P, on_pre="gi += wi", namespace=ns)
    Ce.connect("i<n_exc", p=p, namespace=ns)
    Ci.connect("i>=n_exc", p=p, namespace=ns)
    v0 = np.asarray(P.v[:] / mV, dtype=np.float64).copy()
    mon = b2.SpikeMonitor(P)
    objs = [P, Ce, Ci, mon]
    if record_v:
        vmon = b2.StateMonitor(P, "v", record=np.arange(record_v))
        objs.append(vmon)
    net = b2.Network(*objs)
    net.run(duration_ms * ms, namespace={})  # no implicit look-up of the caller's variables
    steps, idx = spike_steps(mon.t[:] / b2.second, mon.i[:], float(b2.defaultclock.dt / b2.second))
    out = dict(steps=steps, idx=idx, ce_i=np.asarray(Ce.i[:]).copy(), ce_j=np.asarray(Ce.j[:]).copy(),
               ci_i=np.asarray(Ci.i[:]).copy(), ci_j=np.asarray(Ci.j[:]).copy(), v0_mv=v0, n_exc=n_exc)
    if record_v:
        out["v_mv"] = np.asarray(vmon.v[:] / mV).T.copy()
    return out


def brian2_feedforward(n_in: int, gen_idx, gen_times_ms, sizes: dict, projections: list,
                       duration_ms: float, v0_mv: dict, target: str = "numpy"):
    """A spike generator ``"in"`` driving CUBA LIF layers (biosim's default :class:`~biosim.LIF`).

    ``sizes`` maps layer name -> size; ``v0_mv`` layer name -> initial v (mV, array);
    ``projections`` is a list of ``(src, tgt, var, i, j, w_mv, delay_ms)`` with ``src`` ``"in"``
    or a layer name, ``var`` ``"ge"`` or ``"gi"`` and one delay per projection or one per synapse.
    Brian2 runs Synapses objects of one slot in name order: they are named ``syn00``, ``syn01``...
    in list order, which is biosim's order too. Returns layer name -> (steps, idx).
    """
    b2 = _setup(target, None)
    ms, mV = b2.ms, b2.mV
    ns = dict(taum=20 * ms, taue=5 * ms, taui=10 * ms, Vt=-50 * mV, Vr=-60 * mV, El=-49 * mV)
    eqs = """dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
             dge/dt = -ge/taue : volt
             dgi/dt = -gi/taui : volt"""
    groups = {"in": b2.SpikeGeneratorGroup(n_in, np.asarray(gen_idx), np.asarray(gen_times_ms) * ms)}
    for name, n in sizes.items():
        groups[name] = b2.NeuronGroup(n, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms,
                                      method="exact", namespace=ns, name=name)
        groups[name].v = np.asarray(v0_mv[name]) * mV
    objs = list(groups.values())
    for k, (src, tgt, var, ci, cj, w, d) in enumerate(projections):
        one = np.ndim(d) == 0
        S = b2.Synapses(groups[src], groups[tgt], "w : volt", on_pre=f"{var}_post += w",
                        name=f"syn{k:02d}", **({"delay": d * ms} if one else {}))
        S.connect(i=np.asarray(ci), j=np.asarray(cj))
        S.w = np.asarray(w) * mV
        if not one:
            S.delay = np.asarray(d) * ms
        objs.append(S)
    mons = {name: b2.SpikeMonitor(groups[name]) for name in sizes}
    net = b2.Network(*objs, *mons.values())
    net.run(duration_ms * ms, namespace={})  # no implicit look-up of the caller's variables
    dt_s = float(b2.defaultclock.dt / b2.second)
    return {name: spike_steps(m.t[:] / b2.second, m.i[:], dt_s) for name, m in mons.items()}
