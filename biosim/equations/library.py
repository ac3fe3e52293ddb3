"""The built-in neuron models written as equations, and the models of Diehl & Cook (2015).

Each of :func:`lif`, :func:`cond_lif`, :func:`adex`, :func:`izhikevich` and :func:`hh` returns
the :class:`~biosim.equations.Model` that integrates like the built-in model of the same name
(the tests check they spike identically), with the built-in's parameter values as defaults. They
double as examples of the equation syntax, and ``biosim bench cuba --model equations`` runs CUBA
on :func:`lif`.

:func:`diehl_cook_exc`, :func:`diehl_cook_inh` and :func:`diehl_cook_stdp` are the neuron and
synapse models of Diehl & Cook (2015), "Unsupervised learning of digit recognition using
spike-timing-dependent plasticity" (DESIGN.md section 5), written after their published Brian
code (``Diehl_Cook_spiking_MNIST.py``); tests/equations/test_diehl_cook.py checks a small learning network
on them against the same network in Brian2 (spikes, weights and thresholds).
"""

from __future__ import annotations

import dataclasses

from biosim.equations.model import Model
from biosim.equations.synapses import SynapseModel
from biosim.errors import BiosimError
from biosim.neurons.adex import AdEx
from biosim.neurons.hh import HH
from biosim.neurons.izhikevich import Izhikevich
from biosim.neurons.lif import LIF, CondLIF
from biosim.synapses.stdp import STDP

__all__ = ["pair_stdp", "lif", "cond_lif", "adex", "izhikevich", "hh", "EQUATION_MODELS",
           "diehl_cook_exc", "diehl_cook_inh", "diehl_cook_stdp"]


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


# ------------------------------------------------------------------------------------------------
# Diehl & Cook (2015)
# ------------------------------------------------------------------------------------------------
# Both neuron types of D&C's code: a conductance-based LIF whose conductances ge, gi are
# dimensionless (in units of the leak conductance: I_synE = ge * nS * (0 mV - v), divided by nS in
# dv/dt), so the weights of the synapses onto them are dimensionless too.
_DC_EQUATIONS = """
dv/dt = ((v_rest - v) + ge * (e_exc - v) + gi * (e_inh - v)) / tau_mem : mV (unless refractory)
dge/dt = -ge / tau_ge : 1
dgi/dt = -gi / tau_gi : 1
"""


def _dc_name(base: str, method: str | None) -> str:
    return base if method == "euler" else f"{base}_{method or 'auto'}"


def diehl_cook_exc(method: str | None = "euler") -> Model:
    """Diehl & Cook (2015)'s excitatory neuron: conductance-based LIF with an adaptive threshold.

    ``v > v_thresh + theta - theta_offset`` fires; the reset ``v = v_reset; theta += theta_plus``
    raises the threshold by ``theta_plus`` (0.05 mV) per spike, and ``theta`` decays with
    ``tau_theta`` (1e7 ms, 0.01 % per second). ``theta_plus_mv=0`` freezes the thresholds as D&C
    do at test time (their test mode also drops the decay: negligible over a test run).
    Parameters (DESIGN.md section 5): tau_mem 100 ms, v_rest = v_reset = -65 mV,
    v_thresh -52 mV, theta_offset 20 mV, theta starts at ``theta_init`` (20 mV), refractory 5 ms,
    tau_ge 1 ms, tau_gi 2 ms, e_exc 0 mV, e_inh -100 mV.

    Choices where DESIGN.md is silent, after D&C's code:

    * ``method="euler"`` (default): D&C's Brian 1 code integrates this non-linear system (ge * v)
      by forward Euler, and so does Brian2 by default (``exact`` does not apply, ``euler`` is the
      next in its list) -- at dt = 0.5 ms this is what produced the published numbers.
      ``method=None`` lets biosim choose (exact decays, exponential Euler for ``v``: more accurate,
      and spike for spike Brian2's ``exponential_euler``);
    * ``v`` starts at ``v_rest - 40 mV`` (D&C: ``neuron_groups['e'].v = v_rest_e - 40. * b.mV``);
      pass ``init={"v": ...}`` to the population to start elsewhere;
    * D&C's threshold also requires ``timer > refrac_e``, with ``dtimer/dt = 100`` reset to 0 by a
      spike: the timer passes 5 ms 0.05 ms after the spike, within the 5 ms refractory period
      (which holds v at v_reset, below threshold), so it never decides a spike and is left out;
    * refractoriness is Brian2's (DESIGN.md section 4): ``v`` is held, ``ge``, ``gi`` and
      ``theta`` evolve and take synaptic input meanwhile (D&C's Brian 1 refractoriness clamps only
      v).
    """
    return Model.from_equations(
        _DC_EQUATIONS + "dtheta/dt = -theta / tau_theta : mV\n",
        parameters={"tau_mem": "100 ms", "v_rest": "-65 mV", "v_reset": "-65 mV", "v_thresh": "-52 mV",
                    "theta_offset": "20 mV", "theta_plus": "0.05 mV", "theta_init": "20 mV",
                    "tau_theta": "1e7 ms", "tau_ge": "1 ms", "tau_gi": "2 ms", "e_exc": "0 mV",
                    "e_inh": "-100 mV", "t_ref": "5 ms"},
        threshold="v > v_thresh + theta - theta_offset", reset="v = v_reset; theta += theta_plus",
        refractory="t_ref", method=method, init={"v": "v_rest - 40*mV", "theta": "theta_init"},
        name=_dc_name("diehl_cook_exc", method))


