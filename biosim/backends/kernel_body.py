"""Template of the numba-cpu kernel: the source every generated kernel module is made of.

:func:`biosim.backends.numba_cpu.kernel` reads this file's text (from the line after the
``source begins`` marker), replaces the block between the ``dispatch`` markers with
``pop_step``, ``pop_threshold`` and ``pop_reset`` generated for a network's models, and imports
the result as its own module (:func:`biosim._generated.load_source`). The placeholders here only
keep this file importable and lint-clean: never call this module's functions directly.

Each step of :func:`run_chunk` follows Brian2's schedule (DESIGN.md section 4): record monitors
(state at ``t``), decay plasticity traces, update every population from ``t`` to ``t + dt``,
threshold (spike stamped at ``t``), deliver Poisson input, delayed input and spikes due now through
every projection (in creation order; a synapse model's ``on_pre`` statements for its synapses;
pre- then post-synaptic STDP, then synapse models' ``on_post``), then reset.

Population dispatch hands a model a tuple of 1-D row views of one population (``X[var][i]`` with
a local ``i``): unlike 2-D indexing, this lets LLVM vectorise the neuron loops.

The columns of ``Plan.st_c`` are read by the names of :mod:`biosim.synapses.stdp`, which Numba
compiles in as constants. The generated module is cached under the hash of its text, and that text
does not include ``stdp.py``: so this file imports every one of those names, in their index order
(``tests/neurons/test_named_constants.py`` checks it), and a change of the layout changes this text too.
"""
# biosim-kernel: source begins

import math

from numba import njit

from biosim.synapses.stdp import DECAY_PRE, DECAY_POST, A_PLUS, A_MINUS, W_MIN, W_MAX, MULTIPLICATIVE  # noqa: I001

#: Status codes of run_chunk.
OK, BUFFER_FULL, NOT_FINITE = 0, 1, 2


@njit(inline="always")
def _step_all(step, R, c, e, r, s):
    for i in range(e.shape[0]):
        step(R, i, c, e[i], s < r[i])


@njit(inline="always")
def _threshold_all(threshold, R, c, r, s, a, out):
    cnt = 0
    for i in range(r.shape[0]):
        if threshold(R, i, c) and s >= r[i]:
            out[cnt] = a + i
            cnt += 1
    return cnt


@njit(inline="always")
def _reset_all(reset, R, c, spiking, a):
    for e in range(spiking.shape[0]):
        reset(R, spiking[e] - a, c)


# biosim-kernel: dispatch begins
# Placeholders, replaced in every generated module by one branch per model of the network.


def pop_step(model, X, a, b, c, i_ext, ref_until, s):
    """Advance neurons ``a..b-1`` of one population (model index ``model``) by one step."""
    raise NotImplementedError("template only: use biosim.backends.numba_cpu.kernel(specs)")


def pop_threshold(model, X, a, b, c, ref_until, s, out):
    """Write the (global) indices of neurons ``a..b-1`` that spike at step ``s`` (threshold crossed,
    not refractory) into ``out[0:]`` in ascending order; return how many."""
    raise NotImplementedError("template only: use biosim.backends.numba_cpu.kernel(specs)")


def pop_reset(model, X, a, b, c, spiking):
    """Reset the neurons whose global indices are in ``spiking`` (all within ``a..b-1``)."""
    raise NotImplementedError("template only: use biosim.backends.numba_cpu.kernel(specs)")


def syn_pre(kind, S, k, X, i, j, c, gate, refractory, elapsed):
    """Run synapse model ``kind``'s ``on_pre`` for synapse ``k`` (source ``i``, target ``j``)."""
    raise NotImplementedError("template only: use biosim.backends.numba_cpu.kernel(specs)")


def syn_post(kind, S, k, X, i, j, c, gate, refractory, elapsed):
    """Run synapse model ``kind``'s ``on_post`` for synapse ``k`` (source ``i``, target ``j``)."""
    raise NotImplementedError("template only: use biosim.backends.numba_cpu.kernel(specs)")


# biosim-kernel: dispatch ends


@njit(cache=True)
def _clip(x, lo, hi):
    return lo if x < lo else (hi if x > hi else x)  # noqa: FURB136 (min() would change NaN handling)


@njit(cache=True, fastmath={"reassoc"})
def _zero_sum(row, a, b):
    """Sum of ``row[a:b] * 0``: 0 when all are finite, NaN otherwise (vectorises, unlike isfinite)."""
    r = row[a:b]
    acc = 0.0
    for i in range(r.shape[0]):
        acc += r[i] * 0.0
    return acc


