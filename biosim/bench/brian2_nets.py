"""The reference networks of DESIGN.md section 5 built in Brian2, for benchmarks and agreement tests.

Each builder follows Brian2's own example (``examples/CUBA.py``, ``examples/COBAHH.py``), reads the
same config keys as biosim's builder (``models/<name>.toml``), runs ``bio_time_s`` and returns a dict::

    {"target", "spikes": {pop: (times_ms, indices)}, "n_spikes", "loop_s", "loop_s_all", "setup_s",
     "compile_s", "peak_rss_mib", "i_j": {(src, tgt): (i, j)}, "n_synapses", "sizes": {pop: n},
     "duration_ms", "dt_ms"}

``loop_s`` is Brian2's own measure of its simulation loop: ``device._last_run_time``, which the
runtime device takes around the time-step loop of ``Network.run`` (after code generation and
compilation in ``before_run``) and the standalone binary around ``Network::run`` in C++ (CPU time,
with one thread equal to wall time). ``setup_s`` is everything else this call spent: building the
objects, generating and compiling code, for standalone also writing the project, starting the
binary and reading the results back; ``compile_s`` is the part spent compiling where Brian2 reports it
(``make`` for standalone, ``None`` for runtime, whose compilation happens inside ``setup_s``).

Identical networks: pass ``i_j`` (``{(src_pop, tgt_pop): (i, j)}``, local indices, as biosim's
projections hold them) and initial values (``v0`` for CUBA; ``init`` for COBAHH), for example from
:func:`biosim_arrays`. Without them Brian2 draws its own with ``seed``. The returned ``i_j`` is the
connectivity Brian2 actually used, so the other direction works too (biosim's
:class:`~biosim.network.connect.Explicit` rule).

Targets: ``"numpy"``/``"cython"`` (runtime) and ``"cpp_standalone"`` (built in a temporary folder
of its own per call; the device is reset to runtime afterwards, so several builds fit in one
process). ``threads`` (standalone only): 1 builds the plain serial project (``openmp_threads = 0``),
N > 1 builds it with OpenMP on N threads (``prefs.devices.cpp_standalone.openmp_threads = N``), a
separate project and g++ run per thread count. Standalone also reports ``peak_rss_mib``, the peak
resident memory of its binary (its largest run; measured by a small Python process that starts
it and reads its ``ru_maxrss``). ``connectivity=False`` leaves ``i_j`` out (None) and reads back
only the number of synapses, ``n_synapses`` (always in the result): for large networks, where
reading every synapse's indices back into Python would cost more memory than the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping

import numpy as np

from biosim.bench.common import spike_count
from biosim.errors import BiosimError, unknown
from biosim.experiments.config import get, params_from

__all__ = ["TARGETS", "brian2_cuba", "brian2_cobahh", "biosim_arrays", "CUBA_PATHWAYS"]

#: Brian2 code-generation targets this module can run.
TARGETS = ("numpy", "cython", "cpp_standalone")

#: Pathways of the E/I networks, in biosim's projection order: (source, target).
CUBA_PATHWAYS = (("exc", "exc"), ("exc", "inh"), ("inh", "exc"), ("inh", "inh"))


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise unknown("Brian2 target", target, TARGETS)


def _check_repeats(repeats) -> None:
    if not isinstance(repeats, int) or repeats < 1:
        raise BiosimError(f"repeats = {repeats!r} must be an integer >= 1")


def _check_threads(threads, target: str) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise BiosimError(f"threads = {threads!r} must be an integer >= 1")
    if threads > 1 and target != "cpp_standalone":
        raise BiosimError(f"Brian2's {target} target runs on one thread; threads = {threads} needs cpp_standalone")


#: started by Brian2 in place of ``./main`` (``run_cmd_unix``): runs the binary with the arguments
#: Brian2 gives, then writes the binary's peak resident memory (KiB, Linux's ru_maxrss) to a file
_RSS_WRAPPER = ("import resource, subprocess, sys\n"
                "rc = subprocess.call(sys.argv[2:])\n"
                "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
                "sys.exit(rc)\n")


@contextlib.contextmanager
def _brian2_session(target: str, threads: int = 1):
    """Select ``target`` for one build; afterwards restore the preferences and the device that was
    active before (standalone: a fresh project in a temporary folder, deleted afterwards, built
    serial for ``threads == 1`` and with OpenMP on ``threads`` threads otherwise)."""
    import brian2 as b2
    from brian2.devices.device import get_device, reset_device, set_device

    saved = {k: b2.prefs[k] for k in ("codegen.target", "devices.cpp_standalone.openmp_threads",
                                      "devices.cpp_standalone.run_cmd_unix")}
    folder = None
    try:
        if target == "cpp_standalone":
            folder = tempfile.mkdtemp(prefix="biosim_brian2_")
            b2.prefs["devices.cpp_standalone.openmp_threads"] = 0 if threads == 1 else int(threads)
            if threads > 1:  # the bench reports OpenMP's runs as they are; no warning on every build
                from brian2.utils.logger import BrianLogger

                BrianLogger.suppress_name("openmp")
            if os.name != "nt":
                b2.prefs["devices.cpp_standalone.run_cmd_unix"] = [
                    sys.executable, "-I", "-S", "-c", _RSS_WRAPPER, os.path.join(folder, "peak_rss_kib"), "./main"]
            set_device("cpp_standalone", build_on_run=False, directory=folder)
            get_device().reinit()  # a clean project even if an earlier build failed half-way
            get_device().activate(build_on_run=False, directory=folder)
        else:
            b2.prefs["codegen.target"] = target
            set_device("runtime")
        yield folder
    finally:
        if target == "cpp_standalone":
            get_device().reinit()  # forget this project, so that another build can follow
        reset_device()  # back to the device before set_device
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        for k, v in saved.items():
            b2.prefs[k] = v


def _run_and_time(net, duration, target: str, folder, t_start: float, repeats: int) -> dict:
    """Run ``net`` for ``duration`` (a Brian2 quantity) ``repeats`` times from the same initial
    state; return the timings (``loop_s`` the best, ``loop_s_all`` each, ``setup_s`` of the first).

    Runtime repeats restore the stored network and run again; standalone repeats start the built
    binary again (no new build)."""
    from brian2.devices.device import get_device

    device = get_device()
    compile_s = None
    loops, rss = [], []
    if target == "cpp_standalone":
        net.run(duration, namespace={})
        device.build(directory=folder, compile=True, run=True, with_output=False)
        compile_s = float(device.timers["compile"]["make"])
        loops.append(float(device._last_run_time))
        rss.append(_peak_rss_kib(folder))
        total = time.perf_counter() - t_start
        for _ in range(repeats - 1):
            device.run(directory=folder, with_output=False)
            loops.append(float(device._last_run_time))
            rss.append(_peak_rss_kib(folder))
    else:
        if repeats > 1:
            net.store("initial")
        net.run(duration, namespace={})
        loops.append(float(device._last_run_time))
        total = time.perf_counter() - t_start
        for _ in range(repeats - 1):
            net.restore("initial")
            net.run(duration, namespace={})
            loops.append(float(device._last_run_time))
    known = [r for r in rss if r is not None]
    return {"loop_s": min(loops), "loop_s_all": loops, "setup_s": max(total - loops[0], 0.0),
            "compile_s": compile_s, "peak_rss_mib": max(known) / 1024 if known else None}


def _peak_rss_kib(folder) -> int | None:
    """The peak resident memory (KiB) of the binary's last run, as the wrapper wrote it (None
    where it did not: not on Linux, or another ``run_cmd_unix``)."""
    try:
        with open(os.path.join(folder, "peak_rss_kib")) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _connect(syn, pathways, i_j, sizes, offsets, p):
    """Connect ``syn`` (one source population -> all neurons) from given per-pathway arrays, or
    with probability ``p`` when ``i_j`` is None."""
    if i_j is None:
        syn.connect(p=p)
        return
    ii, jj = [], []
    for src, tgt in pathways:
        if (src, tgt) not in i_j:
            raise BiosimError(f"i_j has no pathway {(src, tgt)!r} (needs {list(pathways)})")
        i, j = (np.asarray(a, dtype=np.int64).ravel() for a in i_j[(src, tgt)])
        if i.shape != j.shape:
            raise BiosimError(f"i_j[{(src, tgt)!r}]: i and j differ in length")
        if len(i) and (i.min() < 0 or i.max() >= sizes[src] or j.min() < 0 or j.max() >= sizes[tgt]):
            raise BiosimError(f"i_j[{(src, tgt)!r}]: indices out of range")
        ii.append(i)
        jj.append(j + offsets[tgt])
    syn.connect(i=np.concatenate(ii), j=np.concatenate(jj))


def _split_connectivity(syn, src, sizes, offsets) -> dict:
    i, j = np.asarray(syn.i[:], dtype=np.int64), np.asarray(syn.j[:], dtype=np.int64)
    out = {}
    for tgt in sizes:
        sel = (j >= offsets[tgt]) & (j < offsets[tgt] + sizes[tgt])
        out[(src, tgt)] = (i[sel], j[sel] - offsets[tgt])
    return out


def _spikes_by_pop(mon, sizes, offsets) -> dict:
    t_ms = np.asarray(mon.t_[:], dtype=np.float64) * 1e3
    idx = np.asarray(mon.i[:], dtype=np.int64)
    out = {}
    for name in sizes:
        sel = (idx >= offsets[name]) & (idx < offsets[name] + sizes[name])
        out[name] = (t_ms[sel], idx[sel] - offsets[name])
    return out


def _full_array(values, n: int, what: str) -> np.ndarray:
    """``values`` as one array over all neurons (exc first); accepts ``{"exc": .., "inh": ..}``."""
    if isinstance(values, Mapping):
        values = np.concatenate([np.asarray(values["exc"], dtype=np.float64).ravel(),
                                 np.asarray(values["inh"], dtype=np.float64).ravel()])
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.shape != (n,):
        raise BiosimError(f"{what} needs {n} values (exc then inh), got {arr.size}")
    return arr


def _result(target, mon, syns, sizes, offsets, timing, duration_ms, dt_ms, connectivity: bool = True) -> dict:
    spikes = _spikes_by_pop(mon, sizes, offsets)
    i_j = None
    if connectivity:
        i_j = {}
        for src, syn in syns.items():
            i_j.update(_split_connectivity(syn, src, sizes, offsets))
        i_j = {k: i_j[k] for k in CUBA_PATHWAYS}
        n_synapses = int(sum(len(i) for i, _ in i_j.values()))
    else:
        n_synapses = int(sum(len(syn) for syn in syns.values()))
    return {"target": target, "spikes": spikes, "n_spikes": spike_count(spikes),
            "i_j": i_j, "n_synapses": n_synapses, "sizes": dict(sizes),
            "duration_ms": duration_ms, "dt_ms": dt_ms, **timing}


def brian2_cuba(cfg: Mapping, seed: int, target: str = "cython", i_j: Mapping | None = None,
                v0=None, duration_s: float | None = None, repeats: int = 1, threads: int = 1,
                connectivity: bool = True) -> dict:
    """Brian2's CUBA example with the parameters of ``cfg`` (keys of ``models/cuba.toml``).

    Parameters
    ----------
    cfg : mapping
        ``n_exc``, ``n_inh``, ``p_connect``, ``we_mv``, ``wi_mv``, ``dt_ms``, ``bio_time_s`` and an
        optional ``neuron`` table of :class:`biosim.LIF` fields.
    seed : int
        Brian2's seed (connectivity and ``v0`` when not given).
    target : {"numpy", "cython", "cpp_standalone"}
    i_j : mapping (src, tgt) -> (i, j), optional
        Connectivity of the four pathways (``CUBA_PATHWAYS``), local indices.
    v0 : array of n_exc + n_inh (mV) or {"exc": .., "inh": ..}, optional
        Initial membrane potentials; default ``Vr + rand() * (Vt - Vr)`` as in the example.
    duration_s : float, optional
        Overrides ``cfg["bio_time_s"]``.
    repeats : int
        Timed runs of the same network from the same initial state (``loop_s`` is the best).
    threads : int
        cpp_standalone only: OpenMP threads (1: the serial build).
    connectivity : bool
        Return the synapses' indices as ``i_j`` (False: None; ``n_synapses`` only).
    """
    from biosim.neurons.lif import LIF

    _check_target(target)
    _check_repeats(repeats)
    _check_threads(threads, target)
    params = params_from(LIF, cfg.get("neuron"), "neuron")
    n_exc, n_inh = get(cfg, "n_exc", int, low=1), get(cfg, "n_inh", int, low=1)
    p = get(cfg, "p_connect", low=0.0, high=1.0)
    we, wi = get(cfg, "we_mv"), get(cfg, "wi_mv")
    dt_ms = get(cfg, "dt_ms", positive=True)
    bio_s = get(cfg, "bio_time_s", positive=True) if duration_s is None else float(duration_s)
    n = n_exc + n_inh
    v0 = None if v0 is None else _full_array(v0, n, "v0")
    sizes, offsets = {"exc": n_exc, "inh": n_inh}, {"exc": 0, "inh": n_exc}

    t_start = time.perf_counter()
    with _brian2_session(target, threads) as folder:
        import brian2 as b2
        from brian2 import mV, ms

        b2.seed(seed)
        b2.defaultclock.dt = dt_ms * ms
        ns = {"taum": params.tau_mem_ms * ms, "taue": params.tau_exc_ms * ms, "taui": params.tau_inh_ms * ms,
              "Vt": params.v_thresh_mv * mV, "Vr": params.v_reset_mv * mV, "El": params.v_rest_mv * mV,
              "we": we * mV, "wi": wi * mV}
        eqs = """
        dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
        dge/dt = -ge/taue : volt
        dgi/dt = -gi/taui : volt
        """
        P = b2.NeuronGroup(n, eqs, threshold="v>Vt", reset="v = Vr", refractory=params.t_ref_ms * ms,
                           method="exact", namespace=ns, name="P")
        if v0 is None:
            P.v = "Vr + rand() * (Vt - Vr)"
        else:
            P.v = v0 * mV
        P.ge = 0 * mV
        P.gi = 0 * mV
        Ce = b2.Synapses(P[:n_exc], P, on_pre="ge += we", namespace=ns, name="Ce")
        Ci = b2.Synapses(P[n_exc:], P, on_pre="gi += wi", namespace=ns, name="Ci")
        _connect(Ce, CUBA_PATHWAYS[:2], i_j, sizes, offsets, p)
        _connect(Ci, CUBA_PATHWAYS[2:], i_j, sizes, offsets, p)
        mon = b2.SpikeMonitor(P, name="spikes")
        net = b2.Network(P, Ce, Ci, mon)
        timing = _run_and_time(net, bio_s * b2.second, target, folder, t_start, repeats)
        return _result(target, mon, {"exc": Ce, "inh": Ci}, sizes, offsets, timing, bio_s * 1e3, dt_ms,
                       connectivity)


def brian2_cobahh(cfg: Mapping, seed: int, target: str = "cython", i_j: Mapping | None = None,
                  init: Mapping | None = None, duration_s: float | None = None, repeats: int = 1,
                  threads: int = 1, connectivity: bool = True) -> dict:
    """Brian2's COBAHH example with the parameters of ``cfg`` (keys of ``models/cobahh.toml``).

    ``init`` maps state variables (``v`` in mV, ``ge``/``gi`` in nS, ``m``/``n``/``h``) to arrays over
    all neurons (exc first); missing ones get the example's random initial values (or 0 for the
    gates). ``i_j``, ``threads`` and ``connectivity`` as for :func:`brian2_cuba`.
    """
    _check_target(target)
    _check_repeats(repeats)
    _check_threads(threads, target)
    from biosim.neurons.hh import HH

    hp = params_from(HH, cfg.get("neuron"), "neuron")
    n_exc, n_inh = get(cfg, "n_exc", int, low=1), get(cfg, "n_inh", int, low=1)
    p = get(cfg, "p_connect", low=0.0, high=1.0)
    we, wi = get(cfg, "we_ns", low=0.0), get(cfg, "wi_ns", low=0.0)
    dt_ms = get(cfg, "dt_ms", positive=True)
    bio_s = get(cfg, "bio_time_s", positive=True) if duration_s is None else float(duration_s)
    n = n_exc + n_inh
    init = {k: _full_array(v, n, f"init[{k!r}]") for k, v in (init or {}).items()}
    for k in init:
        if k not in ("v", "ge", "gi", "m", "n", "h"):
            raise unknown("COBAHH state variable", k, ("v", "ge", "gi", "m", "n", "h"))
    sizes, offsets = {"exc": n_exc, "inh": n_inh}, {"exc": 0, "inh": n_exc}

    t_start = time.perf_counter()
    with _brian2_session(target, threads) as folder:
        import brian2 as b2
        from brian2 import cm, mV, ms, msiemens, nS, siemens, ufarad, umetre

        b2.seed(seed)
        b2.defaultclock.dt = dt_ms * ms
        area = hp.area_um2 * umetre ** 2
        ns = {"Cm": hp.c_mem_uf_per_cm2 * ufarad * cm ** -2 * area,
              "gl": hp.g_leak_s_per_cm2 * siemens * cm ** -2 * area,
              "El": hp.e_leak_mv * mV, "EK": hp.e_k_mv * mV, "ENa": hp.e_na_mv * mV,
              "g_na": hp.g_na_ms_per_cm2 * msiemens * cm ** -2 * area,
              "g_kd": hp.g_kd_ms_per_cm2 * msiemens * cm ** -2 * area, "VT": hp.v_t_mv * mV,
              "taue": hp.tau_exc_ms * ms, "taui": hp.tau_inh_ms * ms, "Ee": hp.e_exc_mv * mV,
              "Ei": hp.e_inh_mv * mV, "we": we * nS, "wi": wi * nS, "Vthr": hp.v_thresh_mv * mV}
        eqs = b2.Equations("""
        dv/dt = (gl*(El-v)+ge*(Ee-v)+gi*(Ei-v)-
                 g_na*(m*m*m)*h*(v-ENa)-
                 g_kd*(n*n*n*n)*(v-EK))/Cm : volt
        dm/dt = alpha_m*(1-m)-beta_m*m : 1
        dn/dt = alpha_n*(1-n)-beta_n*n : 1
        dh/dt = alpha_h*(1-h)-beta_h*h : 1
        dge/dt = -ge*(1./taue) : siemens
        dgi/dt = -gi*(1./taui) : siemens
        alpha_m = 0.32*(mV**-1)*4*mV/exprel((13*mV-v+VT)/(4*mV))/ms : Hz
        beta_m = 0.28*(mV**-1)*5*mV/exprel((v-VT-40*mV)/(5*mV))/ms : Hz
        alpha_h = 0.128*exp((17*mV-v+VT)/(18*mV))/ms : Hz
        beta_h = 4./(1+exp((40*mV-v+VT)/(5*mV)))/ms : Hz
        alpha_n = 0.032*(mV**-1)*5*mV/exprel((15*mV-v+VT)/(5*mV))/ms : Hz
        beta_n = .5*exp((10*mV-v+VT)/(40*mV))/ms : Hz
        """)
        P = b2.NeuronGroup(n, model=eqs, threshold="v>Vthr",
                           refractory=hp.t_ref_ms * ms, method="exponential_euler", namespace=ns, name="P")
        Ce = b2.Synapses(P[:n_exc], P, on_pre="ge+=we", namespace=ns, name="Ce")
        Ci = b2.Synapses(P[n_exc:], P, on_pre="gi+=wi", namespace=ns, name="Ci")
        _connect(Ce, CUBA_PATHWAYS[:2], i_j, sizes, offsets, p)
        _connect(Ci, CUBA_PATHWAYS[2:], i_j, sizes, offsets, p)
        defaults = {"v": "El + (randn() * 5 - 5)*mV", "ge": "(randn() * 1.5 + 4) * 10.*nS",
                    "gi": "(randn() * 12 + 20) * 10.*nS"}
        units = {"v": mV, "ge": nS, "gi": nS, "m": 1, "n": 1, "h": 1}
        for var in ("v", "ge", "gi", "m", "n", "h"):
            if var in init:
                setattr(P, var, init[var] * units[var])
            elif var in defaults:
                setattr(P, var, defaults[var])
        mon = b2.SpikeMonitor(P, name="spikes")
        net = b2.Network(P, Ce, Ci, mon)
        timing = _run_and_time(net, bio_s * b2.second, target, folder, t_start, repeats)
        return _result(target, mon, {"exc": Ce, "inh": Ci}, sizes, offsets, timing, bio_s * 1e3, dt_ms,
                       connectivity)


def biosim_arrays(net) -> dict:
    """Connectivity and initial state of a biosim E/I network (populations ``exc`` and ``inh``),
    ready for the Brian2 builders: ``{"i_j": {(src, tgt): (i, j)}, "init": {var: values}}``.

    Compiles the network (``net.run(0.0)``) if it has not run yet; it must not have advanced."""
    if net._sim is None:
        net.run(0.0)
    sim = net._sim
    if sim.step != 0:
        raise BiosimError("biosim_arrays needs a network that has not been simulated yet")
    pops = {p.name: p for p in net.populations}
    i_j = {}
    for proj in net.projections:
        key = (proj.src.name, proj.tgt.name)
        if key in i_j:
            raise BiosimError(f"two projections {key!r}; biosim_arrays expects one per pathway")
        i_j[key] = (proj.i.copy(), proj.j.copy())
    plan = sim.plan
    spec = pops["exc"].spec
    a, b = plan.pop_off[pops["exc"].index], plan.pop_off[pops["inh"].index + 1]
    init = {var: np.asarray(plan.X[r, a:b], dtype=np.float64).copy() for r, var in enumerate(spec.var_names)}
    return {"i_j": i_j, "init": init}
