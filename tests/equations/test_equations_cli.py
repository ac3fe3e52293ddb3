"""Neuron models written as equations through the CLI: the ``[model]`` table of a run's TOML file
(``biosim run cuba_equations``, ``biosim run qif``), its one-line errors, and ``biosim bench
--model equations``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from biosim.cli import main
from biosim.experiments.registry import load_model, models_dir
from biosim.experiments.simulation import build, spec_model

TINY = ["--set", "n_exc=80", "--set", "n_inh=20", "--set", "bio_time_s=0.05", "--set", "p_connect=0.1"]
LIF_METHODS = {"v": "exact", "ge": "exact", "gi": "exact"}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cuba_equations_same_spikes_as_cuba(tmp_path, capsys):
    metrics = {}
    for name in ("cuba", "cuba_equations"):
        code, out, _ = run(capsys, "run", name, *TINY, "--seed", "4", "--out", str(tmp_path / name), "--quiet")
        assert code == 0, out
        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    ours, ref = metrics["cuba_equations"], metrics["cuba"]
    assert ours["n_spikes"] > 0
    for key in ("n_spikes", "cv_isi", "populations", "n_synapses"):
        assert ours[key] == ref[key], key
    assert ours["model_methods"] == LIF_METHODS
    assert "model_methods" not in ref
    assert "v by exact, ge by exact, gi by exact" in out  # the CLI prints the chosen methods
    config = json.loads((tmp_path / "cuba_equations" / "config.json").read_text())
    assert config["params"]["neuron"] == json.loads((tmp_path / "cuba" / "config.json").read_text())["params"]["neuron"]


def test_cuba_equations_same_spike_trains_as_cuba():
    """Spike for spike, not only the counts: same seed, same synapses, same initial values."""
    trains = {}
    for name in ("cuba", "cuba_equations"):
        spec = load_model(name)
        params = dict(spec["params"], n_exc=80, n_inh=20, p_connect=0.1)
        res = build(spec["builder"], params, 2, model=spec_model(spec)).run(50.0)
        trains[name] = res.spikes
    for pop in ("exc", "inh"):
        for ours, ref in zip(trains["cuba_equations"][pop], trains["cuba"][pop]):
            np.testing.assert_array_equal(ours, ref)
    assert len(trains["cuba"]["exc"][0]) > 0


def test_cuba_equations_says_which_methods_it_chose(tmp_path, capsys):
    code, out, _ = run(capsys, "run", "cuba_equations", *TINY, "--out", str(tmp_path))
    assert code == 0
    assert "cuba_equations: model 'cuba_lif': v by exact, ge by exact, gi by exact" in out


def test_neuron_override_reaches_the_equation_model(tmp_path, capsys):
    spikes = []
    for k, t_ref in enumerate(("5.0", "0.0")):
        code, out, _ = run(capsys, "run", "cuba_equations", *TINY, "--set", "bio_time_s=0.2", "--set", f"neuron.t_ref_ms={t_ref}",
                           "--out", str(tmp_path / str(k)), "--quiet")
        assert code == 0, out
        assert json.loads((tmp_path / str(k) / "config.json").read_text())["params"]["neuron"]["t_ref_ms"] == float(t_ref)
        spikes.append(json.loads((tmp_path / str(k) / "metrics.json").read_text())["n_spikes"])
    assert spikes[1] > spikes[0]  # no refractory period: more spikes


def test_qif_runs_with_its_methods(tmp_path, capsys):
    code, out, _ = run(capsys, "run", "qif", "--set", "n_exc=160", "--set", "n_inh=40", "--set", "bio_time_s=0.1",
                       "--out", str(tmp_path), "--quiet")
    assert code == 0, out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model_methods"] == {"v": "euler", "ge": "exact", "gi": "exact"}
    assert metrics["n_neurons"] == 200 and metrics["n_spikes"] > 0
    assert 0.5 < metrics["mean_rate_hz"] < 100


def test_qif_constant_current_drive(tmp_path, capsys):
    base = ("run", "qif", "--set", "n_exc=40", "--set", "n_inh=10", "--set", "bio_time_s=0.05", "--quiet")
    code, _, _ = run(capsys, *base, "--set", "input=none", "--out", str(tmp_path / "none"))
    assert code == 0
    assert json.loads((tmp_path / "none" / "metrics.json").read_text())["n_spikes"] == 0
    code, _, _ = run(capsys, *base, "--set", "input=current", "--set", "current=10.0", "--out", str(tmp_path / "i"))
    assert code == 0
    assert json.loads((tmp_path / "i" / "metrics.json").read_text())["n_spikes"] > 0


def _cuba_equations_text() -> str:
    return (models_dir() / "cuba_equations.toml").read_text()


# (file text edit: old -> new, needle in the error)
BROKEN = {
    "syntax": ("dge/dt = -ge / tau_exc : mV", "dge/dt = -ge / (tau_exc : mV", "cannot parse"),
    "undefined_symbol": ("dge/dt = -ge / tau_exc : mV", "dge/dt = -ge / tau_exx : mV",
                         "unknown symbol 'tau_exx'; did you mean 'tau_exc'"),
    "unit_mismatch": ("dge/dt = -ge / tau_exc : mV", "dge/dt = -ge : mV", "right-hand side is in V but must be in V/s"),
    "threshold_undefined": ('threshold = "v > v_thresh"', 'threshold = "u > v_thresh"', "threshold 'u > v_thresh'"),
    "unknown_key": ('threshold = "v > v_thresh"', 'treshold = "v > v_thresh"',
                    "unknown key in [model] 'treshold'; did you mean 'threshold'"),
    "bad_method": ('input_unit = "mV"', 'input_unit = "mV"\nmethod = "eulr"', "did you mean 'euler'"),
    "bad_unit": ('tau_mem = "20.0 ms"', 'tau_mem = "20.0 mss"', "unknown unit 'mss'"),
    "wrong_type": ('refractory = "t_ref"', "refractory = [5]", "refractory must be a string or a number"),
    "neuron_key": ('wi_mv = -9.0', "wi_mv = -9.0\n\n[params.neuron]\ntau_mem = 3.0",
                   "unknown key in [params.neuron] 'tau_mem'; did you mean 'tau_mem_ms'"),
    "no_equations": ('equations = """', 'equation = """', "did you mean 'equations'"),
    "builder_without_model": ('builder = "cuba"', 'builder = "brunel"', "builder 'brunel' has no use for a [model]"),
}


@pytest.fixture
def broken_models(tmp_path, monkeypatch):
    text = _cuba_equations_text()
    folder = tmp_path / "models"
    folder.mkdir()
    for name, (old, new, _) in BROKEN.items():
        assert old in text, name
        (folder / f"{name}.toml").write_text(text.replace(old, new, 1))
    monkeypatch.setenv("BIOSIM_MODELS", str(folder))
    return folder


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_model_table_is_one_line_and_exit_2(broken_models, tmp_path, capsys, name):
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, "run", name, *TINY, "--out", str(out_dir), "--quiet")
    assert code == 2, err
    assert BROKEN[name][2] in err
    assert err.count("\n") == 1 and err.startswith("biosim: error:")
    assert "Traceback" not in err
    assert not (out_dir / "metrics.json").exists()


def test_broken_model_in_a_real_process(broken_models):
    """The whole stderr of ``biosim run`` is one line: no warning, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "biosim.cli", "run", "undefined_symbol", "--quiet"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unknown symbol 'tau_exx'" in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_set_on_equation_model_names_closest_key(tmp_path, capsys):
    code, _, err = run(capsys, "run", "cuba_equations", "--set", "neuron.tau_mem=3", "--out", str(tmp_path))
    assert code == 2 and "did you mean 'neuron.tau_mem_ms'" in err and err.count("\n") == 1


