"""Neuron layers against closed forms: LIF decay and step response, current-based LIF impulse
response, leaky read-out, both resets, adaptive threshold, recurrence; parameter checks."""

from __future__ import annotations

import math

import pytest
import torch

from biosim.errors import BiosimError
from biosim.learn.layers import (
    ALIF, LI, LIF, ALIFParams, ALIFState, CubaLIF, CubaLIFParams, CubaLIFState, LIFParams, LIFState, LIParams,
    LIState, RecurrentLIF, RLIFState, alif_step, cuba_lif_step, li_step, lif_step, make_neuron, rlif_step,
)
from biosim.learn.network import NetSpec, build_net

F64 = torch.float64


def run(step, x_seq, state, p):
    outs, states = [], []
    for x in x_seq:
        z, state = step(x, state, p)
        outs.append(z)
        states.append(state)
    return torch.stack(outs), states


@pytest.mark.parametrize("tau_ms, dt_ms", [(10.0, 1.0), (20.0, 0.1), (5.0, 2.0)])
def test_lif_free_decay_is_exponential(tau_ms, dt_ms):
    p = LIFParams(tau_mem_ms=tau_ms, dt_ms=dt_ms)
    v0 = torch.tensor([0.9, 0.5, -0.3], dtype=F64)
    z, states = run(lif_step, torch.zeros(50, 3, dtype=F64), LIFState(v0), p)
    assert z.sum() == 0
    for n, s in enumerate(states, start=1):
        torch.testing.assert_close(s.v, v0 * math.exp(-n * dt_ms / tau_ms), rtol=1e-12, atol=1e-15)


def test_lif_step_response_and_leak_potential():
    p = LIFParams(tau_mem_ms=8.0, v_leak=0.2, v_th=10.0)
    x = torch.tensor([0.3, 0.6], dtype=F64)
    v0 = torch.tensor([0.0, 1.0], dtype=F64)
    _, states = run(lif_step, x.expand(40, 2), LIFState(v0), p)
    v_inf = p.v_leak + x
    for n, s in enumerate(states, start=1):
        torch.testing.assert_close(s.v, v_inf + (v0 - v_inf) * math.exp(-n / 8.0), rtol=1e-12, atol=1e-14)


def test_lif_regular_firing_with_subtractive_reset():
    """Constant drive x > v_th: interspike interval follows from the closed form."""
    p = LIFParams(tau_mem_ms=10.0, reset="subtract")
    x = torch.tensor([2.0], dtype=F64)
    z, states = run(lif_step, x.expand(200, 1), LIFState(torch.zeros(1, dtype=F64)), p)
    b = math.exp(-0.1)
    # first crossing: 2 (1 - b^n) > 1
    n_first = math.ceil(math.log(0.5) / math.log(b))
    assert int(torch.nonzero(z[:, 0])[0]) == n_first - 1
    # every spike removes exactly v_th - v_reset = 1 from v
    for t in torch.nonzero(z[:, 0]).flatten().tolist():
        v_prev = states[t - 1].v if t else torch.zeros(1, dtype=F64)
        v_pre = b * v_prev + (1 - b) * x
        torch.testing.assert_close(states[t].v, v_pre - 1.0)


def test_lif_zero_reset_sets_v_reset():
    p = LIFParams(tau_mem_ms=10.0, reset="zero", v_reset=-0.25)
    z, st = lif_step(torch.tensor([30.0]), LIFState(torch.tensor([0.5])), p)
    assert z.item() == 1.0 and st.v.item() == -0.25


