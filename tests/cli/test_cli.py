"""The `biosim` command line: listing, running, and one-line errors with exit status 2."""

from __future__ import annotations

import json

import pytest

from biosim.cli import main

TINY = ["--set", "n_exc=80", "--set", "n_inh=20", "--set", "bio_time_s=0.05", "--set", "p_connect=0.1"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_model_with_description(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    names = {line.split()[0] for line in out.strip().splitlines()}
    assert {"cuba", "brunel", "cobahh"} <= names
    assert all(len(line.split(None, 1)) == 2 for line in out.strip().splitlines())


def test_run_writes_config_metrics_and_plots(tmp_path, capsys):
    code, out, _ = run(capsys, "run", "cuba", *TINY, "--out", str(tmp_path), "--quiet", "--seed", "3")
    assert code == 0, out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("n_spikes", "mean_rate_hz", "cv_isi", "bio_time_s", "sim_wall_s"):
        assert key in metrics
    assert metrics["bio_time_s"] == pytest.approx(0.05)
    assert metrics["n_spikes"] > 0
    assert metrics["mean_rate_hz"] == pytest.approx(metrics["n_spikes"] / 100 / 0.05)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["params"]["n_exc"] == 80 and config["seed"] == 3
    assert config["params"]["neuron"]["tau_mem_ms"] == 20.0
    for png in ("raster.png", "rate.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp"))


def test_same_seed_same_metrics(tmp_path, capsys):
    results = []
    for k in range(2):
        assert run(capsys, "run", "cuba", *TINY, "--out", str(tmp_path / str(k)), "--quiet")[0] == 0
        results.append(json.loads((tmp_path / str(k) / "metrics.json").read_text()))
    assert results[0]["n_spikes"] == results[1]["n_spikes"]
    assert results[0]["cv_isi"] == results[1]["cv_isi"]


def test_nested_override_changes_the_neuron(tmp_path, capsys):
    args = ("run", "cuba", *TINY, "--quiet", "--set", "neuron.t_ref_ms=0.0")
    assert run(capsys, *args, "--out", str(tmp_path / "a"))[0] == 0
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["params"]["neuron"]["t_ref_ms"] == 0.0


@pytest.mark.parametrize("argv, needle", [
    (["run", "cubba"], "did you mean 'cuba'"),
    (["run", "cuba", "--set", "bio_tme_s=1"], "did you mean 'bio_time_s'"),
    (["run", "cuba", "--set", "neuron.tau_mem=3"], "did you mean 'neuron.tau_mem_ms'"),
    (["run", "cuba", "--set", "n_exc=abc"], "expected a whole number like 3200"),
    (["run", "cuba", "--set", "dt_ms=-0.1"], "dt_ms = -0.1 is out of range"),
    (["run", "cuba", "--set", "neuron.tau_mem_ms=0"], "tau_mem_ms = 0 is out of range"),
    (["run", "cuba", "--set", "p_connect=1.5"], "p_connect = 1.5 is out of range"),
    (["run", "cuba", "--backend", "numba-cpuu"], "did you mean 'numba-cpu'"),
    (["run", "cuba", "--set", "bio_time_s"], "key=value"),
    (["run", "brunel", "--set", "panel=E"], "unknown panel 'E'"),
    (["run", "cuba", "--set", "n_exc=2000000", "--set", "n_inh=2000000", "--set", "p_connect=1.0"], "network too big for this machine: needs about"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    code, _, err = run(capsys, *argv, "--out", str(tmp_path), "--quiet")
    assert code == 2
    assert needle in err
    assert err.count("\n") == 1 and err.startswith("biosim: error:")
    assert "Traceback" not in err
    assert not (tmp_path / "metrics.json").exists()


def test_nan_during_run_names_variable_population_and_step(tmp_path, capsys):
    code, _, err = run(capsys, "run", "cuba", *TINY, "--set", "we_mv=1e308", "--out", str(tmp_path), "--quiet")
    assert code == 2
    assert "of population 'exc' became" in err and "at step" in err
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("argv, needle", [
    (["rn", "cuba"], "did you mean 'run'"),
    (["run", "cuba", "--seed", "x"], "invalid int value"),
    ([], "required: COMMAND"),
])
def test_argument_errors_are_one_line(capsys, argv, needle):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "usage" not in err


@pytest.mark.parametrize("argv, needle", [
    (["bench", "train", "--layer", "0"], "--layer = 0 is out of range"),
    (["bench", "train", "--against", "snntorchh"], "did you mean 'snntorch'"),
    (["bench", "cubaa"], "did you mean 'cuba'"),
])
def test_bench_errors_are_one_line(capsys, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1


def test_bench_table_on_stdout_progress_on_stderr(capsys):
    """The library returns the report; the CLI prints its table (stdout) and the progress (stderr)."""
    code, out, err = run(capsys, "bench", "cuba", "--against", "", "--set", "n_exc=40", "--set", "n_inh=10",
                         "--set", "bio_time_s=0.02")
    assert code == 0
    assert "simulator" in out and "biosim " in out and "start to first step" in out
    assert "bench cuba: biosim numba-cpu ..." in err and "bench cuba" not in out
