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

One step, as on the CPU (Brian2's schedule, DESIGN.md section 4), in seven or eight kernel launches
    ``pre`` (spike-buffer check, clear the ring slot, record monitors, decay STDP traces), ``step``
    (a thread per neuron: update, NaN/inf check, threshold, and a block-wide scan of the spike
    flags), ``scan`` (one block: the blocks' offsets), ``compact`` (spikes into the ring ``hist`` in
    ascending order, refractory clocks, recorded spikes into the spike buffer: a deterministic
    compaction, no atomics; input-group spikes of the step), ``scatter`` and ``deliver`` (spike
    propagation, below), ``post`` (STDP potentiation, synapse models' ``on_post``) and ``reset``
    (within ``post`` when no synapse model has ``on_post``). The host launches a batch of steps
    and then reads the status (stop at a full spike buffer or a NaN/inf) and the recorded spikes.
    A launch costs Python time in numba-cuda (tens of microseconds with this many arguments): a
    persistent kernel with grid-wide syncs between the phases would remove most of it.

Spike propagation: event-driven, and in the CPU's order so that sums are the CPU's bit for bit
    The CPU adds, for each target variable, Poisson input, then delayed input due now, then each
    projection in creation order, each by its arriving spikes in ring order, each along its CSR
    row. ``scatter`` visits only the synapses of the spikes arriving now (a grid-stride loop over
    them, ``lanes`` threads per CSR row) and files for each synapse's target an int64 key
    ``(r*E + e)*D + position in the row`` (projection ``r``, the spike's entry ``e`` in its ring
    slot) into the target's column of the event buffer ``ev`` (rows x N; an atomic count per
    target gives the row). Those keys sort into the CPU's order: ``deliver`` (a thread per target)
    sorts its few keys and applies each synapse in turn -- the weight to its row (not while
    refractory, for gated rows), STDP depression, a synapse model's ``on_pre`` -- the same
    additions in the same order, where atomic adds would add in any order. A target with more
    events in a step than ``ev`` has rows walks the spikes' rows itself (same order, exact,
    slower) and reports its count; the host then grows ``ev`` to the next power of two, up to the
    largest in-degree and 1 GiB. Potentiation and ``on_post`` use the plan's by-target index
    (plastic projections only).

Per-synapse delays: the spikes in flight are the spike ring, nothing more
    A projection with per-synapse delays (``Plan.pr_delay[r] < 0``; each CSR row ordered by delay)
    sends, in a spike's own step, the row's synapses of delay 0 with the other direct events. Its
    spikes of age ``a`` (``0 < a < L``, still in the ring ``hist``) are in flight: in every step,
    ``scatter`` also finds by bisection the run of each one's row whose delay is ``a`` and files
    negative keys for those synapses, which sort before the direct events by target row, then
    oldest spike first, projection, entry and position. ``deliver`` sums each row's in-flight
    weights, read when they arrive (as on the CPU), from zero in that order -- the CPU's scratch
    ``pend`` of :mod:`biosim.backends.in_flight` -- and adds a nonzero sum to the row once, after
    Poisson input and before the direct events. So the memory for delays is their 2 bytes per
    synapse and the event buffer's keys of the spikes in flight, not a value per ring slot and
    neuron, and there is no device state to rebuild when the host changes the ring or the weights
    between runs. The price is time: in every step each spike in flight costs a bisection of its
    row (the CPU keeps a cursor per spike instead), and ``deliver`` decodes each in-flight key
    back to its ring entry. The keys need ``V*L*R*E*D < 2**62`` (state rows, ring slots,
    projections, largest source group, longest row), checked when the plan is first copied.

Memory
    On the device a synapse is its target (int32), in the plan's CSR order, and, in a projection
    with per-synapse weights or STDP, its weight (state dtype): 4 bytes in a projection built with
    one weight (kept once, ``Plan.pr_w``), else 8 in float32 networks and 12 in float64 ones;
    per-synapse delays add 2 bytes, a synapse model its variables and an int64 last-event step, a
    plastic synapse 8 bytes of by-target index. :func:`device_bytes` estimates a plan's footprint; a network that does not fit
    in the GPU's free memory is refused with that estimate.

