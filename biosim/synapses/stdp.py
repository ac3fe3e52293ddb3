r"""Pair-based STDP with traces (all-to-all pairing), additive or multiplicative.

Each source ``i`` keeps a trace ``x_pre`` and each target ``j`` a trace ``x_post``:

.. math::

    \frac{dx_{pre}}{dt} = -\frac{x_{pre}}{\tau_{pre}}, \qquad
    \frac{dx_{post}}{dt} = -\frac{x_{post}}{\tau_{post}},

both jumping by 1 at a spike of their neuron. When a presynaptic spike arrives,
``w -= a_minus * x_post`` (multiplicative: ``* (w - w_min)``); when the target spikes,
``w += a_plus * x_pre`` (multiplicative: ``* (w_max - w)``); ``w`` is clipped to
``[w_min, w_max]``. For one pair with ``dt_spike = t_post - t_pre`` the additive rule gives the
exponential window ``a_plus * exp(-dt_spike/tau_pre)`` for ``dt_spike > 0`` and
``-a_minus * exp(dt_spike/tau_post)`` for ``dt_spike < 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from biosim.errors import BiosimError
from biosim.neurons.base import check_finite, check_positive

__all__ = ["STDP", "StdpConstants"]


class StdpConstants(NamedTuple):
    """One projection's row of the kernel's STDP constants (``Plan.st_c``), in this order."""

    decay_pre: float        # exp(-dt/tau_pre): x_pre decay per step
    decay_post: float       # exp(-dt/tau_post): x_post decay per step
    a_plus: float
    a_minus: float
    w_min: float
    w_max: float
    multiplicative: float   # 1.0 or 0.0


#: Indices of :class:`StdpConstants` in a row of ``Plan.st_c`` (compile-time constants in the kernel,
#: which imports them all, in this order: see :mod:`biosim.backends.kernel_body`).
DECAY_PRE, DECAY_POST, A_PLUS, A_MINUS, W_MIN, W_MAX, MULTIPLICATIVE = range(len(StdpConstants._fields))


@dataclass(frozen=True, kw_only=True)
class STDP:
    """Parameters of pair-based STDP (weights in the unit of the projection's weight)."""

    tau_pre_ms: float = 20.0
    tau_post_ms: float = 20.0
    a_plus: float = 0.01
    a_minus: float = 0.0105
    w_min: float = 0.0
    w_max: float = 1.0
    multiplicative: bool = False

    def __post_init__(self):
        check_finite(self)
        check_positive(self, "tau_pre_ms", "tau_post_ms")
        check_positive(self, "a_plus", "a_minus", allow_zero=True)
        if self.w_min > self.w_max:
            raise BiosimError(f"STDP.w_min = {self.w_min} is above STDP.w_max = {self.w_max}")

    def constants(self, dt_ms: float) -> np.ndarray:
        """The kernel's row, :class:`StdpConstants` as a float64 array."""
        return np.array(StdpConstants(
            decay_pre=math.exp(-dt_ms / self.tau_pre_ms), decay_post=math.exp(-dt_ms / self.tau_post_ms),
            a_plus=self.a_plus, a_minus=self.a_minus, w_min=self.w_min, w_max=self.w_max,
            multiplicative=float(self.multiplicative)))
