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
from typing import NamedTuple

import numpy as np
from numba import njit

from biosim.neurons.base import ModelSpec, check_below, check_finite, check_positive

__all__ = ["AdEx", "AdExConstants", "ADEX_SPEC", "EXP_ARG_MAX"]

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
        check_below(self, "v_reset_mv", "v_peak_mv", "the neuron would spike again at once after each reset")


class AdExConstants(NamedTuple):
    """The per-step factors of :class:`AdEx` (the kernel's ``c``, in this order)."""

    dt_over_c: float    # dt / C            (ms/pF)
    g_leak: float       # nS
    e_leak: float       # mV
    delta_t: float      # mV
    v_t: float          # mV
    dt_over_tau_w: float
    a: float            # nS
    decay_exc: float    # ge decay per step
    decay_inh: float    # gi decay per step
    v_peak: float       # threshold         (mV)
    v_reset: float      # mV
    b: float            # spike-triggered adaptation (pA)
    exp_arg_clamp: float  # exponent clamp (EXP_ARG_MAX)


#: Indices of :class:`AdExConstants` in ``c`` (compile-time constants in the njit functions).
(DT_OVER_C, G_LEAK, E_LEAK, DELTA_T, V_T, DT_OVER_TAU_W, A, DECAY_EXC, DECAY_INH, V_PEAK, V_RESET, B,
 EXP_ARG_CLAMP) = range(len(AdExConstants._fields))


def _adex_constants(p: AdEx, dt_ms: float) -> np.ndarray:
    return np.array(AdExConstants(
        dt_over_c=dt_ms / p.c_mem_pf, g_leak=p.g_leak_ns, e_leak=p.e_leak_mv, delta_t=p.delta_t_mv,
        v_t=p.v_t_mv, dt_over_tau_w=dt_ms / p.tau_w_ms, a=p.a_ns, decay_exc=math.exp(-dt_ms / p.tau_exc_ms),
        decay_inh=math.exp(-dt_ms / p.tau_inh_ms), v_peak=p.v_peak_mv, v_reset=p.v_reset_mv, b=p.b_pa,
        exp_arg_clamp=EXP_ARG_MAX,
    ))


@njit(cache=True)
def adex_step(X, i, c, i_ext, refractory):
    v = X[0][i]
    w = X[1][i]
    ge = X[2][i]
    gi = X[3][i]
    g_leak = c[G_LEAK]
    e_leak = c[E_LEAK]
    if not refractory:
        delta_t = c[DELTA_T]
        x = (v - c[V_T]) / delta_t
        if x > c[EXP_ARG_CLAMP]:
            x = c[EXP_ARG_CLAMP]
        X[0][i] = v + c[DT_OVER_C] * (g_leak * (e_leak - v) + g_leak * delta_t * math.exp(x) + ge + gi + i_ext - w)
    X[1][i] = w + c[DT_OVER_TAU_W] * (c[A] * (v - e_leak) - w)
    X[2][i] = ge * c[DECAY_EXC]
    X[3][i] = gi * c[DECAY_INH]


@njit(cache=True)
def adex_threshold(X, i, c):
    return X[0][i] > c[V_PEAK]


@njit(cache=True)
def adex_reset(X, i, c):
    X[0][i] = c[V_RESET]
    X[1][i] += c[B]


ADEX_SPEC = ModelSpec(
    name="adex", params_cls=AdEx, var_names=("v", "w", "ge", "gi"), frozen_vars=("v",),
    constants=_adex_constants,
    initial=lambda p: {"v": p.e_leak_mv, "w": 0.0, "ge": 0.0, "gi": 0.0},
    t_ref_ms=lambda p: p.t_ref_ms,
    step=adex_step, threshold=adex_threshold, reset=adex_reset, current_unit="pA", var_units=("mV", "pA", "pA", "pA"),
)
