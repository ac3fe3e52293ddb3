"""Turn a :class:`~biosim.network.Network` into a :class:`~biosim.backends.plan.Plan`:
draw connectivity and initial values, check the memory it needs, lay out the flat arrays."""

from __future__ import annotations

import math
import os

import numpy as np

from biosim.backends.plan import Plan
from biosim.errors import BiosimError
from biosim.neurons.base import refractory_steps
from biosim.synapses.stdp import StdpConstants

__all__ = ["compile_network", "model_specs", "synapse_specs", "estimate_bytes", "available_bytes", "per_synapse_weights"]


def available_bytes() -> int:
    """Memory this machine can still give (MemAvailable, else physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _max_delay_steps(net) -> int:
    longest = 0.0
    for proj in net.projections:
        d = proj.delay_ms
        if callable(d):
            return -1  # unknown until drawn
        longest = max(longest, float(np.max(d)) if np.size(d) else 0.0)
    return int(longest / net.dt_ms + 0.5)


def per_synapse_delays(proj) -> bool:
    """Whether ``proj`` has a delay per synapse (``Plan.dly``): its delay is an array of more than
    one value or ``f(rng, n)``; otherwise one delay serves the whole projection."""
    return np.size(proj.delay_ms) > 1 or callable(proj.delay_ms)


def per_synapse_weights(proj) -> bool:
    """Whether ``proj`` keeps a weight per synapse (``Plan.w``): its weight is an array or
    ``f(rng, n)``, or it learns with STDP. A projection built with one number and no plasticity
    keeps that number once (``Plan.pr_w``); one with a synapse model keeps none (its weights are
    the model's variables)."""
    if proj.synapse is not None:
        return False
    return proj.stdp is not None or callable(proj.weight) or np.ndim(proj.weight) > 0


def estimate_bytes(net) -> int:
    """Bytes the network will need at the peak of its layout, estimated before any synapse is
    drawn: every projection's drawn synapses (int64 source and target, a weight per synapse where
    kept, int64 delays where per synapse) while the plan's arrays are made from them (an int32
    target, weights, 2-byte delays, STDP's by-target index, a synapse model's variables), plus the
    largest projection's drawing and layout temporaries, plus the neurons' state and spike ring."""
    item = np.dtype(net.dtype).itemsize
    n = net.n_neurons
    s = n + sum(g.n for g in net.inputs)
    syn_bytes = 0.0
    for proj in net.projections:
        hetero = per_synapse_delays(proj)
        weights = item if per_synapse_weights(proj) else 0
        drawn = 16 + weights + (8 if hetero else 0)
        kept = 4 + weights + (2 if hetero else 0) + (16 if proj.stdp else 0)
        kept += (8 + item * len(proj.syn_spec.var_names)) if proj.syn_spec is not None else 0
        syn_bytes += proj.rule.expected(proj.src.n, proj.tgt.n) * (drawn + kept)
    building = 24 * max((p.rule.expected(p.src.n, p.tgt.n) for p in net.projections), default=0)
    slots = max(_max_delay_steps(net), 0) + 1
    state = 8 * item * n + slots * 4 * s
    return int(syn_bytes + building + state)


def _per_element(value, n: int, not_numbers: str, wrong_shape: str) -> np.ndarray:
    """``value`` (a number or ``n`` of them) as a read-only float64 array of shape ``(n,)``; the two
    messages are the errors for values that are not numbers (a string, or a function making it, so
    that a large array is only formatted when it is wrong) and for a wrong count ("{shape}" is
    filled in)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BiosimError(not_numbers() if callable(not_numbers) else not_numbers) from None
    if arr.size not in (1, n) or arr.ndim > 1:
        raise BiosimError(wrong_shape.format(shape=arr.shape))
    return np.broadcast_to(arr.reshape(-1), (n,))


def _initial(value, rng, n, what, dtype=np.float64):
    if callable(value):
        value = value(rng, n)
    arr = _per_element(value, n, lambda: f"{what} = {value!r} must be a number (in the variable's unit), an array of "
                       f"them or f(rng, n)", f"{what} needs one value or {n} values, got an array of shape {{shape}}")
    if not np.all(np.isfinite(arr)):
        raise BiosimError(f"{what} has non-finite values")
    _check_fits(arr, dtype, what)
    return arr


def _model_constants(spec, params, dt: float, where: str) -> np.ndarray:
    """``spec.constants(params, dt)``, with parameters that make them impossible (a time constant of
    0, an overflow) reported as one line."""
    try:
        c = np.asarray(spec.constants(params, dt), dtype=np.float64)
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise BiosimError(f"{where}: the parameters of model '{spec.name}' cannot be used at dt = {dt:g} ms "
                          f"({type(exc).__name__}: {exc}; a time constant of 0?)") from None
    if not np.all(np.isfinite(c)):
        raise BiosimError(f"{where}: the parameters of model '{spec.name}' give infinite or NaN factors at "
                          f"dt = {dt:g} ms (a time constant of 0?)")
    return c


def _refractory_steps(spec, params, dt: float, where: str) -> int:
    t_ref = float(spec.t_ref_ms(params))
    if not (math.isfinite(t_ref) and 0 <= t_ref <= 1e12):
        raise BiosimError(f"{where}: refractory period {t_ref!r} ms of model '{spec.name}' must be in [0, 1e12] ms")
    return refractory_steps(t_ref, dt)


def _check_fits(arr, dtype, what):
    """A value beyond the range of the state dtype would become inf (with a NumPy warning)."""
    big = np.finfo(dtype).max
    if np.any(np.abs(arr) > big):
        raise BiosimError(f"{what} has values beyond the range of {np.dtype(dtype).name} (|x| <= {big:g})")


#: The longest per-synapse delay in steps: ``Plan.dly`` stores them in 2 bytes (uint16).
MAX_SYNAPSE_DELAY_STEPS = np.iinfo(np.uint16).max


def _draw_synapses(net, proj):
    src, tgt = proj.src, proj.tgt
    i, j = proj.rule.build(src.n, tgt.n, src is tgt, net.rng)
    n_syn = len(i)
    per_synapse = per_synapse_weights(proj)
    w = _initial(proj.weight, net.rng, n_syn if per_synapse else 1, "weight", net.dtype)
    hetero = per_synapse_delays(proj)
    d = _initial(proj.delay_ms, net.rng, n_syn if hetero else 1, "delay_ms")
    if np.any(d < 0):
        raise BiosimError("delay_ms must be >= 0")
    steps = (d / net.dt_ms + 0.5).astype(np.int64)
    if not hetero:  # one delay: per synapse only as a read-only view
        steps = np.broadcast_to(steps, (n_syn,))
    if n_syn and hetero:
        # per-synapse delays: each row by delay (stably), so that the spike in flight delivers the
        # synapses due at a step as one run of its row (biosim.backends.kernel_body)
        order = np.lexsort((steps, i))
    elif n_syn and np.any(np.diff(i) < 0):
        order = np.argsort(i, kind="stable")
    else:
        order = None
    if order is not None:
        i, j = i[order], j[order]
        steps = steps[order] if hetero else steps
        w = w[order] if per_synapse else w
    w = np.array(w, dtype=net.dtype)
    if not per_synapse:  # one weight for all (Plan.pr_w): per synapse only as a read-only view
        w = np.broadcast_to(w[:1], (n_syn,))
    proj.i, proj.j, proj.w, proj.delay_steps = i, j, w, steps


def model_specs(net) -> tuple:
    """The distinct neuron models (:class:`~biosim.neurons.base.ModelSpec`) of ``net``, in the order
    of their first population. ``Plan.pop_model[p]`` is the index of population ``p``'s model in it,
    and backends build their kernel for exactly these models."""
    specs: list = []
    for pop in net.populations:
        if not any(s is pop.spec for s in specs):
            specs.append(pop.spec)
    return tuple(specs)


def compile_network(net) -> Plan:
    """Draw the network's random structure and lay it out as a Plan (checks memory first)."""
    need, have = estimate_bytes(net), available_bytes()
    if need > have:
        raise BiosimError(f"network too big for this machine: needs about {need / 2**30:.1f} GiB, "
                          f"{have / 2**30:.1f} GiB available")
    dt, dtype = net.dt_ms, net.dtype
    pops = net.populations
    specs = model_specs(net)
    V = max(len(p.spec.var_names) for p in pops)
    pop_off = np.cumsum([0] + [p.n for p in pops]).astype(np.int64)
    N = int(pop_off[-1])
    X = np.zeros((V, N), dtype=dtype)
    consts = [_model_constants(p.spec, p.params, dt, f"population '{p.name}'") for p in pops]
    C = np.zeros((len(pops), max(len(c) for c in consts)), dtype=dtype)
    gate = np.zeros((V, N), dtype=np.int8)
    for p, c in zip(pops, consts):
        C[p.index, :len(c)] = c
        a, b = pop_off[p.index], pop_off[p.index + 1]
        values = {**p.spec.initial(p.params), **p.init}
        for r, var in enumerate(p.spec.var_names):
            X[r, a:b] = _initial(values[var], net.rng, p.n, f"initial value of {p.name}.{var}", dtype)
            gate[r, a:b] = var in p.spec.frozen_vars
    groups = list(pops) + list(net.inputs)
    for k, g in enumerate(net.inputs):
        g.index = len(pops) + k
    grp_off = np.cumsum([0] + [g.n for g in groups]).astype(np.int64)

    for proj in net.projections:
        _draw_synapses(net, proj)
    hetero = [per_synapse_delays(p) for p in net.projections]
    any_hetero = any(hetero)
    if any(h and p.stdp is not None for h, p in zip(hetero, net.projections)):
        raise BiosimError("STDP needs one delay for the whole projection (per-synapse delays are not supported with STDP)")
    for proj, h in zip(net.projections, hetero):
        if h and len(proj.delay_steps) and proj.delay_steps.max() > MAX_SYNAPSE_DELAY_STEPS:
            raise BiosimError(
                f"per-synapse delays of {proj.src.name} -> {proj.tgt.name} reach {proj.delay_steps.max() * dt:g} ms; "
                f"at dt = {dt:g} ms they may be at most {MAX_SYNAPSE_DELAY_STEPS * dt:g} ms "
                f"({MAX_SYNAPSE_DELAY_STEPS} steps, 2 bytes per synapse)")
    max_d = max([int(p.delay_steps.max()) for p in net.projections if len(p.delay_steps)] + [0])
    L = max_d + 1

    if any(h and p.synapse is not None for h, p in zip(hetero, net.projections)):
        raise BiosimError("a synapse model needs one delay for the whole projection (per-synapse delays are not supported)")
    syn_specs = synapse_specs(net)
    syn_proj = [p for p in net.projections if p.synapse is not None]
    VS = max([len(p.syn_spec.var_names) for p in syn_proj] + [1])
    syn_c = [_model_constants(p.syn_spec, p.synapse, dt, f"the synapses {p.src.name} -> {p.tgt.name}")
             if p.synapse is not None else np.zeros(1) for p in net.projections]
    pr_c = np.zeros((len(net.projections), max([len(c) for c in syn_c] + [1])), dtype=np.float64)
    for r, c in enumerate(syn_c):
        pr_c[r, :len(c)] = c
    n_total = sum(len(p.i) for p in net.projections)
    S = np.zeros((VS, n_total) if syn_proj else (1, 1), dtype=dtype)

    indptr, tgt, w, dly = [], [], [], []
    pr = {k: [] for k in ("grp", "row", "delay", "ptr", "stdp", "syn", "rptr", "w", "woff")}
    st = {k: [] for k in ("c", "proj", "pre_off", "post_off", "tgt_grp", "rptr_off")}
    rptr, rsyn, rsrc = [], [], []
    n_syn = n_w = ptr_len = pre_len = post_len = rptr_len = n_rev = 0
    for r, (proj, is_hetero) in enumerate(zip(net.projections, hetero)):
        n_src = proj.src.n
        counts = np.bincount(proj.i, minlength=n_src)
        indptr.append(n_syn + np.concatenate([[0], np.cumsum(counts)]))
        tgt.append((proj.j + pop_off[proj.tgt.index]).astype(np.int32))
        if per_synapse_weights(proj):
            pr["woff"].append(n_w)
            pr["w"].append(0.0)
            w.append(proj.w)
            n_w += len(proj.w)
        else:
            pr["woff"].append(-1)
            pr["w"].append(0.0 if proj.synapse is not None else float(_initial(proj.weight, None, 1, "weight", dtype)[0]))
        pr["grp"].append(proj.src.index)
        pr["row"].append(proj.tgt.spec.var_index(proj.var) if proj.synapse is None else 0)
        pr["syn"].append(next((q for q, sp_ in enumerate(syn_specs) if sp_ is proj.syn_spec), -1))
        pr["rptr"].append(-1)
        if proj.synapse is not None:
            for k, var in enumerate(proj.syn_spec.var_names):
                value = proj.syn_init.get(var, 0.0)
                S[k, n_syn:n_syn + len(proj.i)] = _initial(value, net.rng, len(proj.i), f"initial value of synapse variable {var}", dtype)
        if proj.synapse is not None and proj.syn_spec.has_post:
            pr["rptr"][-1] = rptr_len
            n_rev = _by_target(proj, n_syn, n_rev, rptr, rsyn, rsrc)
            rptr_len += proj.tgt.n + 1
        pr["delay"].append(-1 if is_hetero else (int(proj.delay_steps[0]) if len(proj.delay_steps) else 0))
        pr["ptr"].append(ptr_len)
        pr["stdp"].append(len(st["proj"]) if proj.stdp else -1)
        if any_hetero:
            dly.append(proj.delay_steps.astype(np.uint16) if is_hetero else np.zeros(len(proj.i), np.uint16))
        if proj.stdp:
            st["rptr_off"].append(rptr_len)
            n_rev = _by_target(proj, n_syn, n_rev, rptr, rsyn, rsrc)
            st["c"].append(proj.stdp.constants(dt))
            st["proj"].append(r)
            st["pre_off"].append(pre_len)
            st["post_off"].append(post_len)
            st["tgt_grp"].append(proj.tgt.index)
            pre_len += n_src
            post_len += proj.tgt.n
            rptr_len += proj.tgt.n + 1
        n_syn += len(proj.i)
        ptr_len += n_src + 1
        proj.i = proj.j = proj.delay_steps = None  # laid out: read from the plan from now on (keep_in_plan)
    i64 = lambda xs: np.asarray(xs, dtype=np.int64)  # noqa: E731
    cat = lambda xs, dt_: np.concatenate(xs).astype(dt_, copy=False) if xs else np.zeros(0, dt_)  # noqa: E731

    pi = net.poisson_inputs
    for q in pi:
        _check_fits(np.array([q.weight]), dtype, "poisson_input weight")
    for c in net.currents:
        _check_fits(c.amplitude, dtype, "current amplitude")
    pi_col = np.cumsum([0] + [q.tgt.n for q in pi]).astype(np.int64)
    rec_spikes = np.zeros(N, dtype=np.int8)
    for p in pops:
        rec_spikes[pop_off[p.index]:pop_off[p.index + 1]] = p.record_spikes
    probes = net.probes
    mon_row = cat([np.full(len(pr_.indices), pr_.pop.spec.var_index(pr_.var)) for pr_ in probes], np.int64)
    mon_idx = cat([pr_.indices + pop_off[pr_.pop.index] for pr_ in probes], np.int64)
    plan = Plan(
        X=X, C=C, pop_off=pop_off, pop_model=i64([next(k for k, s in enumerate(specs) if s is p.spec) for p in pops]),
        pop_nvar=i64([len(p.spec.var_names) for p in pops]),
        pop_ref=i64([_refractory_steps(p.spec, p.params, dt, f"population '{p.name}'") for p in pops]),
        ref_until=np.full(N, -1, dtype=np.int64), i_ext=np.zeros(N, dtype=dtype), gate=gate,
        grp_off=grp_off, hist=np.zeros((L, int(grp_off[-1])), dtype=np.int32),
        hist_cnt=np.zeros((L, len(groups)), dtype=np.int64),
        pr_grp=i64(pr["grp"]), pr_row=i64(pr["row"]), pr_delay=i64(pr["delay"]), pr_ptr=i64(pr["ptr"]),
        pr_stdp=i64(pr["stdp"]), indptr=cat(indptr, np.int64), tgt=cat(tgt, np.int32), w=cat(w, dtype),
        dly=cat(dly, np.uint16) if any_hetero else np.zeros(0, np.uint16),
        pi_a=i64([pop_off[q.tgt.index] for q in pi]), pi_b=i64([pop_off[q.tgt.index + 1] for q in pi]),
        pi_row=i64([q.tgt.spec.var_index(q.var) for q in pi]), pi_w=np.array([q.weight for q in pi], dtype=dtype),
        pi_col=pi_col[:-1].copy(),
        st_c=np.array(st["c"], dtype=np.float64).reshape(-1, len(StdpConstants._fields)), st_proj=i64(st["proj"]),
        st_pre_off=i64(st["pre_off"]), st_post_off=i64(st["post_off"]), st_tgt_grp=i64(st["tgt_grp"]),
        st_rptr_off=i64(st["rptr_off"]), xpre=np.zeros(pre_len, dtype=dtype), xpost=np.zeros(post_len, dtype=dtype),
        rptr=cat(rptr, np.int64), rsyn=cat(rsyn, np.int64), rsrc=cat(rsrc, np.int64),
        rec_spikes=rec_spikes, mon_row=mon_row, mon_idx=mon_idx,
        mon_every=probes[0].every if probes else 1,
        pr_syn=i64(pr["syn"]), pr_tgt=i64([p.tgt.index for p in net.projections]), pr_c=pr_c,
        pr_rptr=i64(pr["rptr"]), S=S, s_last=np.zeros(n_total if syn_proj else 1, dtype=np.int64),
        pr_w=np.array(pr["w"], dtype=dtype), pr_woff=i64(pr["woff"]),
    )
    for r, proj in enumerate(net.projections):  # no drawn i, j beside the plan's CSR
        base = int(plan.pr_ptr[r])
        first, last = int(plan.indptr[base]), int(plan.indptr[base + proj.src.n])
        proj.keep_in_plan(plan.indptr[base:base + proj.src.n + 1], plan.tgt[first:last], int(pop_off[proj.tgt.index]))
    return plan


def _by_target(proj, n_syn: int, n_rev: int, rptr: list, rsyn: list, rsrc: list) -> int:
    """Append the projection's synapses ordered by target (a CSR block: offsets into ``rsyn``, the
    synapse ids, and their local sources); return the new number of entries."""
    order = np.argsort(proj.j, kind="stable")
    rc = np.bincount(proj.j, minlength=proj.tgt.n)
    rptr.append(n_rev + np.concatenate([[0], np.cumsum(rc)]))
    rsyn.append(n_syn + order)
    rsrc.append(proj.i[order])
    return n_rev + len(order)


def synapse_specs(net) -> tuple:
    """The distinct synapse models (:class:`~biosim.synapses.spec.SynapseSpec`) of ``net``'s
    projections, in order of first use; ``Plan.pr_syn[r]`` indexes it."""
    specs: list = []
    for proj in net.projections:
        if proj.syn_spec is not None and not any(s is proj.syn_spec for s in specs):
            specs.append(proj.syn_spec)
    return tuple(specs)
