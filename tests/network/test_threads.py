"""The numba-cpu kernel on several threads: the same spikes, states, weights and errors as on one.

Each thread owns a contiguous block of neurons (update, threshold, the spikes it receives, reset);
a target's additions must come in the single thread's order. The networks mix what a thread's
share touches: two LIF populations with different parameters that straddle the blocks, Poisson inputs, a
Poisson group with STDP, a spike generator, per-synapse and homogeneous delays, multapses,
monitors; rows sorted by target (bisection) and not (a scan). They use LIF only, as CUBA does in
the CLI and bench tests of threads, so the threaded kernel compiles once (20-40 s cold); the
synapse-model case needs its own and runs with the slow tests.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from biosim import LIF, STDP, AllToAll, BiosimError, Explicit, FixedProbability, Network

THREADS = min(2, numba.config.NUMBA_NUM_THREADS)
needs_threads = pytest.mark.skipif(THREADS < 2, reason="Numba has one thread here")


def _net(unsorted: bool, blowup: bool = False) -> tuple[Network, list]:
    net = Network(dt_ms=0.1, seed=5)
    rng = np.random.default_rng(0)
    exc = net.population("exc", LIF(), 37, init={"v": rng.uniform(-60.0, -50.5, 37)})
    ad = net.population("ad", LIF(tau_mem_ms=12.0, v_thresh_mv=-52.0, t_ref_ms=2.0), 12)
    inp = net.poisson_group("in", 25, 300.0)
    gen = net.spike_generator("gen", 4, indices=[0, 1, 2, 3, 3], times_ms=[0.5, 1.0, 1.0, 2.0, 7.5])
    net.poisson_input(exc, "ge", n_sources=30, rate_hz=200.0, weight=0.4)
    net.current(ad, 4.0)
    plastic = net.connect(inp, exc, "ge", weight=lambda r, n: 1.0 + r.random(n), rule=FixedProbability(p=0.4),
                          stdp=STDP(a_plus=0.05, a_minus=0.06, w_max=3.0))
    net.connect(exc, exc, "gi", weight=-0.8, rule=FixedProbability(p=0.2), delay_ms=lambda r, n: r.choice([0.0, 0.3, 1.1], n))
    net.connect(exc, ad, "v", weight=0.5, rule=AllToAll(), delay_ms=0.4)
    net.connect(ad, exc, "ge", weight=0.7, rule=FixedProbability(p=0.5))
    if unsorted:  # rows whose targets go down and repeat: each thread scans them
        net.connect(gen, exc, "ge", weight=2.5, rule=Explicit(i=[0, 0, 0, 1, 1, 3], j=[36, 2, 2, 20, 19, 0]))
    else:
        net.connect(gen, exc, "ge", weight=2.5, rule=AllToAll())
    if blowup:  # exc neurons 30 and 5 (one in each thread's block) overflow in the same step
        net.connect(gen, exc, "ge", weight=1e308, rule=Explicit(i=[1, 1, 2, 2], j=[30, 30, 5, 5]))
    net.monitor(exc, "v", indices=[0, 18, 36])
    net.monitor(ad, "ge", indices=[3])
    return net, [plastic]


def _run(unsorted: bool, threads: int, split: bool = True):
    net, projs = _net(unsorted)
    if split:  # the thread count may change between runs
        net.run(20.0, threads=1)
        res = net.run(30.0, threads=threads)
    else:
        res = net.run(50.0, threads=threads)
    return res, [net.weights(p)[2] for p in projs], net._sim.plan


@needs_threads
@pytest.mark.parametrize("unsorted", [False, True], ids=["sorted_rows", "unsorted_rows"])
def test_threads_give_the_same_spikes_states_and_weights(unsorted):
    a, wa, pa = _run(unsorted, 1, split=False)
    b, wb, pb = _run(unsorted, THREADS)
    n_spikes = sum(len(t) for t, _ in a.spikes.values())
    assert n_spikes > 100 and len(a.spikes["ad"][0]) > 0
    for pop, (t, i) in a.spikes.items():
        assert np.array_equal(t, b.spikes[pop][0]) and np.array_equal(i, b.spikes[pop][1]), pop
    for key, (_, v) in a.states.items():
        assert np.array_equal(v, b.states[key][1]), key
    assert np.any(wa[0] != wa[0][0]) and np.array_equal(wa[0], wb[0])
    for field in ("X", "ref_until", "hist", "hist_cnt", "xpre", "xpost", "w"):
        assert np.array_equal(getattr(pa, field), getattr(pb, field)), field


@needs_threads
def test_not_finite_is_reported_alike_on_threads():
    msgs = []
    for threads in (1, THREADS):
        net, _ = _net(False, blowup=True)
        with pytest.raises(BiosimError) as err:
            net.run(5.0, threads=threads)
        msgs.append(str(err.value))
    assert "of population 'exc' became inf (neuron 5)" in msgs[0] and msgs[0] == msgs[1]


def test_bad_thread_counts_are_refused():
    net, _ = _net(False)
    for bad, says in ((0, "at least 1"), (1.5, "whole number"), (True, "whole number"),
                      (numba.config.NUMBA_NUM_THREADS + 1, "NUMBA_NUM_THREADS")):
        with pytest.raises(BiosimError, match=says):
            net.run(1.0, threads=bad)
    other, _ = _net(False)
    with pytest.raises(BiosimError, match="one thread.*numba-cpu"):
        other.run(1.0, backend="numpy", threads=2)


@needs_threads
@pytest.mark.slow
def test_synapse_models_on_threads():
    """A synapse model's statements run in one thread (its ``on_pre`` may read source neurons);
    the neurons' update and reset still split."""
    from biosim.equations import library

    def run(threads):
        net = Network(dt_ms=0.1, seed=7)
        inp = net.poisson_group("in", 20, 400.0)
        exc = net.population("exc", LIF(), 10, init={"v": np.linspace(-56.0, -50.5, 10)})
        model = library.pair_stdp(STDP(a_plus=0.05, a_minus=0.06, w_max=4.0))
        proj = net.connect(inp, exc, synapse=model(), init={"w": 3.5}, rule=FixedProbability(p=0.5), delay_ms=0.2)
        net.connect(exc, exc, "gi", weight=-0.5, rule=AllToAll())
        res = net.run(30.0, threads=threads)
        return res, net.weights(proj)[2]

    a, wa = run(1)
    b, wb = run(THREADS)
    assert len(a.spikes["exc"][0]) > 20 and np.any(wa != wa[0])
    assert np.array_equal(a.spikes["exc"][0], b.spikes["exc"][0]) and np.array_equal(a.spikes["exc"][1], b.spikes["exc"][1])
    assert np.array_equal(wa, wb)


