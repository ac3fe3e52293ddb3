"""Engine contract tests: determinism, backend agreement, the time-step contract (DESIGN.md
section 4), connectivity, synapse storage, and user errors.

The NumPy reference backend ("numpy") and the compiled one ("numba-cpu") are written
independently for the network plumbing and share the neuron maths, so in float64 they must give
identical spikes and identical state traces for every feature.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import biosim
from biosim import (
    LIF, STDP, AllToAll, BiosimError, CondLIF, Explicit, FixedProbability, Network, OneToOne, SimulationError,
)
from biosim.experiments.networks import build_cuba

FEATURES = ["cuba", "poisson_group", "spike_generator", "delay", "hetero_delay", "poisson_input",
            "step_current", "refractory", "stdp", "cond_lif"]


@pytest.fixture(autouse=True)
def _floating_point_errors_raise():
    """DESIGN.md section 3: the suite runs with ``np.seterr(all="raise")``."""
    with np.errstate(all="raise"):
        yield


def build(features, dtype="float64", seed=3, dt=0.1, every=1):
    """A small network exercising ``features`` (any subset of FEATURES), with state monitors."""
    features = set(features)
    net = Network(dt_ms=dt, dtype=dtype, seed=seed)
    quiet = LIF(v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-50.0, t_ref_ms=2.0)
    v0 = lambda rng, n: -65.0 + 15.0 * rng.random(n)  # noqa: E731
    if "cuba" in features:
        cfg = dict(dt_ms=dt, dtype=dtype, p_connect=0.05, n_exc=160, n_inh=40, we_mv=1.62, wi_mv=-9.0)
        net = build_cuba(cfg, seed)
        exc = net.populations[0]
        net.monitor(exc, "v", indices=np.arange(0, 160, 7), every=every)
        net.monitor(exc, "ge", indices=np.arange(0, 160, 11), every=every)
    a = net.population("a", quiet, 60, init={"v": v0})
    b = net.population("b", quiet, 40, init={"v": v0})
    net.current(a, np.linspace(13.0, 19.0, 60))  # a few of "a" fire on their own, b is driven by a
    net.connect(a, b, "ge", weight=3.0, rule=FixedProbability(p=0.2))
    net.connect(b, a, "gi", weight=-2.0, rule=FixedProbability(p=0.2))
    if "poisson_group" in features:
        pg = net.poisson_group("pg", 80, rate_hz=np.linspace(5.0, 60.0, 80))
        net.connect(pg, a, "ge", weight=lambda rng, n: 2.0 + rng.random(n), rule=FixedProbability(p=0.3))
    if "spike_generator" in features:
        rng = np.random.default_rng(7)
        times = rng.integers(0, 900, 300) * dt + np.where(rng.random(300) < 0.5, 0.0, 0.04)  # on and off the grid
        idx = rng.integers(0, 20, 300)
        keep = np.unique(np.stack([idx, np.floor((times + 1e-3 * dt) / dt)]), axis=1, return_index=True)[1]
        gen = net.spike_generator("gen", 20, idx[keep], times[keep])
        net.connect(gen, b, "ge", weight=6.0, rule=FixedProbability(p=0.3))
        net.connect(gen, a, "v", weight=4.0, rule=FixedProbability(p=0.1))
    if "delay" in features:
        net.connect(a, a, "ge", weight=2.5, rule=FixedProbability(p=0.1), delay_ms=1.5)
        net.connect(b, b, "v", weight=1.0, rule=FixedProbability(p=0.1), delay_ms=0.8)
    if "hetero_delay" in features:
        net.connect(a, b, "v", weight=1.5, rule=FixedProbability(p=0.2),
                    delay_ms=lambda rng, n: np.where(rng.random(n) < 0.2, 0.0, 3.0 * rng.random(n)))
        net.connect(b, b, "gi", weight=-1.0, rule=AllToAll(allow_self=False),
                    delay_ms=lambda rng, n: rng.integers(0, 12, n) * 0.25)
    if "poisson_input" in features:
        net.poisson_input(a, "ge", n_sources=100, rate_hz=12.0, weight=0.6)
        net.poisson_input(b, "v", n_sources=50, rate_hz=20.0, weight=0.4)
    if "step_current" in features:
        net.current(a, np.linspace(0.0, 25.0, 60), start_ms=20.0, stop_ms=60.0)
        net.current(b, 18.0, start_ms=35.05)
    if "refractory" in features:
        long = LIF(v_rest_mv=-65.0, v_reset_mv=-70.0, v_thresh_mv=-50.0, t_ref_ms=7.3)
        r = net.population("r", long, 30, init={"v": v0})
        net.current(r, 20.0)
        net.connect(a, r, "v", weight=3.0, rule=FixedProbability(p=0.3))
        net.connect(r, r, "ge", weight=1.0, rule=AllToAll())
        net.monitor(r, "v", every=every)
    if "stdp" in features:
        src = net.poisson_group("stdp_src", 40, rate_hz=30.0) if "poisson_group" in features else a
        stdp = STDP(tau_pre_ms=15.0, tau_post_ms=25.0, a_plus=0.05, a_minus=0.06, w_min=0.0, w_max=4.0)
        net.connect(src, b, "ge", weight=lambda rng, n: 4.0 * rng.random(n), rule=FixedProbability(p=0.5), stdp=stdp)
        mult = STDP(a_plus=0.1, a_minus=0.1, w_max=2.0, multiplicative=True)
        net.connect(b, a, "ge", weight=1.0, rule=FixedProbability(p=0.3), stdp=mult, delay_ms=0.5)
    if "cond_lif" in features:
        c = net.population("c", CondLIF(), 25, init={"v": lambda rng, n: -60.0 + 10 * rng.random(n)})
        net.connect(a, c, "ge", weight=3.0, rule=FixedProbability(p=0.3))
        net.connect(b, c, "gi", weight=5.0, rule=FixedProbability(p=0.3))
        net.current(c, 250.0)
        net.monitor(c, "v", every=every)
        net.monitor(c, "gi", every=every)
    net.monitor(a, "v", every=every)
    net.monitor(b, "ge", every=every)
    return net


def spikes_of(result):
    return {k: (np.asarray(t), np.asarray(i)) for k, (t, i) in result.spikes.items()}


def assert_same_spikes(r1, r2):
    s1, s2 = spikes_of(r1), spikes_of(r2)
    assert s1.keys() == s2.keys()
    for k in s1:
        np.testing.assert_array_equal(s1[k][0], s2[k][0], err_msg=f"spike times of {k}")
        np.testing.assert_array_equal(s1[k][1], s2[k][1], err_msg=f"spike indices of {k}")


def assert_same_states(r1, r2):
    assert r1.states.keys() == r2.states.keys()
    for k in r1.states:
        np.testing.assert_array_equal(r1.states[k][0], r2.states[k][0], err_msg=f"times of {k}")
        np.testing.assert_array_equal(r1.states[k][1], r2.states[k][1], err_msg=f"values of {k}")


def n_spikes(result):
    return sum(len(t) for t, _ in result.spikes.values())


def synapse_weights(net, proj):
    """Current weights of ``proj`` (in the order of ``proj.i``/``proj.j``)."""
    return net.weights(proj)[2]


# ------------------------------------------------------------------------------------------
# determinism and backends
# ------------------------------------------------------------------------------------------
def test_same_seed_same_spikes_different_seed_different():
    feats = FEATURES
    r1 = build(feats, seed=11).run(100.0)
    r2 = build(feats, seed=11).run(100.0)
    assert n_spikes(r1) > 200
    assert_same_spikes(r1, r2)
    assert_same_states(r1, r2)
    r3 = build(feats, seed=12).run(100.0)
    assert any(not (np.array_equal(r1.spikes[k][0], r3.spikes[k][0]) and np.array_equal(r1.spikes[k][1], r3.spikes[k][1]))
               for k in r1.spikes)
    # the seed decides connectivity and initial values as well as the random inputs
    n1, n3 = build(["cuba"], seed=11), build(["cuba"], seed=12)
    n1.run(0.0), n3.run(0.0)
    assert not np.array_equal(n1._sim.plan.tgt, n3._sim.plan.tgt) or not np.array_equal(n1._sim.plan.X, n3._sim.plan.X)


@pytest.mark.parametrize("feature", FEATURES)
def test_backends_identical_float64(feature):
    """numpy and numba-cpu: identical spikes and bit-identical state traces, per feature."""
    r_nb = build([feature]).run(100.0, backend="numba-cpu")
    r_np = build([feature]).run(100.0, backend="numpy")
    assert n_spikes(r_nb) > 20, f"{feature}: too quiet to be a test ({n_spikes(r_nb)} spikes)"
    assert_same_spikes(r_nb, r_np)
    assert_same_states(r_nb, r_np)


def test_backends_identical_everything_together():
    """All features in one network, including plastic weights after the run."""
    nets = {b: build(FEATURES) for b in ("numba-cpu", "numpy")}
    res = {b: n.run(60.0, backend=b) for b, n in nets.items()}
    assert_same_spikes(res["numba-cpu"], res["numpy"])
    assert_same_states(res["numba-cpu"], res["numpy"])
    np.testing.assert_array_equal(nets["numba-cpu"]._sim.plan.w, nets["numpy"]._sim.plan.w)
    np.testing.assert_array_equal(nets["numba-cpu"]._sim.plan.X, nets["numpy"]._sim.plan.X)


@pytest.mark.slow
def test_float32_runs_and_follows_float64_early():
    """float32: every state finite, spiking, and close to float64 before chaos separates them."""
    r64 = build(FEATURES, dtype="float64").run(100.0)
    net32 = build(FEATURES, dtype="float32")
    r32 = net32.run(100.0)
    assert net32._sim.plan.X.dtype == np.float32 and net32._sim.plan.w.dtype == np.float32
    for k, (_, vals) in r32.states.items():
        assert vals.dtype == np.float32 and np.all(np.isfinite(vals)), k
    assert np.all(np.isfinite(net32._sim.plan.X))
    assert n_spikes(r32) > 200
    # every group's first spikes are the same (to the step) as in float64
    for k in r64.spikes:
        t64, i64 = r64.spikes[k]
        t32, i32 = r32.spikes[k]
        early = t64 < 5.0
        np.testing.assert_array_equal(t32[: early.sum()], t64[early], err_msg=k)
        np.testing.assert_array_equal(i32[: early.sum()], i64[early], err_msg=k)
    # and the traces agree closely over the first milliseconds
    for k in r64.states:
        n = int(round(5.0 / 0.1))
        a, b = r64.states[k][1][:n], r32.states[k][1][:n].astype(np.float64)
        assert np.max(np.abs(a - b)) <= 1e-4 * max(1.0, np.max(np.abs(a))), k
    # the numpy reference agrees with numba-cpu in float32 as well
    r32np = build(FEATURES, dtype="float32").run(100.0, backend="numpy")
    assert_same_spikes(r32, r32np)


def test_two_runs_equal_one_run():
    """Running 50 ms + 50 ms is the same as running 100 ms (random inputs included), also when
    the pieces do not fall on the same chunk boundaries as a single run."""
    one = build(FEATURES).run(100.0)
    net = build(FEATURES)
    net.run(50.0)
    two = net.run(50.0)
    assert two.duration_ms == pytest.approx(100.0)
    assert_same_spikes(one, two)
    assert_same_states(one, two)
    net3 = build(FEATURES)
    for piece in (0.3, 12.2, 0.1, 37.4, 50.0):
        three = net3.run(piece)
    assert_same_spikes(one, three)
    assert_same_states(one, three)


def test_split_runs_with_sparse_monitor():
    """Monitors recording every k-th step keep their grid across calls of run()."""
    one = build(["poisson_input", "spike_generator"], every=3).run(40.0)
    net = build(["poisson_input", "spike_generator"], every=3)
    for piece in (10.0, 0.1, 0.2, 7.3, 22.4):
        two = net.run(piece)
    assert_same_spikes(one, two)
    assert_same_states(one, two)
    times, vals = one.states[("a", "v")]
    np.testing.assert_allclose(times, np.arange(0, 400, 3) * 0.1)
    assert vals.shape == (len(times), 60)


def test_backend_cannot_change_between_runs():
    net = build([])
    net.run(1.0)
    with pytest.raises(BiosimError, match="cannot switch"):
        net.run(1.0, backend="numpy")


# ------------------------------------------------------------------------------------------
# the time step (DESIGN.md section 4)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numba-cpu", "numpy"])
@pytest.mark.parametrize("t_ref,dt", [(2.0, 0.1), (0.25, 0.1), (1.0, 0.5), (0.1, 0.1), (0.0, 0.1)])
def test_refractory_freezes_v_for_k_minus_1_steps(t_ref, dt, backend):
    """Spike at step s0 (threshold on the new state, stamped s0*dt), reset at the end of s0; with
    k = timestep(t_ref) = int(t_ref/dt + 1e-3), v is not integrated in steps s0+1..s0+k-1 and
    ignores synaptic input meanwhile, while ge keeps integrating and receiving input."""
    k = int((t_ref + 1e-3 * dt) / dt)
    p = LIF(tau_mem_ms=10.0, v_rest_mv=-65.0, v_reset_mv=-70.0, v_thresh_mv=-50.0, t_ref_ms=t_ref)
    net = Network(dt_ms=dt)
    pop = net.population("n", p, 2, init={"v": -65.0})
    net.current(pop, np.array([40.0, 40.0]))
    # input into v (gated while refractory) and into ge (never gated), every step, to neuron 1
    n_steps = 400
    gen = net.spike_generator("g", 1, np.zeros(n_steps, int), np.arange(n_steps) * dt)
    net.connect(gen, pop, "v", weight=np.array([0.0, 0.01]), rule=Explicit([0, 0], [0, 1]))
    net.connect(gen, pop, "ge", weight=np.array([0.0, 0.01]), rule=Explicit([0, 0], [0, 1]))
    net.monitor(pop, "v")
    net.monitor(pop, "ge")
    r = net.run(n_steps * dt, backend=backend)
    v = r.states[("n", "v")][1]
    ge = r.states[("n", "ge")][1]
    t, idx = r.spikes["n"]
    steps0 = np.round(t[idx == 0] / dt).astype(int)
    steps1 = np.round(t[idx == 1] / dt).astype(int)
    assert len(steps0) >= 3 and len(steps1) >= 3
    for s0 in steps0[:-1]:
        # v recorded at the start of step s is the state after step s-1
        assert v[s0 + 1, 0] == p.v_reset_mv
        assert np.all(v[s0 + 1: s0 + max(k, 1) + 1, 0] == p.v_reset_mv), (s0, v[s0 + 1: s0 + k + 2, 0])
        assert v[s0 + max(k, 1) + 1, 0] != p.v_reset_mv
    # with input into v: still exactly v_reset through the refractory period
    for s0 in steps1[:-1]:
        assert np.all(v[s0 + 1: s0 + max(k, 1) + 1, 1] == p.v_reset_mv)
    # the ISI: k-1 frozen steps, then m integrated steps to threshold (neuron 0, no input)
    isi = np.diff(steps0)
    assert np.all(isi == isi[0])
    x = p.v_reset_mv
    m = 0
    em = math.exp(-dt / p.tau_mem_ms)
    while x <= p.v_thresh_mv:
        x = p.v_rest_mv + (x - p.v_rest_mv) * em + 40.0 * (1 - em)
        m += 1
    assert isi[0] == max(k - 1, 0) + m
    # ge of neuron 1 integrates and receives every input regardless of refractoriness
    e = math.exp(-dt / p.tau_exc_ms)
    g = np.zeros(n_steps)
    for s in range(1, n_steps):
        g[s] = g[s - 1] * e + 0.01
    np.testing.assert_allclose(ge[:, 1], g, rtol=1e-12)


@pytest.mark.parametrize("backend", ["numba-cpu", "numpy"])
@pytest.mark.parametrize("hetero", [False, True], ids=["homogeneous", "per-synapse"])
def test_delay_rounding_and_zero_delay(hetero, backend):
    """delay d -> int(d/dt + 0.5) steps (half rounds up, unlike np.round); a spike of step s with
    delay n steps is applied in step s+n after the threshold, so it shows in the state recorded
    at step s+n+1; zero delay lands in the spike's own step."""
    dt = 0.5
    delays = np.array([0.0, 0.2, 0.25, 0.5, 0.75, 1.25, 1.3, 2.5, 3.75])
    want_steps = np.array([int(d / dt + 0.5) for d in delays])
    np.testing.assert_array_equal(want_steps, [0, 0, 1, 1, 2, 3, 3, 5, 8])
    s_spike = 4
    net = Network(dt_ms=dt)
    p = LIF(v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-50.0)
    pop = net.population("n", p, len(delays))
    gen = net.spike_generator("g", 1, [0], [s_spike * dt])
    if hetero:
        net.connect(gen, pop, "ge", weight=1.0, rule=Explicit(np.zeros(len(delays), int), np.arange(len(delays))),
                    delay_ms=delays)
    else:
        for j, d in enumerate(delays):
            net.connect(gen, pop, "ge", weight=1.0, rule=Explicit([0], [j]), delay_ms=float(d))
    net.monitor(pop, "ge")
    r = net.run(16 * dt, backend=backend)
    ge = r.states[("n", "ge")][1]
    first = np.argmax(ge > 0, axis=0)
    np.testing.assert_array_equal(first, s_spike + want_steps + 1)
    np.testing.assert_array_equal(ge[first, np.arange(len(delays))], 1.0)


