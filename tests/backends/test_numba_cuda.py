"""The numba-cuda backend against numba-cpu, spike for spike, in numba-cuda's simulator.

The simulator must be switched on (``NUMBA_ENABLE_CUDASIM=1``) before Numba is first imported, and
it stays on for the whole process; pytest (and each xdist worker) has imported Numba long before
this file runs. So every comparison runs in a fresh process with the variable set: this file run
as a script (``python test_numba_cuda.py CASE``) builds the case's network on both backends and
prints what differs as JSON; the tests only read that. Nothing here changes this process's
environment, and no other test sees the simulator.

The networks are tiny (the simulator runs a Python thread per CUDA thread): CUBA (LIF), COBAHH
(HH), Brunel-style (delays homogeneous and per synapse, Poisson inputs, a spike generator with
per-synapse delays), spikes in flight through per-synapse delays converging on the same targets
(also with their weights changed between runs), STDP (additive and multiplicative, one with a
delay), the equation synapse model ``pair_stdp``, one population of every neuron model (built-in
and equation twins) in one network, and multapses with changes between runs (set_state,
set_params, normalize, a snapshot restored). The CUDA run is cut into two ``run`` calls (state
copied to the device and back between them); spikes, recorded states, weights and the plan's state
arrays must be equal bit for bit in float64 (and for CUBA and the in-flight network in float32).
Also: the ``run_chunk`` statuses (spike buffer full, NaN/inf) equal numba-cpu's; the one-line
errors without numba-cuda or without a GPU; the memory estimate (per-synapse delays add their 2
bytes a synapse, nothing per ring slot and neuron); the kernels compile for a real GPU (PTX, where
NVVM is installed). Tests marked ``gpu`` run on a real GPU and are skipped without one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from biosim import HH, LIF, STDP, BiosimError, FixedProbability, Network

HERE = Path(__file__).resolve()
TESTS = HERE.parents[1]
HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
needs_numba_cuda = pytest.mark.skipif(not HAS_NUMBA_CUDA, reason='numba-cuda is not installed (pip install -e ".[dev]")')


# ------------------------------------------------------------------------------------------------
# The networks (each returns (net, duration_ms, plastic projections))


def _v0(lo, hi):
    return lambda rng, n: lo + (hi - lo) * rng.random(n)


def cuba(dtype="float64"):
    net = Network(dt_ms=0.1, dtype=dtype, seed=3)
    exc = net.population("exc", LIF(), 24, init={"v": _v0(-51.0, -49.5)})
    inh = net.population("inh", LIF(), 6, init={"v": _v0(-51.0, -49.5)})
    net.current(exc, 2.0)
    for src, var, w in ((exc, "ge", 6.5), (inh, "gi", -9.0)):
        for tgt in (exc, inh):
            net.connect(src, tgt, var, weight=w, rule=FixedProbability(p=0.3))
    net.monitor(exc, "v", indices=[0, 1, 5])
    return net, 3.0, []


def cobahh(dtype="float64"):
    net = Network(dt_ms=0.1, dtype=dtype, seed=4)
    exc = net.population("exc", HH(), 16, init={"v": _v0(-70.0, -50.0)})
    inh = net.population("inh", HH(), 4, init={"v": _v0(-70.0, -50.0)})
    net.current(exc, 400.0)
    for src, var, w in ((exc, "ge", 6.0), (inh, "gi", 67.0)):
        for tgt in (exc, inh):
            net.connect(src, tgt, var, weight=w, rule=FixedProbability(p=0.3))
    net.monitor(inh, "v", indices=[0], every=2)
    return net, 3.0, []


def brunel(dtype="float64"):
    net = Network(dt_ms=0.1, dtype=dtype, seed=5)
    p = LIF(tau_mem_ms=20.0, v_rest_mv=0.0, v_thresh_mv=20.0, v_reset_mv=10.0, t_ref_ms=2.0)
    exc = net.population("exc", p, 24, init={"v": _v0(0.0, 19.0)})
    inh = net.population("inh", p, 6, init={"v": _v0(0.0, 19.0)})
    net.poisson_input(exc, "v", n_sources=50, rate_hz=900.0, weight=0.5)
    net.poisson_input(inh, "v", n_sources=50, rate_hz=900.0, weight=0.5)
    net.connect(exc, exc, "v", weight=0.5, rule=FixedProbability(p=0.3), delay_ms=1.5)
    net.connect(exc, inh, "v", weight=0.5, rule=FixedProbability(p=0.3),
                delay_ms=lambda rng, n: rng.choice([0.0, 0.5, 1.0], n))
    net.connect(inh, exc, "v", weight=-2.5, rule=FixedProbability(p=0.3))
    gen = net.spike_generator("gen", 3, indices=[0, 1, 2, 2, 0, 1], times_ms=[0.1, 0.3, 0.3, 0.5, 0.5, 1.2])
    net.connect(gen, inh, "v", weight=3.0, delay_ms=lambda rng, n: rng.choice([0.0, 0.2], n))
    net.monitor(exc, "v", indices=[0, 3])
    return net, 3.0, []


_STDP_LIF = LIF(v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-55.0, t_ref_ms=1.0)


def stdp(dtype="float64"):
    net = Network(dt_ms=0.1, dtype=dtype, seed=6)
    inp = net.poisson_group("in", 20, 400.0)
    exc = net.population("exc", _STDP_LIF, 10, init={"v": _v0(-56.0, -55.01)})
    p1 = net.connect(inp, exc, "ge", weight=lambda rng, n: 3.0 + rng.random(n), rule=FixedProbability(p=0.5),
                     stdp=STDP(a_plus=0.05, a_minus=0.06, w_max=4.0))
    p2 = net.connect(exc, exc, "ge", weight=1.0, rule=FixedProbability(p=0.3), delay_ms=0.3,
                     stdp=STDP(a_plus=0.02, a_minus=0.03, w_max=2.0, multiplicative=True))
    return net, 3.0, [p1, p2]


def eq_stdp(dtype="float64"):
    from biosim.equations import library

    net = Network(dt_ms=0.1, dtype=dtype, seed=7)
    inp = net.poisson_group("in", 20, 400.0)
    exc = net.population("exc", _STDP_LIF, 10, init={"v": _v0(-56.0, -55.01)})
    model = library.pair_stdp(STDP(a_plus=0.05, a_minus=0.06, w_max=4.0))
    p1 = net.connect(inp, exc, synapse=model(), init={"w": 3.5}, rule=FixedProbability(p=0.5), delay_ms=0.2)
    return net, 3.0, [p1]


def all_models(dtype="float64"):
    """Three neurons of every model of the contract suite (built-in and equation twins), in its
    order (so numba-cpu loads the contract suite's cached kernel), driven to spike, each population
    connected to itself."""
    from contract_cases import CASES

    net = Network(dt_ms=0.1, dtype=dtype, seed=8)
    for name, case in CASES.items():
        params = case.params(case.network_params)
        lo, hi = case.v_range
        pop = net.population(name, params, 3, init=case.init(params, v=_v0(lo, hi)))
        net.current(pop, np.linspace(*case.drive, 3))
        net.connect(pop, pop, case.exc, weight=case.w_exc, rule=FixedProbability(p=0.5))
    return net, 2.0, []


def burst(dtype="float64"):
    """Many spikes reaching the same targets in the same step (a generator firing all its sources
    at once, an all-to-all projection with multapses added): the events each target sums, in an
    order that changes the float64 bits if it is not the CPU's."""
    from biosim import AllToAll, Explicit

    net = Network(dt_ms=0.1, dtype=dtype, seed=9)
    gen = net.spike_generator("gen", 12, indices=list(range(12)) * 3, times_ms=[0.2] * 12 + [0.5] * 12 + [0.9] * 12)
    exc = net.population("exc", LIF(), 10, init={"v": _v0(-52.0, -50.0)})
    net.connect(gen, exc, "ge", weight=lambda rng, n: 0.3 + rng.random(n), rule=AllToAll())
    net.connect(gen, exc, "ge", weight=lambda rng, n: 0.1 + rng.random(n),
                rule=Explicit(i=[5, 5, 5, 0, 11, 11], j=[3, 3, 7, 3, 3, 0]))
    net.connect(exc, exc, "gi", weight=lambda rng, n: -0.2 - rng.random(n), rule=AllToAll())
    net.monitor(exc, "ge", indices=[0, 3, 7])
    return net, 2.0, []


def in_flight(dtype="float64"):
    """Spikes in flight through per-synapse delays, of different ages and projections, reaching the
    same targets in the same step with weights of their own (the sums' bits depend on the order of
    additions), into two state rows, beside a homogeneous delay and direct spikes."""
    from biosim import AllToAll

    net = Network(dt_ms=0.1, dtype=dtype, seed=12)
    gen = net.spike_generator("gen", 8, indices=list(range(8)) * 3, times_ms=[0.1] * 8 + [0.3] * 8 + [0.4] * 8)
    a = net.population("a", LIF(), 6, init={"v": _v0(-52.0, -50.0)})

    def delays(rng, n):
        return rng.choice([0.0, 0.1, 0.2, 0.3, 0.4, 0.6], n)

    net.connect(gen, a, "ge", weight=lambda rng, n: 0.1 + rng.random(n), rule=AllToAll(), delay_ms=delays)
    net.connect(gen, a, "ge", weight=lambda rng, n: 0.1 + rng.random(n), rule=FixedProbability(p=0.5),
                delay_ms=delays)
    net.connect(gen, a, "ge", weight=0.7, rule=FixedProbability(p=0.5), delay_ms=delays)  # one weight
    net.connect(a, a, "gi", weight=lambda rng, n: -0.2 - rng.random(n), rule=AllToAll(), delay_ms=delays)
    net.connect(a, a, "ge", weight=0.3, rule=FixedProbability(p=0.5), delay_ms=0.2)
    net.monitor(a, "ge", indices=[0, 3])
    net.monitor(a, "gi", indices=[1])
    return net, 1.5, []


CASES = {"cuba": cuba, "cobahh": cobahh, "brunel": brunel, "stdp": stdp, "eq_stdp": eq_stdp, "all_models": all_models,
         "burst": burst, "in_flight": in_flight}


# ------------------------------------------------------------------------------------------------
# What runs in the subprocess


def _run(name: str, backend: str, dtype: str, split: bool):
    net, duration, projs = CASES[name](dtype)
    if split:
        net.run(duration / 3, backend=backend)
        res = net.run(duration - duration / 3)
    else:
        res = net.run(duration, backend=backend)
    return res, [net.weights(p)[2].copy() for p in projs], net._sim.plan


def compare(name: str, dtype: str = "float64") -> dict:
    """Differences between numba-cpu and numba-cuda (cut into two runs) on network ``name``."""
    a, wa, pa = _run(name, "numba-cpu", dtype, split=False)
    c, wc, pc = _run(name, "numba-cuda", dtype, split=True)
    diff = []
    n_spikes = 0
    for pop, (t, i) in a.spikes.items():
        n_spikes += len(t)
        if not (np.array_equal(t, c.spikes[pop][0]) and np.array_equal(i, c.spikes[pop][1])):
            diff.append(f"spikes of {pop}: {len(t)} on numba-cpu, {len(c.spikes[pop][0])} on numba-cuda")
    for key, (_, v) in a.states.items():
        if not np.array_equal(v, c.states[key][1]):
            diff.append(f"recorded {key}")
    for k, (x, y) in enumerate(zip(wa, wc)):
        if not np.array_equal(x, y):
            diff.append(f"weights of projection {k} (largest difference {np.abs(x - y).max()})")
    for field in ("X", "ref_until", "hist_cnt", "xpre", "xpost", "w", "S", "s_last"):
        if not np.array_equal(getattr(pa, field), getattr(pc, field)):
            diff.append(f"plan.{field}")
    from biosim.backends.numba_cuda import _resident

    return {"diff": diff, "n_spikes": n_spikes, "n_weights_changed": sum(int(np.sum(x != x[0])) for x in wa),
            "event_rows": _resident(pc).ev_rows}


def _between_runs_net():
    """Multapses (repeated pairs, sources out of order), a population whose spikes are not recorded,
    STDP from a Poisson group, a delayed projection, monitors every 3 steps."""
    from biosim import Explicit

    net = Network(dt_ms=0.1, seed=11)
    a = net.population("a", LIF(), 8, init={"v": _v0(-51.0, -49.5)})
    b = net.population("b", LIF(), 5, init={"v": _v0(-51.0, -49.5)}, record_spikes=False)
    inp = net.poisson_group("in", 6, 500.0)
    net.connect(a, b, "ge", weight=lambda rng, n: 2 + rng.random(n),
                rule=Explicit(i=[3, 0, 0, 3, 7, 0, 3], j=[1, 1, 1, 4, 0, 2, 1]))
    net.connect(inp, a, "ge", weight=2.5, rule=FixedProbability(p=0.5), stdp=STDP(a_plus=0.05, a_minus=0.06, w_max=4.0))
    net.connect(b, a, "gi", weight=-3.0, rule=FixedProbability(p=0.5), delay_ms=0.4)
    net.connect(a, b, "ge", weight=lambda rng, n: 1 + rng.random(n), rule=FixedProbability(p=0.6),
                delay_ms=lambda rng, n: 1.5 * rng.random(n))  # in flight at every change below
    net.monitor(a, "v", indices=[0, 2], every=3)
    net.monitor(b, "ge", indices=[1], every=3)
    return net


def between_runs() -> dict:
    """set_state, set_params and normalize between runs, then a snapshot restored into a new
    network: numba-cuda (which copies the plan at every call) against numba-cpu."""
    def scenario(backend):
        net = _between_runs_net()
        a = net.populations[0]
        net.run(1.0, backend=backend)
        net.set_state(a, "v", -50.2)
        net.set_params(a, LIF(v_thresh_mv=-50.5))
        net.normalize(net.projections[1], 5.0)
        net.normalize(net.projections[3], 3.0)
        net.run(1.3)
        snap = net.snapshot()
        r = net.run(0.7)
        other = _between_runs_net()
        other.run(0, backend=backend)
        other.restore(snap)
        r2 = other.run(0.7)
        return [(r.spikes, r.states, np.concatenate([net.weights(net.projections[k])[2] for k in (1, 3)])),
                (r2.spikes, r2.states, np.concatenate([other.weights(other.projections[k])[2] for k in (1, 3)]))]

    def same(x, y):
        return (all(np.array_equal(x[0][k][0], y[0][k][0]) and np.array_equal(x[0][k][1], y[0][k][1]) for k in x[0])
                and all(np.array_equal(x[1][k][1], y[1][k][1]) for k in x[1]) and np.array_equal(x[2], y[2]))

    cpu, gpu = scenario("numba-cpu"), scenario("numba-cuda")
    return {"continued": same(cpu[0], gpu[0]), "restored": same(cpu[0], gpu[1]),
            "n_spikes": sum(len(t) for t, _ in cpu[0][0].values())}


def in_flight_set_weights() -> dict:
    """``in_flight``'s network run, its per-synapse-delay projections given new weights on the host
    while spikes are in flight through them, run again: numba-cuda against numba-cpu (weights read
    when a spike arrives)."""
    def scenario(backend):
        net = in_flight()[0]
        net.run(0.45, backend=backend)
        pl = net._sim.plan
        gen = len(net.populations)  # the generator's source group (populations first)
        sent = int(pl.hist_cnt[:, gen].sum())  # its spikes in the ring: some still in flight
        for k, values in ((0, lambda rng, n: 2.0 * rng.random(n)), (2, 1.1), (3, lambda rng, n: -rng.random(n))):
            net.set_weights(net.projections[k], values)
        r = net.run(1.0)
        return r, net._sim.plan, sent

    (a, pa, sent), (c, pc, _) = scenario("numba-cpu"), scenario("numba-cuda")
    same_spikes = all(np.array_equal(a.spikes[p][k], c.spikes[p][k]) for p in a.spikes for k in (0, 1))
    same_states = all(np.array_equal(a.states[key][1], c.states[key][1]) for key in a.states)
    return {"spikes": same_spikes, "states": same_states, "X": bool(np.array_equal(pa.X, pc.X)), "sent": sent,
            "n_spikes": sum(len(t) for t, _ in a.spikes.values())}


def statuses() -> dict:
    """``run_chunk`` called directly on both backends with the same plan: a spike buffer with room
    for a few steps (BUFFER_FULL), then NaN in a state variable (NOT_FINITE)."""
    from biosim.backends.plan import ChunkInput, Outputs

    out = {}
    sims = {}
    for backend in ("numba-cpu", "numba-cuda"):
        net = cuba()[0]
        net.run(0.5, backend=backend)
        sims[backend] = net._sim
    N = sims["numba-cpu"].plan.X.shape[1]
    n = 20
    e = np.zeros(0, np.int64)
    inp = ChunkInput(np.zeros(n + 1, np.int64), e, e, np.zeros((n, 0), np.int32))
    for backend, sim in sims.items():
        o = Outputs(np.zeros(N + 3, np.int64), np.zeros(N + 3, np.int32), np.zeros((n, 3), sim.plan.X.dtype))
        full = sim.run_chunk(sim.plan, inp, o, 5, n, 0, 0)
        sim.plan.X[0, 7] = np.nan
        sim.plan.X[1, 3] = np.inf
        o2 = Outputs(np.zeros(4 * N, np.int64), np.zeros(4 * N, np.int32), np.zeros((n, 3), sim.plan.X.dtype))
        nan = sim.run_chunk(sim.plan, inp, o2, 5 + full[1], n, 0, 0)
        out[backend] = {"full": [int(x) for x in full], "nan": [int(x) for x in nan],
                        "spikes": [o.sp_step[:full[2]].tolist(), o.sp_idx[:full[2]].tolist()],
                        "rec": o.rec[:full[3]].tolist(), "X_exc": sim.plan.X[:, :24].tolist()}
    return out


def ptx() -> dict:
    """Compile the kernels of every network for a real GPU (sm_90 PTX) without one."""
    import types

    import numba.cuda.dispatcher

    from biosim.backends.numba_cuda import compile_ptx

    # numba-cuda compiles device functions for the current device's compute capability; without a
    # GPU there is none, so name one (test only: a private name of numba-cuda 0.30)
    numba.cuda.dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))
    out = {}
    for name, build in CASES.items():
        try:
            out[name] = sorted(compile_ptx(build()[0]))
        except Exception as exc:  # noqa: BLE001 - reported to the test
            if "nvvm" in str(exc).lower() or "nvrtc" in str(exc).lower() or "libdevice" in str(exc).lower():
                return {"skip": f"no NVVM/NVRTC to compile with ({type(exc).__name__})"}
            raise
    return out


