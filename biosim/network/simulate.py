"""Run a compiled network chunk by chunk: draw inputs, call the backend, collect spikes and traces,
show progress, and stop with a clear message when a state variable stops being finite."""

from __future__ import annotations

import gc
import math
import time

import numpy as np

from biosim._numba_load import load_cached
from biosim.backends import get_backend
from biosim.backends.numba_cpu import BUFFER_FULL, NOT_FINITE
from biosim.backends.philox import POISSON_GROUP, POISSON_INPUT, bernoulli_events, binomial_block, key_of_seed, stream_id
from biosim.backends.plan import ChunkInput, Outputs
from biosim.errors import BiosimError, SimulationError
from biosim.network.compile import compile_network, model_specs, synapse_specs

__all__ = ["Simulation", "Result", "generator_steps"]

_CHUNK_BYTES = 32 * 2**20


def generator_steps(times_ms, dt_ms) -> np.ndarray:
    """The step in which a spike generator emits a spike at ``times_ms``: the step whose interval
    ``[s*dt, (s+1)*dt)`` holds the time, with a tolerance of ``1e-3*dt`` for times on the grid
    (Brian2's ``SpikeGeneratorGroup`` binning)."""
    return ((np.asarray(times_ms, dtype=np.float64) + 1e-3 * dt_ms) / dt_ms).astype(np.int64)


