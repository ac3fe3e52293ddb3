"""A network continued from a snapshot (in memory or through a file) gives exactly what the
network that never stopped gives, random inputs included (they are counter-based: the clock is
their only state); damaged files, files of format version 1 and other networks are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biosim import LIF, FixedProbability, Network
from biosim.equations import library
from biosim.errors import BiosimError
from biosim.network import snapshot
from biosim.synapses.stdp import STDP


def _build(seed=3, backend_pops=20):
    net = Network(dt_ms=0.1, seed=seed)
    inp = net.poisson_group("inp", 30, 40.0)
    exc = net.population("exc", LIF(), backend_pops, init={"v": lambda rng, n: rng.uniform(-60, -50, n)})
    plastic = net.connect(inp, exc, "ge", weight=2.0, rule=FixedProbability(p=0.5),
                          stdp=STDP(w_max=4.0, a_plus=0.05, a_minus=0.06))
    eq = net.connect(inp, exc, synapse=library.pair_stdp()(), rule=FixedProbability(p=0.3),
                     init={"w": 1.0})
    net.connect(exc, exc, "gi", weight=-1.0, rule=FixedProbability(p=0.2), delay_ms=1.5)
    net.poisson_input(exc, "ge", n_sources=10, rate_hz=20.0, weight=1.0)
    net.monitor(exc, "v", indices=[0, 1])
    return net, inp, exc, plastic, eq


@pytest.mark.parametrize("backend", ["numba-cpu", "numpy"])
def test_continuing_from_a_snapshot_file_equals_never_stopping(tmp_path, backend):
    net, inp, exc, plastic, eq = _build()
    net.run(30.0, backend=backend)
    snapshot.save(tmp_path / "snap.safetensors", net.snapshot(), extra={"image": 7})
    net.set_rates(inp, 80.0)
    r1 = net.run(30.0)
    # a second network, built the same way, continues from the file
    net2, inp2, exc2, plastic2, eq2 = _build()
    net2.run(0.0, backend=backend)
    snap, extra = snapshot.load(tmp_path / "snap.safetensors")
    assert extra == {"image": 7}
    net2.restore(snap)
    net2.set_rates(inp2, 80.0)
    r2 = net2.run(30.0)
    for name in ("exc",):
        t1, i1 = r1.spikes[name]
        t2, i2 = r2.spikes[name]
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(i1, i2)
    assert len(r1.spikes_since(30.0)["exc"][0]) > 0
    np.testing.assert_array_equal(net.weights(plastic)[2], net2.weights(plastic2)[2])
    np.testing.assert_array_equal(net.weights(eq, "w")[2], net2.weights(eq2, "w")[2])
    np.testing.assert_array_equal(r1.states[("exc", "v")][1], r2.states[("exc", "v")][1])
    assert np.any(net.weights(plastic)[2] != 2.0)  # STDP changed the weights: the check means something


def test_a_restored_network_continues_the_same_draws():
    """The random inputs (Poisson group, PoissonInput) have no state beyond the clock: a network
    restored from a snapshot draws what the snapshot's network draws next, whatever it ran before
    (here: 80 ms at other rates, so its clock is 50 ms ahead of the snapshot's)."""
    net, inp, *_ = _build()
    net.run(30.0)
    snap = net.snapshot()
    assert set(snap.meta) == {"step", "layout"}  # no random-stream states
    ahead, inp2, *_ = _build()
    ahead.set_rates(inp2, 5.0)
    ahead.run(80.0)
    ahead.restore(snap)
    np.testing.assert_array_equal(inp2.rates_hz, 40.0)
    nxt, nxt2 = net._sim._inputs(200), ahead._sim._inputs(200)  # the next 20 ms of input
    for a, b in zip(nxt, nxt2):
        np.testing.assert_array_equal(a, b)
    assert len(nxt.in_src) > 0 and nxt.counts.sum() > 0
    r1, r2 = net.run(20.0), ahead.run(20.0)
    for name in ("exc",):
        np.testing.assert_array_equal(r1.spikes[name][0], r2.spikes[name][0])
        np.testing.assert_array_equal(r1.spikes[name][1], r2.spikes[name][1])
    assert len(r1.spikes_since(30.0)["exc"][0]) > 0


def test_a_format_version_1_file_is_refused_with_one_line(tmp_path):
    """Version 1 held numpy Generator states of the inputs; counter-based inputs cannot continue it."""
    from safetensors.numpy import save as st_save

    path = tmp_path / "old.safetensors"
    blob = {"format": snapshot.FORMAT, "version": 1, "meta": {}, "extra": {}, "sha256": ""}
    path.write_bytes(st_save({"x": np.zeros(1)}, metadata={"biosim": json.dumps(blob)}))
    with pytest.raises(BiosimError, match="format version 1, whose random inputs were numpy streams.*start the run over"):
        snapshot.load(path)


def test_a_snapshot_of_another_network_is_refused():
    net, *_ = _build()
    net.run(1.0)
    other, *_ = _build(backend_pops=21)
    other.run(0.0)
    with pytest.raises(BiosimError, match="another network"):
        other.restore(net.snapshot())


def test_snapshot_before_running_and_restore_before_running_are_refused():
    net, *_ = _build()
    with pytest.raises(BiosimError, match="not run yet"):
        net.snapshot()
    done, *_ = _build()
    done.run(1.0)
    with pytest.raises(BiosimError, match="run the network once first"):
        net.restore(done.snapshot())


def test_a_damaged_snapshot_file_is_one_clear_line(tmp_path):
    net, *_ = _build()
    net.run(1.0)
    path = tmp_path / "snap.safetensors"
    snapshot.save(path, net.snapshot())
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BiosimError, match="damaged"):
        snapshot.load(path)
    path.write_bytes(b"not a snapshot")
    with pytest.raises(BiosimError, match="damaged or not a safetensors"):
        snapshot.load(path)
    with pytest.raises(BiosimError, match="cannot read"):
        snapshot.load(tmp_path / "missing.safetensors")
