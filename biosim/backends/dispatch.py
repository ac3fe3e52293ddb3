"""Model dispatch for compiled kernels: one branch per model id, calling the model's own maths.

Each branch hands the model a tuple of 1-D row views of one population (``X[var][i]`` with a
local ``i``): unlike 2-D indexing, this lets LLVM vectorise the neuron loops. Adding a neuron
model means adding one branch to each function here (and its spec to
``biosim.neurons.MODELS``); the kernels themselves do not change.
"""

from __future__ import annotations

from numba import njit

from biosim.neurons.adex import adex_reset, adex_step, adex_threshold
from biosim.neurons.hh import hh_reset, hh_step, hh_threshold
from biosim.neurons.izhikevich import izhikevich_reset, izhikevich_step, izhikevich_threshold
from biosim.neurons.lif import (
    cond_lif_reset, cond_lif_step, cond_lif_threshold, lif_reset, lif_step, lif_threshold,
)

__all__ = ["pop_step", "pop_threshold", "pop_reset"]


@njit(inline="always")
def _rows3(X, a, b):
    return (X[0, a:b], X[1, a:b], X[2, a:b])


@njit(inline="always")
def _rows4(X, a, b):
    return (X[0, a:b], X[1, a:b], X[2, a:b], X[3, a:b])


@njit(inline="always")
def _rows6(X, a, b):
    return (X[0, a:b], X[1, a:b], X[2, a:b], X[3, a:b], X[4, a:b], X[5, a:b])


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


@njit(cache=True)
def pop_step(model, X, a, b, c, i_ext, ref_until, s):
    """Advance neurons ``a..b-1`` of one population (model id ``model``) by one step."""
    e = i_ext[a:b]
    r = ref_until[a:b]
    if model == 0:
        _step_all(lif_step, _rows3(X, a, b), c, e, r, s)
    elif model == 1:
        _step_all(cond_lif_step, _rows3(X, a, b), c, e, r, s)
    elif model == 2:
        _step_all(adex_step, _rows4(X, a, b), c, e, r, s)
    elif model == 3:
        _step_all(izhikevich_step, _rows4(X, a, b), c, e, r, s)
    elif model == 4:
        _step_all(hh_step, _rows6(X, a, b), c, e, r, s)


@njit(cache=True)
def pop_threshold(model, X, a, b, c, ref_until, s, out):
    """Write the (global) indices of neurons ``a..b-1`` that spike at step ``s`` (threshold crossed,
    not refractory) into ``out[0:]`` in ascending order; return how many."""
    r = ref_until[a:b]
    if model == 0:
        return _threshold_all(lif_threshold, _rows3(X, a, b), c, r, s, a, out)
    elif model == 1:
        return _threshold_all(cond_lif_threshold, _rows3(X, a, b), c, r, s, a, out)
    elif model == 2:
        return _threshold_all(adex_threshold, _rows4(X, a, b), c, r, s, a, out)
    elif model == 3:
        return _threshold_all(izhikevich_threshold, _rows4(X, a, b), c, r, s, a, out)
    elif model == 4:
        return _threshold_all(hh_threshold, _rows6(X, a, b), c, r, s, a, out)
    return 0


@njit(cache=True)
def pop_reset(model, X, a, b, c, spiking):
    """Reset the neurons whose global indices are in ``spiking`` (all within ``a..b-1``)."""
    if model == 0:
        _reset_all(lif_reset, _rows3(X, a, b), c, spiking, a)
    elif model == 1:
        _reset_all(cond_lif_reset, _rows3(X, a, b), c, spiking, a)
    elif model == 2:
        _reset_all(adex_reset, _rows4(X, a, b), c, spiking, a)
    elif model == 3:
        _reset_all(izhikevich_reset, _rows4(X, a, b), c, spiking, a)
    elif model == 4:
        _reset_all(hh_reset, _rows6(X, a, b), c, spiking, a)