def _blocks_net(blowup: str = "") -> Network:
    """Populations of 700 and 301 LIF neurons: both cut into several of the kernel's neuron blocks
    (``kernel_body.NEURON_BLOCK``), the second starting inside a block, the threads' halves
    meeting inside one; Poisson input makes spikes in most blocks, some neurons refractory."""
    net = Network(dt_ms=0.1, seed=11)
    rng = np.random.default_rng(3)
    a = net.population("a", LIF(), 700, init={"v": rng.uniform(-60.0, -50.2, 700)})
    b = net.population("b", LIF(tau_mem_ms=10.0, t_ref_ms=1.0), 301, init={"v": rng.uniform(-60.0, -50.2, 301)})
    net.poisson_input(a, "ge", n_sources=20, rate_hz=150.0, weight=0.5)
    net.poisson_input(b, "v", n_sources=10, rate_hz=200.0, weight=0.6)
    net.connect(a, b, "gi", weight=-0.3, rule=FixedProbability(p=0.02))
    net.connect(b, a, "ge", weight=0.4, rule=FixedProbability(p=0.03))
    if blowup:  # in one step: neurons 250 and 3 of b (b's first and last blocks), and 640 of a
        gen = net.spike_generator("gen", 1, indices=[0], times_ms=[4.0])
        net.connect(gen, b, "ge", weight=1e308, rule=Explicit(i=[0, 0, 0, 0], j=[250, 250, 3, 3]))
        if blowup == "a and b":
            net.connect(gen, a, "ge", weight=1e308, rule=Explicit(i=[0, 0], j=[640, 640]))
    net.monitor(a, "v", indices=[0, 255, 256, 699])
    return net


