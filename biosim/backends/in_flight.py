"""Spikes in flight through projections with per-synapse delays, for the numba-cpu kernel.

A spike of a projection whose synapses have their own delays (``Plan.pr_delay[r] < 0``) delivers
the synapses of its CSR row in order of delay (a row is ordered by delay, stably): those of delay
0 in its own step, then, at each later step, the run of the row whose delay equals the spike's
age. Until its row is delivered, the spike is a column of a table ``fl`` of shape
``(FL_ROWS, capacity)``: its projection (``FL_PROJ``), the next synapse of its row not yet
delivered (``FL_NEXT``), the row's end (``FL_END``), the first synapse due in the current step
(``FL_LO``; the synapses due are ``FL_LO..FL_NEXT-1``) and the step it was emitted (``FL_BIRTH``).
The table grows with the spikes in flight, not with the network.

These functions do not depend on a network's models, so they are compiled once (and cached on
disk) rather than once per generated kernel module: the generated kernel
(:mod:`biosim.backends.kernel_body`) calls them, and its text carries the hash of this file so
that its cache follows a change here.
"""

import numpy as np
from numba import njit

__all__ = ["FL_BIRTH", "FL_END", "FL_LO", "FL_NEXT", "FL_PROJ", "FL_ROWS", "advance", "deliver", "grown", "rebuild"]

FL_PROJ, FL_NEXT, FL_END, FL_LO, FL_BIRTH = 0, 1, 2, 3, 4
FL_ROWS = 5


@njit(cache=True)
def grown(fl, n, size):
    """A copy of the table ``fl`` holding ``n`` spikes, with room for ``size``."""
    bigger = np.empty((FL_ROWS, size), np.int64)
    for f in range(FL_ROWS):  # element by element: a slice assignment compiles its shape-error message
        for e in range(n):    # (string formatting), which took seconds
            bigger[f, e] = fl[f, e]
    return bigger


@njit(cache=True)
def _push(fl, n, r, a, b, birth):
    """Append a spike in flight (projection ``r``, row ``a..b-1``, step ``birth``) to the table
    ``fl`` holding ``n``; returns the table (a larger copy when it was full)."""
    if n == fl.shape[1]:
        fl = grown(fl, n, 2 * n)
    fl[FL_PROJ, n] = r
    fl[FL_NEXT, n] = a
    fl[FL_END, n] = b
    fl[FL_LO, n] = a
    fl[FL_BIRTH, n] = birth
    return fl


@njit(cache=True)
def _push_slot(fl, n, hist_row, hist_cnt_row, birth, pr_delay, pr_grp, grp_off, pr_ptr, indptr):
    """Append the spikes of one ring slot (emitted at step ``birth``) of every projection with
    per-synapse delays, projection by projection, in ring order; returns ``(fl, n)``."""
    for r in range(pr_delay.shape[0]):
        if pr_delay[r] < 0:
            g0 = grp_off[pr_grp[r]]
            for e in range(hist_cnt_row[pr_grp[r]]):
                row = pr_ptr[r] + hist_row[g0 + e] - g0
                fl = _push(fl, n, r, indptr[row], indptr[row + 1], birth)
                n += 1
    return fl, n


@njit(cache=True)
def rebuild(hist, hist_cnt, step0, pr_delay, pr_grp, grp_off, pr_ptr, indptr):
    """The table of spikes in flight at the start of step ``step0``, oldest first, from the spike
    ring ``hist``/``hist_cnt`` (ages ``L-1 .. 1``, ``L`` its slots): ``(fl, n)``. Their synapses
    due now are set by :func:`advance`."""
    L = hist.shape[0]
    fl = np.empty((FL_ROWS, 64), np.int64)
    n = 0
    for age in range(L - 1, 0, -1):
        if step0 - age >= 0:
            ss = (step0 - age) % L
            fl, n = _push_slot(fl, n, hist[ss], hist_cnt[ss], step0 - age, pr_delay, pr_grp, grp_off, pr_ptr,
                               indptr)
    return fl, n


@njit(cache=True)
def advance(fl, n, dly, s, hist_row, hist_cnt_row, pr_delay, pr_grp, grp_off, pr_ptr, indptr):
    """Advance the table to step ``s``: drop the spikes whose rows are all delivered, set each
    one's synapses due now (delay ``s - birth``) to ``FL_LO..FL_NEXT-1``, keeping the table's
    order, then append the spikes of step ``s`` (``hist_row``, ``hist_cnt_row``: its ring slot),
    whose synapses of delay 0 the kernel delivers with the step's other spikes. Returns
    ``(fl, n)``."""
    keep = 0
    for e in range(n):
        c = fl[FL_NEXT, e]
        end = fl[FL_END, e]
        if c >= end:
            continue
        age = s - fl[FL_BIRTH, e]
        while c < end and dly[c] < age:
            c += 1
        lo = c
        while c < end and dly[c] == age:
            c += 1
        for f in range(FL_ROWS):
            fl[f, keep] = fl[f, e]
        fl[FL_LO, keep] = lo
        fl[FL_NEXT, keep] = c
        keep += 1
    return _push_slot(fl, keep, hist_row, hist_cnt_row, s, pr_delay, pr_grp, grp_off, pr_ptr, indptr)


@njit(cache=True)
def deliver(fl, n, s, lo, hi, pend, X, w, gate, ref_until, tgt, pr_row, pr_w, pr_woff, pr_ptr, indptr):
    """Add the delayed input due at step ``s`` to the targets ``lo..hi-1`` of ``X``.

    The due weights are first summed per target and state row in ``pend`` (zero on entry and on
    return, shape of ``X``), in the order the spikes were sent (the table's order, then along each
    row), then added to ``X`` -- unless the target is refractory (``s < ref_until[j]``) and its row
    gated. A synapse ``syn`` of projection ``r`` weighs ``pr_w[r]``, or ``w[pr_woff[r] + syn -
    indptr[pr_ptr[r]]]`` when ``pr_woff[r] >= 0``. The spikes with synapses due now are the first
    ``n`` of the table (those appended in step ``s`` have none: ``FL_LO == FL_NEXT``).
    """
    for e in range(n):
        r = fl[FL_PROJ, e]
        row = pr_row[r]
        ws = -1 if pr_woff[r] < 0 else indptr[pr_ptr[r]] - pr_woff[r]
        for syn in range(fl[FL_LO, e], fl[FL_NEXT, e]):
            j = tgt[syn]
            if lo <= j < hi:
                pend[row, j] += pr_w[r] if ws < 0 else w[syn - ws]
    for e in range(n):
        row = pr_row[fl[FL_PROJ, e]]
        for syn in range(fl[FL_LO, e], fl[FL_NEXT, e]):
            j = tgt[syn]
            x = pend[row, j]
            if x != 0 and lo <= j < hi:
                if not (gate[row, j] and s < ref_until[j]):
                    X[row, j] += x
                pend[row, j] = 0
