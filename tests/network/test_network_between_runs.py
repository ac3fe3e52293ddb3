"""Changing a network between runs without rebuilding or recompiling it (what Diehl & Cook's
per-image loop needs): ``set_params`` (neurons, synapse models, built-in STDP), ``set_rates``,
``normalize``, ``set_state``/``state``, and results that stay cheap however long a network runs.

Each change must do exactly what rebuilding the network with it would do (same spikes), give the
same results on numba-cpu and numpy, reuse the compiled kernel and the plan's arrays, and refuse
mistakes with one-line BiosimErrors.
"""

from __future__ import annotations

import numpy as np
import pytest

from biosim import LIF, STDP, BiosimError, CondLIF, Explicit, FixedProbability, Network, OneToOne
from biosim.equations import Model, library

BACKENDS = ["numba-cpu", "numpy"]


@pytest.fixture(autouse=True)
def _fp_errors_raise():
    with np.errstate(all="raise"):
        yield


ADAPT = Model.from_equations(
    """
    dv/dt = (v_rest - v + ge) / tau_mem : mV (unless refractory)
    dge/dt = -ge / tau_exc : mV
    dtheta/dt = -theta / tau_theta : mV
    """,
    parameters={"tau_mem": "20 ms", "tau_exc": "5 ms", "tau_theta": "1000 ms", "v_rest": "-65 mV",
                "v_reset": "-65 mV", "v_thresh": "-52 mV", "theta_plus": "0.5 mV"},
    threshold="v > v_thresh + theta", reset="v = v_reset; theta += theta_plus", refractory="2 ms",
    init={"v": "v_rest"}, name="test_between_runs_adapt")

PAIR_STDP = library.pair_stdp(STDP(a_plus=0.1, a_minus=0.105, w_max=3.0))  # the built-in rule as text

QUIET = LIF(v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-50.0, t_ref_ms=2.0)


def lif_net(params=QUIET, rate=40.0, seed=5, dtype="float64", v0=lambda rng, n: -65.0 + 10.0 * rng.random(n)):
    """80 Poisson sources -> 40 LIF neurons (all to all, random weights)."""
    net = Network(dt_ms=0.1, seed=seed, dtype=dtype)
    inp = net.poisson_group("in", 80, rate)
    exc = net.population("exc", params, 40, init={} if v0 is None else {"v": v0})
    proj = net.connect(inp, exc, "ge", weight=lambda rng, n: 3.0 * rng.random(n))
    return net, inp, exc, proj


def stdp_net(synapse=None, seed=3):
    """60 Poisson sources -> 30 LIF neurons through the pair-STDP synapse model."""
    net = Network(dt_ms=0.1, seed=seed)
    inp = net.poisson_group("in", 60, 15.0)
    exc = net.population("exc", LIF(), 30)
    proj = net.connect(inp, exc, synapse=synapse or PAIR_STDP(), init={"w": 1.5}, rule=FixedProbability(p=0.3),
                       delay_ms=0.5)
    return net, inp, exc, proj


def same_spikes(a, b, name="exc"):
    np.testing.assert_array_equal(a.spikes[name][0], b.spikes[name][0])
    np.testing.assert_array_equal(a.spikes[name][1], b.spikes[name][1])


def kernel_fingerprint(net):
    """What would change if anything were rebuilt or recompiled."""
    sim = net._sim
    sigs = len(getattr(sim.run_chunk, "signatures", ()))
    return sim, sim.run_chunk, sim.plan, tuple(id(a) for a in sim.plan if isinstance(a, np.ndarray)), sigs


# --- set_params ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_set_params_after_layout_equals_building_with_them(backend):
    """A new threshold and refractory period set after the network is laid out (run(0)) give the
    spikes of a network built with them, with the same kernel and plan arrays."""
    new = LIF(v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-54.0, t_ref_ms=3.5)
    ref_net, *_ = lif_net(new)
    ref = ref_net.run(150.0, backend=backend)
    net, _, exc, _ = lif_net(QUIET)
    net.run(0.0, backend=backend)
    before = kernel_fingerprint(net)
    net.set_params(exc, new)
    assert exc.params is new
    assert net._sim.plan.pop_ref[exc.index] == 35
    got = net.run(150.0, backend=backend)
    assert len(ref.spikes["exc"][0]) > 50
    same_spikes(got, ref)
    assert kernel_fingerprint(net) == before
    np.testing.assert_array_equal(net._sim.plan.C, ref_net._sim.plan.C)


