"""The NumPy reference backend: the same schedule as numba-cpu, written plainly.

Network plumbing (spike delivery, delays, plasticity) is vectorised NumPy written independently
of the compiled kernel, so the two cross-check each other; the neuron maths is the model's own
scalar function run as pure Python (``py_func``), so float64 results are identical to the
compiled backend. It is slow: meant for small networks and tests. :func:`kernel` binds
:func:`run_chunk` to a network's models; population ``p`` runs ``specs[pl.pop_model[p]]``.
"""

from __future__ import annotations

import functools

import numpy as np

from biosim.backends.numba_cpu import BUFFER_FULL, NOT_FINITE, OK
from biosim.synapses.stdp import A_MINUS, A_PLUS, DECAY_POST, DECAY_PRE, MULTIPLICATIVE, W_MAX, W_MIN

__all__ = ["kernel", "row_synapses", "run_chunk", "weights"]


def kernel(specs, syn_specs=()):
    """``run_chunk(pl, inp, out, step0, n_steps, sp_n, rec_n)`` for a network whose models are
    ``specs`` and whose synapse models are ``syn_specs`` (the contract of :mod:`biosim.backends`)."""
    return functools.partial(run_chunk, tuple(specs), syn_specs=tuple(syn_specs))


def _deliver(X, gate, ref_until, s, row, j, w):
    """``X[row, j] += w`` in order, skipping targets whose variable is gated while refractory."""
    live = ~((gate[row, j] != 0) & (s < ref_until[j]))
    np.add.at(X[row], j[live], w[live])


def row_synapses(pl, r, loc):
    """The synapse ids of the CSR rows of sources ``loc`` (local) of projection ``r``, in order."""
    starts, stops = pl.indptr[pl.pr_ptr[r] + loc], pl.indptr[pl.pr_ptr[r] + loc + 1]
    return np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)] or [np.zeros(0, np.int64)])


def _deliver_delayed(pl, s):
    """Input through per-synapse delays due at step ``s``: every synapse whose delay is the age
    of a spike still in the ring, summed per target in the order the spikes were sent (oldest
    step first, then projection, ring entry and row), then delivered."""
    L = pl.hist.shape[0]
    rows, cols, vals = [], [], []
    for age in range(L - 1, 0, -1):
        if s - age < 0:
            continue
        ss = (s - age) % L
        for r in np.flatnonzero(pl.pr_delay < 0):
            g0 = pl.grp_off[pl.pr_grp[r]]
            loc = pl.hist[ss, g0:g0 + pl.hist_cnt[ss, pl.pr_grp[r]]].astype(np.int64) - g0
            syn = row_synapses(pl, r, loc)
            syn = syn[pl.dly[syn] == age]
            rows.append(np.full(len(syn), pl.pr_row[r]))
            cols.append(pl.tgt[syn].astype(np.int64))
            vals.append(weights(pl, r, syn))
    if not rows:
        return
    due = np.zeros_like(pl.X)
    np.add.at(due, (np.concatenate(rows), np.concatenate(cols)), np.concatenate(vals))
    nz_rows, nz_cols = np.nonzero(due)
    for r in np.unique(nz_rows):
        j = nz_cols[nz_rows == r]
        _deliver(pl.X, pl.gate, pl.ref_until, s, r, j, due[r, j])


def weights(pl, r, syn):
    """The weights of synapses ``syn`` of projection ``r``: its one weight, or theirs in ``w``."""
    if pl.pr_woff[r] < 0:
        return np.full(len(syn), pl.pr_w[r], dtype=pl.pr_w.dtype)
    return pl.w[_w_index(pl, r, syn)]


def _w_index(pl, r, syn):
    """Where the weights of synapses ``syn`` of projection ``r`` (one with per-synapse weights) are in ``w``."""
    return syn - pl.indptr[pl.pr_ptr[r]] + pl.pr_woff[r]


