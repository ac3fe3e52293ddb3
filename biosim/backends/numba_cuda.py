"""The numba-cuda backend: the schedule of :mod:`biosim.backends.kernel_body` as CUDA kernels.

``pip install -e ".[cuda]"`` brings numba-cuda; it is imported only when this backend is asked
for (:func:`check_available`). Without a GPU, ``NUMBA_ENABLE_CUDASIM=1`` (set before Numba is
imported) runs the same kernels in numba-cuda's simulator: Python per thread, slow, for tests.

How a network's models reach the kernels
    :func:`kernel` builds the kernels in a factory from the network's models (``specs``) and
    synapse models (``syn_specs``): each model's scalar ``step``/``threshold``/``reset`` (and a
    synapse model's ``on_pre``/``on_post``) is its own pure-Python function (``py_func``) compiled
    with ``cuda.jit(device=True)`` -- the maths the numba-cpu kernel and the NumPy reference run --
    and a chain of small device functions picks the one of a population's model index. No model
    is named here: a new neuron model runs on this backend unchanged.

One step, as on the CPU (Brian2's schedule, DESIGN.md section 4), in six or seven kernel launches
    ``pre`` (spike-buffer check, clear the ring slot, record monitors, decay STDP traces), ``step``
    (a thread per neuron: update, NaN/inf check, threshold, and a block-wide scan of the spike
    flags), ``scan`` (one block: the blocks' offsets), ``compact`` (spikes into the ring ``hist`` in
    ascending order, refractory clocks, recorded spikes into the spike buffer: a deterministic
    compaction, no atomics; input-group spikes of the step), ``deliver``, ``post`` (STDP
    potentiation, synapse models' ``on_post``) and ``reset`` (within ``post`` when no synapse model
    has ``on_post``). The host launches a batch of steps and then reads the status (stop at a full
    spike buffer or a NaN/inf) and the recorded spikes. A launch costs Python time in numba-cuda
    (tens of microseconds with this many arguments): a persistent kernel with grid-wide syncs
    between the phases would remove most of it (later speed work).

Spike propagation: a gather, so that sums are the CPU's bit for bit
    The CPU adds, for each target variable, Poisson input, then delayed input due now, then each
    projection in creation order, each by ascending spiking source along its CSR row. Here a
    thread owns a target neuron and walks its incoming synapses of each projection in ascending
    source order (a by-target index built on the host), adding those whose source spiked (a count
    per source and ring slot, ``fired``): the same additions in the same order, where atomics
    would add in any order. Per-synapse delays go to the target's own row of the delay
    accumulator, STDP depression and a synapse model's ``on_pre`` run in that same walk (each
    synapse belongs to one target thread), potentiation and ``on_post`` in ``post``. The walk
    costs every incoming synapse each step (not only those of spiking sources): an event-driven
    ordered scatter is later speed work.

Memory
    On the device a synapse is its source (int32) and weight (state dtype), stored by target:
    8 bytes in float32 networks, 12 in float64 ones; per-synapse delays add 4 bytes, a synapse
    model its variables and an int64 last-event step. :func:`device_bytes` estimates a plan's
    footprint; a network that does not fit in the GPU's free memory is refused with that estimate.

Host and device
    The plan stays on the host between ``run_chunk`` calls (``Network`` methods change it there):
    each call copies the arrays the kernels read to the device and the ones they change back
    (the network's structure, by-target index included, is built and copied once per plan). A
    device-resident plan that is copied only when the host changed it is later speed work.
    Random inputs are drawn on the host and copied per chunk (:class:`~biosim.backends.plan.ChunkInput`).

Exactness and known differences
    In the simulator the results are numba-cpu's bit for bit (the tests check spikes, states and
    weights in float64). On a real GPU, NVVM contracts ``a*b + c`` into fused multiply-adds and
    CUDA's ``exp``/``log`` are not glibc's, so values differ in the last bits and spike trains of
    chaotic networks drift apart after a while. After a NaN/inf (status NOT_FINITE) all populations
    have been updated in that step (the CPU stops after the first population with one). A synapse
    model whose statements read a variable of the presynaptic neuron (``v_pre``) may read it
    before or after the same step's synaptic input to that neuron (on the CPU: in order).
"""