@pytest.mark.parametrize("backend", ["numba-cpu", "numpy"])
def test_spike_effects_within_a_step(backend):
    """A neuron spiking at step s drives a target through a zero-delay synapse in the same step
    (the target spikes at s+1) and through a delay of n steps (target spikes at s+n+1); its own
    ge receives its spike in step s (not gated), its own v input is dropped (refractory, reset)."""
    dt = 0.1
    p = LIF(v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-50.0, t_ref_ms=1.0)
    net = Network(dt_ms=dt)
    src = net.population("src", p, 1, init={"v": -65.0})
    tgt = net.population("tgt", p, 2, init={"v": -65.0})
    gen = net.spike_generator("g", 1, [0], [2.0])  # v of src jumps over threshold in step 20
    net.connect(gen, src, "v", weight=30.0)
    net.connect(src, tgt, "v", weight=np.array([30.0, 0.0]), rule=Explicit([0, 0], [0, 1]))
    net.connect(src, tgt, "v", weight=np.array([0.0, 30.0]), rule=Explicit([0, 0], [0, 1]), delay_ms=0.7)
    net.connect(src, src, "ge", weight=2.0)
    net.connect(src, src, "v", weight=5.0)
    net.monitor(src, "v")
    net.monitor(src, "ge")
    r = net.run(5.0, backend=backend)
    np.testing.assert_allclose(r.spikes["src"][0], [2.1])  # jump in step 20, threshold in step 21
    t, i = r.spikes["tgt"]
    np.testing.assert_allclose(t[np.argsort(i)], [2.2, 2.9])
    ge = r.states[("src", "ge")][1]
    v = r.states[("src", "v")][1]
    assert ge[21, 0] == 0.0 and ge[22, 0] == 2.0
    assert v[22, 0] == p.v_reset_mv


