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

import logging
import math

import numpy as np

from biosim.errors import BiosimError, unknown
from biosim.network.compile import _check_fits, _initial, _model_constants, _per_element, _refractory_steps
from biosim.network import snapshot as _snapshot
from biosim.network.connect import AllToAll
from biosim.network.parts import Current, InputGroup, PoissonInput, Population, Projection, StateProbe
from biosim.neurons import spec_for
from biosim.synapses.stdp import STDP

_log = logging.getLogger(__name__)  # warnings for the user; the CLI shows them on stderr

__all__ = ["Network"]

_DTYPES = {"float32": np.float32, "float64": np.float64}


def _check_positive_value(what: str, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise BiosimError(f"{what} = {value!r} must be a number")
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise BiosimError(f"{what} = {value!r} is out of range (must be {'>= 0' if allow_zero else '> 0'})")


def _check_numbers_in(what: str, value, allow_function: bool = True) -> None:
    """A :class:`BiosimError` naming ``what`` unless ``value`` is a number, an array of numbers or
    (where ``allow_function``) a function ``f(rng, n)``: a string, None or a bool is refused here, not
    deep inside NumPy."""
    if allow_function and callable(value):
        return
    try:
        kind = np.asarray(value).dtype.kind
    except (TypeError, ValueError):
        kind = "O"
    if isinstance(value, (bool, np.bool_)) or kind not in "iuf":
        also = ", an array of them or f(rng, n)" if allow_function else " or an array of them"
        raise BiosimError(f"{what} = {value!r} must be a number{also}")


def _warn_slow_step(dt_ms: float, params, population: str, warned: set) -> None:
    """Log a warning (once per network and parameter, kept in ``warned``) when the step ``dt_ms`` is longer than the shortest time
    constant (a ``tau*_ms`` field) of the population's parameters: that variable then changes by more
    than it would in a whole time constant within one step, and the results mean little."""
    import dataclasses

    if not dataclasses.is_dataclass(params):
        return
    taus = [(getattr(params, f.name), f.name) for f in dataclasses.fields(params)
            if f.name.startswith("tau") and f.name.endswith("_ms")]
    taus = [(v, n) for v, n in taus if isinstance(v, (int, float)) and v > 0]
    if taus and dt_ms > min(taus)[0]:
        tau, field = min(taus)
        if (type(params).__name__, field, tau) in warned:
            return
        warned.add((type(params).__name__, field, tau))
        _log.warning(f"warning: dt_ms = {dt_ms:g} is longer than {type(params).__name__}.{field} = {tau:g} of "
                     f"population '{population}'; the results may mean little (use dt_ms <= {tau:g}, ideally "
                     f"a tenth of it)")


def _fitting_row(c: np.ndarray, table: np.ndarray, where: str) -> np.ndarray:
    """``c`` padded with zeros to a row of ``table`` (constants of one population or projection)."""
    if len(c) > table.shape[1]:  # pragma: no cover - a model's constants have a fixed length
        raise BiosimError(f"{where}: the new parameters give {len(c)} constants, the compiled network has "
                          f"room for {table.shape[1]}")
    row = np.zeros(table.shape[1], dtype=np.float64)
    row[:len(c)] = c
    return row


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
            raise unknown("dtype", dtype, _DTYPES)
        self.dt_ms = float(dt_ms)
        self.dtype = _DTYPES[dtype]
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise BiosimError(f"Network seed = {seed!r} must be a whole number >= 0")
        self.seed = int(seed)
        self._warned: set = set()  # the warnings given for this network (each is given once)
        # connectivity and initial values: the first child of the seed's SeedSequence (the random
        # inputs are counter-based, keyed by the seed itself: biosim.backends.philox)
        build_seq = np.random.SeedSequence(self.seed).spawn(2)[0]
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
        _warn_slow_step(self.dt_ms, params, name, self._warned)
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise BiosimError(f"population '{name}' size n = {n!r} must be a positive integer")
        for var in init or {}:
            spec.var_index(var)
        self._claim(name)
        pop = Population(name, params, spec, int(n), dict(init or {}), record_spikes, len(self.populations))
        self.populations.append(pop)
        return pop

    def _poisson_rates(self, name: str, n: int, rate_hz) -> np.ndarray:
        """``rate_hz`` (scalar or one per source) as ``n`` float64 rates, checked."""
        _check_numbers_in(f"Poisson group '{name}' rate_hz", rate_hz, allow_function=False)
        rates = _per_element(rate_hz, n, lambda: f"Poisson group '{name}' rate_hz = {rate_hz!r} must be a number or "
                             f"an array of them (Hz)", f"Poisson group '{name}' needs one rate or {n} rates, got an "
                             f"array of shape {{shape}}").copy()
        if not np.all(np.isfinite(rates)) or np.any(rates < 0):
            raise BiosimError(f"Poisson group '{name}' rates must be finite and >= 0 Hz")
        if np.any(rates * self.dt_ms * 1e-3 > 1):
            raise BiosimError(f"Poisson group '{name}' rate above 1/dt = {1e3 / self.dt_ms:g} Hz")
        return rates

    def poisson_group(self, name: str, n: int, rate_hz) -> InputGroup:
        """Add ``n`` Poisson spike sources with rate ``rate_hz`` (scalar or one per source); change
        the rates later with :meth:`set_rates`."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
            raise BiosimError(f"Poisson group '{name}' size n = {n!r} must be a positive integer")
        rates = self._poisson_rates(name, int(n), rate_hz)
        self._claim(name)
        group = InputGroup(name, "poisson", int(n), rates_hz=rates)
        self.inputs.append(group)
        return group

    def spike_generator(self, name: str, n: int, indices, times_ms) -> InputGroup:
        """Add ``n`` sources that spike at the given ``times_ms`` (source ``indices[k]`` at ``times_ms[k]``)."""
        indices = np.array(indices, dtype=np.int64).ravel()  # copies: the caller's arrays stay theirs
        times = np.array(times_ms, dtype=np.float64).ravel()
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
                    raise unknown(f"variable of synapse model '{model.name}'", key, syn_spec.var_names)
            weight = 0.0
        else:
            if var is None or weight is None:
                raise BiosimError("connect needs the target variable and a weight (or a synapse model)")
            if init:
                raise BiosimError("init= sets a synapse model's variables; this connection has none")
            tgt.spec.var_index(var)
            _check_numbers_in("weight", weight)
        _check_numbers_in("delay_ms", delay_ms)
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
        _check_numbers_in("poisson_input weight", weight, allow_function=False)
        if isinstance(n_sources, bool) or not isinstance(n_sources, (int, np.integer)):
            raise BiosimError(f"poisson_input n_sources = {n_sources!r} must be a whole number")
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
        _check_numbers_in("current amplitude", amplitude, allow_function=False)
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
        of its variable ``var``; for a projection built with one weight, that weight, kept once, for
        each synapse). Available once the network has run."""
        if self._sim is None:
            raise BiosimError("synapses are drawn when the network first runs; call run() first")
        if proj not in self.projections:
            raise BiosimError("this projection does not belong to this network")
        return proj.i, proj.j, self._get_synapse_values(self._sim.plan, proj, var)

    def set_weights(self, proj: Projection, values, var: str = "w") -> None:
        """Give the synapses of ``proj`` new weights (for a synapse model, new values of its
        variable ``var``), from the next step run: ``values`` is one number, one per synapse (in
        the order of :meth:`weights`) or ``f(rng, n_syn)``.

        A projection built with one number as its weight (no STDP) keeps that weight once for all
        its synapses: it takes one new value (the same for all), and refuses different ones.

        Raises
        ------
        BiosimError
            Before the first run (``run(0)`` lays the network out), for a projection of another
            network, values of the wrong count, not finite or out of the state dtype's range, or
            different values for a projection built with one weight.
        """
        self._own(proj, "projection", "set_weights")
        plan = self._plan_or_error("set_weights")
        what = f"set_weights values of {proj.src.name} -> {proj.tgt.name}"
        arr = _initial(values, self.rng, proj.n_syn, what, plan.X.dtype)
        self._put_synapse_values(plan, proj, var, arr, "set_weights")

    # --- between runs ---------------------------------------------------------------------
    # These change a network that has run without rebuilding or recompiling it: they write into the
    # arrays of its plan in place, so the next run() continues with the same compiled kernel.
    def _own(self, thing, kind: str, caller: str):
        """Raise unless ``thing`` is a ``kind`` (population, projection, input group) of this network."""
        types = {"population": Population, "projection": Projection, "input group": InputGroup}
        members = {"population": self.populations, "projection": self.projections, "input group": self.inputs}
        if not isinstance(thing, types[kind]):
            raise BiosimError(f"{caller} needs a {kind} of this network, got {type(thing).__name__}")
        if not any(thing is x for x in members[kind]):
            raise BiosimError(f"{caller}: this {kind} belongs to another network")

    def set_params(self, target: Population | Projection, params) -> None:
        """Give a population's neurons, or a projection's synapse model, new parameters.

        Before the first run this only replaces the stored parameters. After it, the plan's
        constants (``C[p]`` and the refractory steps ``pop_ref[p]`` of a population, ``pr_c[r]`` of a
        synapse model, ``st_c[z]`` of built-in STDP) are recomputed in place with the checks of
        compilation, and take effect from the next step run; nothing is rebuilt or recompiled, and
        the state (``v``, traces, weights, a refractory period under way) is kept. This is how
        plasticity is switched off (a learning rate set to 0) or an adaptive threshold frozen.

        Parameters
        ----------
        target : Population or Projection
            A population of this network, or one of its projections made with ``synapse=`` (a
            :class:`biosim.SynapseModel`) or ``stdp=`` (:class:`biosim.STDP`).
        params : parameters
            An instance of the parameter class of the target's model: e.g. ``LIF(...)`` for a LIF
            population, ``model(...)`` for a population of an equation model ``model`` (the model
            itself stands for its default parameters, as in :meth:`population`), ``syn(...)`` for
            a projection of synapse model ``syn``, ``STDP(...)`` for a projection with built-in STDP.

        Raises
        ------
        BiosimError
            For a target that is not part of this network, parameters of another class, or
            parameters whose constants are unusable at this ``dt_ms`` (a time constant of 0...).
        """
        plan = self._sim.plan if self._sim is not None else None
        if isinstance(target, Population):
            self._own(target, "population", "set_params")
            spec = target.spec
            if getattr(params, "spec", None) is spec and callable(params):  # an equation model itself
                params = params()
            if type(params) is not spec.params_cls:
                raise BiosimError(f"set_params: population '{target.name}' (model '{spec.name}') needs "
                                  f"{spec.params_cls.__name__} parameters, got {type(params).__name__}")
            if plan is not None:
                where = f"population '{target.name}'"
                c = _model_constants(spec, params, self.dt_ms, where)
                ref = _refractory_steps(spec, params, self.dt_ms, where)
                _check_fits(c, plan.C.dtype, f"{where}: the constants of the new parameters")
                row = _fitting_row(c, plan.C, where)
                plan.C[target.index] = row
                plan.pop_ref[target.index] = ref
            target.params = params
            return
        if not isinstance(target, Projection):
            raise BiosimError(f"set_params needs a population or a projection of this network, got {type(target).__name__}")
        self._own(target, "projection", "set_params")
        r = self._projection_index(target)
        what = f"the synapses {target.src.name} -> {target.tgt.name}"
        if target.syn_spec is not None:
            spec = target.syn_spec
            if type(params) is not spec.params_cls:
                raise BiosimError(f"set_params: {what} (synapse model '{spec.name}') need "
                                  f"{spec.params_cls.__name__} parameters, got {type(params).__name__}")
            if plan is not None:
                c = _model_constants(spec, params, self.dt_ms, what)
                plan.pr_c[r] = _fitting_row(c, plan.pr_c, what)
            target.synapse = params
        elif target.stdp is not None:
            if type(params) is not STDP:
                raise BiosimError(f"set_params: {what} learn with STDP and need STDP parameters, "
                                  f"got {type(params).__name__}")
            if plan is not None:
                z = int(plan.pr_stdp[r])
                plan.st_c[z] = params.constants(self.dt_ms)
            target.stdp = params
        else:
            raise BiosimError(f"set_params: {what} have fixed weights and no parameters (no synapse model, "
                              f"no STDP); set their weights with set_weights() or their sum with normalize()")

    def set_rates(self, group: InputGroup, rate_hz) -> None:
        """New rates for a Poisson group: ``rate_hz`` in Hz, a scalar or one per source (checked as
        in :meth:`poisson_group`). They apply from the next step run.

        Source ``k`` of the group spikes at step ``s`` when a uniform number that depends only on
        (seed, group, ``s``, ``k``) is below ``rate_k * dt`` (:mod:`biosim.backends.philox`), so
        the spikes at a step do not depend on the rates at other steps; sources with rate 0 are
        not drawn (a silent group costs nothing).
        """
        if not isinstance(group, InputGroup):
            raise BiosimError(f"set_rates needs a Poisson group of this network, got {type(group).__name__}")
        self._own(group, "input group", "set_rates")
        if group.kind != "poisson":
            raise BiosimError(f"set_rates: '{group.name}' is a spike generator, not a Poisson group")
        group.rates_hz = self._poisson_rates(group.name, group.n, rate_hz)

    def _plan_or_error(self, what: str):
        if self._sim is None:
            raise BiosimError(f"{what}: the network is laid out when it first runs; call run() first "
                              f"(run(0) lays it out without simulating)")
        return self._sim.plan

    def normalize(self, proj: Projection, total, var: str = "w") -> None:
        """Scale the synapses of ``proj`` so that, for each target neuron, its incoming values of
        ``var`` sum to ``total`` (Diehl & Cook's weight normalisation; column sums of the weight
        matrix). Targets whose values sum to 0 (or that have no synapses) are left alone.

        Parameters
        ----------
        proj : Projection
            A projection of this network that has run (call ``run(0)`` first to only lay it out).
        total : float or array of shape (n_target,)
            The wanted sum, the same for every target or one per target neuron.
        var : str
            A variable of the projection's synapse model; for a projection without one, its
            weights ``"w"``.
        """
        self._own(proj, "projection", "normalize")
        plan = self._plan_or_error("normalize")
        v = self._get_synapse_values(plan, proj, var).astype(np.float64)
        n_tgt = proj.tgt.n
        shape_msg = f"normalize total must be one finite number or {n_tgt} of them (one per target neuron)"
        tot = _per_element(total, n_tgt, lambda: f"normalize total = {total!r} must be a number or one per target neuron",
                           shape_msg)
        if not np.all(np.isfinite(tot)):
            raise BiosimError(shape_msg)
        j = proj.j
        sums = np.bincount(j, weights=v, minlength=n_tgt)
        nonzero = sums != 0
        factor = np.ones(n_tgt)
        factor[nonzero] = tot[nonzero] / sums[nonzero]
        new = v * factor[j]
        if not np.all(np.isfinite(new)):
            raise BiosimError(f"normalize: scaling {var} to sum {total} gives non-finite values")
        _check_fits(new, plan.X.dtype, f"normalize: {var} scaled to sum {total}")
        self._put_synapse_values(plan, proj, var, new, "normalize")

    def _projection_index(self, proj: Projection) -> int:
        """Index of ``proj`` among this network's projections (its row in the plan's ``pr_*``)."""
        return next(k for k, p in enumerate(self.projections) if p is proj)

    def _synapse_values(self, plan, proj: Projection, var: str):
        """``(array, start)``: the plan's row holding ``var`` of each synapse of ``proj`` (a row of
        ``S``, or ``w``) and the first synapse's place in it; ``(None, r)`` for the weights of a
        projection ``r`` built with one weight (kept once, in ``plan.pr_w[r]``)."""
        r = self._projection_index(proj)
        if proj.syn_spec is not None:
            if var not in proj.syn_spec.var_names:
                raise unknown(f"variable of synapse model '{proj.syn_spec.name}'", var, proj.syn_spec.var_names)
            return plan.S[proj.syn_spec.var_names.index(var)], int(plan.indptr[plan.pr_ptr[r]])
        if var != "w":
            raise unknown(f"variable of the synapses {proj.src.name} -> {proj.tgt.name} (no synapse model)", var, ["w"])
        if plan.pr_woff[r] < 0:
            return None, r
        return plan.w, int(plan.pr_woff[r])

    def _get_synapse_values(self, plan, proj: Projection, var: str) -> np.ndarray:
        """A copy of ``var`` of each synapse of ``proj`` (in its synapse order), in the state dtype."""
        row, start = self._synapse_values(plan, proj, var)
        if row is None:
            return np.full(proj.n_syn, plan.pr_w[start], dtype=plan.pr_w.dtype)
        return row[start:start + proj.n_syn].copy()

    def _put_synapse_values(self, plan, proj: Projection, var: str, values: np.ndarray, caller: str) -> None:
        """Write ``values`` (one per synapse, checked) as ``var`` of the synapses of ``proj``; a
        :class:`BiosimError` for different weights in a projection built with one weight."""
        row, start = self._synapse_values(plan, proj, var)
        if row is not None:
            row[start:start + proj.n_syn] = values
            return
        vals = np.asarray(values).astype(plan.pr_w.dtype)
        if len(vals) == 0:
            return
        if np.any(vals != vals[0]):
            raise BiosimError(
                f"{caller}: the synapses {proj.src.name} -> {proj.tgt.name} were built with one weight "
                f"({float(plan.pr_w[start]):g}), kept once for all of them, so they cannot take different weights; "
                f"to set them one by one, connect them with a weight per synapse, e.g. "
                f"weight=lambda rng, n: np.full(n, {float(plan.pr_w[start]):g})")
        plan.pr_w[start] = vals[0]

    def set_state(self, pop: Population, var: str, values) -> None:
        """Set state variable ``var`` of every neuron of ``pop`` (e.g. reset ``v`` between inputs).

        ``values`` is a scalar, one value per neuron or ``f(rng, n)``. Before the first run this
        sets the variable's initial value (as ``init=`` of :meth:`population` does); after it, the
        state in the plan, from the next step run. Nothing else changes (synaptic conductances,
        refractory periods under way, delayed spikes in flight).
        """
        self._own(pop, "population", "set_state")
        row = pop.spec.var_index(var)
        what = f"set_state value of {pop.name}.{var}"
        if self._sim is None:
            if not callable(values):
                _initial(values, None, pop.n, what, self.dtype)
            pop.init[var] = values
            return
        plan = self._sim.plan
        arr = _initial(values, self.rng, pop.n, what, plan.X.dtype)
        plan.X[row, plan.pop_off[pop.index]:plan.pop_off[pop.index + 1]] = arr

    def state(self, pop: Population, var: str) -> np.ndarray:
        """A copy of state variable ``var`` of the neurons of ``pop`` now, shape ``(pop.n,)``
        (after the first run)."""
        self._own(pop, "population", "state")
        row = pop.spec.var_index(var)
        plan = self._plan_or_error("state")
        return plan.X[row, plan.pop_off[pop.index]:plan.pop_off[pop.index + 1]].copy()

    def snapshot(self):
        """The network's whole dynamic state now (a :class:`~biosim.network.snapshot.Snapshot`):
        state, weights, traces, spikes in flight, the clock and the Poisson rates. Save it
        with :func:`biosim.network.snapshot.save`; :meth:`restore` continues from it exactly."""
        return _snapshot.take(self)

    def restore(self, snap) -> None:
        """Continue from ``snap`` (taken by :meth:`snapshot` of a network built the same way): the
        next run gives what the snapshot's network would have given. Call ``run(0)`` first."""
        _snapshot.put(self, snap)

    def run(self, duration_ms: float, backend: str | None = None, progress: bool = False, threads: int | None = None):
        """Simulate ``duration_ms`` more milliseconds; returns a :class:`~biosim.network.simulate.Result`.

        The first call builds the synapses and compiles the network for ``backend`` (default
        ``"numba-cpu"``; ``run(0)`` does only that); later calls continue from where the last one
        stopped, on the same backend (``backend`` may be left out), without rebuilding or
        recompiling anything: a short run costs the steps it simulates and some tens of
        microseconds. ``threads`` (numba-cpu only; default 1, or what the last run used) splits
        each step over that many threads, with the same spikes and states as one thread.
        """
        from biosim.network.simulate import Simulation

        _check_positive_value("duration_ms", duration_ms, allow_zero=True)
        if self._sim is None:
            if not self.populations:
                raise BiosimError("the network has no populations")
            self._sim = Simulation(self, backend or "numba-cpu", 1 if threads is None else threads)
        elif backend is not None and backend != self._sim.backend_name:
            raise BiosimError(f"this network runs on '{self._sim.backend_name}'; it cannot switch to '{backend}'")
        elif threads is not None:
            self._sim.set_threads(threads)
        return self._sim.run(duration_ms, progress=progress)
