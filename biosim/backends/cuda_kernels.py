"""The CUDA kernels of :mod:`biosim.backends.numba_cuda`, built for a network's models.

Imported only when that backend runs (it imports ``numba.cuda``). The kernels name ``cuda`` as a
global of this module, as numba-cuda's simulator needs (it swaps that global for its own module
while a kernel runs). :func:`build_kernels` returns them by name; the host side in
:mod:`biosim.backends.numba_cuda` says what each does and launches them step by step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, types

from biosim.backends import phases
from biosim.backends.kernel_body import BUFFER_FULL, NOT_FINITE
from biosim.backends.numba_cuda import DONE, ERRKEY, ERRSTEP, EV_MAX, LIMIT, NO_ERROR, SP_BASE, SP_N, STATUS
from biosim.errors import BiosimError
from biosim.synapses.stdp import A_MINUS, A_PLUS, DECAY_POST, DECAY_PRE, MULTIPLICATIVE, W_MAX, W_MIN

__all__ = ["build_kernels"]

_LOW = (1 << 32) - 1


def _device(fn, what: str):
    """The device function of an njit scalar function: its pure-Python ``py_func`` compiled by
    ``cuda.jit(device=True)`` (the njit functions it calls compile for the GPU with it)."""
    py = getattr(fn, "py_func", None)
    if py is None:
        raise BiosimError(f"{what} must be a numba njit function, got {type(fn).__name__}")
    return cuda.jit(device=True)(py)


def _chain(fns, base, link):
    """A device function ``d(kind, *args)`` that calls ``fns[kind](*args)``: one small device
    function per model, each passing other kinds on to the previous one (no list of models
    anywhere, and no source to generate)."""
    d = cuda.jit(device=True)(base)
    for k, fn in enumerate(fns):
        d = cuda.jit(device=True)(link(d, fn, k))
    return d


def _base_step(kind, X, i, c, e, r):
    return


def _link_step(prev, fn, k):
    def link(kind, X, i, c, e, r):
        if kind == k:
            fn(X, i, c, e, r)
        else:
            prev(kind, X, i, c, e, r)
    return link


def _base_threshold(kind, X, i, c):
    return False


def _link_threshold(prev, fn, k):
    def link(kind, X, i, c):
        if kind == k:
            return fn(X, i, c)
        return prev(kind, X, i, c)
    return link


def _base_reset(kind, X, i, c):
    return


def _link_reset(prev, fn, k):
    def link(kind, X, i, c):
        if kind == k:
            fn(X, i, c)
        else:
            prev(kind, X, i, c)
    return link


def _base_syn(kind, S, k, X, i, j, c, gate, refractory, elapsed):
    return


def _link_syn(prev, fn, q):
    def link(kind, S, k, X, i, j, c, gate, refractory, elapsed):
        if kind == q:
            fn(S, k, X, i, j, c, gate, refractory, elapsed)
        else:
            prev(kind, S, k, X, i, j, c, gate, refractory, elapsed)
    return link


def build_kernels(specs, syn_specs, TPB: int, LANES: int = 1) -> dict:
    """The CUDA kernels for these models (closures over their device functions), by name: ``pre``,
    ``step``, ``scan``, ``compact``, ``scatter``, ``deliver``, ``post`` and ``reset``, launched in
    this order in every step. ``TPB`` is the number of threads per block of ``step`` (its
    block-wide scan) and of ``scan`` (one block); both take their scan's ``TPB`` int64 values as
    dynamic shared memory (``8 * TPB`` bytes at launch: numba-cuda's simulator allocates a static
    shared array on a thread's first call, check-then-set, so two threads of a block could each get
    their own); ``LANES`` threads of ``scatter`` share a spike's synapses."""
    dev = _device
    step = _chain([dev(s.step, f"neuron model '{s.name}': step") for s in specs], _base_step, _link_step)
    threshold = _chain([dev(s.threshold, f"neuron model '{s.name}': threshold") for s in specs],
                       _base_threshold, _link_threshold)
    reset = _chain([dev(s.reset, f"neuron model '{s.name}': reset") for s in specs], _base_reset, _link_reset)
    syn_pre = _chain([dev(s.on_pre, f"synapse model '{s.name}': on_pre") for s in syn_specs], _base_syn, _link_syn)
    syn_post = _chain([dev(s.on_post, f"synapse model '{s.name}': on_post") for s in syn_specs], _base_syn, _link_syn)
    int64 = np.int64

    @cuda.jit(device=True)
    def stopped(ctl):
        return ctl[STATUS] != 0 or ctl[ERRKEY] != NO_ERROR

    @cuda.jit(device=True)
    def block_scan(sh, t):
        """Inclusive prefix sum of ``sh[0:TPB]`` in place (every thread of the block calls it)."""
        off = 1
        while off < TPB:
            x = sh[t - off] if t >= off else int64(0)
            cuda.syncthreads()
            sh[t] += x
            cuda.syncthreads()
            off *= 2

    @cuda.jit
    def k_pre(ctl, k, slot, N, hist_cnt, X, mon_row, mon_idx, rec, rec_row, st_c, st_proj, st_pre_off,
              st_post_off, st_tgt_grp, pr_grp, grp_off, pop_off, xpre, xpost):
        """Start of a step: the spike-buffer check (the CPU's: room for N spikes), clear the ring
        slot's counts, record monitors (state at t), decay STDP traces."""
        t = cuda.grid(1)
        if stopped(ctl):
            return
        if ctl[SP_N] + N > ctl[LIMIT]:
            if t == 0:
                ctl[STATUS] = BUFFER_FULL
                ctl[DONE] = k
            return
        if t < hist_cnt.shape[1]:
            hist_cnt[slot, t] = 0
        if rec_row >= 0 and t < mon_row.shape[0]:
            rec[rec_row, t] = X[mon_row[t], mon_idx[t]]
        for z in range(st_proj.shape[0]):
            g = pr_grp[st_proj[z]]
            off = st_pre_off[z]
            if off <= t < off + grp_off[g + 1] - grp_off[g]:
                xpre[t] *= st_c[z, DECAY_PRE]
            tp = st_tgt_grp[z]
            off = st_post_off[z]
            if off <= t < off + pop_off[tp + 1] - pop_off[tp]:
                xpost[t] *= st_c[z, DECAY_POST]

    @cuda.jit
    def k_step(ctl, k, s, X, C, pop_of, pop_model, pop_nvar, i_ext, ref_until, rec_spikes, flags, incl, bsum):
        """State update (NaN/inf check), then the threshold: spike flags (bit 0: spiked, bit 32:
        spiked and recorded) and their inclusive prefix sum within the block. Writes nothing else:
        a NaN/inf anywhere ends the step before anything is made of the flags."""
        if ctl[STATUS] != 0:  # not ERRKEY: this kernel writes it, and every thread of a block must scan
            return
        i = cuda.grid(1)
        t = cuda.threadIdx.x
        N = X.shape[1]
        f = int64(0)
        if i < N:
            p = pop_of[i]
            step(pop_model[p], X, i, C[p], i_ext[i], s < ref_until[i])
            for r in range(pop_nvar[p]):
                if not math.isfinite(X[r, i]):
                    cuda.atomic.min(ctl, ERRKEY, (p * X.shape[0] + r) * N + i)
                    ctl[ERRSTEP] = k
                    break
            if s >= ref_until[i] and threshold(pop_model[p], X, i, C[p]):
                f = int64(1) + ((int64(1) << 32) if rec_spikes[i] != 0 else int64(0))
            flags[i] = f
        sh = cuda.shared.array(0, types.int64)  # dynamic: TPB values, sized at launch
        sh[t] = f
        cuda.syncthreads()
        block_scan(sh, t)
        if i < N:
            incl[i] = sh[t]
        if t == TPB - 1:
            bsum[cuda.blockIdx.x] = sh[t]

    @cuda.jit
    def k_scan(ctl, bsum, boff):
        """One block: exclusive prefix sum of the blocks' totals; the spike buffer's next place.
        A NaN/inf found by ``step`` becomes the stop status here."""
        if ctl[STATUS] != 0:
            return
        if ctl[ERRKEY] != NO_ERROR:
            if cuda.threadIdx.x == 0:
                ctl[STATUS] = NOT_FINITE
            return
        t = cuda.threadIdx.x
        nb = bsum.shape[0]
        sh = cuda.shared.array(0, types.int64)  # dynamic: TPB values, sized at launch
        carry = int64(0)
        for base in range(0, nb, TPB):
            v = bsum[base + t] if base + t < nb else int64(0)
            sh[t] = v
            cuda.syncthreads()
            block_scan(sh, t)
            if base + t < nb:
                boff[base + t] = carry + sh[t] - v
            carry += sh[TPB - 1]
            cuda.syncthreads()
        if t == 0:
            n0 = ctl[SP_N]
            ctl[SP_BASE] = n0
            ctl[SP_N] = n0 + (carry >> 32)

    @cuda.jit
    def k_compact(ctl, s, slot, pop_of, pop_off, pop_ref, flags, incl, boff, ref_until, spiked, hist, hist_cnt,
                  sp_step, sp_idx, e0, e1, in_src, in_grp, in_pos, in_cnt, grp_off):
        """Threads ``i < N``: neuron ``i``'s spike into the ring (in ascending order: its place is
        the scan's count before it), the refractory clock, the spike buffer; the last neuron of a
        population writes its count. Threads ``N + e``: input-group spike ``e0 + e`` of the step."""
        i = cuda.grid(1)
        if stopped(ctl):
            return
        N = flags.shape[0]
        if i >= N:
            e = e0 + i - N
            if e < e1:
                g = in_grp[e]
                src = in_src[e]
                hist[slot, grp_off[g] + in_pos[e]] = src
                if in_pos[e] == 0:
                    hist_cnt[slot, g] = in_cnt[e]
            return
        p = pop_of[i]
        a = pop_off[p]
        f = flags[i]
        ex = incl[i] - f + boff[i // TPB]
        ea = (incl[a] - flags[a] + boff[a // TPB]) & _LOW
        if f != 0:
            hist[slot, a + (ex & _LOW) - ea] = i
            ref_until[i] = s + pop_ref[p]
            spiked[i] = 1
            if f >> 32:
                pos = ctl[SP_BASE] + (ex >> 32)
                sp_step[pos] = s
                sp_idx[pos] = i
        else:
            spiked[i] = 0
        if i == pop_off[p + 1] - 1:
            hist_cnt[slot, p] = ((ex + f) & _LOW) - ea

    @cuda.jit(device=True)
    def arrival_slot(r, s, slot, L, pr_delay):
        """The ring slot whose spikes reach projection ``r``'s synapses at step ``s`` (-1: none
        yet, before its first delay has passed)."""
        d = pr_delay[r]
        if d < 0:
            return slot
        if s < d:
            return -1
        return (s - d) % L

    @cuda.jit(device=True)
    def arrivals(r, s, slot, L, pr_delay, pr_grp, hist_cnt):
        ss = arrival_slot(r, s, slot, L, pr_delay)
        return 0 if ss < 0 else hist_cnt[ss, pr_grp[r]]

    bisect = _device(phases.bisect, "bisect")  # the CPU kernel's
    depressed = _device(phases.depressed, "depressed")  # the STDP rule, as on the CPU
    potentiated = _device(phases.potentiated, "potentiated")

    @cuda.jit(device=True)
    def spike_row(r, ss, e, hist, grp_off, pr_grp, pr_ptr, indptr):
        """Entry ``e`` of projection ``r``'s source group in ring slot ``ss``: its local source
        ``loc`` and the bounds ``a``, ``b`` of its CSR row."""
        g0 = grp_off[pr_grp[r]]
        loc = hist[ss, g0 + e] - g0
        return loc, indptr[pr_ptr[r] + loc], indptr[pr_ptr[r] + loc + 1]

    @cuda.jit(device=True)
    def file_event(ev, ev_cnt, j, key):
        """File event ``key`` in target ``j``'s column of ``ev`` (counted in ``ev_cnt[j]`` even when
        the column is full)."""
        pos = cuda.atomic.add(ev_cnt, j, 1)
        if pos < ev.shape[0]:
            ev[pos, j] = key

    @cuda.jit(device=True)
    def scatter_in_flight(s, grp_off, hist, hist_cnt, pr_grp, pr_row, pr_delay, pr_ptr, indptr, tgt, dly, ev, ev_cnt,
                          E, D, KR, V):
        """The spikes in flight through projections with per-synapse delays: a spike of age ``a``
        (emitted at step ``s - a``, entry ``e`` of its ring slot, ``0 < a < L``) files, for each
        synapse of the run of its row whose delay is ``a`` (found by bisection: a row is ordered by
        delay), the key ``row*KR + (((L-1-a)*R + r)*E + e)*D + position - V*KR``. These keys are
        negative, so they sort before the direct events, by target row, then oldest spike first,
        projection, entry and position: the CPU's order of summing delayed input. A grid-stride
        loop over (age, projection, entry, lane), each thread walking the (age, projection) pairs
        once."""
        L = hist.shape[0]
        R = pr_grp.shape[0]
        t = int64(cuda.grid(1))
        stride = int64(cuda.gridsize(1))
        base = int64(0)
        for age in range(1, L):
            if s < age:
                break
            ss = (s - age) % L
            for r in range(R):
                if pr_delay[r] >= 0:
                    continue
                n = hist_cnt[ss, pr_grp[r]] * LANES
                key0 = pr_row[r] * KR + ((L - 1 - age) * R + r) * E * D - V * KR
                while t < base + n:
                    e = (t - base) // LANES
                    lane = t - base - e * LANES
                    _, a, b = spike_row(r, ss, e, hist, grp_off, pr_grp, pr_ptr, indptr)
                    lo = bisect(dly, a, b, age)
                    hi = bisect(dly, lo, b, age + 1)
                    for syn in range(lo + lane, hi, LANES):
                        file_event(ev, ev_cnt, tgt[syn], key0 + e * D + syn - a)
                    t += stride
                base += n

    @cuda.jit
    def k_scatter(ctl, s, slot, grp_off, hist, hist_cnt, pr_grp, pr_row, pr_delay, pr_ptr, pr_stdp, pr_syn, indptr,
                  tgt, dly, st_pre_off, xpre, ev, ev_cnt, E, D, KR, V):
        """The event-driven half of spike propagation: each spike arriving now through projection
        ``r`` (entry ``e`` of its ring slot) visits only its own outgoing synapses (a CSR row; with
        per-synapse delays, the row's synapses of delay 0) and files, for each target ``j``, the
        event's key ``(r*E + e)*D + position in the row`` in ``ev[:, j]`` (``ev_cnt[j]`` counts them;
        a target with more events than ``ev`` has rows is handled by ``deliver`` without them). The
        keys sort into the CPU's order of additions. A grid-stride loop over the arriving spikes
        (``LANES`` threads share a row); STDP source traces count their arrivals here. Then the
        spikes in flight file the synapses due now (:func:`scatter_in_flight`)."""
        if stopped(ctl):
            return
        L = hist.shape[0]
        R = pr_grp.shape[0]
        total = int64(0)
        for r in range(R):
            total += arrivals(r, s, slot, L, pr_delay, pr_grp, hist_cnt)
        t = int64(cuda.grid(1))
        stride = int64(cuda.gridsize(1))
        while t < total * LANES:
            rem = t // LANES
            lane = t - rem * LANES
            r = 0
            n_r = arrivals(0, s, slot, L, pr_delay, pr_grp, hist_cnt)
            while rem >= n_r:
                rem -= n_r
                r += 1
                n_r = arrivals(r, s, slot, L, pr_delay, pr_grp, hist_cnt)
            ss = arrival_slot(r, s, slot, L, pr_delay)
            loc, a, b = spike_row(r, ss, rem, hist, grp_off, pr_grp, pr_ptr, indptr)
            if pr_delay[r] < 0:  # the synapses of delay 0; the rest of the row is in flight
                b = bisect(dly, a, b, 1)
            key0 = (int64(r) * E + rem) * D
            for syn in range(a + lane, b, LANES):
                file_event(ev, ev_cnt, tgt[syn], key0 + syn - a)
            z = pr_stdp[r]
            if lane == 0 and z >= 0 and pr_syn[r] < 0:
                cuda.atomic.add(xpre, st_pre_off[z] + loc, 1.0)
            t += stride
        if dly.shape[0] > 0:
            scatter_in_flight(s, grp_off, hist, hist_cnt, pr_grp, pr_row, pr_delay, pr_ptr, indptr, tgt, dly, ev,
                              ev_cnt, E, D, KR, V)

    @cuda.jit(device=True)
    def weight(r, syn, w, pr_w, pr_woff, pr_ptr, indptr):
        """The weight of synapse ``syn`` of projection ``r`` now: the projection's one weight
        ``pr_w[r]``, or the synapse's own in ``w``."""
        if pr_woff[r] < 0:
            return pr_w[r]
        return w[pr_woff[r] + syn - indptr[pr_ptr[r]]]

    @cuda.jit(device=True)
    def in_flight_synapse(key, s, L, E, D, KR, V, grp_off, hist, pr_grp, pr_ptr, indptr):
        """The projection and synapse of an in-flight event's key (:func:`scatter_in_flight`)."""
        R = pr_grp.shape[0]
        k = (key + V * KR) % KR
        pos = k % D
        k //= D
        e = k % E
        k //= E
        r = k % R
        age = L - 1 - k // R
        _, a, _ = spike_row(r, (s - age) % L, e, hist, grp_off, pr_grp, pr_ptr, indptr)
        return r, a + pos

    @cuda.jit(device=True)
    def deliver_in_flight(j, n, s, refr, zero, X, gate, ev, grp_off, hist, pr_grp, pr_ptr, indptr, w, pr_w, pr_woff,
                          E, D, KR):
        """The delayed input due now at target ``j``, from the in-flight events among its ``n``
        sorted keys (the negative ones, first): per target row, the weights (read now) summed from
        ``zero`` in the CPU's order, and each nonzero sum added to its row (not while refractory,
        for gated rows). Returns the index of the first direct event."""
        L = hist.shape[0]
        V = X.shape[0]
        q = 0
        while q < n and ev[q, j] < 0:
            row = (ev[q, j] + V * KR) // KR
            x = zero
            while q < n and ev[q, j] < 0 and (ev[q, j] + V * KR) // KR == row:
                r, syn = in_flight_synapse(ev[q, j], s, L, E, D, KR, V, grp_off, hist, pr_grp, pr_ptr, indptr)
                x += weight(r, syn, w, pr_w, pr_woff, pr_ptr, indptr)
                q += 1
            if x != 0 and not (gate[row, j] and refr):
                X[row, j] += x
        return q

    @cuda.jit(device=True)
    def walk_in_flight(j, s, refr, zero, X, gate, pop_of, grp_off, hist, hist_cnt, pr_grp, pr_tgt, pr_row, pr_delay,
                       pr_ptr, indptr, tgt, dly, w, pr_w, pr_woff):
        """:func:`deliver_in_flight` for a target whose events did not fit in ``ev``: it walks the
        spikes in flight itself, row by row, in the same order."""
        L = hist.shape[0]
        p = pop_of[j]
        for row in range(X.shape[0]):
            x = zero
            for age in range(L - 1, 0, -1):
                if s < age:
                    continue
                ss = (s - age) % L
                for r in range(pr_grp.shape[0]):
                    if pr_delay[r] >= 0 or pr_tgt[r] != p or pr_row[r] != row:
                        continue
                    for e in range(hist_cnt[ss, pr_grp[r]]):
                        _, a, b = spike_row(r, ss, e, hist, grp_off, pr_grp, pr_ptr, indptr)
                        lo = bisect(dly, a, b, age)
                        for syn in range(lo, bisect(dly, lo, b, age + 1)):
                            if tgt[syn] == j:
                                x += weight(r, syn, w, pr_w, pr_woff, pr_ptr, indptr)
            if x != 0 and not (gate[row, j] and refr):
                X[row, j] += x

    @cuda.jit(device=True)
    def apply_event(r, syn, loc, j, s, X, gate, ref_until, pop_off, grp_off, pr_grp, pr_row, pr_stdp, pr_syn, pr_c, w,
                    st_c, st_post_off, st_tgt_grp, xpost, S, s_last, P, pr_w, pr_woff, syn0):
        """One spike's effect through synapse ``syn`` (source ``loc`` of projection ``r``, whose
        first synapse is ``syn0``) on its target ``j``: a synapse model's ``on_pre``, or the weight
        (the projection's one weight ``pr_w[r]``, or the synapse's own in ``w``) added to the target
        row (not while refractory, for gated rows) and STDP depression -- the CPU kernel's
        statements."""
        kind = pr_syn[r]
        if kind >= 0:
            g = pr_grp[r]
            pre = grp_off[g] + loc if g < P else -1
            syn_pre(kind, S, syn, X, pre, j, pr_c[r], gate, s < ref_until[j], s - s_last[syn])
            s_last[syn] = s
            return
        row = pr_row[r]
        ws = pr_woff[r] + syn - syn0  # the synapse's weight in w (when pr_woff[r] >= 0)
        wv = pr_w[r] if pr_woff[r] < 0 else w[ws]
        if not (gate[row, j] and s < ref_until[j]):
            X[row, j] += wv
        z = pr_stdp[r]
        if z >= 0:  # plastic synapses have their own weights
            xp = xpost[st_post_off[z] + j - pop_off[st_tgt_grp[z]]]
            w[ws] = depressed(wv, xp, st_c, z, A_MINUS, W_MIN, W_MAX, MULTIPLICATIVE)

    @cuda.jit
    def k_deliver(ctl, k, s, slot, X, gate, ref_until, pop_of, pop_off, grp_off, hist, hist_cnt, counts, pi_a, pi_b,
                  pi_row, pi_w, pi_col, zero, pr_grp, pr_tgt, pr_row, pr_delay, pr_ptr, pr_stdp, pr_syn, pr_c, indptr,
                  tgt, w, dly, st_c, st_post_off, st_tgt_grp, xpost, S, s_last, P, ev, ev_cnt, E, D, KR, pr_w, pr_woff):
        """Thread ``j``: everything that reaches neuron ``j`` this step, in the CPU's order: Poisson
        input, delayed input due now (:func:`deliver_in_flight`), then its direct events, sorted by
        key (each projection in creation order, each by the order of its spikes, each along the CSR
        row). A target with more events than ``ev`` holds (``ev_cnt[j]`` > its rows) walks the
        spikes' rows itself, in the same order, and reports its count for the host to grow ``ev``.
        ``zero`` is 0 in the state's dtype."""
        j = cuda.grid(1)
        if stopped(ctl):
            return
        if j >= X.shape[1]:
            return
        refr = s < ref_until[j]
        for q in range(pi_a.shape[0]):
            row = pi_row[q]
            a = pi_a[q]
            if a <= j < pi_b[q]:
                n = counts[k, pi_col[q] - a + j]
                if n != 0 and not (gate[row, j] and refr):
                    X[row, j] += n * pi_w[q]
        n = ev_cnt[j]
        if n == 0:
            return
        ev_cnt[j] = 0
        L = hist.shape[0]
        if n <= ev.shape[0]:
            for q in range(1, n):  # insertion sort of the few keys
                key = ev[q, j]
                m = q - 1
                while m >= 0 and ev[m, j] > key:
                    ev[m + 1, j] = ev[m, j]
                    m -= 1
                ev[m + 1, j] = key
            q0 = deliver_in_flight(j, n, s, refr, zero, X, gate, ev, grp_off, hist, pr_grp, pr_ptr, indptr, w, pr_w,
                                   pr_woff, E, D, KR)
            for q in range(q0, n):
                key = ev[q, j]
                re = key // D
                pos = key - re * D
                r = re // E
                e = re - r * E
                loc, a, _ = spike_row(r, arrival_slot(r, s, slot, L, pr_delay), e, hist, grp_off, pr_grp, pr_ptr,
                                      indptr)
                apply_event(r, a + pos, loc, j, s, X, gate, ref_until, pop_off, grp_off, pr_grp,
                            pr_row, pr_stdp, pr_syn, pr_c, w, st_c, st_post_off, st_tgt_grp, xpost, S, s_last, P, pr_w,
                            pr_woff, indptr[pr_ptr[r]])
            return
        cuda.atomic.max(ctl, EV_MAX, n)
        if dly.shape[0] > 0:
            walk_in_flight(j, s, refr, zero, X, gate, pop_of, grp_off, hist, hist_cnt, pr_grp, pr_tgt, pr_row,
                           pr_delay, pr_ptr, indptr, tgt, dly, w, pr_w, pr_woff)
        p = pop_of[j]
        for r in range(pr_grp.shape[0]):
            if pr_tgt[r] != p:
                continue
            ss = arrival_slot(r, s, slot, L, pr_delay)
            if ss < 0:
                continue
            for e in range(hist_cnt[ss, pr_grp[r]]):
                loc, a, b = spike_row(r, ss, e, hist, grp_off, pr_grp, pr_ptr, indptr)
                if pr_delay[r] < 0:  # the synapses of delay 0
                    b = bisect(dly, a, b, 1)
                for syn in range(a, b):
                    if tgt[syn] == j:
                        apply_event(r, syn, loc, j, s, X, gate, ref_until, pop_off, grp_off, pr_grp, pr_row, pr_stdp,
                                    pr_syn, pr_c, w, st_c, st_post_off, st_tgt_grp, xpost, S, s_last, P, pr_w, pr_woff,
                                    indptr[pr_ptr[r]])

    @cuda.jit(device=True)
    def reset_one(X, C, pop_of, pop_model, i):
        p = pop_of[i]
        reset(pop_model[p], X, i, C[p])

    @cuda.jit
    def k_post(ctl, s, X, C, gate, ref_until, spiked, pop_of, pop_off, pop_model, grp_off, pr_grp, pr_tgt, pr_syn,
               pr_c, pr_rptr, rptr, rsyn, rsrc, w, st_c, st_tgt_grp, st_rptr_off, st_pre_off, st_post_off, xpre,
               xpost, S, s_last, P, and_reset, st_proj, pr_ptr, indptr, pr_woff):
        """Thread ``j`` of a neuron that spiked: STDP potentiation of its incoming plastic synapses
        (the plan's by-target index) and its target trace, then synapse models' ``on_post``; and
        its reset when ``and_reset`` (no synapse model has ``on_post`` statements, which may read
        other neurons before reset)."""
        j = cuda.grid(1)
        if stopped(ctl):
            return
        if j >= X.shape[1] or spiked[j] == 0:
            return
        p = pop_of[j]
        jl = j - pop_off[p]
        for z in range(st_tgt_grp.shape[0]):
            if st_tgt_grp[z] != p:
                continue
            b = st_rptr_off[z] + jl
            ws = indptr[pr_ptr[st_proj[z]]] - pr_woff[st_proj[z]]  # synapse syn's weight: w[syn - ws]
            for kk in range(rptr[b], rptr[b + 1]):
                syn = rsyn[kk] - ws
                w[syn] = potentiated(w[syn], xpre[st_pre_off[z] + rsrc[kk]], st_c, z, A_PLUS, W_MIN, W_MAX,
                                     MULTIPLICATIVE)
            xpost[st_post_off[z] + jl] += 1
        for r in range(pr_grp.shape[0]):
            rb = pr_rptr[r]
            if rb < 0 or pr_tgt[r] != p:
                continue
            g = pr_grp[r]
            g0 = grp_off[g]
            kind = pr_syn[r]
            for kk in range(rptr[rb + jl], rptr[rb + jl + 1]):
                syn = rsyn[kk]
                pre = g0 + rsrc[kk] if g < P else -1
                syn_post(kind, S, syn, X, pre, j, pr_c[r], gate, s < ref_until[j], s - s_last[syn])
                s_last[syn] = s
        if and_reset:
            reset_one(X, C, pop_of, pop_model, j)

    @cuda.jit
    def k_reset(ctl, X, C, pop_of, pop_model, spiked):
        """Reset the neurons that spiked."""
        i = cuda.grid(1)
        if stopped(ctl):
            return
        if i >= X.shape[1] or spiked[i] == 0:
            return
        reset_one(X, C, pop_of, pop_model, i)

    return {"pre": k_pre, "step": k_step, "scan": k_scan, "compact": k_compact, "scatter": k_scatter,
            "deliver": k_deliver, "post": k_post, "reset": k_reset}
