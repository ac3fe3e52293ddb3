"""Contract tests of every neuron model, and single-neuron / small-network checks against Brian2.

* every model x {float32, float64} x {numpy, numba-cpu}: a small recurrent network runs, spikes,
  stays finite, and in float64 both backends give identical spikes and traces (float32 of the models
  other than LIF with the slow tests);
* AdEx, Izhikevich and HH single neurons driven by constant currents spike on exactly the same
  steps as Brian2 (same equations, method and dt; numpy code generation), with close traces;
* a small COBAHH network (Brian2's synapses and initial values imported) spikes exactly as Brian2;
* HH firing rate rises with current; parameter validation names the field; the AdEx overflow
  guard keeps a kicked neuron finite; the COBAHH builder runs from models/cobahh.toml.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from biosim import (
    HH, LIF, AdEx, BiosimError, CondLIF, Explicit, Izhikevich, Network,
)
from biosim.neurons import MODELS, spec_for
from model_cases import CASES, DT_MS, _small_network

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fp_errors_raise():
    with np.errstate(all="raise"):
        yield


# --- every model, every backend, both precisions -------------------------------------------



def test_cases_cover_every_model():
    # layer_lif has no ge/gi (its projections target x_syn): tests/contract covers it
    assert set(CASES) == set(MODELS) - {"layer_lif"}
    for name, (params, *_rest) in CASES.items():
        assert spec_for(params).name == name


#: Each model's float32 kernel is a cold compile of its own (25-40 s): in the default suite only LIF's
#: (tests/contract and tests/equations run the others in float32 with the slow tests too).
_SLOW_FLOAT32 = ("cond_lif", "adex", "izhikevich", "hh")


@pytest.mark.parametrize(("name", "dtype"), [
    pytest.param(n, d, marks=pytest.mark.slow) if d == "float32" and n in _SLOW_FLOAT32 else (n, d)
    for n in CASES for d in ("float64", "float32")])
def test_model_runs_on_every_backend(name, dtype):
    results = {be: _small_network(name, dtype, be) for be in ("numba-cpu", "numpy")}
    for be, res in results.items():
        n_spikes = sum(len(t) for t, _ in res.spikes.values())
        assert n_spikes > 0, f"{name}/{dtype}/{be} did not spike"
        for _, values in res.states.values():
            assert values.dtype == np.dtype(dtype)
            assert np.all(np.isfinite(values))
    if dtype == "float64":
        a, b = results["numba-cpu"], results["numpy"]
        for pop in ("exc", "inh"):
            np.testing.assert_array_equal(a.spikes[pop][0], b.spikes[pop][0])
            np.testing.assert_array_equal(a.spikes[pop][1], b.spikes[pop][1])
        for key in a.states:
            np.testing.assert_array_equal(a.states[key][1], b.states[key][1])


# --- single neurons against Brian2 ---------------------------------------------------------

def _biosim_single(params, amps, duration_ms, init=None):
    net = Network(dt_ms=DT_MS, dtype="float64", seed=1)
    pop = net.population("p", params, len(amps), init=init)
    net.current(pop, np.asarray(amps, dtype=float))
    net.monitor(pop, "v")
    res = net.run(duration_ms)
    t, i = res.spikes["p"]
    return np.round(t / DT_MS).astype(np.int64), i, res.states[("p", "v")][1]


def _brian2_single(eqs, namespace, n, threshold, reset, refractory_ms, method, amps, init, v_unit,
                   duration_ms):
    b2 = pytest.importorskip("brian2")
    b2.start_scope()
    b2.prefs.codegen.target = "numpy"
    b2.prefs.core.default_float_dtype = np.float64
    b2.defaultclock.dt = DT_MS * b2.ms
    group = b2.NeuronGroup(n, eqs, threshold=threshold, reset=reset, refractory=refractory_ms * b2.ms,
                           method=method, namespace=namespace)
    for var, value in init.items():
        setattr(group, var, value)
    group.I = amps
    spikes = b2.SpikeMonitor(group)
    trace = b2.StateMonitor(group, "v", record=True)
    b2.Network(group, spikes, trace).run(duration_ms * b2.ms, namespace={})
    steps = np.round(np.asarray(spikes.t / b2.ms) / DT_MS).astype(np.int64)
    return steps, np.asarray(spikes.i, dtype=np.int64), np.asarray(trace.v / v_unit).T


def _assert_same(ours, theirs, atol_mv):
    key = lambda s: sorted(zip(s[0].tolist(), s[1].tolist()))  # noqa: E731
    assert len(ours[0]) > 10
    assert key(ours) == key(theirs)
    np.testing.assert_allclose(ours[2], theirs[2], rtol=0, atol=atol_mv)


def test_adex_matches_brian2():
    b2 = pytest.importorskip("brian2")
    p = AdEx(t_ref_ms=2.0)
    amps = [300.0, 600.0, 1000.0, 2000.0]
    ms, mV, pA, nS, pF = b2.ms, b2.mV, b2.pA, b2.nS, b2.pF
    ns = dict(C=p.c_mem_pf * pF, gL=p.g_leak_ns * nS, EL=p.e_leak_mv * mV, DeltaT=p.delta_t_mv * mV,
              VT=p.v_t_mv * mV, Vcut=p.v_peak_mv * mV, Vr=p.v_reset_mv * mV, tauw=p.tau_w_ms * ms,
              a=p.a_ns * nS, b=p.b_pa * pA)
    eqs = """dv/dt = (gL*(EL - v) + gL*DeltaT*exp((v - VT)/DeltaT) + I - w)/C : volt (unless refractory)
             dw/dt = (a*(v - EL) - w)/tauw : amp
             I : amp"""
    theirs = _brian2_single(eqs, ns, len(amps), "v > Vcut", "v = Vr; w += b", p.t_ref_ms, "euler",
                            np.asarray(amps) * pA, {"v": p.e_leak_mv * mV}, mV, 200.0)
    _assert_same(_biosim_single(p, amps, 200.0), theirs, atol_mv=1e-6)


def test_izhikevich_matches_brian2():
    pytest.importorskip("brian2")
    p = Izhikevich(t_ref_ms=1.0)
    amps = [4.0, 10.0, 20.0]
    eqs = """dv/dt = (0.04*v**2 + 5*v + 140 - u + I)/ms : 1 (unless refractory)
             du/dt = a*(b*v - u)/ms : 1
             I : 1"""
    ns = dict(a=p.a, b=p.b, c=p.c_mv, d=p.d, vpeak=p.v_peak_mv)
    theirs = _brian2_single(eqs, ns, len(amps), "v > vpeak", "v = c; u += d", p.t_ref_ms, "euler",
                            np.asarray(amps), {"v": p.c_mv, "u": p.b * p.c_mv}, 1, 200.0)
    _assert_same(_biosim_single(p, amps, 200.0), theirs, atol_mv=1e-6)


#: Brian2's examples/COBAHH.py equations (plus an injected current I, in amp).
HH_EQS = """dv/dt = (gl*(El-v)+ge*(Ee-v)+gi*(Ei-v)-g_na*(m*m*m)*h*(v-ENa)-g_kd*(n*n*n*n)*(v-EK) + I)/Cm : volt
dm/dt = alpha_m*(1-m)-beta_m*m : 1
dn/dt = alpha_n*(1-n)-beta_n*n : 1
dh/dt = alpha_h*(1-h)-beta_h*h : 1
dge/dt = -ge*(1./taue) : siemens
dgi/dt = -gi*(1./taui) : siemens
alpha_m = 0.32*(mV**-1)*4*mV/exprel((13*mV-v+VT)/(4*mV))/ms : Hz
beta_m = 0.28*(mV**-1)*5*mV/exprel((v-VT-40*mV)/(5*mV))/ms : Hz
alpha_h = 0.128*exp((17*mV-v+VT)/(18*mV))/ms : Hz
beta_h = 4./(1+exp((40*mV-v+VT)/(5*mV)))/ms : Hz
alpha_n = 0.032*(mV**-1)*5*mV/exprel((15*mV-v+VT)/(5*mV))/ms : Hz
beta_n = .5*exp((10*mV-v+VT)/(40*mV))/ms : Hz
"""


def _hh_namespace(b2):
    ms, mV = b2.ms, b2.mV
    area = 20000 * b2.umetre ** 2
    return dict(Cm=(1 * b2.ufarad * b2.cm ** -2) * area, gl=(5e-5 * b2.siemens * b2.cm ** -2) * area,
                El=-60 * mV, EK=-90 * mV, ENa=50 * mV, g_na=(100 * b2.msiemens * b2.cm ** -2) * area,
                g_kd=(30 * b2.msiemens * b2.cm ** -2) * area, VT=-63 * mV, taue=5 * ms, taui=10 * ms,
                Ee=0 * mV, Ei=-80 * mV, we=6 * b2.nS, wi=67 * b2.nS)


def test_hh_units_match_brian2_example():
    b2 = pytest.importorskip("brian2")
    ns, p = _hh_namespace(b2), HH()
    assert math.isclose(p.c_mem_pf, float(ns["Cm"] / b2.pF))
    assert math.isclose(p.g_leak_ns, float(ns["gl"] / b2.nS))
    assert math.isclose(p.g_na_ns, float(ns["g_na"] / b2.nS))
    assert math.isclose(p.g_kd_ns, float(ns["g_kd"] / b2.nS))


def test_hh_matches_brian2():
    b2 = pytest.importorskip("brian2")
    p = HH()
    amps = [0.0, 100.0, 300.0, 1000.0]
    init = {**MODELS["hh"].initial(p), "ge": 20.0, "gi": 50.0}
    mV, nS = b2.mV, b2.nS
    b2_init = {"v": init["v"] * mV, "m": init["m"], "h": init["h"], "n": init["n"], "ge": 20 * nS, "gi": 50 * nS}
    theirs = _brian2_single(HH_EQS + "I : amp", _hh_namespace(b2), len(amps), "v > -20*mV", "", p.t_ref_ms,
                            "exponential_euler", np.asarray(amps) * b2.pA, b2_init, mV, 200.0)
    _assert_same(_biosim_single(p, amps, 200.0, init={"ge": 20.0, "gi": 50.0}), theirs, atol_mv=1e-6)


def test_cobahh_network_matches_brian2():
    """A 200-neuron COBAHH (p = 0.25) with Brian2's synapses and initial values imported."""
    b2 = pytest.importorskip("brian2")
    n, n_exc, duration_ms = 200, 160, 100.0
    b2.start_scope()
    b2.prefs.codegen.target = "numpy"
    b2.prefs.core.default_float_dtype = np.float64
    b2.defaultclock.dt = DT_MS * b2.ms
    b2.seed(3)
    ns = _hh_namespace(b2)
    P = b2.NeuronGroup(n, HH_EQS + "I : amp", threshold="v>-20*mV", refractory=3 * b2.ms, method="exponential_euler",
                       namespace=ns)
    Ce = b2.Synapses(P[:n_exc], P, on_pre="ge+=we", namespace=ns)
    Ci = b2.Synapses(P[n_exc:], P, on_pre="gi+=wi", namespace=ns)
    Ce.connect(p=0.25)
    Ci.connect(p=0.25)
    P.v = "El + (randn() * 5 - 5)*mV"
    P.ge = "(randn() * 1.5 + 4) * 10.*nS"
    P.gi = "(randn() * 12 + 20) * 10.*nS"
    v0, ge0, gi0 = (np.asarray(x).copy() for x in (P.v / b2.mV, P.ge / b2.nS, P.gi / b2.nS))
    mon = b2.SpikeMonitor(P)
    b2.Network(P, Ce, Ci, mon).run(duration_ms * b2.ms, namespace={})
    theirs = sorted(zip(np.round(np.asarray(mon.t / b2.ms) / DT_MS).astype(int).tolist(),
                        np.asarray(mon.i).tolist()))

    net = Network(dt_ms=DT_MS, seed=0)
    pops = {}
    for name, lo, hi in (("exc", 0, n_exc), ("inh", n_exc, n)):
        init = {"v": v0[lo:hi], "m": 0.0, "h": 0.0, "n": 0.0, "ge": ge0[lo:hi], "gi": gi0[lo:hi]}
        pops[name] = (net.population(name, HH(), hi - lo, init=init), lo, hi)
    for src, syn, var, w in (("exc", Ce, "ge", 6.0), ("inh", Ci, "gi", 67.0)):
        i, j = np.asarray(syn.i).copy(), np.asarray(syn.j).copy()
        for tgt, lo, hi in pops.values():
            k = (j >= lo) & (j < hi)
            net.connect(pops[src][0], tgt, var, weight=w, rule=Explicit(i[k], j[k] - lo))
    res = net.run(duration_ms)
    ours = sorted((int(round(t / DT_MS)), int(i) + pops[name][1])
                  for name in ("exc", "inh") for t, i in zip(*res.spikes[name]))
    assert len(theirs) > 100
    assert ours == theirs


