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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from biosim.errors import BiosimError, unknown

__all__ = ["SURROGATES", "Surrogate", "spike", "surrogate_grad", "heaviside"]

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


def surrogate_grad(x: torch.Tensor, kind: str, alpha: float) -> torch.Tensor:
    r"""The pseudo-derivative :math:`\sigma'(x)` of ``kind`` (see the module table), elementwise."""
    if kind == "fast_sigmoid":
        return 1.0 / (alpha * x.abs() + 1.0) ** 2
    if kind == "arctan":
        return (alpha / 2) / (1.0 + (math.pi / 2 * alpha * x) ** 2)
    if kind == "sigmoid":
        s = torch.sigmoid(alpha * x)
        return alpha * s * (1.0 - s)
    if kind == "triangle":
        return alpha * torch.clamp(1.0 - alpha * x.abs(), min=0.0)
    raise unknown("surrogate", kind, SURROGATES)


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
