"""The small recurrent network every neuron model runs in (tests/neurons/test_neuron_models.py and
its equation twins in tests/equations/test_equations.py)."""

from __future__ import annotations

import numpy as np

from biosim import HH, LIF, AdEx, CondLIF, FixedProbability, Izhikevich, Network

DT_MS = 0.1

#: name -> (params, (lo, hi) of the constant input in the model's current unit, we, wi)
CASES = {
    "lif": (LIF(), (0.0, 5.0), 1.62, -9.0),
    "cond_lif": (CondLIF(), (50.0, 300.0), 3.0, 20.0),
    "adex": (AdEx(t_ref_ms=2.0), (300.0, 1200.0), 100.0, -200.0),
    "izhikevich": (Izhikevich(), (0.0, 15.0), 3.0, -6.0),
    "hh": (HH(), (0.0, 600.0), 6.0, 67.0),
}


def _small_network(name: str, dtype: str, backend: str, duration_ms: float = 100.0, params=None, init=None):
    """The contract network of model ``name`` (with other ``params``, e.g. its equation twin's)."""
    default, (lo, hi), we, wi = CASES[name]
    net = Network(dt_ms=DT_MS, dtype=dtype, seed=5)
    exc = net.population("exc", params or default, 40, init=init)
    inh = net.population("inh", params or default, 10, init=init)
    rng = np.random.default_rng(0)
    for pop in (exc, inh):
        net.current(pop, rng.uniform(lo, hi, pop.n))
    net.poisson_input(exc, "ge", n_sources=20, rate_hz=10.0, weight=we)
    for tgt in (exc, inh):
        net.connect(exc, tgt, "ge", weight=we, rule=FixedProbability(p=0.2))
        net.connect(inh, tgt, "gi", weight=wi, rule=FixedProbability(p=0.2), delay_ms=1.0)
    net.monitor(exc, "v", indices=[0, 1, 2])
    net.monitor(inh, "gi", indices=[0])
    return net.run(duration_ms, backend=backend)
