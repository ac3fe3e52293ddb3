r"""Layer neurons: the discrete-time LIF family of the learning side and of NIR, written once.

The torch layers (:mod:`biosim.learn.layers`), the fused training kernel (:mod:`biosim.learn.fused`)
and the engine (this module's :data:`LAYER_LIF_SPEC`, which NIR graphs import into) all advance
these neurons with the functions below; the torch side calls their pure-Python form
(``fn.py_func``) on tensors, the kernels their compiled form. Per step of ``dt``, with the input
``x`` of the step held constant over it::

    i+ = i + x                                  (with a synaptic current; else i+ = x)
    v- = beta_mem * v + gain * (r * i+ + v_leak)          membrane()
    z  = H(v- - v_th)                                      distance to threshold: v- - v_th
    v' = v- - z * (v_th - v_reset)      reset "subtract"   reset_subtract()
         v- - z * (v- - v_reset)        reset "zero"       reset_zero()
    i' = beta_syn * i+

The factors come from :func:`coefficients`: for ``tau dv/dt = v_leak - v + r i`` integrated exactly
with the input held over the step (zero-order hold), ``beta = exp(-dt/tau)`` and
``gain = 1 - beta``; with forward Euler (snnTorch, norse) ``beta = 1 - dt/tau``, ``gain = dt/tau``;
a non-leaky integrate-and-fire neuron (``dv/dt = r i``, NIR's ``IF``) has ``beta = 1``,
``gain = dt`` (in the unit of ``1/r``). snnTorch's ``Leaky`` subtracts the threshold one step
late (reset ``"delayed"``: ``v- -= z_prev * v_th``, no reset after the spike).

In the engine the per-step input is ``x = x_syn + i_in``: ``x_syn`` collects the weights of the
spikes that arrived since the last step (projections target it) and is cleared by the step;
``i_in`` is a constant input per neuron (a bias, or an encoded analog input). A spike reaches the
next layer one step later than in a torch forward pass (the engine's schedule, as Brian2's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from numba import njit

from biosim.errors import BiosimError, unknown
from biosim.neurons.base import ModelSpec, check_finite

__all__ = [
    "METHODS", "RESETS", "Coefficients", "LayerLIF", "LAYER_LIF_SPEC", "coefficients", "decay", "membrane",
    "reset_subtract", "reset_zero",
]

#: Integration schemes: zero-order-hold exact, or forward Euler.
METHODS = ("exact", "euler")

#: Reset rules; the engine model numbers them in this order.
RESETS = ("subtract", "zero", "delayed")


# ----------------------------------------------------------------------------- the maths, once

def decay(dt_ms: float, tau_ms: float, method: str = "exact") -> float:
    """Decay per step of ``tau dv/dt = -v``: ``exp(-dt/tau)`` (exact) or ``1 - dt/tau`` (euler)."""
    if method not in METHODS:
        raise unknown("integration method", method, METHODS)
    if not (math.isfinite(tau_ms) and tau_ms > 0):
        raise BiosimError(f"time constant {tau_ms!r} ms must be > 0")
    return 1.0 - dt_ms / tau_ms if method == "euler" else math.exp(-dt_ms / tau_ms)


class Coefficients(NamedTuple):
    """Per-step factors of one layer (see the module docstring)."""

    beta_mem: float
    gain: float
    beta_syn: float


def coefficients(dt_ms: float, tau_mem_ms: float | None, tau_syn_ms: float = 0.0,
                 method: str = "exact") -> Coefficients:
    """The factors of :func:`membrane` and of the synaptic decay for one step of ``dt_ms``.

    ``tau_mem_ms=None`` is a non-leaky integrator (``beta_mem = 1``, ``gain = dt``); ``tau_syn_ms=0``
    means no synaptic current (``beta_syn = 0``).
    """
    if tau_mem_ms is None:
        beta, gain = 1.0, float(dt_ms)
    else:
        beta = decay(dt_ms, tau_mem_ms, method)
        gain = dt_ms / tau_mem_ms if method == "euler" else 1.0 - beta
    beta_syn = decay(dt_ms, tau_syn_ms, method) if tau_syn_ms else 0.0
    return Coefficients(beta, gain, beta_syn)


@njit(cache=True, inline="always")
def membrane(v, drive, beta_mem, gain):
    """The membrane potential before the reset: ``beta_mem * v + gain * drive`` (``drive`` is
    ``r * i+ + v_leak``; callers with ``r = 1`` and ``v_leak = 0`` pass ``i+``)."""
    return beta_mem * v + gain * drive


@njit(cache=True, inline="always")
def reset_subtract(v_pre, z, d_reset):
    """Reset by subtraction: ``v_pre - z * d_reset`` with ``d_reset = v_th - v_reset``."""
    return v_pre - z * d_reset


@njit(cache=True, inline="always")
def reset_zero(v_pre, z, v_reset):
    """Reset to a value: ``v_pre - z * (v_pre - v_reset)`` (``v_reset`` where ``z = 1``)."""
    return v_pre - z * (v_pre - v_reset)


# ----------------------------------------------------------------------------- the engine model

@dataclass(frozen=True, kw_only=True)
class LayerLIF:
    """A layer neuron in the engine (the population-wide defaults of its per-neuron factors).

    Every factor below is also a state variable of the same name, so a population can hold one
    value per neuron (``init={"beta_mem": array}``; NIR graphs do). Potentials are dimensionless.

    Attributes
    ----------
    beta_mem, gain, beta_syn : float
        Per-step factors from :func:`coefficients` (``beta_syn = 0``: no synaptic current).
    r : float
        Input resistance (multiplies the input current).
    w_in : float
        Input weight: ``i+ = i + w_in * x`` (without a synaptic current ``i`` stays 0, so
        ``i+ = w_in * x``).
    v_leak, v_th, v_reset : float
        Resting, threshold and reset potentials.
    reset : {"subtract", "zero", "delayed"}
        Reset rule (see the module docstring).
    spiking : bool
        False for a leaky integrator read-out (never spikes; record its ``v``).
    """

    beta_mem: float = math.exp(-0.1)
    gain: float = 1.0 - math.exp(-0.1)
    beta_syn: float = 0.0
    r: float = 1.0
    w_in: float = 1.0
    v_leak: float = 0.0
    v_th: float = 1.0
    v_reset: float = 0.0
    reset: str = "subtract"
    spiking: bool = True

    def __post_init__(self):
        check_finite(self)
        if self.reset not in RESETS:
            raise unknown("reset", self.reset, RESETS)

    @classmethod
    def from_time_constants(cls, dt_ms: float, tau_mem_ms: float | None, tau_syn_ms: float = 0.0,
                            method: str = "exact", **kw) -> LayerLIF:
        """Parameters with the factors of :func:`coefficients` for ``dt_ms``."""
        return cls(**coefficients(dt_ms, tau_mem_ms, tau_syn_ms, method)._asdict(), **kw)


#: Rows of the engine model's state, in order.
VARS = ("v", "i", "x_syn", "i_in", "z_prev", "beta_mem", "gain", "beta_syn", "r", "w_in", "v_leak", "v_th",
        "v_reset")
V, I_SYN, X_SYN, I_IN, Z_PREV, BETA_MEM, GAIN, BETA_SYN, R, W_IN, V_LEAK, V_TH, V_RESET = range(len(VARS))

#: Population-wide constants ``c``: spikes, reset rule (index in RESETS).
SPIKING, RESET_RULE = range(2)


def _constants(p: LayerLIF, dt_ms: float):
    return [1.0 if p.spiking else 0.0, float(RESETS.index(p.reset))]


def _initial(p: LayerLIF) -> dict:
    return {"v": p.v_leak, "i": 0.0, "x_syn": 0.0, "i_in": 0.0, "z_prev": 0.0, "beta_mem": p.beta_mem,
            "gain": p.gain, "beta_syn": p.beta_syn, "r": p.r, "w_in": p.w_in, "v_leak": p.v_leak,
            "v_th": p.v_th, "v_reset": p.v_reset}


@njit(cache=True)
def layer_lif_step(X, i, c, i_ext, refractory):
    # branch-free, so that the kernel's loop over neurons vectorises: without a synaptic current
    # beta_syn = 0 keeps i at 0 (i+ = 0 + w_in x, with w_in = 1); z_prev is 1 only after a spike
    # under the delayed reset
    x = X[X_SYN][i] + X[I_IN][i] + i_ext
    ip = X[I_SYN][i] + X[W_IN][i] * x
    X[I_SYN][i] = X[BETA_SYN][i] * ip
    v_pre = membrane(X[V][i], X[R][i] * ip + X[V_LEAK][i], X[BETA_MEM][i], X[GAIN][i])
    X[V][i] = v_pre - X[Z_PREV][i] * X[V_TH][i]
    X[Z_PREV][i] = 0
    X[X_SYN][i] = 0


@njit(cache=True)
def layer_lif_threshold(X, i, c):
    # '&', not 'and': Numba's short-circuit here costs ~200 ns per neuron
    return (X[V][i] - X[V_TH][i] > 0) & (c[SPIKING] != 0)


@njit(cache=True)
def layer_lif_reset(X, i, c):
    rule = c[RESET_RULE]
    if rule == 0:
        X[V][i] = reset_subtract(X[V][i], 1, X[V_TH][i] - X[V_RESET][i])
    elif rule == 1:
        X[V][i] = reset_zero(X[V][i], 1, X[V_RESET][i])
    else:
        X[Z_PREV][i] = 1


LAYER_LIF_SPEC = ModelSpec(
    name="layer_lif", params_cls=LayerLIF, var_names=VARS, frozen_vars=(), constants=_constants,
    initial=_initial, t_ref_ms=lambda p: 0.0, step=layer_lif_step, threshold=layer_lif_threshold,
    reset=layer_lif_reset, current_unit="1", var_units=("1",) * len(VARS),
)
