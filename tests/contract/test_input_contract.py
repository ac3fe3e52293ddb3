"""Contracts on what a network does with what it is given, for every model x backend x dtype.

* ``inputs_unchanged``: building and running a network mutates none of the arrays passed to it
  (initial values, weights, Explicit index arrays, per-synapse delays, currents, Poisson rates,
  spike-generator indices and times, monitor indices, ``set_state``/``set_rates`` values) -- not
  their values, dtype, shape or writeable flag -- nor the parameter dataclass or the ``init`` dict.
* ``inputs_not_aliased``: the network keeps its own copies: overwriting those arrays after the
  first run changes nothing in the rest of the run (spikes, states, ``Network.weights``); two
  arrays are known exceptions, checked on their own (``generator_indices_not_aliased``,
  ``explicit_indices_not_aliased``).
* ``same_seed``: two networks built and run with the same seed give identical spikes and states;
  another seed gives other spikes (the network has random connectivity, initial values and input).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from biosim import Explicit

from contract_cases import CASES, contract_network, spikes_of, spiking_network

N = 12


def _arrays(case, dtype) -> dict[str, np.ndarray]:
    """Every array the network of :func:`_build` is given, in the dtypes a user would pass."""
    rng = np.random.default_rng(3)
    lo, hi = case.v_range
    i_pg = np.repeat(np.arange(8), 3)                       # sorted by source: the network may keep it as is
    i_rec = rng.integers(0, N, 30)                          # unsorted: the network sorts its synapses
    return {
        "init_v": lo + (hi - lo) * rng.random(N),
        "init_exc": (0.5 * case.w_exc * rng.random(N)).astype(dtype),
        "rates": np.linspace(20.0, 80.0, 8),
        "gen_idx": np.array([0, 1, 2, 3, 0, 2]),
        "gen_times": np.array([1.0, 2.0, 2.5, 5.0, 6.3, 8.0]),
        "i_pg": i_pg, "j_pg": rng.integers(0, N, len(i_pg)),
        "w_pg": (case.w_exc * (0.5 + rng.random(len(i_pg)))).astype(dtype),
        "i_sg": np.array([0, 1, 2, 3, 3], dtype=np.int32), "j_sg": np.array([0, 5, 7, 1, 11], dtype=np.int32),
        "w_sg": np.full(5, 2.0 * case.w_exc), "d_sg": np.array([0.0, 0.5, 1.0, 2.0, 0.3]),
        "i_rec": i_rec, "j_rec": rng.integers(0, N, len(i_rec)),
        "w_rec": (case.w_inh * rng.random(len(i_rec))).astype(dtype),
        "amp": np.linspace(*case.drive, N),
        "mon_idx": np.array([0, 3, 5, 11]),
        "set_v": np.linspace(lo, hi, N).astype(dtype),
        "set_rates": np.linspace(80.0, 10.0, 8),
    }


def _build(case, dtype, backend, a: dict, params):
    net = contract_network(dtype, backend, seed=4)
    init = {"v": a["init_v"], case.exc: a["init_exc"]}
    pop = net.population("pop", params, N, init=init)
    pg = net.poisson_group("pg", 8, a["rates"])
    sg = net.spike_generator("sg", 4, a["gen_idx"], a["gen_times"])
    projections = [
        net.connect(pg, pop, case.exc, weight=a["w_pg"], rule=Explicit(a["i_pg"], a["j_pg"])),
        net.connect(sg, pop, case.exc, weight=a["w_sg"], rule=Explicit(a["i_sg"], a["j_sg"]), delay_ms=a["d_sg"]),
        net.connect(pop, pop, case.inh, weight=a["w_rec"], rule=Explicit(a["i_rec"], a["j_rec"])),
    ]
    net.current(pop, a["amp"], start_ms=2.0)
    net.monitor(pop, "v", indices=a["mon_idx"])
    return net, pop, pg, projections, init


FIRST_HALF_MS, SECOND_HALF_MS = 5.0, 15.0


def _first_half(net, pop, pg, a, backend):
    net.run(FIRST_HALF_MS, backend=backend)
    net.set_state(pop, "v", a["set_v"])
    net.set_rates(pg, a["set_rates"])


def _snapshot(a: dict):
    return {k: (v.copy(), v.flags.writeable) for k, v in a.items()}


@pytest.mark.contract("inputs_unchanged")
def test_inputs_are_not_mutated(model, backend, dtype):
    case = CASES[model]
    params = case.params(case.network_params)
    params_before = copy.deepcopy(params)
    a = _arrays(case, dtype)
    before = _snapshot(a)
    net, pop, pg, _, init = _build(case, dtype, backend, a, params)
    init_before = dict(init)
    _first_half(net, pop, pg, a, backend)
    result = net.run(SECOND_HALF_MS)
    assert len(result.spikes["pop"][0]) > 0
    for key, (want, writeable) in before.items():
        got = a[key]
        assert got.dtype == want.dtype and got.shape == want.shape, f"{key} changed dtype or shape"
        assert got.flags.writeable == writeable, f"{key} changed its writeable flag"
        np.testing.assert_array_equal(got, want, err_msg=f"{key} was mutated")
    assert params == params_before and dataclasses.asdict(params) == dataclasses.asdict(params_before)
    assert init.keys() == init_before.keys() and all(init[k] is init_before[k] for k in init)


def _overwrite(arr: np.ndarray, key: str) -> None:
    """Overwrite a caller's array in place with other valid values."""
    arr[...] = arr[::-1].copy() if arr.dtype.kind in "iu" else (arr + 1.0 if key == "gen_times" else arr * 0.5)