@pytest.mark.parametrize("tau_mem, tau_syn", [(10.0, 5.0), (5.0, 10.0), (7.0, 7.0)])
def test_cuba_impulse_response(tau_mem, tau_syn):
    """An input at step 0 only: i_n = x b_s^n, v_n = (1 - b_m) x (b_m^n - b_s^n) / (b_m - b_s)."""
    p = CubaLIFParams(tau_mem_ms=tau_mem, tau_syn_ms=tau_syn, v_th=100.0)
    x = torch.zeros(60, 1, dtype=F64)
    x[0] = 0.8
    zero = torch.zeros(1, dtype=F64)
    _, states = run(cuba_lif_step, x, CubaLIFState(zero, zero), p)
    bm, bs = math.exp(-1 / tau_mem), math.exp(-1 / tau_syn)
    for n, s in enumerate(states, start=1):
        geo = n * bm ** (n - 1) if tau_mem == tau_syn else (bm ** n - bs ** n) / (bm - bs)
        assert s.v.item() == pytest.approx((1 - bm) * 0.8 * geo, rel=1e-10)
        assert s.i.item() == pytest.approx(0.8 * bs ** n, rel=1e-12)


def test_li_readout_closed_forms():
    x = torch.tensor([1.5], dtype=F64)
    zero = torch.zeros(1, dtype=F64)
    v, states = run(li_step, x.expand(30, 1), LIState(zero, zero), LIParams(tau_mem_ms=4.0))
    n = torch.arange(1, 31, dtype=F64).unsqueeze(1)
    torch.testing.assert_close(v, 1.5 * (1 - torch.exp(-n / 4.0)))
    assert states[-1].i.item() == 0.0
    # with a synaptic current it is the current-based LIF without threshold
    p = LIParams(tau_mem_ms=6.0, tau_syn_ms=3.0)
    pc = CubaLIFParams(tau_mem_ms=6.0, tau_syn_ms=3.0, v_th=1e9)
    xs = torch.rand(20, 4, dtype=F64)
    v_li, _ = run(li_step, xs, LIState(torch.zeros(4, dtype=F64), torch.zeros(4, dtype=F64)), p)
    _, sc = run(cuba_lif_step, xs, CubaLIFState(torch.zeros(4, dtype=F64), torch.zeros(4, dtype=F64)), pc)
    torch.testing.assert_close(v_li, torch.stack([s.v for s in sc]))


def test_alif_threshold_adapts():
    p = ALIFParams(tau_mem_ms=10.0, tau_adapt_ms=100.0, beta_adapt=2.0)
    x = torch.full((300, 1), 3.0, dtype=F64)
    zero = torch.zeros(1, dtype=F64)
    z_a, states = run(alif_step, x, ALIFState(zero, zero), p)
    z_l, _ = run(lif_step, x, LIFState(zero), LIFParams(tau_mem_ms=10.0))
    assert 0 < z_a.sum() < z_l.sum()
    # a jumps by 1 - b_a at a spike and decays by b_a otherwise
    ba = math.exp(-1 / 100.0)
    a_prev = 0.0
    for t, s in enumerate(states):
        assert s.a.item() == pytest.approx(ba * a_prev + (1 - ba) * z_a[t, 0].item(), rel=1e-12)
        a_prev = s.a.item()
    # the first spike happens where the plain LIF's does (a = 0 until then)
    assert torch.nonzero(z_a[:, 0])[0] == torch.nonzero(z_l[:, 0])[0]


def test_recurrent_lif_without_weights_is_lif_and_with_weights_excites():
    p = LIFParams(tau_mem_ms=10.0)
    x = torch.rand(40, 2, 3, dtype=F64) * 3
    zero = torch.zeros(2, 3, dtype=F64)
    z_l, _ = run(lif_step, x, LIFState(zero), p)
    out, state = [], RLIFState(zero, zero)
    for xt in x:
        z, state = rlif_step(xt, state, p, torch.zeros(3, 3, dtype=F64))
        out.append(z)
    assert torch.equal(torch.stack(out), z_l)
    # neuron 1 gets no input but a strong synapse from neuron 0
    w = torch.zeros(3, 3, dtype=F64)
    w[1, 0] = 30.0
    x = torch.zeros(30, 1, 3, dtype=F64)
    x[:, 0, 0] = 5.0
    state, zs = RLIFState(zero[:1], zero[:1]), []
    for xt in x:
        z, state = rlif_step(xt, state, p, w)
        zs.append(z)
    zs = torch.stack(zs)
    assert zs[:, 0, 1].sum() > 0 and zs[:, 0, 2].sum() == 0
    assert torch.nonzero(zs[:, 0, 1])[0] > torch.nonzero(zs[:, 0, 0])[0]  # one step later