Host and device
    The plan lives on the device between ``run_chunk`` calls (:class:`_Resident`): a call copies
    only the arrays the host changed since the last one, and the kernels' changes come back only
    when the host reads the plan. :class:`~biosim.network.simulate.Simulation` calls the hooks
    :func:`to_host` and :func:`host_changed` around its reads and writes (``Network`` methods,
    snapshots, the currents it sets per chunk). Random inputs are drawn on the host and copied per
    chunk (:class:`~biosim.backends.plan.ChunkInput`).

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
           "device_bytes", "host_changed", "kernel", "simulator_enabled", "to_host"]

#: How to install the optional dependency.
PIP_COMMAND = 'pip install -e ".[cuda]"'

#: Steps launched between two looks at the device's status (and spike buffer).
_BATCH = 128
#: Entries of the device's spike buffer (at least; 4 per neuron in larger networks), emptied to the
#: host after every batch of steps.
_SPIKE_BUF_MIN = 1 << 20
#: Rows of the event buffer ``ev`` at the start (events one target can take in one step before it
#: walks the arriving spikes' rows itself), and the most GPU memory the buffer may grow to.
_EVENT_ROWS = 32
_EVENT_BUDGET = 1 << 30

#: Words of the device's status array ``ctl`` (int64): the status (OK, BUFFER_FULL, or another
#: non-zero value that stops every kernel), the steps done at a stop, the first NaN/inf as
#: ``(p*V + r)*N + i`` and its step, the spikes in the device's buffer, where this step's recorded
#: spikes start in it, its limit, and the most events a target had that did not fit in ``ev``.
STATUS, DONE, ERRKEY, ERRSTEP, SP_N, SP_BASE, LIMIT, EV_MAX = range(8)
CTL_LEN = 8
NO_ERROR = 2**62
_WARM_UP = 99  # a status that stops every kernel at once

#: Plan arrays the kernels read (all of them live on the device between calls).
_PLAN_ARRAYS = ("C", "pop_off", "pop_model", "pop_nvar", "pop_ref", "gate", "grp_off", "pr_grp", "pr_row", "pr_delay",
                "pr_ptr", "pr_stdp", "pr_syn", "pr_tgt", "pr_c", "pr_rptr", "pi_a", "pi_b", "pi_row", "pi_w", "pi_col",
                "st_c", "st_proj", "st_pre_off", "st_post_off", "st_tgt_grp", "st_rptr_off", "rec_spikes", "mon_row",
                "mon_idx", "X", "i_ext", "ref_until", "hist", "hist_cnt", "xpre", "xpost", "indptr", "tgt", "w",
                "dly", "rptr", "rsyn", "rsrc", "S", "s_last", "pr_w", "pr_woff")
#: Plan arrays the kernels change (w only with STDP, S and s_last only with synapse models).
_CHANGED_ARRAYS = ("X", "ref_until", "hist", "hist_cnt", "xpre", "xpost", "w", "S", "s_last")
#: Index arrays kept as int32 on the device (a synapse's by-target entry: 8 bytes, not 16).
_INT32_ON_DEVICE = ("rsyn", "rsrc")

#: Kernels built in this process, by the models they were generated for.
_KERNELS: dict = {}
#: Device copies of plans (:class:`_Resident`), by id of the plan's ``tgt`` array.
_RESIDENT: dict = {}


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
# Host side: a plan's copy on the device, the device footprint
# ---------------------------------------------------------------------------------------------


