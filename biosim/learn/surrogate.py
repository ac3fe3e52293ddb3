r"""Spike functions with surrogate gradients.

The forward pass is the Heaviside step of the distance to threshold ``x = v - v_th``:

.. math::

    z = H(x) = \begin{cases} 1, & x > 0 \\ 0, & x \le 0 \end{cases}

whose true derivative is zero almost everywhere. The backward pass replaces :math:`H'(x)` by a
smooth pseudo-derivative :math:`\sigma'(x)` of width set by ``alpha`` (larger is sharper):

=================  ===========================================================  ================
kind               :math:`\sigma'(x)`                                           also known as
=================  ===========================================================  ================
``fast_sigmoid``   :math:`1 / (\alpha |x| + 1)^2`                               SuperSpike
``arctan``         :math:`\frac{\alpha}{2} / (1 + (\frac{\pi}{2} \alpha x)^2)`  snnTorch ``atan``
``sigmoid``        :math:`\alpha\, s (1 - s)`, :math:`s = 1/(1 + e^{-\alpha x})`
``triangle``       :math:`\alpha \max(0, 1 - \alpha |x|)`                       Esser/Bellec
=================  ===========================================================  ================

Unlike norse 1.1.0 (whose SuperSpike ignores its ``alpha``), ``alpha`` is always honoured. The
gradient that reaches ``x`` is ``grad_output * sigma'(x)``.

Each :math:`\sigma'` is written once, in :data:`FORMULAS`, over a few primitives (``abs``, ``exp``,
``sq``, ``relu`` and ``F``, a float of the computation's type); :func:`surrogate_grad` evaluates
them on tensors and :func:`numba_grad` compiles them to scalar Numba functions (the fused training
kernel of :mod:`biosim.learn.fused` calls those).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from biosim.errors import BiosimError, unknown

__all__ = ["FORMULAS", "SURROGATES", "Surrogate", "spike", "surrogate_grad", "numba_grad", "heaviside"]

#: Kinds of surrogate gradient -> one-line description.
SURROGATES = {
    "fast_sigmoid": "SuperSpike / fast sigmoid 1/(alpha|x|+1)^2",
    "arctan": "alpha/2 / (1 + (pi/2 alpha x)^2)",
    "sigmoid": "alpha s (1 - s), s = sigmoid(alpha x)",
    "triangle": "alpha max(0, 1 - alpha|x|)",
}


@dataclass(frozen=True, kw_only=True)
class Surrogate:
    """Which pseudo-derivative the spike function uses in the backward pass.

    Attributes
    ----------
    kind : str
        One of :data:`SURROGATES`.
    alpha : float
        Sharpness, in 1/(units of ``x``) (``x`` is dimensionless here: ``v - v_th``); > 0.
    """

    kind: str = "fast_sigmoid"
    alpha: float = 10.0

    def __post_init__(self):
        if self.kind not in SURROGATES:
            raise unknown("surrogate", self.kind, SURROGATES)
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha > 0):
            raise BiosimError(f"surrogate alpha = {self.alpha!r} is out of range (must be > 0)")


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """``1.0`` where ``x > 0`` else ``0.0`` (same dtype and shape as ``x``; no gradient)."""
    return torch.gt(x, 0.0).to(x.dtype)


#: :math:`\sigma'(x)` of each kind, in terms of ``x``, ``alpha`` and the primitives ``abs``, ``exp``,
#: ``sq`` (square), ``relu`` (``max(0, .)``) and ``F`` (a constant in the type of ``x``).
FORMULAS = {
    "fast_sigmoid": "F(1) / sq(alpha * abs(x) + F(1))",
    "arctan": "alpha / F(2) / (F(1) + sq(F(math.pi / 2) * alpha * x))",
    "sigmoid": "alpha * exp(-alpha * abs(x)) / sq(F(1) + exp(-alpha * abs(x)))",
    "triangle": "alpha * relu(F(1) - alpha * abs(x))",
}


def _compile(kind: str, namespace: dict):
    if kind not in FORMULAS:
        raise unknown("surrogate", kind, SURROGATES)
    return eval(f"lambda x, alpha: {FORMULAS[kind]}", {"math": math, **namespace})  # noqa: S307 - our own table


_TORCH = {"abs": torch.abs, "exp": torch.exp, "sq": torch.square, "relu": torch.relu, "F": float}


def surrogate_grad(x: torch.Tensor, kind: str, alpha: float) -> torch.Tensor:
    r"""The pseudo-derivative :math:`\sigma'(x)` of ``kind`` (see the module table), elementwise."""
    return _torch_grad(kind)(x, alpha)


@functools.lru_cache(maxsize=None)
def _torch_grad(kind: str):
    return _compile(kind, _TORCH)


@functools.lru_cache(maxsize=None)
def numba_grad(kind: str, dtype: str):
    r"""``kind``'s :math:`\sigma'` as a Numba function ``(x, alpha) -> float`` computing in ``dtype``
    (``"float32"`` or ``"float64"``; ``x`` and ``alpha`` of that type), inlined where it is called."""
    from numba import njit

    F = np.dtype(dtype).type

    @njit(inline="always")
    def sq(y):
        return y * y

    @njit(inline="always")
    def relu(y):
        return y if y > F(0) else F(0)

    return njit(inline="always")(_compile(kind, {"abs": abs, "exp": np.exp, "sq": sq, "relu": relu, "F": F}))


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(x, kind, alpha):
        return heaviside(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, kind, alpha = inputs
        ctx.save_for_backward(x)
        ctx.kind, ctx.alpha = kind, alpha

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * surrogate_grad(x, ctx.kind, ctx.alpha), None, None


def spike(x: torch.Tensor, surrogate: Surrogate = Surrogate()) -> torch.Tensor:
    """Heaviside step of ``x`` forward, ``surrogate``'s pseudo-derivative backward.

    Parameters
    ----------
    x : torch.Tensor
        Distance to threshold, ``v - v_th``, any shape.
    surrogate : Surrogate
        Kind and sharpness of the backward pass.

    Returns
    -------
    torch.Tensor
        Spikes in {0, 1}, same shape and dtype as ``x``.
    """
    return _Spike.apply(x, surrogate.kind, float(surrogate.alpha))