#: Arrays the network keeps a reference to (known exceptions, tested on their own below).
ALIASED = {"gen_idx": "generator_indices_not_aliased", "i_pg": "explicit_indices_not_aliased",
           "j_pg": "explicit_indices_not_aliased"}


def _check_own_copies(model, backend, dtype, keys):
    """Run the network twice, overwriting the caller's arrays ``keys`` after the first half the
    second time; the second half (which starts by normalising the first projection's weights) must
    not notice."""
    case = CASES[model]
    params = case.params(case.network_params)
    runs = []
    for overwrite in (False, True):
        a = _arrays(case, dtype)
        net, pop, pg, projections, _ = _build(case, dtype, backend, a, params)
        _first_half(net, pop, pg, a, backend)
        if overwrite:
            for key in keys:
                _overwrite(a[key], key)
        net.normalize(projections[0], 2.0 * case.w_exc)  # reads the projection's synapses
        result = net.run(SECOND_HALF_MS)
        runs.append((spikes_of(result), result.states[("pop", "v")][1], [net.weights(p) for p in projections]))
    (s0, v0, w0), (s1, v1, w1) = runs
    assert len(s0[0]) > 0
    changed = f"after the caller's arrays {', '.join(keys)} were overwritten"
    for x, y in zip(s0, s1):
        np.testing.assert_array_equal(y, x, err_msg=f"spikes changed {changed}")
    np.testing.assert_array_equal(v1, v0, err_msg=f"v changed {changed}")
    for k, (p0, p1) in enumerate(zip(w0, w1)):
        for what, x, y in zip("ijw", p0, p1):
            np.testing.assert_array_equal(y, x, err_msg=f"Network.weights of projection {k}: {what} changed {changed}")


@pytest.mark.contract("inputs_not_aliased")
def test_network_keeps_its_own_copies(model, backend, dtype):
    _check_own_copies(model, backend, dtype, [k for k in _arrays(CASES[model], dtype) if k not in ALIASED])


# The two arrays the network keeps a reference to: the aliasing is in Network, the same for every
# model, backend and dtype, so one case each is enough.
@pytest.mark.contract("generator_indices_not_aliased", models=("lif",), backends=("numba-cpu",), dtypes=("float64",))
def test_spike_generator_keeps_its_own_indices(model, backend, dtype):
    _check_own_copies(model, backend, dtype, ["gen_idx"])


@pytest.mark.contract("explicit_indices_not_aliased", models=("lif",), backends=("numba-cpu",), dtypes=("float64",))
def test_explicit_rule_keeps_its_own_indices(model, backend, dtype):
    _check_own_copies(model, backend, dtype, ["i_pg", "j_pg"])


@pytest.mark.contract("same_seed")
def test_same_seed_same_result(model, backend, dtype):
    case = CASES[model]

    def run(seed):
        net, _ = spiking_network(case, dtype, backend, seed=seed, n=20)
        result = net.run(15.0, backend=backend)
        return spikes_of(result), {k: v for k, (_, v) in result.states.items()}

    (steps, idx), states = run(11)
    (steps2, idx2), states2 = run(11)
    assert len(steps) > 0
    np.testing.assert_array_equal(steps2, steps)
    np.testing.assert_array_equal(idx2, idx)
    assert states.keys() == states2.keys()
    for key in states:
        np.testing.assert_array_equal(states2[key], states[key])
    (steps3, idx3), _ = run(12)
    assert len(steps3) != len(steps) or np.any(steps3 != steps) or np.any(idx3 != idx), \
        "another seed should give other spikes"
