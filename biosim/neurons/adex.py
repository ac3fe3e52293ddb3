r"""Adaptive exponential integrate-and-fire neurons (Brette & Gerstner 2005).

::

    C dv/dt    = g_leak (e_leak - v) + g_leak delta_t exp((v - v_t) / delta_t)
                 + ge + gi + i_ext - w                                   (unless refractory)
    tau_w dw/dt = a (v - e_leak) - w
    dge/dt = -ge / tau_exc,   dgi/dt = -gi / tau_inh

``v`` in mV, ``w``, ``ge``, ``gi`` and ``i_ext`` in pA (``ge``/``gi`` are exponential synaptic
*currents*: an inhibitory weight is negative), ``C`` in pF, ``g_leak`` and ``a`` in nS, time in ms
(pA/pF = mV/ms, nS * mV = pA).

``v`` and ``w`` are advanced by forward Euler from the state at the start of the step, as Brian2's
``method='euler'`` does; ``ge``/``gi`` decay exactly (``ge' = ge exp(-dt/tau_exc)``). While the
neuron is refractory ``v`` is frozen and ``w`` keeps integrating.

A spike is emitted when ``v > v_peak`` (outside the refractory period); the reset is
``v = v_reset``, ``w = w + b``.

Overflow guard: the exponent :math:`x = (v - v_t)/\Delta_T` is clamped at
:data:`EXP_ARG_MAX` (= 50) before ``exp``. Below the clamp the update is exactly the forward-Euler
step; at or above it the exponential term alone moves ``v`` by
:math:`dt\,g_L\Delta_T e^{50}/C` (about :math:`10^{20}` mV for any sensible parameters) so ``v``
is far past ``v_peak`` either way and the spike falls on the same step as without the clamp --
but the value stays finite (also in float32) so the threshold, not the engine's NaN/inf check, sees
the upstroke. The clamp is reached only when ``v`` starts a step more than :math:`50\Delta_T`
above ``v_t``: with ``v_peak < v_t + 50 delta_t`` (every usual parameter set) only after synaptic
input pushed ``v`` past ``v_peak``, which spikes on that step anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from biosim.neurons.base import ModelSpec, check_finite, check_positive

__all__ = ["AdEx", "ADEX_SPEC", "EXP_ARG_MAX"]

#: Upper clamp of the exponent ``(v - v_t) / delta_t`` (see the module docstring).
EXP_ARG_MAX = 50.0


@dataclass(frozen=True, kw_only=True)
class AdEx:
    """Parameters of the AdEx neuron (Brette & Gerstner 2005; Brian2's example values).

    ``v_peak_mv`` is the spike threshold (Brian2's ``Vcut = VT + 5 DeltaT``).
    """

    c_mem_pf: float = 281.0
    g_leak_ns: float = 30.0
    e_leak_mv: float = -70.6
    delta_t_mv: float = 2.0
    v_t_mv: float = -50.4
    v_peak_mv: float = -40.4
    v_reset_mv: float = -70.6
    tau_w_ms: float = 144.0
    a_ns: float = 4.0
    b_pa: float = 80.5
    tau_exc_ms: float = 5.0
    tau_inh_ms: float = 10.0
    t_ref_ms: float = 0.0

    def __post_init__(self):
        check_finite(self)
        check_positive(self, "c_mem_pf", "g_leak_ns", "delta_t_mv", "tau_w_ms", "tau_exc_ms", "tau_inh_ms")
        check_positive(self, "t_ref_ms", allow_zero=True)


def _adex_constants(p: AdEx, dt_ms: float) -> np.ndarray:
    return np.array([
        dt_ms / p.c_mem_pf,                 # 0  dt / C            (ms/pF)
        p.g_leak_ns,                        # 1  g_leak            (nS)
        p.e_leak_mv,                        # 2  e_leak            (mV)
        p.delta_t_mv,                       # 3  delta_t           (mV)
        p.v_t_mv,                           # 4  v_t               (mV)
        dt_ms / p.tau_w_ms,                 # 5  dt / tau_w
        p.a_ns,                             # 6  a                 (nS)
        math.exp(-dt_ms / p.tau_exc_ms),    # 7  ge decay per step
        math.exp(-dt_ms / p.tau_inh_ms),    # 8  gi decay per step
        p.v_peak_mv,                        # 9  threshold         (mV)
        p.v_reset_mv,                       # 10 reset             (mV)
        p.b_pa,                             # 11 spike-triggered adaptation (pA)
        EXP_ARG_MAX,                        # 12 exponent clamp
    ])


@njit(cache=True)
def adex_step(X, i, c, i_ext, refractory):
    v = X[0][i]
    w = X[1][i]
    ge = X[2][i]
    gi = X[3][i]
    if not refractory:
        x = (v - c[4]) / c[3]
        if x > c[12]:
            x = c[12]
        X[0][i] = v + c[0] * (c[1] * (c[2] - v) + c[1] * c[3] * math.exp(x) + ge + gi + i_ext - w)
    X[1][i] = w + c[5] * (c[6] * (v - c[2]) - w)
    X[2][i] = ge * c[7]
    X[3][i] = gi * c[8]


@njit(cache=True)
def adex_threshold(X, i, c):
    return X[0][i] > c[9]


@njit(cache=True)
def adex_reset(X, i, c):
    X[0][i] = c[10]
    X[1][i] += c[11]


ADEX_SPEC = ModelSpec(
    name="adex", params_cls=AdEx, var_names=("v", "w", "ge", "gi"), frozen_vars=("v",),
    constants=_adex_constants,
    initial=lambda p: {"v": p.e_leak_mv, "w": 0.0, "ge": 0.0, "gi": 0.0},
    t_ref_ms=lambda p: p.t_ref_ms,
    step=adex_step, threshold=adex_threshold, reset=adex_reset, current_unit="pA", var_units=("mV", "pA", "pA", "pA"),
)
