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
a local ``i``): unlike 2-D indexing, this lets LLVM vectorise the neuron loops. The views a step
takes are :func:`biosim.backends.phases.row` / :func:`~biosim.backends.phases.span`, which own
nothing, the plan's fields the steps read are locals, and the plan, the chunk's inputs and outputs
and the scratch arrays are :func:`~biosim.backends.phases.borrowed` (they own nothing either) as
the steps begin: a slice, a field read or an array passed to a function in the loop cost an atomic
reference-count increment and decrement each. The views and locals took CUBA's loop at 100
neurons from 0.0117 to 0.0094 s; borrowing the rest from 0.0112 to 0.0045 s (best of 4
alternating processes), and at 4000 neurons from 0.0643 to 0.0554 s best, 0.0861 to 0.0784 s
median (16 alternating processes).

The columns of ``Plan.st_c`` are read by the names of :mod:`biosim.synapses.stdp`, which Numba
compiles in as constants. The generated module is cached under the hash of its text, and that text
does not include ``stdp.py``: so this file imports every one of those names, in their index order
(``tests/neurons/test_named_constants.py`` checks it), and a change of the layout changes this text too.
"""
# biosim-kernel: source begins

import math

import numpy as np
from numba import njit, prange

from biosim.backends import in_flight, phases, spin
from biosim.synapses.stdp import DECAY_PRE, DECAY_POST, A_PLUS, A_MINUS, W_MIN, W_MAX, MULTIPLICATIVE  # noqa: I001

#: Status codes of run_chunk.
OK, BUFFER_FULL, NOT_FINITE = 0, 1, 2

#: Neurons per block of a population's update: each block is stepped while it is in the L1 cache,
#: then checked at once for a neuron above threshold (HIT) and a state that is not finite
#: (NOT_FINITE_FLAG); the threshold pass then looks only into the blocks with a HIT, and the NaN/inf
#: search only runs when a block has NOT_FINITE_FLAG.
NEURON_BLOCK = 256
HIT, NOT_FINITE_FLAG = 1, 2

#: int64s per cache line: what the threads write step by step lies this far apart (no false sharing).
LINE = 8

# biosim-kernel: dispatch begins
# Placeholders, replaced in every generated module by one branch per model of the network.


def pop_step(model, X, a, b, c, i_ext, ref_until, s, flags, driven):
    """Advance neurons ``a..b-1`` of one population (model index ``model``) by one step; set
    ``flags[k]`` (HIT, NOT_FINITE_FLAG) of its k-th block of NEURON_BLOCK neurons. Unless ``driven``,
    the external input ``i_ext`` is +0.0 there and is not read (a stream fewer per neuron)."""
    raise NotImplementedError("template only: use biosim.backends.numba_cpu.kernel(specs)")


def pop_threshold(model, X, a, b, c, ref_until, s, out, flags):
    """Write the (global) indices of neurons ``a..b-1`` that spike at step ``s`` (threshold crossed,
    not refractory) into ``out[0:]`` in ascending order, looking only into the blocks that
    ``flags`` marks HIT; return how many."""
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


@njit
def _reset_range(pop_model, X, pop_off, C, hist_row, hist_cnt_row, lo, hi):
    """Reset the neurons of ``lo..hi-1`` that spiked (``hist_row``: the step's spikes, grouped by
    population, ascending)."""
    for p in range(pop_model.shape[0]):
        a = pop_off[p]
        b = a + hist_cnt_row[p]
        first = phases.bisect(hist_row, a, b, lo)
        last = phases.bisect(hist_row, first, b, hi)
        if last > first:
            pop_reset(pop_model[p], X, a, pop_off[p + 1], phases.row(C, p, 0, C.shape[1]),
                      phases.span(hist_row, first, last))


@njit(inline="always")
def _due_slot(delay, s, slot, L):
    """The ring slot (of ``L``) whose spikes a projection of ``delay`` steps (< 0: none) delivers at
    step ``s`` (``slot``: this step's), or -1 before its first (``s < delay``)."""
    if delay < 0:
        return slot
    if s < delay:
        return -1
    return (s - delay) % L


#: Entries of the array ``sh`` the threads of :func:`_steps` share: the next step to run (steps
#: done), the spike buffer's and the monitors' fill, the spikes in flight, the status, the error's
#: population, row and neuron, and whether thread 0's part of a step stopped the chunk (what the
#: threads read after the step's second barrier: the status may already be the next step's).
SH_K, SH_SP_N, SH_REC_N, SH_FL_N, SH_STATUS, SH_ERR_POP, SH_ERR_ROW, SH_ERR_NEURON, SH_HALT = 0, 1, 2, 3, 4, 5, 6, 7, 8
SH_SIZE = 9

#: Statuses of :func:`_steps` that :func:`run_chunk_threads` handles itself: the table of spikes in
#: flight needs room (grown, then the steps go on), and the threads did not all start (the steps
#: go on in one thread).
FL_GROW, ABANDONED = 3, 4


def _run_chunk(pl, inp, out, step0, n_steps, sp_n, rec_n):
    """Advance the plan ``pl`` by ``n_steps`` steps starting at global step ``step0`` (the contract
    of :mod:`biosim.backends`) on one thread (compiled as :func:`run_chunk`); :func:`run_chunk_threads`
    (:func:`_run_chunk_threads`) does the same on ``T`` threads, with the same results.

    The steps themselves are :func:`_steps`. On ``T`` threads the whole chunk is one parallel region
    (:func:`_region`, a ``prange`` of ``T`` iterations), whose threads wait for each other at a
    :func:`biosim.backends.spin.barrier` between the phases of a step (a parallel region per phase
    cost several microseconds per step). If the threads do not all start at once
    (:func:`biosim.backends.spin.check_in`), the chunk runs on one thread. The threaded kernel is a
    function of its own so that a one-thread kernel does not compile the parallel region (17 s).

    Per-synapse delays: a spike of a projection with per-synapse delays delivers its row's
    synapses of delay 0 at once (the row is ordered by delay) and stays in a table of spikes in
    flight (:mod:`biosim.backends.in_flight`, compiled once for all kernels) until its row is
    delivered: at each later step, the run of its row whose delay equals its age. That table grows
    with the spikes in flight, not with the network; it is rebuilt from the spike ring at the
    start of every call (it is no state of the plan) and grown before a step might fill it (on
    threads: between parallel regions). The due weights are summed per target in a (V, N) scratch, in the
    order the spikes were sent (step, projection, ring entry, row), before they reach the target --
    gated, like every input, while it is refractory -- after Poisson input and before this step's
    spikes.

    Returns ``(status, steps_done, sp_n, rec_n, err_pop, err_row, err_neuron)``; ``status`` is
    OK, BUFFER_FULL (the spike buffer needs room: call again from ``step0 + steps_done``) or
    NOT_FINITE (a state variable became NaN/inf in the last step done).
    """
    sh, err, cnt, buf, flags, gated, driven, plain, nd, rows_sorted, fl, fl_most, pend = _scratch(pl, step0, sp_n,
                                                                                                rec_n, np.int64(1))
    _steps(np.int64(0), np.int64(1), nd, pl, inp, out, step0, n_steps, sh, np.zeros(spin.BARRIER_SIZE, np.int64),
           err, cnt, buf, flags, gated, driven, plain, rows_sorted, fl, fl_most, pend)
    return _result(sh)


def _run_chunk_threads(pl, inp, out, step0, n_steps, sp_n, rec_n, T):
    """:func:`_run_chunk` on ``T`` threads (compiled as :func:`run_chunk_threads`)."""
    sh, err, cnt, buf, flags, gated, driven, plain, nd, rows_sorted, fl, fl_most, pend = _scratch(pl, step0, sp_n,
                                                                                                rec_n, np.int64(T))
    while True:
        if fl_most > 0 and sh[SH_FL_N] + fl_most > fl.shape[1]:
            fl = in_flight.grown(fl, sh[SH_FL_N], 2 * (sh[SH_FL_N] + fl_most))
        _region(np.int64(T), nd, pl, inp, out, step0, n_steps, sh, np.zeros(spin.BARRIER_SIZE, np.int64), err, cnt,
                buf, flags, gated, driven, plain, rows_sorted, fl, fl_most, pend)
        if sh[SH_STATUS] == ABANDONED:  # the threads did not all start (nothing was done): one thread
            sh[SH_STATUS] = OK
            _steps(np.int64(0), np.int64(1), np.int64(1), pl, inp, out, step0, n_steps, sh,
                   np.zeros(spin.BARRIER_SIZE, np.int64), err[:1], cnt[:1], buf, flags[:1], gated, driven, plain,
                   rows_sorted and nd == 1, fl, fl_most, pend)
        elif sh[SH_STATUS] == FL_GROW:
            sh[SH_STATUS] = OK
            continue
        return _result(sh)


@njit(inline="always")
def _scratch(pl, step0, sp_n, rec_n, T):
    """What :func:`_steps` needs besides the plan, for ``T`` threads: ``(sh, err, cnt, buf, flags, gated,
    driven, plain, nd, rows_sorted, fl, fl_most, pend)``, as plain integers, booleans and arrays (no
    compile-time constants, so that ``_steps`` compiles once)."""
    X = pl.X
    N = X.shape[1]
    V = X.shape[0]
    P = pl.pop_model.shape[0]
    R = pl.pr_grp.shape[0]
    use_fl = pl.dly.shape[0] > 0
    pend = np.zeros((V, N) if use_fl else (1, 1), X.dtype)  # due delayed input per target, summed
    fl = np.empty((in_flight.FL_ROWS, 1), np.int64)
    fl_n = 0
    fl_most = np.int64(0)  # the most spikes a step adds to the table
    if use_fl:
        fl, fl_n = in_flight.rebuild(pl.hist, pl.hist_cnt, step0, pl.pr_delay, pl.pr_grp, pl.grp_off, pl.pr_ptr,
                                     pl.indptr)
        for r in range(R):
            if pl.pr_delay[r] < 0:
                fl_most += pl.grp_off[pl.pr_grp[r] + 1] - pl.grp_off[pl.pr_grp[r]]
    sh = np.zeros(SH_SIZE, np.int64)
    sh[SH_SP_N] = sp_n
    sh[SH_REC_N] = rec_n
    sh[SH_FL_N] = fl_n
    err = np.zeros((T, 3), np.int64)  # population + 1 (0: no error), row, neuron
    cnt = np.zeros((T, P + LINE), np.int64)  # each thread's spikes per population (rows a cache line apart)
    buf = np.zeros(max(N, 1), pl.hist.dtype)
    # block flags, a row per thread (a cache line apart): piece p from u_a // NEURON_BLOCK + p (the pieces
    # ascend, so never overlap)
    flags = np.zeros((T, N // NEURON_BLOCK + P + 1 + LINE), np.int64)
    gated = np.zeros(V, np.bool_)  # rows with a gated target: the others' gates need not be read
    for v in range(V):
        for j in range(N):
            if pl.gate[v, j]:
                gated[v] = True
                break
    # populations with an external input this chunk (the host sets i_ext between chunks): the
    # others' updates read none; -0.0 counts as an input (x + -0.0 and x + 0.0 differ for x = -0.0)
    driven = np.zeros(P, np.bool_)
    for p in range(P):
        for j in range(pl.pop_off[p], pl.pop_off[p + 1]):
            if pl.i_ext[j] != 0 or math.copysign(1.0, pl.i_ext[j]) < 0:
                driven[p] = True
                break
    plain = True
    for r in range(R):
        if pl.pr_syn[r] >= 0:
            plain = False
    nd = T if plain else np.int64(1)  # threads that deliver spikes
    rows_sorted = np.bool_(nd > 1 and phases.targets_sorted(pl.indptr, pl.tgt))
    return sh, err, cnt, buf, flags, gated, driven, np.bool_(plain), nd, rows_sorted, fl, fl_most, pend


@njit(inline="always")
def _result(sh):
    """``run_chunk``'s returned tuple from the shared entries ``sh``."""
    if sh[SH_STATUS] == NOT_FINITE:
        return NOT_FINITE, sh[SH_K], sh[SH_SP_N], sh[SH_REC_N], sh[SH_ERR_POP], sh[SH_ERR_ROW], sh[SH_ERR_NEURON]
    return sh[SH_STATUS], sh[SH_K], sh[SH_SP_N], sh[SH_REC_N], np.int64(-1), np.int64(-1), np.int64(-1)


@njit(cache=True, parallel=True)
def _region(T, nd, pl, inp, out, step0, n_steps, sh, bar, err, cnt, buf, flags, gated, driven, plain, rows_sorted,
            fl, fl_most, pend):
    """:func:`_steps` on ``T`` threads, one per ``prange`` iteration (the arguments are
    :func:`_run_chunk`'s). A function of its own: the caller reads what the threads wrote to ``sh``
    after this call returns, which Numba's parallel-loop transformations, inside one function, did
    not always let it see."""
    for t in prange(T):
        _steps(np.int64(t), T, nd, pl, inp, out, step0, n_steps, sh, bar, err, cnt, buf, flags, gated, driven,
               plain, rows_sorted, fl, fl_most, pend)


@njit(cache=True)
def _steps(t, T, nd, pl, inp, out, step0, n_steps, sh, bar, err, cnt, buf, flags, gated, driven, plain, rows_sorted,
           fl, fl_most, pend):
    """Thread ``t`` of ``T`` runs the steps of :func:`_run_chunk` from ``sh[SH_K]`` until
    ``n_steps`` or a status (``sh[SH_STATUS]``, with ``sh[SH_K]`` the steps done).

    Threads share a step by neurons: ``T`` contiguous blocks, each updated, thresholded, sent its
    spikes and reset by one thread (``nd`` threads deliver spikes: 1 in networks with synapse
    models, whose ``on_pre`` may read any neuron). Thread 0 alone does what is serial -- merging
    the step's spikes into the ring in ascending order, the spike buffer, input groups, spikes in
    flight, STDP traces, synapse models' ``on_post`` -- while the others wait at a barrier. Every
    target sees the same additions in the same order as in one thread (projection by projection,
    spike by spike along the ring, synapse by synapse along the CSR row), so the results do not
    depend on ``T``. A thread finds a row's synapses onto its block by bisection when every row is
    sorted by target (``rows_sorted``), else by a scan. ``nd``, ``plain`` (no synapse models),
    ``rows_sorted`` and the scratch arrays are :func:`_run_chunk`'s; ``fl_most`` is the most
    spikes a step adds to the table of spikes in flight ``fl``.
    """
    # what the steps read, owning nothing (phases.borrowed): no atomic reference counts in the loop
    pl, inp, out = phases.borrowed(pl), phases.borrowed(inp), phases.borrowed(out)
    sh, bar, err, cnt, buf, flags, gated, driven, fl, pend = phases.borrowed(
        (sh, bar, err, cnt, buf, flags, gated, driven, fl, pend))
    # every written field a local (in the plan's order), as the kernel always had them
    X, w, xpost, S, s_last = pl.X, pl.w, pl.xpost, pl.S, pl.s_last
    N = X.shape[1]
    L = pl.hist.shape[0]
    P = pl.pop_model.shape[0]
    R = pl.pr_grp.shape[0]
    Q = pl.pi_a.shape[0]
    Z = pl.st_proj.shape[0]
    M = pl.mon_row.shape[0]
    dly = pl.dly
    use_fl = dly.shape[0] > 0
    cap = out.sp_idx.shape[0]
    # the plan's arrays that the steps of every network read, as locals: each read of a field in the
    # loop costs an atomic reference-count increment and decrement (Numba borrows a tuple's field
    # that way)
    hist, hist_cnt, pop_off, pop_model, C, i_ext, ref_until = (pl.hist, pl.hist_cnt, pl.pop_off, pl.pop_model, pl.C,
                                                               pl.i_ext, pl.ref_until)
    gate, indptr, tgt, grp_off, st_c = pl.gate, pl.indptr, pl.tgt, pl.grp_off, pl.st_c
    pr_delay, pr_grp, pr_row, pr_ptr, pr_stdp, pr_syn, pr_woff, pr_w = (pl.pr_delay, pl.pr_grp, pl.pr_row, pl.pr_ptr,
                                                                        pl.pr_stdp, pl.pr_syn, pl.pr_woff, pl.pr_w)
    passed = 0  # barriers passed
    k0 = sh[SH_K]  # (read before the others can leave: thread 0 writes it when they stop)
    if T > 1 and not spin.check_in(bar, T):
        sh[SH_STATUS] = ABANDONED
        return
    t_lo = t * N // T
    t_hi = (t + 1) * N // T
    d_lo = t * N // nd if t < nd else 0
    d_hi = (t + 1) * N // nd if t < nd else 0
    d_full = nd == 1
    for k in range(k0, n_steps):
        s = step0 + k
        # what needs room stops the chunk before the step (every thread sees the same numbers)
        if sh[SH_SP_N] + N > cap or (T > 1 and use_fl and sh[SH_FL_N] + fl_most > fl.shape[1]):
            if t == 0:
                sh[SH_STATUS] = BUFFER_FULL if sh[SH_SP_N] + N > cap else FL_GROW
                sh[SH_K] = k
            return
        if use_fl and sh[SH_FL_N] + fl_most > fl.shape[1]:  # one thread: the table grows here
            fl = in_flight.grown(fl, sh[SH_FL_N], 2 * (sh[SH_FL_N] + fl_most))
        slot = s % L
        record = M > 0 and s % pl.mon_every == 0
        if record:  # each thread its own neurons' state at t
            for m in range(M):
                if t_lo <= pl.mon_idx[m] < t_hi:
                    out.rec[sh[SH_REC_N], m] = X[pl.mon_row[m], pl.mon_idx[m]]
        # 1. state update with the NaN/inf check (the first by population, row, neuron), thresholds:
        # one thread writes the ring directly, several a buffer merged below
        dest = phases.row(hist, slot, 0, hist.shape[1]) if T == 1 else buf
        for u_p in range(P):
            u_a = max(pop_off[u_p], t_lo)
            u_b = min(pop_off[u_p + 1], t_hi)
            u_f = phases.row(flags, t, u_a // NEURON_BLOCK + u_p, flags.shape[1])
            if u_a < u_b and err[t, 0] == 0:
                pop_step(pop_model[u_p], X, u_a, u_b, phases.row(C, u_p, 0, C.shape[1]), i_ext, ref_until, s, u_f,
                         driven[u_p])
                u_bad = False
                for u_k in range((u_b - u_a + NEURON_BLOCK - 1) // NEURON_BLOCK):
                    u_bad |= (u_f[u_k] & NOT_FINITE_FLAG) != 0
                if u_bad:  # the first non-finite state, by row then neuron
                    for u_r in range(pl.pop_nvar[u_p]):
                        for u_i in range(u_a, u_b):
                            if err[t, 0] == 0 and not math.isfinite(X[u_r, u_i]):
                                err[t, 0] = u_p + 1
                                err[t, 1] = u_r
                                err[t, 2] = u_i
        for u_p in range(P):
            u_a = max(pop_off[u_p], t_lo)
            u_b = min(pop_off[u_p + 1], t_hi)
            cnt[t, u_p] = 0
            if u_a < u_b and err[t, 0] == 0:
                cnt[t, u_p] = pop_threshold(pop_model[u_p], X, u_a, u_b, phases.row(C, u_p, 0, C.shape[1]),
                                            ref_until, s, phases.span(dest, u_a, dest.shape[0]),
                                            phases.row(flags, t, u_a // NEURON_BLOCK + u_p, flags.shape[1]))
        if T > 1:
            passed = spin.barrier(bar, T, passed)
        if t == 0:
            _serial_phase(pl, inp, out, k, s, slot, sh, err, cnt, buf, T, record, fl)
        if T > 1:
            passed = spin.barrier(bar, T, passed)
        if sh[SH_HALT]:  # (not the status: thread 0 may already have set the next step's)
            return
        # 3. what reaches each target: Poisson input, delayed input due now, then each projection;
        # 4. STDP potentiation of the targets that spiked, their traces; reset (networks without
        # synapse models: no on_post, which may read other neurons before their reset)
        if t < nd:
            for f_r in range(R):  # the first rows of each projection's spikes due now (phases.prefetch_rows)
                f_ss = _due_slot(pr_delay[f_r], s, slot, L)
                if pr_syn[f_r] < 0 and f_ss >= 0:
                    f_g = pr_grp[f_r]
                    f_g0 = grp_off[f_g]
                    phases.prefetch_rows(phases.row(hist, f_ss, f_g0, f_g0 + hist_cnt[f_ss, f_g]), f_g0, indptr,
                                         pr_ptr[f_r], tgt)
            for d_q in range(Q):
                phases.poisson_input(X, phases.row(inp.counts, k, 0, inp.counts.shape[1]), pl.pi_col[d_q],
                                     pl.pi_row[d_q], pl.pi_w[d_q], pl.pi_a[d_q], pl.pi_b[d_q], d_lo, d_hi, gate,
                                     ref_until, s)
            if use_fl:  # delayed input due now
                in_flight.deliver(fl, sh[SH_FL_N], s, d_lo, d_hi, pend, X, w, gate, ref_until, tgt,
                                  pr_row, pr_w, pr_woff, pr_ptr, indptr)
            for d_r in range(R):
                d_ss = _due_slot(pr_delay[d_r], s, slot, L)
                if d_ss < 0:
                    continue
                d_g = pr_grp[d_r]
                d_g0 = grp_off[d_g]
                d_row = pr_row[d_r]
                d_base = pr_ptr[d_r]
                d_z = pr_stdp[d_r]
                d_t0 = 0  # the trace of target d_j: d_j - d_t0
                if d_z >= 0:
                    d_t0 = pop_off[pl.st_tgt_grp[d_z]] - pl.st_post_off[d_z]
                d_kind = pr_syn[d_r]
                d_ws = -1 if pr_woff[d_r] < 0 else indptr[d_base] - pr_woff[d_r]
                d_n = hist_cnt[d_ss, d_g]
                if d_kind < 0:  # the projection's one weight, or (d_ws >= 0) synapse d_syn's is w[d_syn - d_ws]
                    phases.deliver(X, w, xpost, phases.row(hist, d_ss, d_g0, d_g0 + d_n), d_g0, indptr, d_base, tgt,
                                   dly, pr_delay[d_r] < 0, d_row, pr_w[d_r], d_ws, gate, gated[d_row], ref_until, s,
                                   d_lo, d_hi, d_full, rows_sorted, st_c, d_z, d_t0, A_MINUS, W_MIN, W_MAX,
                                   MULTIPLICATIVE)
                    continue
                for d_e in range(d_n):  # a synapse model (one thread): its on_pre statements
                    d_loc = hist[d_ss, d_g0 + d_e] - d_g0
                    d_pre = d_g0 + d_loc if d_g < P else -1
                    for d_syn in range(indptr[d_base + d_loc], indptr[d_base + d_loc + 1]):
                        d_j = tgt[d_syn]
                        syn_pre(d_kind, S, d_syn, X, d_pre, d_j, pl.pr_c[d_r], gate, s < ref_until[d_j],
                                s - s_last[d_syn])
                        s_last[d_syn] = s
            for p_z in range(Z):
                d_tp = pl.st_tgt_grp[p_z]
                p_t0 = pop_off[d_tp]
                p_r = pl.st_proj[p_z]
                phases.potentiate(w, pl.xpre, xpost, phases.row(hist, slot, p_t0, p_t0 + hist_cnt[slot, d_tp]),
                                  p_t0, d_lo, d_hi, pl.rptr, pl.st_rptr_off[p_z], pl.rsyn, pl.rsrc,
                                  indptr[pr_ptr[p_r]] - pr_woff[p_r], pl.st_pre_off[p_z],
                                  pl.st_post_off[p_z], st_c, p_z, A_PLUS, W_MIN, W_MAX, MULTIPLICATIVE)
        if not plain and t == 0:  # synapse models' on_post, for the targets that spiked
            for r in range(R):
                rb = pl.pr_rptr[r]
                if rb < 0:
                    continue
                tp = pl.pr_tgt[r]
                t0 = pop_off[tp]
                g = pr_grp[r]
                g0 = grp_off[g]
                kind = pr_syn[r]
                for e in range(hist_cnt[slot, tp]):
                    j = hist[slot, t0 + e]
                    for kk in range(pl.rptr[rb + j - t0], pl.rptr[rb + j - t0 + 1]):
                        syn = pl.rsyn[kk]
                        pre = g0 + pl.rsrc[kk] if g < P else -1
                        syn_post(kind, S, syn, X, pre, j, pl.pr_c[r], gate, s < ref_until[j],
                                 s - s_last[syn])
                        s_last[syn] = s
        if not plain and T > 1:  # thread 0 delivered to every neuron and ran on_post: now reset
            passed = spin.barrier(bar, T, passed)
        _reset_range(pop_model, X, pop_off, C, phases.row(hist, slot, 0, hist.shape[1]),
                     phases.row(hist_cnt, slot, 0, hist_cnt.shape[1]), t_lo, t_hi)
    if t == 0:
        sh[SH_K] = n_steps


@njit(inline="always")
def _serial_phase(pl, inp, out, k, s, slot, sh, err, cnt, buf, T, record, fl):
    """Thread 0's part of step ``s`` (the ``k``-th of the chunk) between the threads' thresholds and
    their deliveries: the monitors' count, the ring slot cleared, STDP traces decayed, the NaN/inf
    report (the first by population, row, neuron), the spikes into the ring in ascending order,
    refractory clocks, the spike buffer, input groups, the table of spikes in flight, the sources'
    STDP traces of the spikes arriving now."""
    hist, hist_cnt, grp_off, pop_off = pl.hist, pl.hist_cnt, pl.grp_off, pl.pop_off  # (as in _steps)
    ref_until, pop_ref, rec_spikes = pl.ref_until, pl.pop_ref, pl.rec_spikes
    N = pl.X.shape[1]
    P = pl.pop_model.shape[0]
    G = grp_off.shape[0] - 1
    R = pl.pr_grp.shape[0]
    Z = pl.st_proj.shape[0]
    if record:
        sh[SH_REC_N] += 1
    for g in range(G):
        hist_cnt[slot, g] = 0
    for z in range(Z):
        g = pl.pr_grp[pl.st_proj[z]]
        phases.decay_traces(pl.xpre, pl.st_pre_off[z], grp_off[g + 1] - grp_off[g], pl.st_c[z, DECAY_PRE])
        tp = pl.st_tgt_grp[z]
        phases.decay_traces(pl.xpost, pl.st_post_off[z], pop_off[tp + 1] - pop_off[tp], pl.st_c[z, DECAY_POST])
    bad = -1
    for t in range(T):
        if err[t, 0] > 0 and (bad < 0 or err[t, 0] < err[bad, 0] or
                              (err[t, 0] == err[bad, 0] and err[t, 1] < err[bad, 1])):
            bad = t
    if bad >= 0:
        sh[SH_STATUS] = NOT_FINITE
        sh[SH_HALT] = 1
        sh[SH_K] = k + 1
        sh[SH_ERR_POP] = err[bad, 0] - 1
        sh[SH_ERR_ROW] = err[bad, 1]
        sh[SH_ERR_NEURON] = err[bad, 2]
        return
    sp_n = sh[SH_SP_N]
    for p in range(P):
        a = pop_off[p]
        n = 0
        for t in range(T):
            if T > 1:
                b = max(a, t * N // T)
                for e in range(cnt[t, p]):
                    hist[slot, a + n + e] = buf[b + e]
            n += cnt[t, p]
        hist_cnt[slot, p] = n
        for e in range(n):
            i = hist[slot, a + e]
            ref_until[i] = s + pop_ref[p]
            if rec_spikes[i]:
                out.sp_step[sp_n] = s
                out.sp_idx[sp_n] = i
                sp_n += 1
    sh[SH_SP_N] = sp_n
    for e in range(inp.in_ptr[k], inp.in_ptr[k + 1]):
        g = inp.in_grp[e]
        hist[slot, grp_off[g] + hist_cnt[slot, g]] = inp.in_src[e]
        hist_cnt[slot, g] += 1
    # spikes in flight: the synapses due now; this step's spikes join (their delay-0 synapses are
    # delivered with the step's other spikes); the table has room (checked before the step)
    if pl.dly.shape[0] > 0:
        fl_n = in_flight.advance(fl, sh[SH_FL_N], pl.dly, s, hist[slot], hist_cnt[slot], pl.pr_delay,
                                 pl.pr_grp, grp_off, pl.pr_ptr, pl.indptr)[1]
        sh[SH_FL_N] = fl_n
    # STDP source traces of the spikes arriving now (nothing reads them before the deliveries)
    for r in range(R):
        z = pl.pr_stdp[r]
        ss = _due_slot(pl.pr_delay[r], s, slot, hist.shape[0])
        if z >= 0 and pl.pr_syn[r] < 0 and ss >= 0:
            g0 = grp_off[pl.pr_grp[r]]
            for e in range(hist_cnt[ss, pl.pr_grp[r]]):
                pl.xpre[pl.st_pre_off[z] + hist[ss, g0 + e] - g0] += 1


run_chunk = njit(cache=True)(_run_chunk)
run_chunk_threads = njit(cache=True)(_run_chunk_threads)
