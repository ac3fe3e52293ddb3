"""``biosim bench cuba --sizes ...``: cost against size, biosim alone or beside Brian2's C++ standalone."""

from __future__ import annotations

import importlib.util

import pytest

from biosim.bench.scaling import format_scaling_table, run_scaling_bench
from biosim.cli import main as cli

HAS_BRIAN2 = importlib.util.find_spec("brian2") is not None


def test_sizes_on_numba_cpu_with_synapses_per_neuron(tmp_path):
    rep = run_scaling_bench("cobahh", [20, 40], "numba-cpu", ["bio_time_s=0.001"], per_neuron=5)
    assert [r["n_neurons"] for r in rep["sizes"]] == [20, 40]
    assert [r["p_connect"] for r in rep["sizes"]] == [0.25, 0.125]
    for r in rep["sizes"]:
        b = r["biosim"]
        assert b["bytes_per_synapse"] == 4.0 and b["synapse_bytes"] == 4 * b["n_synapses"]  # one weight per projection
        assert 0 < b["n_synapses"] < r["n_neurons"] * 20  # about 5 per neuron, not p * n**2 of the TOML's p
        assert b["setup_s"] > 0 and b["loop_s"] > 0 and b["peak_mib"] > 0
        assert "brian2_cpp_standalone" not in r
    table = format_scaling_table(rep)
    assert "p = 5/n" in table and "setup_s" in table and "peak_MiB" in table and "b2_loop_s" not in table


def test_repeats_after_the_first_run_in_new_processes():
    """On numba-cpu a size's later repeats run in new processes (as in run_bench), with the same
    spikes and the same synapses."""
    rep = run_scaling_bench("cuba", [40], "numba-cpu", ["bio_time_s=0.01"], repeats=2)
    b = rep["sizes"][0]["biosim"]
    assert len(b["loop_s_all"]) == len(b["setup_s_all"]) == 2 and b["loop_s"] == min(b["loop_s_all"]) > 0
    assert b["n_spikes"] > 0 and b["synapse_bytes"] == 4 * b["n_synapses"]


def test_scaling_figure_is_log_log_with_labels(tmp_path):
    from biosim.reports.bench_figures import scaling_figure

    rep = run_scaling_bench("cuba", [20, 40], "numba-cpu", ["bio_time_s=0.001"])
    fig = scaling_figure(rep)
    for ax in fig.axes:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert ax.get_xlabel() == "network size (neurons)" and "(s)" in ax.get_ylabel()
    fig.savefig(tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0


@pytest.mark.skipif(not HAS_BRIAN2, reason="needs brian2 (the dev extra)")
def test_sizes_beside_brian2_standalone_from_the_cli(tmp_path, capsys):
    plot = tmp_path / "scaling.png"
    code = cli(["bench", "cuba", "--sizes", "60", "--against", "brian2", "--per-neuron", "10",  # one g++ build
                "--set", "bio_time_s=0.005", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "b2_loop_s" in out and "loop_ratio" in out and "p = 10/n" in out
    assert plot.stat().st_size > 0


def test_bad_scaling_options(capsys):
    for argv, message in ((["bench", "cuba", "--sizes", "4,x"], "must be comma-separated whole numbers"),
                          (["bench", "cuba", "--sizes", "5"], "at least 10 neurons"),
                          (["bench", "stdp", "--sizes", "40"], "are for bench cuba and cobahh, not stdp"),
                          (["bench", "cuba", "--sizes", "40", "--against", "brian2:cython"],
                           "unknown competitor of the scaling bench"),
                          (["bench", "cuba", "--sizes", "40", "--per-neuron", "0"], "per_neuron = 0.0 must be"),
                          (["bench", "cuba", "--per-neuron", "5"], "--per-neuron, --p-connect and --plot need --sizes"),
                          (["bench", "cuba", "--sizes", "40", "--model", "equations"], "leave out --model"),
                          (["bench", "cuba", "--backend", "cuda", "--sizes", "40"], "did you mean 'numba-cuda'")):
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, (argv, err)