def test_set_params_between_runs_takes_effect_from_the_next_step():
    """The first segment is the old network's, the second differs from not changing anything, and
    both backends agree; setting the old parameters back restores the old constants exactly."""
    runs = {}
    for backend in BACKENDS:
        net, _, exc, _ = lif_net(QUIET)
        first = net.run(100.0, backend=backend)
        c_old = net._sim.plan.C.copy()
        net.set_params(exc, LIF(v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-56.0, t_ref_ms=2.0))
        runs[backend] = (first.spikes["exc"], net.run(100.0).spikes["exc"], net.state(exc, "v"))
        net.set_params(exc, QUIET)
        np.testing.assert_array_equal(net._sim.plan.C, c_old)
    plain, *_ = lif_net(QUIET)
    untouched = plain.run(200.0).spikes["exc"]
    first, both, v = runs["numba-cpu"]
    early = untouched[0] < 100.0
    np.testing.assert_array_equal(first[0], untouched[0][early])
    np.testing.assert_array_equal(both[0][both[0] < 100.0], untouched[0][early])
    assert np.sum(both[0] >= 100.0) > np.sum(untouched[0] >= 100.0)  # a lower threshold: more spikes
    for k in range(2):
        np.testing.assert_array_equal(both[k], runs["numpy"][1][k])
    np.testing.assert_array_equal(v, runs["numpy"][2])


def test_freezing_an_adaptive_threshold():
    """theta grows with each spike; with theta_plus set to 0 it only decays (Diehl & Cook's test
    phase), and the model itself stands for its defaults."""
    net = Network(dt_ms=0.5, seed=2)
    inp = net.poisson_group("in", 100, 30.0)
    exc = net.population("exc", ADAPT, 20)
    net.connect(inp, exc, "ge", weight=lambda rng, n: 3.0 * rng.random(n))
    net.run(300.0)
    theta = net.state(exc, "theta")
    assert theta.max() > 1.0
    before = kernel_fingerprint(net)
    net.set_params(exc, ADAPT(theta_plus_mv=0.0))
    res = net.run(300.0)
    assert len(res.spikes_since(res.start_ms)["exc"][0]) > 20  # still spiking
    decayed = theta * np.exp(-300.0 / 1000.0)
    np.testing.assert_allclose(net.state(exc, "theta"), decayed, rtol=1e-9)
    net.set_params(exc, ADAPT)  # defaults again: theta grows
    net.run(300.0)
    assert np.any(net.state(exc, "theta") > decayed * np.exp(-300.0 / 1000.0) + 0.1)
    assert kernel_fingerprint(net) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_switching_plasticity_off_in_a_synapse_model(backend):
    """Learning rates set to 0 freeze the weights while the network keeps spiking; from the start
    they equal a network built with them."""
    frozen = PAIR_STDP(a_plus_mv=0.0, a_minus_mv=0.0)
    net, _, _, proj = stdp_net()
    net.run(150.0, backend=backend)
    w_learnt = net.weights(proj)[2]
    assert np.std(w_learnt) > 0.01
    before = kernel_fingerprint(net)
    net.set_params(proj, frozen)
    assert proj.synapse is frozen
    res = net.run(150.0)
    assert len(res.spikes_since(res.start_ms)["exc"][0]) > 20
    # the generated statement is w = 1000*clip(w/1000 - ..., ...) (mV <-> V): rounding only
    np.testing.assert_allclose(net.weights(proj)[2], w_learnt, rtol=0, atol=1e-12)
    assert kernel_fingerprint(net) == before

    ref_net, *_ = stdp_net(frozen)
    ref = ref_net.run(150.0, backend=backend)
    late, _, _, late_proj = stdp_net()
    late.run(0.0, backend=backend)
    late.set_params(late_proj, frozen)
    same_spikes(late.run(150.0), ref)
    np.testing.assert_allclose(late.weights(late_proj)[2], 1.5, rtol=0, atol=1e-12)


