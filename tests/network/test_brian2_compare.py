"""biosim against Brian2 2.9 (the reference), float64, Brian2's "numpy" code-generation target.

(a) a feed-forward network driven by fixed input spike times (spike generator -> LIF layer ->
    second layer, homogeneous and per-synapse delays, exc and inh projections, feedback, input
    straight into v, which ignores it while refractory in both): identical spike trains;
(b) CUBA (DESIGN.md section 5, 4000 neurons) rebuilt from Brian2's own synapse indices and initial
    v: identical spike trains (1 s here, 10 s per seed in the slow test) and v traces equal to
    ~1e-12 mV — they differ only by rounding (Brian2 works in volts with its own closed form);
(c) CUBA with independent random connectivity: mean rate and CV of the ISIs agree with Brian2's.

Brian2's helpers live in tests/brian2_helpers.py.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("brian2")

from brian2_helpers import brian2_cuba, brian2_feedforward, first_difference  # noqa: E402

from biosim import LIF, Explicit, Network  # noqa: E402
from biosim.experiments.networks import build_cuba  # noqa: E402

DT = 0.1


@pytest.fixture(autouse=True)
def _floating_point_errors_raise():
    """DESIGN.md section 3: the suite runs with ``np.seterr(all="raise")``."""
    with np.errstate(all="raise"):
        yield


def _steps(result, name):
    t, i = result.spikes[name]
    steps = np.round(np.asarray(t) / DT).astype(np.int64)
    order = np.lexsort((i, steps))
    return steps[order], np.asarray(i, dtype=np.int64)[order]


def _assert_same_trains(ours, theirs, what):
    d = first_difference(ours, theirs)
    assert d is None, f"{what}: spike trains differ from step {d} (t = {d * DT:.1f} ms) on"
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


# ------------------------------------------------------------------------------------------
# (a) feed-forward, fixed input spikes
# ------------------------------------------------------------------------------------------
def test_feedforward_with_delays_matches_brian2():
    rng = np.random.default_rng(2024)
    n_in, sizes, T = 60, {"l1": 100, "l2": 50}, 300.0
    # input spikes on the grid and off it (binned like Brian2: the step whose interval holds t)
    steps = rng.integers(0, int(250 / DT), 1500)
    times = np.round(steps * DT, 10) + np.where(rng.random(1500) < 0.3, rng.random(1500) * 0.09, 0.0)
    idx = rng.integers(0, n_in, 1500)
    bins = np.floor((times + 1e-4) / DT).astype(int)
    _, keep = np.unique(np.stack([idx, bins]), axis=1, return_index=True)  # one spike per source and step
    idx, times = idx[keep], times[keep]
    order = np.argsort(times, kind="stable")
    idx, times = idx[order], times[order]

    def pairs(n_src, n_tgt, p):
        m = rng.random((n_src, n_tgt)) < p
        i, j = np.nonzero(m)
        return i, j

    projections = []
    for src, tgt, var, p, (lo, hi), delay in (
        ("in", "l1", "ge", 0.15, (2.0, 8.0), 1.0),
        ("l1", "l2", "ge", 0.2, (1.0, 5.0), 2.5),
        ("l1", "l2", "gi", 0.1, (-3.0, -1.0), 0.0),
        ("l2", "l1", "gi", 0.2, (-2.0, -0.5), 0.3),
        ("in", "l2", "ge", 0.05, (1.0, 4.0), 0.0),
        # straight into v, which is "unless refractory": Brian2 drops writes while refractory
        ("in", "l2", "v", 0.05, (2.0, 8.0), 0.0),
        ("l1", "l1", "v", 0.05, (0.5, 3.0), 0.5),
        # per-synapse delays (whole steps, 0 to 6 ms): spikes in flight, several due at a step
        ("in", "l1", "ge", 0.1, (1.0, 4.0), "per synapse"),
        ("l2", "l1", "gi", 0.2, (-2.0, -0.5), "per synapse"),
    ):
        n_src = n_in if src == "in" else sizes[src]
        i, j = pairs(n_src, sizes[tgt], p)
        w = lo + (hi - lo) * rng.random(len(i))
        if delay == "per synapse":
            delay = np.round(rng.integers(0, 61, len(i)) * DT, 10)
        projections.append((src, tgt, var, i, j, w, delay))
    v0 = {name: -60.0 + 10.0 * rng.random(n) for name, n in sizes.items()}

    theirs = brian2_feedforward(n_in, idx, times, sizes, projections, T, v0)

    net = Network(dt_ms=DT)
    groups = {"in": net.spike_generator("in", n_in, idx, times)}
    for name, n in sizes.items():
        groups[name] = net.population(name, LIF(), n, init={"v": v0[name]})
    for src, tgt, var, i, j, w, delay in projections:
        net.connect(groups[src], groups[tgt], var, weight=w, rule=Explicit(i, j), delay_ms=delay)
    r = net.run(T)

    for name in sizes:
        ours = _steps(r, name)
        assert len(ours[0]) > 100, f"layer {name} is too quiet to be a test"
        _assert_same_trains(ours, theirs[name], f"layer {name}")


# ------------------------------------------------------------------------------------------
# (b) CUBA, Brian2's own connectivity and initial values: spike for spike
# ------------------------------------------------------------------------------------------
def _biosim_cuba_from(b):
    net = Network(dt_ms=DT, dtype="float64")
    pop = net.population("P", LIF(), len(b["v0_mv"]), init={"v": b["v0_mv"]})
    net.connect(pop, pop, "ge", weight=1.62, rule=Explicit(b["ce_i"], b["ce_j"]))
    net.connect(pop, pop, "gi", weight=-9.0, rule=Explicit(b["ci_i"], b["ci_j"]))
    return net, pop


def test_cuba_spike_for_spike_with_brian2():
    T, n_v = 1000.0, 40
    b = brian2_cuba(T, seed=1, record_v=n_v)
    net, pop = _biosim_cuba_from(b)
    net.monitor(pop, "v", indices=np.arange(n_v))
    r = net.run(T)
    ours = _steps(r, "P")
    assert len(ours[0]) > 4000 * 3  # CUBA fires at ~5 Hz
    _assert_same_trains(ours, (b["steps"], b["idx"]), "CUBA")
    # membrane potentials: equal up to rounding (Brian2 computes in volts with another closed form)
    v = r.states[("P", "v")][1]
    assert v.shape == b["v_mv"].shape
    assert np.max(np.abs(v - b["v_mv"])) < 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cuba_spike_for_spike_with_brian2_10s(seed):
    """Slow: ten seconds of CUBA (~220 000 spikes), still identical (measured: all 10 s, 3 seeds)."""
    T = 10_000.0
    b = brian2_cuba(T, seed=seed)
    net, _ = _biosim_cuba_from(b)
    _assert_same_trains(_steps(net.run(T), "P"), (b["steps"], b["idx"]), f"CUBA seed {seed}")


# ------------------------------------------------------------------------------------------
# (c) CUBA statistics with independent connectivity
# ------------------------------------------------------------------------------------------
def _rate_and_cv(steps, idx, n, T):
    """Mean rate (Hz) and the mean over neurons (with >= 3 spikes) of the CV of their ISIs."""
    rate = len(steps) / n / (T * 1e-3)
    order = np.lexsort((steps, idx))
    steps, idx = steps[order], idx[order]
    bounds = np.searchsorted(idx, np.arange(n + 1))
    cvs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a >= 3:
            isi = np.diff(steps[a:b]).astype(float)
            cvs.append(isi.std() / isi.mean())
    return rate, float(np.mean(cvs))


CUBA_CFG = dict(dt_ms=DT, dtype="float64", p_connect=0.02, n_exc=3200, n_inh=800, we_mv=1.62, wi_mv=-9.0)


def _cuba_statistics(n_seeds, T):
    ours, theirs = [], []
    for k in range(n_seeds):
        r = build_cuba(CUBA_CFG, seed=k).run(T)
        s_e, i_e = _steps(r, "exc")
        s_i, i_i = _steps(r, "inh")
        ours.append(_rate_and_cv(np.concatenate([s_e, s_i]), np.concatenate([i_e, i_i + 3200]), 4000, T))
        b = brian2_cuba(T, seed=1000 + k)
        theirs.append(_rate_and_cv(b["steps"], b["idx"], 4000, T))
    return np.array(ours), np.array(theirs)


@pytest.mark.slow  # 33 s; test_cuba_spike_for_spike_with_brian2 stays in the default suite
def test_cuba_rate_and_cv_agree_with_brian2():
    """8 independent networks each, 1 s. Between networks the rate varies by ~4.4 % (quenched
    connectivity; measured over 20 seeds) and the CV by ~2 %, so the difference of two 8-network
    means has a spread of ~2.2 % (rate) and ~1 % (CV): tolerances 7 % and 3 % are about 3 sigma.
    The slow test below checks the rate to 3 % with 40 networks each."""
    ours, theirs = _cuba_statistics(8, 1000.0)
    (r_ours, cv_ours), (r_theirs, cv_theirs) = ours.mean(0), theirs.mean(0)
    assert 4.0 < r_theirs < 8.0 and 0.5 < cv_theirs < 1.2  # Brian2's CUBA regime
    assert abs(r_ours / r_theirs - 1) < 0.07, (r_ours, r_theirs)
    assert abs(cv_ours / cv_theirs - 1) < 0.03, (cv_ours, cv_theirs)


@pytest.mark.slow
def test_cuba_rate_and_cv_agree_with_brian2_within_3_percent():
    """40 networks each, 1 s: the spread of the difference of means is ~1 % (rate), ~0.45 % (CV),
    so 3 % is ~3 sigma for the rate and ~6 sigma for the CV."""
    ours, theirs = _cuba_statistics(40, 1000.0)
    (r_ours, cv_ours), (r_theirs, cv_theirs) = ours.mean(0), theirs.mean(0)
    assert abs(r_ours / r_theirs - 1) < 0.03, (r_ours, r_theirs)
    assert abs(cv_ours / cv_theirs - 1) < 0.03, (cv_ours, cv_theirs)