def errors() -> dict:
    """What asking for the backend says: without numba-cuda (its import blocked), and without a GPU."""
    from biosim.backends import get_backend

    out = {}
    saved = sys.modules.get("numba.cuda")
    sys.modules["numba.cuda"] = None  # `from numba import cuda` now raises ImportError
    try:
        get_backend("numba-cuda")
        out["missing"] = "no error"
    except BiosimError as exc:
        out["missing"] = str(exc)
    finally:
        if saved is None:
            del sys.modules["numba.cuda"]
        else:
            sys.modules["numba.cuda"] = saved
    from numba import cuda

    if cuda.is_available():
        out["no_gpu"] = "GPU"
    else:
        try:
            get_backend("numba-cuda")
            out["no_gpu"] = "no error"
        except BiosimError as exc:
            out["no_gpu"] = str(exc)
    return out


def bench() -> dict:
    """``biosim bench cuba --backend numba-cuda --sizes 20,30`` (5 steps), as JSON."""
    import contextlib
    import io

    from biosim.cli import main as cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli(["bench", "cuba", "--backend", "numba-cuda", "--sizes", "20,30", "--set", "bio_time_s=0.0005",
                  "--json"])
    return {"rc": rc, "report": json.loads(buf.getvalue())}


def _widen_shared_race() -> None:
    """Make the simulator's static shared arrays race every time: it allocates one on a thread's
    first call, check-then-set, so two threads of a block can each get their own (a block-wide scan
    then sums garbage). The kernels use dynamic shared memory, which the simulator allocates up
    front; this case fails if a static one comes back."""
    import time
    import traceback

    from numba.cuda.simulator import kernelapi

    def array(self, shape, dtype, alignment=None):
        if shape == 0:
            return original(self, shape, dtype, alignment)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]
        res = self._allocations.get(caller)
        if res is None:
            time.sleep(0.002)
            res = self._allocations[caller] = np.empty(shape, dtype)
        return res

    original = kernelapi.FakeCUDAShared.array
    kernelapi.FakeCUDAShared.array = array