def test_step_current_on_the_grid():
    """current(start, stop) acts in steps round(start/dt) .. round(stop/dt) - 1."""
    dt = 0.1
    p = LIF(v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=0.0, tau_mem_ms=10.0)
    net = Network(dt_ms=dt)
    pop = net.population("n", p, 1)
    net.current(pop, 5.0, start_ms=1.0, stop_ms=2.5)
    net.monitor(pop, "v")
    v = net.run(4.0).states[("n", "v")][1][:, 0]
    moved = np.nonzero(np.diff(v) != 0)[0]
    assert moved[0] == 10  # first integrated with the current in step 10 (visible at step 11)
    assert v[10] == -65.0 and v[11] > -65.0
    assert np.argmax(v) == 25  # last step with the current is 24; decays from step 25 on


def test_poisson_sources_have_their_rates():
    """Poisson group: spike counts ~ rate*T per source; PoissonInput: n_sources*rate*T*weight
    added to v (a membrane with an enormous tau integrates every input)."""
    T, dt = 1000.0, 0.1
    net = Network(dt_ms=dt, seed=4)
    rates = np.repeat([5.0, 40.0], 500)
    pg = net.poisson_group("pg", 1000, rate_hz=rates)
    sink = LIF(tau_mem_ms=1e15, v_rest_mv=0.0, v_reset_mv=0.0, v_thresh_mv=1e12, t_ref_ms=0.0)
    pop = net.population("sink", sink, 200, init={"v": 0.0})
    net.poisson_input(pop, "v", n_sources=50, rate_hz=8.0, weight=0.5)
    # count the group's spikes through a one-to-one projection onto a second integrating sink
    counter = net.population("counter", sink, 1000, init={"v": 0.0})
    net.connect(pg, counter, "v", weight=1.0, rule=OneToOne())
    r = net.run(T)
    counts = net._sim.plan.X[0, net._sim.plan.pop_off[1]:net._sim.plan.pop_off[2]]
    for sel, rate in ((slice(0, 500), 5.0), (slice(500, 1000), 40.0)):
        mean = rate * T * 1e-3 * 500
        assert abs(counts[sel].sum() - mean) < 5 * math.sqrt(mean)
    v = net._sim.plan.X[0, :200]
    mean = 50 * 8.0 * T * 1e-3 * 0.5
    assert abs(v.mean() - mean) < 5 * math.sqrt(50 * 8.0 * T * 1e-3 * 0.25 / 200)
    assert v.var() == pytest.approx(50 * 8.0 * T * 1e-3 * 0.25, rel=0.3)
    assert len(r.spikes["sink"][0]) == 0


