"""The kernel's unowned views (:func:`biosim.backends.phases.row` and ``span``): the same items as a
slice, writes reach the parent, and only C-contiguous arrays of the right rank are taken."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from biosim.backends.phases import row, span


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
