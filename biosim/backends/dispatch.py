"""Model dispatch for compiled kernels: one branch per model id, calling the model's own maths.

Adding a neuron model means adding its three functions here (and its spec to
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

__all__ = ["pop_step", "threshold", "reset"]


@njit(cache=True)
def pop_step(model, X, a, b, c, i_ext, ref_until, s):
    """Advance neurons ``a..b-1`` of one population (model id ``model``) by one step."""
    if model == 0:
        for i in range(a, b):
            lif_step(X, i, c, i_ext[i], s < ref_until[i])
    elif model == 1:
        for i in range(a, b):
            cond_lif_step(X, i, c, i_ext[i], s < ref_until[i])
    elif model == 2:
        for i in range(a, b):
            adex_step(X, i, c, i_ext[i], s < ref_until[i])
    elif model == 3:
        for i in range(a, b):
            izhikevich_step(X, i, c, i_ext[i], s < ref_until[i])
    elif model == 4:
        for i in range(a, b):
            hh_step(X, i, c, i_ext[i], s < ref_until[i])


@njit(cache=True)
def threshold(model, X, i, c):
    """Whether neuron ``i`` crossed threshold."""
    if model == 0:
        return lif_threshold(X, i, c)
    elif model == 1:
        return cond_lif_threshold(X, i, c)
    elif model == 2:
        return adex_threshold(X, i, c)
    elif model == 3:
        return izhikevich_threshold(X, i, c)
    elif model == 4:
        return hh_threshold(X, i, c)
    return False


@njit(cache=True)
def reset(model, X, i, c):
    """Reset neuron ``i`` after a spike."""
    if model == 0:
        lif_reset(X, i, c)
    elif model == 1:
        cond_lif_reset(X, i, c)
    elif model == 2:
        adex_reset(X, i, c)
    elif model == 3:
        izhikevich_reset(X, i, c)
    elif model == 4:
        hh_reset(X, i, c)