# ------------------------------------------------------------------------------------------
# connectivity and storage
# ------------------------------------------------------------------------------------------
def _built(rule, n_src, n_tgt, same=False, seed=0, dtype="float64"):
    net = Network(seed=seed, dtype=dtype)
    a = net.population("a", LIF(), n_src)
    b = a if same else net.population("b", LIF(), n_tgt)
    proj = net.connect(a, b, "ge", weight=1.0, rule=rule)
    net.run(0.0)
    return net, proj


def test_all_to_all_and_one_to_one():
    _, proj = _built(AllToAll(), 7, 5)
    assert len(proj.i) == 35
    assert set(zip(proj.i.tolist(), proj.j.tolist())) == {(i, j) for i in range(7) for j in range(5)}
    _, proj = _built(AllToAll(allow_self=False), 6, 6, same=True)
    assert len(proj.i) == 30 and not np.any(proj.i == proj.j)
    _, proj = _built(AllToAll(allow_self=False), 6, 6, same=False)  # different groups: no "self"
    assert len(proj.i) == 36
    _, proj = _built(OneToOne(), 9, 9)
    np.testing.assert_array_equal(proj.i, np.arange(9))
    np.testing.assert_array_equal(proj.j, np.arange(9))
    with pytest.raises(BiosimError, match="one-to-one"):
        _built(OneToOne(), 9, 8)