from __future__ import annotations

import os
import weakref

import numpy as np

from biosim.backends.kernel_body import BUFFER_FULL, NOT_FINITE, OK
from biosim.backends.plan import ChunkInput, Outputs
from biosim.errors import BiosimError
from biosim.network.compile import compile_network, model_specs, synapse_specs

__all__ = ["BUFFER_FULL", "NOT_FINITE", "OK", "PIP_COMMAND", "check_available", "check_fits", "compile_ptx",
           "device_bytes", "kernel", "simulator_enabled"]

#: How to install the optional dependency.
PIP_COMMAND = 'pip install -e ".[cuda]"'

#: Steps launched between two looks at the device's status (and spike buffer).
_BATCH = 128
#: Entries of the device's spike buffer (at least; 4 per neuron in larger networks), emptied to the
#: host after every batch of steps.
_SPIKE_BUF_MIN = 1 << 20

#: Words of the device's status array ``ctl`` (int64): the status (OK, BUFFER_FULL, or another
#: non-zero value that stops every kernel), the steps done at a stop, the first NaN/inf as
#: ``(p*V + r)*N + i`` and its step, the spikes in the device's buffer, where this step's recorded
#: spikes start in it, and its limit.
STATUS, DONE, ERRKEY, ERRSTEP, SP_N, SP_BASE, LIMIT = range(7)
CTL_LEN = 8
NO_ERROR = 2**62
_WARM_UP = 99  # a status that stops every kernel at once

#: Arrays of a plan's structure on the device (:class:`_Structure`), copied once per plan.
_STRUCT_ARRAYS = ("bt_src", "bt_ptr", "bt_base", "pop_of", "dly")
#: Plan arrays copied to the device at each call (``Network`` methods may change any of them).
_PLAN_ARRAYS = ("C", "pop_off", "pop_model", "pop_nvar", "pop_ref", "gate", "grp_off", "pr_grp", "pr_row", "pr_delay",
                "pr_stdp", "pr_syn", "pr_tgt", "pr_c", "pr_rptr", "pi_a", "pi_b", "pi_row", "pi_w", "pi_col", "st_c",
                "st_proj", "st_pre_off", "st_post_off", "st_tgt_grp", "rec_spikes", "mon_row", "mon_idx", "X", "i_ext",
                "ref_until", "hist", "hist_cnt", "xpre", "xpost", "acc")
#: Plan arrays the kernels change, copied back at the end of each call (and w, S, s_last by synapse).
_CHANGED_ARRAYS = ("X", "ref_until", "hist", "hist_cnt", "xpre", "xpost", "acc")

#: Kernels built in this process, by the models they were generated for.
_KERNELS: dict = {}
#: Device copies of plans' structure, by id of the plan's ``tgt`` array.
_STRUCT: dict = {}


def simulator_enabled() -> bool:
    """Whether numba-cuda runs its simulator in this process (``NUMBA_ENABLE_CUDASIM=1`` when Numba
    was imported)."""
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def check_available():
    """Import numba.cuda and return it; a :class:`BiosimError` of one line when numba-cuda is not
    installed or no GPU can be used (and the simulator is not enabled)."""
    try:
        from numba import cuda
    except ImportError as exc:
        raise BiosimError(f"the numba-cuda backend needs the numba-cuda package ({exc}): {PIP_COMMAND}") from None
    if simulator_enabled():
        return cuda
    if not cuda.is_available():
        reason = "no driver or device"
        try:
            err = cuda.cuda_error()
        except Exception as exc:  # noqa: BLE001 - only used to word the message
            err = exc
        lines = [ln.strip().rstrip(".:") for ln in str(err or "").splitlines()]
        lines = [ln for ln in lines if ln and not ln.lower().startswith("error at driver init")]
        if lines:
            reason = lines[0]
        raise BiosimError(f"no CUDA GPU found (numba-cuda: {reason}); to try the backend without a GPU set "
                          f"NUMBA_ENABLE_CUDASIM=1 (slow)")
    return cuda


# ---------------------------------------------------------------------------------------------
# Host side: the plan's structure by target, the device footprint
# ---------------------------------------------------------------------------------------------


