"""Models written as equations (biosim.equations).

* every built-in model written as equations (biosim.equations.library) gives the built-in's spikes
  on the model contract network (float64; numpy and numba-cpu), and the method chosen for each
  variable is the built-in's;
* the exact method matches the analytic solution, also with equal time constants; the explicit
  methods converge at their order; exponential Euler handles A == 0;
* mistakes (syntax, unknown symbol, unit mismatch, bad threshold/reset target, bad method, bad
  quantity) are one-line BiosimErrors naming the equation and the symbol;
* the generated module is cached on disk and a second build does not run sympy again.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from model_cases import CASES, DT_MS, _small_network

from biosim import BiosimError, FixedProbability, Network
from biosim.equations import Model, library
from biosim.equations.units import parse_quantity, parse_unit, unit_suffix


@pytest.fixture(autouse=True)
def _fp_errors_raise():
    with np.errstate(all="raise"):
        yield


def _builtin_spec(name):
    from biosim.neurons import MODELS

    return MODELS[name]


def _contract_network(params, name, backend):
    """tests/neurons/test_neuron_models.py's contract network with ``params``, started like the built-in."""
    return _small_network(name, "float64", backend, params=params,
                          init=_builtin_spec(name).initial(CASES[name][0]))


EXPECTED_METHODS = {
    "lif": {"v": "exact", "ge": "exact", "gi": "exact"},
    "cond_lif": {"v": "exponential_euler", "ge": "exact", "gi": "exact"},
    "adex": {"v": "euler", "w": "euler", "ge": "exact", "gi": "exact"},
    "izhikevich": {"v": "euler", "u": "euler", "ge": "exact", "gi": "exact"},
    "hh": {"v": "exponential_euler", "m": "exponential_euler", "h": "exponential_euler",
           "n": "exponential_euler", "ge": "exact", "gi": "exact"},
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("cond_lif", "adex", "izhikevich") else n
                                  for n in CASES])
def test_builtin_written_as_equations_spikes_the_same(name):  # 20-46 s each for these three: with the slow tests
    builtin = CASES[name][0]
    model = library.EQUATION_MODELS[name](builtin)
    assert model.methods == EXPECTED_METHODS[name]
    assert model.spec.var_names == tuple(EXPECTED_METHODS[name])
    ref = _contract_network(builtin, name, "numba-cpu")
    n_spikes = sum(len(t) for t, _ in ref.spikes.values())
    assert n_spikes > 20
    for backend in ("numba-cpu", "numpy"):
        got = _contract_network(model(), name, backend)
        for pop in ("exc", "inh"):
            np.testing.assert_array_equal(got.spikes[pop][0], ref.spikes[pop][0], err_msg=f"{name} {backend} {pop}")
            np.testing.assert_array_equal(got.spikes[pop][1], ref.spikes[pop][1])
        np.testing.assert_allclose(got.states[("exc", "v")][1], ref.states[("exc", "v")][1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("cond_lif", "adex", "izhikevich", "hh") else n
                                  for n in CASES])
def test_equation_models_run_in_float32(name):
    model = library.EQUATION_MODELS[name](CASES[name][0])
    _, (lo, hi), we, _ = CASES[name]
    for backend in ("numba-cpu", "numpy"):
        net = Network(dt_ms=DT_MS, dtype="float32", seed=5)
        pop = net.population("p", model(), 20, init=_builtin_spec(name).initial(CASES[name][0]))
        net.current(pop, np.random.default_rng(0).uniform(lo, hi, 20))
        net.connect(pop, pop, "ge", weight=we, rule=FixedProbability(p=0.2))
        net.monitor(pop, "v", indices=[0, 1])
        res = net.run(50.0, backend=backend)
        assert len(res.spikes["p"][0]) > 0
        v = res.states[("p", "v")][1]
        assert v.dtype == np.float32 and np.all(np.isfinite(v))


def test_function_names_are_listed_once():
    from biosim.equations.lines import FUNCTION_NAMES
    from biosim.equations.parse import FUNCTIONS

    assert tuple(FUNCTIONS) == FUNCTION_NAMES


# --- integration methods against analytic solutions ------------------------------------------

def _trace(model, params, init, duration_ms, dt_ms=0.1, var="v", current=None):
    net = Network(dt_ms=dt_ms, seed=0)
    pop = net.population("p", params, 1, init=init)
    if current is not None:
        net.current(pop, current)
    net.monitor(pop, var)
    res = net.run(duration_ms)
    t, x = res.states[("p", var)]
    return t, x[:, 0]


@pytest.mark.parametrize("tau_s", [pytest.param(5.0, marks=pytest.mark.slow), 20.0])  # 20: equal to tau_m, where closed forms divide by zero
def test_exact_method_matches_the_analytic_psp(tau_s):
    model = Model.from_equations(
        """
        dv/dt = (g - v) / tau_m : mV
        dg/dt = -g / tau_s : mV
        """, parameters={"tau_m": "20 ms", "tau_s": f"{tau_s} ms"}, name="eq_test_psp")
    assert model.methods == {"v": "exact", "g": "exact"}
    t, v = _trace(model, model(), {"g": 1.0}, 50.0)
    if tau_s == 20.0:
        expected = t / 20.0 * np.exp(-t / 20.0)
    else:
        expected = tau_s / (tau_s - 20.0) * (np.exp(-t / tau_s) - np.exp(-t / 20.0))
    np.testing.assert_allclose(v, expected, rtol=1e-10, atol=1e-13)