@pytest.mark.parametrize("allow_self", [True, False])
def test_fixed_probability_statistics(allow_self):
    n, p = 500, 0.05
    net, proj = _built(FixedProbability(p=p, allow_self=allow_self), n, n, same=True, seed=5)
    pairs = n * (n - (0 if allow_self else 1))
    k = len(proj.i)
    assert abs(k - pairs * p) < 5 * math.sqrt(pairs * p * (1 - p))
    assert len(set(zip(proj.i.tolist(), proj.j.tolist()))) == k  # no duplicates
    n_self = int(np.sum(proj.i == proj.j))
    if allow_self:
        assert abs(n_self - n * p) < 5 * math.sqrt(n * p) + 1
    else:
        assert n_self == 0
    # out- and in-degrees are binomial(n, p): mean and variance
    for deg in (np.bincount(proj.i, minlength=n), np.bincount(proj.j, minlength=n)):
        assert abs(deg.mean() - n * p) < 5 * math.sqrt(n * p * (1 - p) / n)
        assert 0.75 < deg.var() / (n * p * (1 - p)) < 1.3
    # stored sorted by source, with targets of one source in increasing order
    assert np.all(np.diff(proj.i) >= 0)
    assert np.all(np.diff(proj.j)[np.diff(proj.i) == 0] > 0)
    # the kernel's CSR agrees
    plan = net._sim.plan
    np.testing.assert_array_equal(np.diff(plan.indptr[: n + 1]), np.bincount(proj.i, minlength=n))
    np.testing.assert_array_equal(plan.tgt[:k], proj.j)
    # p = 0 and p = 1
    assert len(_built(FixedProbability(p=0.0), 30, 30)[1].i) == 0
    assert len(_built(FixedProbability(p=1.0, allow_self=False), 30, 30, same=True)[1].i) == 30 * 29


def test_fixed_probability_differs_between_projections_and_seeds():
    a = _built(FixedProbability(p=0.1), 100, 100, seed=1)[1]
    b = _built(FixedProbability(p=0.1), 100, 100, seed=2)[1]
    assert not (len(a.i) == len(b.i) and np.array_equal(a.i, b.i) and np.array_equal(a.j, b.j))