def diehl_cook_inh(method: str | None = "euler") -> Model:
    """Diehl & Cook (2015)'s inhibitory neuron: the same conductance-based LIF without adaptation.

    tau_mem 10 ms, v_rest -60 mV, v_reset -45 mV, threshold -40 mV, refractory 2 ms (DESIGN.md
    section 5); tau_ge 1 ms, tau_gi 2 ms, e_exc 0 mV and e_inh -85 mV as in D&C's code.
    ``method`` and the start at ``v_rest - 40 mV`` as in :func:`diehl_cook_exc`.
    """
    return Model.from_equations(
        _DC_EQUATIONS,
        parameters={"tau_mem": "10 ms", "v_rest": "-60 mV", "v_reset": "-45 mV", "v_thresh": "-40 mV",
                    "tau_ge": "1 ms", "tau_gi": "2 ms", "e_exc": "0 mV", "e_inh": "-85 mV", "t_ref": "2 ms"},
        threshold="v > v_thresh", reset="v = v_reset", refractory="t_ref", method=method,
        init={"v": "v_rest - 40*mV"}, name=_dc_name("diehl_cook_inh", method))


def diehl_cook_stdp() -> SynapseModel:
    """Diehl & Cook (2015)'s input -> excitatory synapse: triplet-style STDP on a dimensionless ``w``.

    A presynaptic spike adds ``w`` to the target's ``ge``, sets the trace ``pre`` to 1 and
    depresses ``w`` by ``nu_pre * post1``; a postsynaptic spike potentiates ``w`` by
    ``nu_post * pre * post2``, with ``post2`` sampled before it is set to 1 (D&C's
    ``post2before``; here the order of the statements does it), then sets ``post1`` and ``post2``
    to 1. ``w`` stays in [0, w_max]. Traces decay with 20 ms (pre), 20 ms (post1), 40 ms (post2).
    nu_pre 1e-4, nu_post 1e-2, w_max 1 (DESIGN.md section 5); ``nu_pre=0, nu_post=0`` turns
    learning off.

    After D&C's code (``eqs_stdp_pre_ee = 'pre = 1.; w -= nu_ee_pre * post1'``,
    ``eqs_stdp_post_ee = 'post2before = post2; w += nu_ee_post * pre * post2before; post1 = 1.;
    post2 = 1.'``): the traces are *set* to 1 on a spike, not incremented (DESIGN.md's summary
    does not say which), and the clip to [0, w_max] after each change is Brian 1's STDP ``wmin``/
    ``wmax`` (the Brian2 ports write it as ``clip``). The weight is added to ``ge`` before it is
    depressed, as in the Brian2 ports' ``on_pre = 'ge_post += w; ' + eqs_stdp_pre_ee``. D&C give
    these synapses random delays of 0-10 ms; biosim has one delay per projection (``delay_ms``).
    """
    return SynapseModel.from_equations(
        """
        w : 1
        dpre/dt = -pre / tau_pre : 1 (event-driven)
        dpost1/dt = -post1 / tau_post1 : 1 (event-driven)
        dpost2/dt = -post2 / tau_post2 : 1 (event-driven)
        """,
        on_pre="ge += w; pre = 1; w = clip(w - nu_pre * post1, 0, w_max)",
        on_post="w = clip(w + nu_post * pre * post2, 0, w_max); post1 = 1; post2 = 1",
        parameters={"tau_pre": "20 ms", "tau_post1": "20 ms", "tau_post2": "40 ms", "nu_pre": "1e-4",
                    "nu_post": "1e-2", "w_max": "1"},
        name="diehl_cook_stdp")


def pair_stdp(params=None, target: str = "ge", unit: str = "mV"):
    """The built-in additive pair rule (:class:`biosim.STDP`) as a :class:`SynapseModel`: weights
    ``w`` in ``unit`` added to the target's ``target`` on each presynaptic spike (the tests check
    it gives the built-in rule's spikes and weights)."""

    p = params or STDP()
    if p.multiplicative:
        raise BiosimError("pair_stdp is the additive rule; write the multiplicative one with SynapseModel")
    return SynapseModel.from_equations(
        """
        w : {unit}
        dapre/dt = -apre / tau_pre : 1 (event-driven)
        dapost/dt = -apost / tau_post : 1 (event-driven)
        """.format(unit=unit),
        on_pre=f"{target} += w; w = clip(w - a_minus * apost, w_min, w_max); apre += 1",
        on_post="w = clip(w + a_plus * apre, w_min, w_max); apost += 1",
        parameters={"tau_pre": f"{p.tau_pre_ms!r} ms", "tau_post": f"{p.tau_post_ms!r} ms",
                    "a_plus": f"{p.a_plus!r} {unit}", "a_minus": f"{p.a_minus!r} {unit}",
                    "w_min": f"{p.w_min!r} {unit}", "w_max": f"{p.w_max!r} {unit}"},
        name=f"pair_stdp_{target}")