def test_switching_builtin_stdp_off():
    net = Network(dt_ms=0.1, seed=3)
    inp = net.poisson_group("in", 60, 15.0)
    exc = net.population("exc", LIF(), 30)
    proj = net.connect(inp, exc, "ge", weight=1.5, rule=FixedProbability(p=0.3), stdp=STDP(a_plus=0.1, a_minus=0.105, w_max=3.0))
    net.run(150.0)
    w = net.weights(proj)[2]
    assert np.std(w) > 0.01
    net.set_params(proj, STDP(a_plus=0.0, a_minus=0.0, w_max=3.0))
    net.run(150.0)
    np.testing.assert_array_equal(net.weights(proj)[2], w)


def test_set_params_before_the_first_run_replaces_the_parameters():
    new = LIF(v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-55.0, t_ref_ms=2.0)
    ref_net, *_ = lif_net(new)
    net, _, exc, _ = lif_net(QUIET)
    net.set_params(exc, new)
    same_spikes(net.run(100.0), ref_net.run(100.0))


def test_set_params_float32_keeps_the_dtype():
    new = LIF(v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-55.0, t_ref_ms=2.0)
    ref_net, *_ = lif_net(new, dtype="float32")
    net, _, exc, _ = lif_net(QUIET, dtype="float32")
    net.run(0.0)
    net.set_params(exc, new)
    assert net._sim.plan.C.dtype == np.float32
    same_spikes(net.run(100.0), ref_net.run(100.0))


def test_set_params_mistakes():
    net, inp, exc, proj = lif_net()
    syn_net, _, _, syn_proj = stdp_net()
    _, _, other_exc, _ = lif_net()
    with pytest.raises(BiosimError, match=r"population 'exc' \(model 'lif'\) needs LIF parameters, got CondLIF"):
        net.set_params(exc, CondLIF())
    with pytest.raises(BiosimError, match="needs LIF parameters, got dict"):
        net.set_params(exc, {"v_thresh_mv": -50.0})
    with pytest.raises(BiosimError, match="set_params: this population belongs to another network"):
        net.set_params(other_exc, QUIET)
    with pytest.raises(BiosimError, match="a population or a projection of this network, got InputGroup"):
        net.set_params(inp, QUIET)
    with pytest.raises(BiosimError, match="fixed weights and no parameters"):
        net.set_params(proj, PAIR_STDP())
    with pytest.raises(BiosimError, match="synapse model 'pair_stdp_ge'.*got LIF"):
        syn_net.set_params(syn_proj, LIF())
    net.run(0.0)
    c = net._sim.plan.C.copy()
    with pytest.raises(BiosimError, match=r"population 'exc': refractory period 10000000000000.0 ms of model 'lif' must be in \[0, 1e12\] ms"):
        net.set_params(exc, LIF(t_ref_ms=1e13))  # passes LIF's own checks, not the plan's
    with pytest.raises(BiosimError, match="needs LIF parameters"):
        net.set_params(exc, ADAPT())
    np.testing.assert_array_equal(net._sim.plan.C, c)  # nothing changed by a refused call
    assert exc.params is QUIET

    adapt_net = Network(dt_ms=0.5)
    pop = adapt_net.population("p", ADAPT, 3)
    adapt_net.run(0.0)
    with pytest.raises(BiosimError, match="population 'p': the parameters of model 'test_between_runs_adapt' cannot be used"):
        adapt_net.set_params(pop, ADAPT(tau_mem_ms=0.0))


# --- set_rates -------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_set_rates_zero_silences_the_input(backend):
    net, inp, exc, _ = lif_net(rate=40.0)
    first = net.run(100.0, backend=backend)
    assert len(first.spikes["exc"][0]) > 20
    before = kernel_fingerprint(net)
    net.set_rates(inp, 0.0)
    net.set_state(exc, "ge", 0.0)
    res = net.run(100.0)
    assert len(res.spikes_since(res.start_ms)["exc"][0]) == 0
    assert np.all(net.state(exc, "ge") == 0.0)  # no input arrived
    net.set_rates(inp, np.linspace(20.0, 80.0, 80))  # one per source
    res = net.run(100.0)
    assert len(res.spikes_since(res.start_ms)["exc"][0]) > 20
    assert kernel_fingerprint(net) == before


