"""Synapse models written as equations (biosim.equations.SynapseModel).

* pair STDP written as text gives the built-in STDP's spikes and weights (float64), on numba-cpu
  and numpy (identically);
* ``on_pre = "v += J"`` equals a plain projection onto ``v`` (delays, refractory gating);
* ``on_post`` sees the target's spikes; pre-synaptic variables can be read;
* mistakes are one-line BiosimErrors.
"""

from __future__ import annotations

import numpy as np
import pytest

from biosim import LIF, STDP, BiosimError, Explicit, FixedProbability, Network
from biosim.equations import SynapseModel, library


@pytest.fixture(autouse=True)
def _fp_errors_raise():
    with np.errstate(all="raise"):
        yield


PAIR_STDP = library.pair_stdp(STDP(a_plus=0.1, a_minus=0.105, w_max=3.0))  # the built-in rule as text


def _stdp_net(kind, backend):
    net = Network(dt_ms=0.1, seed=3)
    inp = net.poisson_group("in", 60, 15.0)
    exc = net.population("exc", LIF(), 30)
    rule = FixedProbability(p=0.3)
    if kind == "builtin":
        proj = net.connect(inp, exc, "ge", weight=1.5, rule=rule, delay_ms=0.5,
                           stdp=STDP(a_plus=0.1, a_minus=0.105, w_max=3.0))
    else:
        proj = net.connect(inp, exc, synapse=PAIR_STDP(), init={"w": 1.5}, rule=rule, delay_ms=0.5)
    res = net.run(300.0, backend=backend)
    return res, net.weights(proj)[2]


def test_pair_stdp_as_text_matches_the_builtin_rule():
    ref, w_ref = _stdp_net("builtin", "numba-cpu")
    assert len(ref.spikes["exc"][0]) > 100
    assert np.std(w_ref) > 0.05  # the weights did learn
    got, w = _stdp_net("text", "numba-cpu")
    np.testing.assert_array_equal(got.spikes["exc"][0], ref.spikes["exc"][0])
    np.testing.assert_array_equal(got.spikes["exc"][1], ref.spikes["exc"][1])
    # the built-in decays traces step by step, the text rule over each interval at once: rounding only
    np.testing.assert_allclose(w, w_ref, rtol=0, atol=1e-12)
    slow, w_slow = _stdp_net("text", "numpy")
    np.testing.assert_array_equal(slow.spikes["exc"][0], got.spikes["exc"][0])
    np.testing.assert_array_equal(w_slow, w)


def test_on_pre_statement_equals_a_plain_projection():
    delta = SynapseModel.from_equations(on_pre="v += J", parameters={"J": "0.8 mV"}, name="test_delta")
    results = []
    for kind in ("plain", "model"):
        net = Network(dt_ms=0.1, seed=7)
        exc = net.population("exc", LIF(v_rest_mv=-45.0, t_ref_ms=2.0), 80, init={"v": lambda rng, n: -60 + 15 * rng.random(n)})
        rng = np.random.default_rng(1)
        i, j = rng.integers(0, 80, 600), rng.integers(0, 80, 600)
        if kind == "plain":
            net.connect(exc, exc, "v", weight=0.8, rule=Explicit(i, j), delay_ms=1.5)
        else:
            net.connect(exc, exc, synapse=delta(), rule=Explicit(i, j), delay_ms=1.5)
        results.append(net.run(200.0))
    a, b = results
    assert len(a.spikes["exc"][0]) > 50
    np.testing.assert_array_equal(a.spikes["exc"][0], b.spikes["exc"][0])
    np.testing.assert_array_equal(a.spikes["exc"][1], b.spikes["exc"][1])


def test_on_post_counts_target_spikes_and_pre_variables_are_readable():
    counter = SynapseModel.from_equations(
        "n_post : 1\nv_seen : mV", on_pre="v_seen = v_pre", on_post="n_post += 1", name="test_counter")
    net = Network(dt_ms=0.1, seed=0)
    quiet = LIF(v_rest_mv=-65.0)  # silent without input
    src = net.population("src", quiet, 3)
    tgt = net.population("tgt", quiet, 2)
    net.current(src, [20.0, 0.0, 0.0])
    net.current(tgt, [20.0, 0.0])
    proj = net.connect(src, tgt, synapse=counter(), rule=Explicit([0, 1, 2, 0], [0, 0, 1, 1]))
    res = net.run(100.0)
    n_tgt = np.bincount(res.spikes["tgt"][1], minlength=2)
    assert n_tgt[0] > 0 and n_tgt[1] == 0
    i, j, n_post = net.weights(proj, "n_post")
    np.testing.assert_array_equal(n_post, n_tgt[j])
    _, _, v_seen = net.weights(proj, "v_seen")
    # only source 0 spikes; its v is read after threshold, before reset (Brian2's order)
    assert np.all(v_seen[i == 0] > LIF().v_thresh_mv) and np.all(v_seen[i != 0] == 0.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"equations": "dw/dt = -w / tau : mV", "on_pre": "ge += w"}, "only per-synapse variables"),
    ({"equations": "dx/dt = -x**2 / tau : 1 (event-driven)", "on_pre": "x += 1"}, "must be linear"),
    ({"equations": "w : mV", "on_pre": "gee += w"}, "'gee' is not a variable that can be set; did you mean 'ge'"),
    ({"equations": "w : nS", "on_pre": "ge += w"}, "must be in V"),
    ({"equations": "w : mV", "on_pre": "v_pre += w"}, "'v_pre' is not a variable that can be set"),
    ({"equations": "w : mV", "on_pre": "ge += w * foo"}, "unknown symbol 'foo'"),
])
def test_mistakes_in_synapse_models(kwargs, message):
    model = SynapseModel.from_equations(parameters={"tau": "5 ms"}, name="test_bad_syn", **kwargs) \
        if "only per-synapse" not in message else None
    with pytest.raises(BiosimError, match=message) as info:
        if model is None:
            SynapseModel.from_equations(parameters={"tau": "5 ms"}, name="test_bad_syn", **kwargs)
        net = Network(seed=0)
        a = net.population("a", LIF(), 2)
        net.connect(a, a, synapse=model())
    assert "\n" not in str(info.value)


def test_connect_mistakes_with_synapse_models():
    net = Network(seed=0)
    a = net.population("a", LIF(), 2)
    with pytest.raises(BiosimError, match="did you mean 'w'"):
        net.connect(a, a, synapse=PAIR_STDP(), init={"ww": 1.0})
    with pytest.raises(BiosimError, match="not var/weight/stdp"):
        net.connect(a, a, "ge", weight=1.0, synapse=PAIR_STDP())
    with pytest.raises(BiosimError, match="SynapseModel"):
        net.connect(a, a, synapse=LIF())
    with pytest.raises(BiosimError, match="did you mean 'tau_pre_ms'"):
        PAIR_STDP(tau_pre=5.0)
    net.connect(a, a, synapse=PAIR_STDP(), delay_ms=lambda rng, n: rng.random(n))
    with pytest.raises(BiosimError, match="per-synapse delays are not supported"):
        net.run(1.0)
