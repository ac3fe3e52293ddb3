"""Refusals and safety (issue 13): every refusal is one line with exit status 2 and no traceback, a
refused run leaves nothing behind, outputs are readable by others, and `biosim show NAME` /
`biosim run NAME --help` list the run's keys from its TOML."""

from __future__ import annotations

import json
import os
import stat

import pytest

from biosim.experiments.registry import describe_keys, list_models
from cli_helpers import run_cli as run

TINY = ["--set", "n_exc=80", "--set", "n_inh=20", "--set", "bio_time_s=0.05", "--set", "p_connect=0.1", "--quiet"]



def one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("biosim: error:") and "Traceback" not in err


# -- a refused run leaves nothing behind -------------------------------------------------------------

@pytest.mark.parametrize("sets, needle", [
    (["--set", "we_mv=nan"], "--set we_mv=nan: nan is not a finite number"),
    (["--set", "we_mv=inf"], "--set we_mv=inf: inf is not a finite number"),
    (["--set", "n_exc=nan"], "--set n_exc=nan: nan is not a finite number"),  # a whole-number key
    (["--set", "dt_ms=-1"], "dt_ms = -1 is out of range"),          # refused by the builder
    (["--set", "neuron.tau_mem_ms=0"], "tau_mem_ms = 0 is out of range"),  # by the neuron's parameters
    (["--set", "we_mv=1e308"], "became inf"),                          # NaN/inf during the run
])
def test_a_refused_run_leaves_no_folder(tmp_path, monkeypatch, capsys, sets, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "run", "cuba", *TINY, *sets)
    assert code == 2 and needle in err and one_line(err), err
    assert not (tmp_path / "runs").exists()
    code, _, err = run(capsys, "run", "cuba", *TINY, *sets, "--out", str(tmp_path / "a" / "b"))
    assert code == 2 and not (tmp_path / "a").exists()