def main(argv) -> None:
    sys.path.insert(0, str(TESTS / "contract"))
    sys.setswitchinterval(1e-4)  # the simulator's block manager polls its threads: hand the GIL over often
    what = argv[0]
    if what.endswith("@racy"):
        _widen_shared_race()
        what = what[:-len("@racy")]
    if what.endswith("@rows1"):  # an event buffer of one row: targets with more events walk the rows
        os.environ["BIOSIM_CUDA_EVENT_ROWS"] = "1"
        what = what[:-len("@rows1")]
    if what == "statuses":
        result = statuses()
    elif what == "ptx":
        result = ptx()
    elif what == "errors":
        result = errors()
    elif what == "bench":
        result = bench()
    elif what == "between_runs":
        result = between_runs()
    elif what == "in_flight_set_weights":
        result = in_flight_set_weights()
    else:
        name, _, dtype = what.partition(":")
        result = compare(name, dtype or "float64")
    print(json.dumps(result))


def _subprocess(what: str, simulator: bool = True, timeout: int = 300) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, str(HERE), what], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(TESTS.parent))
    assert proc.returncode == 0, f"{what} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------
# The tests


@needs_numba_cuda
@pytest.mark.parametrize("case", ["cuba", pytest.param("cobahh", marks=pytest.mark.slow), "brunel", "stdp",
                                  pytest.param("eq_stdp", marks=pytest.mark.slow),  # 45 s; stdp stays
                                  pytest.param("cuba:float32", marks=pytest.mark.slow),  # 50 s; in_flight:float32 stays
                                  "burst", "burst@rows1", "stdp@rows1",
                                  pytest.param("all_models", marks=pytest.mark.slow), "cuba@racy", "in_flight",
                                  "in_flight:float32", "in_flight@rows1"])
