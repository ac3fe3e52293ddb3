"""norse 1.1.0 compatibility.

* biosim's current-based LIF in ``integration="norse"`` mode reproduces ``norse.torch.LIFCell``
  bit for bit in float32 (spikes, voltages, currents) on random inputs, and its gradients match
  norse's (SuperSpike, whose alpha norse ignores, equals biosim's fast sigmoid with alpha = 1);
* the same for ``LIFBoxCell`` (both resets), ``LICell`` and ``LIBoxCell``;
* ``learn.backend=norse`` builds the same network: with the same weights it computes the same
  outputs as biosim's layers.
"""

from __future__ import annotations

import pytest
import torch

from biosim.learn.layers import (
    LIF, LI, CubaLIFParams, CubaLIFState, LIFParams, LIFState, LIParams, LIState,
)
from biosim.learn.network import NetSpec, build_net
from biosim.learn.norse_compat import cuba_lif_step, li_step, lif_step
from biosim.learn.norse_backend import import_norse, norse_neuron, norse_readout
from biosim.learn.surrogate import Surrogate

nt = import_norse()
STEPS, SHAPE = 100, (8, 50)


def inputs(seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(STEPS, *SHAPE, generator=g) * scale).requires_grad_(True)


def unroll(cell_fn, x):
    outs, states, state = [], [], None
    for t in range(STEPS):
        out, state = cell_fn(x[t], state)
        outs.append(out)
        states.append(state)
    return torch.stack(outs), states


@pytest.mark.parametrize("seed, scale", [(0, 1.0), (1, 3.0), (2, 10.0)])
def test_cuba_lif_reproduces_norse_lifcell_bitwise(seed, scale):
    x = inputs(seed, scale)
    cell = nt.LIFCell()  # norse defaults: tau_syn_inv 200/s, tau_mem_inv 100/s, v_th 1, dt 1 ms
    p = CubaLIFParams(tau_mem_ms=10.0, tau_syn_ms=5.0, v_th=1.0, v_reset=0.0, reset="zero",
                      detach_reset=False, dt_ms=1.0, integration="norse", surrogate=Surrogate(alpha=1.0))
    z_n, s_n = unroll(cell, x)
    zero = torch.zeros(SHAPE)

    def ours(xt, st):
        return cuba_lif_step(xt, CubaLIFState(zero, zero) if st is None else st, p)

    z_b, s_b = unroll(ours, x)
    assert 0.01 < z_n.mean() < 0.9  # the inputs make the neurons fire, but not always
    assert z_b.dtype == torch.float32
    assert torch.equal(z_b, z_n)
    assert torch.equal(torch.stack([s.v for s in s_b]), torch.stack([s.v for s in s_n]))
    assert torch.equal(torch.stack([s.i for s in s_b]), torch.stack([s.i for s in s_n]))
    # gradients: norse's SuperSpike is 1/(|x|+1)^2 whatever its alpha: biosim's fast sigmoid, alpha 1
    w = torch.linspace(-1, 1, SHAPE[1])
    (g_n,) = torch.autograd.grad((z_n * w).sum() + torch.stack([s.v for s in s_n]).sum(), x)
    (g_b,) = torch.autograd.grad((z_b * w).sum() + torch.stack([s.v for s in s_b]).sum(), x)
    torch.testing.assert_close(g_b, g_n, rtol=1e-5, atol=1e-6)


