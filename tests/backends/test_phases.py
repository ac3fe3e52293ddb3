"""The kernel's unowned views (:func:`biosim.backends.phases.row` and ``span``): the same items as a
slice, writes reach the parent, and only C-contiguous arrays of the right rank are taken; and
:func:`~biosim.backends.phases.borrowed`: the same arrays (in a tuple too), owning nothing."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from biosim.backends.phases import borrowed, row, span


@njit
def _views(x, X):
    s = span(x, 2, 5)
    r = row(X, 1, 1, 3)
    s[0] += 100.0
    r[1] += 1000.0
    return s.copy(), r.copy()


def test_views_are_the_slices_and_write_through():
    x, X = np.arange(8.0), np.arange(12.0).reshape(3, 4)
    want_x, want_X = x.copy(), X.copy()
    want_x[2] += 100.0
    want_X[1, 2] += 1000.0
    s, r = _views(x, X)
    assert np.array_equal(x, want_x) and np.array_equal(X, want_X)
    assert np.array_equal(s, want_x[2:5]) and np.array_equal(r, want_X[1, 1:3])


def test_views_of_other_dtypes_and_empty_spans():
    H = np.arange(24, dtype=np.int32).reshape(4, 6)
    got = njit(lambda H: (row(H, 3, 0, 6).sum(), span(row(H, 2, 0, 6), 4, 4).shape[0]))(H)
    assert got == (int(H[3].sum()), 0)


def test_only_c_contiguous_arrays_of_the_right_rank():
    X = np.arange(12.0).reshape(3, 4)
    with pytest.raises(TypingError, match="C-contiguous"):
        njit(lambda X: row(X, 0, 0, 2))(X.T)  # F layout
    with pytest.raises(TypingError, match="2-D"):
        njit(lambda x: row(x, 0, 0, 2))(X[0])
    with pytest.raises(TypingError, match="1-D"):
        njit(lambda X: span(X, 0, 2))(X)


@intrinsic
def _meminfo(typingctx, arr):
    """The address of ``arr``'s meminfo (0: it owns nothing)."""
    def codegen(context, builder, signature, args):
        return builder.ptrtoint(context.make_array(signature.args[0])(context, builder, args[0]).meminfo,
                                cgutils.intp_t)

    return types.intp(arr), codegen


class _Parts(NamedTuple):
    X: np.ndarray
    idx: np.ndarray
    n: int


@njit
def _borrow(parts, F):
    b = borrowed(parts)
    f = borrowed(F)
    b.X[1, 2] += 1000.0
    f[0, 1] += 7.0
    return (_meminfo(parts.X) != 0, _meminfo(b.X), _meminfo(b.idx), _meminfo(f), b.n, b.idx.sum(), b.X.shape,
            f.strides, f.copy())


def test_borrowed_arrays_are_the_same_and_own_nothing():
    parts = _Parts(np.arange(12.0).reshape(3, 4), np.arange(5, dtype=np.int32), 3)
    F = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    want_X, want_F = parts.X.copy(), F.copy()
    want_X[1, 2] += 1000.0
    want_F[0, 1] += 7.0
    owned, mi_X, mi_idx, mi_f, n, total, shape, strides, f = _borrow(parts, F)
    assert owned and (mi_X, mi_idx, mi_f) == (0, 0, 0)
    assert (n, total, shape, strides) == (3, 10, (3, 4), F.strides)
    assert np.array_equal(parts.X, want_X) and np.array_equal(F, want_F) and np.array_equal(f, want_F)


def test_borrowed_needs_an_array_and_nothing_else_counted():
    with pytest.raises(TypingError, match="borrowed takes an array"):
        njit(lambda n: borrowed((n, 2.0)))(3)
    with pytest.raises(TypingError, match="borrowed takes an array"):  # a string would be freed once too often
        njit(lambda x, name: borrowed((x, name)))(np.zeros(2), "v")


@pytest.mark.parametrize("dtype", [np.int32, np.float64])
@pytest.mark.parametrize("lo,hi", [(5, 85), (0, 16), (7, 8), (3, 3), (10, 10_000)])
def test_prefetch_span_asks_for_every_line_of_a_row_up_to_its_limit(monkeypatch, dtype, lo, hi):
    """:func:`~biosim.backends.phases.prefetch_span` (run as Python, its prefetches recorded): no
    index outside the span, no gap of a cache line or more, the span's first and last items (or,
    for a long span, ``SPAN_LINES`` lines from its start)."""
    from biosim.backends import phases

    asked = []
    monkeypatch.setattr(phases, "prefetch", lambda arr, i: asked.append(int(i)))
    arr = np.zeros(hi + 1, dtype)
    phases.prefetch_span.py_func(arr, lo, hi)
    step = phases.CACHE_LINE_BYTES // arr.itemsize
    end = min(hi, lo + phases.SPAN_LINES * step)
    if hi == lo:
        assert asked == []
        return
    assert all(lo <= i < end for i in asked)
    assert asked[0] == lo and max(asked) == end - 1
    assert all(0 < b - a <= step for a, b in zip(sorted(set(asked)), sorted(set(asked))[1:]))
    assert len(asked) <= phases.SPAN_LINES + 1


@pytest.mark.parametrize("n_spikes", [0, 2, 9])
def test_prefetch_rows_asks_for_the_first_spikes_rows_only(monkeypatch, n_spikes):
    """:func:`~biosim.backends.phases.prefetch_rows` (as Python, prefetches recorded): the bounds, then
    every line of the rows, of the first ``TARGETS_AHEAD`` spikes, and nothing else."""
    from biosim.backends import phases

    asked = []
    monkeypatch.setattr(phases, "prefetch", lambda arr, i: asked.append((arr.dtype.kind, int(i))))
    monkeypatch.setattr(phases, "prefetch_span", lambda arr, lo, hi: asked.append(("span", lo, hi)))
    indptr = np.array([0, 3, 3, 40, 41, 90, 100, 120, 130, 131, 160, 170, 200], dtype=np.int64)
    g0, base = 100, 1
    spikes = (g0 + np.array([4, 0, 9, 2, 7, 1, 3, 5, 6])[:n_spikes]).astype(np.int32)
    phases.prefetch_rows.py_func(spikes, g0, indptr, base, np.zeros(200, np.int32))
    first = [int(x) - g0 for x in spikes[:phases.TARGETS_AHEAD]]
    assert asked == ([("i", base + loc) for loc in first]
                     + [("span", indptr[base + loc], indptr[base + loc + 1]) for loc in first])
