"""Builders of the reference networks of DESIGN.md section 5 (CUBA, Brunel 2000).

Each builder takes the run's config (a mapping; see ``models/<name>.toml`` for the keys and
defaults) and a seed, and returns a ready :class:`~biosim.network.Network`. The populations are
named so that metrics and plots can find them; every builder records spikes of all neurons.
"""

from __future__ import annotations

from collections.abc import Mapping

from biosim.experiments.config import get, params_from
from biosim.network import FixedProbability, Network
from biosim.neurons import LIF

__all__ = ["build_cuba", "build_brunel", "BRUNEL_PANELS"]


def build_cuba(cfg: Mapping, seed: int) -> Network:
    """Brian2's CUBA example: ``n_exc`` + ``n_inh`` current-based LIF neurons, connection
    probability ``p_connect``, weights ``we_mv``/``wi_mv``, no delay; ``v0 = Vr + U*(Vt - Vr)``."""
    net = Network(dt_ms=get(cfg, "dt_ms", positive=True), dtype=get(cfg, "dtype", str, choices=("float32", "float64")), seed=seed)
    params = params_from(LIF, cfg.get("neuron"), "neuron")
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