def test_set_rates_agree_across_backends_and_are_deterministic():
    out = []
    for backend in BACKENDS + ["numba-cpu"]:
        net, inp, _, _ = lif_net(rate=30.0)
        net.run(60.0, backend=backend)
        net.set_rates(inp, np.where(np.arange(80) % 5 == 0, 70.0, 0.0))  # mostly silent sources
        net.run(60.0)
        net.set_rates(inp, 0.0)
        net.run(30.0)
        net.set_rates(inp, 30.0)
        out.append(net.run(60.0))
    assert len(out[0].spikes["exc"][0]) > 50
    same_spikes(out[0], out[1])
    same_spikes(out[0], out[2])


def test_set_rates_to_the_same_rates_changes_nothing():
    a, inp_a, _, _ = lif_net(rate=np.linspace(10.0, 50.0, 80))
    b, *_ = lif_net(rate=np.linspace(10.0, 50.0, 80))
    a.run(50.0)
    a.set_rates(inp_a, np.linspace(10.0, 50.0, 80))
    a.run(50.0)
    same_spikes(a.run(0.0), b.run(100.0))


def test_set_rates_mistakes():
    net, inp, exc, _ = lif_net()
    gen = net.spike_generator("gen", 3, [0, 1], [1.0, 2.0])
    with pytest.raises(BiosimError, match="must be finite and >= 0"):
        net.set_rates(inp, -1.0)
    with pytest.raises(BiosimError, match="must be finite and >= 0"):
        net.set_rates(inp, np.nan)
    with pytest.raises(BiosimError, match="above 1/dt = 10000 Hz"):
        net.set_rates(inp, 2e4)
    with pytest.raises(BiosimError, match="needs one rate or 80 rates, got an array of shape \\(3,\\)"):
        net.set_rates(inp, [1.0, 2.0, 3.0])
    with pytest.raises(BiosimError, match="must be a number or an array"):
        net.set_rates(inp, "fast")
    with pytest.raises(BiosimError, match="'gen' is a spike generator"):
        net.set_rates(gen, 1.0)
    with pytest.raises(BiosimError, match="needs a Poisson group of this network, got Population"):
        net.set_rates(exc, 1.0)
    _, other_inp, *_ = lif_net()
    with pytest.raises(BiosimError, match="set_rates: this input group belongs to another network"):
        net.set_rates(other_inp, 1.0)
    np.testing.assert_array_equal(inp.rates_hz, 40.0)  # unchanged by refused calls


# --- normalize -------------------------------------------------------------------------------

def test_normalize_plain_weights_column_sums():
    net, _, exc, proj = lif_net()
    net.run(0.0)
    before = kernel_fingerprint(net)
    assert net.normalize(proj, 78.0) is None
    _, j, w = net.weights(proj)
    np.testing.assert_allclose(np.bincount(j, weights=w, minlength=exc.n), 78.0, rtol=1e-12)
    totals = np.linspace(1.0, 40.0, exc.n)
    net.normalize(proj, totals)
    _, _, w2 = net.weights(proj)
    np.testing.assert_allclose(np.bincount(j, weights=w2, minlength=exc.n), totals, rtol=1e-12)
    np.testing.assert_allclose(w2 / w, (totals / 78.0)[j], rtol=1e-12)  # a scaling, per target
    assert kernel_fingerprint(net) == before