# --- behaviour ---------------------------------------------------------------------------

def test_hh_rate_rises_with_current():
    amps = [0.0, 100.0, 200.0, 400.0, 800.0, 1600.0]
    steps, idx, _ = _biosim_single(HH(), amps, 500.0)
    late = steps >= int(100.0 / DT_MS)
    counts = np.bincount(idx[late], minlength=len(amps))
    assert np.all(np.diff(counts) > 0), counts


@pytest.mark.parametrize(("dtype", "backend"), [
    pytest.param("float32", "numba-cpu", marks=pytest.mark.slow),  # 24 s: adex's float32 kernel; float32 on numpy stays
    ("float32", "numpy"), ("float64", "numba-cpu"), ("float64", "numpy")])
def test_adex_exp_guard_keeps_kicked_neuron_finite(dtype, backend):
    """A kick of +500 mV straight onto v (after the threshold) makes exp((v - v_t)/delta_t) at the
    next step overflow float32 (unclamped: 'v became inf'); the clamp keeps v finite and the
    neuron spikes on that next step, as it would unclamped in float64."""
    net = Network(dt_ms=DT_MS, dtype=dtype, seed=0)
    pop = net.population("p", AdEx(), 1)
    kick = net.spike_generator("kick", 1, [0], [10.0])
    net.connect(kick, pop, "v", weight=500.0)
    res = net.run(20.0, backend=backend)
    t, _ = res.spikes["p"]
    assert np.round(t / DT_MS).astype(int).tolist() == [101]