def test_same_spikes_states_and_weights_as_numba_cpu(case):
    r = _subprocess(case)
    assert r["diff"] == [], f"{case}: numba-cuda differs from numba-cpu in " + "; ".join(r["diff"])
    assert r["n_spikes"] > 0  # the comparison means something
    if case.startswith(("stdp", "eq_stdp")):
        assert r["n_weights_changed"] > 0
    if case in ("burst@rows1", "in_flight@rows1"):  # targets with many events in a step: the buffer grew
        assert r["event_rows"] > 1


@needs_numba_cuda
def test_statuses_equal_numba_cpu():
    r = _subprocess("statuses")
    cpu, gpu = r["numba-cpu"], r["numba-cuda"]
    assert cpu["full"][0] == 1 and 0 < cpu["full"][1] < 20  # BUFFER_FULL after a few steps
    assert gpu["full"] == cpu["full"]
    assert gpu["spikes"] == cpu["spikes"] and gpu["rec"] == cpu["rec"]
    assert cpu["nan"][0] == 2 and cpu["nan"][4:6] == [0, 0]  # NOT_FINITE: population 0, row 0 (v)
    assert gpu["nan"] == cpu["nan"]
    # the population with the NaN is as the CPU left it (the others are one step further on the GPU)
    assert np.array_equal(np.array(gpu["X_exc"]), np.array(cpu["X_exc"]), equal_nan=True)


