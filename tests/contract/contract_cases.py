"""The models of the contract suite and the small networks the contracts run on.

A :class:`ModelCase` is one neuron model as the suite sees it: a built-in model (``"lif"``...) or
its equation twin from :data:`biosim.equations.library.EQUATION_MODELS` (``"eq_lif"``...). A twin
takes the built-in's parameter values and initial state, so every contract (and every analytic
solution) written for the built-in applies to it unchanged.

Everything here is deliberately small (tens of neurons, tens of milliseconds). Every network of
the suite is made by :func:`contract_network`, which on a compiled backend starts it with one idle
neuron of every model: the numba-cpu kernel is generated for the set of models a network uses, so
this way all the suite's networks share one kernel per dtype (compiled once, about 9 s, and cached
on disk) instead of one per model and dtype (about 4 s each, 44 s per dtype on a cold cache). The
NumPy reference compiles nothing and gets no idle neurons (they would only cost it time).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from biosim import HH, LIF, STDP, AdEx, CondLIF, FixedProbability, Izhikevich, Network
from biosim.neurons import MODELS as BUILTIN_MODELS
from biosim.neurons import LayerLIF

DT_MS = 0.1


@functools.cache
def _twin(kind: str):
    """The equation twin (a :class:`biosim.equations.Model`) of built-in model ``kind``."""
    from biosim.equations.library import EQUATION_MODELS

    return EQUATION_MODELS[kind]()


def _twin_field_names(kind: str) -> dict[str, str]:
    """Built-in field name -> the twin's (the same, or the one with the unit appended: ``a`` ->
    ``a_per_ms``)."""
    twin_fields = [f.name for f in dataclasses.fields(_twin(kind).params_cls)]
    out = {}
    for f in dataclasses.fields(BUILTIN_MODELS[kind].params_cls):
        if f.name in twin_fields:
            out[f.name] = f.name
        else:
            (match,) = [t for t in twin_fields if t.startswith(f.name + "_")]
            out[f.name] = match
    return out


@dataclass(frozen=True)
class ModelCase:
    """One model of the suite and the settings of its spiking network.

    ``exc``/``inh`` are the state variables excitatory/inhibitory weights are added to,
    ``drive`` the range of the constant input (model's current unit) across the spiking network,
    ``w_exc``/``w_inh`` the weights, ``v_range`` the range of random initial ``v`` and
    ``network_params`` the built-in parameters used in the spiking network.
    """

    name: str
    kind: str
    twin: bool
    exc: str
    inh: str
    drive: tuple[float, float]
    w_exc: float
    w_inh: float
    v_range: tuple[float, float]
    network_params: object

    @property
    def builtin_cls(self) -> type:
        return BUILTIN_MODELS[self.kind].params_cls

    @property
    def spec(self):
        return _twin(self.kind).spec if self.twin else BUILTIN_MODELS[self.kind]

    def params(self, base=None, **fields):
        """Parameters of this model with the values of the built-in parameters ``base`` (default
        the built-in defaults) changed by ``fields`` (built-in field names)."""
        builtin = dataclasses.replace(base if base is not None else self.builtin_cls(), **fields)
        if not self.twin:
            return builtin
        names = _twin_field_names(self.kind)
        return _twin(self.kind)(**{names[k]: v for k, v in dataclasses.asdict(builtin).items()})

    def builtin_of(self, params):
        """The built-in parameters ``params`` stand for (``params`` itself for a built-in)."""
        if not self.twin:
            return params
        names = _twin_field_names(self.kind)
        return self.builtin_cls(**{k: getattr(params, t) for k, t in names.items()})

    def init(self, params, **values) -> dict:
        """Initial values of every state variable: the built-in model's defaults for ``params``,
        overridden by ``values`` (a twin starts where its built-in does)."""
        return {**BUILTIN_MODELS[self.kind].initial(self.builtin_of(params)), **values}


def _cases() -> dict[str, ModelCase]:
    # name: (exc, inh, drive, w_exc, w_inh, v_range, network_params)
    table = {
        "lif": ("ge", "gi", (0.0, 5.0), 1.62, -9.0, (-60.0, -50.0), LIF()),
        "cond_lif": ("ge", "gi", (50.0, 300.0), 3.0, 20.0, (-60.0, -50.0), CondLIF()),
        "adex": ("ge", "gi", (300.0, 1200.0), 100.0, -200.0, (-70.6, -60.0), AdEx(t_ref_ms=2.0)),
        "izhikevich": ("ge", "gi", (0.0, 15.0), 3.0, -6.0, (-70.0, -60.0), Izhikevich()),
        "hh": ("ge", "gi", (0.0, 600.0), 6.0, 67.0, (-65.0, -60.0), HH()),
        "layer_lif": ("x_syn", "x_syn", (0.5, 1.5), 2.0, -2.0, (0.0, 0.5), LayerLIF.from_time_constants(DT_MS, 10.0)),
    }
    builtin = {name: dict(zip(("exc", "inh", "drive", "w_exc", "w_inh", "v_range", "network_params"), row, strict=True))
               for name, row in table.items()}
    assert set(builtin) == set(BUILTIN_MODELS), "a built-in model has no case in the contract suite"
    from biosim.equations.library import EQUATION_MODELS

    out = {name: ModelCase(name, name, False, **kw) for name, kw in builtin.items()}
    out.update({f"eq_{name}": ModelCase(f"eq_{name}", name, True, **builtin[name]) for name in EQUATION_MODELS})
    return out


#: Model name -> case: every built-in model, then every equation twin.
CASES: dict[str, ModelCase] = _cases()


def contract_network(dtype: str, backend: str, seed: int = 0, dt_ms: float = DT_MS) -> Network:
    """A new network; for a compiled ``backend`` its first populations are one idle neuron of every
    model of :data:`CASES` (named ``_<model>``, at the built-in's initial state, no input, no
    connections, spikes not recorded), so that every network of the suite runs the same compiled
    kernel (see the module docstring). They draw nothing from the network's random streams, so the
    populations a test adds get the same connectivity, initial values and input either way."""
    net = Network(dt_ms=dt_ms, dtype=dtype, seed=seed)
    if backend == "numpy":
        return net
    for name, case in CASES.items():
        params = case.params(case.network_params)
        net.population(f"_{name}", params, 1, init=case.init(params), record_spikes=False)
    return net


def spiking_network(case: ModelCase, dtype: str, backend: str, seed: int = 5, n: int = 40):
    """A population of ``case``'s model that spikes: constant inputs across ``case.drive``, random
    initial ``v``, Poisson input onto ``exc``, recurrent excitation (no delay) and inhibition (1 ms
    delay) through FixedProbability projections; ``v`` and ``exc`` of every neuron recorded.
    Returns ``(net, pop)``."""
    net = contract_network(dtype, backend, seed)
    params = case.params(case.network_params)
    lo, hi = case.v_range
    init = case.init(params, v=lambda rng, k: lo + (hi - lo) * rng.random(k))
    pop = net.population("pop", params, n, init=init)
    net.current(pop, np.linspace(*case.drive, n))
    net.poisson_input(pop, case.exc, n_sources=20, rate_hz=50.0, weight=case.w_exc)
    net.connect(pop, pop, case.exc, weight=case.w_exc, rule=FixedProbability(p=0.2))
    net.connect(pop, pop, case.inh, weight=case.w_inh, rule=FixedProbability(p=0.2), delay_ms=1.0)
    net.monitor(pop, "v")
    net.monitor(pop, case.exc)
    return net, pop


def spikes_of(result, name: str = "pop") -> tuple[np.ndarray, np.ndarray]:
    """``(steps, indices)`` of population ``name``'s spikes (steps as integers)."""
    t, i = result.spikes[name]
    return np.rint(t / result.dt_ms).astype(np.int64), np.asarray(i, dtype=np.int64)


# ------------------------------------------------------------------------------------ synapses

#: The plasticity rules of the suite: built-in STDP and its text twin (the same rule).
STDP_PARAMS = STDP(a_plus=0.1, a_minus=0.105, w_max=3.0)
SYNAPSE_MODELS = ("stdp", "pair_stdp")


@functools.cache
def pair_stdp_model():
    from biosim.equations.library import pair_stdp

    return pair_stdp(STDP_PARAMS)


def plastic_network(rule: str, dtype: str, backend: str, seed: int = 2):
    """Poisson sources onto LIF neurons through a plastic projection (``rule``: ``"stdp"`` or
    ``"pair_stdp"``), weights starting spread over ``[0, w_max]``. Returns ``(net, proj)``."""
    net = contract_network(dtype, backend, seed)
    src = net.poisson_group("src", 30, rate_hz=np.linspace(10.0, 60.0, 30))
    pop = net.population("pop", LIF(v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-50.0, t_ref_ms=2.0), 12,
                         init={"v": lambda rng, k: -65.0 + 10.0 * rng.random(k)})
    net.current(pop, np.linspace(10.0, 16.0, 12))
    def w0(rng, k):
        return STDP_PARAMS.w_max * rng.random(k)
    if rule == "stdp":
        proj = net.connect(src, pop, "ge", weight=w0, rule=FixedProbability(p=0.5), stdp=STDP_PARAMS)
    else:
        proj = net.connect(src, pop, synapse=pair_stdp_model()(), init={"w": w0}, rule=FixedProbability(p=0.5))
    return net, proj
