"""One weight per projection (issue 14): a projection built with one number as its weight and
without plasticity keeps that number once (``Plan.pr_w``), so its synapses cost their 4-byte
target only; one with per-synapse weights (an array, ``f(rng, n)``) or STDP keeps a weight per
synapse (``Plan.w``). The two give the same spikes, states and weights, bit for bit, on every
backend: the number added is the same.

The numba-cuda comparison runs in a fresh process with ``NUMBA_ENABLE_CUDASIM=1`` (this file run as
a script, as in ``tests/backends/test_numba_cuda.py``).
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

from biosim import LIF, STDP, AllToAll, BiosimError, FixedProbability, Network, OneToOne
from biosim.experiments.networks import build_cuba
from biosim.network.compile import estimate_bytes

HERE = Path(__file__).resolve()
HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None


def _v0(lo, hi):
    return lambda rng, n: lo + (hi - lo) * rng.random(n)


def _w(value, per_synapse):
    """``value`` as one weight, or as the same value for each synapse (``f(rng, n)``)."""
    return (lambda rng, n: np.full(n, value)) if per_synapse else value


def small_net(per_synapse: bool, dtype: str = "float64", seed: int = 3):
    """CUBA-like, with one weight per projection (or the same values per synapse): exc/inh LIF,
    a projection with per-synapse delays, one with a homogeneous delay, a plastic one from a
    Poisson group (always per-synapse) and a spike generator."""
    net = Network(dt_ms=0.1, dtype=dtype, seed=seed)
    exc = net.population("exc", LIF(), 24, init={"v": _v0(-60.0, -50.0)})
    inh = net.population("inh", LIF(), 6, init={"v": _v0(-60.0, -50.0)})
    net.current(exc, 2.0)
    for src, var, w in ((exc, "ge", 6.5), (inh, "gi", -9.0)):
        for tgt in (exc, inh):
            net.connect(src, tgt, var, weight=_w(w, per_synapse), rule=FixedProbability(p=0.3))
    net.connect(exc, exc, "v", weight=_w(0.7, per_synapse), rule=FixedProbability(p=0.2),
                delay_ms=lambda rng, n: rng.choice([0.0, 0.3, 0.5], n))
    net.connect(inh, exc, "gi", weight=_w(-1.25, per_synapse), rule=FixedProbability(p=0.3), delay_ms=0.4)
    inp = net.poisson_group("in", 10, 400.0)
    net.connect(inp, exc, "ge", weight=2.5, rule=FixedProbability(p=0.5), stdp=STDP(a_plus=0.05, a_minus=0.06, w_max=4.0))
    gen = net.spike_generator("gen", 3, indices=[0, 1, 2, 2], times_ms=[0.1, 0.3, 0.5, 1.2])
    net.connect(gen, inh, "v", weight=_w(3.0, per_synapse), rule=AllToAll())
    net.monitor(exc, "v", indices=[0, 3, 7])
    net.monitor(exc, "ge", indices=[1, 2])
    return net


def _outcome(net, result) -> dict:
    out = {f"spikes {k}": (np.asarray(t), np.asarray(i)) for k, (t, i) in result.spikes.items()}
    out.update({f"state {k}": np.asarray(v) for k, (_, v) in result.states.items()})
    out.update({f"weights {q}": net.weights(p)[2] for q, p in enumerate(net.projections)})
    out["X"] = net._sim.plan.X.copy()
    return out


def _n_spikes(out: dict) -> int:
    return int(sum(len(v[0]) for k, v in out.items() if k.startswith("spikes")))


def _differences(a: dict, b: dict) -> list:
    assert a.keys() == b.keys()
    diff = []
    for k in a:
        x, y = a[k], b[k]
        same = (all(np.array_equal(u, v) for u, v in zip(x, y)) if isinstance(x, tuple)
                else x.dtype == y.dtype and np.array_equal(x, y))
        if not same:
            diff.append(k)
    return diff


def _run_both(backend: str, duration_ms: float, dtype: str = "float64", threads: int | None = None) -> tuple:
    """The shared-weight network (run in two calls) and the per-synapse one (in one call)."""
    shared, per = small_net(False, dtype), small_net(True, dtype)
    kw = {} if threads is None else {"threads": threads}
    shared.run(duration_ms / 3, backend=backend, **kw)
    r_shared = shared.run(duration_ms - duration_ms / 3)
    r_per = per.run(duration_ms, backend=backend, **kw)
    return shared, per, _outcome(shared, r_shared), _outcome(per, r_per)


# --- memory -----------------------------------------------------------------------------------

def _cuba(per_synapse: bool, dtype: str = "float64"):
    net = build_cuba(dict(dt_ms=0.1, n_exc=400, n_inh=100, p_connect=0.02, we_mv=1.62, wi_mv=-9.0, dtype=dtype), 1)
    if per_synapse:
        for p in net.projections:
            p.weight = _w(p.weight, True)
    return net


def _bytes_per_synapse(plan) -> float:
    """What ``biosim bench cuba --sizes`` reports as B/syn."""
    return (plan.tgt.nbytes + plan.w.nbytes + plan.dly.nbytes) / len(plan.tgt)


@pytest.mark.parametrize("dtype, per_synapse_bytes", [("float64", 12), ("float32", 8)])
def test_cuba_synapses_cost_4_bytes_with_one_weight_per_projection(dtype, per_synapse_bytes):
    from biosim.backends.numba_cuda import device_bytes

    shared, per = _cuba(False, dtype), _cuba(True, dtype)
    est_shared, est_per = estimate_bytes(shared), estimate_bytes(per)
    expected = sum(p.rule.expected(p.src.n, p.tgt.n) for p in shared.projections)
    # a weight per synapse twice at the layout's peak: drawn, and in the plan
    assert est_per - est_shared == pytest.approx(2 * (per_synapse_bytes - 4) * expected, abs=2)
    shared.run(0.0)
    per.run(0.0)
    a, b = shared._sim.plan, per._sim.plan
    assert len(a.tgt) == len(b.tgt) > 4000
    assert _bytes_per_synapse(a) == 4.0 and a.w.size == 0
    assert _bytes_per_synapse(b) == per_synapse_bytes and b.w.dtype == np.dtype(dtype)
    assert device_bytes(a)["per_synapse"] == 4 and device_bytes(b)["per_synapse"] == per_synapse_bytes
    assert a.pr_w.dtype == np.dtype(dtype) and list(a.pr_woff) == [-1] * 4
    np.testing.assert_array_equal(a.pr_w, np.array([1.62, 1.62, -9.0, -9.0], dtype=dtype))  # we, we, wi, wi
    assert list(b.pr_woff) == list(np.cumsum([0] + [len(p.i) for p in per.projections])[:-1])
    # the per-synapse view of the one weight takes no memory
    p0 = shared.projections[0]
    assert p0.w.strides == (0,) and len(p0.w) == len(p0.i) and not p0.w.flags.writeable


def test_mixed_plan_layout():
    net = small_net(False)
    net.run(0.0)
    pl = net._sim.plan
    plastic = net.projections[6]
    r = 6
    assert [int(x) for x in pl.pr_woff] == [-1, -1, -1, -1, -1, -1, 0, -1]  # only the plastic one has w
    assert len(pl.w) == len(plastic.i)
    np.testing.assert_array_equal(pl.pr_w[[0, 2, 4, 7]], [6.5, -9.0, 0.7, 3.0])
    assert pl.pr_w[r] == 0.0
    n_syn = len(pl.tgt)
    assert (pl.tgt.nbytes + pl.w.nbytes + pl.dly.nbytes) == 6 * n_syn + 8 * len(plastic.i)


# --- same results as per-synapse weights --------------------------------------------------------

@pytest.mark.parametrize("backend", ["numba-cpu", "numpy"])
def test_same_spikes_states_and_weights_as_per_synapse_weights(backend):
    shared, per, a, b = _run_both(backend, 15.0)
    assert _n_spikes(a) > 20  # a test that means something
    assert not np.all(a["weights 6"] == 2.5)  # STDP learnt
    assert _differences(a, b) == []
    assert shared._sim.plan.w.size < per._sim.plan.w.size


@pytest.mark.slow  # its own threaded kernel (about 40 s cold); tests/network/test_threads.py covers threads
def test_same_results_on_two_threads():
    _, _, a, b = _run_both("numba-cpu", 12.0, threads=2)
    _, _, c, _ = _run_both("numba-cpu", 12.0)
    assert _differences(a, b) == [] and _differences(a, c) == []


def test_float32_same_as_per_synapse_weights():
    _, _, a, b = _run_both("numba-cpu", 12.0, dtype="float32")
    assert a["X"].dtype == np.float32 and _differences(a, b) == []


def cuda_comparison() -> dict:
    """(In a process with the simulator on) what differs between the shared-weight network on
    numba-cuda and the per-synapse one on numba-cuda and on numba-cpu."""
    _, _, a, b = _run_both("numba-cuda", 5.0)
    cpu = small_net(True)
    c = _outcome(cpu, cpu.run(5.0, backend="numba-cpu"))
    return {"per_synapse": _differences(a, b), "cpu": _differences(a, c),
            "n_spikes": _n_spikes(a)}


@pytest.mark.slow  # about 60 s; tests/backends/test_numba_cuda.py runs shared-weight networks on the simulator too
@pytest.mark.skipif(not HAS_NUMBA_CUDA, reason='numba-cuda is not installed (pip install -e ".[dev]")')
def test_numba_cuda_simulator_same_as_per_synapse_weights():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[2]), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, str(HERE), "cuda"], env=env, capture_output=True, text=True, timeout=600,
                          cwd=str(HERE.parents[2]))
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["n_spikes"] > 0
    assert r["per_synapse"] == [] and r["cpu"] == []


# --- reading and setting weights -------------------------------------------------------------------

def test_weights_of_a_shared_projection_are_one_per_synapse():
    net = small_net(False)
    with pytest.raises(BiosimError, match="call run"):
        net.set_weights(net.projections[0], 1.0)
    net.run(1.0)
    proj = net.projections[0]
    i, j, w = net.weights(proj)
    assert len(i) == len(j) == len(w) == len(proj.i) > 0
    assert w.dtype == np.float64 and np.all(w == 6.5)
    w[:] = 0.0  # a copy: the network is unchanged
    assert np.all(net.weights(proj)[2] == 6.5)


def test_setting_one_common_value_changes_the_shared_weight():
    runs = {}
    for per_synapse in (False, True):
        net = small_net(per_synapse)
        net.run(2.0)
        net.set_weights(net.projections[0], 4.0)  # one number
        n = len(net.projections[2].i)
        net.set_weights(net.projections[2], np.full(n, -7.5))  # the same value for each synapse
        net.set_weights(net.projections[7], lambda rng, k: np.full(k, 2.0))
        assert np.all(net.weights(net.projections[0])[2] == 4.0)
        assert np.all(net.weights(net.projections[2])[2] == -7.5)
        if not per_synapse:
            assert net._sim.plan.pr_w[0] == 4.0 and net._sim.plan.pr_w[2] == -7.5 and net._sim.plan.pr_w[7] == 2.0
        runs[per_synapse] = _outcome(net, net.run(6.0))
    assert _differences(runs[False], runs[True]) == []
    assert not np.array_equal(runs[False]["X"], _outcome(*_plain_run())["X"])  # the new weights mattered


def _plain_run():
    net = small_net(False)
    net.run(2.0)
    return net, net.run(6.0)


def test_different_values_for_a_shared_projection_are_refused():
    net = small_net(False)
    net.run(1.0)
    proj = net.projections[0]
    n = len(proj.i)
    with pytest.raises(BiosimError, match=r"set_weights: the synapses exc -> exc were built with one weight \(6.5\), "
                                          r"kept once for all of them, so they cannot take different weights; .*"
                                          r"weight=lambda rng, n: np.full\(n, 6.5\)") as e:
        net.set_weights(proj, np.linspace(1.0, 2.0, n))
    assert "\n" not in str(e.value)
    with pytest.raises(BiosimError, match=r"normalize: the synapses exc -> exc were built with one weight"):
        net.normalize(proj, 10.0)  # FixedProbability: the in-degrees differ, so would the weights
    assert net._sim.plan.pr_w[0] == 6.5 and np.all(net.weights(proj)[2] == 6.5)  # unchanged
    with pytest.raises(BiosimError, match=rf"needs one value or {n} values"):
        net.set_weights(proj, [1.0, 2.0])
    with pytest.raises(BiosimError, match="non-finite"):
        net.set_weights(proj, np.nan)
    with pytest.raises(BiosimError, match="set_weights needs a projection of this network"):
        net.set_weights(net.populations[0], 1.0)
    # a projection with per-synapse weights takes different ones
    per = small_net(True)
    per.run(1.0)
    per.set_weights(per.projections[0], np.linspace(1.0, 2.0, len(per.projections[0].i)))
    np.testing.assert_array_equal(per.weights(per.projections[0])[2], np.linspace(1.0, 2.0, len(per.projections[0].i)))


def test_normalize_a_shared_projection_with_equal_in_degrees():
    net = Network(dt_ms=0.1, seed=2)
    a = net.population("a", LIF(), 5)
    b = net.population("b", LIF(), 4)
    full = net.connect(a, b, "ge", weight=2.0, rule=AllToAll())
    one = net.connect(a, a, "v", weight=1.0, rule=OneToOne())
    net.run(0.0)
    net.normalize(full, 4.0)  # every target: 5 synapses of 2.0 -> 0.8 each
    net.normalize(one, 3.0)
    assert np.all(net.weights(full)[2] == 0.8) and net._sim.plan.pr_w[0] == 0.8
    assert np.all(net.weights(one)[2] == 3.0)
    with pytest.raises(BiosimError, match="built with one weight"):
        net.normalize(full, [1.0, 2.0, 3.0, 4.0])


# --- snapshots ---------------------------------------------------------------------------------------

def test_snapshot_keeps_the_shared_weights(tmp_path):
    from biosim.network import snapshot

    net = small_net(False)
    net.run(2.0)
    net.set_weights(net.projections[0], 5.0)
    path = tmp_path / "snap.safetensors"
    snapshot.save(path, net.snapshot())
    r_on = net.run(4.0)
    other = small_net(False)
    other.run(0.0)
    other.restore(snapshot.load(path)[0])
    assert other._sim.plan.pr_w[0] == 5.0
    r_again = other.run(4.0)
    assert _differences(_outcome(net, r_on), _outcome(other, r_again)) == []
    # a snapshot of the same network built with per-synapse weights has another layout
    per = small_net(True)
    per.run(0.0)
    with pytest.raises(BiosimError, match="restore: the snapshot is of another network"):
        per.restore(snapshot.load(path)[0])


def test_version_2_snapshots_are_refused_in_one_line(tmp_path):
    from safetensors.numpy import save as st_save

    from biosim.network import snapshot

    arrays = {"plan.w": np.zeros(3)}
    blob = {"format": snapshot.FORMAT, "version": 2, "meta": {}, "extra": {}, "sha256": snapshot._digest(arrays)}
    path = tmp_path / "old.safetensors"
    path.write_bytes(st_save(arrays, metadata={"biosim": json.dumps(blob)}))
    with pytest.raises(BiosimError, match=r"format version 2, which kept a weight per synapse for every projection "
                                          r"and delayed input in an accumulator; this biosim \(version 3\) .* "
                                          r"start the run over") as e:
        snapshot.load(path)
    assert "\n" not in str(e.value)


if __name__ == "__main__":
    if sys.argv[1:] == ["cuda"]:
        print(json.dumps(cuda_comparison()))
