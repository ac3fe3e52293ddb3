r"""The same networks built from norse 1.1.0's neuron modules (``--set learn.backend=norse``).

:func:`norse_neuron` and :func:`norse_readout` return neuron layers with the interface
:class:`biosim.learn.network.SpikingNet` expects, wrapping norse cells:

===========================  ==========================================
biosim layer                 norse 1.1.0 module
===========================  ==========================================
``lif`` (:class:`LIF`)       ``norse.torch.LIFBoxCell``
``cuba`` (:class:`CubaLIF`)  ``norse.torch.LIFCell``
read-out :class:`LI`         ``norse.torch.LIBoxCell`` (``tau_syn_ms == 0``) or ``LICell``
===========================  ==========================================

norse integrates with forward Euler, :math:`v' = v + dt\,\tau^{-1}(v_{leak} - v + i)`, i.e. the
decay :math:`1 - dt/\tau`. For a biosim layer with ``integration="exact"`` (decay
:math:`\beta = e^{-dt/\tau}`) the norse module gets :math:`\tau^{-1} = (1 - \beta)/dt`, which makes
norse's update the same discrete map; with ``integration="norse"`` it gets :math:`1/\tau`. Either
way the forward pass computes the same function as biosim's layers (up to float rounding).

Differences that remain (norse's, not biosim's): norse 1.1.0's SuperSpike surrogate ignores its
``alpha`` (its gradient is always :math:`1/(|x|+1)^2`), norse's triangle is
:math:`\alpha \max(0, 1 - |x|)`, norse has no arctan or sigmoid surrogate, ``LIFCell`` only resets
to ``v_reset``, and norse never detaches the reset from the gradient. ``alif`` and ``rlif`` layers
have no norse counterpart here.
"""

from __future__ import annotations

import warnings

import torch

from biosim.errors import BiosimError
from biosim.learn.layers import CubaLIFParams, LIFParams, LIParams
from biosim.learn.surrogate import Surrogate

__all__ = ["import_norse", "NorseCell", "norse_neuron", "norse_readout", "norse_method", "NORSE_VERSION"]

NORSE_VERSION = "1.1.0"


def import_norse():
    """``norse.torch``, imported without its ``torch.jit.script`` deprecation warnings."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import norse
            import norse.torch as nt
    except ImportError:
        raise BiosimError(f"learn.backend=norse needs norse {NORSE_VERSION}: "
                          f"pip install -c constraints.txt norse=={NORSE_VERSION}") from None
    version = getattr(norse, "__version__", NORSE_VERSION)
    if version != NORSE_VERSION:
        raise BiosimError(f"learn.backend=norse is written for norse {NORSE_VERSION}, found {version}")
    return nt


class NorseCell(torch.nn.Module):
    """A norse cell behind biosim's neuron-layer interface (``initial_state`` / ``forward``).

    The state starts as None, which norse replaces by its own initial state.
    """

    def __init__(self, cell: torch.nn.Module, spiking: bool):
        super().__init__()
        self.cell = cell
        self.spiking = spiking

    def initial_state(self, x: torch.Tensor):
        """None: norse builds its initial state on the first step."""
        return None

    def forward(self, x, state=None):
        return self.cell(x, state)


def norse_method(s: Surrogate) -> tuple[str, float]:
    """norse's threshold ``method`` and ``alpha`` for biosim's surrogate ``s``."""
    if s.kind == "fast_sigmoid":
        return "super", s.alpha
    if s.kind == "triangle":
        return "triangle", s.alpha
    raise BiosimError(f"norse {NORSE_VERSION} has no '{s.kind}' surrogate; use --set surrogate.kind=fast_sigmoid "
                      "or triangle with learn.backend=norse")


def _tau_inv_per_s(beta: float, tau_ms: float, dt_ms: float, integration: str) -> torch.Tensor:
    if integration == "norse":
        return torch.as_tensor(1e3 / tau_ms)
    return torch.as_tensor((1.0 - beta) / (dt_ms * 1e-3))


def norse_neuron(kind: str, p: LIFParams) -> NorseCell:
    """A hidden layer of ``kind`` ("lif" or "cuba") from norse modules with ``p``'s dynamics."""
    nt = import_norse()
    method, alpha = norse_method(p.surrogate)
    dt_s = p.dt_ms * 1e-3
    tau_mem_inv = _tau_inv_per_s(p.beta_mem(), p.tau_mem_ms, p.dt_ms, p.integration)
    if p.reset == "subtract" and p.v_reset != 0:
        raise BiosimError("norse subtracts v_th on reset: use neuron.v_reset=0 with reset=subtract "
                          "and learn.backend=norse")
    if kind == "lif":
        from norse.torch.functional.reset import reset_subtract, reset_value

        params = nt.LIFBoxParameters(
            tau_mem_inv=tau_mem_inv, v_leak=torch.as_tensor(p.v_leak), v_th=torch.as_tensor(p.v_th),
            v_reset=torch.as_tensor(p.v_reset), method=method, alpha=torch.as_tensor(alpha),
            reset_method=reset_subtract if p.reset == "subtract" else reset_value)
        return NorseCell(nt.LIFBoxCell(params, dt=dt_s), spiking=True)
    if kind == "cuba":
        assert isinstance(p, CubaLIFParams)
        if p.reset != "zero":
            raise BiosimError("norse's LIFCell resets to v_reset only: use --set neuron.reset=zero "
                              "with neuron=cuba and learn.backend=norse")
        params = nt.LIFParameters(
            tau_syn_inv=_tau_inv_per_s(p.beta_syn(), p.tau_syn_ms, p.dt_ms, p.integration),
            tau_mem_inv=tau_mem_inv, v_leak=torch.as_tensor(p.v_leak), v_th=torch.as_tensor(p.v_th),
            v_reset=torch.as_tensor(p.v_reset), method=method, alpha=torch.as_tensor(alpha))
        return NorseCell(nt.LIFCell(params, dt=dt_s), spiking=True)
    raise BiosimError(f"neuron kind '{kind}' has no norse counterpart here; use lif or cuba with learn.backend=norse")


def norse_readout(p: LIParams) -> NorseCell:
    """The non-spiking read-out from norse: ``LIBoxCell`` (no synaptic current) or ``LICell``."""
    nt = import_norse()
    dt_s = p.dt_ms * 1e-3
    tau_mem_inv = _tau_inv_per_s(p.beta_mem(), p.tau_mem_ms, p.dt_ms, p.integration)
    if p.tau_syn_ms == 0:
        params = nt.LIBoxParameters(tau_mem_inv=tau_mem_inv, v_leak=torch.as_tensor(p.v_leak))
        return NorseCell(nt.LIBoxCell(params, dt=dt_s), spiking=False)
    params = nt.LIParameters(tau_syn_inv=_tau_inv_per_s(p.beta_syn(), p.tau_syn_ms, p.dt_ms, p.integration),
                             tau_mem_inv=tau_mem_inv, v_leak=torch.as_tensor(p.v_leak))
    return NorseCell(nt.LICell(params, dt=dt_s), spiking=False)