@needs_numba_cuda
def test_changes_between_runs_and_snapshots():
    r = _subprocess("between_runs")
    assert r["n_spikes"] > 0
    assert r["continued"], "numba-cuda differs from numba-cpu after set_state/set_params/normalize between runs"
    assert r["restored"], "a snapshot restored on numba-cuda does not continue as numba-cpu does"


@needs_numba_cuda
def test_weights_changed_while_spikes_are_in_flight():
    r = _subprocess("in_flight_set_weights")
    assert r["sent"] > 0 and r["n_spikes"] > 0
    assert r["spikes"] and r["states"] and r["X"], f"numba-cuda differs from numba-cpu after set_weights: {r}"


@needs_numba_cuda
def test_errors_without_numba_cuda_or_gpu():
    r = _subprocess("errors", simulator=False, timeout=120)
    assert r["missing"].startswith("the numba-cuda backend needs the numba-cuda package")
    assert 'pip install -e ".[cuda]"' in r["missing"] and "\n" not in r["missing"]
    if r["no_gpu"] != "GPU":
        assert r["no_gpu"].startswith("no CUDA GPU found (numba-cuda")
        assert "set NUMBA_ENABLE_CUDASIM=1 (slow)" in r["no_gpu"] and "\n" not in r["no_gpu"]