def test_a_refused_run_keeps_an_existing_empty_out_folder_empty(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    assert run(capsys, "run", "cuba", *TINY, "--set", "dt_ms=-1", "--out", str(tmp_path / "out"))[0] == 2
    assert (tmp_path / "out").is_dir() and not any((tmp_path / "out").iterdir())


def test_nan_in_a_model_file_is_refused_naming_the_key(tmp_path, monkeypatch, capsys):
    (tmp_path / "bad.toml").write_text('description = "x"\nrunner = "simulation"\n[params]\nbio_time_s = nan\n')
    monkeypatch.setenv("BIOSIM_MODELS", str(tmp_path))
    code, _, err = run(capsys, "run", "bad")
    assert code == 2 and "bad.toml: bio_time_s = nan is not a finite number" in err and one_line(err)


def test_nan_inside_a_list_value_is_refused():
    from biosim.errors import BiosimError
    from biosim.experiments.registry import apply_overrides

    with pytest.raises(BiosimError, match=r"--set net.hidden=\[16, nan\]: nan is not a finite number"):
        apply_overrides({"net": {"hidden": [1000]}}, ["net.hidden=[16, nan]"])


def test_messages_quote_the_value_as_typed(capsys):
    code, _, err = run(capsys, "run", "cuba", "--set", "n_exc=abc")
    assert code == 2 and "--set n_exc=abc: expected a whole number like 3200" in err
    code, _, err = run(capsys, "run", "cuba", "--set", "p_connect=2")
    assert code == 2 and "p_connect = 2 is out of range" in err and "2.0" not in err


# -- --out, --resume, data folders ---------------------------------------------------------------------

def test_out_that_is_a_file_or_impossible_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    for out, needle in ((tmp_path / "f", "is a file, not a folder"),
                        (tmp_path / "f" / "sub", "cannot create the folder"),
                        ("/proc/biosim-test", "cannot create the folder")):
        code, _, err = run(capsys, "run", "cuba", *TINY, "--out", str(out))
        assert code == 2 and needle in err and one_line(err), err
    assert (tmp_path / "f").read_text() == "x"
    assert run(capsys, "run", "cuba", *TINY, "--out", str(tmp_path / "a" / "b" / "f" / "c"))[0] == 0
    code, _, err = run(capsys, "run", "cuba", *TINY, "--out", str(tmp_path / "a" / "b" / "f" / "c" / "config.json" / "x"))
    assert code == 2 and "cannot create the folder" in err


def test_an_unwritable_out_folder_is_one_line(tmp_path, monkeypatch, capsys):
    from biosim import files

    monkeypatch.setattr(files.os, "access", lambda path, mode: False)  # these tests may run as root
    code, _, err = run(capsys, "run", "cuba", *TINY, "--out", str(tmp_path / "r"))
    assert code == 2 and "the folder is not writable" in err and one_line(err), err
    assert not (tmp_path / "r").exists()


def test_out_holding_a_run_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "r"
    assert run(capsys, "run", "cuba", *TINY, "--out", str(out))[0] == 0
    first = (out / "metrics.json").read_text()
    code, _, err = run(capsys, "run", "cuba", *TINY, "--seed", "5", "--out", str(out))
    assert code == 2 and "already holds a run" in err and "--overwrite" in err and one_line(err)
    assert (out / "metrics.json").read_text() == first
    assert run(capsys, "run", "cuba", *TINY, "--seed", "5", "--out", str(out), "--overwrite")[0] == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 5
    # a failed --overwrite run never leaves the old results (or a checkpoint) beside its new config
    (out / "checkpoint.safetensors").write_bytes(b"old")
    assert run(capsys, "run", "cuba", *TINY, "--set", "we_mv=1e308", "--out", str(out), "--overwrite")[0] == 2
    assert not (out / "metrics.json").exists() and not (out / "checkpoint.safetensors").exists()


def test_resume_target_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = run(capsys, "run", "lif_digits", "--resume", str(tmp_path / "f"))
    assert code == 2 and "is a file, not a run folder" in err and one_line(err)


def test_sweep_and_compare_out_refusals(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    cases = [(["sweep", "cuba", "--grid", "we_mv=1,2", "--out", "f"], "is a file, not a folder"),
             (["sweep", "cuba", "--grid", "we_mv=1,2", "--out", "other"], "holds files but no sweep"),
             (["compare", "lif_digits", "mlp_digits", "--out", "f"], "is a file, not a folder"),
             (["compare", "lif_digits", "mlp_digits", "--out", "other"], "--overwrite")]
    for argv, needle in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2 and needle in err and one_line(err), (argv, err)
    assert not (tmp_path / "runs").exists()


# -- numeric options -------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["run", "cuba", "--seed", "-1"], "--seed = -1 is out of range (must be 0..4294967295)"),
    (["run", "cuba", "--seed", "4294967296"], "--seed = 4294967296 is out of range"),
    (["sweep", "cuba", "--grid", "we_mv=1,2", "--seeds", "0"], "--seeds = 0 is out of range"),
    (["sweep", "cuba", "--grid", "we_mv=1,2", "--workers", "-3"], "--workers = -3 is out of range"),
    (["compare", "lif_digits", "mlp_digits", "--seeds", "101"], "--seeds = 101 is out of range"),
    (["compare", "lif_digits", "mlp_digits", "--workers", "0"], "--workers = 0 is out of range"),
    (["bench", "cuba", "--repeats", "0"], "--repeats = 0 is out of range"),
    (["bench", "stdp", "--images", "-1"], "--images = -1 is out of range"),
    (["bench", "cuba", "--threads", "0"], "--threads = 0 is out of range"),  # engine benches take --threads too
    (["nir", "run", "x.nir", "--n", "0"], "--n = 0 is out of range"),
    (["nir", "run", "x.nir", "--steps", "-5"], "--steps = -5 is out of range"),
    (["nir", "run", "x.nir", "--gain", "nan"], "--gain = nan is not a finite number"),
])
def test_numeric_options_are_range_checked(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err and one_line(err), err
    assert not (tmp_path / "runs").exists()


# -- outputs readable by others -----------------------------------------------------------------------------

def test_outputs_are_written_0644(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        assert run(capsys, "run", "cuba", *TINY, "--out", str(tmp_path / "r"))[0] == 0
    finally:
        os.umask(old)
    for name in ("config.json", "metrics.json", "raster.png"):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == 0o644, name


# -- the keys of a run ----------------------------------------------------------------------------------------

def test_show_and_run_help_list_the_keys_with_defaults_and_meanings(capsys):
    code, out, _ = run(capsys, "show", "cuba")
    assert code == 0 and out.startswith("cuba: CUBA")
    line = next(x for x in out.splitlines() if x.strip().startswith("neuron.tau_mem_ms"))
    assert "20.0" in line and "membrane time constant" in line
    code, out, _ = run(capsys, "run", "stdp_mnist", "--help")
    assert code == 0 and "usage: biosim run" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("w_sum"))
    assert "78.0" in line and "normalised" in line
    code, _, err = run(capsys, "run", "cubb", "--help")
    assert code == 2 and "did you mean 'cuba'" in err and one_line(err)


def test_every_key_of_every_model_file_has_a_meaning():
    missing = [f"{name}: {key}" for name in list_models() for key, _, meaning in describe_keys(name) if not meaning]
    assert not missing, missing


def test_a_hash_inside_a_string_value_is_not_a_comment(tmp_path, monkeypatch):
    (tmp_path / "m.toml").write_text('description = "x"\nrunner = "simulation"\n[params]\n'
                                     'label = "a#b"   # the label\n[params.sub]\nk = 1 # one\n')
    monkeypatch.setenv("BIOSIM_MODELS", str(tmp_path))
    assert describe_keys("m") == [("label", "a#b", "the label"), ("sub.k", 1, "one")]


# -- stopping and resuming ------------------------------------------------------------------------------------

LIF_TINY = ["--set", "net.hidden=[16]", "--set", "learn.epochs=1", "--set", "learn.batch_size=200",
            "--set", "encoder.steps=2", "--quiet"]


def test_resume_of_a_finished_training_run_says_so(tmp_path, capsys):
    out = tmp_path / "r"
    assert run(capsys, "run", "lif_digits", *LIF_TINY, "--out", str(out))[0] == 0
    before = (out / "metrics.json").read_text()
    code, _, err = run(capsys, "run", "lif_digits", "--resume", str(out), "--quiet")
    assert code == 2 and "has finished (see its metrics.json); nothing to resume" in err and one_line(err)
    assert (out / "metrics.json").read_text() == before


def test_sigterm_during_a_simulation_says_why_and_what_is_left(tmp_path, capsys, monkeypatch):
    import signal

    from biosim.experiments import simulation

    built = simulation.build

    def build_then_terminate(*args, **kwargs):
        net = built(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return net

    monkeypatch.setattr(simulation, "build", build_then_terminate)
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = run(capsys, "run", "cuba", *TINY, "--out", str(tmp_path / "r"))
    assert code == 143 and one_line(err)
    assert "stopped by SIGTERM before the run finished; this run keeps no checkpoint" in err
    assert signal.getsignal(signal.SIGTERM) == before  # the CLI's handler is gone again


# -- physically meaningless settings and the Python API's types --------------------------------------------

def test_a_step_longer_than_a_time_constant_is_warned_about_once(tmp_path, capsys):
    code, _, err = run(capsys, "run", "cuba", *TINY, "--set", "dt_ms=10", "--out", str(tmp_path / "r"))
    assert code == 0
    assert err.count("warning: dt_ms = 10 is longer than LIF.tau_exc_ms = 5") == 1, err  # two populations, one line


@pytest.mark.parametrize("argv, needle", [
    (["run", "cuba", *TINY, "--set", "neuron.v_reset_mv=-50"], "v_reset_mv = -50 is at or above v_thresh_mv"),
    (["run", "lif_digits", "--set", "neuron.v_reset=1", "--quiet"], "neuron.v_reset = 1 is at or above neuron.v_th"),
])
def test_a_reset_at_or_above_threshold_is_refused(tmp_path, capsys, argv, needle):
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "r"))
    assert code == 2 and needle in err and one_line(err), err
    assert not (tmp_path / "r").exists()