def test_explicit_connectivity_and_weights():
    i = np.array([3, 0, 3, 1, 0])
    j = np.array([1, 2, 0, 2, 2])  # a repeated pair (0 -> 2) is two synapses
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    net = Network()
    a = net.population("a", LIF(v_rest_mv=-65.0), 4)
    b = net.population("b", LIF(v_rest_mv=-65.0, v_thresh_mv=0.0), 3)
    proj = net.connect(a, b, "ge", weight=w, rule=Explicit(i, j))
    gen = net.spike_generator("g", 4, [0, 3], [1.0, 2.0])
    net.connect(gen, a, "v", weight=100.0, rule=OneToOne())
    net.monitor(b, "ge")
    r = net.run(5.0)
    # sorted by source, stably: the order among one source's synapses is kept
    np.testing.assert_array_equal(proj.i, [0, 0, 1, 3, 3])
    np.testing.assert_array_equal(proj.j, [2, 2, 2, 1, 0])
    np.testing.assert_array_equal(proj.w, [2.0, 5.0, 4.0, 1.0, 3.0])
    # neuron 0 spikes at 1.1 ms -> b2 gets 2 + 5; neuron 3 at 2.1 ms -> b1 gets 1, b0 gets 3
    ge = r.states[("b", "ge")][1]
    np.testing.assert_allclose(ge[12], [0.0, 0.0, 7.0])
    assert ge[22, 0] == 3.0 and ge[22, 1] == 1.0
    with pytest.raises(BiosimError, match="equal length"):
        _built(Explicit([0, 1], [0]), 3, 3)
    with pytest.raises(BiosimError, match="out of range"):
        _built(Explicit([0, 5], [0, 1]), 3, 3)


def test_static_synapse_storage_is_at_most_8_bytes_in_float32():
    net, proj = _built(FixedProbability(p=0.1), 1000, 1000, dtype="float32")
    plan = net._sim.plan
    n_syn = len(proj.i)
    assert plan.tgt.dtype == np.int32 and plan.w.dtype == np.float32
    per_synapse = (plan.tgt.nbytes + plan.w.nbytes + plan.dly.nbytes) / n_syn
    assert per_synapse <= 8.0
    assert plan.indptr.nbytes <= 8 * (1000 + 1) + 8  # per source, not per synapse


def _plan_bytes(plan) -> int:
    return sum(getattr(plan, f).nbytes for f in plan._fields if isinstance(getattr(plan, f), np.ndarray))


def test_a_network_of_static_synapses_keeps_4_bytes_per_synapse_in_memory():
    """What stays allocated per synapse once a network with one weight per projection is laid out
    (the slope between two connection probabilities, fixed buffers aside): the plan's int32 target,
    and no drawn index arrays beside it (i and j come from the plan)."""
    def build(p):
        net = Network(dt_ms=0.1, seed=4)
        a = net.population("a", LIF(), 2000)
        b = net.population("b", LIF(), 500)
        net.connect(a, b, "ge", weight=0.5, rule=FixedProbability(p=p))
        net.connect(b, a, "gi", weight=-1.0, rule=FixedProbability(p=p))
        return net

    build(0.01).run(0)  # the kernel loaded once, outside the measurement
    kept = {}
    for p in (0.1, 0.3):
        tracemalloc.start()
        try:
            net = build(p)
            net.run(0)
            kept[p] = (tracemalloc.get_traced_memory()[0], sum(pr.n_syn for pr in net.projections))
        finally:
            tracemalloc.stop()
    per_synapse = (kept[0.3][0] - kept[0.1][0]) / (kept[0.3][1] - kept[0.1][1])
    assert 3.9 < per_synapse < 4.5, per_synapse
    proj = net.projections[0]
    assert proj._i is None and proj._j is None
    i, j, w = net.weights(proj)
    plan = net._sim.plan
    assert np.array_equal(np.diff(plan.indptr[:2001]), np.bincount(i, minlength=2000))
    assert np.array_equal(plan.tgt[:proj.n_syn], j + 2000) and np.all(w == 0.5)


def test_per_synapse_delays_add_2_bytes_per_synapse_and_nothing_per_step():
    """The plan of a network with per-synapse delays is that of the same network with one delay
    (the longest) plus 2 bytes per synapse: no accumulator of L x V x N values; each row is ordered
    by delay, and weights() still pairs every synapse with its own weight."""
    i, j = np.repeat(np.arange(20), 20), np.tile(np.arange(20), 20)
    delays = np.tile([0.0, 3.0, 1.0, 2.0, 0.5], 80)
    built = []
    for delay in (delays, 3.0):
        net = Network(dt_ms=0.1, seed=1)
        a = net.population("a", LIF(), 20)
        proj = net.connect(a, a, "ge", weight=(i * 100 + j) * 1e-3, rule=Explicit(i, j), delay_ms=delay)
        net.run(0.1)
        built.append((net, proj))
    (net, proj), (net_one, _) = built
    hetero = net._sim.plan
    assert _plan_bytes(hetero) - _plan_bytes(net_one._sim.plan) == 2 * 400 == hetero.dly.nbytes
    for row in range(20):
        d = hetero.dly[hetero.indptr[row]:hetero.indptr[row + 1]]
        assert np.all(np.diff(d.astype(int)) >= 0) and len(set(d)) == 5
    si, sj, sw = net.weights(proj)
    assert np.array_equal(sw, (si * 100 + sj) * 1e-3)


