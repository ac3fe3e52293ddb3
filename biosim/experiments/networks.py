"""Builders of the reference networks of DESIGN.md section 5 (CUBA, Brunel 2000), and a generic
E/I network of a user's neuron model (``population``).

Each builder takes the run's config (a mapping; see ``models/<name>.toml`` for the keys and
defaults) and a seed, and returns a ready :class:`~biosim.network.Network`. The populations are
named so that metrics and plots can find them; every builder records spikes of all neurons.
Builders with a ``model`` argument accept a neuron model written as equations (a
:class:`~biosim.equations.Model`, from a run's ``[model]`` table) in place of their built-in one;
the ``neuron`` table of the config then holds that model's parameter fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields

from biosim.errors import BiosimError
from biosim.experiments.config import get, params_from
from biosim.network import FixedProbability, Network
from biosim.neurons import LIF

__all__ = ["build_cuba", "build_brunel", "build_population", "BRUNEL_PANELS", "POPULATION_INPUTS"]


def _model_params(model, cfg: Mapping, builder: str, needs: Sequence[str] = ()):
    """The parameters of ``model`` (built-in ``LIF`` when None) from ``cfg["neuron"]``; ``needs``
    names the fields the builder reads."""
    if model is None:
        return params_from(LIF, cfg.get("neuron"), "neuron")
    params = params_from(model.params_cls, cfg.get("neuron"), "neuron")
    missing = [f for f in needs if not hasattr(params, f)]
    if missing:
        raise BiosimError(f"builder '{builder}' reads the neuron parameters {', '.join(missing)}, which model "
                          f"'{model.name}' lacks (its fields: {', '.join(f.name for f in fields(params))})")
    return params


def build_cuba(cfg: Mapping, seed: int, model=None) -> Network:
    """Brian2's CUBA example: ``n_exc`` + ``n_inh`` current-based LIF neurons, connection
    probability ``p_connect``, weights ``we_mv``/``wi_mv``, no delay; ``v0 = Vr + U*(Vt - Vr)``.

    ``model`` (optional, a :class:`~biosim.equations.Model`) replaces the built-in LIF; it needs
    variables ``v``, ``ge``, ``gi`` and parameters ``v_reset``, ``v_thresh`` in mV."""
    net = Network(dt_ms=get(cfg, "dt_ms", positive=True), dtype=get(cfg, "dtype", str, choices=("float32", "float64")), seed=seed)
    params = _model_params(model, cfg, "cuba", needs=("v_reset_mv", "v_thresh_mv"))
    p = get(cfg, "p_connect", low=0.0, high=1.0)
    v0 = lambda rng, n: params.v_reset_mv + rng.random(n) * (params.v_thresh_mv - params.v_reset_mv)  # noqa: E731
    exc = net.population("exc", params, get(cfg, "n_exc", int, low=1), init={"v": v0})
    inh = net.population("inh", params, get(cfg, "n_inh", int, low=1), init={"v": v0})
    for src, var, w in ((exc, "ge", get(cfg, "we_mv")), (inh, "gi", get(cfg, "wi_mv"))):
        for tgt in (exc, inh):
            net.connect(src, tgt, var, weight=w, rule=FixedProbability(p=p))
    return net


#: Brunel (2000) panels: (g, nu_ext / nu_thr).
BRUNEL_PANELS = {"A": (3.0, 2.0), "B": (6.0, 4.0), "C": (5.0, 2.0), "D": (4.5, 0.9)}


def build_brunel(cfg: Mapping, seed: int) -> Network:
    """Brunel (2000) sparse network of delta-synapse LIF neurons (J added to ``v``), delay ``delay_ms``,
    each neuron driven by ``C_E`` external Poisson sources at ``nu_ext = ratio * theta / (J C_E tau)``."""
    net = Network(dt_ms=get(cfg, "dt_ms", positive=True), dtype=get(cfg, "dtype", str, choices=("float32", "float64")), seed=seed)
    panel = get(cfg, "panel", str, choices=tuple(BRUNEL_PANELS))
    g, ratio = BRUNEL_PANELS[panel]
    g = get(cfg, "g", low=0.0) or g  # 0: the panel's (so a sweep can span the phase diagram)
    ratio = get(cfg, "nu_ext_ratio", low=0.0) or ratio
    n_e, n_i = get(cfg, "n_exc", int, low=1), get(cfg, "n_inh", int, low=1)
    eps = get(cfg, "epsilon", low=0.0, high=1.0)
    tau, theta = get(cfg, "tau_ms", positive=True), get(cfg, "theta_mv")
    j = get(cfg, "j_mv")
    params = LIF(tau_mem_ms=tau, v_rest_mv=0.0, v_thresh_mv=theta, v_reset_mv=get(cfg, "v_reset_mv"),
                 t_ref_ms=get(cfg, "t_ref_ms", low=0.0))
    c_e = max(1, int(eps * n_e))
    nu_ext_hz = ratio * theta / (j * c_e * tau) * 1e3
    exc = net.population("exc", params, n_e, init={"v": 0.0})
    inh = net.population("inh", params, n_i, init={"v": 0.0})
    delay = get(cfg, "delay_ms", low=0.0)
    for src, w in ((exc, j), (inh, -g * j)):
        for tgt in (exc, inh):
            net.connect(src, tgt, "v", weight=w, rule=FixedProbability(p=eps), delay_ms=delay)
    for tgt in (exc, inh):
        net.poisson_input(tgt, "v", n_sources=c_e, rate_hz=nu_ext_hz, weight=j)
    return net


#: the external drive of :func:`build_population`
POPULATION_INPUTS = ("poisson", "current", "none")


def build_population(cfg: Mapping, seed: int, model=None) -> Network:
    """A random E/I network of a user's neuron model (the run's ``[model]`` table).

    ``n_exc`` + ``n_inh`` neurons of ``model``, every pair connected with probability
    ``p_connect`` and no delay: an excitatory spike adds ``w_exc`` to the variable ``exc_var`` of
    its targets, an inhibitory one ``w_inh`` to ``inh_var`` (weights in that variable's unit).
    Initial values are the model's (its ``[model.init]``). The drive is chosen by ``input``:

    - ``"poisson"``: each neuron gets ``poisson_sources`` independent Poisson sources at
      ``poisson_rate_hz``, each spike adding ``poisson_weight`` to ``poisson_var``;
    - ``"current"``: a constant input ``current`` (in the model's ``input_unit``) into its ``i_ext``;
    - ``"none"``: no external drive.

    Populations ``"exc"`` and ``"inh"``, spikes of every neuron recorded.
    """
    if model is None:
        raise BiosimError("builder 'population' needs a neuron model: add a [model] table to the run's TOML file")
    net = Network(dt_ms=get(cfg, "dt_ms", positive=True), dtype=get(cfg, "dtype", str, choices=("float32", "float64")), seed=seed)
    params = _model_params(model, cfg, "population")
    p = get(cfg, "p_connect", low=0.0, high=1.0)
    exc = net.population("exc", params, get(cfg, "n_exc", int, low=1))
    inh = net.population("inh", params, get(cfg, "n_inh", int, low=1))
    for src, var, w in ((exc, get(cfg, "exc_var", str), get(cfg, "w_exc")),
                        (inh, get(cfg, "inh_var", str), get(cfg, "w_inh"))):
        for tgt in (exc, inh):
            net.connect(src, tgt, var, weight=w, rule=FixedProbability(p=p))
    drive = get(cfg, "input", str, choices=POPULATION_INPUTS)
    for tgt in (exc, inh):
        if drive == "poisson":
            net.poisson_input(tgt, get(cfg, "poisson_var", str), n_sources=get(cfg, "poisson_sources", int, low=0),
                              rate_hz=get(cfg, "poisson_rate_hz", low=0.0), weight=get(cfg, "poisson_weight"))
        elif drive == "current":
            net.current(tgt, get(cfg, "current"))
    return net