def test_izhikevich_reset_and_adaptation():
    net = Network(dt_ms=DT_MS, seed=0)
    p = Izhikevich()
    pop = net.population("p", p, 1)
    net.current(pop, 10.0)
    net.monitor(pop, "u")
    net.monitor(pop, "v")
    res = net.run(100.0)
    steps = np.round(res.spikes["p"][0] / DT_MS).astype(int)
    assert len(steps) >= 3
    v = res.states[("p", "v")][1][:, 0]
    u = res.states[("p", "u")][1][:, 0]
    s = steps[0]
    assert v[s + 1] == p.c_mv  # recorded at the start of the step after the spike
    assert u[s + 1] > u[s] + p.d * 0.9
    assert np.all(np.diff(np.diff(steps)) >= 0)  # adaptation: inter-spike intervals lengthen


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize(("cls", "field", "value"), [
    (LIF, "tau_mem_ms", 0.0), (CondLIF, "tau_exc_ms", -1.0),
    (AdEx, "tau_w_ms", 0.0), (AdEx, "tau_exc_ms", -5.0), (AdEx, "c_mem_pf", 0.0), (AdEx, "delta_t_mv", 0.0),
    (AdEx, "t_ref_ms", -1.0), (AdEx, "a_ns", math.nan),
    (Izhikevich, "tau_exc_ms", 0.0), (Izhikevich, "tau_inh_ms", -1.0), (Izhikevich, "a", -0.1),
    (Izhikevich, "d", math.inf),
    (HH, "tau_inh_ms", 0.0), (HH, "area_um2", 0.0), (HH, "c_mem_uf_per_cm2", -1.0),
    (HH, "g_na_ms_per_cm2", -1.0), (HH, "t_ref_ms", -3.0),
])
def test_bad_parameter_names_the_field(cls, field, value):
    with pytest.raises(BiosimError, match=field):
        cls(**{field: value})