class _Structure:
    """What the kernels need about a plan's fixed structure, built once per plan on the host.

    ``perm[kk]`` is the plan's synapse id of device synapse ``kk``: the synapses of each
    projection ordered by target (stably: by ascending source, then CSR position), projection
    after projection. ``bt_ptr[bt_base[r] + jl]`` .. ``+1`` are the device synapses of projection
    ``r`` into its target ``jl`` (local index), ``bt_src`` their local sources."""

    def __init__(self, pl):
        P = len(pl.pop_model)
        R = len(pl.pr_grp)
        n_syn = len(pl.tgt)
        perms, srcs, ptrs, bases = [], [], [], []
        off = n_ptr = 0
        for r in range(R):
            g = int(pl.pr_grp[r])
            n_src = int(pl.grp_off[g + 1] - pl.grp_off[g])
            tp = int(pl.pr_tgt[r])
            t0, n_tgt = int(pl.pop_off[tp]), int(pl.pop_off[tp + 1] - pl.pop_off[tp])
            ip = pl.indptr[pl.pr_ptr[r]:pl.pr_ptr[r] + n_src + 1]
            s0, s1 = int(ip[0]), int(ip[-1])
            src = np.repeat(np.arange(n_src, dtype=np.int32), np.diff(ip))
            jl = pl.tgt[s0:s1].astype(np.int64) - t0
            order = np.argsort(jl, kind="stable")
            perms.append(s0 + order)
            srcs.append(src[order])
            ptrs.append(off + np.concatenate([[0], np.cumsum(np.bincount(jl, minlength=n_tgt))]))
            bases.append(n_ptr)
            off += s1 - s0
            n_ptr += n_tgt + 1
        self.perm = np.concatenate(perms).astype(np.int64) if perms else np.zeros(0, np.int64)
        if len(self.perm) != n_syn:  # pragma: no cover - compile_network lays projections out back to back
            raise RuntimeError("the plan's projections do not cover its synapses")
        self.bt_src = np.concatenate(srcs).astype(np.int32) if srcs else np.zeros(0, np.int32)
        self.bt_ptr = np.concatenate(ptrs).astype(np.int64) if ptrs else np.zeros(1, np.int64)
        self.bt_base = np.asarray(bases, dtype=np.int64)
        self.pop_of = np.repeat(np.arange(P, dtype=np.int32), np.diff(pl.pop_off))
        self.dly = pl.dly[self.perm].astype(np.int32) if len(pl.dly) else np.zeros(0, np.int32)
        self.has_syn_models = bool(np.any(pl.pr_syn >= 0))
        self.dev = None  # device copies of the read-only arrays above, on first use


def _structure(pl) -> _Structure:
    key = id(pl.tgt)
    hit = _STRUCT.get(key)
    if hit is not None and hit[0]() is pl.tgt and hit[2] is pl.indptr:
        return hit[1]
    st = _Structure(pl)
    _STRUCT[key] = (weakref.ref(pl.tgt, lambda _ref, k=key: _STRUCT.pop(k, None)), st, pl.indptr)
    return st


def device_bytes(pl, n_steps: int = 2000, n_counts: int = 0) -> dict:
    """Estimated GPU memory of plan ``pl`` in bytes: ``{"synapses": ..., "total": ...,
    "per_synapse": ...}`` (``n_steps``/``n_counts``: the largest chunk of input it will be given)."""
    item = pl.X.dtype.itemsize
    n_syn = len(pl.tgt)
    per_syn = 4 + item + (4 if len(pl.dly) else 0)
    if np.any(pl.pr_syn >= 0):
        per_syn += pl.S.shape[0] * item + 8
    syn = n_syn * per_syn
    N = pl.X.shape[1]
    L, S = pl.hist.shape
    neurons = (pl.X.nbytes + pl.gate.nbytes + pl.acc.nbytes + pl.i_ext.nbytes + N * (8 + 4 + 1 + 1 + 8 + 8)
               + pl.hist.nbytes + L * S * 4 + pl.xpre.nbytes + pl.xpost.nbytes)
    ptrs = sum(int(pl.pop_off[int(t) + 1] - pl.pop_off[int(t)]) + 1 for t in pl.pr_tgt) * 8
    spikes = max(_SPIKE_BUF_MIN, 4 * N) * 12
    chunk = n_steps * (max(n_counts, 0) * 4 + len(pl.mon_row) * item)
    total = syn + neurons + ptrs + spikes + chunk + (1 << 20)
    return {"synapses": syn, "per_synapse": per_syn, "total": int(total)}


