"""The engine against closed-form results (DESIGN.md section 3: analytic before regression).

- LIF subthreshold trajectories: constant input current, and the response to one synaptic input
  spike (exponential current), including ``tau_syn == tau_mem`` where Brian2's exact formula
  divides by zero. The reference is evaluated with mpmath at 50 digits.
- LIF f-I curve: the interspike interval against ``t_ref + tau ln((I - (v_reset - v_rest)) /
  (I - (v_thresh - v_rest)))`` within one step, and exactly against its discretisation.
- STDP: the weight change of one pre/post pair against the exponential window (additive and
  multiplicative), and the weight bounds.

Timing contract used throughout (DESIGN.md section 4): monitors record the state at the start of
step ``s`` (time ``s*dt``); a spike in step ``s`` is stamped ``s*dt`` and its synaptic effect is
applied after that step's state update, so it first shows in the state recorded at ``(s+1)*dt``.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from biosim import LIF, STDP, Explicit, Network, OneToOne

mpmath.mp.dps = 50
BACKENDS = ["numba-cpu", "numpy"]


@pytest.fixture(autouse=True)
def _floating_point_errors_raise():
    """DESIGN.md section 3: the suite runs with ``np.seterr(all="raise")``."""
    with np.errstate(all="raise"):
        yield


def _check_close(got, want, dtype, scale):
    """float64: ~1e-12 relative; float32: ~1e-5 relative (relative to the trace's scale)."""
    tol = 1e-12 if dtype == "float64" else 1e-5
    err = np.max(np.abs(np.asarray(got, dtype=np.float64) - want)) / scale
    assert err < tol, f"max relative error {err:.3g} >= {tol:g}"


# ------------------------------------------------------------------------------------------
# (a) subthreshold trajectories
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lif_constant_current_matches_closed_form(dtype, backend):
    """v(t) = v_rest + I + (v0 - v_rest - I) exp(-t / tau_mem) for constant I (in mV)."""
    dt, T = 0.1, 100.0
    p = LIF(tau_mem_ms=20.0, v_rest_mv=-65.0, v_thresh_mv=100.0, v_reset_mv=-65.0, t_ref_ms=0.0)
    amps = np.array([0.0, 3.0, 12.5, -7.0])
    v0 = np.array([-65.0, -70.0, -55.0, -60.0])
    net = Network(dt_ms=dt, dtype=dtype)
    pop = net.population("p", p, len(amps), init={"v": v0})
    net.current(pop, amps)
    net.monitor(pop, "v")
    r = net.run(T, backend=backend)
    times, v = r.states[("p", "v")]
    assert v.shape == (int(round(T / dt)), len(amps))
    t = np.arange(v.shape[0]) * dt  # exact grid times; Result times are the same grid
    np.testing.assert_allclose(times, t, rtol=1e-12)
    want = np.array([[float(p.v_rest_mv + a + (x0 - p.v_rest_mv - a) * mpmath.exp(-mpmath.mpf(k) * mpmath.mpf(dt) / 20))
                      for a, x0 in zip(amps, v0)] for k in range(v.shape[0])])
    _check_close(v, want, dtype, scale=65.0)
    assert len(r.spikes["p"][0]) == 0


def _psp_reference(t_since, w, tau_syn, tau_mem):
    """v - v_rest after a jump ``w`` in the synaptic current ``t_since`` ms ago (mpmath)."""
    s, w, ts, tm = (mpmath.mpf(x) for x in (t_since, w, tau_syn, tau_mem))
    if s < 0:
        return mpmath.mpf(0)
    if ts == tm:
        return w * s / tm * mpmath.exp(-s / tm)
    return w * ts / (ts - tm) * (mpmath.exp(-s / ts) - mpmath.exp(-s / tm))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tau_syn", [5.0, 20.0, 20.0 * (1 + 1e-9), 40.0],
                         ids=["tau5", "tau_eq_tau_mem", "tau_near_tau_mem", "tau40"])
