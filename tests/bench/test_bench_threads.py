"""``biosim bench cuba|cobahh --threads N``: biosim on N threads beside 1, parallel efficiency, same spikes.

Every run here uses one small CUBA network (200 neurons), so the threaded kernel is compiled (or
loaded from Numba's cache) once for the whole file; Brian2 is left out (its OpenMP build is a g++
run of its own: the README's commands measure it).
"""

from __future__ import annotations

import json

import numba
import pytest

from biosim.bench.runner import format_table, run_bench
from biosim.bench.scaling import (BIOSIM_PEAK_BYTES_PER_SYNAPSE, BRIAN2_PEAK_BYTES_PER_SYNAPSE, format_scaling_table,
                                  memory_needed, run_scaling_bench)
from cli_helpers import run_cli as _run

TWO = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 of Numba's threads")
SETS = ["n_exc=160", "n_inh=40", "bio_time_s=0.02"]



@TWO
def test_bench_on_two_threads_reports_efficiency_and_same_spikes(capsys):
    sets = [a for s in SETS for a in ("--set", s)]
    code, out, err = _run(capsys, "bench", "cuba", "--threads", "2", "--against", "", "--repeats", "2", "--json", *sets)
    assert code == 0, err
    report = json.loads(out)
    assert report["threads"] == 2
    sims = report["simulators"]
    assert set(sims) == {"biosim", "biosim_1_thread"}
    assert sims["biosim"]["threads"] == 2 and sims["biosim_1_thread"]["threads"] == 1
    assert len(sims["biosim"]["loop_s_all"]) == 2 and len(sims["biosim_1_thread"]["loop_s_all"]) == 2
    assert report["same_spikes_as_1_thread"] is True
    assert sims["biosim"]["n_spikes"] == sims["biosim_1_thread"]["n_spikes"] > 0
    speedup, eff = report["speedup"]["biosim"], report["parallel_efficiency"]["biosim"]
    assert speedup == pytest.approx(sims["biosim_1_thread"]["loop_s"] / sims["biosim"]["loop_s"])
    assert eff == pytest.approx(speedup / 2)
    assert report["brian2_same_spikes_as_1_thread"] is None  # Brian2 not run
    assert report["ratio_vs_brian2_standalone"] is None and report["ratio_vs_brian2_standalone_1_thread"] is None
    table = format_table(report)
    assert "parallel efficiency t1/(2 t2) on 2 threads: biosim" in table
    assert "equal its spikes on 1 thread: yes" in table


@TWO
def test_scaling_bench_on_two_threads_at_a_fixed_probability():
    rep = run_scaling_bench("cuba", [200], "numba-cpu", ["bio_time_s=0.02"], p_connect=0.05, threads=2)
    json.dumps(rep)
    assert rep["threads"] == 2 and rep["p_connect"] == 0.05 and rep["per_neuron"] is None
    row = rep["sizes"][0]
    assert row["p_connect"] == 0.05 and row["same_spikes_as_1_thread"] is True
    assert row["biosim"]["threads"] == 2 and row["biosim_1_thread"]["threads"] == 1
    assert row["biosim"]["n_spikes"] == row["biosim_1_thread"]["n_spikes"]
    assert row["parallel_efficiency"]["biosim"] == pytest.approx(row["speedup"]["biosim"] / 2)
    assert "spikes" not in row["biosim"]  # kept for the comparison only
    table = format_scaling_table(rep)
    assert "fixed p = 0.05" in table and "2 threads" in table and "eff" in table and " yes" in table


def test_one_thread_is_the_serial_report():
    report = run_bench("cuba", [], SETS, start_time=False)
    assert report["threads"] == 1 and set(report["simulators"]) == {"biosim"}
    assert "parallel_efficiency" not in report and "same_spikes_as_1_thread" not in report


def test_memory_estimate_grows_with_the_synapses():
    from biosim.experiments.networks import build_cuba
    from biosim.experiments.registry import load_model

    params = load_model("cuba")["params"]
    small, big = (memory_needed(build_cuba(dict(params, n_exc=n, n_inh=n // 4, p_connect=0.02), 1))
                  for n in (800, 8000))
    assert big["synapses"] == pytest.approx(100 * small["synapses"])
    assert big["biosim"] >= BIOSIM_PEAK_BYTES_PER_SYNAPSE * big["synapses"]
    assert big["brian2_cpp_standalone"] >= BRIAN2_PEAK_BYTES_PER_SYNAPSE * big["synapses"]


@pytest.mark.parametrize("argv, needle", [
    (["bench", "cuba", "--threads", "1025"], "--threads = 1025 is out of range"),
    (["bench", "cuba", "--threads", str(numba.config.NUMBA_NUM_THREADS + 1), "--against", ""],
     "Numba's NUMBA_NUM_THREADS"),
    (["bench", "cuba", "--sizes", "40", "--threads", str(numba.config.NUMBA_NUM_THREADS + 1)],
     "Numba's NUMBA_NUM_THREADS"),
    (["bench", "cuba", "--p-connect", "0.02"], "need --sizes"),
    (["bench", "cuba", "--sizes", "40", "--p-connect", "0.02", "--per-neuron", "5"], "give one"),
    (["bench", "cuba", "--sizes", "40", "--p-connect", "1.5"], "--p-connect = 1.5 is out of range"),
    (["bench", "cuba", "--sizes", "40", "--threads", "2", "--backend", "numpy"], "is for the numba-cpu backend"),
    (["bench", "cuba", "--sizes", "40,10000000", "--p-connect", "1"], "size 10000000 at p = 1 does not fit in memory"),
    (["bench", "sweep", "--threads", "2"], "--threads is not an option of bench sweep"),
])
def test_bad_thread_and_probability_options(capsys, argv, needle):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert "GiB available" in err if "fit in memory" in needle else True