def check_fits(pl, free_bytes: int, n_steps: int = 2000, n_counts: int = 0) -> dict:
    """Refuse (one-line :class:`BiosimError`) a plan whose :func:`device_bytes` exceed
    ``free_bytes`` of GPU memory; return the estimate otherwise."""
    need = device_bytes(pl, n_steps, n_counts)
    if need["total"] > free_bytes:
        raise BiosimError(
            f"network too big for the GPU: needs about {need['total'] / 2**30:.2f} GiB "
            f"({len(pl.tgt)} synapses x {need['per_synapse']} bytes = {need['synapses'] / 2**30:.2f} GiB), "
            f"{free_bytes / 2**30:.2f} GiB free")
    return need


def _threads_per_block() -> int:
    """Threads per block: 128 on a GPU; 4 in the simulator (a Python thread each, polled by one
    more: small blocks run fastest there, and 4 still exercise the block-wide scans);
    ``BIOSIM_CUDA_TPB`` (a power of 2) overrides both."""
    env = os.environ.get("BIOSIM_CUDA_TPB")
    if env:
        tpb = int(env)
        if tpb < 1 or tpb & (tpb - 1):
            raise BiosimError(f"BIOSIM_CUDA_TPB = {env} must be a power of 2")
        return tpb
    return 4 if simulator_enabled() else 128


def kernel(specs, syn_specs=()):
    """The ``run_chunk`` of this backend for a network whose neuron models are ``specs`` and whose
    synapse models are ``syn_specs`` (the contract of :mod:`biosim.backends`); memoised per models.

    The returned callable is a host function: it copies the plan to the device, launches the
    kernels step by step and copies the results back. The kernels compile on the first call with
    ``n_steps == 0`` (the warm-up call of :class:`~biosim.network.simulate.Simulation`), which also
    refuses a network that does not fit in the GPU's free memory.
    """
    cuda = check_available()
    specs, syn_specs = tuple(specs), tuple(syn_specs)
    if not specs:
        raise BiosimError("a kernel needs at least one neuron model")
    key = (tuple((s.name, len(s.var_names), s.step, s.threshold, s.reset) for s in specs),
           tuple((s.name, s.on_pre, s.on_post) for s in syn_specs), simulator_enabled())
    fn = _KERNELS.get(key)
    if fn is None:
        fn = _Backend(cuda, specs, syn_specs).run_chunk
        _KERNELS[key] = fn
    return fn


