"""Populations without an external input: the numba-cpu kernel steps them with a zero current
without reading ``i_ext`` (a memory stream fewer per neuron), and must give what reading it gave.

A network mixes a population that never has a current, one whose step current starts and stops
during the run (the kernel decides per chunk, the host splits chunks where a current changes), and
one with a current throughout; spikes and every recorded state must equal the NumPy reference's
bit for bit, on one thread and on two.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from biosim import LIF, FixedProbability, Network


def _run(backend: str, threads: int = 1):
    net = Network(dt_ms=0.1, seed=3)
    rng = np.random.default_rng(1)
    pops = [net.population(name, LIF(), 40, init={"v": rng.uniform(-60.0, -50.5, 40)})
            for name in ("quiet", "stepped", "driven")]
    net.current(pops[1], 6.0, start_ms=1.0, stop_ms=3.5)
    net.current(pops[2], np.linspace(0.5, 3.0, 40))
    for src in pops:
        for tgt in pops:
            net.connect(src, tgt, "ge", weight=1.2, rule=FixedProbability(p=0.3))
    for p in pops:
        net.monitor(p, "v")
        net.monitor(p, "ge")
    res = net.run(6.0, backend=backend, threads=threads)
    return res.spikes, res.states


@pytest.mark.parametrize("threads", [1, 2])
def test_undriven_populations_match_the_reference_bit_for_bit(threads):
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("Numba has one thread here")
    ref_spikes, ref_states = _run("numpy")
    spikes, states = _run("numba-cpu", threads)
    assert sum(len(s[0]) for s in spikes.values()) > 0
    for name in ref_spikes:
        for got, want in zip(spikes[name], ref_spikes[name]):
            np.testing.assert_array_equal(got, want)
    for key in ref_states:
        np.testing.assert_array_equal(states[key][1], ref_states[key][1])
