"""``biosim run NAME --threads N``: the engine's steps on N threads, the same spikes as on one;
recorded in config.json and metrics.json; range-checked; a training run's torch threads.

One small CUBA network (200 neurons, as tests/bench/test_bench_threads.py) throughout, so the
threaded kernel is compiled (or loaded from Numba's cache) once.
"""

from __future__ import annotations

import json

import numba
import numpy as np
import pytest

from biosim.experiments.networks import build_cuba
from biosim.experiments.registry import apply_overrides, load_model
from biosim.experiments.simulation import run_checked
from biosim.experiments.sweep import finished_run, resolved_config, thread_settings
from cli_helpers import run_cli as run

TWO = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 of Numba's threads")
SETS = ["n_exc=160", "n_inh=40", "bio_time_s=0.02"]
TINY = [a for s in SETS for a in ("--set", s)]



def _same_run(metrics: dict) -> dict:
    """The metrics that depend on the spikes (not the wall times or the thread count)."""
    return {k: v for k, v in metrics.items() if not k.endswith("wall_s") and k != "threads"}


@TWO
@pytest.mark.slow  # tests/network/test_threads.py checks the same in the engine
def test_run_on_two_threads_gives_the_spikes_of_one(tmp_path, capsys):
    metrics = {}
    for threads in ("1", "2"):
        out = tmp_path / threads
        code, _, err = run(capsys, "run", "cuba", *TINY, "--threads", threads, "--out", str(out), "--quiet")
        assert code == 0, err
        config = json.loads((out / "config.json").read_text())
        metrics[threads] = json.loads((out / "metrics.json").read_text())
        assert config["threads"] == int(threads) and metrics[threads]["threads"] == int(threads)
    assert metrics["1"]["n_spikes"] > 0
    assert _same_run(metrics["2"]) == _same_run(metrics["1"])


@TWO
def test_run_checked_spike_for_spike():
    cfg = apply_overrides(load_model("cuba")["params"], SETS)
    one, two = (run_checked(build_cuba(cfg, 5), 20.0, "numba-cpu", progress=False, threads=n) for n in (1, 2))
    for pop in one.spikes:
        np.testing.assert_array_equal(one.spikes[pop][0], two.spikes[pop][0])
        np.testing.assert_array_equal(one.spikes[pop][1], two.spikes[pop][1])


def test_default_run_records_one_thread(tmp_path, capsys):
    code, _, err = run(capsys, "run", "cuba", *TINY, "--out", str(tmp_path / "r"), "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["threads"] == 1


@pytest.mark.parametrize("argv, needle", [
    (["run", "cuba", "--threads", "0"], "--threads = 0 is out of range (must be 1.."),
    (["run", "cuba", "--threads", str(numba.config.NUMBA_NUM_THREADS + 1)],
     f"is out of range (must be 1..{numba.config.NUMBA_NUM_THREADS})"),
    (["run", "cuba", "--threads", "two"], "invalid int value"),
    *([(["run", "cuba", "--threads", "2", "--backend", "numpy"], "--threads 2 is for the numba-cpu backend")]
      if numba.config.NUMBA_NUM_THREADS >= 2 else []),
    (["run", "lif_digits", "--threads", "1", "--set", "learn.threads=2"], "not both"),
    (["run", "stdp_mnist", "--resume", "nowhere", "--threads", "1"], "leave out --set, --seed, --threads"),
])
def test_bad_threads(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()  # refused before any folder was made


def test_threads_of_a_training_run_are_its_torch_threads():
    spec = load_model("lif_digits")
    params, threads = thread_settings(spec, spec["params"], 1, "numba-cpu")
    assert threads is None and params["learn"]["threads"] == 1
    params, threads = thread_settings(spec, spec["params"], None, "numba-cpu")
    assert threads is None and params == spec["params"]
    sim = load_model("cuba")
    assert thread_settings(sim, sim["params"], None, "numba-cpu") == (sim["params"], 1)
    assert "threads" not in resolved_config("lif_digits", spec, params, 0, "numba-cpu", threads)


def test_a_finished_run_is_reused_whatever_its_threads(tmp_path):
    spec = load_model("cuba")
    (tmp_path / "config.json").write_text(json.dumps(resolved_config("cuba", spec, spec["params"], 0, "numba-cpu", 2)))
    (tmp_path / "metrics.json").write_text(json.dumps({"n_spikes": 3}))
    assert finished_run(tmp_path, resolved_config("cuba", spec, spec["params"], 0, "numba-cpu")) == {"n_spikes": 3}
    assert finished_run(tmp_path, resolved_config("cuba", spec, spec["params"], 1, "numba-cpu", 2)) is None