def test_parameters_are_frozen_and_keyword_only():
    with pytest.raises(TypeError):
        HH(20000.0)  # noqa
    p = AdEx()
    with pytest.raises(AttributeError):
        p.tau_w_ms = 1.0


# --- the COBAHH builder ----------------------------------------------------------------------

def _cobahh_params(**overrides):
    with open(ROOT / "models" / "cobahh.toml", "rb") as fh:
        spec = tomllib.load(fh)
    assert spec["builder"] == "cobahh"
    return {**spec["params"], **overrides}


def test_cobahh_toml_matches_hh_defaults():
    assert HH(**_cobahh_params()["neuron"]) == HH()


def test_cobahh_builder_runs():
    from biosim.experiments.cobahh import build_cobahh

    cfg = _cobahh_params(n_exc=160, n_inh=40, p_connect=0.25)
    net = build_cobahh(cfg, seed=2)
    assert [p.name for p in net.populations] == ["exc", "inh"]
    res = net.run(50.0)
    assert res.sizes == {"exc": 160, "inh": 40}
    assert sum(len(t) for t, _ in res.spikes.values()) > 0
    again = build_cobahh(cfg, seed=2).run(50.0)
    for pop in ("exc", "inh"):
        np.testing.assert_array_equal(res.spikes[pop][1], again.spikes[pop][1])


def test_cobahh_builder_rejects_bad_config():
    from biosim.experiments.cobahh import build_cobahh

    with pytest.raises(BiosimError, match="tau_exc_ms"):
        build_cobahh(_cobahh_params(n_exc=8, n_inh=2, neuron={"tau_exc_ms": 0.0}), seed=0)
    with pytest.raises(BiosimError, match="tau_exe_ms"):
        build_cobahh(_cobahh_params(n_exc=8, n_inh=2, neuron={"tau_exe_ms": 1.0}), seed=0)
    with pytest.raises(BiosimError, match="p_connect"):
        build_cobahh(_cobahh_params(n_exc=8, n_inh=2, p_connect=1.5), seed=0)
