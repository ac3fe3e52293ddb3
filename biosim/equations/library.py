"""The built-in neuron models written as equations.

Each function returns the :class:`~biosim.equations.Model` that integrates like the built-in
model of the same name (the tests check they spike identically), with the built-in's parameter
values as defaults. They double as examples of the equation syntax, and ``biosim bench cuba
--model equations`` runs CUBA on :func:`lif`.
"""

from __future__ import annotations

import dataclasses

from biosim.equations.model import Model
from biosim.neurons import HH, LIF, AdEx, CondLIF, Izhikevich

__all__ = ["lif", "cond_lif", "adex", "izhikevich", "hh", "EQUATION_MODELS"]


def _values(params, units: dict[str, str]) -> dict[str, str]:
    """``{"tau_mem": "20.0 ms", ...}`` from a built-in parameter dataclass and a field -> unit map."""
    out = {}
    for f in dataclasses.fields(params):
        base = f.name
        for suffix, unit in units.items():
            if f.name.endswith("_" + suffix):
                base = f.name[: -len(suffix) - 1]
                out[base] = f"{getattr(params, f.name)!r} {unit}"
                break
        else:
            out[base] = repr(getattr(params, f.name))
    return out


def lif(params: LIF | None = None) -> Model:
    """Current-based LIF with exponential synapses (exact integration)."""
    return Model.from_equations(
        """
        dv/dt = (v_rest - v + ge + gi + i_ext) / tau_mem : mV (unless refractory)
        dge/dt = -ge / tau_exc : mV
        dgi/dt = -gi / tau_inh : mV
        """,
        parameters=_values(params or LIF(), {"ms": "ms", "mv": "mV"}),
        threshold="v > v_thresh", reset="v = v_reset", refractory="t_ref", input_unit="mV",
        init={"v": "v_rest"}, name="eq_lif")


def cond_lif(params: CondLIF | None = None) -> Model:
    """Conductance-based LIF (exponential Euler for ``v``, exact decays)."""
    return Model.from_equations(
        """
        dv/dt = (g_leak * (e_leak - v) + ge * (e_exc - v) + gi * (e_inh - v) + i_ext) / c_mem : mV (unless refractory)
        dge/dt = -ge / tau_exc : nS
        dgi/dt = -gi / tau_inh : nS
        """,
        parameters=_values(params or CondLIF(), {"ms": "ms", "mv": "mV", "pf": "pF", "ns": "nS"}),
        threshold="v > v_thresh", reset="v = v_reset", refractory="t_ref", input_unit="pA",
        init={"v": "e_leak"}, name="eq_cond_lif")


def adex(params: AdEx | None = None) -> Model:
    """Adaptive exponential IF (Euler for ``v``, ``w``; exact decays; exponent clamped at 50)."""
    return Model.from_equations(
        """
        dv/dt = (g_leak * (e_leak - v) + g_leak * delta_t * exp(min((v - v_t) / delta_t, 50))
                 + ge + gi + i_ext - w) / c_mem : mV (unless refractory)
        dw/dt = (a * (v - e_leak) - w) / tau_w : pA
        dge/dt = -ge / tau_exc : pA
        dgi/dt = -gi / tau_inh : pA
        """.replace("\n                 +", " +"),
        parameters=_values(params or AdEx(), {"ms": "ms", "mv": "mV", "pf": "pF", "ns": "nS", "pa": "pA"}),
        threshold="v > v_peak", reset="v = v_reset; w += b", refractory="t_ref", input_unit="pA",
        init={"v": "e_leak"}, name="eq_adex")


def izhikevich(params: Izhikevich | None = None) -> Model:
    """Izhikevich (2003) in his units: ``v`` in mV, time in ms, ``u`` and inputs in mV/ms."""
    p = params or Izhikevich()
    values = _values(p, {"ms": "ms", "mv": "mV"})
    values["a"] = f"{p.a!r} /ms"
    values["b"] = f"{p.b!r} /ms"
    values["d"] = f"{p.d!r} mV/ms"
    return Model.from_equations(
        """
        dv/dt = (0.04/ms/mV) * v**2 + (5/ms) * v + 140*mV/ms - u + i_ext + ge + gi : mV (unless refractory)
        du/dt = a * (b * v - u) : mV/ms
        dge/dt = -ge / tau_exc : mV/ms
        dgi/dt = -gi / tau_inh : mV/ms
        """,
        parameters=values, threshold="v > v_peak", reset="v = c; u += d", refractory="t_ref",
        input_unit="mV/ms", init={"v": "c", "u": "b * c"}, name="eq_izhikevich")


def hh(params: HH | None = None) -> Model:
    """Traub-Miles Hodgkin-Huxley as in Brian2's COBAHH (exponential Euler, exact decays)."""
    values = _values(params or HH(), {"ms": "ms", "mv": "mV", "um2": "um2", "uf_per_cm2": "uF/cm2",
                         "s_per_cm2": "S/cm2", "ms_per_cm2": "mS/cm2"})
    return Model.from_equations(
        """
        dv/dt = (g_leak * area * (e_leak - v) + ge * (e_exc - v) + gi * (e_inh - v) - g_na * area * m**3 * h * (v - e_na) - g_kd * area * n**4 * (v - e_k) + i_ext) / (c_mem * area) : mV
        dm/dt = alpha_m * (1 - m) - beta_m * m : 1
        dh/dt = alpha_h * (1 - h) - beta_h * h : 1
        dn/dt = alpha_n * (1 - n) - beta_n * n : 1
        dge/dt = -ge / tau_exc : nS
        dgi/dt = -gi / tau_inh : nS
        alpha_m = 0.32 * 4 / exprel((13*mV - v + v_t) / (4*mV)) / ms : 1/ms
        beta_m = 0.28 * 5 / exprel((v - v_t - 40*mV) / (5*mV)) / ms : 1/ms
        alpha_h = 0.128 * exp((17*mV - v + v_t) / (18*mV)) / ms : 1/ms
        beta_h = 4 / (1 + exp((40*mV - v + v_t) / (5*mV))) / ms : 1/ms
        alpha_n = 0.032 * 5 / exprel((15*mV - v + v_t) / (5*mV)) / ms : 1/ms
        beta_n = 0.5 * exp((10*mV - v + v_t) / (40*mV)) / ms : 1/ms
        """,
        parameters=values,
        threshold="v > v_thresh", refractory="t_ref", input_unit="pA", name="eq_hh")


#: Built-in model name -> its equation twin's factory.
EQUATION_MODELS = {"lif": lif, "cond_lif": cond_lif, "adex": adex, "izhikevich": izhikevich, "hh": hh}