class _Resident:
    """A plan's arrays on the device, kept there between ``run_chunk`` calls.

    ``stale`` names the arrays whose host copy changed since they were copied (all of them at
    first); ``device_newer`` says the kernels have changed the device copies since the host last
    read them. :func:`to_host` and :func:`host_changed` are the two hooks the driver
    (:class:`~biosim.network.simulate.Simulation`) calls around its own reads and writes."""

    def __init__(self, pl):
        N = pl.X.shape[1]
        self.stale = set(_PLAN_ARRAYS)
        self.device_newer = False
        self.dev: dict = {}
        self.changed = [n for n in _CHANGED_ARRAYS
                        if (n != "w" or len(pl.st_proj)) and (n not in ("S", "s_last") or np.any(pl.pr_syn >= 0))]
        self.pop_of = np.repeat(np.arange(len(pl.pop_model), dtype=np.int32), np.diff(pl.pop_off))
        sizes = np.diff(pl.grp_off)
        rows = np.diff(pl.indptr)
        self.E = int(max(sizes.max(initial=0), 1))  # entries of a ring slot's group (keys: (r*E + e)*D + pos)
        self.D = int(max(rows.max(initial=0), 1))   # synapses of a CSR row
        self.KR = _event_keys(pl, self.E, self.D)
        in_degree = int(np.bincount(pl.tgt, minlength=N).max(initial=0)) if len(pl.tgt) else 0
        self.ev_cap = max(1, min(in_degree, _EVENT_BUDGET // (8 * max(N, 1))))
        env = os.environ.get("BIOSIM_CUDA_EVENT_ROWS")
        self.ev_rows = max(1, min(int(env) if env else _EVENT_ROWS, self.ev_cap))
        # most spikes arriving in one step, and in flight through per-synapse delays
        L = pl.hist.shape[0]
        self.entries = int(sum(sizes[int(g)] * (L if d < 0 else 1) for g, d in zip(pl.pr_grp, pl.pr_delay)))


def _event_keys(pl, E: int, D: int) -> int:
    """The span of one target row in the keys of in-flight events, ``L*R*E*D``: their keys run
    from ``-V*L*R*E*D`` to 0, the direct events' from 0 to ``R*E*D`` (1 without per-synapse delays:
    no key is negative, and the kernels' arguments stay small). A one-line :class:`BiosimError` when
    the keys would not fit in an int64."""
    V, L, R = pl.X.shape[0], pl.hist.shape[0], len(pl.pr_grp)
    if len(pl.dly):
        factors, need = f"{V} state rows x {L} ring slots x ", V * L * R * E * D
    else:
        factors, need = "", R * E * D
    if need >= 2**62:
        raise BiosimError(f"network too big for the event keys of the numba-cuda backend: {factors}{R} projections x "
                          f"{E} sources x {D} synapses per row reach 2**62")
    return L * R * E * D if len(pl.dly) else 1


def _resident(pl, create: bool = True):
    key = id(pl.tgt)
    hit = _RESIDENT.get(key)
    if hit is not None and hit[0]() is pl.tgt and hit[2] is pl.X:
        return hit[1]
    if not create:
        return None
    res = _Resident(pl)
    _RESIDENT[key] = (weakref.ref(pl.tgt, lambda _ref, k=key: _RESIDENT.pop(k, None)), res, pl.X)
    return res


def to_host(pl) -> None:
    """Bring the arrays the kernels changed back into plan ``pl`` on the host (a no-op when the
    host copy is current)."""
    res = _resident(pl, create=False)
    if res is None or not res.device_newer:
        return
    for name in res.changed:
        getattr(pl, name)[...] = res.dev[name].copy_to_host()
    res.device_newer = False


def host_changed(pl, names=None) -> None:
    """Plan ``pl``'s arrays ``names`` (all when ``None``) were changed on the host: copy them to
    the device at the next call (first bringing the device's changes home, so none is lost)."""
    res = _resident(pl, create=False)
    if res is None:
        return
    names = _PLAN_ARRAYS if names is None else tuple(names)
    if res.device_newer and set(names) & set(res.changed):
        to_host(pl)
    res.stale.update(names)


def device_bytes(pl, n_steps: int = 2000, n_counts: int = 0) -> dict:
    """Estimated GPU memory of plan ``pl`` in bytes: ``{"synapses": ..., "total": ...,
    "per_synapse": ...}``. ``synapses`` is what the synapses take: a target each (int32), a weight
    each (state dtype) in projections with per-synapse weights or STDP (one built with a single
    weight keeps it once), 2 bytes each for per-synapse delays, a synapse model's variables and an
    int64 last-event step, 8 bytes of by-target index per plastic synapse; ``per_synapse`` is that
    over the number of synapses. ``n_steps``/``n_counts``: the largest chunk of input it will be
    given."""
    item = pl.X.dtype.itemsize
    n_syn = len(pl.tgt)
    syn = 4 * n_syn + item * len(pl.w) + 2 * len(pl.dly) + 8 * len(pl.rsyn)
    if np.any(pl.pr_syn >= 0):
        syn += pl.S.nbytes + pl.s_last.nbytes
    per_syn = syn / n_syn if n_syn else 0.0
    N = pl.X.shape[1]
    neurons = (pl.X.nbytes + pl.gate.nbytes + pl.i_ext.nbytes + N * (8 + 4 + 1 + 1 + 8 + 8)
               + pl.hist.nbytes + pl.xpre.nbytes + pl.xpost.nbytes + pl.indptr.nbytes + pl.rptr.nbytes)
    events = N * (8 * min(_EVENT_ROWS, max(n_syn, 1)) + 4)
    spikes = max(_SPIKE_BUF_MIN, 4 * N) * 12
    chunk = n_steps * (max(n_counts, 0) * 4 + len(pl.mon_row) * item)
    total = syn + neurons + events + spikes + chunk + (1 << 20)
    return {"synapses": syn, "per_synapse": per_syn, "total": int(total)}


def check_fits(pl, free_bytes: int, n_steps: int = 2000, n_counts: int = 0) -> dict:
    """Refuse (one-line :class:`BiosimError`) a plan whose :func:`device_bytes` exceed
    ``free_bytes`` of GPU memory; return the estimate otherwise."""
    need = device_bytes(pl, n_steps, n_counts)
    if need["total"] > free_bytes:
        raise BiosimError(
            f"network too big for the GPU: needs about {need['total'] / 2**30:.2f} GiB "
            f"({len(pl.tgt)} synapses x {need['per_synapse']:.4g} bytes = {need['synapses'] / 2**30:.2f} GiB), "
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
        self.lanes = 1 if simulator_enabled() else 8
        from biosim.backends.cuda_kernels import build_kernels

        self.k = build_kernels(specs, syn_specs, self.TPB, self.lanes)
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

    def _launch(self, name, n, *args, block=None, shared=0):
        """Launch kernel ``name`` on ``n`` threads, with ``shared`` bytes of dynamic shared memory."""
        block = block or self.TPB
        grid = max(1, -(-n // block))
        if self.launches is not None:
            self.launches.append((name, self.k[name], args))
            return
        self.k[name][grid, block, 0, shared](*args)

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
        res = _resident(pl) if self.launches is None else _Resident(pl)
        d = self._upload(pl, res, inp, n_steps)
        L, P, M = pl.hist.shape[0], len(pl.pop_model), len(pl.mon_row)
        every = int(pl.mon_every)
        rec_steps = [kk for kk in range(n_steps) if M and (step0 + kk) % every == 0]
        rec_row = {kk: r for r, kk in enumerate(rec_steps)}
        d["rec"] = self._empty((max(len(rec_steps), 1), max(M, 1)), out.rec.dtype)
        buf = d["sp_idx"].shape[0]
        ctl = np.zeros(CTL_LEN, np.int64)
        ctl[ERRKEY] = NO_ERROR
        in_ptr = d.pop("in_ptr")
        if n_steps == 0:  # launch every kernel once, stopped: each compiles (real GPU) and returns at once
            ctl[STATUS] = _WARM_UP
            d["ctl"] = self._to(ctl)
            try:
                self._step(d, res, 0, step0, L, N, P, M, -1, 0, 0)
            except Exception as exc:
                _raise_if_no_compiler(exc)
                raise
            if self.launches is None:
                self.cuda.synchronize()
            return OK, 0, sp_n, rec_n, -1, -1, -1
        res.device_newer = True
        status, done, k, c = OK, n_steps, 0, ctl
        while k < n_steps:
            room = cap - sp_n
            if room < N:  # the CPU's rule: a step needs room for N spikes
                status, done = BUFFER_FULL, k
                break
            ctl[STATUS], ctl[SP_N], ctl[LIMIT], ctl[EV_MAX] = OK, 0, min(room, buf), 0
            d["ctl"] = self._to(ctl)
            k1 = min(k + _BATCH, n_steps)
            for kk in range(k, k1):
                self._step(d, res, kk, step0 + kk, L, N, P, M, rec_row.get(kk, -1), int(in_ptr[kk]), int(in_ptr[kk + 1]))
            c = self._host(d["ctl"])
            n_new = int(c[SP_N])
            if n_new:
                out.sp_step[sp_n:sp_n + n_new] = self._host(d["sp_step"][:n_new])
                out.sp_idx[sp_n:sp_n + n_new] = self._host(d["sp_idx"][:n_new])
                sp_n += n_new
            if c[EV_MAX] > res.ev_rows:
                self._grow_events(res, int(c[EV_MAX]))
            if c[ERRKEY] != NO_ERROR:
                status, done = NOT_FINITE, int(c[ERRSTEP]) + 1
                break
            k = int(c[DONE]) if c[STATUS] == BUFFER_FULL else k1
        n_rec = sum(1 for kk in rec_steps if kk < done)
        if n_rec:
            out.rec[rec_n:rec_n + n_rec] = self._host(d["rec"])[:n_rec]
        if status == NOT_FINITE:
            rest, i = divmod(int(c[ERRKEY]), N)
            p, r = divmod(rest, pl.X.shape[0])
            return status, done, sp_n, rec_n + n_rec, p, r, i
        return status, done, sp_n, rec_n + n_rec, -1, -1, -1

    def _grow_events(self, res, need: int) -> None:
        """More rows for the event buffer, after a target had ``need`` events in one step (up to
        the largest in-degree and ``_EVENT_BUDGET``; a target with more walks the spikes' rows)."""
        rows = min(1 << (need - 1).bit_length(), res.ev_cap)
        if rows <= res.ev_rows:
            return
        try:
            res.dev["ev"] = self._empty((rows, res.dev["ev"].shape[1]), np.int64)
        except Exception:  # noqa: BLE001 - out of GPU memory: keep the buffer it has (still exact)
            return
        res.ev_rows = rows

    def _upload(self, pl, res, inp, n_steps) -> dict:
        """Device arrays of one call: the plan's arrays (copied when the host changed them, else
        the device's own), this call's inputs and the work arrays."""
        dev = res.dev
        for name in sorted(res.stale):
            a = getattr(pl, name)
            dev[name] = self._to(a.astype(np.int32) if name in _INT32_ON_DEVICE else a)
        res.stale.clear()
        N = pl.X.shape[1]
        if "ev" not in dev:
            nb = -(-N // self.TPB)
            dev["pop_of"] = self._to(res.pop_of)
            dev["spiked"] = self._empty(N, np.int8)
            dev["flags"] = self._empty(N, np.int64)
            dev["incl"] = self._empty(N, np.int64)
            dev["bsum"] = self._empty(nb, np.int64)
            dev["boff"] = self._empty(nb, np.int64)
            dev["ev"] = self._empty((res.ev_rows, max(N, 1)), np.int64)
            dev["ev_cnt"] = self._to(np.zeros(max(N, 1), np.int32))
            dev["sp_step"] = self._empty(max(_SPIKE_BUF_MIN, 4 * N), np.int64)
            dev["sp_idx"] = self._empty(max(_SPIKE_BUF_MIN, 4 * N), np.int32)
        d = dict(dev)
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
        d["zero"] = pl.X.dtype.type(0)
        d["on_post"] = bool(np.any(pl.pr_rptr >= 0))
        return d

    def _step(self, d, res, kk, s, L, N, P, M, rec_row, e0, e1):
        """Launch the kernels of one step (local index ``kk``, global step ``s``)."""
        slot = s % L
        V = d["X"].shape[0]
        ctl = d["ctl"]
        n_pre = max(d["hist_cnt"].shape[1], M, d["xpre"].shape[0], d["xpost"].shape[0])
        self._launch("pre", n_pre, ctl, kk, slot, N, d["hist_cnt"], d["X"], d["mon_row"], d["mon_idx"],
                     d["rec"], rec_row, d["st_c"], d["st_proj"], d["st_pre_off"], d["st_post_off"], d["st_tgt_grp"],
                     d["pr_grp"], d["grp_off"], d["pop_off"], d["xpre"], d["xpost"])
        self._launch("step", N, ctl, kk, s, d["X"], d["C"], d["pop_of"], d["pop_model"], d["pop_nvar"], d["i_ext"],
                     d["ref_until"], d["rec_spikes"], d["flags"], d["incl"], d["bsum"], shared=8 * self.TPB)
        self._launch("scan", self.TPB, ctl, d["bsum"], d["boff"], shared=8 * self.TPB)
        self._launch("compact", N + e1 - e0, ctl, s, slot, d["pop_of"], d["pop_off"], d["pop_ref"], d["flags"],
                     d["incl"], d["boff"], d["ref_until"], d["spiked"], d["hist"], d["hist_cnt"],
                     d["sp_step"], d["sp_idx"], e0, e1, d["in_src"], d["in_grp"], d["in_pos"], d["in_cnt"],
                     d["grp_off"])
        # a grid-stride loop over the arriving spikes: as many threads as could arrive, at most
        # 1024 blocks (one block in the simulator, where every thread is a Python thread)
        n_scatter = self.TPB if simulator_enabled() else min(res.entries * self.lanes, 1024 * self.TPB)
        self._launch("scatter", n_scatter, ctl, s, slot, d["grp_off"], d["hist"], d["hist_cnt"], d["pr_grp"],
                     d["pr_row"], d["pr_delay"], d["pr_ptr"], d["pr_stdp"], d["pr_syn"], d["indptr"], d["tgt"], d["dly"],
                     d["st_pre_off"], d["xpre"], d["ev"], d["ev_cnt"], res.E, res.D, res.KR, V)
        self._launch("deliver", N, ctl, kk, s, slot, d["X"], d["gate"], d["ref_until"], d["pop_of"], d["pop_off"],
                     d["grp_off"], d["hist"], d["hist_cnt"], d["counts"], d["pi_a"], d["pi_b"], d["pi_row"], d["pi_w"],
                     d["pi_col"], d["zero"], d["pr_grp"], d["pr_tgt"], d["pr_row"], d["pr_delay"], d["pr_ptr"],
                     d["pr_stdp"], d["pr_syn"], d["pr_c"], d["indptr"], d["tgt"], d["w"], d["dly"], d["st_c"],
                     d["st_post_off"], d["st_tgt_grp"], d["xpost"], d["S"], d["s_last"], P, d["ev"], d["ev_cnt"], res.E,
                     res.D, res.KR, d["pr_w"], d["pr_woff"])
        and_reset = not d["on_post"]
        self._launch("post", N, ctl, s, d["X"], d["C"], d["gate"], d["ref_until"], d["spiked"], d["pop_of"],
                     d["pop_off"], d["pop_model"], d["grp_off"], d["pr_grp"], d["pr_tgt"], d["pr_syn"], d["pr_c"],
                     d["pr_rptr"], d["rptr"], d["rsyn"], d["rsrc"], d["w"], d["st_c"], d["st_tgt_grp"],
                     d["st_rptr_off"], d["st_pre_off"], d["st_post_off"], d["xpre"], d["xpost"], d["S"], d["s_last"],
                     P, and_reset, d["st_proj"], d["pr_ptr"], d["indptr"], d["pr_woff"])
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
    be.run_chunk(pl, inp, out, 0, 0, 0, 0)
    ptx = {}
    for name, k, args in be.launches:
        if name in ptx:
            continue
        sig = tuple(typeof(a) for a in args)
        ptx[name], _ = cuda.compile_ptx(k.py_func, sig, cc=cc)
    return ptx

