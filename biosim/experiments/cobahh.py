"""Builder of Brian2's COBAHH reference network (DESIGN.md section 5).

``n_exc`` + ``n_inh`` Traub-Miles Hodgkin-Huxley neurons (:class:`~biosim.neurons.HH`), every
pair connected with probability ``p_connect``; an excitatory spike adds ``we_ns`` to ``ge`` and an
inhibitory one ``wi_ns`` to ``gi`` of its targets, without delay. Initial values as in Brian2's
``examples/COBAHH.py``: ``v = e_leak + (randn() * 5 - 5)`` mV, ``ge = (randn() * 1.5 + 4) * 10`` nS,
``gi = (randn() * 12 + 20) * 10`` nS and the gates ``m = h = n = 0`` (Brian2's default, which the
example keeps).
"""

from __future__ import annotations

from collections.abc import Mapping

from biosim.errors import BiosimError
from biosim.experiments.config import get, params_from
from biosim.network import FixedProbability, Network
from biosim.neurons import HH

__all__ = ["build_cobahh"]


def build_cobahh(cfg: Mapping, seed: int, model=None) -> Network:
    """Brian2's COBAHH example as a :class:`~biosim.network.Network`.

    Parameters
    ----------
    cfg : mapping
        The run's ``[params]`` (see ``models/cobahh.toml``): ``dt_ms``, ``dtype``, ``n_exc``,
        ``n_inh``, ``p_connect``, ``we_ns``, ``wi_ns`` and an optional ``neuron`` table of
        :class:`~biosim.neurons.HH` fields.
    seed : int
        Seeds connectivity and initial values.
    model : biosim.equations.Model, optional
        A neuron model written as equations in place of :class:`~biosim.neurons.HH` (e.g.
        :func:`biosim.equations.library.hh`, or a run's ``[model]`` table); it needs the variables
        ``v``, ``m``, ``h``, ``n``, ``ge``, ``gi`` and the parameter ``e_leak`` in mV, and ``cfg``'s
        ``neuron`` table holds its parameter fields.

    Returns
    -------
    Network
        Populations ``"exc"`` and ``"inh"``, spikes of every neuron recorded.
    """
    net = Network(dt_ms=get(cfg, "dt_ms", positive=True), dtype=get(cfg, "dtype", str, choices=("float32", "float64")), seed=seed)
    params = params_from(HH if model is None else model.params_cls, cfg.get("neuron"), "neuron")
    if not hasattr(params, "e_leak_mv"):
        raise BiosimError(f"builder 'cobahh' reads the neuron parameter e_leak_mv, which model '{model.name}' lacks")
    p = get(cfg, "p_connect", low=0.0, high=1.0)
    we, wi = get(cfg, "we_ns", low=0.0), get(cfg, "wi_ns", low=0.0)
    init = {
        "v": lambda rng, n: params.e_leak_mv + (rng.standard_normal(n) * 5.0 - 5.0),
        "m": 0.0, "h": 0.0, "n": 0.0,
        "ge": lambda rng, n: (rng.standard_normal(n) * 1.5 + 4.0) * 10.0,
        "gi": lambda rng, n: (rng.standard_normal(n) * 12.0 + 20.0) * 10.0,
    }
    exc = net.population("exc", params, get(cfg, "n_exc", int, low=1), init=init)
    inh = net.population("inh", params, get(cfg, "n_inh", int, low=1), init=init)
    for src, var, w in ((exc, "ge", we), (inh, "gi", wi)):
        for tgt in (exc, inh):
            net.connect(src, tgt, var, weight=w, rule=FixedProbability(p=p))
    return net
