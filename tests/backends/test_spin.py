"""The spinning barrier of the threaded numba-cpu kernel (:mod:`biosim.backends.spin`)."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import njit, prange

from biosim.backends import spin


@njit(parallel=True)
def _rounds(T, out):
    """``T`` threads, each writing its row of ``out`` one column per round, then after a barrier
    reading its neighbour's entry of that round (-1 where it was not there yet)."""
    bar = np.zeros(spin.BARRIER_SIZE, np.int64)
    started = np.zeros(T, np.bool_)
    for t in prange(T):
        if spin.check_in(bar, T):
            started[t] = True
            passed = 0
            for k in range(out.shape[1]):
                out[t, k] = 10 * k + t
                passed = spin.barrier(bar, T, passed)
                if out[(t + 1) % T, k] != 10 * k + (t + 1) % T:
                    out[t, k] = -1
                passed = spin.barrier(bar, T, passed)  # the neighbour read this round before the next
    return started


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="Numba has one thread here")
def test_barrier_orders_the_threads_writes():
    out = np.zeros((2, 20000), np.int64)
    old = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        started = _rounds(2, out)
    finally:
        numba.set_num_threads(old)
    assert started.all()
    assert np.array_equal(out, 10 * np.arange(20000)[None, :] + np.arange(2)[:, None])


@njit
def _one_after_the_other(T):
    bar = np.zeros(spin.BARRIER_SIZE, np.int64)
    got = np.zeros(T, np.bool_)
    for t in range(T):
        got[t] = spin.check_in(bar, T)
    return got


def test_check_in_gives_up_when_the_threads_run_one_after_the_other():
    assert not _one_after_the_other(3).any()
    assert _one_after_the_other(1).all()