def test_cuba_lif_matches_norse_with_other_parameters():
    x = inputs(3, 4.0)
    params = nt.LIFParameters(tau_syn_inv=torch.as_tensor(1e3 / 8.0), tau_mem_inv=torch.as_tensor(1e3 / 15.0),
                              v_leak=torch.as_tensor(0.1), v_th=torch.as_tensor(0.8), v_reset=torch.as_tensor(-0.2))
    cell = nt.LIFCell(params, dt=0.0005)
    p = CubaLIFParams(tau_mem_ms=15.0, tau_syn_ms=8.0, v_th=0.8, v_reset=-0.2, v_leak=0.1, reset="zero",
                      detach_reset=False, dt_ms=0.5, integration="norse")
    z_n, s_n = unroll(cell, x)
    v0 = torch.full(SHAPE, 0.1)

    def ours(xt, st):
        return cuba_lif_step(xt, CubaLIFState(v0, torch.zeros(SHAPE)) if st is None else st, p)

    z_b, s_b = unroll(ours, x)
    assert z_n.sum() > 0
    assert torch.equal(z_b, z_n)
    assert torch.equal(torch.stack([s.v for s in s_b]), torch.stack([s.v for s in s_n]))


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_lif_reproduces_norse_lifboxcell_bitwise(reset):
    from norse.torch.functional.reset import reset_subtract, reset_value

    x = inputs(4, 3.0)
    params = nt.LIFBoxParameters(tau_mem_inv=torch.as_tensor(100.0), v_leak=torch.as_tensor(0.0),
                                 v_th=torch.as_tensor(1.0), v_reset=torch.as_tensor(0.0),
                                 reset_method=reset_value if reset == "zero" else reset_subtract)
    cell = nt.LIFBoxCell(params)
    p = LIFParams(tau_mem_ms=10.0, reset=reset, detach_reset=False, integration="norse")
    z_n, s_n = unroll(cell, x)

    def ours(xt, st):
        return lif_step(xt, LIFState(torch.zeros(SHAPE)) if st is None else st, p)

    z_b, s_b = unroll(ours, x)
    assert z_n.sum() > 0
    assert torch.equal(z_b, z_n)
    assert torch.equal(torch.stack([s.v for s in s_b]), torch.stack([s.v for s in s_n]))


@pytest.mark.parametrize("tau_syn_ms", [0.0, 5.0])
def test_leaky_readout_reproduces_norse_bitwise(tau_syn_ms):
    x = inputs(5)
    if tau_syn_ms:
        cell = nt.LICell(nt.LIParameters(tau_syn_inv=torch.as_tensor(200.0), tau_mem_inv=torch.as_tensor(100.0),
                                         v_leak=torch.as_tensor(0.0)))
    else:
        cell = nt.LIBoxCell(nt.LIBoxParameters(tau_mem_inv=torch.as_tensor(100.0), v_leak=torch.as_tensor(0.0)))
    p = LIParams(tau_mem_ms=10.0, tau_syn_ms=tau_syn_ms, integration="norse")
    v_n, _ = unroll(cell, x)
    zero = torch.zeros(SHAPE)

    def ours(xt, st):
        return li_step(xt, LIState(zero, zero) if st is None else st, p)

    v_b, _ = unroll(ours, x)
    assert torch.equal(v_b, v_n)


@pytest.mark.parametrize("integration", ["exact", "norse"])
def test_norse_backend_builds_the_same_network(integration):
    spec = NetSpec(input_shape=(1, 8, 8), n_classes=10, hidden=(40,))
    sur = Surrogate(alpha=1.0)
    lif_p = LIFParams(tau_mem_ms=5.0, reset="subtract", integration=integration, surrogate=sur)
    li_p = LIParams(tau_mem_ms=5.0, integration=integration)
    torch.manual_seed(0)
    ours = build_net(spec, lambda n: LIF(lif_p), lambda: LI(li_p))
    theirs = build_net(spec, lambda n: norse_neuron("lif", lif_p), lambda: norse_readout(li_p))
    theirs.load_state_dict(ours.state_dict())
    assert isinstance(theirs.neurons[0].cell, nt.LIFBoxCell) and isinstance(theirs.neurons[1].cell, nt.LIBoxCell)
    x = torch.rand(3, 1, 8, 8).unsqueeze(0).expand(12, 3, 1, 8, 8) * 5
    hidden_ours, hidden_theirs = [], []
    out_ours = ours(x, record=lambda k, z: hidden_ours.append(z))
    out_theirs = theirs(x, record=lambda k, z: hidden_theirs.append(z))
    assert torch.stack(hidden_ours).sum() > 0
    if integration == "norse":
        assert torch.equal(out_ours, out_theirs)
    else:  # the same discrete map, rounded in another order
        assert torch.equal(torch.stack(hidden_ours), torch.stack(hidden_theirs))
        torch.testing.assert_close(out_ours, out_theirs, rtol=1e-5, atol=1e-5)


def test_norse_backend_refuses_what_norse_cannot_do():
    from biosim.errors import BiosimError

    with pytest.raises(BiosimError, match="no 'arctan' surrogate"):
        norse_neuron("lif", LIFParams(surrogate=Surrogate(kind="arctan")))
    with pytest.raises(BiosimError, match="resets to v_reset only"):
        norse_neuron("cuba", CubaLIFParams(reset="subtract"))
    with pytest.raises(BiosimError, match="no norse counterpart"):
        norse_neuron("alif", LIFParams())