def test_recurrent_module_keeps_autapses_at_zero():
    torch.manual_seed(0)
    layer = RecurrentLIF(5)
    assert torch.all(torch.diagonal(layer.recurrent_weight) == 0)
    x = torch.rand(3, 5) * 20
    state = layer.initial_state(x)
    total = 0
    for _ in range(10):
        z, state = layer(x, state)
        total = total + z.sum() + state.v.sum()
    total.backward()
    assert torch.all(torch.diagonal(layer.recurrent_weight.grad) == 0)
    assert layer.recurrent_weight.grad.abs().sum() > 0


def test_modules_wrap_the_functional_steps():
    torch.manual_seed(1)
    x = torch.rand(4, 6) * 2
    for module, step, p in ((LIF(), lif_step, LIFParams()), (CubaLIF(), cuba_lif_step, CubaLIFParams()),
                            (ALIF(), alif_step, ALIFParams()), (LI(), li_step, LIParams())):
        s0 = module.initial_state(x)
        out_m, s_m = module(x, s0)
        out_f, s_f = step(x, s0, p)
        assert torch.equal(out_m, out_f)
        for a, b in zip(s_m, s_f):
            assert torch.equal(a, b)


def test_surrogate_gradient_flows_through_time():
    w = torch.tensor([1.5], requires_grad=True)
    p = LIFParams(tau_mem_ms=5.0)
    state, total = LIFState(torch.zeros(1)), 0
    for _ in range(10):
        z, state = lif_step(w * torch.ones(1), state, p)
        total = total + z.sum()
    total.backward()
    assert w.grad.item() > 0


def test_convolutional_net_shapes_and_static_input_shortcut():
    torch.manual_seed(0)
    spec = NetSpec(input_shape=(1, 12, 12), n_classes=4, conv_channels=(3, 5), kernel_size=3, hidden=(7,))
    net = build_net(spec, lambda n: LIF(LIFParams(tau_mem_ms=5.0)), lambda: LI(LIParams()))
    x = torch.rand(2, 1, 12, 12) * 5
    static = x.unsqueeze(0).expand(6, *x.shape)
    assert static.stride(0) == 0
    out_static = net(static)
    out_copy = net(static.contiguous())
    assert out_static.shape == (6, 2, 4)
    torch.testing.assert_close(out_static, out_copy, rtol=0, atol=0)


@pytest.mark.parametrize("make, needle", [
    (lambda: LIFParams(tau_mem_ms=0.0), "LIFParams.tau_mem_ms = 0.0 is out of range"),
    (lambda: LIFParams(v_th=0.0, v_reset=0.5), "v_th = 0.0 must be above v_reset = 0.5"),
    (lambda: LIFParams(reset="zeroo"), "did you mean 'zero'"),
    (lambda: LIFParams(integration="euler"), "unknown integration 'euler'"),
    (lambda: LIFParams(integration="norse", dt_ms=20.0), "Euler integration needs dt_ms < tau_mem_ms"),
    (lambda: CubaLIFParams(tau_syn_ms=-1.0), "tau_syn_ms = -1.0 is out of range"),
    (lambda: ALIFParams(beta_adapt=-1.0), "beta_adapt = -1.0 is out of range"),
    (lambda: make_neuron("lfi", None), "did you mean 'lif'"),
    (lambda: make_neuron("rlif", None), "recurrent LIF layer needs a fully connected input"),
    (lambda: NetSpec(input_shape=(1, 8, 8), n_classes=10, conv_channels=(4, 4, 4, 4)), "do not fit a 8x8 input"),
    (lambda: NetSpec(input_shape=(1, 8, 8), n_classes=10, kernel_size=4), "kernel_size = 4 must be an odd"),
])
def test_bad_parameters_are_one_line_errors(make, needle):
    with pytest.raises(BiosimError, match=needle) as info:
        make()
    assert "\n" not in str(info.value)