@pytest.mark.parametrize("threads", [1, THREADS])
def test_neuron_blocks_give_the_reference_spikes_and_states(threads):
    """The kernel steps each block of neurons and only looks for spikes in the blocks with a neuron
    above threshold: the same spikes and states as the numpy reference, which checks every neuron."""
    ref = _blocks_net().run(30.0, backend="numpy")
    res = _blocks_net().run(30.0, backend="numba-cpu", threads=threads)
    for pop, (t, i) in ref.spikes.items():
        assert len(t) > 100 and len(np.unique(i // 256)) >= 2, pop
        assert np.array_equal(t, res.spikes[pop][0]) and np.array_equal(i, res.spikes[pop][1]), pop
    for key, (_, v) in ref.states.items():
        assert np.array_equal(v, res.states[key][1]), key


@pytest.mark.parametrize("threads", [1, THREADS])
@pytest.mark.parametrize(("blowup", "first"), [("b", "neuron 3)"), ("a and b", "population 'a' became inf (neuron 640)")])
def test_not_finite_in_any_block_is_found(threads, blowup, first):
    """Non-finite values in several blocks: the first by population, then variable, then neuron,
    as the numpy reference reports it."""
    msgs = []
    for backend, n in (("numpy", 1), ("numba-cpu", threads)):
        with pytest.raises(BiosimError) as err:
            _blocks_net(blowup).run(10.0, backend=backend, threads=n)
        msgs.append(str(err.value))
    assert first in msgs[0] and msgs[0] == msgs[1]


@pytest.mark.parametrize("threads", [1, THREADS])
def test_finite_states_whose_sum_overflows_are_no_error(threads):
    """The kernel flags a block for the NaN/inf search when the sum of a neuron's state variables
    is not finite: v and ge near the largest float64 overflow that sum, yet every state is finite,
    so the run goes on exactly as the numpy reference's (no error)."""
    def net_():
        net = Network(dt_ms=0.1, seed=5)
        big = np.full(300, 0.9e308)
        pop = net.population("a", LIF(), 300, init={"v": big, "ge": big})
        net.monitor(pop, "v", indices=[0, 299])
        net.monitor(pop, "ge", indices=[0, 299])
        return net

    ref = net_().run(1.0, backend="numpy")
    res = net_().run(1.0, backend="numba-cpu", threads=threads)
    assert len(ref.spikes["a"][0]) >= 300
    assert np.array_equal(ref.spikes["a"][0], res.spikes["a"][0])
    for key, (_, v) in ref.states.items():
        assert np.all(np.isfinite(v)) and np.array_equal(v, res.states[key][1]), key


def _in_flight_net() -> Network:
    """60 neurons firing every 3 ms through per-synapse delays of up to 6 ms: about 120 spikes in
    flight, so the kernel's table of them (room for 64 at first) grows in the middle of a chunk."""
    net = Network(dt_ms=0.1, seed=13)
    rng = np.random.default_rng(4)
    exc = net.population("exc", LIF(t_ref_ms=1.0), 60, init={"v": rng.uniform(-60.0, -50.5, 60)})
    net.current(exc, 100.0)
    net.connect(exc, exc, "gi", weight=-0.05, rule=FixedProbability(p=0.3),
                delay_ms=lambda r, n: r.uniform(0.0, 6.0, n))
    net.monitor(exc, "v", indices=[0, 31, 59])
    return net


@pytest.mark.parametrize("threads", [1, THREADS])
def test_spikes_in_flight_outgrowing_their_table_mid_chunk(threads):
    from biosim.backends import in_flight

    ref = _in_flight_net().run(40.0, backend="numpy")
    net = _in_flight_net()
    res = net.run(40.0, backend="numba-cpu", threads=threads)
    t, i = ref.spikes["exc"]
    assert len(t) > 700
    assert np.array_equal(t, res.spikes["exc"][0]) and np.array_equal(i, res.spikes["exc"][1])
    for key, (_, v) in ref.states.items():
        assert np.array_equal(v, res.states[key][1]), key
    pl = net._sim.plan  # the spikes in flight at the end: more than the table's first room
    assert in_flight.rebuild(pl.hist, pl.hist_cnt, 400, pl.pr_delay, pl.pr_grp, pl.grp_off, pl.pr_ptr,
                             pl.indptr)[1] > 100


@needs_threads
def test_threads_that_do_not_all_start_run_the_chunk_on_one(monkeypatch):
    """Numba runs the threaded kernel's iterations one after the other (here: a pool of one thread):
    the first gives up waiting for the second at the first barrier, and the chunk runs on one
    thread, with the same results."""
    a, wa, pa = _run(False, 1, split=False)
    real = numba.set_num_threads
    monkeypatch.setattr(numba, "set_num_threads", lambda n: real(1))
    b, wb, pb = _run(False, THREADS)
    for pop, (t, i) in a.spikes.items():
        assert np.array_equal(t, b.spikes[pop][0]) and np.array_equal(i, b.spikes[pop][1]), pop
    assert np.array_equal(wa[0], wb[0])
    for field in ("X", "ref_until", "hist", "hist_cnt", "xpre", "xpost", "w"):
        assert np.array_equal(getattr(pa, field), getattr(pb, field)), field