def _stdp_update(pl, z, syn, xp, sign):
    a = pl.st_c[z, A_PLUS] if sign > 0 else pl.st_c[z, A_MINUS]
    lo, hi, mult = pl.st_c[z, W_MIN], pl.st_c[z, W_MAX], pl.st_c[z, MULTIPLICATIVE]
    k = _w_index(pl, pl.st_proj[z], syn)
    wv = pl.w[k]
    if mult:
        wv = wv + a * xp * (hi - wv) if sign > 0 else wv - a * xp * (wv - lo)
    else:
        wv = wv + sign * a * xp
    pl.w[k] = np.clip(wv, lo, hi)


def run_chunk(specs, pl, inp, out, step0, n_steps, sp_n, rec_n, syn_specs=()):
    """Advance ``pl`` (whose models are ``specs``) with the contract of :mod:`biosim.backends`.

    Floating-point warnings are off inside (as in compiled code): an overflow must end as the
    NOT_FINITE status that names the variable, not as a NumPy warning or FloatingPointError.
    """
    with np.errstate(all="ignore"):
        return _run_chunk(specs, syn_specs, pl, inp, out, step0, n_steps, sp_n, rec_n)


def _synapse_events(fn, pl, r, syn, pre, j, s):
    """Run a synapse model's ``on_pre``/``on_post`` (pure Python) for each synapse in order."""
    for k, i, jj in zip(syn, pre, j):
        fn.py_func(pl.S, int(k), pl.X, int(i), int(jj), pl.pr_c[r], pl.gate, bool(s < pl.ref_until[jj]),
                   int(s - pl.s_last[k]))
        pl.s_last[k] = s