def test_lif_synaptic_kernel_matches_closed_form(tau_syn, backend, dtype):
    """One input spike at step s0 into ge (and into gi with the opposite sign): the jump lands at
    the end of step s0, so ge(t) = w exp(-(t - T)/tau_syn) and v - v_rest = w tau_s/(tau_s - tau_m)
    (exp(-(t-T)/tau_s) - exp(-(t-T)/tau_m)) with T = (s0 + 1) dt; at tau_s == tau_m the limit
    w (t-T)/tau_m exp(-(t-T)/tau_m). Also a membrane starting away from rest, superposed."""
    dt, T, s0 = 0.1, 150.0, 100
    tau_mem = 20.0
    p = LIF(tau_mem_ms=tau_mem, tau_exc_ms=tau_syn, tau_inh_ms=tau_syn, v_rest_mv=-65.0,
            v_thresh_mv=100.0, v_reset_mv=-65.0, t_ref_ms=2.0)
    net = Network(dt_ms=dt, dtype=dtype)
    pop = net.population("p", p, 3, init={"v": np.array([-65.0, -65.0, -60.0])})
    gen = net.spike_generator("in", 1, [0], [s0 * dt])
    net.connect(gen, pop, "ge", weight=np.array([8.0, 0.0, 8.0]), rule=Explicit([0, 0, 0], [0, 1, 2]))
    net.connect(gen, pop, "gi", weight=np.array([0.0, -6.0, 0.0]), rule=Explicit([0, 0, 0], [0, 1, 2]))
    for var in ("v", "ge", "gi"):
        net.monitor(pop, var)
    r = net.run(T, backend=backend)
    v = r.states[("p", "v")][1]
    ge = r.states[("p", "ge")][1]
    gi = r.states[("p", "gi")][1]
    jump = (s0 + 1) * dt
    t = np.arange(v.shape[0]) * dt
    want_ge = np.array([float(8.0 * mpmath.exp(-(mpmath.mpf(k) * dt - mpmath.mpf(jump)) / tau_syn)) if k > s0 else 0.0
                        for k in range(len(t))])
    _check_close(ge[:, 0], want_ge, dtype, scale=8.0)
    _check_close(gi[:, 1], -6.0 / 8.0 * want_ge, dtype, scale=6.0)
    want_v = np.zeros((len(t), 3))
    for k in range(len(t)):
        since = mpmath.mpf(k) * mpmath.mpf(dt) - mpmath.mpf(jump)
        decay = mpmath.exp(-mpmath.mpf(k) * mpmath.mpf(dt) / tau_mem)
        want_v[k, 0] = float(-65 + _psp_reference(since, 8.0, tau_syn, tau_mem))
        want_v[k, 1] = float(-65 + _psp_reference(since, -6.0, tau_syn, tau_mem))
        want_v[k, 2] = float(-65 + 5 * decay + _psp_reference(since, 8.0, tau_syn, tau_mem))
    _check_close(v, want_v, dtype, scale=65.0)
    # The PSP is a real bump: its peak is where the closed form puts it.
    assert v[:, 0].max() > -65.0 + 1.0


# ------------------------------------------------------------------------------------------
# (b) f-I curve
# ------------------------------------------------------------------------------------------
def _isi_analytic(i_mv, p: LIF):
    above_reset, above_thresh = i_mv - (p.v_reset_mv - p.v_rest_mv), i_mv - (p.v_thresh_mv - p.v_rest_mv)
    return p.t_ref_ms + p.tau_mem_ms * math.log(above_reset / above_thresh)


def _crossing_steps(i_mv, p: LIF, dt):
    """m: the first number of integrated steps after which the exact solution from v_reset is
    above v_thresh; and the smallest distance (mV) of the two grid values around the crossing
    from v_thresh (how robust m is against rounding)."""
    def v(n):
        return p.v_rest_mv + i_mv + (p.v_reset_mv - p.v_rest_mv - i_mv) * math.exp(-n * dt / p.tau_mem_ms)

    t_cross = _isi_analytic(i_mv, p) - p.t_ref_ms
    m = math.floor(t_cross / dt) + 1
    return m, min(v(m) - p.v_thresh_mv, p.v_thresh_mv - v(m - 1))


