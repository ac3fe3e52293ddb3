"""Run a compiled network chunk by chunk: draw inputs, call the backend, collect spikes and traces,
show progress, and stop with a clear message when a state variable stops being finite."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from biosim.backends import get_backend
from biosim.backends.numba_cpu import BUFFER_FULL, NOT_FINITE
from biosim.backends.plan import ChunkInput, Outputs
from biosim.errors import SimulationError
from biosim.network.compile import compile_network, model_specs, synapse_specs

__all__ = ["Simulation", "Result", "generator_steps"]

_CHUNK_BYTES = 32 * 2**20


def generator_steps(times_ms, dt_ms) -> np.ndarray:
    """The step in which a spike generator emits a spike at ``times_ms``: the step whose interval
    ``[s*dt, (s+1)*dt)`` holds the time, with a tolerance of ``1e-3*dt`` for times on the grid
    (Brian2's ``SpikeGeneratorGroup`` binning)."""
    return ((np.asarray(times_ms, dtype=np.float64) + 1e-3 * dt_ms) / dt_ms).astype(np.int64)


@dataclass
class Result:
    """What a run recorded, from the start of the network's first run.

    Attributes
    ----------
    spikes : dict name -> (times_ms, indices)
        Spike times (ms, the step's start ``t``) and neuron indices within the population.
    states : dict (name, var) -> (times_ms, values)
        ``values`` has shape ``(n_times, n_recorded)``.
    duration_ms, dt_ms : float
    sizes : dict name -> number of neurons
    setup_s, loop_s : float
        Wall seconds spent building (including compiling) and stepping.
    """

    spikes: dict
    states: dict
    duration_ms: float
    dt_ms: float
    sizes: dict
    setup_s: float = 0.0
    loop_s: float = 0.0
    extra: dict = field(default_factory=dict)


class Simulation:
    """Owns a network's plan and its backend's kernel for the network's models (``specs``);
    :meth:`run` advances it."""

    def __init__(self, net, backend_name: str):
        self.backend = get_backend(backend_name)
        self.backend_name = backend_name
        self.net = net
        t0 = time.perf_counter()
        self.plan = compile_network(net)
        self.specs = model_specs(net)
        self.syn_specs = synapse_specs(net)
        self.loop_s = 0.0
        # One random stream per random input (Poisson groups, then Poisson inputs), each consumed
        # step after step: the draws do not depend on how the run is cut into chunks or calls.
        seq = np.random.SeedSequence(net._input_seq.entropy, spawn_key=net._input_seq.spawn_key)
        streams = iter(np.random.default_rng(s) for s in seq.spawn(len(net.inputs) + len(net.poisson_inputs)))
        self.rng_inputs = {g.index: next(streams) for g in net.inputs if g.kind == "poisson"}
        self.rng_poisson_inputs = [next(streams) for _ in net.poisson_inputs]
        self.step = 0
        self.sp_step = np.zeros(max(4 * self.plan.X.shape[1], 1 << 16), dtype=np.int64)
        self.sp_idx = np.zeros_like(self.sp_step, dtype=np.int32)
        self.sp_n = 0
        self.rec_parts: list[np.ndarray] = []
        gens = [g for g in net.inputs if g.kind == "generator"]
        self.gen_steps = {g.index: (generator_steps(g.times_ms, net.dt_ms), g.indices) for g in gens}
        self.change_steps = sorted({s for c in net.currents for s in (self._to_step(c.start_ms), self._to_step(c.stop_ms))})
        t1 = time.perf_counter()
        self.run_chunk = self.backend.kernel(self.specs, self.syn_specs)
        empty = np.zeros(0, np.int64)
        self.run_chunk(self.plan, ChunkInput(np.zeros(1, np.int64), empty, empty, np.zeros((0, 0), np.int32)), Outputs(self.sp_step, self.sp_idx, np.zeros((0, 0), self.plan.X.dtype)),
                       0, 0, 0, 0)  # compile (or load the cached kernel) outside the timed loop
        self.compile_s = time.perf_counter() - t1
        self.setup_s = time.perf_counter() - t0

    def _to_step(self, t_ms):
        return int(round(t_ms / self.net.dt_ms)) if math.isfinite(t_ms) else 2**62

    def _chunk_len(self, remaining: int) -> int:
        n_cols = max(self.plan.pi_col[-1] + self.net.poisson_inputs[-1].tgt.n if self.net.poisson_inputs else 0,
                     sum(g.n for g in self.net.inputs if g.kind == "poisson"), 1)
        n = min(remaining, max(1, _CHUNK_BYTES // (8 * n_cols)), 2000)
        later = [s for s in self.change_steps if s > self.step]
        return min(n, later[0] - self.step) if later else n

    def _inputs(self, n: int) -> ChunkInput:
        net, s0 = self.net, self.step
        p = 1e-3 * net.dt_ms
        steps, srcs, grps = [], [], []
        for g in net.inputs:
            off = self.plan.grp_off[g.index]
            if g.kind == "poisson":
                st, idx = np.nonzero(self.rng_inputs[g.index].random((n, g.n)) < g.rates_hz * p)
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
        cols = [rng.binomial(q.n_sources, q.rate_hz * p, size=(n, q.tgt.n)).astype(np.int32)
                for q, rng in zip(net.poisson_inputs, self.rng_poisson_inputs)]
        counts = np.concatenate(cols, axis=1) if cols else np.zeros((n, 0), np.int32)
        return ChunkInput(ptr, src, grp, counts)

    def _set_currents(self):
        i_ext = np.zeros(self.plan.X.shape[1])
        off = self.plan.pop_off
        for c in self.net.currents:
            if self._to_step(c.start_ms) <= self.step < self._to_step(c.stop_ms):
                i_ext[off[c.tgt.index]:off[c.tgt.index + 1]] += c.amplitude
        self.plan.i_ext[:] = i_ext

    def run(self, duration_ms: float, progress: bool = False) -> Result:
        net = self.net
        n_total = int(round(duration_ms / net.dt_ms))
        end = self.step + n_total
        M = len(self.plan.mon_row)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=round(n_total * net.dt_ms * 1e-3, 6), unit="s", desc="simulating (bio time)",
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.3f}/{total:.3f} s [{elapsed}<{remaining}, {rate_fmt}]")
        t_start = time.perf_counter()
        try:
            while self.step < end:
                n = self._chunk_len(end - self.step)
                self._set_currents()
                inp = self._inputs(n)
                every = self.plan.mon_every
                n_rec = (self.step + n - 1) // every - (self.step - 1) // every if M else 0
                rec = np.zeros((n_rec, M), dtype=self.plan.X.dtype)
                done_total, rec_n = 0, 0
                while done_total < n:
                    out = Outputs(self.sp_step, self.sp_idx, rec)
                    sub = ChunkInput(inp.in_ptr[done_total:] - inp.in_ptr[done_total], inp.in_src[inp.in_ptr[done_total]:],
                                     inp.in_grp[inp.in_ptr[done_total]:], inp.counts[done_total:])
                    status, done, self.sp_n, rec_n, ep, er, ei = self.run_chunk(
                        self.plan, sub, out, self.step, n - done_total, self.sp_n, rec_n)
                    self.step += done
                    done_total += done
                    if status == BUFFER_FULL:
                        self.sp_step = np.concatenate([self.sp_step, np.zeros_like(self.sp_step)])
                        self.sp_idx = np.concatenate([self.sp_idx, np.zeros_like(self.sp_idx)])
                    elif status == NOT_FINITE:
                        self._raise_not_finite(ep, er, ei)
                self.rec_parts.append(rec[:rec_n])
                if bar is not None:
                    bar.update(round(n * net.dt_ms * 1e-3, 6))
        finally:
            if bar is not None:
                bar.close()
            self.loop_s += time.perf_counter() - t_start
        return self.result()

    def _raise_not_finite(self, p, r, i):
        pop = self.net.populations[p]
        var = pop.spec.var_names[r]
        s = self.step - 1
        value = self.plan.X[r, i]
        raise SimulationError(
            f"{var} of population '{pop.name}' became {value} (neuron {i - self.plan.pop_off[p]}) "
            f"at step {s} (t = {s * self.net.dt_ms:g} ms); try a smaller dt_ms or check the parameters")

    def result(self) -> Result:
        net, plan = self.net, self.plan
        steps, idx = self.sp_step[:self.sp_n], self.sp_idx[:self.sp_n].astype(np.int64)
        spikes = {}
        for pop in net.populations:
            a, b = plan.pop_off[pop.index], plan.pop_off[pop.index + 1]
            sel = (idx >= a) & (idx < b)
            spikes[pop.name] = (steps[sel] * net.dt_ms, idx[sel] - a)
        states = {}
        if net.probes:
            rec = np.concatenate(self.rec_parts) if self.rec_parts else np.zeros((0, len(plan.mon_row)))
            times = np.arange(len(rec)) * net.probes[0].every * net.dt_ms
            col = 0
            for probe in net.probes:
                k = len(probe.indices)
                states[(probe.pop.name, probe.var)] = (times, rec[:, col:col + k])
                col += k
        return Result(spikes=spikes, states=states, duration_ms=self.step * net.dt_ms, dt_ms=net.dt_ms,
                      sizes={p.name: p.n for p in net.populations}, setup_s=self.setup_s, loop_s=self.loop_s)