@pytest.mark.slow  # 42 s: a kernel per method
def test_explicit_methods_converge_at_their_order():
    eqs = "dv/dt = -v**2 / (tau * mV) : mV"  # v(t) = v0 / (1 + v0 t / tau)
    errors = {}
    for method in ("euler", "rk2", "rk4"):
        model = Model.from_equations(eqs, parameters={"tau": "10 ms"}, method=method, name=f"eq_test_square_{method}")
        assert model.methods == {"v": method}
        errs = []
        for dt in (0.2, 0.1):
            t, v = _trace(model, model(), {"v": 2.0}, 10.0, dt_ms=dt)
            errs.append(np.max(np.abs(v - 2.0 / (1 + 2.0 * t / 10.0))))
        errors[method] = math.log2(errs[0] / errs[1])
    assert 0.8 < errors["euler"] < 1.3
    assert 1.7 < errors["rk2"] < 2.4
    assert 3.5 < errors["rk4"] < 4.6


def test_auto_falls_back_to_euler_and_forced_methods_are_checked():
    quad = "dv/dt = (v**2 / mV - v) / tau : mV"
    assert Model.from_equations(quad, parameters={"tau": "10 ms"}, name="eq_test_quad").methods == {"v": "euler"}
    with pytest.raises(BiosimError, match="method 'exact' needs linear"):
        Model.from_equations(quad, parameters={"tau": "10 ms"}, method="exact", name="eq_test_quad_exact")
    with pytest.raises(BiosimError, match="exponential_euler"):
        Model.from_equations(quad, parameters={"tau": "10 ms"}, method="exponential_euler", name="eq_test_quad_ee")
    with pytest.raises(BiosimError, match="unknown integration method 'rk5'; did you mean 'rk4'"):
        Model.from_equations(quad, parameters={"tau": "10 ms"}, method="rk5", name="eq_test_quad_rk5")


def test_refractory_freezes_flagged_variables_only():
    model = Model.from_equations(
        """
        dv/dt = (i_ext - v) / tau : mV (unless refractory)
        dw/dt = (v - w) / tau : mV
        """, parameters={"tau": "10 ms", "t_ref": "2 ms"}, threshold="v > 1*mV", reset="v = 0*mV",
        refractory="t_ref", input_unit="mV", name="eq_test_refractory")
    assert model.spec.frozen_vars == ("v",)
    net = Network(dt_ms=0.1, seed=0)
    pop = net.population("p", model(), 1)
    net.current(pop, 5.0)
    net.monitor(pop, "v")
    net.monitor(pop, "w")
    res = net.run(20.0)
    steps = np.round(res.spikes["p"][0] / 0.1).astype(int)
    assert len(steps) >= 2
    v = res.states[("p", "v")][1][:, 0]
    w = res.states[("p", "w")][1][:, 0]
    s = steps[0]
    # reset at the spike step, then frozen for t_ref/dt - 1 = 19 more steps (Brian2's rule)
    assert np.all(v[s + 1:s + 21] == 0.0)
    assert v[s + 21] > 0.0
    assert np.all(np.diff(w[s + 1:s + 21]) < 0)  # w keeps integrating toward v = 0


def test_exponential_euler_survives_a_zero_rate():
    model = Model.from_equations("dv/dt = (g * (e - v) + i_ext) / c : mV\ng : nS",
                                 parameters={"e": "0 mV", "c": "100 pF"}, input_unit="pA", name="eq_test_zero_g")
    assert model.methods == {"v": "exponential_euler"}
    t, v = _trace(model, model(), {"g": 0.0, "v": 1.0}, 1.0, current=100.0)  # g == 0: dv/dt = 1 mV/ms
    np.testing.assert_allclose(v, 1.0 + t, rtol=1e-12)


def test_subexpressions_units_and_per_neuron_constants():
    model = Model.from_equations(
        """
        dv/dt = (i_syn + i_bias) / c_m : mV
        i_syn = g * (e_syn - v) : pA
        i_bias : nA
        """, parameters={"g": "2 nS", "e_syn": "10 mV", "c_m": "0.2 nF"}, name="eq_test_subexpr")
    assert [f for f in model.params_cls.__dataclass_fields__] == ["g_ns", "e_syn_mv", "c_m_nf"]
    assert model.spec.var_names == ("v", "i_bias")
    t, v = _trace(model, model(), {"v": 0.0, "i_bias": 0.02}, 5.0)  # 20 pA
    # dv/dt = (2 nS (10 - v) mV + 20 pA) / 200 pF = (40 - 2 v) / 200 per ms
    np.testing.assert_allclose(v, 20 * (1 - np.exp(-t / 100.0)), rtol=1e-10)