@needs_numba_cuda
@pytest.mark.slow  # 80 s: every network's kernels compiled to sm_90 PTX
def test_kernels_compile_for_a_real_gpu():
    r = _subprocess("ptx", simulator=False)
    if "skip" in r:
        pytest.skip(r["skip"])
    kernels = ["compact", "deliver", "post", "pre", "reset", "scan", "scatter", "step"]
    assert r == {name: kernels for name in CASES}


def test_memory_estimate_and_refusal():
    from biosim.backends.numba_cuda import check_fits, device_bytes
    from biosim.network.compile import compile_network

    def per_synapse_cuba(dtype):  # cuba's network with a weight per synapse (the same values)
        net = cuba(dtype)[0]
        for p in net.projections:
            p.weight = lambda rng, n, w=p.weight: np.full(n, w)
        return net

    for make, dtype, per_syn in ((cuba, "float32", 4), (cuba, "float64", 4),  # one weight per projection
                                 (per_synapse_cuba, "float32", 8), (per_synapse_cuba, "float64", 12)):
        net = make(dtype) if make is per_synapse_cuba else make(dtype)[0]
        pl = compile_network(net)
        est = device_bytes(pl)
        assert est["per_synapse"] == per_syn
        assert est["synapses"] == per_syn * len(pl.tgt) and est["total"] > est["synapses"]
        assert check_fits(pl, 2**40) == est
        with pytest.raises(BiosimError, match=r"network too big for the GPU: needs about .* GiB "
                                              rf"\({len(pl.tgt)} synapses x {per_syn} bytes") as e:
            check_fits(pl, 1000)
        assert "\n" not in str(e.value)
    assert device_bytes(compile_network(brunel()[0]))["per_synapse"] == 6  # per-synapse delays: 2 more


