"""biosim.learn.fused: the fused time loop gives the reference layer's spikes and gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

from biosim.errors import BiosimError
from biosim.learn.fused import FusedLIF, FusedLinearLIF, lif_sequence
from biosim.learn.layers import LIF, CubaLIFParams, LIFParams, LIFState, lif_step
from biosim.learn.surrogate import Surrogate

T = 12


def reference(cur, p, steps=None):
    """Spikes and pre-reset potentials from T calls of lif_step (autograd through every step)."""
    xs = [cur] * steps if steps else list(cur)
    b = p.beta_mem()
    state = LIFState(torch.full_like(xs[0], p.v_leak))
    zs, vs = [], []
    for x in xs:
        drive = x + p.v_leak if p.v_leak else x
        vs.append(b * state.v + (1.0 - b) * drive)  # lif_step's v_pre, the same operations
        z, state = lif_step(x, state, p)
        zs.append(z)
    return torch.stack(zs), torch.stack(vs)


def _grads(fn, cur, weights):
    cur = cur.detach().clone().requires_grad_(True)
    z, v = fn(cur)
    loss = (z * weights[0]).sum() + (0.0 if v is None or weights[1] is None else (v * weights[1]).sum())
    loss.backward()
    return z.detach(), (None if v is None else v.detach()), cur.grad


CASES = list(itertools.product(["subtract", "zero"], [True, False], ["fast_sigmoid", "arctan", "sigmoid", "triangle"]))


@pytest.mark.parametrize("impl", ["numba", "torch"])
@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("reset,detach,kind", CASES)
def test_same_spikes_and_gradients_as_reference(impl, static, reset, detach, kind):
    torch.manual_seed(hash((impl, static, reset, detach, kind)) % 2**31)
    p = LIFParams(tau_mem_ms=7.3, v_th=1.3, v_reset=0.1, v_leak=0.2, reset=reset, detach_reset=detach,
                  surrogate=Surrogate(kind=kind, alpha=3.0))
    cur = torch.randn(3, 40) * 3 + 3 if static else torch.randn(T, 3, 40) * 3 + 3
    steps = T if static else None
    weights = (torch.randn(T, 3, 40), torch.randn(T, 3, 40))
    z_ref, v_ref, g_ref = _grads(lambda c: reference(c, p, steps), cur, weights)
    z, v, g = _grads(lambda c: lif_sequence(c, p, steps, impl=impl), cur, weights)
    assert 0.05 < z_ref.mean() < 0.6  # the layer spikes, but not always
    assert torch.equal(z, z_ref)
    assert torch.equal(v, v_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5 * float(g_ref.abs().max()))
    # spikes only (the membrane output unused, or not asked for)
    _, _, g_ref2 = _grads(lambda c: reference(c, p, steps), cur, (weights[0], None))
    z2, v2, g2 = _grads(lambda c: lif_sequence(c, p, steps, membrane=False, impl=impl), cur, weights)
    assert v2 is None and torch.equal(z2, z_ref)
    torch.testing.assert_close(g2, g_ref2, rtol=1e-4, atol=1e-5 * float(g_ref2.abs().max()))


@pytest.mark.parametrize("impl", ["numba", "torch"])
def test_float64_and_membrane_only_gradient(impl):
    torch.manual_seed(1)
    p = LIFParams(tau_mem_ms=5.0, surrogate=Surrogate(kind="arctan", alpha=2.0))
    cur = torch.rand(T, 4, 30, dtype=torch.float64) * 4
    w = torch.randn(T, 4, 30, dtype=torch.float64)
    z_ref, v_ref, g_ref = _grads(lambda c: reference(c, p), cur, (torch.zeros_like(w), w))
    z, v, g = _grads(lambda c: lif_sequence(c, p, impl=impl), cur, (torch.zeros_like(w), w))
    assert z.dtype == torch.float64 and torch.equal(z, z_ref) and torch.equal(v, v_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def test_large_layer_uses_threads_and_matches():
    # wide enough for the Numba kernels to split the columns over threads
    torch.manual_seed(2)
    p = LIFParams(tau_mem_ms=20.0, surrogate=Surrogate(kind="fast_sigmoid", alpha=5.0))
    cur = torch.rand(64, 1100) * 30
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        w = (torch.randn(6, 64, 1100), None)
        z_ref, _, g_ref = _grads(lambda c: reference(c, p, 6), cur, w)
        z, _, g = _grads(lambda c: lif_sequence(c, p, 6, membrane=False, impl="numba"), cur, w)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(z, z_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5 * float(g_ref.abs().max()))


def test_modules_match_linear_plus_reference_layer():
    torch.manual_seed(3)
    p = LIFParams(tau_mem_ms=4.0, surrogate=Surrogate(kind="arctan", alpha=2.0))
    fused = FusedLinearLIF(20, 15, p)
    ref_lin = torch.nn.Linear(20, 15)
    ref_lin.load_state_dict(fused.linear.state_dict())
    lif = LIF(p)
    for x in (torch.rand(T, 5, 20) * 5, (torch.rand(5, 20) * 5).unsqueeze(0).expand(T, 5, 20)):
        out = fused(x)
        assert out.v is None
        state, zs = None, []
        for t in range(T):
            cur = ref_lin(x[t])
            z, state = lif(cur, state if state is not None else lif.initial_state(cur))
            zs.append(z)
        z_ref = torch.stack(zs)
        assert torch.equal(out.z, z_ref)
        w = torch.randn(T, 5, 15)
        (out.z * w).sum().backward()
        (z_ref * w).sum().backward()
        for a, b in ((fused.linear.weight, ref_lin.weight), (fused.linear.bias, ref_lin.bias)):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
            a.grad = b.grad = None
    z, v = FusedLIF(p)(torch.rand(T, 2, 3))
    assert z.shape == v.shape == (T, 2, 3)


def test_backward_twice_with_retained_graph():
    p = LIFParams(tau_mem_ms=3.0)
    cur = (torch.rand(T, 2, 8) * 5).requires_grad_(True)
    z, v = lif_sequence(cur, p)
    loss = z.sum() + v.sum()
    loss.backward(retain_graph=True)
    g1 = cur.grad.clone()
    loss.backward()
    torch.testing.assert_close(cur.grad, 2 * g1)


def test_errors():
    with pytest.raises(BiosimError, match="integration='exact'"):
        lif_sequence(torch.rand(T, 3), LIFParams(integration="norse"))
    with pytest.raises(BiosimError, match="plain LIFParams"):
        lif_sequence(torch.rand(T, 3), CubaLIFParams())
    with pytest.raises(BiosimError, match="unknown fused LIF implementation 'cuda'"):
        lif_sequence(torch.rand(T, 3), impl="cuda")
    with pytest.raises(BiosimError, match="steps"):
        lif_sequence(torch.rand(3), steps=0)
    with pytest.raises(BiosimError, match="floating-point"):
        lif_sequence(torch.ones(T, 3, dtype=torch.int64))
    with pytest.raises(BiosimError, match="float32/float64"):
        lif_sequence(torch.rand(T, 3, dtype=torch.float16), impl="numba")


@pytest.mark.parametrize("static", [False, True])
def test_broadcast_and_strided_gradients(static):
    # out.sum() sends a stride-0 gradient; a permuted input is not contiguous
    torch.manual_seed(4)
    p = LIFParams(tau_mem_ms=6.0, v_leak=0.1, surrogate=Surrogate(kind="arctan", alpha=2.0))
    cur = (torch.rand(40, 3) * 4).t() if static else (torch.rand(40, 3, T) * 4).permute(2, 1, 0)
    steps = T if static else None
    assert not cur.is_contiguous()

    def run(fn):
        c = cur.detach().requires_grad_(True)  # keeps the strides
        z, v = fn(c)
        (z.sum() + v.sum()).backward()
        return z.detach(), c.grad

    z_ref, g_ref = run(lambda c: reference(c, p, steps))
    z, g = run(lambda c: lif_sequence(c, p, steps, impl="numba"))
    assert torch.equal(z, z_ref)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5 * float(g_ref.abs().max()))


# ----------------------------------------------------------------------------- in the trainer's networks

def _net_from_model(name, sets, input_shape, seed=0):
    from biosim.experiments.registry import apply_overrides, load_model
    from biosim.experiments.train_runner import build_from_params

    params = apply_overrides(load_model(name)["params"], list(sets))
    torch.manual_seed(seed)
    model, encode, _, _ = build_from_params(params, input_shape, 10)
    return model, encode


def _fused_vs_stock(name, sets, input_shape, train):
    fz, encode = _net_from_model(name, [*sets, "learn.fused=true"], input_shape)
    st, _ = _net_from_model(name, [*sets, "learn.fused=false"], input_shape)
    st.load_state_dict(fz.state_dict())
    g = torch.Generator().manual_seed(1)
    x = encode(torch.rand((6, *input_shape), generator=g))
    outs, grads = [], []
    for net in (fz, st):
        net.train(train)
        torch.manual_seed(2)  # the same dropout masks and encoder draws
        out = net(x)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append([p.grad.clone() for p in net.parameters()])
    assert torch.equal(outs[0], outs[1])  # the same spikes, the same read-out
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    return fz, st


@pytest.mark.parametrize("train", [False, True])
def test_lif_mnist_net_runs_fused_with_the_stock_output(train):
    fz, st = _fused_vs_stock("lif_mnist", ["net.hidden=[200]"], (1, 28, 28), train)
    assert fz.fused_stages() == [True, False]  # the LI read-out stays a step loop
    assert st.fused_stages() == [False, False]


def test_lif_mnist_config_selects_the_fused_path():
    from biosim.experiments.registry import load_model

    assert load_model("lif_mnist")["params"]["learn"]["fused"] is True
    net, _ = _net_from_model("lif_mnist", [], (1, 28, 28))
    assert net.fused and net.fused_stages() == [True, False]
    assert [type(m).__name__ for m in net.neurons] == ["LIF", "LI"]  # the same modules (checkpoints, NIR)


@pytest.mark.parametrize("sets", [
    ["net.conv_channels=[4]", "net.hidden=[16]", "encoder.kind=poisson", "encoder.gain=0.5",
     "readout.kind=count_ce", "neuron.reset=zero", "surrogate.kind=arctan"],
    ["net.hidden=[16, 12]", "neuron.detach_reset=false", "surrogate.kind=triangle"],
])
def test_other_fusable_nets_give_the_stock_output(sets):
    fz, _ = _fused_vs_stock("lif_digits", sets, (1, 8, 8), True)
    assert all(fz.fused_stages()[:-1])


@pytest.mark.parametrize("sets", [["net.neuron=cuba"], ["net.neuron=alif"], ["neuron.integration=norse"]])
def test_other_neurons_fall_back_to_the_step_loop(sets):
    net, _ = _net_from_model("lif_digits", [*sets, "net.hidden=[16]"], (1, 8, 8))
    assert net.fused and not any(net.fused_stages())