def _isi_discrete(i_mv, p: LIF, dt):
    """The engine's ISI: k = t_ref/dt steps (Brian2's timestep), v frozen for k-1 steps after the
    spike step, then m integrated steps until v > v_thresh."""
    k = int((p.t_ref_ms + 1e-3 * dt) / dt)
    return (max(k - 1, 0) + _crossing_steps(i_mv, p, dt)[0]) * dt


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("t_ref", [0.0, 2.0, 2.05])
def test_lif_f_i_curve(t_ref, dtype):
    """rate = 1/(t_ref + tau ln((I - (v_reset - v_rest))/(I - (v_thresh - v_rest)))): spike times
    lie on the step grid, so every ISI is within one dt of the analytic ISI; more precisely it is
    the discretised ISI exactly, and the first spike comes m steps after the start."""
    dt, T = 0.1, 1000.0
    p = LIF(tau_mem_ms=20.0, v_rest_mv=-65.0, v_thresh_mv=-50.0, v_reset_mv=-65.0, t_ref_ms=t_ref)
    rheobase = p.v_thresh_mv - p.v_rest_mv
    amps = rheobase + np.array([0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 400.0])
    net = Network(dt_ms=dt, dtype=dtype)
    pop = net.population("p", p, len(amps), init={"v": p.v_reset_mv})
    net.current(pop, amps)
    below = net.population("below", p, 1, init={"v": p.v_reset_mv})  # just below rheobase: silent
    net.current(below, rheobase - 0.01)
    r = net.run(T)
    assert len(r.spikes["below"][0]) == 0
    times, idx = r.spikes["p"]
    robust_mv = 1e-9 if dtype == "float64" else 1e-3
    for n, amp in enumerate(amps):
        t_n = times[idx == n]
        assert len(t_n) >= 3, f"I = {amp} fired {len(t_n)} times"
        isi = np.diff(t_n)
        analytic = _isi_analytic(amp, p)
        want = _isi_discrete(amp, p, dt)
        m, margin = _crossing_steps(amp, p, dt)
        if margin <= robust_mv:  # the crossing is within rounding of a grid point: one step either way
            assert np.all(np.abs(isi - want) <= dt + 1e-9), (amp, isi[:5], want)
        else:
            # (a t_ref off the grid counts as timestep(t_ref) = int(t_ref/dt + 1e-3) steps, as in Brian2)
            t_ref_grid = int((t_ref + 1e-3 * dt) / dt) * dt
            assert np.all(np.abs(isi - (analytic - t_ref + t_ref_grid)) <= dt + 1e-9), (amp, isi[:5], analytic)
            np.testing.assert_allclose(isi, want, atol=1e-9, err_msg=f"I = {amp}")
            assert abs(t_n[0] - (m - 1) * dt) < 1e-9, (amp, t_n[0], m)
            rate = len(t_n) / (T * 1e-3)
            assert abs(rate - 1e3 / want) <= 1e3 / T + 1e-9
    # the rates themselves follow the analytic f-I curve to within the grid's resolution
    rates = np.array([np.sum(idx == n) for n in range(len(amps))]) / (T * 1e-3)
    isi_an = np.array([_isi_analytic(a, p) for a in amps]) - t_ref + int((t_ref + 1e-3 * dt) / dt) * dt
    assert np.all(np.abs(1e3 / rates - isi_an) <= dt + isi_an ** 2 / T * 1.01 + 1e-9)


# ------------------------------------------------------------------------------------------
# (c) STDP window and bounds
# ------------------------------------------------------------------------------------------
def _plastic_weights(net, proj):
    """Current weights of projection ``proj`` (synapse order of ``proj.i``/``proj.j``)."""
    return net.weights(proj)[2].astype(np.float64)


def _pair_network(dt, t_pre_list, t_post_list, stdp, w0, backend, dtype="float64", n_pairs=1):
    """``n_pairs`` independent pairs: pre source k (a generator) -> post neuron k (plastic, into ge
    with a tiny effect), post neuron k forced to spike by a strong non-plastic input to v one step
    before each wanted post time."""
    p = LIF(tau_mem_ms=20.0, v_rest_mv=-65.0, v_thresh_mv=-50.0, v_reset_mv=-65.0, t_ref_ms=1.0)
    net = Network(dt_ms=dt, dtype=dtype)
    post = net.population("post", p, n_pairs)
    pre_i = np.concatenate([np.full(len(ts), k) for k, ts in enumerate(t_pre_list)])
    pre_t = np.concatenate([np.asarray(ts, dtype=float) for ts in t_pre_list])
    kick_i = np.concatenate([np.full(len(ts), k) for k, ts in enumerate(t_post_list)])
    kick_t = np.concatenate([np.asarray(ts, dtype=float) - dt for ts in t_post_list])
    pre = net.spike_generator("pre", n_pairs, pre_i, pre_t)
    kick = net.spike_generator("kick", n_pairs, kick_i, kick_t)
    proj = net.connect(pre, post, "ge", weight=w0, rule=OneToOne(), stdp=stdp)
    net.connect(kick, post, "v", weight=100.0, rule=OneToOne())
    r = net.run(max(max(np.max(t) for t in t_pre_list), max(np.max(t) for t in t_post_list)) + 5.0, backend=backend)
    return net, proj, r