def _run_chunk(specs, syn_specs, pl, inp, out, step0, n_steps, sp_n, rec_n):
    X = pl.X
    N = X.shape[1]
    L = pl.hist.shape[0]
    P = len(pl.pop_model)
    use_dly = len(pl.dly) > 0
    for k in range(n_steps):
        s = step0 + k
        if sp_n + N > len(out.sp_idx):
            return BUFFER_FULL, k, sp_n, rec_n, -1, -1, -1
        slot = s % L
        pl.hist_cnt[slot, :] = 0
        if len(pl.mon_row) and s % pl.mon_every == 0:
            out.rec[rec_n] = X[pl.mon_row, pl.mon_idx]
            rec_n += 1
        for z, r in enumerate(pl.st_proj):
            g = pl.pr_grp[r]
            n_src = pl.grp_off[g + 1] - pl.grp_off[g]
            tp = pl.st_tgt_grp[z]
            n_tgt = pl.pop_off[tp + 1] - pl.pop_off[tp]
            pl.xpre[pl.st_pre_off[z]:pl.st_pre_off[z] + n_src] *= pl.st_c[z, DECAY_PRE]
            pl.xpost[pl.st_post_off[z]:pl.st_post_off[z] + n_tgt] *= pl.st_c[z, DECAY_POST]
        spikes = []
        for p in range(P):
            spec = specs[int(pl.pop_model[p])]
            a, b = pl.pop_off[p], pl.pop_off[p + 1]
            c = pl.C[p]
            for i in range(a, b):
                spec.step.py_func(X, i, c, pl.i_ext[i], bool(s < pl.ref_until[i]))
            block = X[: pl.pop_nvar[p], a:b]
            bad = np.argwhere(~np.isfinite(block))
            if len(bad):
                return NOT_FINITE, k + 1, sp_n, rec_n, p, int(bad[0, 0]), int(a + bad[0, 1])
        for p in range(P):
            spec = specs[int(pl.pop_model[p])]
            a, b = pl.pop_off[p], pl.pop_off[p + 1]
            idx = np.array([i for i in range(a, b)
                            if s >= pl.ref_until[i] and spec.threshold.py_func(X, i, pl.C[p])], dtype=np.int64)
            pl.hist[slot, a:a + len(idx)] = idx
            pl.hist_cnt[slot, p] = len(idx)
            pl.ref_until[idx] = s + pl.pop_ref[p]
            rec = idx[pl.rec_spikes[idx] != 0]
            out.sp_step[sp_n:sp_n + len(rec)] = s
            out.sp_idx[sp_n:sp_n + len(rec)] = rec
            sp_n += len(rec)
            spikes.append(idx)
        src = inp.in_src[inp.in_ptr[k]:inp.in_ptr[k + 1]]
        grp = inp.in_grp[inp.in_ptr[k]:inp.in_ptr[k + 1]]
        for g in np.unique(grp):
            ids = src[grp == g]
            pl.hist[slot, pl.grp_off[g]:pl.grp_off[g] + len(ids)] = ids
            pl.hist_cnt[slot, g] = len(ids)
        for q in range(len(pl.pi_a)):
            a, b = pl.pi_a[q], pl.pi_b[q]
            n = inp.counts[k, pl.pi_col[q]:pl.pi_col[q] + b - a]
            j = np.arange(a, b)[n != 0]
            _deliver(X, pl.gate, pl.ref_until, s, pl.pi_row[q], j, n[n != 0] * pl.pi_w[q])
        if use_dly:
            _deliver_delayed(pl, s)
        for r in range(len(pl.pr_grp)):
            d = pl.pr_delay[r]
            if d >= 0 and s < d:
                continue
            ss = (s - d) % L if d >= 0 else slot
            g = pl.pr_grp[r]
            g0 = pl.grp_off[g]
            loc = pl.hist[ss, g0:g0 + pl.hist_cnt[ss, g]].astype(np.int64) - g0
            syn = row_synapses(pl, r, loc)
            j = pl.tgt[syn].astype(np.int64)
            if pl.pr_syn[r] >= 0:
                stops, starts = pl.indptr[pl.pr_ptr[r] + loc + 1], pl.indptr[pl.pr_ptr[r] + loc]
                pre = np.repeat(g0 + loc if g < P else np.full(len(loc), -1), stops - starts)
                _synapse_events(syn_specs[pl.pr_syn[r]].on_pre, pl, r, syn, pre, j, s)
                continue
            if d < 0:  # per-synapse delays: only those of 0 steps now (the others: _deliver_delayed)
                now = pl.dly[syn] == 0
                syn, j = syn[now], j[now]
            _deliver(X, pl.gate, pl.ref_until, s, pl.pr_row[r], j, weights(pl, r, syn))
            z = pl.pr_stdp[r]
            if z >= 0:
                tp = pl.st_tgt_grp[z]
                _stdp_update(pl, z, syn, pl.xpost[pl.st_post_off[z] + j - pl.pop_off[tp]], -1)
                pl.xpre[pl.st_pre_off[z] + loc] += 1
        for z, r in enumerate(pl.st_proj):
            tp = pl.st_tgt_grp[z]
            jl = spikes[tp] - pl.pop_off[tp]
            rb = pl.st_rptr_off[z]
            for jj in jl:
                kk = np.arange(pl.rptr[rb + jj], pl.rptr[rb + jj + 1])
                _stdp_update(pl, z, pl.rsyn[kk], pl.xpre[pl.st_pre_off[z] + pl.rsrc[kk]], +1)
            pl.xpost[pl.st_post_off[z] + jl] += 1
        for r in np.flatnonzero(pl.pr_rptr >= 0):
            tp, g, rb = pl.pr_tgt[r], pl.pr_grp[r], pl.pr_rptr[r]
            for jj in spikes[tp]:
                kk = np.arange(pl.rptr[rb + jj - pl.pop_off[tp]], pl.rptr[rb + jj - pl.pop_off[tp] + 1])
                pre = pl.grp_off[g] + pl.rsrc[kk] if g < P else np.full(len(kk), -1)
                _synapse_events(syn_specs[pl.pr_syn[r]].on_post, pl, r, pl.rsyn[kk], pre, np.full(len(kk), jj), s)
        for p in range(P):
            spec = specs[int(pl.pop_model[p])]
            for i in spikes[p]:
                spec.reset.py_func(X, int(i), pl.C[p])
    return OK, n_steps, sp_n, rec_n, -1, -1, -1