class Result:
    """What a run recorded, from the start of the network's first run.

    ``spikes`` and ``states`` are assembled when first read (a result nobody reads costs nothing,
    however long the network has run); :meth:`spikes_since` reads only the recent spikes.

    Attributes
    ----------
    spikes : dict name -> (times_ms, indices)
        Spike times (ms, the step's start ``t``) and neuron indices within the population.
    states : dict (name, var) -> (times_ms, values)
        ``values`` has shape ``(n_times, n_recorded)``.
    duration_ms, dt_ms : float
        Simulated time from the first run to the end of this one; the step.
    start_ms : float
        Simulated time at which the ``run`` call that returned this result began.
    sizes : dict name -> number of neurons
    setup_s, loop_s : float
        Wall seconds spent building (including compiling) and stepping.
    """

    def __init__(self, spikes: dict | None = None, states: dict | None = None, duration_ms: float = 0.0,
                 dt_ms: float = 0.0, sizes: dict | None = None, setup_s: float = 0.0, loop_s: float = 0.0,
                 extra: dict | None = None, start_ms: float = 0.0, record: _Record | None = None):
        self._spikes, self._states, self._record = spikes, states, record
        self.duration_ms, self.dt_ms, self.start_ms = duration_ms, dt_ms, start_ms
        self.sizes = dict(sizes or {})
        self.setup_s, self.loop_s = setup_s, loop_s
        self.extra = {} if extra is None else extra

    @property
    def spikes(self) -> dict:
        if self._spikes is None:
            self._spikes = self._record.spikes(0)
        return self._spikes

    @spikes.setter
    def spikes(self, value: dict):
        self._spikes = value

    @property
    def states(self) -> dict:
        if self._states is None:
            self._states = self._record.states()
        return self._states

    @states.setter
    def states(self, value: dict):
        self._states = value

    def spikes_since(self, t_ms: float) -> dict:
        """Spikes at times ``>= t_ms``, as :attr:`spikes`; it costs in proportion to those spikes
        only (e.g. ``result.spikes_since(result.start_ms)`` for the spikes of this ``run`` call)."""
        if self._record is None:
            return {k: (t[t >= t_ms], i[t >= t_ms]) for k, (t, i) in self.spikes.items()}
        return self._record.spikes(t_ms)

    def states_since(self, t_ms: float) -> dict:
        """States recorded at times ``>= t_ms``, as :attr:`states`; it costs in proportion to those
        records only (e.g. ``result.states_since(result.start_ms)`` for the states of this ``run``
        call: the state at the start of each of its steps)."""
        rec = self._record
        if rec is None:
            return {k: (t[t >= t_ms], v[t >= t_ms]) for k, (t, v) in self.states.items()}
        if not rec.probes:
            return {}
        every = rec.probes[0][3]
        first = max(int(math.floor(t_ms / (every * rec.dt))) - 1, 0)
        while first * every * rec.dt < t_ms:
            first += 1
        # one record per step s < (steps run) with s % every == 0, in the parts of the run's chunks
        row = -(-int(round(self.duration_ms / rec.dt)) // every)
        k = rec.n_parts
        while k > 0 and row > first:
            k -= 1
            row -= len(rec.rec_parts[k])
        parts = rec.rec_parts[k:rec.n_parts]
        data = np.concatenate(parts) if parts else np.zeros((0, rec.n_mon), dtype=np.float64)
        data = data[max(first - row, 0):]
        times = (max(first, row) + np.arange(len(data))) * every * rec.dt
        out, col = {}, 0
        for name, var, n, _ in rec.probes:
            out[(name, var)] = (times, data[:, col:col + n])
            col += n
        return out

    def __repr__(self):
        return (f"Result(duration_ms={self.duration_ms:g}, dt_ms={self.dt_ms:g}, start_ms={self.start_ms:g}, "
                f"sizes={self.sizes})")


class _Record:
    """A view of a simulation's recordings as they were at the end of one ``run`` call: the spike
    buffers only grow (spikes are appended in step order), so their first ``sp_n`` entries and the
    first ``n_parts`` recorded chunks never change afterwards."""

    def __init__(self, sim: Simulation):
        net = sim.net
        self.sp_step, self.sp_idx, self.sp_n = sim.sp_step, sim.sp_idx, sim.sp_n
        self.rec_parts, self.n_parts = sim.rec_parts, len(sim.rec_parts)
        self.dt = net.dt_ms
        self.pops = [(p.name, int(sim.plan.pop_off[p.index]), int(sim.plan.pop_off[p.index + 1])) for p in net.populations]
        self.probes = [(p.pop.name, p.var, len(p.indices), p.every) for p in net.probes]
        self.n_mon = len(sim.plan.mon_row)

    def spikes(self, t_ms: float) -> dict:
        steps = self.sp_step[:self.sp_n]
        first = 0
        if t_ms > 0:
            s0 = max(int(math.floor(t_ms / self.dt)) - 1, 0)
            while s0 * self.dt < t_ms:
                s0 += 1
            first = int(np.searchsorted(steps, s0, side="left"))
        steps, idx = steps[first:], self.sp_idx[first:self.sp_n].astype(np.int64)
        out = {}
        for name, a, b in self.pops:
            sel = (idx >= a) & (idx < b)
            out[name] = (steps[sel] * self.dt, idx[sel] - a)
        return out

    def states(self) -> dict:
        states = {}
        if self.probes:
            parts = self.rec_parts[:self.n_parts]
            rec = np.concatenate(parts) if parts else np.zeros((0, self.n_mon))
            times = np.arange(len(rec)) * self.probes[0][3] * self.dt
            col = 0
            for name, var, k, _ in self.probes:
                states[(name, var)] = (times, rec[:, col:col + k])
                col += k
        return states


def _ready(fn, *args) -> None:
    """Call ``fn(*args)`` once, to compile it or load it from Numba's cache outside the timed loop
    (loaded by :func:`biosim._numba_load.load_cached` first when it can be)."""
    load_cached(fn, args)
    fn(*args)


def check_threads(threads, backend, backend_name: str) -> int:
    """``threads`` as an int, checked: at least 1, at most Numba's pool, and 1 on a backend without
    threaded kernels."""
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise BiosimError(f"threads must be a whole number, got {threads!r}")
    threads = int(threads)
    most = backend.MAX_THREADS() if hasattr(backend, "MAX_THREADS") else 1
    if threads < 1:
        raise BiosimError(f"threads must be at least 1, got {threads}")
    if threads > 1 and most == 1:
        raise BiosimError(f"the {backend_name} backend runs on one thread; threads = {threads} needs numba-cpu")
    if threads > most:
        raise BiosimError(f"threads = {threads} is more than this machine's {most} (Numba's NUMBA_NUM_THREADS)")
    return threads


class Simulation:
    """Owns a network's plan and its backend's kernel for the network's models (``specs``);
    :meth:`run` advances it."""

    def __init__(self, net, backend_name: str, threads: int = 1):
        self.backend = get_backend(backend_name)
        self.threads = check_threads(threads, self.backend, backend_name)
        self.backend_name = backend_name
        self.net = net
        t0 = time.perf_counter()
        self._plan = compile_network(net)
        self.specs = model_specs(net)
        self.syn_specs = synapse_specs(net)
        self.loop_s = 0.0
        # Random inputs are counter-based (biosim.backends.philox): the number of a source or
        # target at a step is a function of (seed, the input's stream, step, index) alone, so the
        # draws do not depend on how the run is cut into chunks or calls, and there is no state.
        self.key = key_of_seed(net.seed)
        self.streams = {g.index: stream_id(POISSON_GROUP, k) for k, g in enumerate(net.inputs) if g.kind == "poisson"}
        self.pi_streams = [stream_id(POISSON_INPUT, k) for k in range(len(net.poisson_inputs))]
        self.step = 0
        self.sp_step = np.zeros(max(4 * self._plan.X.shape[1], 1 << 16), dtype=np.int64)
        self.sp_idx = np.zeros_like(self.sp_step, dtype=np.int32)
        self.sp_n = 0
        self.rec_parts: list[np.ndarray] = []
        gens = [g for g in net.inputs if g.kind == "generator"]
        self.gen_steps = {g.index: (generator_steps(g.times_ms, net.dt_ms), g.indices) for g in gens}
        self.change_steps = sorted({s for c in net.currents for s in (self._to_step(c.start_ms), self._to_step(c.stop_ms))})
        # Widest row of random input per step (Poisson inputs' counts or a Poisson group's sources);
        # the chunk length keeps a chunk's inputs within _CHUNK_BYTES.
        self.n_counts = int(self._plan.pi_col[-1]) + net.poisson_inputs[-1].tgt.n if net.poisson_inputs else 0
        n_cols = max(self.n_counts, sum(g.n for g in net.inputs if g.kind == "poisson"), 1)
        self.max_chunk = min(max(1, _CHUNK_BYTES // (8 * n_cols)), 2000)
        t1 = time.perf_counter()
        self._load_kernel()
        self._compile_input_draws()
        self.compile_s = time.perf_counter() - t1
        self.setup_s = time.perf_counter() - t0

    def _load_kernel(self):
        """The backend's kernel for the network's models (and thread count), compiled or loaded
        from the cache outside the timed loop (by :func:`biosim._numba_load.load_cached` first
        when it can be: a new process's start is then about 0.5 s shorter)."""
        extra = {"threads": self.threads} if self.threads != 1 else {}
        run_chunk = self.backend.kernel(self.specs, self.syn_specs, **extra)
        empty = np.zeros(0, np.int64)
        args = (self._plan, ChunkInput(np.zeros(1, np.int64), empty, empty, np.zeros((0, 0), np.int32)),
                Outputs(self.sp_step, self.sp_idx, np.zeros((0, 0), self._plan.X.dtype)), 0, 0, 0, 0)
        inner = getattr(run_chunk, "dispatcher", None)  # numba-cpu on threads: the kernel it calls
        if inner is None:
            load_cached(run_chunk, args)
        else:
            load_cached(inner, (*args, run_chunk.threads))
        self.run_chunk = run_chunk
        self.run_chunk(*args)

    def set_threads(self, threads: int) -> None:
        """Run the next steps on ``threads`` threads (the same results, whatever the number)."""
        threads = check_threads(threads, self.backend, self.backend_name)
        if threads != self.threads:
            self.threads = threads
            self._load_kernel()

    @property
    def plan(self):
        """The network's plan, current on the host, for reading or changing it there: a backend
        that keeps the plan elsewhere between calls (numba-cuda: on the GPU) brings its changes
        home first and takes the host's copy again at the next call."""
        to_host = getattr(self.backend, "to_host", None)
        if to_host is not None:
            to_host(self._plan)
            self.backend.host_changed(self._plan)
        return self._plan

    def _compile_input_draws(self):
        """Compile (or load from Numba's cache) the draws of the network's random inputs, for the
        argument types :meth:`_inputs` passes, so that it happens outside the timed loop."""
        k0, k1 = self.key
        if self.streams:
            _ready(bernoulli_events, k0, k1, 0, 0, 1, np.zeros(1, np.int64), np.zeros(1, np.float64))
        if self.net.poisson_inputs:
            wide = np.zeros((2, 3), np.int32)
            _ready(binomial_block, k0, k1, 0, 0, 1, 0.5, wide)  # one input: its columns are all of counts
            _ready(binomial_block, k0, k1, 0, 0, 1, 0.5, wide[:, 1:2])  # several: a strided block

    def _to_step(self, t_ms):
        return int(round(t_ms / self.net.dt_ms)) if math.isfinite(t_ms) else 2**62

    def _chunk_len(self, remaining: int) -> int:
        n = min(remaining, self.max_chunk)
        later = [s for s in self.change_steps if s > self.step]
        return min(n, later[0] - self.step) if later else n

    def _inputs(self, n: int) -> ChunkInput:
        net, s0 = self.net, self.step
        p = 1e-3 * net.dt_ms
        steps, srcs, grps = [], [], []
        for g in net.inputs:
            off = self._plan.grp_off[g.index]
            if g.kind == "poisson":
                st, idx = self._poisson_spikes(g, n, p)
            else:
                gs, gi = self.gen_steps[g.index]
                sel = (gs >= s0) & (gs < s0 + n)
                st, idx = gs[sel] - s0, gi[sel]
            steps.append(st)
            srcs.append(idx + off)
            grps.append(np.full(len(st), g.index))
        if steps:
            st, src, grp = (np.concatenate(x).astype(np.int64) for x in (steps, srcs, grps))
            order = np.lexsort((src, grp, st))
            st, src, grp = st[order], src[order], grp[order]
        else:
            st = src = grp = np.zeros(0, np.int64)
        ptr = np.searchsorted(st, np.arange(n + 1)).astype(np.int64)
        counts = np.zeros((n, self.n_counts), np.int32)
        for k, q in enumerate(net.poisson_inputs):
            # target j of input q at step s: Binomial(n_sources, rate*dt) from uniform(seed, stream, s, j)
            if q.n_sources > 0 and q.rate_hz > 0:
                col = int(self._plan.pi_col[k])
                binomial_block(self.key[0], self.key[1], self.pi_streams[k], s0, q.n_sources, q.rate_hz * p,
                               counts[:, col:col + q.tgt.n])
        return ChunkInput(ptr, src, grp, counts)

    def _poisson_spikes(self, g, n: int, p: float):
        """``(steps, sources)`` of Poisson group ``g`` over the next ``n`` steps: source ``k`` spikes
        at step ``s`` when ``uniform(seed, stream of g, s, k) < rate_k * dt``. Only sources with a
        rate above 0 are drawn (a silent group or an image's dark pixels cost nothing)."""
        thr = g.rates_hz * p
        active = np.flatnonzero(thr)
        if len(active) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return bernoulli_events(self.key[0], self.key[1], self.streams[g.index], self.step, n, active, thr[active])

    def _set_currents(self):
        if not self.net.currents:  # i_ext stays at the zeros it was compiled with
            return
        i_ext = np.zeros(self._plan.X.shape[1])
        off = self._plan.pop_off
        for c in self.net.currents:
            if self._to_step(c.start_ms) <= self.step < self._to_step(c.stop_ms):
                i_ext[off[c.tgt.index]:off[c.tgt.index + 1]] += c.amplitude
        self._plan.i_ext[:] = i_ext
        host_changed = getattr(self.backend, "host_changed", None)
        if host_changed is not None:
            host_changed(self._plan, ("i_ext",))

    def run(self, duration_ms: float, progress: bool = False) -> Result:
        net = self.net
        n_total = int(round(duration_ms / net.dt_ms))
        start = self.step
        end = self.step + n_total
        M = len(self._plan.mon_row)
        bar = None
        if progress:
            from tqdm import tqdm
            # counts whole steps (shown as biological seconds through unit_scale): the count never
            # passes the total, as float sums of seconds could, so the time left is never negative
            bar = tqdm(total=n_total, unit="s", unit_scale=net.dt_ms * 1e-3, desc="simulating (bio time)",
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.3f}/{total:.3f} s [{elapsed}<{remaining}, {rate_fmt}]")
        gc_was_on = gc.isenabled()
        gc.disable()  # the loop makes few objects: no collector pauses between chunks (about 3 % of COBAHH's loop)
        t_start = time.perf_counter()
        try:
            while self.step < end:
                n = self._chunk_len(end - self.step)
                self._set_currents()
                inp = self._inputs(n)
                every = self._plan.mon_every
                n_rec = (self.step + n - 1) // every - (self.step - 1) // every if M else 0
                rec = np.zeros((n_rec, M), dtype=self._plan.X.dtype)
                done_total, rec_n = 0, 0
                while done_total < n:
                    out = Outputs(self.sp_step, self.sp_idx, rec)
                    sub = ChunkInput(inp.in_ptr[done_total:] - inp.in_ptr[done_total], inp.in_src[inp.in_ptr[done_total]:],
                                     inp.in_grp[inp.in_ptr[done_total]:], inp.counts[done_total:])
                    status, done, self.sp_n, rec_n, ep, er, ei = self.run_chunk(
                        self._plan, sub, out, self.step, n - done_total, self.sp_n, rec_n)
                    self.step += done
                    done_total += done
                    if status == BUFFER_FULL:
                        self.sp_step = np.concatenate([self.sp_step, np.zeros_like(self.sp_step)])
                        self.sp_idx = np.concatenate([self.sp_idx, np.zeros_like(self.sp_idx)])
                    elif status == NOT_FINITE:
                        self._raise_not_finite(ep, er, ei)
                self.rec_parts.append(rec[:rec_n])
                if bar is not None:
                    bar.update(n)
        finally:
            self.loop_s += time.perf_counter() - t_start
            if gc_was_on:
                gc.enable()
            if bar is not None:
                bar.close()
        return self.result(start)

    def _raise_not_finite(self, p, r, i):
        pop = self.net.populations[p]
        var = pop.spec.var_names[r]
        s = self.step - 1
        value = self.plan.X[r, i]
        raise SimulationError(
            f"{var} of population '{pop.name}' became {value} (neuron {i - self._plan.pop_off[p]}) "
            f"at step {s} (t = {s * self.net.dt_ms:g} ms); try a smaller dt_ms or check the parameters")

    def result(self, start_step: int = 0) -> Result:
        """What has been recorded so far (see :class:`Result`); ``start_step`` is where the run
        call that asks began."""
        net = self.net
        return Result(duration_ms=self.step * net.dt_ms, dt_ms=net.dt_ms, sizes={p.name: p.n for p in net.populations},
                      setup_s=self.setup_s, loop_s=self.loop_s, start_ms=start_step * net.dt_ms, record=_Record(self))