def test_the_python_api_refuses_wrong_types_with_a_biosim_error():
    import numpy as np

    from biosim import LIF, Network
    from biosim.errors import BiosimError
    from biosim.neurons.adex import AdEx
    from biosim.neurons.izhikevich import Izhikevich

    cases = [(lambda: LIF(tau_mem_ms="20"), "LIF.tau_mem_ms = '20' must be a number"),
             (lambda: LIF(v_thresh_mv=None), "LIF.v_thresh_mv = None must be a number"),
             (lambda: LIF(v_reset_mv=-40.0), "is at or above v_thresh_mv"),
             (lambda: AdEx(v_reset_mv=0.0), "is at or above v_peak_mv"),
             (lambda: Izhikevich(c_mv=40.0), "is at or above v_peak_mv"),
             (lambda: Network(dt_ms="0.1"), "dt_ms = '0.1' must be a number"),
             (lambda: Network(seed="a"), "seed = 'a' must be a whole number >= 0"),
             (lambda: Network(seed=-1), "seed = -1 must be a whole number >= 0")]
    for make, needle in cases:
        with pytest.raises(BiosimError, match=None) as exc:
            make()
        assert needle in str(exc.value), str(exc.value)
    net = Network(dt_ms=0.1)
    net.population("p", LIF(), 5, init={"v": np.zeros(3)})
    with pytest.raises(BiosimError, match="needs one value or 5 values"):
        net.run(1.0)
    net = Network(dt_ms=0.1)
    pop = net.population("p", LIF(), 5)
    for make, needle in [(lambda: net.connect(pop, pop, "ge", weight="1"), "weight = '1' must be a number"),
                         (lambda: net.connect(pop, pop, "ge", weight=1.0, delay_ms="1"), "delay_ms = '1' must be"),
                         (lambda: net.poisson_group("in", 5, "10"), "rate_hz = '10' must be a number"),
                         (lambda: net.current(pop, None), "current amplitude = None must be a number"),
                         (lambda: net.poisson_input(pop, "ge", 2.5, 5.0, 0.1), "n_sources = 2.5 must be a whole")]:
        with pytest.raises(BiosimError) as exc:
            make()
        assert needle in str(exc.value), str(exc.value)
    net.connect(pop, pop, "ge", weight=np.float32(1), delay_ms=np.ones(25))  # numbers of any kind are fine
    net.run(1.0)


