"""Contracts against solutions known without the engine, for every model x backend x dtype.

* ``subthreshold``: below threshold the membrane follows its closed form -- LIF and CondLIF with a
  constant current (``v(t) = v_inf + (v0 - v_inf) exp(-t/tau)``), LayerLIF's discrete solution
  (``v_n = v_inf + (v0 - v_inf) beta^n``, and the two-exponential response to a synaptic current).
  AdEx, Izhikevich and HH have no closed form: relaxing to rest, they are compared with a
  fine-step solution of the ODE of their docstring (scipy's DOP853 at rtol 1e-10): the error is
  within about twice their integration method's error at dt = 0.1 ms, and halves at dt = 0.05 ms
  (forward Euler and exponential Euler are first order).
* ``equilibrium``: started at the fixed point of its ODE (closed form, or a root of the steady
  state equation) the state stays there -- forward Euler, exponential Euler and exact
  integration all keep an ODE's fixed points, so this holds to rounding for every model.
* ``synaptic_decay``: ``ge(t) = ge0 exp(-t/tau_exc)`` and ``gi(t) = gi0 exp(-t/tau_inh)`` for
  the models with synapse variables; LayerLIF's current ``i_n = i0 beta_syn^n``.

Monitors record the state at the start of step ``s``, time ``s * dt`` (DESIGN.md section 4).
The ODEs are written out here from the models' docstrings, independently of biosim's code.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from biosim import HH, LIF, AdEx, CondLIF, Izhikevich
from biosim.neurons import LayerLIF

from contract_cases import CASES, DT_MS, contract_network

#: Absolute tolerance per unit of the trace's scale (largest |value| of the expected trace), for
#: a few hundred steps: float64 leaves room for their rounding; in float32 the per-step factors
#: themselves are rounded to 24 bits (exp(-dt/tau) off by up to 3e-8 relative), a bias that adds
#: up over the steps to a few 1e-6 of the scale.
RTOL = {"float64": 1e-12, "float32": 1e-5}


def _run(case, params, n, dtype, backend, duration_ms, init, current=None, record=("v",), dt_ms=DT_MS):
    net = contract_network(dtype, backend, seed=1, dt_ms=dt_ms)
    pop = net.population("p", params, n, init=case.init(params, **init))
    if current is not None:
        net.current(pop, current)
    for var in record:
        net.monitor(pop, var)
    result = net.run(duration_ms, backend=backend)
    times = result.states[("p", record[0])][0]
    states = {var: result.states[("p", var)][1] for var in record}
    for var, values in states.items():
        assert values.dtype == np.dtype(dtype), f"{var} recorded as {values.dtype}, the network is {dtype}"
    return times, states, result


def _assert_close(got, want, dtype, what, rtol=None):
    got = np.asarray(got, dtype=np.float64)
    scale = max(float(np.max(np.abs(want))), 1e-300)
    err = float(np.max(np.abs(got - want)))
    tol = (rtol if rtol is not None else RTOL[dtype]) * scale
    assert err <= tol, f"{what}: max error {err:.3g} > {tol:.3g} (scale {scale:.3g}, {dtype})"


# --------------------------------------------------------------------------------- closed forms

def _lif_subthreshold(case, backend, dtype):
    p = case.params(LIF(tau_mem_ms=20.0, v_rest_mv=-65.0, v_thresh_mv=-50.0, v_reset_mv=-65.0, t_ref_ms=2.0))
    amps = np.array([0.0, 3.0, 12.5, -7.0])           # mV (R I); v_inf = v_rest + I stays below -50
    v0 = np.array([-65.0, -70.0, -55.0, -60.0])
    t, s, r = _run(case, p, 4, dtype, backend, 20.0, {"v": v0}, amps)
    want = -65.0 + amps + (v0 + 65.0 - amps) * np.exp(-t[:, None] / 20.0)
    _assert_close(s["v"], want, dtype, "LIF v(t) = v_rest + RI + (v0 - v_rest - RI) exp(-t/tau_mem)")
    assert len(r.spikes["p"][0]) == 0


def _cond_lif_subthreshold(case, backend, dtype):
    p = case.params(CondLIF(c_mem_pf=200.0, g_leak_ns=10.0, e_leak_mv=-60.0, v_thresh_mv=-50.0))
    amps = np.array([0.0, 50.0, 90.0, -100.0])        # pA; v_inf = e_leak + I/g_leak stays below -50
    v0 = np.array([-60.0, -70.0, -52.0, -65.0])
    t, s, r = _run(case, p, 4, dtype, backend, 20.0, {"v": v0}, amps)
    v_inf = -60.0 + amps / 10.0
    want = v_inf + (v0 - v_inf) * np.exp(-t[:, None] * 10.0 / 200.0)  # tau = C / g_leak = 20 ms
    _assert_close(s["v"], want, dtype, "CondLIF v(t) = v_inf + (v0 - v_inf) exp(-t g_leak / C)")
    assert len(r.spikes["p"][0]) == 0


def _layer_lif_subthreshold(case, backend, dtype):
    # Per-neuron factors (state rows): exact and Euler coefficients, resistances, resting potentials.
    exact, euler = LayerLIF.from_time_constants(DT_MS, 5.0), LayerLIF.from_time_constants(DT_MS, 5.0, method="euler")
    beta = np.array([exact.beta_mem, exact.beta_mem, euler.beta_mem, euler.beta_mem])
    gain = np.array([exact.gain, exact.gain, euler.gain, euler.gain])
    r_in = np.array([1.0, 0.5, 2.0, 1.0])
    v_leak = np.array([0.0, 0.2, -0.3, 0.1])
    x = np.array([0.5, 0.8, 0.3, -0.4])
    v0 = np.array([0.0, 0.9, -0.5, 0.3])
    init = {"v": v0, "beta_mem": beta, "gain": gain, "r": r_in, "v_leak": v_leak, "i_in": x}
    t, s, r = _run(case, exact, 4, dtype, backend, 20.0, init)
    n = np.rint(t / DT_MS)[:, None]
    v_inf = gain * (r_in * x + v_leak) / (1.0 - beta)
    _assert_close(s["v"], v_inf + (v0 - v_inf) * beta ** n, dtype,
                  "LayerLIF v_n = v_inf + (v0 - v_inf) beta^n, v_inf = gain (r x + v_leak) / (1 - beta)")
    assert len(r.spikes["p"][0]) == 0

    # A synaptic current and no input: v_n = gain r i0 (bm^n - bs^n) / (bm - bs), i_n = i0 bs^n.
    syn = LayerLIF.from_time_constants(DT_MS, 10.0, 2.0)
    i0 = np.array([0.0, 1.0, 2.0, -1.5])
    t, s, r = _run(case, syn, 4, dtype, backend, 20.0, {"i": i0}, record=("v", "i"))
    n = np.rint(t / DT_MS)[:, None]
    bm, bs = syn.beta_mem, syn.beta_syn
    _assert_close(s["v"], syn.gain * i0 * (bm ** n - bs ** n) / (bm - bs), dtype,
                  "LayerLIF with a synaptic current: v_n = gain r i0 (bm^n - bs^n) / (bm - bs)")
    assert len(r.spikes["p"][0]) == 0


# ------------------------------------------------------------------ ODEs without closed forms

def _adex_rhs(p: AdEx, current):
    def f(_t, y):
        v, w = y
        dv = (p.g_leak_ns * (p.e_leak_mv - v) + p.g_leak_ns * p.delta_t_mv * np.exp((v - p.v_t_mv) / p.delta_t_mv)
              + current - w) / p.c_mem_pf
        return np.array([dv, (p.a_ns * (v - p.e_leak_mv) - w) / p.tau_w_ms])
    return f


def _adex_equilibrium(p: AdEx, current):
    """Resting v below v_t: dv/dt = 0 with w = a (v - e_leak)."""
    def g(v):
        return (p.g_leak_ns * (p.e_leak_mv - v) + p.g_leak_ns * p.delta_t_mv
                       * math.exp((v - p.v_t_mv) / p.delta_t_mv) + current - p.a_ns * (v - p.e_leak_mv))
    v = brentq(g, p.e_leak_mv - 50.0, p.v_t_mv, xtol=1e-13)
    return {"v": v, "w": p.a_ns * (v - p.e_leak_mv)}


def _izhikevich_rhs(p: Izhikevich, current):
    def f(_t, y):
        v, u = y
        return np.array([0.04 * v * v + 5.0 * v + 140.0 - u + current, p.a * (p.b * v - u)])
    return f


def _izhikevich_equilibrium(p: Izhikevich, current):
    """The stable (lower) root of 0.04 v^2 + (5 - b) v + 140 + I = 0, u = b v."""
    disc = (5.0 - p.b) ** 2 - 4 * 0.04 * (140.0 + current)
    v = (-(5.0 - p.b) - math.sqrt(disc)) / (2 * 0.04)
    return {"v": v, "u": p.b * v}


def _hh_rates(v, v_t):
    """Traub-Miles rates (1/ms) as in Brian2's COBAHH (HH's docstring)."""
    def exprel(x):
        return np.where(x == 0, 1.0, np.expm1(x) / np.where(x == 0, 1.0, x))
    am = 0.32 * 4 / exprel((13 - v + v_t) / 4)
    bm = 0.28 * 5 / exprel((v - v_t - 40) / 5)
    ah = 0.128 * np.exp((17 - v + v_t) / 18)
    bh = 4 / (1 + np.exp((40 - v + v_t) / 5))
    an = 0.032 * 5 / exprel((15 - v + v_t) / 5)
    bn = 0.5 * np.exp((10 - v + v_t) / 40)
    return am, bm, ah, bh, an, bn


def _hh_currents(p: HH, v, m, h, n, current):
    """C dv/dt in pA."""
    return (p.g_leak_ns * (p.e_leak_mv - v) - p.g_na_ns * m ** 3 * h * (v - p.e_na_mv)
            - p.g_kd_ns * n ** 4 * (v - p.e_k_mv) + current)


def _hh_rhs(p: HH, current):
    def f(_t, y):
        v, m, h, n = y
        am, bm, ah, bh, an, bn = _hh_rates(v, p.v_t_mv)
        return np.array([_hh_currents(p, v, m, h, n, current) / p.c_mem_pf, am * (1 - m) - bm * m,
                         ah * (1 - h) - bh * h, an * (1 - n) - bn * n])
    return f


def _hh_gates(p: HH, v):
    am, bm, ah, bh, an, bn = _hh_rates(v, p.v_t_mv)
    return {"m": float(am / (am + bm)), "h": float(ah / (ah + bh)), "n": float(an / (an + bn))}


def _hh_equilibrium(p: HH, current):
    """Resting v: the membrane current with every gate at its steady state is zero."""
    def g(v):
        return float(_hh_currents(p, v, **_hh_gates(p, v), current=current))
    v = brentq(g, -100.0, -62.5, xtol=1e-13)
    return {"v": v, **_hh_gates(p, v)}


#: kind -> (parameters, constant inputs, equilibrium(p, I), rhs(p, I), state order of rhs,
#:          displacement of v from rest at the start (mV), tolerance of the fine-step comparison (mV):
#:          about twice the error of the method at dt = 0.1 ms, measured 0.008 (AdEx), 0.058
#:          (Izhikevich, whose v relaxes within ~2 ms) and 0.0004 mV (HH, exponential Euler)).
#: HH (COBAHH's parameters) has no resting state without input -- its steady-state current is
#: inward everywhere below -35 mV -- so it rests under a hyperpolarising current.
NONLINEAR = {
    "adex": (AdEx(), np.array([0.0, 100.0, 200.0]), _adex_equilibrium, _adex_rhs, ("v", "w"), -4.0, 0.016),
    "izhikevich": (Izhikevich(), np.array([0.0, 2.0, 3.5]), _izhikevich_equilibrium, _izhikevich_rhs,
                   ("v", "u"), -4.0, 0.12),
    "hh": (HH(), np.array([-60.0, -100.0, -150.0]), _hh_equilibrium, _hh_rhs, ("v", "m", "h", "n"), -3.0, 1e-3),
}


def _nonlinear_start(kind, dv):
    base, amps, equilibrium, _rhs, names, _shift, _tol = NONLINEAR[kind]
    rest = [equilibrium(base, a) for a in amps]
    start = {k: np.array([r[k] for r in rest]) for k in names}
    start["v"] = start["v"] + dv
    return base, amps, start


@functools.cache
def _reference(kind, k, t_end, n_times):
    """v of neuron ``k`` of :func:`_nonlinear_subthreshold` at ``n_times`` times from 0 to ``t_end``,
    solved with DOP853 at rtol 1e-10 (shared by every backend, dtype and twin)."""
    base, amps, _eq, rhs, names, shift, _tol = NONLINEAR[kind]
    _, _, start = _nonlinear_start(kind, shift)
    t = np.linspace(0.0, t_end, n_times)
    # scipy's smallest step, 10 * (nextafter(0, inf) - 0), is a subnormal: an underflow by design
    with np.errstate(under="ignore"):
        ref = solve_ivp(rhs(base, amps[k]), (0.0, t_end), [start[name][k] for name in names], method="DOP853",
                        t_eval=t, rtol=1e-10, atol=1e-10)
    assert ref.success, ref.message
    return ref.y[0]


def _nonlinear_subthreshold(case, backend, dtype):
    """Relaxation to rest from ``v`` displaced below it: the error against the fine-step solution
    is below the tolerance and halves when dt halves (the methods are first order)."""
    base, amps, _eq, _rhs, _names, shift, tol = NONLINEAR[case.kind]
    _, _, start = _nonlinear_start(case.kind, shift)
    errors = []
    for dt in (DT_MS, DT_MS / 2):
        t, s, r = _run(case, case.params(base), len(amps), dtype, backend, 30.0, start, amps, dt_ms=dt)
        assert len(r.spikes["p"][0]) == 0
        every = round(DT_MS / dt)
        t, v = t[::every], s["v"][::every].astype(np.float64)
        ref = np.stack([_reference(case.kind, k, float(t[-1]), len(t)) for k in range(len(amps))], axis=1)
        assert np.all(np.abs(ref[-1] - ref[0]) > 0.5 * abs(shift)), "not a relaxation: the reference barely moves"
        errors.append(float(np.max(np.abs(v - ref))))
    assert errors[0] < tol, (f"{case.name}: v differs from the fine-step solution by {errors[0]:.3g} mV at "
                             f"dt = {DT_MS} ms (> {tol} mV)")
    assert 1.8 < errors[0] / errors[1] < 2.5, (f"{case.name}: the error should halve with dt (first-order "
                                               f"method), got {errors[0]:.3g} -> {errors[1]:.3g} mV")


SUBTHRESHOLD = {"lif": _lif_subthreshold, "cond_lif": _cond_lif_subthreshold,
                "layer_lif": _layer_lif_subthreshold, "adex": _nonlinear_subthreshold,
                "izhikevich": _nonlinear_subthreshold, "hh": _nonlinear_subthreshold}


def test_every_model_has_a_subthreshold_check():
    assert {c.kind for c in CASES.values()} <= set(SUBTHRESHOLD)


@pytest.mark.contract("subthreshold")
def test_subthreshold_solution(model, backend, dtype):
    case = CASES[model]
    SUBTHRESHOLD[case.kind](case, backend, dtype)


# --------------------------------------------------------------------------------- equilibrium

def _linear_equilibrium(case):
    if case.kind == "lif":
        p, amps = LIF(v_thresh_mv=-50.0, v_rest_mv=-65.0), np.array([0.0, 5.0, -5.0])
        return p, amps, {"v": -65.0 + amps}
    if case.kind == "cond_lif":
        p, amps = CondLIF(), np.array([0.0, 50.0, -50.0])
        return p, amps, {"v": p.e_leak_mv + amps / p.g_leak_ns}
    p, amps = LayerLIF.from_time_constants(DT_MS, 10.0, v_leak=0.25), np.array([0.0, 0.5, -0.5])
    return p, amps, {"v": p.gain * (amps + p.v_leak) / (1.0 - p.beta_mem)}


@pytest.mark.contract("equilibrium")
def test_fixed_point_is_kept(model, backend, dtype):
    case = CASES[model]
    if case.kind in NONLINEAR:
        base, amps, start = _nonlinear_start(case.kind, 0.0)
    else:
        base, amps, start = _linear_equilibrium(case)
    _, s, r = _run(case, case.params(base), len(amps), dtype, backend, 20.0, start, amps, record=tuple(start))
    assert len(r.spikes["p"][0]) == 0
    rtol = {"float64": 1e-12, "float32": 2e-5}[dtype]  # float32: the fixed point of the rounded map
    for var, values in s.items():
        want = np.broadcast_to(np.asarray(start[var], dtype=np.float64).astype(dtype).astype(np.float64),
                               values.shape)
        _assert_close(values, want, dtype, f"{case.name}.{var} at its fixed point", rtol=rtol)


# ------------------------------------------------------------------------------ synaptic decay

@pytest.mark.contract("synaptic_decay")
def test_synaptic_variables_decay_exponentially(model, backend, dtype):
    case = CASES[model]
    scale = np.array([0.0, 1.0, 3.0])
    if case.kind == "layer_lif":
        p = LayerLIF.from_time_constants(DT_MS, 10.0, 3.0)
        t, s, _ = _run(case, p, 3, dtype, backend, 20.0, {"i": 0.2 * scale}, record=("i",))
        want = 0.2 * scale * p.beta_syn ** np.rint(t / DT_MS)[:, None]
        _assert_close(s["i"], want, dtype, "LayerLIF i_n = i0 beta_syn^n")
        return
    base = case.builtin_cls(tau_exc_ms=5.0, tau_inh_ms=10.0)
    init = {"ge": case.w_exc * scale, "gi": case.w_inh * scale}
    t, s, _ = _run(case, case.params(base), 3, dtype, backend, 20.0, init, record=("ge", "gi"))
    _assert_close(s["ge"], init["ge"] * np.exp(-t[:, None] / 5.0), dtype, "ge(t) = ge0 exp(-t/tau_exc)")
    _assert_close(s["gi"], init["gi"] * np.exp(-t[:, None] / 10.0), dtype, "gi(t) = gi0 exp(-t/tau_inh)")