DT_SPIKES = [-40.0, -20.0, -7.5, -1.0, -0.1, 0.1, 1.0, 7.5, 20.0, 40.0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("multiplicative", [False, True], ids=["additive", "multiplicative"])
def test_stdp_pair_window(multiplicative, backend):
    """Delta w of one pair (dt_spike = t_post - t_pre) is a_plus exp(-dt/tau_pre) (times
    (w_max - w0) if multiplicative) for dt > 0 and -a_minus exp(dt/tau_post) (times (w0 - w_min))
    for dt < 0, for several dt_spike; every pair is its own synapse, run together."""
    dt = 0.1
    stdp = STDP(tau_pre_ms=16.8, tau_post_ms=33.7, a_plus=0.01, a_minus=0.012, w_min=0.0, w_max=1.0,
                multiplicative=multiplicative)
    w0 = 0.5
    t0 = 50.0
    pre_times = [[t0] for _ in DT_SPIKES]
    post_times = [[t0 + d] for d in DT_SPIKES]
    net, proj, r = _pair_network(dt, pre_times, post_times, stdp, w0, backend, n_pairs=len(DT_SPIKES))
    # every post neuron spiked exactly once, where wanted
    times, idx = r.spikes["post"]
    for k, d in enumerate(DT_SPIKES):
        np.testing.assert_allclose(times[idx == k], [t0 + d], atol=1e-9)
    w = _plastic_weights(net, proj)
    for k, d in enumerate(DT_SPIKES):
        if d > 0:
            want = stdp.a_plus * math.exp(-d / stdp.tau_pre_ms) * ((stdp.w_max - w0) if multiplicative else 1.0)
        else:
            want = -stdp.a_minus * math.exp(d / stdp.tau_post_ms) * ((w0 - stdp.w_min) if multiplicative else 1.0)
        assert w[k] - w0 == pytest.approx(want, rel=1e-9, abs=1e-15), (d, w[k] - w0, want)


def test_stdp_simultaneous_pair_potentiates():
    """Pre and post in the same step: pre-synaptic update first (x_post still 0), then the post
    update sees x_pre = 1: Delta w = +a_plus (Brian2's order within a step)."""
    stdp = STDP(a_plus=0.01, a_minus=0.012)
    net, proj, _ = _pair_network(0.1, [[30.0]], [[30.0]], stdp, 0.5, "numba-cpu")
    assert _plastic_weights(net, proj)[0] - 0.5 == pytest.approx(0.01, rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stdp_all_pairs_sum(backend):
    """Traces pair every pre with every post spike (all-to-all): Delta w is the sum of the window
    over all pairs as long as the weight stays inside its bounds."""
    stdp = STDP(tau_pre_ms=20.0, tau_post_ms=20.0, a_plus=0.01, a_minus=0.012, w_min=-10.0, w_max=10.0)
    pre = [10.0, 23.4, 61.0]
    post = [15.0, 30.0, 55.5]
    net, proj, _ = _pair_network(0.1, [pre], [post], stdp, 0.0, backend)
    want = 0.0
    for tp in pre:
        for tq in post:
            d = tq - tp
            want += stdp.a_plus * math.exp(-d / 20.0) if d >= 0 else -stdp.a_minus * math.exp(d / 20.0)
    assert _plastic_weights(net, proj)[0] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("multiplicative", [False, True], ids=["additive", "multiplicative"])
def test_stdp_weight_bounds(multiplicative, backend):
    """Many potentiating pairs drive w to w_max, many depressing pairs to w_min, never beyond."""
    stdp = STDP(tau_pre_ms=5.0, tau_post_ms=5.0, a_plus=0.3, a_minus=0.3, w_min=0.1, w_max=0.9,
                multiplicative=multiplicative)
    base = np.arange(30) * 50.0 + 5.0
    net, proj, _ = _pair_network(0.1, [base, base + 1.0], [base + 1.0, base], stdp, 0.5, backend, n_pairs=2)
    w = _plastic_weights(net, proj)
    assert np.all(w >= stdp.w_min) and np.all(w <= stdp.w_max)
    if multiplicative:  # approaches the bounds geometrically
        assert w[0] == pytest.approx(stdp.w_max, abs=1e-3) and w[1] == pytest.approx(stdp.w_min, abs=1e-3)
    else:  # clipped exactly at the bounds
        assert w[0] == stdp.w_max and w[1] == stdp.w_min
