r"""Traub-Miles Hodgkin-Huxley neurons with exponential conductance synapses (Brian2's COBAHH).

::

    C dv/dt = g_leak (e_leak - v) + ge (e_exc - v) + gi (e_inh - v)
              - g_na m^3 h (v - e_na) - g_kd n^4 (v - e_k) + i_ext
    dx/dt   = alpha_x(v) (1 - x) - beta_x(v) x          for x in m, h, n
    dge/dt  = -ge / tau_exc,   dgi/dt = -gi / tau_inh

with, in mV and 1/ms (``V_T`` = ``v_t_mv``, ``exprel(x) = (e^x - 1)/x``)::

    alpha_m = 0.32 * 4 / exprel((13 - v + V_T) / 4)    beta_m = 0.28 * 5 / exprel((v - V_T - 40) / 5)
    alpha_h = 0.128 exp((17 - v + V_T) / 18)           beta_h = 4 / (1 + exp((40 - v + V_T) / 5))
    alpha_n = 0.032 * 5 / exprel((15 - v + V_T) / 5)   beta_n = 0.5 exp((10 - v + V_T) / 40)

exactly as Brian2's ``examples/COBAHH.py``. Membrane and channel densities are given per area
(DESIGN.md section 5) and turned into totals for the cell's ``area_um2``: ``C`` in pF, conductances
(and ``ge``, ``gi``) in nS, ``i_ext`` in pA, ``v`` in mV, time in ms.

Integrated by exponential Euler, as Brian2's ``exponential_euler``: every equation is written
``dx/dt = A + B x`` with ``A`` and ``B`` evaluated at the state at the start of the step (every
variable from the old values), and advanced by the exact solution for frozen ``A``, ``B``::

    x' = x_inf + (x - x_inf) exp(B dt),    x_inf = -A / B

i.e. ``m' = m_inf + (m - m_inf) exp(-(alpha_m + beta_m) dt)`` with ``m_inf = alpha_m/(alpha_m +
beta_m)``, ``v' = v_inf + (v - v_inf) exp(-g dt / C)`` with ``g`` the total conductance and
``v_inf`` the conductance-weighted reversal potential (plus ``i_ext / g``), and ``ge``/``gi`` decay
exactly. (Where ``g`` is exactly 0 -- a negative ``gi`` can cancel the rest -- ``v`` takes the
Euler step, the limit of the formula; Brian2 would produce NaN.)

A spike is emitted when ``v > v_thresh`` outside the refractory period (3 ms); there is no reset
and no variable is frozen while refractory: the refractory period only keeps a spike's upstroke
from being counted again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from biosim.neurons.base import ModelSpec, check_finite, check_positive, exprel
from biosim.neurons.fastmath_exp import exp, expm1, prefer_gathers, where

__all__ = ["HH", "HHConstants", "HH_SPEC", "hh_rates"]

#: 1 in float32 (``where`` keeps a float32 divisor a float32; with float64 it unifies to 1.0).
_ONE32 = np.float32(1.0)


@njit(inline="always")
def _exprel(x):
    """:func:`biosim.neurons.base.exprel`, bit for bit, without a branch: ``expm1(x) / x``, and 1
    where ``x == 0`` (the divisor there is 1, so Python does not raise and nothing traps)."""
    nonzero = x != 0.0
    return where(nonzero, expm1(x) / where(nonzero, x, _ONE32), 1.0)


@dataclass(frozen=True, kw_only=True)
class HH:
    """Parameters of the Traub-Miles HH neuron (Brian2's COBAHH example values)."""

    area_um2: float = 20000.0
    c_mem_uf_per_cm2: float = 1.0
    g_leak_s_per_cm2: float = 5e-5
    g_na_ms_per_cm2: float = 100.0
    g_kd_ms_per_cm2: float = 30.0
    e_leak_mv: float = -60.0
    e_k_mv: float = -90.0
    e_na_mv: float = 50.0
    v_t_mv: float = -63.0
    e_exc_mv: float = 0.0
    e_inh_mv: float = -80.0
    tau_exc_ms: float = 5.0
    tau_inh_ms: float = 10.0
    v_thresh_mv: float = -20.0
    t_ref_ms: float = 3.0

    def __post_init__(self):
        check_finite(self)
        check_positive(self, "area_um2", "c_mem_uf_per_cm2", "tau_exc_ms", "tau_inh_ms")
        check_positive(self, "g_leak_s_per_cm2", "g_na_ms_per_cm2", "g_kd_ms_per_cm2", "t_ref_ms",
                       allow_zero=True)

    # Totals for the whole cell: 1 um^2 = 1e-8 cm^2.
    @property
    def c_mem_pf(self) -> float:
        """Membrane capacitance (pF): uF/cm^2 * cm^2 * 1e6."""
        return self.c_mem_uf_per_cm2 * self.area_um2 * 1e-2

    @property
    def g_leak_ns(self) -> float:
        """Leak conductance (nS): S/cm^2 * cm^2 * 1e9."""
        return self.g_leak_s_per_cm2 * self.area_um2 * 10.0

    @property
    def g_na_ns(self) -> float:
        """Maximal sodium conductance (nS): mS/cm^2 * cm^2 * 1e6."""
        return self.g_na_ms_per_cm2 * self.area_um2 * 1e-2

    @property
    def g_kd_ns(self) -> float:
        """Maximal potassium conductance (nS): mS/cm^2 * cm^2 * 1e6."""
        return self.g_kd_ms_per_cm2 * self.area_um2 * 1e-2


class HHConstants(NamedTuple):
    """The per-step factors of :class:`HH` (the kernel's ``c``, in this order): totals for the
    cell, conductances in nS, potentials in mV."""

    dt: float           # ms
    dt_over_c: float    # dt / C (ms/pF)
    g_leak: float
    e_leak: float
    g_na: float
    e_na: float
    g_kd: float
    e_k: float
    v_t: float
    e_exc: float
    e_inh: float
    decay_exc: float    # ge decay per step
    decay_inh: float    # gi decay per step
    v_thresh: float


#: Indices of :class:`HHConstants` in ``c`` (compile-time constants in the njit functions).
(DT, DT_OVER_C, G_LEAK, E_LEAK, G_NA, E_NA, G_KD, E_K, V_T, E_EXC, E_INH, DECAY_EXC, DECAY_INH,
 V_THRESH) = range(len(HHConstants._fields))


def _hh_constants(p: HH, dt_ms: float) -> np.ndarray:
    return np.array(HHConstants(
        dt=dt_ms, dt_over_c=dt_ms / p.c_mem_pf, g_leak=p.g_leak_ns, e_leak=p.e_leak_mv, g_na=p.g_na_ns,
        e_na=p.e_na_mv, g_kd=p.g_kd_ns, e_k=p.e_k_mv, v_t=p.v_t_mv, e_exc=p.e_exc_mv, e_inh=p.e_inh_mv,
        decay_exc=math.exp(-dt_ms / p.tau_exc_ms), decay_inh=math.exp(-dt_ms / p.tau_inh_ms),
        v_thresh=p.v_thresh_mv,
    ))


def hh_rates(v_mv: float, v_t_mv: float = -63.0) -> tuple[float, float, float, float, float, float]:
    """``(alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n)`` in 1/ms at membrane potential ``v_mv``."""
    u = v_t_mv - v_mv
    return (1.28 / exprel((13.0 + u) / 4.0), 1.4 / exprel((-u - 40.0) / 5.0),
            0.128 * math.exp((17.0 + u) / 18.0), 4.0 / (1.0 + math.exp((40.0 + u) / 5.0)),
            0.16 / exprel((15.0 + u) / 5.0), 0.5 * math.exp((10.0 + u) / 40.0))


def _hh_initial(p: HH) -> dict:
    """Rest at ``e_leak`` with every gate at its steady state there (Brian2's example starts the
    gates at 0 instead; :func:`biosim.experiments.cobahh.build_cobahh` does that)."""
    am, bm, ah, bh, an, bn = hh_rates(p.e_leak_mv, p.v_t_mv)
    return {"v": p.e_leak_mv, "m": am / (am + bm), "h": ah / (ah + bh), "n": an / (an + bn),
            "ge": 0.0, "gi": 0.0}


# Not cache=True: Numba keys a function's cache on its own file, and this one compiles in
# fastmath_exp's exp/expm1/where, whose edits it would not notice. The generated kernel that inlines
# it is cached under a name that hashes both files (biosim.backends.numba_cpu).
#
# Written so that the kernel's loop over neurons vectorises (4 neurons at a time with AVX2): exp
# and expm1 are biosim.neurons.fastmath_exp's (bit for bit glibc's, inlined, no call), there is no
# branch (``where`` is a select; the kernel compiles model steps with Numba's error_model="numpy",
# so ``/`` has no zero-divisor check), ``prefer_gathers()`` lets LLVM load exp's table entries with
# vector gathers (else it scalarises most of the loop), and every value is what the branchy form
# gave, bit for bit.
# In Python (the NumPy reference), exp/expm1 are math's and ``where`` is ``a if cond else b``.
@njit
def hh_step(X, i, c, i_ext, refractory):
    prefer_gathers()
    v = X[0][i]
    m = X[1][i]
    h = X[2][i]
    n = X[3][i]
    ge = X[4][i]
    gi = X[5][i]
    dt = c[DT]
    vt = c[V_T]
    # gates: dx/dt = alpha (1 - x) - beta x
    am = 1.28 / _exprel((13.0 - v + vt) / 4.0)
    bm = 1.4 / _exprel((v - vt - 40.0) / 5.0)
    ah = 0.128 * exp((17.0 - v + vt) / 18.0)
    bh = 4.0 / (1.0 + exp((40.0 - v + vt) / 5.0))
    an = 0.16 / _exprel((15.0 - v + vt) / 5.0)
    bn = 0.5 * exp((10.0 - v + vt) / 40.0)
    s = am + bm
    x_inf = am / s
    X[1][i] = x_inf + (m - x_inf) * exp(-s * dt)
    s = ah + bh
    x_inf = ah / s
    X[2][i] = x_inf + (h - x_inf) * exp(-s * dt)
    s = an + bn
    x_inf = an / s
    X[3][i] = x_inf + (n - x_inf) * exp(-s * dt)
    # membrane: C dv/dt = sum_k g_k (E_k - v) + i_ext
    g_leak = c[G_LEAK]
    g_na = c[G_NA] * (m * m * m) * h
    g_kd = c[G_KD] * (n * n * n * n)
    g = g_leak + ge + gi + g_na + g_kd
    drive = g_leak * c[E_LEAK] + ge * c[E_EXC] + gi * c[E_INH] + g_na * c[E_NA] + g_kd * c[E_K] + i_ext
    # g == 0 (a negative gi cancelling the rest): the Euler step, the limit of the formula
    nonzero = g != 0.0
    v_inf = drive / where(nonzero, g, dt)
    X[0][i] = where(nonzero, v_inf + (v - v_inf) * exp(-g * c[DT_OVER_C]), v + c[DT_OVER_C] * drive)
    X[4][i] = ge * c[DECAY_EXC]
    X[5][i] = gi * c[DECAY_INH]


@njit(cache=True)
def hh_threshold(X, i, c):
    return X[0][i] > c[V_THRESH]


@njit(cache=True)
def hh_reset(X, i, c):
    pass


HH_SPEC = ModelSpec(
    name="hh", params_cls=HH, var_names=("v", "m", "h", "n", "ge", "gi"), frozen_vars=(),
    constants=_hh_constants,
    initial=_hh_initial,
    t_ref_ms=lambda p: p.t_ref_ms,
    step=hh_step, threshold=hh_threshold, reset=hh_reset, current_unit="pA", var_units=("mV", "1", "1", "1", "nS", "nS"),
)
