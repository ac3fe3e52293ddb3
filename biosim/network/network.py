"""Build a network: populations, inputs, projections, monitors; then run it.

Example
-------
>>> from biosim import Network, LIF, FixedProbability
>>> net = Network(dt_ms=0.1, seed=1)
>>> exc = net.population("exc", LIF(), 80, init={"v": -55.0})
>>> net.connect(exc, exc, "ge", weight=1.6, rule=FixedProbability(p=0.1))  # doctest: +SKIP
>>> result = net.run(100.0)                                                  # doctest: +SKIP
"""

from __future__ import annotations

import math

import numpy as np

from biosim.errors import BiosimError
from biosim.network.connect import AllToAll
from biosim.network.parts import Current, InputGroup, PoissonInput, Population, Projection, StateProbe
from biosim.neurons import spec_for
from biosim.synapses.stdp import STDP

__all__ = ["Network"]

_DTYPES = {"float32": np.float32, "float64": np.float64}


def _check_positive_value(what: str, value, allow_zero=False):
    ok = isinstance(value, (int, float, np.number)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise BiosimError(f"{what} = {value!r} is out of range (must be {'>= 0' if allow_zero else '> 0'})")


class Network:
    """A clock-driven network of point neurons.

    Parameters
    ----------
    dt_ms : float
        Time step in ms.
    dtype : {"float64", "float32"}
        Precision of state and weights.
    seed : int
        Seeds connectivity, initial values and every random input: same seed, same spikes.
    """

    def __init__(self, dt_ms: float = 0.1, dtype: str = "float64", seed: int = 0):
        _check_positive_value("dt_ms", dt_ms)
        if dtype not in _DTYPES:
            from biosim.errors import unknown
            raise unknown("dtype", dtype, _DTYPES)
        self.dt_ms = float(dt_ms)
        self.dtype = _DTYPES[dtype]
        self.seed = int(seed)
        build_seq, self._input_seq = np.random.SeedSequence(self.seed).spawn(2)
        self.rng = np.random.default_rng(build_seq)
        self.populations: list[Population] = []
        self.inputs: list[InputGroup] = []
        self.projections: list[Projection] = []
        self.poisson_inputs: list[PoissonInput] = []
        self.currents: list[Current] = []
        self.probes: list[StateProbe] = []
        self._names: set[str] = set()
        self._sim = None

    # --- building -------------------------------------------------------------------------
    def _claim(self, name: str):
        if self._sim is not None:
            raise BiosimError("the network has already run; build a new Network to change its structure")
        if name in self._names:
            raise BiosimError(f"a group named '{name}' already exists")
        self._names.add(name)

    def population(self, name: str, params, n: int, init: dict | None = None, record_spikes: bool = True) -> Population:
        """Add ``n`` neurons with parameters ``params`` (e.g. :class:`biosim.LIF`, or ``model(...)`` of a
        :class:`biosim.Model`; the model itself stands for its default parameters)."""
        if hasattr(params, "params_cls") and hasattr(params, "spec") and callable(params):
            params = params()
        spec = spec_for(params)
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise BiosimError(f"population '{name}' size n = {n!r} must be a positive integer")
        for var in init or {}:
            spec.var_index(var)
        self._claim(name)
        pop = Population(name, params, spec, int(n), dict(init or {}), record_spikes, len(self.populations))
        self.populations.append(pop)
        return pop

    def poisson_group(self, name: str, n: int, rate_hz) -> InputGroup:
        """Add ``n`` Poisson spike sources with rate ``rate_hz`` (scalar or one per source)."""
        rates = np.broadcast_to(np.asarray(rate_hz, dtype=np.float64), (int(n),)).copy()
        if not np.all(np.isfinite(rates)) or np.any(rates < 0):
            raise BiosimError(f"Poisson group '{name}' rates must be finite and >= 0 Hz")
        if np.any(rates * self.dt_ms * 1e-3 > 1):
            raise BiosimError(f"Poisson group '{name}' rate above 1/dt = {1e3 / self.dt_ms:g} Hz")
        self._claim(name)
        group = InputGroup(name, "poisson", int(n), rates_hz=rates)
        self.inputs.append(group)
        return group

    def spike_generator(self, name: str, n: int, indices, times_ms) -> InputGroup:
        """Add ``n`` sources that spike at the given ``times_ms`` (source ``indices[k]`` at ``times_ms[k]``)."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        times = np.asarray(times_ms, dtype=np.float64).ravel()
        if indices.shape != times.shape:
            raise BiosimError(f"spike generator '{name}': {len(indices)} indices but {len(times)} times")
        if len(indices) and (indices.min() < 0 or indices.max() >= n):
            raise BiosimError(f"spike generator '{name}': indices must lie in 0..{n - 1}")
        if not np.all(np.isfinite(times)) or np.any(times < 0):
            raise BiosimError(f"spike generator '{name}': times must be finite and >= 0 ms")
        from biosim.network.simulate import generator_steps

        steps = generator_steps(times, self.dt_ms)
        pairs = np.unique(np.stack([indices, steps]), axis=1)
        if pairs.shape[1] < len(indices):
            raise BiosimError(f"spike generator '{name}': a source spikes twice in the same step of "
                              f"dt_ms = {self.dt_ms:g} (at most one spike per source and step)")
        self._claim(name)
        group = InputGroup(name, "generator", int(n), indices=indices, times_ms=times)
        self.inputs.append(group)
        return group

    def connect(self, src, tgt: Population, var: str | None = None, weight=None, rule=None, delay_ms=0.0,
                stdp: STDP | None = None, synapse=None, init: dict | None = None) -> Projection:
        """Connect ``src`` to ``tgt``: each spike adds ``weight`` to ``var`` of the targets, or runs
        the statements of a synapse model.

        ``weight``, ``delay_ms`` and the values of ``init`` are scalars, per-synapse arrays (in the
        rule's synapse order) or ``f(rng, n_syn)``; ``rule`` defaults to
        :class:`~biosim.network.connect.AllToAll`. ``synapse`` is the parameters of a
        :class:`biosim.equations.SynapseModel` (``model(...)``); its per-synapse variables start at
        ``init`` (default 0), and ``var``/``weight``/``stdp`` are not used with it.
        """
        if not isinstance(tgt, Population):
            raise BiosimError("synapses must target a population of neurons")
        if src not in self.populations and src not in self.inputs:
            raise BiosimError("the source of a connection must belong to this network")
        syn_spec, syn_init = None, dict(init or {})
        if synapse is not None:
            model = getattr(type(synapse), "_biosim_synapse_model", None)
            if model is None:
                raise BiosimError("synapse must be the parameters of a biosim.equations.SynapseModel, e.g. model()")
            if var is not None or weight is not None or stdp is not None:
                raise BiosimError("with a synapse model, give its variables' values as init={...}, "
                                  "not var/weight/stdp")
            syn_spec = model.bind(tgt.spec, src.spec if isinstance(src, Population) else None)
            for key in syn_init:
                if key not in syn_spec.var_names:
                    from biosim.errors import unknown
                    raise unknown(f"variable of synapse model '{model.name}'", key, syn_spec.var_names)
            weight = 0.0
        else:
            if var is None or weight is None:
                raise BiosimError("connect needs the target variable and a weight (or a synapse model)")
            if init:
                raise BiosimError("init= sets a synapse model's variables; this connection has none")
            tgt.spec.var_index(var)
        if stdp is not None and not isinstance(stdp, STDP):
            raise BiosimError("stdp must be a biosim.STDP")
        if self._sim is not None:
            raise BiosimError("the network has already run; build a new Network to change its structure")
        proj = Projection(src, tgt, var, rule or AllToAll(), weight, delay_ms, stdp, synapse, syn_spec, syn_init)
        self.projections.append(proj)
        return proj

    def poisson_input(self, tgt: Population, var: str, n_sources: int, rate_hz: float, weight: float) -> PoissonInput:
        """Drive every neuron of ``tgt`` with ``n_sources`` independent Poisson sources."""
        tgt.spec.var_index(var)
        _check_positive_value("poisson_input rate_hz", rate_hz, allow_zero=True)
        if int(n_sources) < 0:
            raise BiosimError(f"poisson_input n_sources = {n_sources} must be >= 0")
        if rate_hz * self.dt_ms * 1e-3 > 1:
            raise BiosimError(f"poisson_input rate_hz = {rate_hz} is above 1/dt = {1e3 / self.dt_ms:g} Hz")
        item = PoissonInput(tgt, var, int(n_sources), float(rate_hz), float(weight))
        self.poisson_inputs.append(item)
        return item

    def current(self, tgt: Population, amplitude, start_ms: float = 0.0, stop_ms: float = math.inf) -> Current:
        """Inject a constant (or step, with ``start_ms``/``stop_ms``) input into ``tgt``, in the unit
        of its model's external input (``ModelSpec.current_unit``)."""
        if not isinstance(tgt, Population):
            raise BiosimError("current() needs a population of this network")
        if not tgt.spec.current_unit:
            raise BiosimError(f"model '{tgt.spec.name}' of population '{tgt.name}' has no external input "
                              f"(its equations do not use i_ext), so a current would have no effect")
        amp = np.broadcast_to(np.asarray(amplitude, dtype=np.float64), (tgt.n,)).copy()
        if not np.all(np.isfinite(amp)):
            raise BiosimError("current amplitude must be finite")
        if not start_ms < stop_ms:
            raise BiosimError(f"current start_ms = {start_ms} must be before stop_ms = {stop_ms}")
        item = Current(tgt, amp, float(start_ms), float(stop_ms))
        self.currents.append(item)
        return item

    def monitor(self, pop: Population, var: str, indices=None, every: int = 1) -> StateProbe:
        """Record ``var`` of neurons ``indices`` (default: all) of ``pop`` every ``every`` steps."""
        pop.spec.var_index(var)
        idx = np.arange(pop.n) if indices is None else np.asarray(indices, dtype=np.int64).ravel()
        if len(idx) and (idx.min() < 0 or idx.max() >= pop.n):
            raise BiosimError(f"monitor indices must lie in 0..{pop.n - 1} for population '{pop.name}'")
        if int(every) < 1:
            raise BiosimError(f"monitor every = {every} must be >= 1")
        if self.probes and int(every) != self.probes[0].every:
            raise BiosimError("all state monitors of a network share one 'every'")
        probe = StateProbe(pop, var, idx, int(every))
        self.probes.append(probe)
        return probe

    # --- running --------------------------------------------------------------------------
    @property
    def n_neurons(self) -> int:
        return sum(p.n for p in self.populations)

    def weights(self, proj: Projection, var: str = "w") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(i, j, w)`` of ``proj`` now (after any plasticity): source index, target index and
        weight of each synapse, in the projection's synapse order (for a synapse model, the values
        of its variable ``var``). Available once the network has run."""
        if self._sim is None:
            raise BiosimError("synapses are drawn when the network first runs; call run() first")
        if proj not in self.projections:
            raise BiosimError("this projection does not belong to this network")
        plan = self._sim.plan
        r = self.projections.index(proj)
        start = plan.indptr[plan.pr_ptr[r]]
        if proj.syn_spec is not None:
            if var not in proj.syn_spec.var_names:
                from biosim.errors import unknown
                raise unknown(f"variable of synapse model '{proj.syn_spec.name}'", var, proj.syn_spec.var_names)
            w = plan.S[proj.syn_spec.var_names.index(var), start:start + len(proj.i)].copy()
        else:
            w = plan.w[start:start + len(proj.i)].copy()
        return proj.i.copy(), proj.j.copy(), w

    def run(self, duration_ms: float, backend: str = "numba-cpu", progress: bool = False):
        """Simulate ``duration_ms`` more milliseconds; returns a :class:`~biosim.network.simulate.Result`.

        The first call builds the synapses and compiles the network; later calls continue from
        where the last one stopped.
        """
        from biosim.network.simulate import Simulation

        _check_positive_value("duration_ms", duration_ms, allow_zero=True)
        if self._sim is None:
            if not self.populations:
                raise BiosimError("the network has no populations")
            self._sim = Simulation(self, backend)
        elif backend != self._sim.backend_name:
            raise BiosimError(f"this network runs on '{self._sim.backend_name}'; it cannot switch to '{backend}'")
        return self._sim.run(duration_ms, progress=progress)