# --- mistakes --------------------------------------------------------------------------------

BAD = [
    ("dv/dt = (v_rest - v) / tau : mV", {"tau": "10 ms"}, "unknown symbol 'v_rest'"),
    ("dv/dt = (v_rst - v) / tau : mV", {"tau": "10 ms", "v_rest": "0 mV"}, "did you mean 'v_rest'"),
    ("dv/dt = (1 - v) / tau : mV", {"tau": "10 ms"}, "units do not match"),
    ("dv/dt = (0*mV - v) * tau : mV", {"tau": "10 ms"}, "must be in V/s"),
    ("dv/dt = (0*mV - v) / tau + : mV", {"tau": "10 ms"}, "cannot parse"),
    ("dv/dt = exp(v) / tau : mV", {"tau": "10 ms"}, "argument 'v' of exp must be dimensionless"),
    ("dv/dt = -v / tau : mV (unles refractory)", {"tau": "10 ms"}, "did you mean 'unless refractory'"),
    ("dv/dt = -v / tau : mvolts", {"tau": "10 ms"}, "unknown unit 'mvolts'"),
    ("v = 3", {}, "not of the form"),
    ("dv/dt = -v / tau : mV", {"tau": "ten ms"}, "is not a quantity"),
]


@pytest.mark.parametrize("eqs, params, message", BAD)
def test_mistakes_are_one_line_errors(eqs, params, message):
    with pytest.raises(BiosimError, match=message) as info:
        Model.from_equations(eqs, parameters=params, name="eq_test_bad")
    assert "\n" not in str(info.value)
    assert eqs.split(":")[0].strip() in str(info.value) or "tau" in str(info.value) or "=" not in eqs


def test_threshold_and_reset_mistakes():
    eqs, params = "dv/dt = -v / tau : mV", {"tau": "10 ms", "v_th": "1 mV"}
    with pytest.raises(BiosimError, match="threshold 'w > v_th': unknown symbol 'w'"):
        Model.from_equations(eqs, parameters=params, threshold="w > v_th", name="eq_test_bad_th")
    with pytest.raises(BiosimError, match="units do not match"):
        Model.from_equations(eqs, parameters=params, threshold="v > 1", name="eq_test_bad_th2")
    with pytest.raises(BiosimError, match="is not a condition"):
        Model.from_equations(eqs, parameters=params, threshold="v + v_th", name="eq_test_bad_th3")
    with pytest.raises(BiosimError, match="'u' is not a variable that can be set"):
        Model.from_equations(eqs, parameters=params, threshold="v > v_th", reset="u = 0*mV", name="eq_test_bad_r")
    with pytest.raises(BiosimError, match="the value is in s but must be in V"):
        Model.from_equations(eqs, parameters=params, threshold="v > v_th", reset="v = tau", name="eq_test_bad_r2")
    with pytest.raises(BiosimError, match="give its unit as input_unit"):
        Model.from_equations("dv/dt = (i_ext - v) / tau : mV", parameters=params, name="eq_test_bad_in")


def test_parameter_overrides_are_checked():
    model = library.lif()
    assert model(tau_mem_ms=15.0).tau_mem_ms == 15.0
    with pytest.raises(BiosimError, match="did you mean 'tau_mem_ms'"):
        model(tau_mem=15.0)
    with pytest.raises(BiosimError, match="must be a finite number"):
        model(tau_mem_ms=float("nan"))


def test_units_and_quantities():
    assert parse_quantity("20 ms", "x") == (20.0, "ms")
    assert parse_quantity("0.02 /ms", "x") == (0.02, "/ms")
    assert parse_quantity((5e-5, "S/cm2"), "x") == (5e-5, "S/cm2")
    scale, dim = parse_unit("uF/cm**2")
    assert float(scale) == pytest.approx(1e-2)
    assert parse_unit("uF/cm2")[1] == dim
    assert unit_suffix("mV") == "mv" and unit_suffix("nS/cm**2") == "ns_per_cm2" and unit_suffix("/ms") == "per_ms"


def test_generated_module_is_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOSIM_CACHE_DIR", str(tmp_path))
    eqs = "dv/dt = -v / tau_cache_test : mV"
    a = Model.from_equations(eqs, parameters={"tau_cache_test": "10 ms"}, name="eq_test_cache")
    files = list((tmp_path / "generated").glob("biosim_model_eq_test_cache_*.py"))
    assert [str(f) for f in files] == [a.source_file]
    import sys

    import biosim.equations.generate as generate

    sys.modules.pop(files[0].stem)  # as in a new process: only the file on disk is left
    monkeypatch.setattr(generate, "neuron_source", lambda *a, **k: pytest.fail("generated twice"))
    b = Model.from_equations(eqs, parameters={"tau_cache_test": "12 ms"}, name="eq_test_cache")
    assert b.source_file == a.source_file and b().tau_cache_test_ms == 12.0
