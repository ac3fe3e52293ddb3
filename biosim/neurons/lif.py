r"""Leaky integrate-and-fire neurons with exponential synapses.

Current-based (CUBA, :class:`LIF`), as in Brian2's CUBA example::

    dv/dt  = (v_rest - v + ge + gi + i_ext) / tau_mem     (unless refractory)
    dge/dt = -ge / tau_exc
    dgi/dt = -gi / tau_inh

``v``, ``ge``, ``gi`` and ``i_ext`` are in mV (``ge``/``gi`` are synaptic currents times the
membrane resistance). Integrated exactly: with ``e_x = exp(-dt/tau_x)``,

.. math::

    v' = v_r + (v - v_r) e_m + g_e\,k_e + g_i\,k_i + i_{ext} (1 - e_m),\qquad
    k_x = \frac{dt}{\tau_m} e_m\,\mathrm{exprel}\!\left(dt\left(\frac1{\tau_m} - \frac1{\tau_x}\right)\right)

which equals :math:`\frac{\tau_x}{\tau_x - \tau_m}(e_x - e_m)` and stays exact, without a division
by zero, when ``tau_x == tau_mem`` (where Brian2's closed form divides by zero).

Conductance-based (COBA, :class:`CondLIF`)::

    C dv/dt = g_leak (e_leak - v) + ge (e_exc - v) + gi (e_inh - v) + i_ext   (unless refractory)
    dge/dt  = -ge / tau_exc,   dgi/dt = -gi / tau_inh

with ``ge``/``gi`` in nS, ``i_ext`` in pA, ``C`` in pF; ``v`` is advanced by exponential Euler (exact
for conductances frozen over the step, as Brian2's ``exponential_euler``), ``ge``/``gi`` exactly.

Both spike when ``v > v_thresh`` (outside the refractory period) and reset ``v = v_reset``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from biosim.neurons.base import ModelSpec, check_below, check_finite, check_positive, exprel

__all__ = ["LIF", "CondLIF", "LIFConstants", "CondLIFConstants", "LIF_SPEC", "COND_LIF_SPEC"]


_RESET_WHY = "the neuron would spike again at every step after its refractory period"


@dataclass(frozen=True, kw_only=True)
class LIF:
    """Parameters of the current-based LIF neuron (Brian2 CUBA defaults)."""

    tau_mem_ms: float = 20.0
    tau_exc_ms: float = 5.0
    tau_inh_ms: float = 10.0
    v_rest_mv: float = -49.0
    v_thresh_mv: float = -50.0
    v_reset_mv: float = -60.0
    t_ref_ms: float = 5.0

    def __post_init__(self):
        check_finite(self)
        check_positive(self, "tau_mem_ms", "tau_exc_ms", "tau_inh_ms")
        check_positive(self, "t_ref_ms", allow_zero=True)
        check_below(self, "v_reset_mv", "v_thresh_mv", _RESET_WHY)


class LIFConstants(NamedTuple):
    """The per-step factors of :class:`LIF` (the kernel's ``c``, in this order)."""

    e_mem: float        # exp(-dt/tau_mem)
    decay_exc: float    # exp(-dt/tau_exc)
    decay_inh: float    # exp(-dt/tau_inh)
    k_exc: float        # weight of ge in v' (see the module docstring)
    k_inh: float        # weight of gi in v'
    v_rest: float       # mV
    v_thresh: float     # mV
    v_reset: float      # mV
    k_input: float      # 1 - e_mem, the weight of i_ext in v'


#: Indices of :class:`LIFConstants` in ``c`` (compile-time constants in the njit functions).
(LIF_E_MEM, LIF_DECAY_EXC, LIF_DECAY_INH, LIF_K_EXC, LIF_K_INH, LIF_V_REST, LIF_V_THRESH, LIF_V_RESET,
 LIF_K_INPUT) = range(len(LIFConstants._fields))


def _lif_constants(p: LIF, dt_ms: float) -> np.ndarray:
    em = math.exp(-dt_ms / p.tau_mem_ms)
    ke = dt_ms / p.tau_mem_ms * em * exprel(dt_ms * (1 / p.tau_mem_ms - 1 / p.tau_exc_ms))
    ki = dt_ms / p.tau_mem_ms * em * exprel(dt_ms * (1 / p.tau_mem_ms - 1 / p.tau_inh_ms))
    return np.array(LIFConstants(
        e_mem=em, decay_exc=math.exp(-dt_ms / p.tau_exc_ms), decay_inh=math.exp(-dt_ms / p.tau_inh_ms),
        k_exc=ke, k_inh=ki, v_rest=p.v_rest_mv, v_thresh=p.v_thresh_mv, v_reset=p.v_reset_mv,
        k_input=-math.expm1(-dt_ms / p.tau_mem_ms),
    ))


@njit(cache=True)
def lif_step(X, i, c, i_ext, refractory):
    v = X[0][i]
    ge = X[1][i]
    gi = X[2][i]
    v_rest = c[LIF_V_REST]
    v_new = v_rest + (v - v_rest) * c[LIF_E_MEM] + ge * c[LIF_K_EXC] + gi * c[LIF_K_INH] + i_ext * c[LIF_K_INPUT]
    # a select, not a branch, so that the loop vectorises; "v + 0.0" (equal to v, -0.0 becoming
    # +0.0) so that LLVM stores every neuron: a select between the value just loaded and a new one
    # becomes a masked store (vmaskmovpd), which AMD's Zen cores execute slowly (this step: 1.26 ->
    # 0.65 ns per neuron)
    X[0][i] = (v + 0.0) if refractory else v_new
    X[1][i] = ge * c[LIF_DECAY_EXC]
    X[2][i] = gi * c[LIF_DECAY_INH]


@njit(cache=True)
def lif_threshold(X, i, c):
    return X[0][i] > c[LIF_V_THRESH]


@njit(cache=True)
def lif_reset(X, i, c):
    X[0][i] = c[LIF_V_RESET]


LIF_SPEC = ModelSpec(
    name="lif", params_cls=LIF, var_names=("v", "ge", "gi"), frozen_vars=("v",),
    constants=_lif_constants,
    initial=lambda p: {"v": p.v_rest_mv, "ge": 0.0, "gi": 0.0},
    t_ref_ms=lambda p: p.t_ref_ms,
    step=lif_step, threshold=lif_threshold, reset=lif_reset, current_unit="mV", var_units=("mV", "mV", "mV"),
)


@dataclass(frozen=True, kw_only=True)
class CondLIF:
    """Parameters of the conductance-based LIF neuron (Brian2 COBA example defaults)."""

    c_mem_pf: float = 200.0
    g_leak_ns: float = 10.0
    e_leak_mv: float = -60.0
    e_exc_mv: float = 0.0
    e_inh_mv: float = -80.0
    tau_exc_ms: float = 5.0
    tau_inh_ms: float = 10.0
    v_thresh_mv: float = -50.0
    v_reset_mv: float = -60.0
    t_ref_ms: float = 5.0

    def __post_init__(self):
        check_finite(self)
        check_positive(self, "c_mem_pf", "g_leak_ns", "tau_exc_ms", "tau_inh_ms")
        check_positive(self, "t_ref_ms", allow_zero=True)
        check_below(self, "v_reset_mv", "v_thresh_mv", _RESET_WHY)


class CondLIFConstants(NamedTuple):
    """The per-step factors of :class:`CondLIF` (the kernel's ``c``, in this order). Conductances in
    nS, capacitance in pF, time in ms: ``g * dt / C`` is dimensionless."""

    dt_over_c: float    # dt / C (ms/pF)
    g_leak: float       # nS
    e_leak: float       # mV
    e_exc: float        # mV
    e_inh: float        # mV
    decay_exc: float    # exp(-dt/tau_exc)
    decay_inh: float    # exp(-dt/tau_inh)
    v_thresh: float     # mV
    v_reset: float      # mV


#: Indices of :class:`CondLIFConstants` in ``c``.
(COND_DT_OVER_C, COND_G_LEAK, COND_E_LEAK, COND_E_EXC, COND_E_INH, COND_DECAY_EXC, COND_DECAY_INH,
 COND_V_THRESH, COND_V_RESET) = range(len(CondLIFConstants._fields))


def _cond_lif_constants(p: CondLIF, dt_ms: float) -> np.ndarray:
    return np.array(CondLIFConstants(
        dt_over_c=dt_ms / p.c_mem_pf, g_leak=p.g_leak_ns, e_leak=p.e_leak_mv, e_exc=p.e_exc_mv,
        e_inh=p.e_inh_mv, decay_exc=math.exp(-dt_ms / p.tau_exc_ms), decay_inh=math.exp(-dt_ms / p.tau_inh_ms),
        v_thresh=p.v_thresh_mv, v_reset=p.v_reset_mv,
    ))


@njit(cache=True)
def cond_lif_step(X, i, c, i_ext, refractory):
    v = X[0][i]
    ge = X[1][i]
    gi = X[2][i]
    if not refractory:
        g_leak = c[COND_G_LEAK]
        g = g_leak + ge + gi
        v_inf = (g_leak * c[COND_E_LEAK] + ge * c[COND_E_EXC] + gi * c[COND_E_INH] + i_ext) / g
        X[0][i] = v_inf + (v - v_inf) * math.exp(-g * c[COND_DT_OVER_C])
    X[1][i] = ge * c[COND_DECAY_EXC]
    X[2][i] = gi * c[COND_DECAY_INH]


@njit(cache=True)
def cond_lif_threshold(X, i, c):
    return X[0][i] > c[COND_V_THRESH]


@njit(cache=True)
def cond_lif_reset(X, i, c):
    X[0][i] = c[COND_V_RESET]


COND_LIF_SPEC = ModelSpec(
    name="cond_lif", params_cls=CondLIF, var_names=("v", "ge", "gi"), frozen_vars=("v",),
    constants=_cond_lif_constants,
    initial=lambda p: {"v": p.e_leak_mv, "ge": 0.0, "gi": 0.0},
    t_ref_ms=lambda p: p.t_ref_ms,
    step=cond_lif_step, threshold=cond_lif_threshold, reset=cond_lif_reset, current_unit="pA", var_units=("mV", "nS", "nS"),
)