@needs_numba_cuda
def test_per_synapse_delays_add_only_their_2_bytes_on_the_gpu():
    """The device footprint of a network with per-synapse delays is that of the same network with
    one delay (the longest, so the same ring) plus 2 bytes per synapse: nothing per ring slot and
    neuron."""
    from biosim import Explicit
    from biosim.backends.numba_cuda import device_bytes
    from biosim.network.compile import compile_network

    i, j = np.repeat(np.arange(40), 40), np.tile(np.arange(40), 40)
    est = []
    for delay in (np.tile([0.0, 3.0, 1.0, 2.0, 0.5], 320), 3.0):
        net = Network(dt_ms=0.1, seed=1)
        a = net.population("a", LIF(), 40)
        net.connect(a, a, "ge", weight=0.5, rule=Explicit(i, j), delay_ms=delay)
        est.append(device_bytes(compile_network(net)))
    assert est[0]["total"] - est[1]["total"] == 2 * 1600
    assert est[0]["synapses"] - est[1]["synapses"] == 2 * 1600


def test_event_keys_out_of_range_are_one_line():
    """The in-flight events' keys span state rows x ring slots x projections x sources x row
    length, which must stay below 2**62: a network beyond is refused in one line."""
    from biosim.backends.numba_cuda import _event_keys
    from biosim.network.compile import compile_network

    pl = compile_network(in_flight()[0])
    V, L, R = pl.X.shape[0], pl.hist.shape[0], len(pl.pr_grp)
    assert _event_keys(pl, 8, 6) == L * R * 8 * 6
    with pytest.raises(BiosimError, match=rf"event keys of the numba-cuda backend: {V} state rows x {L} ring slots "
                                          rf"x {R} projections x {2**40} sources x {2**16} synapses per row") as e:
        _event_keys(pl, 2**40, 2**16)
    assert "\n" not in str(e.value)


