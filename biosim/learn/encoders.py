r"""Turning images into input for a spiking network over ``steps`` time steps.

All encoders take intensities ``x`` in [0, 1] of any shape ``S`` (e.g. ``(batch, 1, 28, 28)``) and
return a tensor of shape ``(steps, *S)``, time first:

``current`` (direct current)
    :math:`I_t = g\,x` at every step: the analog image is the input current of the first layer.
    Returned as an expanded view (stride 0 in time), which
    :class:`biosim.learn.network.SpikingNet` recognises to compute the first layer once.
``poisson`` (rate code)
    :math:`s_t \sim \mathrm{Bernoulli}(\min(1, g\,x))` independently at each step and pixel, so
    the expected count over ``T`` steps is :math:`T \min(1, g x)`.
``latency`` (time-to-first-spike)
    one spike at step :math:`t = \mathrm{round}((1 - x)(T - 1))` for pixels with
    :math:`x > x_{min}`, none otherwise: bright pixels fire first.
"""

from __future__ import annotations

import torch

from biosim.errors import BiosimError, unknown

__all__ = ["ENCODERS", "current", "poisson", "latency", "encode"]

#: encoder kind -> one-line description
ENCODERS = {
    "current": "direct current: the image is a constant input current (gain * x)",
    "poisson": "Poisson rate code: spike with probability gain * x at each step",
    "latency": "latency code: one spike, earlier for brighter pixels",
}


def _check(x: torch.Tensor, steps: int):
    if steps < 1:
        raise BiosimError(f"encoder steps = {steps} must be >= 1")
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise BiosimError("encoder input must be intensities in [0, 1]")


def current(x: torch.Tensor, steps: int, gain: float = 1.0) -> torch.Tensor:
    """Direct-current encoding: ``gain * x`` repeated ``steps`` times (an expanded view).

    Parameters
    ----------
    x : torch.Tensor
        Intensities in [0, 1], shape ``S``.
    steps : int
        Number of time steps ``T``.
    gain : float
        Current per unit intensity (membrane-potential units).

    Returns
    -------
    torch.Tensor
        Shape ``(T, *S)``, stride 0 along time (do not write into it).
    """
    _check(x, steps)
    return (x * gain).unsqueeze(0).expand(steps, *x.shape)


def poisson(x: torch.Tensor, steps: int, gain: float = 1.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Poisson (Bernoulli per step) rate encoding.

    Parameters
    ----------
    x : torch.Tensor
        Intensities in [0, 1], shape ``S``.
    steps : int
        Number of time steps ``T``.
    gain : float
        Spike probability per step at intensity 1 (clipped to 1), >= 0.
    generator : torch.Generator, optional
        Source of randomness (torch's global generator if None).

    Returns
    -------
    torch.Tensor
        Spikes in {0, 1}, shape ``(T, *S)``, dtype of ``x``.
    """
    _check(x, steps)
    if gain < 0:
        raise BiosimError(f"poisson gain = {gain} must be >= 0")
    p = torch.clamp(x * gain, 0.0, 1.0).unsqueeze(0).expand(steps, *x.shape)
    return torch.bernoulli(p, generator=generator)


def latency(x: torch.Tensor, steps: int, x_min: float = 0.01) -> torch.Tensor:
    """Latency (time-to-first-spike) encoding, linear in intensity.

    Parameters
    ----------
    x : torch.Tensor
        Intensities in [0, 1], shape ``S``.
    steps : int
        Number of time steps ``T``.
    x_min : float
        Pixels at or below this intensity do not spike.

    Returns
    -------
    torch.Tensor
        Spikes in {0, 1}, shape ``(T, *S)``: at most one per pixel, at step
        ``round((1 - x) * (T - 1))``.
    """
    _check(x, steps)
    t_spike = torch.round((1.0 - x) * (steps - 1)).long()
    t = torch.arange(steps, device=x.device).view(steps, *([1] * x.dim()))
    return ((t == t_spike.unsqueeze(0)) & (x > x_min).unsqueeze(0)).to(x.dtype)


def encode(kind: str, x: torch.Tensor, steps: int, gain: float = 1.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Encode ``x`` with the encoder named ``kind`` (see :data:`ENCODERS`); shape ``(T, *S)``."""
    if kind == "current":
        return current(x, steps, gain)
    if kind == "poisson":
        return poisson(x, steps, gain, generator)
    if kind == "latency":
        return latency(x, steps)
    raise unknown("encoder", kind, ENCODERS)