def test_normalize_leaves_zero_sum_and_unconnected_targets_alone():
    net = Network(dt_ms=0.1, seed=0)
    inp = net.poisson_group("in", 4, 0.0)
    exc = net.population("exc", QUIET, 4)
    i, j = np.array([0, 0, 1, 1, 2, 3]), np.array([0, 2, 0, 2, 1, 1])  # target 3: no synapses
    proj = net.connect(inp, exc, "ge", weight=np.array([1.0, 2.0, 3.0, -2.0, 0.0, 0.0]), rule=Explicit(i, j))
    net.run(0.0)
    net.normalize(proj, 10.0)
    np.testing.assert_array_equal(net.weights(proj)[2], [2.5, 2.0, 7.5, -2.0, 0.0, 0.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_normalize_a_synapse_model_variable_between_learning_runs(backend):
    net, _, exc, proj = stdp_net()
    net.run(0.0, backend=backend)
    sums = []
    for _ in range(3):
        net.normalize(proj, 20.0, var="w")
        _, j, w = net.weights(proj, "w")
        sums.append(np.bincount(j, weights=w, minlength=exc.n))
        net.run(100.0)
    for s in sums:
        np.testing.assert_allclose(s[s != 0], 20.0, rtol=1e-12)
    assert not np.allclose(np.bincount(j, weights=net.weights(proj)[2], minlength=exc.n), 20.0)  # learnt
    if backend == "numpy":
        ref, _, _, ref_proj = stdp_net()
        ref.run(0.0)
        for _ in range(3):
            ref.normalize(ref_proj, 20.0)
            ref.run(100.0)
        np.testing.assert_array_equal(ref.weights(ref_proj)[2], net.weights(proj)[2])


def test_normalize_mistakes():
    net, _, exc, proj = lif_net()
    with pytest.raises(BiosimError, match=r"normalize: .*call run\(\) first \(run\(0\)"):
        net.normalize(proj, 1.0)
    net.run(0.0)
    with pytest.raises(BiosimError, match=r"unknown variable of the synapses in -> exc \(no synapse model\) 'ww'; "
                                          r"did you mean 'w'\? \(valid: w\)"):
        net.normalize(proj, 1.0, var="ww")
    with pytest.raises(BiosimError, match="one finite number or 40 of them"):
        net.normalize(proj, [1.0, 2.0])
    with pytest.raises(BiosimError, match="one finite number or 40 of them"):
        net.normalize(proj, np.inf)
    with pytest.raises(BiosimError, match="must be a number"):
        net.normalize(proj, "a lot")
    with pytest.raises(BiosimError, match="normalize needs a projection of this network, got Population"):
        net.normalize(exc, 1.0)
    syn_net, _, _, syn_proj = stdp_net()
    syn_net.run(0.0)
    with pytest.raises(BiosimError, match="unknown variable of synapse model 'pair_stdp_ge' 'wt'; did you mean 'w'"):
        syn_net.normalize(syn_proj, 1.0, var="wt")
    small, _, _, small_proj = lif_net(dtype="float32")
    small.run(0.0)
    with pytest.raises(BiosimError, match="beyond the range of float32"):
        small.normalize(small_proj, 1e41)


# --- set_state / state -----------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_set_state_resets_v_between_inputs(backend):
    """Resetting v (and ge) and silencing the input before each 'image' makes the images independent
    of each other: the same image twice gives the same spikes."""
    net, inp, exc, _ = lif_net(rate=0.0)
    v0 = np.full(exc.n, -65.0)
    net.run(0.0, backend=backend)
    before = kernel_fingerprint(net)
    image = np.where(np.arange(80) % 2 == 0, 100.0, 0.0)
    spikes = []
    for _ in range(2):
        net.set_state(exc, "v", v0)
        net.set_state(exc, "ge", 0.0)
        np.testing.assert_array_equal(net.state(exc, "v"), v0)
        net.set_rates(inp, image)
        res = net.run(80.0)
        i = res.spikes_since(res.start_ms)["exc"][1]
        spikes.append(np.bincount(i, minlength=exc.n))
        net.set_rates(inp, 0.0)
        net.run(30.0)
    assert spikes[0].sum() > 10
    assert kernel_fingerprint(net) == before
    # the Poisson draws differ between the two presentations, the spike counts' scale does not
    assert abs(int(spikes[0].sum()) - int(spikes[1].sum())) < spikes[0].sum()


def test_set_state_is_what_the_next_step_starts_from():
    """After set_state the network runs as one built with those values as its initial state."""
    v = np.linspace(-70.0, -50.5, 40)
    ref, *_ = lif_net(v0=v)
    want = ref.run(100.0)
    assert len(want.spikes["exc"][0]) > 50
    net, _, e, _ = lif_net(v0=None)
    net.set_state(e, "v", v)  # before the first run: the initial value
    same_spikes(net.run(100.0), want)

    ref, *_ = lif_net(v0=lambda rng, n: (rng.random(n), v)[1])  # draws as lif_net's default v0 does
    want = ref.run(100.0)
    net, _, e, _ = lif_net()
    net.run(0.0)
    net.set_state(e, "v", v)
    same_spikes(net.run(100.0), want)


def test_state_and_set_state_mistakes():
    net, inp, exc, _ = lif_net()
    with pytest.raises(BiosimError, match=r"state: .*call run\(\) first"):
        net.state(exc, "v")
    with pytest.raises(BiosimError, match="unknown state variable of model 'lif' 'vv'; did you mean 'v'"):
        net.set_state(exc, "vv", 0.0)
    with pytest.raises(BiosimError, match="needs one value or 40 values"):
        net.set_state(exc, "v", np.zeros(3))
    net.run(0.0)
    with pytest.raises(BiosimError, match="unknown state variable of model 'lif' 'gee'; did you mean 'ge'"):
        net.state(exc, "gee")
    with pytest.raises(BiosimError, match="needs one value or 40 values"):
        net.set_state(exc, "v", np.zeros(41))
    with pytest.raises(BiosimError, match="non-finite"):
        net.set_state(exc, "v", np.nan)
    with pytest.raises(BiosimError, match="must be a number"):
        net.set_state(exc, "v", "rest")
    with pytest.raises(BiosimError, match="needs a population of this network, got InputGroup"):
        net.set_state(inp, "v", 0.0)
    _, _, other_exc, _ = lif_net()
    with pytest.raises(BiosimError, match="belongs to another network"):
        net.state(other_exc, "v")


# --- results of many short runs --------------------------------------------------------------

def test_results_are_snapshots_and_spikes_since_reads_the_recent_ones():
    net, _, exc, _ = lif_net(rate=40.0)
    net.monitor(exc, "v", indices=[0, 1])
    r1 = net.run(50.0)
    r2 = net.run(70.0)
    full = net.run(30.0)
    t, i = full.spikes["exc"]
    assert len(t) > 30 and np.all(np.diff(t) >= 0)
    np.testing.assert_array_equal(r1.spikes["exc"][0], t[t < 50.0])  # read after later runs: as it was
    np.testing.assert_array_equal(r2.spikes["exc"][1], i[t < 120.0])
    assert r1.states[("exc", "v")][1].shape == (500, 2) and full.states[("exc", "v")][1].shape == (1500, 2)
    assert (r2.start_ms, r2.duration_ms) == (50.0, 120.0)
    for since in (0.0, 50.0, 50.05, 77.3, 120.0, 150.0, 1e9):
        got = full.spikes_since(since)["exc"]
        np.testing.assert_array_equal(got[0], t[t >= since])
        np.testing.assert_array_equal(got[1], i[t >= since])
    recent = r2.spikes_since(r2.start_ms)["exc"][0]
    np.testing.assert_array_equal(recent, t[(t >= 50.0) & (t < 120.0)])


def test_many_short_runs_equal_one_long_run():
    """Calling run(350) then run(150) again and again is the same simulation as one long run."""
    nets = [lif_net(rate=30.0)[0] for _ in range(2)]
    for _ in range(4):
        nets[0].run(35.0)
        nets[0].run(15.0)
    same_spikes(nets[0].run(0.0), nets[1].run(200.0))


def test_one_to_one_normalize_gives_the_total_per_synapse():
    net = Network(dt_ms=0.5, seed=0)
    a = net.population("a", QUIET, 10)
    b = net.population("b", QUIET, 10)
    proj = net.connect(a, b, "ge", weight=lambda rng, n: rng.random(n) + 0.1, rule=OneToOne())
    net.run(0.0)
    net.normalize(proj, 10.4)
    np.testing.assert_allclose(net.weights(proj)[2], 10.4, rtol=1e-12)