class _Backend:
    """The host side of one set of kernels: copies, launches, status."""

    def __init__(self, cuda, specs, syn_specs):
        self.cuda = cuda
        self.TPB = _threads_per_block()
        from biosim.backends.cuda_kernels import build_kernels

        self.k = build_kernels(specs, syn_specs, self.TPB)
        self.launches = None  # a list to record launches in (compile_ptx checks) instead of running them

    # -- memory ---------------------------------------------------------------------------------

    def _check_memory(self, pl, inp):
        if simulator_enabled() or self.launches is not None:
            return
        free, _total = self.cuda.current_context().get_memory_info()
        check_fits(pl, free, max(len(inp.in_ptr) - 1, 2000), inp.counts.shape[1])

    # -- transfers ------------------------------------------------------------------------------

    def _to(self, a):
        if self.launches is not None:
            return np.ascontiguousarray(a)
        return self.cuda.to_device(np.ascontiguousarray(a))

    def _empty(self, shape, dtype):
        if self.launches is not None:
            return np.zeros(shape, dtype)
        return self.cuda.device_array(shape, dtype)

    def _host(self, d):
        return d if self.launches is not None else d.copy_to_host()

    def _launch(self, name, n, *args, block=None):
        block = block or self.TPB
        grid = max(1, -(-n // block))
        if self.launches is not None:
            self.launches.append((name, self.k[name], args))
            return
        self.k[name][grid, block](*args)

    # -- one call -------------------------------------------------------------------------------

    def run_chunk(self, pl, inp, out, step0, n_steps, sp_n, rec_n):
        """Advance ``pl`` by ``n_steps`` steps from ``step0`` (the contract of :mod:`biosim.backends`)."""
        step0, n_steps, sp_n, rec_n = int(step0), int(n_steps), int(sp_n), int(rec_n)
        N = pl.X.shape[1]
        cap = out.sp_idx.shape[0]
        if n_steps == 0:
            self._check_memory(pl, inp)
        elif sp_n + N > cap:
            return BUFFER_FULL, 0, sp_n, rec_n, -1, -1, -1
        st = _structure(pl)
        d = self._upload(pl, st, inp, n_steps)
        L, P, M = pl.hist.shape[0], len(pl.pop_model), len(pl.mon_row)
        every = int(pl.mon_every)
        rec_steps = [kk for kk in range(n_steps) if M and (step0 + kk) % every == 0]
        rec_row = {kk: r for r, kk in enumerate(rec_steps)}
        d["rec"] = self._empty((max(len(rec_steps), 1), max(M, 1)), out.rec.dtype)
        buf = max(_SPIKE_BUF_MIN, 4 * N)
        d["sp_step"] = self._empty(buf, np.int64)
        d["sp_idx"] = self._empty(buf, np.int32)
        ctl = np.zeros(CTL_LEN, np.int64)
        ctl[ERRKEY] = NO_ERROR
        in_ptr = d.pop("in_ptr")
        if n_steps == 0:  # launch every kernel once, stopped: each compiles (real GPU) and returns at once
            ctl[STATUS] = _WARM_UP
            d["ctl"] = self._to(ctl)
            try:
                self._step(d, 0, step0, L, N, P, M, -1, 0, 0)
            except Exception as exc:
                _raise_if_no_compiler(exc)
                raise
            if self.launches is None:
                self.cuda.synchronize()
            return OK, 0, sp_n, rec_n, -1, -1, -1
        status, done, k, c = OK, n_steps, 0, ctl
        while k < n_steps:
            room = cap - sp_n
            if room < N:  # the CPU's rule: a step needs room for N spikes
                status, done = BUFFER_FULL, k
                break
            ctl[STATUS], ctl[SP_N], ctl[LIMIT] = OK, 0, min(room, buf)
            d["ctl"] = self._to(ctl)
            k1 = min(k + _BATCH, n_steps)
            for kk in range(k, k1):
                self._step(d, kk, step0 + kk, L, N, P, M, rec_row.get(kk, -1), int(in_ptr[kk]), int(in_ptr[kk + 1]))
            c = self._host(d["ctl"])
            n_new = int(c[SP_N])
            if n_new:
                out.sp_step[sp_n:sp_n + n_new] = self._host(d["sp_step"][:n_new])
                out.sp_idx[sp_n:sp_n + n_new] = self._host(d["sp_idx"][:n_new])
                sp_n += n_new
            if c[ERRKEY] != NO_ERROR:
                status, done = NOT_FINITE, int(c[ERRSTEP]) + 1
                break
            k = int(c[DONE]) if c[STATUS] == BUFFER_FULL else k1
        n_rec = sum(1 for kk in rec_steps if kk < done)
        if n_rec:
            out.rec[rec_n:rec_n + n_rec] = self._host(d["rec"])[:n_rec]
        self._download(pl, st, d)
        if status == NOT_FINITE:
            rest, i = divmod(int(c[ERRKEY]), N)
            p, r = divmod(rest, pl.X.shape[0])
            return status, done, sp_n, rec_n + n_rec, p, r, i
        return status, done, sp_n, rec_n + n_rec, -1, -1, -1

    def _upload(self, pl, st, inp, n_steps) -> dict:
        """Device arrays of one call: the plan's structure (copied once per plan), the plan's other
        arrays, its synapse arrays in device order, the spike counts per source and ring slot, this
        call's inputs and the work arrays."""
        if st.dev is None or self.launches is not None:
            dev = {name: self._to(getattr(st, name)) for name in _STRUCT_ARRAYS}
            if self.launches is None:
                st.dev = dev
        else:
            dev = st.dev
        d = dict(dev)
        for name in _PLAN_ARRAYS:
            d[name] = self._to(getattr(pl, name))
        perm = st.perm
        d["w"] = self._to(pl.w[perm])
        d["S"] = self._to(pl.S[:, perm] if st.has_syn_models else pl.S)
        d["s_last"] = self._to(pl.s_last[perm] if st.has_syn_models else pl.s_last)
        L, n_src = pl.hist.shape
        fired = np.zeros(L * n_src, np.int32)
        for l_ in range(L):
            for g in range(pl.hist_cnt.shape[1]):
                g0 = int(pl.grp_off[g])
                np.add.at(fired, l_ * n_src + pl.hist[l_, g0:g0 + pl.hist_cnt[l_, g]].astype(np.int64), 1)
        d["fired"] = self._to(fired.reshape(L, n_src))
        N = pl.X.shape[1]
        nb = -(-N // self.TPB)
        d["spiked"] = self._empty(N, np.int8)
        d["flags"] = self._empty(N, np.int64)
        d["incl"] = self._empty(N, np.int64)
        d["bsum"] = self._empty(nb, np.int64)
        d["boff"] = self._empty(nb, np.int64)
        # input-group spikes: each one's place in its (step, group) run, and the run's length
        in_ptr = np.asarray(inp.in_ptr, np.int64)
        n_in = int(in_ptr[min(n_steps, len(in_ptr) - 1)])
        grp = np.asarray(inp.in_grp[:n_in], np.int64)
        pos = np.zeros(n_in, np.int64)
        cnt = np.zeros(n_in, np.int64)
        if n_in:
            step_of = np.repeat(np.arange(len(in_ptr) - 1), np.diff(in_ptr))[:n_in]
            new = np.ones(n_in, bool)
            new[1:] = (step_of[1:] != step_of[:-1]) | (grp[1:] != grp[:-1])
            starts = np.flatnonzero(new)
            run = np.cumsum(new) - 1
            pos = np.arange(n_in) - starts[run]
            cnt = np.diff(np.append(starts, n_in))[run]
        d["in_ptr"] = in_ptr
        d["in_src"] = self._to(np.asarray(inp.in_src[:n_in], np.int64))
        d["in_grp"] = self._to(grp)
        d["in_pos"] = self._to(pos)
        d["in_cnt"] = self._to(cnt)
        counts = inp.counts[:n_steps]
        d["counts"] = self._to(counts if counts.size else np.zeros((1, 1), np.int32))
        d["use_acc"] = len(pl.dly) > 0
        d["on_post"] = bool(np.any(pl.pr_rptr >= 0))
        return d

    def _download(self, pl, st, d):
        """Copy what the kernels change back into the plan."""
        for name in _CHANGED_ARRAYS:
            getattr(pl, name)[...] = self._host(d[name])
        if len(pl.st_proj):
            pl.w[st.perm] = self._host(d["w"])
        if st.has_syn_models:
            pl.S[:, st.perm] = self._host(d["S"])
            pl.s_last[st.perm] = self._host(d["s_last"])

    def _step(self, d, kk, s, L, N, P, M, rec_row, e0, e1):
        """Launch the kernels of one step (local index ``kk``, global step ``s``)."""
        slot = s % L
        ctl = d["ctl"]
        n_pre = max(d["hist_cnt"].shape[1], d["fired"].shape[1], M, d["xpre"].shape[0], d["xpost"].shape[0])
        self._launch("pre", n_pre, ctl, kk, slot, N, d["hist_cnt"], d["fired"], d["X"], d["mon_row"], d["mon_idx"],
                     d["rec"], rec_row, d["st_c"], d["st_proj"], d["st_pre_off"], d["st_post_off"], d["st_tgt_grp"],
                     d["pr_grp"], d["grp_off"], d["pop_off"], d["xpre"], d["xpost"])
        self._launch("step", N, ctl, kk, s, d["X"], d["C"], d["pop_of"], d["pop_model"], d["pop_nvar"], d["i_ext"],
                     d["ref_until"], d["rec_spikes"], d["flags"], d["incl"], d["bsum"])
        self._launch("scan", self.TPB, ctl, d["bsum"], d["boff"])
        self._launch("compact", N + e1 - e0, ctl, s, slot, d["pop_of"], d["pop_off"], d["pop_ref"], d["flags"],
                     d["incl"], d["boff"], d["ref_until"], d["spiked"], d["hist"], d["hist_cnt"], d["fired"],
                     d["sp_step"], d["sp_idx"], e0, e1, d["in_src"], d["in_grp"], d["in_pos"], d["in_cnt"],
                     d["grp_off"])
        self._launch("deliver", max(N, d["xpre"].shape[0]), ctl, kk, s, slot, d["X"], d["gate"], d["ref_until"],
                     d["pop_of"], d["pop_off"], d["grp_off"], d["counts"], d["pi_a"], d["pi_b"], d["pi_row"],
                     d["pi_w"], d["pi_col"], d["acc"], d["use_acc"], d["pr_grp"], d["pr_tgt"], d["pr_row"],
                     d["pr_delay"], d["pr_stdp"], d["pr_syn"], d["pr_c"], d["bt_base"], d["bt_ptr"], d["bt_src"],
                     d["w"], d["dly"], d["fired"], d["st_c"], d["st_proj"], d["st_pre_off"], d["st_post_off"],
                     d["xpre"], d["xpost"], d["S"], d["s_last"], P)
        and_reset = not d["on_post"]
        self._launch("post", N, ctl, s, d["X"], d["C"], d["gate"], d["ref_until"], d["spiked"], d["pop_of"],
                     d["pop_off"], d["pop_model"], d["grp_off"], d["pr_grp"], d["pr_tgt"], d["pr_syn"], d["pr_c"],
                     d["pr_rptr"], d["bt_base"], d["bt_ptr"], d["bt_src"], d["w"], d["st_c"], d["st_proj"],
                     d["st_pre_off"], d["st_post_off"], d["st_tgt_grp"], d["xpre"], d["xpost"], d["S"], d["s_last"],
                     P, and_reset)
        if not and_reset or self.launches is not None:
            self._launch("reset", N, ctl, d["X"], d["C"], d["pop_of"], d["pop_model"], d["spiked"])


def _raise_if_no_compiler(exc: Exception) -> None:
    """A missing CUDA compiler library (NVVM, NVRTC, libdevice) as one line: numba-cuda without the
    toolkit wheels of the ``cuda`` extra and without a CUDA toolkit on the machine."""
    text = f"{type(exc).__name__} {exc}".lower()
    if any(word in text for word in ("nvvm", "nvrtc", "libdevice", "dynamiclibnotfound")):
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise BiosimError(f"numba-cuda cannot compile the kernels ({first}): install the CUDA compiler wheels with "
                          f"{PIP_COMMAND}, or a CUDA toolkit") from None


def compile_ptx(net, cc=(9, 0)) -> dict:
    """Compile every kernel of ``net``'s network for a real GPU (PTX for compute capability ``cc``)
    without one: the check that the device code types and lowers for CUDA (the simulator runs
    Python and would accept more). Needs numba-cuda's NVVM and NVRTC (``nvidia-nvvm``,
    ``nvidia-cuda-nvrtc``) and the simulator off. Returns kernel name -> PTX text."""
    from numba import typeof

    if simulator_enabled():
        raise BiosimError("compile_ptx needs the real numba-cuda target (NUMBA_ENABLE_CUDASIM unset)")
    from numba import cuda
    pl = compile_network(net)
    be = _Backend(cuda, model_specs(net), synapse_specs(net))
    be.launches = []
    N = pl.X.shape[1]
    e = np.zeros(0, np.int64)
    inp = ChunkInput(np.zeros(2, np.int64), e, e, np.zeros((1, 1), np.int32))
    out = Outputs(np.zeros(4 * N + 16, np.int64), np.zeros(4 * N + 16, np.int32), np.zeros((1, max(len(pl.mon_row), 1)), pl.X.dtype))
    _STRUCT.pop(id(pl.tgt), None)
    be.run_chunk(pl, inp, out, 0, 0, 0, 0)
    ptx = {}
    for name, k, args in be.launches:
        if name in ptx:
            continue
        sig = tuple(typeof(a) for a in args)
        ptx[name], _ = cuda.compile_ptx(k.py_func, sig, cc=cc)
    return ptx

