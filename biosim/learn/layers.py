r"""Spiking neuron layers for training with surrogate gradients (PyTorch).

Each neuron kind is a functional step ``step(x, state, params) -> (out, state)`` on plain tensors
and a :class:`NamedTuple` state (no hidden state), wrapped by a small :class:`torch.nn.Module`
that holds only the parameters. ``x`` is the input current of one time step (any shape, e.g.
``(batch, features)`` or ``(batch, channels, H, W)``), in units of the membrane potential, which
is dimensionless here (threshold 1 by default).

Dynamics (time constants in ms, step ``dt_ms``)::

    LIF        tau_mem dv/dt = v_leak - v + x
    CubaLIF    tau_mem dv/dt = v_leak - v + i,   tau_syn di/dt = -i,   i jumps by x each step
    ALIF       LIF with threshold v_th + beta_adapt * a,   tau_adapt da/dt = -a,  a jumps on spikes
    RLIF       LIF whose input adds recurrent spikes:  x + W_rec z(t - dt)
    LI         CubaLIF (or LIF if tau_syn_ms == 0) without threshold: a leaky read-out

``integration="exact"`` (the default) integrates exactly for an input held constant over the step
(zero-order hold), with decay factors :math:`\beta_m = e^{-dt/\tau_{mem}}`,
:math:`\beta_s = e^{-dt/\tau_{syn}}`:

.. math::

    i^+ &= i + x \quad\text{(CubaLIF; LIF uses } i^+ = x)\\
    v^- &= \beta_m v + (1 - \beta_m)(v_{leak} + i^+) \\
    z   &= H(v^- - v_{th}) \\
    v'  &= v^- - z (v_{th} - v_{reset}) \;\text{(reset="subtract")} \quad\text{or}\quad
           (1 - z) v^- + z v_{reset} \;\text{(reset="zero")}\\
    i'  &= \beta_s i^+

The factors and the membrane/reset functions are :mod:`biosim.neurons.layer`'s: the engine's
``layer_lif`` model and the fused training kernel (:mod:`biosim.learn.fused`) run the same maths.
``integration="norse"`` replaces the decay factors by forward Euler (:math:`1 - dt/\tau`); the
modules then step with :mod:`biosim.learn.norse_compat`, which evaluates the update in norse
1.1.0's exact order of floating-point operations (``LIFCell``, ``LIFBoxCell``, ``LICell`` bit for
bit in float32 with ``reset="zero"`` and ``detach_reset=False``).

The spike :math:`H` is :func:`biosim.learn.surrogate.spike` with the layer's surrogate gradient;
with ``detach_reset`` the reset term carries no gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from biosim.errors import BiosimError, unknown
from biosim.learn import norse_compat
from biosim.learn.surrogate import Surrogate, spike
from biosim.neurons import layer as discrete

__all__ = [
    "LIFParams", "CubaLIFParams", "ALIFParams", "LIParams",
    "LIFState", "CubaLIFState", "ALIFState", "RLIFState", "LIState",
    "lif_step", "cuba_lif_step", "alif_step", "rlif_step", "li_step",
    "LIF", "CubaLIF", "ALIF", "RecurrentLIF", "LI", "NEURONS", "make_neuron",
]

_RESETS = ("subtract", "zero")
_INTEGRATIONS = ("exact", "norse")
#: integration -> method of biosim.neurons.layer.coefficients
_METHOD = {"exact": "exact", "norse": "euler"}


def _check_positive(obj, *names, allow_zero=False):
    for name in names:
        value = getattr(obj, name)
        ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
        if not ok:
            raise BiosimError(f"{type(obj).__name__}.{name} = {value!r} is out of range "
                              f"(must be {'>= 0' if allow_zero else '> 0'})")


def _check_finite(obj, *names):
    for name in names:
        value = getattr(obj, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise BiosimError(f"{type(obj).__name__}.{name} = {value!r} must be a finite number")


@dataclass(frozen=True, kw_only=True)
class LIFParams:
    """Parameters of a leaky integrate-and-fire layer (potentials dimensionless).

    Attributes
    ----------
    tau_mem_ms : float
        Membrane time constant (ms), > 0.
    v_th, v_reset, v_leak : float
        Threshold, reset and resting potentials (dimensionless), ``v_th > v_reset``.
    reset : {"subtract", "zero"}
        Reset by subtracting ``v_th - v_reset`` or by setting ``v = v_reset``.
    detach_reset : bool
        Whether the reset term is left out of the backward pass.
    dt_ms : float
        Time step (ms), > 0.
    integration : {"exact", "norse"}
        Zero-order-hold exact decay, or norse 1.1.0's forward Euler (bitwise compatible).
    surrogate : Surrogate
        The spike's surrogate gradient.
    """

    tau_mem_ms: float = 10.0
    v_th: float = 1.0
    v_reset: float = 0.0
    v_leak: float = 0.0
    reset: str = "subtract"
    detach_reset: bool = True
    dt_ms: float = 1.0
    integration: str = "exact"
    surrogate: Surrogate = field(default_factory=Surrogate)

    def __post_init__(self):
        _check_positive(self, "tau_mem_ms", "dt_ms")
        _check_finite(self, "v_th", "v_reset", "v_leak")
        if not self.v_th > self.v_reset:
            raise BiosimError(f"{type(self).__name__}: v_th = {self.v_th} must be above v_reset = {self.v_reset}")
        if self.reset not in _RESETS:
            raise unknown("reset", self.reset, _RESETS)
        if self.integration not in _INTEGRATIONS:
            raise unknown("integration", self.integration, _INTEGRATIONS)
        if self.integration == "norse" and self.dt_ms >= self.tau_mem_ms:
            raise BiosimError(f"{type(self).__name__}: Euler integration needs dt_ms < tau_mem_ms "
                              f"(got {self.dt_ms} >= {self.tau_mem_ms})")

    def coefficients(self) -> discrete.Coefficients:
        """Per-step factors (:func:`biosim.neurons.layer.coefficients`): exact, or forward Euler
        (``integration="norse"``)."""
        return discrete.coefficients(self.dt_ms, self.tau_mem_ms, getattr(self, "tau_syn_ms", 0.0),
                                     _METHOD[self.integration])

    def beta_mem(self) -> float:
        """Membrane decay per step: ``exp(-dt/tau_mem)`` (exact) or ``1 - dt/tau_mem`` (norse)."""
        return self.coefficients().beta_mem


@dataclass(frozen=True, kw_only=True)
class CubaLIFParams(LIFParams):
    """:class:`LIFParams` plus an exponentially decaying synaptic current.

    Attributes
    ----------
    tau_syn_ms : float
        Synaptic time constant (ms), > 0 (norse's default 5 ms).
    """

    tau_syn_ms: float = 5.0

    def __post_init__(self):
        super().__post_init__()
        _check_positive(self, "tau_syn_ms")
        if self.integration == "norse" and self.dt_ms >= self.tau_syn_ms:
            raise BiosimError(f"CubaLIFParams: Euler integration needs dt_ms < tau_syn_ms "
                              f"(got {self.dt_ms} >= {self.tau_syn_ms})")

    def beta_syn(self) -> float:
        """Synaptic decay per step: ``exp(-dt/tau_syn)`` (exact) or ``1 - dt/tau_syn`` (norse)."""
        return self.coefficients().beta_syn


@dataclass(frozen=True, kw_only=True)
class ALIFParams(LIFParams):
    """:class:`LIFParams` plus an adaptive threshold ``v_th + beta_adapt * a`` (Bellec et al. 2018).

    Attributes
    ----------
    tau_adapt_ms : float
        Decay time of the adaptation variable ``a`` (ms), > 0.
    beta_adapt : float
        Threshold increase per unit of ``a`` (dimensionless), >= 0; ``a`` rises by
        ``1 - exp(-dt/tau_adapt)`` per spike.
    """

    tau_adapt_ms: float = 200.0
    beta_adapt: float = 1.8

    def __post_init__(self):
        super().__post_init__()
        _check_positive(self, "tau_adapt_ms")
        _check_positive(self, "beta_adapt", allow_zero=True)


@dataclass(frozen=True, kw_only=True)
class LIParams:
    """Parameters of a non-spiking leaky integrator (the read-out layer).

    Attributes
    ----------
    tau_mem_ms : float
        Membrane time constant (ms), > 0.
    tau_syn_ms : float
        Synaptic time constant (ms); 0 means no synaptic current (input goes straight to ``v``).
    v_leak : float
        Resting potential (dimensionless).
    dt_ms : float
        Time step (ms).
    integration : {"exact", "norse"}
        As in :class:`LIFParams`.
    """

    tau_mem_ms: float = 10.0
    tau_syn_ms: float = 0.0
    v_leak: float = 0.0
    dt_ms: float = 1.0
    integration: str = "exact"

    def __post_init__(self):
        _check_positive(self, "tau_mem_ms", "dt_ms")
        _check_positive(self, "tau_syn_ms", allow_zero=True)
        _check_finite(self, "v_leak")
        if self.integration not in _INTEGRATIONS:
            raise unknown("integration", self.integration, _INTEGRATIONS)

    def coefficients(self) -> discrete.Coefficients:
        """Per-step factors (:func:`biosim.neurons.layer.coefficients`; ``beta_syn = 0`` without a
        synaptic current)."""
        return discrete.coefficients(self.dt_ms, self.tau_mem_ms, self.tau_syn_ms, _METHOD[self.integration])

    def beta_mem(self) -> float:
        """Membrane decay per step."""
        return self.coefficients().beta_mem

    def beta_syn(self) -> float:
        """Synaptic decay per step (0 without a synaptic current)."""
        return self.coefficients().beta_syn


class LIFState(NamedTuple):
    """State of a :func:`lif_step` layer: membrane potential ``v`` (shape of the input)."""

    v: torch.Tensor


class CubaLIFState(NamedTuple):
    """State of a :func:`cuba_lif_step` layer: membrane potential ``v``, synaptic current ``i``."""

    v: torch.Tensor
    i: torch.Tensor


class ALIFState(NamedTuple):
    """State of an :func:`alif_step` layer: membrane potential ``v``, adaptation ``a``."""

    v: torch.Tensor
    a: torch.Tensor


class RLIFState(NamedTuple):
    """State of an :func:`rlif_step` layer: membrane potential ``v``, last spikes ``z``."""

    v: torch.Tensor
    z: torch.Tensor


class LIState(NamedTuple):
    """State of an :func:`li_step` read-out: membrane potential ``v``, synaptic current ``i``."""

    v: torch.Tensor
    i: torch.Tensor


# ----------------------------------------------------------------------------- functional core
# The maths is biosim.neurons.layer's (membrane, resets), called in its pure-Python form on tensors.
_membrane = discrete.membrane.py_func
_reset_subtract = discrete.reset_subtract.py_func
_reset_zero = discrete.reset_zero.py_func


def _fire_and_reset(v_pre: torch.Tensor, threshold, p: LIFParams):
    """Spikes of ``v_pre`` against ``threshold`` and the potential after the reset."""
    z = spike(v_pre - threshold, p.surrogate)
    zr = z.detach() if p.detach_reset else z
    if p.reset == "subtract":
        return z, _reset_subtract(v_pre, zr, p.v_th - p.v_reset)
    return z, _reset_zero(v_pre, zr, p.v_reset)


def _drive(x: torch.Tensor, v_leak: float) -> torch.Tensor:
    return x + v_leak if v_leak else x


def lif_step(x: torch.Tensor, state: LIFState, p: LIFParams) -> tuple[torch.Tensor, LIFState]:
    r"""One step of a LIF layer with current input (no synaptic filter).

    .. math::

        v^- = \beta_m v + (1 - \beta_m)(v_{leak} + x),\quad z = H(v^- - v_{th}),\quad
        v' = \mathrm{reset}(v^-, z)

    (with ``integration="norse"`` the factors are forward Euler's; norse's own order of operations
    is :func:`biosim.learn.norse_compat.lif_step`, which the :class:`LIF` module uses then).

    Parameters
    ----------
    x : torch.Tensor
        Input current of this step (any shape; potential units).
    state : LIFState
        ``v`` broadcastable to ``x``.
    p : LIFParams
        Layer parameters.

    Returns
    -------
    (torch.Tensor, LIFState)
        Spikes ``z`` in {0, 1} (shape of ``x``) and the new state.
    """
    k = p.coefficients()
    z, v = _fire_and_reset(_membrane(state.v, _drive(x, p.v_leak), k.beta_mem, k.gain), p.v_th, p)
    return z, LIFState(v)


def cuba_lif_step(x: torch.Tensor, state: CubaLIFState, p: CubaLIFParams) -> tuple[torch.Tensor, CubaLIFState]:
    r"""One step of a current-based LIF layer: ``x`` jumps into the synaptic current.

    .. math::

        i^+ = i + x,\quad v^- = \beta_m v + (1 - \beta_m)(v_{leak} + i^+),\quad
        z = H(v^- - v_{th}),\quad v' = \mathrm{reset}(v^-, z),\quad i' = \beta_s i^+

    (norse's ``LIFCell`` operation for operation: :func:`biosim.learn.norse_compat.cuba_lif_step`.)

    Parameters
    ----------
    x : torch.Tensor
        Input current of this step (any shape).
    state : CubaLIFState
        ``v`` and ``i`` broadcastable to ``x``.
    p : CubaLIFParams
        Layer parameters.

    Returns
    -------
    (torch.Tensor, CubaLIFState)
        Spikes and the new state.
    """
    k = p.coefficients()
    i_new = state.i + x
    z, v = _fire_and_reset(_membrane(state.v, _drive(i_new, p.v_leak), k.beta_mem, k.gain), p.v_th, p)
    return z, CubaLIFState(v, k.beta_syn * i_new)


def alif_step(x: torch.Tensor, state: ALIFState, p: ALIFParams) -> tuple[torch.Tensor, ALIFState]:
    r"""One step of an adaptive-threshold LIF layer.

    .. math::

        v^- = \beta_m v + (1 - \beta_m)(v_{leak} + x),\quad
        z = H(v^- - v_{th} - \beta_{adapt} a),\quad
        a' = \beta_a a + (1 - \beta_a) z,\quad \beta_a = e^{-dt/\tau_{adapt}}

    and the reset of :class:`LIFParams` (subtracting the base threshold ``v_th - v_reset``).

    Parameters
    ----------
    x : torch.Tensor
        Input current of this step.
    state : ALIFState
        ``v`` and ``a`` broadcastable to ``x``.
    p : ALIFParams
        Layer parameters.

    Returns
    -------
    (torch.Tensor, ALIFState)
        Spikes and the new state.
    """
    k = p.coefficients()
    ba = discrete.decay(p.dt_ms, p.tau_adapt_ms)
    v_pre = _membrane(state.v, _drive(x, p.v_leak), k.beta_mem, k.gain)
    z, v = _fire_and_reset(v_pre, p.v_th + p.beta_adapt * state.a, p)
    return z, ALIFState(v, ba * state.a + (1.0 - ba) * z)


def rlif_step(x: torch.Tensor, state: RLIFState, p: LIFParams,
              recurrent_weight: torch.Tensor, step=None) -> tuple[torch.Tensor, RLIFState]:
    r"""One step of a recurrent LIF layer: ``step`` (default :func:`lif_step`) driven by
    ``x + z W_rec^T``.

    Parameters
    ----------
    x : torch.Tensor
        Input current of this step, shape ``(batch, n)``.
    state : RLIFState
        ``v`` and the previous spikes ``z``, shape ``(batch, n)``.
    p : LIFParams
        Layer parameters.
    recurrent_weight : torch.Tensor
        ``W_rec``, shape ``(n, n)``; ``W_rec[j, k]`` is the weight from neuron ``k`` to ``j``.
    step : callable, optional
        The feed-forward LIF step (:func:`biosim.learn.norse_compat.lif_step` for norse's order).

    Returns
    -------
    (torch.Tensor, RLIFState)
        Spikes and the new state.
    """
    z, s = (step or lif_step)(x + torch.nn.functional.linear(state.z, recurrent_weight), LIFState(state.v), p)
    return z, RLIFState(s.v, z)


def li_step(x: torch.Tensor, state: LIState, p: LIParams) -> tuple[torch.Tensor, LIState]:
    r"""One step of a leaky integrator (no spikes): the read-out layer.

    .. math::

        i^+ = i + x,\quad v' = \beta_m v + (1 - \beta_m)(v_{leak} + i^+),\quad i' = \beta_s i^+

    (``tau_syn_ms == 0``: :math:`\beta_s = 0`, so ``i`` stays 0 and ``x`` drives ``v`` directly.)
    norse's ``LICell`` / ``LIBoxCell`` order: :func:`biosim.learn.norse_compat.li_step`.

    Returns
    -------
    (torch.Tensor, LIState)
        The new membrane potential (the output) and the new state.
    """
    k = p.coefficients()
    i_new = state.i + x if p.tau_syn_ms else x
    v = _membrane(state.v, _drive(i_new, p.v_leak), k.beta_mem, k.gain)
    return v, LIState(v, k.beta_syn * i_new if p.tau_syn_ms else state.i)


# ----------------------------------------------------------------------------- modules

class _Neuron(torch.nn.Module):
    """A neuron layer: holds its parameters; the state goes in and out of ``forward``.

    ``step`` is the layer's functional step; ``norse_step`` (where norse has the cell) replaces it
    when the parameters say ``integration="norse"``.
    """

    spiking = True
    step = None
    norse_step = None

    def __init__(self, params):
        super().__init__()
        self.params = params
        norse = getattr(params, "integration", "exact") == "norse" and self.norse_step is not None
        self._step = self.norse_step if norse else self.step

    def extra_repr(self) -> str:
        return repr(self.params)

    def _zeros(self, x):
        return torch.zeros_like(x)

    def forward(self, x, state=None):
        return self._step(x, self.initial_state(x) if state is None else state, self.params)


class LIF(_Neuron):
    """Module form of :func:`lif_step`: ``forward(x, state=None) -> (z, LIFState)``."""

    step = staticmethod(lif_step)
    norse_step = staticmethod(norse_compat.lif_step)

    def __init__(self, params: LIFParams = LIFParams()):
        super().__init__(params)

    def initial_state(self, x: torch.Tensor) -> LIFState:
        """``v = v_leak`` everywhere (shape of ``x``)."""
        return LIFState(torch.full_like(x, self.params.v_leak))


class CubaLIF(_Neuron):
    """Module form of :func:`cuba_lif_step`."""

    step = staticmethod(cuba_lif_step)
    norse_step = staticmethod(norse_compat.cuba_lif_step)

    def __init__(self, params: CubaLIFParams = CubaLIFParams()):
        super().__init__(params)

    def initial_state(self, x: torch.Tensor) -> CubaLIFState:
        """``v = v_leak``, ``i = 0``."""
        return CubaLIFState(torch.full_like(x, self.params.v_leak), self._zeros(x))


class ALIF(_Neuron):
    """Module form of :func:`alif_step`."""

    step = staticmethod(alif_step)

    def __init__(self, params: ALIFParams = ALIFParams()):
        super().__init__(params)

    def initial_state(self, x: torch.Tensor) -> ALIFState:
        """``v = v_leak``, ``a = 0``."""
        return ALIFState(torch.full_like(x, self.params.v_leak), self._zeros(x))


class RecurrentLIF(_Neuron):
    """Module form of :func:`rlif_step`; owns the recurrent weight ``W_rec`` (n x n).

    ``W_rec`` starts uniform in ``±init_scale / sqrt(n)`` (drawn from ``generator``, or torch's
    global generator without one) with a zero diagonal; self-connections are kept at zero during
    training when ``autapses`` is False (their gradient is masked).
    """

    def __init__(self, n: int, params: LIFParams = LIFParams(), init_scale: float = 0.5,
                 autapses: bool = False, generator: torch.Generator | None = None):
        super().__init__(params)
        if n < 1:
            raise BiosimError(f"RecurrentLIF: n = {n} must be >= 1")
        self.init_scale = float(init_scale)
        self.autapses = autapses
        self._lif = norse_compat.lif_step if params.integration == "norse" else lif_step
        if not autapses:
            self.register_buffer("_mask", 1.0 - torch.eye(n), persistent=False)
        self.recurrent_weight = torch.nn.Parameter(torch.empty(n, n))
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw ``W_rec`` again (uniform in ``±init_scale / sqrt(n)``, zero diagonal without autapses)."""
        n = self.recurrent_weight.shape[0]
        bound = self.init_scale / math.sqrt(n)
        with torch.no_grad():
            self.recurrent_weight.uniform_(-bound, bound, generator=generator)
            if not self.autapses:
                self.recurrent_weight.fill_diagonal_(0.0)

    def initial_state(self, x: torch.Tensor) -> RLIFState:
        """``v = v_leak``, no previous spikes."""
        return RLIFState(torch.full_like(x, self.params.v_leak), self._zeros(x))

    def forward(self, x, state=None):
        w = self.recurrent_weight if self.autapses else self.recurrent_weight * self._mask
        return rlif_step(x, self.initial_state(x) if state is None else state, self.params, w, self._lif)


class LI(_Neuron):
    """Module form of :func:`li_step` (non-spiking read-out): ``forward(x, state) -> (v, LIState)``."""

    spiking = False
    step = staticmethod(li_step)
    norse_step = staticmethod(norse_compat.li_step)

    def __init__(self, params: LIParams = LIParams()):
        super().__init__(params)

    def initial_state(self, x: torch.Tensor) -> LIState:
        """``v = v_leak``, ``i = 0``."""
        return LIState(torch.full_like(x, self.params.v_leak), self._zeros(x))


#: neuron kind -> (module class, parameter class)
NEURONS = {"lif": (LIF, LIFParams), "cuba": (CubaLIF, CubaLIFParams), "alif": (ALIF, ALIFParams),
           "rlif": (RecurrentLIF, LIFParams)}


def make_neuron(kind: str, n: int | None, **params) -> _Neuron:
    """A neuron layer of ``kind`` (see :data:`NEURONS`) with ``params`` (``n`` only for ``rlif``)."""
    if kind not in NEURONS:
        raise unknown("neuron kind", kind, NEURONS)
    module, pcls = NEURONS[kind]
    names = {f for f in pcls.__dataclass_fields__}
    bad = [k for k in params if k not in names]
    if bad:
        raise unknown(f"{kind} neuron parameter", bad[0], names)
    p = pcls(**params)
    if kind == "rlif":
        if n is None:
            raise BiosimError("a recurrent LIF layer needs a fully connected input (it cannot follow a convolution)")
        return module(n, p)
    return module(p)
