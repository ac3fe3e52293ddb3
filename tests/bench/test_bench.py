"""The speed benchmark (``biosim bench``): report fields, Brian2 builders, errors.

The quick tests use Brian2's numpy target (no compilation) and cpp_standalone (one g++ build of
~15 s); the cython runtime, which compiles for a while on a cold cache, is in the slow test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

brian2 = pytest.importorskip("brian2")

from biosim.bench.brian2_nets import biosim_arrays, brian2_cuba  # noqa: E402
from biosim.bench.runner import format_table, run_bench  # noqa: E402
from biosim.errors import BiosimError  # noqa: E402
from biosim.experiments.networks import build_cuba  # noqa: E402
from biosim.experiments.registry import load_model  # noqa: E402

TINY = {"n_exc": 160, "n_inh": 40, "bio_time_s": 0.05}
SIM_FIELDS = ("loop_s", "setup_s", "compile_s", "n_spikes", "mean_rate_hz", "loop_s_all")


def _check_report(report, simulators):
    json.dumps(report)  # plain JSON all the way down
    assert set(report["simulators"]) == {"biosim", *simulators}
    for name, sim in report["simulators"].items():
        for field in SIM_FIELDS:
            assert field in sim, (name, field)
        assert sim["loop_s"] > 0 and sim["setup_s"] >= 0
        assert sim["n_spikes"] > 0, f"{name} produced no spikes"
    rates = [s["mean_rate_hz"] for s in report["simulators"].values()]
    assert max(rates) < 1.3 * min(rates), f"rates differ too much: {rates}"
    assert report["n_neurons"] == 200 and report["bio_time_s"] == pytest.approx(0.05)


@pytest.mark.slow  # 30 s of g++; test_bench_scaling runs standalone in the default suite
def test_bench_cuba_tiny_numpy_and_standalone(capsys):
    said = []
    report = run_bench("cuba", ["brian2:numpy", "brian2:cpp_standalone"], TINY, repeats=2, log=said.append)
    assert capsys.readouterr().out == ""  # the library returns data; the CLI prints
    assert any("brian2 cpp_standalone" in line for line in said)  # progress goes to the log callback
    _check_report(report, {"brian2_numpy", "brian2_cpp_standalone"})
    bio = report["simulators"]["biosim"]
    assert report["ratio_vs_brian2_standalone"] == pytest.approx(
        bio["loop_s"] / report["simulators"]["brian2_cpp_standalone"]["loop_s"])
    assert report["ratio_vs_brian2_numpy"] > 0
    assert "ratio_vs_brian2_cython" in report and report["ratio_vs_brian2_cython"] is None
    assert len(bio["loop_s_all"]) == 2 and bio["loop_s"] == min(bio["loop_s_all"])
    assert report["simulators"]["brian2_cpp_standalone"]["compile_s"] > 0
    assert report["start_to_first_step_s"] > 0, report.get("start_to_first_step_error")


def test_bench_formats_table():
    report = run_bench("cuba", ["brian2:numpy"], ["n_exc=160", "n_inh=40", "bio_time_s=0.05"],
                       repeats=1, start_time=False)
    out = format_table(report)
    assert "biosim" in out and "brian2_numpy" in out and "loop_s" in out
    assert "start_to_first_step_s" not in report


def test_brian2_cuba_same_network_same_spikes():
    """Given biosim's synapses and initial v, Brian2 (numpy target) fires the same spikes."""
    cfg = dict(load_model("cuba")["params"], **TINY)
    net = build_cuba(cfg, 3)
    arrays = biosim_arrays(net)
    res = net.run(cfg["bio_time_s"] * 1e3)
    b2 = brian2_cuba(cfg, 3, "numpy", i_j=arrays["i_j"], v0=arrays["init"]["v"])
    for pop in ("exc", "inh"):
        for ours, theirs in zip(res.spikes[pop], b2["spikes"][pop]):
            np.testing.assert_allclose(ours, theirs, atol=1e-9)
        i, j = arrays["i_j"][(pop, "exc")]
        np.testing.assert_array_equal(b2["i_j"][(pop, "exc")][0], i)
        np.testing.assert_array_equal(b2["i_j"][(pop, "exc")][1], j)
    assert b2["loop_s"] > 0 and b2["setup_s"] > 0


@pytest.mark.parametrize("against, match", [(["brain2"], "did you mean 'brian2'"),
                                            (["nest"], "unknown competitor 'nest'")])
def test_unknown_competitor(against, match):
    with pytest.raises(BiosimError, match=match):
        run_bench("cuba", against, {}, repeats=1)


def test_bad_arguments():
    with pytest.raises(BiosimError, match="unknown benchmark 'cubaa'; did you mean 'cuba'"):
        run_bench("cubaa", ["brian2"], {}, repeats=1)
    with pytest.raises(BiosimError, match="repeats"):
        run_bench("cuba", ["brian2"], {}, repeats=0)
    with pytest.raises(BiosimError, match="--set n_exc"):
        run_bench("cuba", ["brian2"], {"n_exc": "many"}, repeats=1)
    with pytest.raises(BiosimError, match="Brian2 target"):
        brian2_cuba(dict(load_model("cuba")["params"], **TINY), 1, "cuda")


@pytest.mark.slow
def test_bench_cuba_tiny_default_competitors():
    """``--against brian2``: the cython runtime (slow to compile on a cold cache) and standalone."""
    report = run_bench("cuba", ["brian2"], TINY, repeats=1)
    _check_report(report, {"brian2_cython", "brian2_cpp_standalone"})
    assert report["ratio_vs_brian2_cython"] > 0 and report["ratio_vs_brian2_standalone"] > 0


@pytest.mark.slow
def test_bench_cobahh_tiny():
    # 0.2 s, not TINY's 0.05: the first 50 ms of so small a network are a transient whose rate
    # depends on the drawn connectivity (biosim 7.2 Hz, Brian2 3.9 Hz; over 0.2 s 19.3 and 19.9 Hz)
    report = run_bench("cobahh", ["brian2:cpp_standalone"], dict(TINY, bio_time_s=0.2), repeats=1, start_time=False)
    json.dumps(report)
    sims = report["simulators"]
    assert sims["biosim"]["n_spikes"] > 0 and sims["brian2_cpp_standalone"]["n_spikes"] > 0
    rates = [s["mean_rate_hz"] for s in sims.values()]
    assert max(rates) < 1.5 * min(rates)


def test_biosim_repeats_after_the_first_run_in_new_processes(monkeypatch):
    """As standalone's repeats start its binary again, biosim's later repeats run in new processes
    (each draws the fast or slow mode of where its machine code lands), with the same spikes."""
    report = run_bench("cuba", [], TINY, repeats=2, start_time=False)
    bio = report["simulators"]["biosim"]
    assert len(bio["loop_s_all"]) == 2 and min(bio["loop_s_all"]) == bio["loop_s"] > 0
    assert "each in a new process" in format_table(report)

    from biosim.bench import runner

    def other_spikes(name, params, seed, equations, threads):
        out = runner._timed_run(name, params, seed, True if equations else None, threads)
        return dict(out, n_spikes=out["n_spikes"] + 1)

    monkeypatch.setattr(runner, "_timed_run_in_new_process", other_spikes)
    with pytest.raises(BiosimError, match="a new process gave"):
        run_bench("cuba", [], TINY, repeats=2, start_time=False)