@njit(cache=True)
def run_chunk(pl, inp, out, step0, n_steps, sp_n, rec_n):
    """Advance the plan ``pl`` by ``n_steps`` steps starting at global step ``step0`` (the contract
    of :mod:`biosim.backends`).

    Returns ``(status, steps_done, sp_n, rec_n, err_pop, err_row, err_neuron)``; ``status`` is
    OK, BUFFER_FULL (the spike buffer needs room: call again from ``step0 + steps_done``) or
    NOT_FINITE (a state variable became NaN/inf in the last step done).
    """
    X = pl.X
    N = X.shape[1]
    V = X.shape[0]
    L = pl.hist.shape[0]
    P = pl.pop_model.shape[0]
    G = pl.grp_off.shape[0] - 1
    R = pl.pr_grp.shape[0]
    Q = pl.pi_a.shape[0]
    Z = pl.st_proj.shape[0]
    M = pl.mon_row.shape[0]
    use_acc = pl.dly.shape[0] > 0
    cap = out.sp_idx.shape[0]
    for k in range(n_steps):
        s = step0 + k
        if sp_n + N > cap:
            return BUFFER_FULL, k, sp_n, rec_n, -1, -1, -1
        slot = s % L
        for g in range(G):
            pl.hist_cnt[slot, g] = 0
        if M > 0 and s % pl.mon_every == 0:
            for m in range(M):
                out.rec[rec_n, m] = X[pl.mon_row[m], pl.mon_idx[m]]
            rec_n += 1
        for z in range(Z):
            g = pl.pr_grp[pl.st_proj[z]]
            dpre = pl.st_c[z, DECAY_PRE]
            for e in range(pl.st_pre_off[z], pl.st_pre_off[z] + pl.grp_off[g + 1] - pl.grp_off[g]):
                pl.xpre[e] *= dpre
            tp = pl.st_tgt_grp[z]
            dpost = pl.st_c[z, DECAY_POST]
            for e in range(pl.st_post_off[z], pl.st_post_off[z] + pl.pop_off[tp + 1] - pl.pop_off[tp]):
                pl.xpost[e] *= dpost
        # 1. state update, with the NaN/inf check
        for p in range(P):
            a = pl.pop_off[p]
            b = pl.pop_off[p + 1]
            pop_step(pl.pop_model[p], X, a, b, pl.C[p], pl.i_ext, pl.ref_until, s)
            for r in range(pl.pop_nvar[p]):
                if _zero_sum(X[r], a, b) != 0.0:
                    for i in range(a, b):
                        if not math.isfinite(X[r, i]):
                            return NOT_FINITE, k + 1, sp_n, rec_n, p, r, i
        # 2. thresholds
        for p in range(P):
            a = pl.pop_off[p]
            cnt = pop_threshold(pl.pop_model[p], X, a, pl.pop_off[p + 1], pl.C[p], pl.ref_until, s, pl.hist[slot, a:])
            for e in range(cnt):
                i = pl.hist[slot, a + e]
                pl.ref_until[i] = s + pl.pop_ref[p]
                if pl.rec_spikes[i]:
                    out.sp_step[sp_n] = s
                    out.sp_idx[sp_n] = i
                    sp_n += 1
            pl.hist_cnt[slot, p] = cnt
        for e in range(inp.in_ptr[k], inp.in_ptr[k + 1]):
            g = inp.in_grp[e]
            pl.hist[slot, pl.grp_off[g] + pl.hist_cnt[slot, g]] = inp.in_src[e]
            pl.hist_cnt[slot, g] += 1
        # 3. synapses: Poisson input, delayed input due now, then each projection
        for q in range(Q):
            row = pl.pi_row[q]
            a = pl.pi_a[q]
            col = pl.pi_col[q] - a
            for j in range(a, pl.pi_b[q]):
                n = inp.counts[k, col + j]
                if n != 0 and not (pl.gate[row, j] and s < pl.ref_until[j]):
                    X[row, j] += n * pl.pi_w[q]
        if use_acc:
            for r in range(V):
                for j in range(N):
                    x = pl.acc[slot, r, j]
                    if x != 0:
                        if not (pl.gate[r, j] and s < pl.ref_until[j]):
                            X[r, j] += x
                        pl.acc[slot, r, j] = 0
        for r in range(R):
            d = pl.pr_delay[r]
            if d >= 0:
                if s < d:
                    continue
                ss = (s - d) % L
            else:
                ss = slot
            g = pl.pr_grp[r]
            g0 = pl.grp_off[g]
            row = pl.pr_row[r]
            base = pl.pr_ptr[r]
            z = pl.pr_stdp[r]
            kind = pl.pr_syn[r]
            for e in range(pl.hist_cnt[ss, g]):
                loc = pl.hist[ss, g0 + e] - g0
                if kind >= 0:  # a synapse model: its on_pre statements, synapse by synapse
                    pre = g0 + loc if g < P else -1
                    for syn in range(pl.indptr[base + loc], pl.indptr[base + loc + 1]):
                        j = pl.tgt[syn]
                        syn_pre(kind, pl.S, syn, X, pre, j, pl.pr_c[r], pl.gate, s < pl.ref_until[j], s - pl.s_last[syn])
                        pl.s_last[syn] = s
                    continue
                for syn in range(pl.indptr[base + loc], pl.indptr[base + loc + 1]):
                    j = pl.tgt[syn]
                    if d < 0 and pl.dly[syn] > 0:
                        pl.acc[(s + pl.dly[syn]) % L, row, j] += pl.w[syn]
                        continue
                    if not (pl.gate[row, j] and s < pl.ref_until[j]):
                        X[row, j] += pl.w[syn]
                    if z >= 0:
                        jl = j - pl.pop_off[pl.st_tgt_grp[z]]
                        xp = pl.xpost[pl.st_post_off[z] + jl]
                        wv = pl.w[syn]
                        if pl.st_c[z, MULTIPLICATIVE] != 0:
                            wv = wv - pl.st_c[z, A_MINUS] * xp * (wv - pl.st_c[z, W_MIN])
                        else:
                            wv = wv - pl.st_c[z, A_MINUS] * xp
                        pl.w[syn] = _clip(wv, pl.st_c[z, W_MIN], pl.st_c[z, W_MAX])
                if z >= 0:
                    pl.xpre[pl.st_pre_off[z] + loc] += 1
        for z in range(Z):
            tp = pl.st_tgt_grp[z]
            t0 = pl.pop_off[tp]
            rb = pl.st_rptr_off[z]
            for e in range(pl.hist_cnt[slot, tp]):
                jl = pl.hist[slot, t0 + e] - t0
                for kk in range(pl.rptr[rb + jl], pl.rptr[rb + jl + 1]):
                    syn = pl.rsyn[kk]
                    xp = pl.xpre[pl.st_pre_off[z] + pl.rsrc[kk]]
                    wv = pl.w[syn]
                    if pl.st_c[z, MULTIPLICATIVE] != 0:
                        wv = wv + pl.st_c[z, A_PLUS] * xp * (pl.st_c[z, W_MAX] - wv)
                    else:
                        wv = wv + pl.st_c[z, A_PLUS] * xp
                    pl.w[syn] = _clip(wv, pl.st_c[z, W_MIN], pl.st_c[z, W_MAX])
                pl.xpost[pl.st_post_off[z] + jl] += 1
        for r in range(R):  # synapse models' on_post, for the targets that spiked
            rb = pl.pr_rptr[r]
            if rb < 0:
                continue
            tp = pl.pr_tgt[r]
            t0 = pl.pop_off[tp]
            g = pl.pr_grp[r]
            g0 = pl.grp_off[g]
            kind = pl.pr_syn[r]
            for e in range(pl.hist_cnt[slot, tp]):
                j = pl.hist[slot, t0 + e]
                for kk in range(pl.rptr[rb + j - t0], pl.rptr[rb + j - t0 + 1]):
                    syn = pl.rsyn[kk]
                    pre = g0 + pl.rsrc[kk] if g < P else -1
                    syn_post(kind, pl.S, syn, X, pre, j, pl.pr_c[r], pl.gate, s < pl.ref_until[j], s - pl.s_last[syn])
                    pl.s_last[syn] = s
        # 4. reset
        for p in range(P):
            a = pl.pop_off[p]
            pop_reset(pl.pop_model[p], X, a, pl.pop_off[p + 1], pl.C[p], pl.hist[slot, a:a + pl.hist_cnt[slot, p]])
    return OK, n_steps, sp_n, rec_n, -1, -1, -1
