r"""norse 1.1.0's LIF steps, operation for operation (``integration="norse"``).

biosim's layers (:mod:`biosim.learn.layers`) integrate with the factors of
:func:`biosim.neurons.layer.coefficients`; with ``integration="norse"`` those are forward Euler's
(:math:`1 - dt/\tau`). These functions evaluate the same Euler update in norse's own order of
floating-point operations, so that float32 results equal ``norse.torch.LIFCell``
(:func:`cuba_lif_step`), ``LIFBoxCell`` (:func:`lif_step`), ``LICell`` and ``LIBoxCell``
(:func:`li_step`) bit for bit with ``reset="zero"`` and ``detach_reset=False`` (``reset="subtract"``
is norse's ``reset_subtract``, :math:`v - v_{th}`). The layer modules call them when their
parameters say ``integration="norse"``; states are those of :mod:`biosim.learn.layers` (this
module only replaces their fields, so it does not import that one). norse's parameters are inverse time constants in 1/s and
``dt`` in s, as its cells hold them::

    i+ = i + x;  v' = v + dt*tau_mem_inv*((v_leak - v) + i+);  i' = i+ + (-dt*tau_syn_inv)*i+
    z = H(v' - v_th);  v = (1 - z)*v' + z*v_reset
"""

from __future__ import annotations

import torch

from biosim.learn.surrogate import spike

__all__ = ["lif_step", "cuba_lif_step", "li_step"]


def _scalars(p, dtype):
    """norse's parameter tensors: inverse time constants in 1/s, dt in s (as LIFCell holds them)."""
    return (p.dt_ms * 1e-3, torch.as_tensor(1e3 / p.tau_mem_ms, dtype=dtype),
            torch.as_tensor(p.v_leak, dtype=dtype), torch.as_tensor(p.v_th, dtype=dtype),
            torch.as_tensor(p.v_reset, dtype=dtype))


def _reset(v_decayed, z, v_reset, v_th, p):
    # norse.torch.functional.reset: reset_value and reset_subtract
    zr = z.detach() if p.detach_reset else z
    if p.reset == "zero":
        return (1 - zr) * v_decayed + zr * v_reset
    return (1 - zr) * v_decayed + zr * (v_decayed - v_th)


def lif_step(x: torch.Tensor, state, p):
    """norse 1.1.0's ``lif_box_feed_forward_step`` (``LIFBoxCell``); see
    :func:`biosim.learn.layers.lif_step` for the arguments."""
    dt, tau_mem_inv, v_leak, v_th, v_reset = _scalars(p, x.dtype)
    dv = dt * tau_mem_inv * (x + v_leak - state.v)
    v_decayed = state.v + dv
    z = spike(v_decayed - v_th, p.surrogate)
    return z, state._replace(v=_reset(v_decayed, z, v_reset, v_th, p))


def cuba_lif_step(x: torch.Tensor, state, p):
    """norse 1.1.0's ``lif_feed_forward_step`` (``LIFCell``); see
    :func:`biosim.learn.layers.cuba_lif_step` for the arguments."""
    dt, tau_mem_inv, v_leak, v_th, v_reset = _scalars(p, x.dtype)
    tau_syn_inv = torch.as_tensor(1e3 / p.tau_syn_ms, dtype=x.dtype)
    i_new = state.i + x
    dv = dt * tau_mem_inv * ((v_leak - state.v) + i_new)
    v_decayed = state.v + dv
    di = -dt * tau_syn_inv * i_new
    i_decayed = i_new + di
    z = spike(v_decayed - v_th, p.surrogate)
    return z, state._replace(v=_reset(v_decayed, z, v_reset, v_th, p), i=i_decayed)


def li_step(x: torch.Tensor, state, p):
    """norse 1.1.0's ``li_feed_forward_step`` (``LICell``), or ``LIBoxCell``'s with
    ``tau_syn_ms == 0``; see :func:`biosim.learn.layers.li_step` for the arguments."""
    dt = p.dt_ms * 1e-3
    tau_mem_inv = torch.as_tensor(1e3 / p.tau_mem_ms, dtype=x.dtype)
    v_leak = torch.as_tensor(p.v_leak, dtype=x.dtype)
    if p.tau_syn_ms == 0:
        v_new = state.v + dt * tau_mem_inv * ((v_leak - state.v) + x)
        return v_new, state._replace(v=v_new)
    tau_syn_inv = torch.as_tensor(1e3 / p.tau_syn_ms, dtype=x.dtype)
    i_jump = state.i + x
    v_new = state.v + dt * tau_mem_inv * ((v_leak - state.v) + i_jump)
    i_decayed = i_jump + -dt * tau_syn_inv * i_jump
    return v_new, state._replace(v=v_new, i=i_decayed)