# -- memory ---------------------------------------------------------------------------------------------------

def test_training_too_big_for_memory_is_refused_with_the_estimate(tmp_path, capsys):
    code, _, err = run(capsys, "run", "lif_digits", "--set", "net.hidden=[2000000,2000000]", "--quiet",
                       "--out", str(tmp_path / "r"))
    assert code == 2 and one_line(err), err
    assert "network too big for this machine: training needs about" in err and "GiB available" in err
    assert not (tmp_path / "r").exists()


def test_recorded_spikes_that_would_not_fit_are_refused_with_the_estimate(tmp_path, capsys, monkeypatch):
    from biosim.experiments import simulation

    long = [*TINY, "--set", "bio_time_s=0.3"]
    assert run(capsys, "run", "cuba", *long, "--out", str(tmp_path / "whole"))[0] == 0
    monkeypatch.setattr(simulation, "available_bytes", lambda: 400_000)  # probes, then runs the rest: same run
    assert run(capsys, "run", "cuba", *long, "--out", str(tmp_path / "probed"))[0] == 0
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("whole", "probed"))
    assert a["n_spikes"] == b["n_spikes"] > 0 and a["cv_isi"] == b["cv_isi"] and b["bio_time_s"] == 0.3
    monkeypatch.setattr(simulation, "available_bytes", lambda: 2_000)
    code, _, err = run(capsys, "run", "cuba", *long, "--out", str(tmp_path / "refused"))
    assert code == 2 and one_line(err), err
    assert "the recorded spikes would not fit in memory: at the rate of the first 100 ms" in err
    assert "shorten bio_time_s" in err and not (tmp_path / "refused").exists()


# -- damaged data files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong arrays"])
def test_a_damaged_embedded_data_set_names_the_file_and_how_to_restore_it(tmp_path, monkeypatch, capsys, damage):
    import numpy as np

    from biosim.datasets import catalog, paths

    good = (paths.embedded_dir() / "mnist5k.npz").read_bytes()
    target = tmp_path / "mnist5k.npz"
    if damage == "truncate":
        target.write_bytes(good[:len(good) // 3])
    elif damage == "garbage":
        target.write_bytes(b"not a zip file at all" * 100)
    else:
        np.savez(target, images=np.zeros((3, 2), np.float32), labels=np.zeros(3, np.int64))
    monkeypatch.setattr(catalog, "embedded_dir", lambda: tmp_path)
    code, _, err = run(capsys, "run", "lif_mnist", "--quiet", "--out", str(tmp_path / "r"))
    assert code == 2 and one_line(err), err
    assert str(target) in err and "git checkout -- data/mnist5k.npz" in err
    assert not (tmp_path / "r").exists()


def test_a_data_destination_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = run(capsys, "data", "fetch", "mnist", "--dest", str(tmp_path / "f"), "--quiet",
                       "--url", "http://127.0.0.1:9/")
    assert code == 2 and "--dest" in err and "is a file, not a folder" in err and one_line(err), err


def test_values_are_quoted_as_typed_in_messages_from_deep_inside():
    from biosim.experiments.registry import as_typed

    assert as_typed("LIF.tau_mem_ms = 0.0 is out of range", ["neuron.tau_mem_ms=0"]) == \
        "LIF.tau_mem_ms = 0 is out of range"
    assert as_typed("n_exc = 1000 is too many", ["n_exc=1e3"]) == "n_exc = 1e3 is too many"
    assert as_typed("other_ms = 0.0 is out of range", ["ms=0"]) == "other_ms = 0.0 is out of range"
    assert as_typed("dt_ms = 0.5 is fine", ["dt_ms=0.5"]) == "dt_ms = 0.5 is fine"


def test_a_compare_run_refused_by_its_runner_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "compare", "lif_digits", "mlp_digits", "--seeds", "1", "--quiet",
                       "--set", "learn.epochs=1", "--set", "encoder.steps=0")  # lif_digits refuses steps 0
    assert code == 2 and "encoder.steps = 0 is out of range" in err and one_line(err), err
    assert not list(tmp_path.glob("runs/*/*")) and not (tmp_path / "runs" / "compare").exists()
