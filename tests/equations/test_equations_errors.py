"""Mistakes a user can make with models written as equations: each a one-line BiosimError (found by
trying the API as a Brian2 user would), and the valid spellings they are confused with."""

from __future__ import annotations

import numpy as np
import pytest

from biosim import LIF, BiosimError, Explicit, Network
from biosim.equations import Model, SynapseModel

EQS = "dv/dt = (v_rest - v + i_ext) / tau : mV"
PARAMS = {"tau": "10 ms", "v_rest": "-60 mV", "v_thresh": "-50 mV"}


def _model(eqs=EQS, params=PARAMS, **kw):
    kw.setdefault("input_unit", "mV")
    kw.setdefault("name", "err_model")
    return Model.from_equations(eqs, parameters=params, **kw)


def _raises(message, fn, *args, **kw):
    with pytest.raises(BiosimError, match=message) as info:
        fn(*args, **kw)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["dt", "t", "float", "np", "lambda", "exp", "propagator", "_x", "1x"])
def test_reserved_and_invalid_parameter_names(name):
    _raises("reserved|must be an identifier", _model, params={**PARAMS, name: "1"})
    _raises("reserved|must be an identifier", SynapseModel.from_equations, "w : mV", on_pre="ge += w",
            parameters={name: "1"})


@pytest.mark.parametrize("var", ["i", "N", "float", "lambda"])
def test_reserved_variable_names(var):
    _raises("reserved", _model, eqs=f"d{var}/dt = -{var} / tau : 1")


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": -50}, "threshold = -50 must be a string"),
    ({"reset": ["v = v_rest"]}, "must be a string"),
    ({"name": 3}, "model name 3 must be an identifier"),
    ({"name": "x" * 100}, "at most 64 characters"),
    ({"input_name": None}, "input name None"),
    ({"threshold": "v > v_thresh + i_ext"}, "only appear in the differential equations"),
    ({"init": {"v": "-60 mv"}}, "did you mean 'mV'"),
    ({"refractory": "-3 ms"}, "must be >= 0"),
])
def test_argument_mistakes(kwargs, message):
    _raises(message, _model, **kwargs)


@pytest.mark.parametrize("eqs, params, message", [
    ("dv/dt = sin(t/ms) * mV / tau : mV", PARAMS, r"'t' \(time, in Brian2\) is not supported"),
    ("dv/dt = log(-1) * mV / tau : mV", PARAMS, "infinite or not a real number"),
    ("dv/dt = -v / tau :", PARAMS, "give the unit after ':'"),
    ("dv/dt = -v / tau : mV", {"tau": "20 msec"}, "parameter 'tau': unknown unit 'msec'"),
    ("dv/dt = -v / tau : mV", {"tau": "20 ms ms"}, "join units with"),
    ("dv/dt = -v**2 / tau : mV", PARAMS, r"V\^2"),
])
def test_messages_name_the_problem(eqs, params, message):
    _raises(message, _model, eqs=eqs, params=params, input_unit=None)


@pytest.mark.slow
def test_constants_scientific_numbers_and_conditions():
    m = _model(eqs="dv/dt = (v_rest - v + .5e1*mV * cos(0*pi) + i_ext) / tau : mV",
               threshold="v > v_thresh and not v > 0*mV or v < -100*mV", reset="v = v_rest")
    net = Network(seed=0)
    pop = net.population("p", m, 2, init={"v": -60.0})  # the model itself: its default parameters
    net.current(pop, [10.0, 0.0])   # v_inf = -45 mV for neuron 0 (above threshold), -55 mV for 1
    res = net.run(50.0)
    assert set(res.spikes["p"][1]) == {0}
    chained = _model(threshold="v_rest < v_thresh < v", reset="v = v_rest", name="err_chained")
    net = Network(seed=0)
    pop = net.population("p", chained(), 2, init={"v": -60.0})
    net.current(pop, [15.0, 5.0])  # v_inf -45 and -55 mV
    assert set(net.run(50.0).spikes["p"][1]) == {0}


def test_parameter_values_are_checked():
    m = _model(threshold="v > v_thresh", reset="v = v_rest", refractory="t_ref",
               params={**PARAMS, "t_ref": "2 ms"})
    _raises("must be a number", m, tau_ms="20 ms")
    _raises("must be a number", m, tau_ms=None)
    _raises("keyword arguments", m, 20.0)
    for bad, message in (({"tau_ms": 0.0}, "cannot be used|infinite or NaN"),
                         ({"t_ref_ms": -3.0}, r"must be in \[0, 1e12\] ms")):
        net = Network(seed=0)
        net.population("p", m(**bad), 2)
        _raises(message, net.run, 1.0)


def test_inputs_and_initial_values_are_checked():
    silent = _model(eqs="dv/dt = (v_rest - v) / tau : mV", input_unit=None, name="err_no_input")
    net = Network(seed=0)
    pop = net.population("p", silent(), 3, init={"v": "-60 mV"})
    _raises("has no external input", net.current, pop, 1.0)
    _raises("must be a number", net.run, 1.0)
    net = Network(seed=0)
    net.population("p", silent(), 3, init={"v": np.zeros(2)})
    _raises(r"needs one value or 3 values", net.run, 1.0)


def test_redefining_a_model_name_keeps_the_first_models_parameters_usable():
    first = _model(name="err_redefined")
    second = _model(eqs="dv/dt = (v_rest - v + 2 * i_ext) / tau : mV", name="err_redefined")
    net = Network(seed=0)
    a = net.population("a", first(), 1)
    b = net.population("b", second(), 1)
    net.current(a, 5.0)
    net.current(b, 5.0)
    net.monitor(a, "v")
    net.monitor(b, "v")
    res = net.run(100.0)
    assert res.states[("a", "v")][1][-1, 0] == pytest.approx(-55.0, abs=0.01)
    assert res.states[("b", "v")][1][-1, 0] == pytest.approx(-50.0, abs=0.01)


def test_on_post_writes_to_the_target_apply():
    kick = SynapseModel.from_equations(on_pre="ge += 0*mV", on_post="ge += 1*mV", name="err_kick")
    net = Network(dt_ms=0.1, seed=0)
    quiet = LIF(v_rest_mv=-65.0)
    src = net.population("src", quiet, 1)
    tgt = net.population("tgt", quiet, 1)
    net.current(tgt, 20.0)
    net.connect(src, tgt, synapse=kick(), rule=Explicit([0], [0]))
    net.monitor(tgt, "ge")
    res = net.run(30.0)
    t_spike = res.spikes["tgt"][0]
    assert len(t_spike) > 0
    times, ge = res.states[("tgt", "ge")]
    after = np.searchsorted(times, t_spike[0] + 0.05)
    assert ge[after, 0] > 0.9  # the kick landed on the target's spike step
