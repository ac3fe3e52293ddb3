"""Diehl & Cook (2015) models (biosim.equations.library.diehl_cook_*) against Brian2 2.9.

A small learning network, the same in both simulators (float64, Brian2's "numpy" target, dt 0.5 ms
as in D&C): 12 spike-generator inputs with fixed spike times drive 4 excitatory D&C neurons
through the D&C STDP synapses (all-to-all, initial weights fixed random in [0, 0.3]); each
excitatory neuron drives its inhibitory partner (one-to-one, 10.4 on ``ge``), which inhibits every
other excitatory neuron (all-but-self, 17.0 on ``gi``). The input shows four "images" of 200 ms
with 50 ms of silence after each: image k drives inputs 3k..3k+2 at 1500 Hz (each input stands for
many MNIST pixels), the others at 20 Hz. After 1 s of learning: the same spike trains (every
spike, both populations), the same weights (to rounding: the traces are decayed by exp() of
the elapsed time on both sides, in a different order) and the same thresholds (theta) and
membrane potentials at every step.

The same integration method is forced on both sides: ``euler`` (the factories' default, D&C's and
Brian2's default for these equations) and biosim's own choice (``method=None``: exact decays,
exponential Euler for ``v``), which is Brian2's ``exponential_euler``.
"""

from __future__ import annotations

import numpy as np
import pytest

from biosim import AllToAll, Explicit, Network, OneToOne
from biosim.equations import library

DT_MS, T_MS = 0.5, 1000.0
N_IN, N_E = 12, 4
W_EI, W_IE = 10.4, 17.0
SEED, RATE_HZ, BACKGROUND_HZ = 11, 1500.0, 20.0
IMAGE_MS, ON_MS = 250.0, 200.0


@pytest.fixture(autouse=True)
def _fp_errors_raise():
    with np.errstate(all="raise"):
        yield