@pytest.mark.parametrize("backend", ["numba-cpu", "numpy"])
def test_spikes_in_flight_arrive_with_the_weights_of_their_arrival(backend):
    """As in Brian2 (``on_pre`` runs when the spike arrives): weights changed while a spike is in
    flight through per-synapse delays are the ones it delivers."""
    def build(w):
        net = Network(dt_ms=0.1, seed=2)
        src = net.spike_generator("src", 1, [0], [0.5])
        tgt = net.population("tgt", LIF(tau_mem_ms=1e6), 2, init={"v": -70.0})
        proj = net.connect(src, tgt, "v", weight=w, rule=Explicit([0, 0], [0, 1]), delay_ms=[2.0, 4.0])
        return net, tgt, proj

    late, tgt, proj = build([1.0, 1.5])
    late.run(1.5, backend=backend)  # sent at 0.5 ms, arrives at 2.5 and 4.5 ms
    late.normalize(proj, [2.0, 3.0])
    late.run(5.0)
    early, tgt_e, _ = build([2.0, 3.0])
    early.run(6.5, backend=backend)
    assert np.array_equal(late.state(tgt, "v"), early.state(tgt_e, "v"))
    assert np.all(late.state(tgt, "v") > -70.0)


def test_per_synapse_delays_cost_2_bytes_and_are_bounded():
    net = Network(dt_ms=0.1, seed=1)
    a = net.population("a", LIF(), 20)
    net.connect(a, a, "ge", weight=1.0, rule=FixedProbability(p=0.5), delay_ms=lambda rng, n: 3.0 * rng.random(n))
    net.run(0.1)
    plan = net._sim.plan
    assert plan.dly.dtype == np.uint16 and plan.dly.nbytes == 2 * len(plan.tgt) and plan.dly.max() > 0
    net = Network(dt_ms=0.1, seed=1)
    a = net.population("a", LIF(), 4)
    net.connect(a, a, "ge", weight=1.0, delay_ms=[1.0, 7000.0] * 8)
    with pytest.raises(BiosimError, match=r"per-synapse delays of a -> a reach 7000 ms; at dt = 0.1 ms they may be "
                                          r"at most 6553.5 ms \(65535 steps, 2 bytes per synapse\)") as e:
        net.run(0.1)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------
# user errors: one line, naming the problem
# ------------------------------------------------------------------------------------------
def _one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg and msg
    return msg


@pytest.mark.parametrize("make,pattern", [
    (lambda: Network(dt_ms=-0.1), r"dt_ms = -0.1 .*> 0"),
    (lambda: Network(dt_ms=0.0), r"dt_ms"),
    (lambda: Network(dt_ms=float("nan")), r"dt_ms"),
    (lambda: Network(dtype="float16"), r"dtype.*float32|float64"),
    (lambda: LIF(tau_mem_ms=0.0), r"LIF.tau_mem_ms = 0.0 .*> 0"),
    (lambda: LIF(tau_exc_ms=-5.0), r"LIF.tau_exc_ms"),
    (lambda: CondLIF(tau_inh_ms=0.0), r"CondLIF.tau_inh_ms"),
    (lambda: LIF(t_ref_ms=-1.0), r"t_ref_ms.*>= 0"),
    (lambda: STDP(tau_pre_ms=0.0), r"STDP.tau_pre_ms"),
    (lambda: STDP(w_min=1.0, w_max=0.5), r"w_min"),
    (lambda: FixedProbability(p=1.5), r"p = 1.5 .*\[0, 1\]"),
    (lambda: FixedProbability(p=-0.1), r"p = -0.1"),
])
def test_bad_values_raise_one_line(make, pattern):
    with pytest.raises(BiosimError, match=pattern) as exc_info:
        make()
    _one_line(exc_info)


def test_unknown_names_suggest_the_closest():
    net = Network()
    pop = net.population("p", LIF(), 3)
    with pytest.raises(BiosimError, match=r"unknown state variable .*'gee'.*did you mean 'ge'") as e:
        net.connect(pop, pop, "gee", weight=1.0)
    _one_line(e)
    with pytest.raises(BiosimError, match=r"did you mean 'v'") as e:
        net.monitor(pop, "vv")
    with pytest.raises(BiosimError, match=r"did you mean 'gi'") as e:
        net.population("q", LIF(), 3, init={"gii": 0.0})
    with pytest.raises(BiosimError, match=r"unknown backend 'numba-cpuu'; did you mean 'numba-cpu'") as e:
        net.run(1.0, backend="numba-cpuu")
    _one_line(e)
    with pytest.raises(BiosimError, match=r"unknown backend 'cuda'") as e:
        net.run(1.0, backend="cuda")
    _one_line(e)


