r"""Izhikevich (2003) simple-model neurons with exponential synapses.

::

    dv/dt = 0.04 v^2 + 5 v + 140 - u + i_ext + ge + gi     (unless refractory)
    du/dt = a (b v - u)
    dge/dt = -ge / tau_exc,   dgi/dt = -gi / tau_inh

in Izhikevich's units: ``v`` in mV, time in ms, ``u``, ``i_ext``, ``ge`` and ``gi`` in mV/ms
(``ge``/``gi`` are synaptic currents: an inhibitory weight is negative). ``v`` and ``u`` are
advanced by forward Euler from the state at the start of the step (Brian2's ``method='euler'``;
Izhikevich's own code splits the ``v`` step into two halves, this does not); ``ge``/``gi`` decay
exactly. With ``t_ref_ms > 0``, ``v`` is frozen while refractory and ``u`` keeps integrating
(the default, 0, has no refractory period).

A spike is emitted when ``v > v_peak`` (outside the refractory period); the reset is ``v = c``,
``u = u + d``. Defaults are the regular-spiking cell (a, b, c, d) =
(0.02, 0.2, -65, 8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from biosim.neurons.base import ModelSpec, check_below, check_finite, check_positive

__all__ = ["Izhikevich", "IzhikevichConstants", "IZHIKEVICH_SPEC"]


@dataclass(frozen=True, kw_only=True)
class Izhikevich:
    """Parameters of the Izhikevich neuron (regular-spiking defaults)."""

    a: float = 0.02
    b: float = 0.2
    c_mv: float = -65.0
    d: float = 8.0
    v_peak_mv: float = 30.0
    tau_exc_ms: float = 5.0
    tau_inh_ms: float = 10.0
    t_ref_ms: float = 0.0

    def __post_init__(self):
        check_finite(self)
        check_positive(self, "tau_exc_ms", "tau_inh_ms")
        check_positive(self, "a", "t_ref_ms", allow_zero=True)
        check_below(self, "c_mv", "v_peak_mv", "the neuron would spike again at once after each reset")


class IzhikevichConstants(NamedTuple):
    """The per-step factors of :class:`Izhikevich` (the kernel's ``c``, in this order)."""

    dt: float           # ms
    dt_a: float         # dt * a
    b: float
    decay_exc: float    # ge decay per step
    decay_inh: float    # gi decay per step
    v_peak: float       # threshold (mV)
    v_reset: float      # reset value of v, Izhikevich's c (mV)
    d: float            # reset increment of u


#: Indices of :class:`IzhikevichConstants` in ``c`` (compile-time constants in the njit functions).
DT, DT_A, B, DECAY_EXC, DECAY_INH, V_PEAK, V_RESET, D = range(len(IzhikevichConstants._fields))


def _izhikevich_constants(p: Izhikevich, dt_ms: float) -> np.ndarray:
    return np.array(IzhikevichConstants(
        dt=dt_ms, dt_a=dt_ms * p.a, b=p.b, decay_exc=math.exp(-dt_ms / p.tau_exc_ms),
        decay_inh=math.exp(-dt_ms / p.tau_inh_ms), v_peak=p.v_peak_mv, v_reset=p.c_mv, d=p.d,
    ))


@njit(cache=True)
def izhikevich_step(X, i, c, i_ext, refractory):
    v = X[0][i]
    u = X[1][i]
    ge = X[2][i]
    gi = X[3][i]
    v_new = v + c[DT] * (0.04 * v * v + 5.0 * v + 140.0 - u + i_ext + ge + gi)
    X[0][i] = (v + 0.0) if refractory else v_new  # v + 0.0: see lif_step
    X[1][i] = u + c[DT_A] * (c[B] * v - u)
    X[2][i] = ge * c[DECAY_EXC]
    X[3][i] = gi * c[DECAY_INH]


@njit(cache=True)
def izhikevich_threshold(X, i, c):
    return X[0][i] > c[V_PEAK]


@njit(cache=True)
def izhikevich_reset(X, i, c):
    X[0][i] = c[V_RESET]
    X[1][i] += c[D]


IZHIKEVICH_SPEC = ModelSpec(
    name="izhikevich", params_cls=Izhikevich, var_names=("v", "u", "ge", "gi"),
    frozen_vars=("v",),
    constants=_izhikevich_constants,
    initial=lambda p: {"v": p.c_mv, "u": p.b * p.c_mv, "ge": 0.0, "gi": 0.0},
    t_ref_ms=lambda p: p.t_ref_ms,
    step=izhikevich_step, threshold=izhikevich_threshold, reset=izhikevich_reset, current_unit="mV/ms", var_units=("mV", "mV/ms", "mV/ms", "mV/ms"),
)
