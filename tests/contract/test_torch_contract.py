"""Contract ``torch_step``: the engine's ``layer_lif`` neurons spike as the torch layers' steps.

A feed-forward chain input -> hidden -> out runs once with :mod:`biosim.learn.layers`' functional
steps on tensors and once in the engine as two LayerLIF populations whose factors come from the
torch parameters' ``coefficients()`` (the hidden layer's input ``x @ W1.T`` as its constant
``i_in``, the hidden -> out weights as an Explicit projection onto ``x_syn``). Spikes must be
identical once the engine's schedule is accounted for: a spike reaches the next layer one step
later than in a torch forward pass (DESIGN.md section 4), so out's spikes at engine step ``s``
are torch's at ``s - 1``. The torch side sums a layer's spike input in the engine's order (see
:func:`_spike_input`), so that the potentials agree bit for bit too; they are compared through
the recorded ``v``, which the monitor reads at the start of a step: the hidden layer's ``v``
recorded at step ``t + 1`` is torch's after step ``t``, and a non-spiking read-out's (``li_step``
vs ``LayerLIF(spiking=False)``), one layer further, at ``t + 2``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biosim.learn.layers import (
    CubaLIFParams, CubaLIFState, LIFParams, LIFState, LIParams, LIState, cuba_lif_step, li_step, lif_step,
)
from biosim.network.connect import Explicit
from biosim.neurons.layer import LayerLIF

from contract_cases import contract_network

N_IN, N_HIDDEN, N_OUT, T = 20, 30, 5, 40

#: variant -> (hidden params, hidden step, hidden state, out params, out step, out state)
VARIANTS = {
    "lif_step": (LIFParams(tau_mem_ms=10.0), lif_step, LIFState, None, None, None),
    "lif_step-zero_reset-v_leak": (LIFParams(tau_mem_ms=10.0, reset="zero", v_reset=-0.2, v_leak=0.1),
                                   lif_step, LIFState, None, None, None),
    "lif_step-euler": (LIFParams(tau_mem_ms=10.0, integration="norse"), lif_step, LIFState, None, None, None),
    "cuba_lif_step": (CubaLIFParams(tau_mem_ms=10.0, tau_syn_ms=5.0), cuba_lif_step, CubaLIFState,
                      None, None, None),
    "li_step": (LIFParams(tau_mem_ms=10.0), lif_step, LIFState, LIParams(tau_mem_ms=10.0, tau_syn_ms=5.0),
                li_step, LIState),
}


def _zeros_state(state_cls, n, dtype):
    return state_cls(*(torch.zeros(n, dtype=dtype) for _ in state_cls._fields))


def _spike_input(z, w):
    """``z @ w.T`` summed as the engine delivers spikes: the weights of the spiking sources added
    one by one in ascending source order (a matmul's order of summation is its own, and would make
    the read-out's ``v`` differ in the last bit)."""
    total = torch.zeros(w.shape[0], dtype=w.dtype)
    for k in torch.nonzero(z).flatten().tolist():
        total = total + w[:, k]
    return total


def _engine_params(p, spiking=True) -> LayerLIF:
    extra = {"spiking": False} if not spiking else {"v_th": p.v_th, "v_reset": p.v_reset, "reset": p.reset}
    return LayerLIF(**p.coefficients()._asdict(), v_leak=p.v_leak, **extra)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.contract("torch_step", models=("layer_lif",))
def test_engine_spikes_as_the_torch_step(model, backend, dtype, variant):
    assert model == "layer_lif"
    p_h, step_h, state_h, p_o, step_o, state_o = VARIANTS[variant]
    p_o, step_o, state_o = (p_o or p_h), (step_o or step_h), (state_o or state_h)
    readout = step_o is li_step
    tdtype = getattr(torch, dtype)
    rng = np.random.default_rng(0)
    w1 = rng.normal(0.0, 1.5, (N_HIDDEN, N_IN)).astype(dtype)
    w2 = rng.normal(0.0, 1.5, (N_OUT, N_HIDDEN)).astype(dtype)
    x = rng.random(N_IN).astype(dtype)

    # torch: one forward pass of T steps
    current = torch.from_numpy(x) @ torch.from_numpy(w1).T
    current_before = current.clone()
    s_h0, s_o0 = _zeros_state(state_h, N_HIDDEN, tdtype), _zeros_state(state_o, N_OUT, tdtype)
    s_h, s_o = s_h0, s_o0
    z_h, v_h, out = [], [], []
    for _ in range(T):
        z, s_h = step_h(current, s_h, p_h)
        y, s_o = step_o(_spike_input(z, torch.from_numpy(w2)), s_o, p_o)
        z_h.append(z)
        v_h.append(s_h.v)
        out.append(y)
    z_h, v_h, out = torch.stack(z_h).numpy(), torch.stack(v_h).numpy(), torch.stack(out).numpy()
    # the functional steps leave their inputs alone
    assert torch.equal(current, current_before)
    assert all(not torch.any(t) for t in (*s_h0, *s_o0))

    # the engine
    net = contract_network(dtype, backend, dt_ms=p_h.dt_ms)
    hidden = net.population("hidden", _engine_params(p_h), N_HIDDEN, init={"i_in": current.numpy(), "v": 0.0})
    outp = net.population("out", _engine_params(p_o, spiking=not readout), N_OUT, init={"v": 0.0})
    ii, jj = np.meshgrid(np.arange(N_HIDDEN), np.arange(N_OUT), indexing="ij")
    net.connect(hidden, outp, "x_syn", weight=w2.T.ravel(), rule=Explicit(ii.ravel(), jj.ravel()))
    net.monitor(hidden, "v")
    if readout:
        net.monitor(outp, "v")
    result = net.run(T + 2, backend=backend)

    def engine_spikes(name, shift, shape):
        t, i = result.spikes[name]
        steps = np.rint(t / net.dt_ms).astype(np.int64) - shift
        keep = (steps >= 0) & (steps < T)
        z = np.zeros(shape, dtype=dtype)
        z[steps[keep], i[keep]] = 1
        return z

    assert 0 < z_h.sum() < z_h.size, "the hidden layer should spike, but not always"
    np.testing.assert_array_equal(engine_spikes("hidden", 0, z_h.shape), z_h)
    # and the hidden potentials after each step's reset, recorded at the start of the next step
    np.testing.assert_array_equal(result.states[("hidden", "v")][1][1:T + 1], v_h)
    if readout:
        v = result.states[("out", "v")][1]
        assert v.dtype == out.dtype == np.dtype(dtype)
        assert np.any(out != 0)
        np.testing.assert_array_equal(v[2:T + 2], out)
        assert len(result.spikes["out"][0]) == 0
    else:
        assert 0 < out.sum() < out.size, "the output layer should spike, but not always"
        np.testing.assert_array_equal(engine_spikes("out", 1, out.shape), out)