def test_other_bad_input():
    net = Network()
    pop = net.population("p", LIF(), 3)
    with pytest.raises(BiosimError, match="already exists"):
        net.population("p", LIF(), 3)
    with pytest.raises(BiosimError, match="positive integer"):
        net.population("q", LIF(), 0)
    with pytest.raises(BiosimError, match="rate"):
        net.poisson_group("pg", 3, rate_hz=-1.0)
    with pytest.raises(BiosimError, match="indices"):
        net.spike_generator("g", 2, [0, 2], [1.0, 2.0])
    with pytest.raises(BiosimError, match="times"):
        net.spike_generator("g", 2, [0, 1], [1.0, -2.0])
    with pytest.raises(BiosimError, match="same step"):
        net.spike_generator("g", 2, [0, 0], [1.0, 1.03])  # Brian2 refuses this too
    with pytest.raises(BiosimError, match="finite"):
        net.current(pop, np.inf)
    with pytest.raises(BiosimError, match="delay_ms"):
        net.connect(pop, pop, "ge", weight=1.0, delay_ms=-1.0)
        net.run(1.0)


@pytest.mark.parametrize("what", ["weight", "init", "current", "poisson_input"])
def test_values_beyond_float32_are_refused(what):
    net = Network(dtype="float32")
    pop = net.population("p", LIF(), 3, init={"v": 1e39 if what == "init" else -60.0})
    net.connect(pop, pop, "ge", weight=1e39 if what == "weight" else 1.0)
    if what == "current":
        net.current(pop, -1e39)
    if what == "poisson_input":
        net.poisson_input(pop, "ge", 10, 5.0, weight=1e39)
    with pytest.raises(BiosimError, match="beyond the range of float32") as e:
        net.run(1.0)
    _one_line(e)


@pytest.mark.parametrize("backend", ["numba-cpu", "numpy"])
def test_nan_during_run_names_variable_population_and_step(backend):
    """A conductance neuron with an absurd input current overflows v to inf and then NaN."""
    net = Network(dt_ms=0.1)
    ok = net.population("fine", LIF(), 5)
    bad = net.population("blowup", CondLIF(g_leak_ns=0.5), 4)
    net.current(bad, np.array([0.0, 0.0, 1.7e308, 0.0]), start_ms=3.0)  # v_inf = I/g_leak overflows
    net.connect(ok, ok, "ge", weight=1.0)
    with pytest.raises(SimulationError) as e:
        net.run(10.0, backend=backend)
    msg = _one_line(e)
    assert "v of population 'blowup'" in msg and "neuron 2" in msg and "step 30 " in msg and "t = 3 ms" in msg
    assert "inf" in msg or "nan" in msg


@pytest.mark.parametrize("backend", ["numba-cpu", "numpy"])
def test_nan_from_synaptic_input(backend):
    """Huge weights: ge overflows to inf in the synapse phase of step s and is reported in step
    s+1 (v is refractory then: the spike of step s froze it, so ge is the first non-finite)."""
    net = Network(dt_ms=0.1)
    gen = net.spike_generator("g", 1, [0, 0], [1.0, 1.1])
    pop = net.population("target", LIF(), 2)
    net.connect(gen, pop, "ge", weight=np.array([0.0, 1e308]), rule=Explicit([0, 0], [0, 1]))
    with pytest.raises(SimulationError, match=r"ge of population 'target' became inf \(neuron 1\) at step 12 ") as e:
        net.run(5.0, backend=backend)
    _one_line(e)


def test_network_too_big_is_refused_before_allocating():
    net = Network(dtype="float32")
    a = net.population("a", LIF(), 10**6)
    net.connect(a, a, "ge", weight=1.0, rule=AllToAll())
    tracemalloc.start()
    try:
        with pytest.raises(BiosimError, match=r"network too big .*needs about [0-9.]+ GiB") as e:
            net.run(1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = _one_line(e)
    need = float(msg.split("needs about ")[1].split(" GiB")[0])
    assert need >= 1e12 * 8 / 2**30  # 10^12 synapses of 8 bytes at least
    assert peak < 50 * 2**20  # refused before building anything big
    # the error is raised again, not a half-built network
    with pytest.raises(BiosimError, match="too big"):
        net.run(1.0)


def test_error_classes_are_public():
    assert issubclass(biosim.SimulationError, biosim.BiosimError)
    assert issubclass(biosim.BiosimError, ValueError)


def test_weights_accessor_reports_plastic_weights_in_synapse_order():
    from biosim import STDP, Network, LIF, AllToAll, BiosimError

    net = Network(dt_ms=0.1, seed=3)
    src = net.poisson_group("src", 20, 50.0)
    tgt = net.population("tgt", LIF(v_rest_mv=-49.0), 5)
    proj = net.connect(src, tgt, "ge", weight=0.5, rule=AllToAll(), stdp=STDP(w_max=1.0))
    with pytest.raises(BiosimError, match="call run"):
        net.weights(proj)
    net.run(200.0)
    i, j, w = net.weights(proj)
    assert len(i) == len(j) == len(w) == 100
    assert np.array_equal(i, np.repeat(np.arange(20), 5)) and np.array_equal(j, np.tile(np.arange(5), 20))
    assert np.all((w >= 0) & (w <= 1)) and np.any(w != 0.5)
    start = net._sim.plan.indptr[net._sim.plan.pr_ptr[0]]
    assert np.array_equal(w, net._sim.plan.w[start:start + 100])
