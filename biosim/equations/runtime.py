"""Functions generated model code calls: compiled helpers for the scalar maths and the exact
propagator of a linear system (computed once per population and time step)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["exprel", "clip", "exp_euler", "propagator"]


@njit(cache=True, inline="always")
def exprel(x):
    """``(exp(x) - 1) / x``, 1 at ``x == 0``."""
    if x == 0.0:
        return 1.0
    return math.expm1(x) / x


@njit(cache=True, inline="always")
def clip(x, lo, hi):
    """``x`` limited to ``[lo, hi]``."""
    return lo if x < lo else (hi if x > hi else x)


@njit(cache=True, inline="always")
def exp_euler(x, a, b, dt):
    r"""One exponential-Euler step of :math:`dx/dt = a x + b` with ``a``, ``b`` frozen over the step:
    :math:`x' = (x + b/a) e^{a\,dt} - b/a`, and the Euler step :math:`x + dt\,b` where ``a == 0``
    (its limit; Brian2 would give NaN there). Both are computed and one is selected: a branch
    here would make the neuron loop about twice as slow."""
    nonzero = a != 0.0
    ba = b / (a if nonzero else 1.0)
    y = (x + ba) * math.exp(a * dt) - ba
    return y if nonzero else x + dt * b


def propagator(M: np.ndarray, U: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact one-step solution of :math:`dx/dt = M x + U u` for inputs ``u`` constant over the step.

    Returns ``(Phi, Gamma)`` with :math:`x(t + dt) = \Phi x(t) + \Gamma u`, read off the matrix
    exponential of the augmented system :math:`\exp\left(dt \begin{pmatrix} M & U \\ 0 & 0
    \end{pmatrix}\right) = \begin{pmatrix} \Phi & \Gamma \\ 0 & I \end{pmatrix}` -- exact also
    where two time constants are equal (no closed form divides by their difference).
    """
    from scipy.linalg import expm

    n, k = U.shape
    aug = np.zeros((n + k, n + k))
    aug[:n, :n] = M
    aug[:n, n:] = U
    e = expm(aug * dt)
    return e[:n, :n], e[:n, n:]