def test_bench_model_equations_cli_fields(capsys):
    """``--model equations`` runs both neurons; no competitor, so no Brian2 needed."""
    code, out, _ = run(capsys, "bench", "cuba", "--model", "equations", "--against", "", "--json", "--set", "n_exc=40",
                       "--set", "n_inh=10", "--set", "bio_time_s=0.02")
    assert code == 0
    report = json.loads(out)
    assert set(report["simulators"]) == {"biosim", "biosim_equations"}
    eq, bio = report["simulators"]["biosim_equations"], report["simulators"]["biosim"]
    assert report["ratio_equations_vs_builtin"] == pytest.approx(eq["loop_s"] / bio["loop_s"])
    assert eq["n_spikes"] == bio["n_spikes"]  # same network, same spikes
    assert "v by exact" in report["equation_model"] and report["model"] == "equations"
    assert report["ratio_equations_vs_brian2_standalone"] is None


@pytest.mark.parametrize("argv, needle", [
    (["bench", "cuba", "--model", "equatons"], "did you mean 'equations'"),
    (["bench", "train", "--model", "equations"], "--model equations is for the engine benchmarks"),
])
def test_bench_model_errors_are_one_line(capsys, argv, needle):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's choice check
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1


def test_bench_model_equations_against_brian2_numpy():
    pytest.importorskip("brian2")
    from biosim.bench.runner import format_table, run_bench

    report = run_bench("cuba", ["brian2:numpy"], {"n_exc": 160, "n_inh": 40, "bio_time_s": 0.05},
                       repeats=1, start_time=False, model="equations")
    out = format_table(report)
    assert "biosim_equations" in out and "equations/built-in loop_s" in out
    sims = report["simulators"]
    assert set(sims) == {"biosim", "biosim_equations", "brian2_numpy"}
    assert sims["biosim_equations"]["n_spikes"] == sims["biosim"]["n_spikes"] > 0
    assert report["ratio_equations_vs_builtin"] > 0
    json.dumps(report)