@needs_numba_cuda
def test_bench_sizes_on_numba_cuda():
    r = _subprocess("bench")
    assert r["rc"] == 0
    rep = r["report"]
    assert rep["backend"] == "numba-cuda" and [s["n_neurons"] for s in rep["sizes"]] == [20, 30]
    for row in rep["sizes"]:
        s = row["biosim"]
        assert s["bytes_per_synapse"] == 4.0 and s["synapse_bytes"] == 4 * s["n_synapses"]  # one weight per projection
        assert s["device_bytes"] > s["synapse_bytes"] and s["loop_s"] > 0
        assert s["wall_per_bio_s"] == pytest.approx(s["loop_s"] / 0.0005)
        assert s["realtime_factor"] == pytest.approx(0.0005 / s["loop_s"])


def test_missing_cuda_compiler_is_one_line():
    from biosim.backends.numba_cuda import _raise_if_no_compiler

    with pytest.raises(BiosimError, match=r"numba-cuda cannot compile the kernels \(libNVVM cannot be found\.") as e:
        _raise_if_no_compiler(RuntimeError("libNVVM cannot be found. Do `conda install cudatoolkit`:\nlibnvvm.so"))
    assert 'pip install -e ".[cuda]"' in str(e.value) and "\n" not in str(e.value)
    assert _raise_if_no_compiler(ValueError("something else")) is None


def test_unknown_backend_names_numba_cuda():
    from biosim.backends import get_backend

    with pytest.raises(BiosimError, match=r"did you mean 'numba-cuda'"):
        get_backend("cuda")


def _skip_without_gpu() -> None:
    """Skip unless a real GPU can be used (numba.cuda is imported only here, when a gpu test runs)."""
    if not HAS_NUMBA_CUDA or os.environ.get("NUMBA_ENABLE_CUDASIM"):
        pytest.skip("needs a CUDA GPU (numba-cuda, simulator off)")
    from numba import cuda

    if not cuda.is_available():
        pytest.skip("needs a CUDA GPU")


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["cuba", "brunel", "stdp", "eq_stdp"])
def test_real_gpu_runs_like_numba_cpu(case):
    """On a GPU the maths differs in the last bits (fused multiply-adds, CUDA's exp): the spikes of
    these short runs agree up to a few, and all state stays finite."""
    _skip_without_gpu()
    a, _, pa = _run(case, "numba-cpu", "float64", split=False)
    c, _, pc = _run(case, "numba-cuda", "float64", split=True)
    na = sum(len(t) for t, _ in a.spikes.values())
    nc = sum(len(t) for t, _ in c.spikes.values())
    assert abs(na - nc) <= max(2, 0.05 * na)
    assert np.all(np.isfinite(pc.X))


if __name__ == "__main__":
    main(sys.argv[1:])