def _inputs():
    """Fixed input spikes (indices, times on the dt grid in ms), initial weights, inhibition's i, j."""
    rng = np.random.default_rng(SEED)
    n_img = int(T_MS // IMAGE_MS)
    profile = np.where(np.arange(N_IN)[None, :] // 3 == np.arange(n_img)[:, None], RATE_HZ, BACKGROUND_HZ)
    t = np.arange(round(T_MS / DT_MS)) * DT_MS
    rates = np.where((t % IMAGE_MS < ON_MS)[:, None], profile[(t // IMAGE_MS).astype(int)], 0.0)
    steps, idx = np.nonzero(rng.random(rates.shape) < rates * DT_MS * 1e-3)
    w0 = rng.uniform(0.0, 0.3, N_IN * N_E)  # in AllToAll's order: i = k // N_E, j = k % N_E
    ie_i, ie_j = np.nonzero(~np.eye(N_E, dtype=bool))
    return idx, steps * DT_MS, w0, ie_i, ie_j


def _ours(method, backend="numba-cpu", exc_overrides=None, stdp_overrides=None):
    idx, times, w0, ie_i, ie_j = _inputs()
    net = Network(dt_ms=DT_MS, dtype="float64")
    inp = net.spike_generator("in", N_IN, idx, times)
    exc = net.population("exc", library.diehl_cook_exc(method)(**(exc_overrides or {})), N_E)
    inh = net.population("inh", library.diehl_cook_inh(method)(), N_E)
    proj = net.connect(inp, exc, synapse=library.diehl_cook_stdp()(**(stdp_overrides or {})), init={"w": w0},
                       rule=AllToAll())
    net.connect(exc, inh, "ge", weight=W_EI, rule=OneToOne())
    net.connect(inh, exc, "gi", weight=W_IE, rule=Explicit(ie_i, ie_j))
    net.monitor(exc, "theta")
    net.monitor(exc, "v")
    r = net.run(T_MS, backend=backend)
    i, j, w = net.weights(proj, "w")
    return {"r": r, "i": i, "j": j, "w": w, "w0": w0, "theta": r.states[("exc", "theta")][1], "v": r.states[("exc", "v")][1]}


def _brian2(method, syn_i, syn_j):
    import brian2 as b2

    idx, times, w0, ie_i, ie_j = _inputs()
    b2.start_scope()
    b2.prefs.codegen.target = "numpy"
    b2.prefs.core.default_float_dtype = np.float64
    b2.defaultclock.dt = DT_MS * b2.ms
    ms, mV = b2.ms, b2.mV
    # D&C's equations (their Brian 1 code, written for Brian2): dimensionless conductances
    eqs = """
    dv/dt = ((v_rest - v) + ge * (e_exc - v) + gi * (e_inh - v)) / tau_mem : volt (unless refractory)
    dge/dt = -ge / tau_ge : 1
    dgi/dt = -gi / tau_gi : 1
    """
    ns_e = {"tau_mem": 100 * ms, "v_rest": -65 * mV, "v_reset": -65 * mV, "v_thresh": -52 * mV,
            "offset": 20 * mV, "theta_plus": 0.05 * mV, "tau_theta": 1e7 * ms, "tau_ge": 1 * ms,
            "tau_gi": 2 * ms, "e_exc": 0 * mV, "e_inh": -100 * mV}
    ns_i = {"tau_mem": 10 * ms, "v_rest": -60 * mV, "v_reset": -45 * mV, "v_thresh": -40 * mV,
            "tau_ge": 1 * ms, "tau_gi": 2 * ms, "e_exc": 0 * mV, "e_inh": -85 * mV}
    ns_s = {"tau_pre": 20 * ms, "tau_post1": 20 * ms, "tau_post2": 40 * ms, "nu_pre": 1e-4, "nu_post": 1e-2,
            "w_max": 1.0}
    inp = b2.SpikeGeneratorGroup(N_IN, idx, times * ms)
    exc = b2.NeuronGroup(N_E, eqs + "dtheta/dt = -theta / tau_theta : volt", threshold="v > v_thresh + theta - offset",
                         reset="v = v_reset; theta += theta_plus", refractory=5 * ms, method=method,
                         namespace=ns_e, name="exc")
    inh = b2.NeuronGroup(N_E, eqs, threshold="v > v_thresh", reset="v = v_reset", refractory=2 * ms,
                         method=method, namespace=ns_i, name="inh")
    exc.v = -105 * mV  # D&C: v_rest - 40 mV
    exc.theta = 20 * mV
    inh.v = -100 * mV
    # Synapses of one slot run in name order (biosim: projection order); on_pre before on_post
    stdp = b2.Synapses(inp, exc, """
                       w : 1
                       dpre/dt = -pre / tau_pre : 1 (event-driven)
                       dpost1/dt = -post1 / tau_post1 : 1 (event-driven)
                       dpost2/dt = -post2 / tau_post2 : 1 (event-driven)
                       """,
                       on_pre="ge_post += w; pre = 1; w = clip(w - nu_pre * post1, 0, w_max)",
                       on_post="w = clip(w + nu_post * pre * post2, 0, w_max); post1 = 1; post2 = 1",
                       namespace=ns_s, name="syn00")
    stdp.connect(i=syn_i, j=syn_j)
    stdp.w = w0
    ei = b2.Synapses(exc, inh, "w : 1", on_pre="ge_post += w", name="syn01")
    ei.connect(j="i")
    ei.w = W_EI
    ie = b2.Synapses(inh, exc, "w : 1", on_pre="gi_post += w", name="syn02")
    ie.connect(i=ie_i, j=ie_j)
    ie.w = W_IE
    mons = {"exc": b2.SpikeMonitor(exc), "inh": b2.SpikeMonitor(inh)}
    states = b2.StateMonitor(exc, ["theta", "v"], record=True)
    with np.errstate(under="ignore"):  # conductances decay through the subnormals to 0 (Euler: x0.5 a step)
        b2.Network(inp, exc, inh, stdp, ei, ie, *mons.values(), states).run(T_MS * ms, namespace={})
    out = {name: _steps(m.t[:] / ms, m.i[:]) for name, m in mons.items()}
    out.update(w=np.asarray(stdp.w[:]).copy(), theta=np.asarray(states.theta / mV).T,
               v=np.asarray(states.v / mV).T)
    return out


def _steps(times_ms, indices):
    steps = np.round(np.asarray(times_ms) / DT_MS).astype(np.int64)
    idx = np.asarray(indices).astype(np.int64)
    order = np.lexsort((idx, steps))
    return steps[order], idx[order]


@pytest.mark.parametrize("method, b2_method", [pytest.param("euler", "euler", marks=pytest.mark.slow), (None, "exponential_euler")])
def test_small_diehl_cook_network_learns_like_brian2(method, b2_method):
    pytest.importorskip("brian2")
    ours = _ours(method)
    exc_model = library.diehl_cook_exc(method)
    assert exc_model.methods == ({v: "euler" for v in ("v", "ge", "gi", "theta")} if method else
                                 {"v": "exponential_euler", "ge": "exact", "gi": "exact", "theta": "exact"})
    theirs = _brian2(b2_method, ours["i"], ours["j"])
    for pop in ("exc", "inh"):
        t, i = ours["r"].spikes[pop]
        mine = _steps(t, i)
        assert len(mine[0]) == len(theirs[pop][0]), (pop, len(mine[0]), len(theirs[pop][0]))
        np.testing.assert_array_equal(mine[0], theirs[pop][0])
        np.testing.assert_array_equal(mine[1], theirs[pop][1])
    # the network is not trivial: every excitatory neuron spikes, weights and thresholds move
    counts = np.bincount(ours["r"].spikes["exc"][1], minlength=N_E)
    assert np.all(counts >= 2) and counts.sum() >= 20, counts
    assert np.abs(ours["w"] - ours["w0"]).max() > 5e-3
    # mostly potentiation (nu_post = 100 nu_pre; D&C normalise the weights between images), some depression
    assert np.sum(ours["w"] > ours["w0"]) > 20 and np.sum(ours["w"] < ours["w0"]) > 0
    np.testing.assert_allclose(ours["w"], theirs["w"], rtol=0, atol=1e-12)
    # states at the start of every step (the monitors' sampling), theta from 20 mV + 0.05 mV per spike
    # theta (~20 mV): Euler's theta * (1 - dt/tau_theta) here, theta + dt * (-theta/tau_theta) in Brian2,
    # 2000 times: rounding reaches ~1e-12 mV
    np.testing.assert_allclose(ours["theta"], theirs["theta"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours["v"], theirs["v"], rtol=0, atol=1e-9)
    assert np.all(np.abs(ours["theta"][-1] - (20.0 + 0.05 * counts)) < 0.01)


def test_plasticity_and_adaptation_switch_off():
    """nu_pre = nu_post = 0 keeps the weights; theta_plus = 0 leaves theta to its slow decay;
    the NumPy reference backend gives the numba kernels' spikes and weights."""
    frozen = _ours("euler", exc_overrides={"theta_plus_mv": 0.0}, stdp_overrides={"nu_pre": 0.0, "nu_post": 0.0})
    assert len(frozen["r"].spikes["exc"][0]) > 10
    np.testing.assert_array_equal(frozen["w"], frozen["w0"])
    decay = (1.0 - DT_MS / 1e7) ** np.arange(len(frozen["theta"]))  # forward Euler on theta
    np.testing.assert_allclose(frozen["theta"], 20.0 * decay[:, None] * np.ones(N_E), rtol=1e-12, atol=0)
    fast, slow = _ours("euler"), _ours("euler", backend="numpy")
    for pop in ("exc", "inh"):
        np.testing.assert_array_equal(fast["r"].spikes[pop][0], slow["r"].spikes[pop][0])
        np.testing.assert_array_equal(fast["r"].spikes[pop][1], slow["r"].spikes[pop][1])
    np.testing.assert_array_equal(fast["w"], slow["w"])
