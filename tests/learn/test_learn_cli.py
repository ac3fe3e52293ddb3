"""`biosim run lif_digits|lif_mnist|conv_lif_mnist` from the command line: tiny runs write
config.json, metrics.json and the three plots; SIGTERM saves a checkpoint and `--resume DIR`
finishes with the same weights; mistakes are one line with exit status 2.

The full-size runs (lif_mnist reaching >= 95 % on mnist5k) are marked slow.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from biosim.cli import main
from biosim.learn import train

TINY = ["--set", "net.hidden=[24]", "--set", "learn.epochs=2", "--set", "learn.batch_size=100",
        "--set", "encoder.steps=4"]
PNG = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tiny_run_writes_metrics_and_plots(tmp_path, capsys):
    code, out, err = run(capsys, "run", "lif_digits", *TINY, "--out", str(tmp_path), "--quiet", "--seed", "2")
    assert code == 0, err
    assert "data: digits: 1295 train / 143 val / 359 test, 8x8, 10 classes (1797 samples" in out
    m = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("test_accuracy", "val_accuracy", "best_test_accuracy_seen", "final_test_accuracy", "train_seconds",
                "epochs", "dataset", "n_train", "n_test", "n_params", "spikes_per_sample", "samples_per_s"):
        assert key in m, key
    assert m["dataset"] == "digits" and m["n_train"] == 1295 and m["n_test"] == 359 and m["epochs"] == 2
    assert m["n_params"] == 64 * 24 + 24 + 24 * 10 + 10
    assert 0.1 < m["test_accuracy"] <= 1 and m["best_test_accuracy_seen"] >= m["test_accuracy"] - 1e-12
    assert m["val_accuracy"] == max(m["history"]["val_accuracy"])
    assert m["spikes_per_sample"] > 0 and m["learn_backend"] == "biosim"
    assert sum(map(sum, m["confusion_matrix"]["rows_true_cols_predicted"])) == 359
    for png in ("learning_curves.png", "raster.png", "confusion_matrix.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG
    for f in ("model.safetensors", "best.safetensors", "checkpoint.safetensors", "config.json"):
        assert (tmp_path / f).is_file()
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 2
    assert not list(tmp_path.glob(".*tmp"))


def test_same_seed_same_accuracy_to_the_last_digit(tmp_path, capsys):
    ms = []
    for k in range(2):
        assert run(capsys, "run", "lif_digits", *TINY, "--out", str(tmp_path / str(k)), "--quiet")[0] == 0
        ms.append(json.loads((tmp_path / str(k) / "metrics.json").read_text()))
    for key in ("test_accuracy", "val_accuracy", "spikes_per_sample", "history"):
        if key == "history":
            for h in ("train_loss", "val_accuracy", "test_accuracy"):
                assert ms[0][key][h] == ms[1][key][h]
        else:
            assert ms[0][key] == ms[1][key]


@pytest.mark.parametrize("sets", [
    ["--set", "learn.backend=norse"],
    ["--set", "learn.backend=norse", "--set", "net.neuron=cuba", "--set", "neuron.reset=zero",
     "--set", "readout.kind=count_ce"],
    ["--set", "net.conv_channels=[4]", "--set", "net.kernel_size=3", "--set", "net.hidden=[]",
     "--set", "readout.kind=mean_membrane"],
    ["--set", "encoder.kind=poisson", "--set", "encoder.gain=1.0", "--set", "net.weight_scale=5.0"],
    ["--set", "net.neuron=alif", "--set", "readout.kind=count_mse", "--set", "encoder.kind=latency",
     "--set", "net.weight_scale=5.0", "--set", "learn.lr_schedule=step"],
    ["--set", "net.neuron=rlif", "--set", "surrogate.kind=arctan", "--set", "surrogate.alpha=2.0"],
])
def test_variants_run(tmp_path, capsys, sets):
    code, out, err = run(capsys, "run", "lif_digits", *TINY, *sets, "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert 0 <= m["test_accuracy"] <= 1 and m["spikes_per_sample"] > 0  # runs; learning is tested elsewhere
    if "learn.backend=norse" in sets:
        assert m["learn_backend"] == "norse"
        assert "note: norse 1.1.0's SuperSpike ignores alpha=10" in out


def test_sigterm_saves_a_checkpoint_and_resume_gives_the_same_weights(tmp_path, capsys, monkeypatch):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert run(capsys, "run", "lif_digits", *TINY, "--out", str(straight), "--quiet")[0] == 0

    def send(epoch, batch):
        if (epoch, batch) == (0, 5):
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train, "on_batch_hook", send)
    code, _, err = run(capsys, "run", "lif_digits", *TINY, "--out", str(stopped), "--quiet")
    assert code == 143
    assert err.count("\n") == 1 and err.startswith("biosim: error: stopped by SIGTERM at epoch 1/2, batch 6/13")
    assert f"resume with: biosim run lif_digits --resume {stopped}" in err
    assert not (stopped / "metrics.json").exists() and (stopped / "checkpoint.safetensors").is_file()
    monkeypatch.setattr(train, "on_batch_hook", None)
    code, out, err = run(capsys, "run", "lif_digits", "--resume", str(stopped), "--quiet")
    assert code == 0, err
    assert "resuming the run in" in out
    a, b = load_file(straight / "model.safetensors"), load_file(stopped / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (straight, stopped))
    assert ma["test_accuracy"] == mb["test_accuracy"] and mb["resumed"] is True
    # resuming a finished run says so (it used to redo the evaluation silently)
    code, _, err = run(capsys, "run", "lif_digits", "--resume", str(stopped), "--quiet")
    assert code == 2 and "has finished (see its metrics.json); nothing to resume" in err


def test_ctrl_c_in_a_real_process_leaves_a_checkpoint(tmp_path):
    """The `biosim` process itself: SIGINT during training -> checkpoint, exit 130, resume hint."""
    import subprocess
    import sys
    import time

    from biosim.learn.checkpoint import load_checkpoint

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "biosim.cli", "run", "lif_digits", "--set", "learn.epochs=1000",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()  # best.safetensors appears at the end of epoch 1
        while not (out / "best.safetensors").exists() and time.monotonic() - t0 < 120 and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("biosim: error: stopped by SIGINT at ")
    assert last.endswith(f"resume with: biosim run lif_digits --resume {out}")
    _, meta = load_checkpoint(out / "checkpoint.safetensors")
    assert meta["state"]["epoch"] >= 1 and not meta["state"]["finished"]


def test_resume_mistakes_are_one_line(tmp_path, capsys):
    assert run(capsys, "run", "lif_digits", *TINY, "--out", str(tmp_path / "r"), "--quiet")[0] == 0
    ck = tmp_path / "r" / "checkpoint.safetensors"
    cases = [
        (["run", "lif_digits", "--resume", str(tmp_path / "nowhere")], "no config.json there"),
        (["run", "lif_mnist", "--resume", str(tmp_path / "r")], "holds a run of 'lif_digits', not 'lif_mnist'"),
        (["run", "lif_digits", "--resume", str(tmp_path / "r"), "--set", "learn.lr=0.1"], "leave out --set"),
        (["run", "cuba", "--resume", str(tmp_path / "r")], "cannot be resumed"),
    ]
    for argv, needle in cases:
        code, _, err = run(capsys, *argv, "--quiet")
        assert code == 2 and needle in err and err.count("\n") == 1, (argv, err)
    ck.write_bytes(ck.read_bytes()[:1000])
    code, _, err = run(capsys, "run", "lif_digits", "--resume", str(tmp_path / "r"), "--quiet")
    assert code == 2 and "is damaged or not a biosim checkpoint" in err and err.count("\n") == 1
    ck.unlink()
    code, _, err = run(capsys, "run", "lif_digits", "--resume", str(tmp_path / "r"), "--quiet")
    assert code == 2 and "no checkpoint at" in err


@pytest.mark.parametrize("sets, needle", [
    (["data=mnist6k"], "did you mean 'mnist5k'"),
    (["encoder.kind=poison"], "did you mean 'poisson'"),
    (["encoder.kind=poisson", "encoder.gain=2.0"], "spike probability per step"),
    (["encoder.steps=0"], "encoder.steps = 0 is out of range"),
    (["net.hidden=[0]"], "net.hidden = [0] must be a list of integers >= 1"),
    (["net.hidden=3"], "expected a list"),
    (["net.neuron=lfi"], "did you mean 'lif'"),
    (["net.dropout=1.0"], "net.dropout = 1.0 is out of range"),
    (["neuron.tau_mem_ms=0"], "tau_mem_ms = 0 is out of range"),
    (["neuron.reset=zerro"], "did you mean 'zero'"),
    (["surrogate.alpha=-1"], "surrogate.alpha = -1 is out of range"),
    (["net.weight_scale=0"], "net.weight_scale = 0 is out of range"),
    (["surrogate.kind=atan"], "did you mean 'arctan'"),
    (["readout.kind=max"], "unknown readout.kind 'max'"),
    (["learn.backend=norsee"], "did you mean 'norse'"),
    (["learn.backend=norse", "surrogate.kind=sigmoid"], "norse 1.1.0 has no 'sigmoid' surrogate"),
    (["learn.lr=-0.1"], "learn.lr = -0.1 is out of range"),
    (["learn.epochs=0"], "epochs = 0 is out of range"),
    (["learn.lr_schedule=cos"], "did you mean 'cosine'"),
    (["augment.shift_px=-1"], "shift_px = -1 is out of range"),
    (["net.conv_channels=[4,4,4,4]"], "do not fit a 8x8 input"),
    (["learn.epocs=3"], "did you mean 'learn.epochs'"),
])
def test_bad_config_values_exit_2_with_one_line(tmp_path, capsys, sets, needle):
    argv = [a for s in sets for a in ("--set", s)]
    code, _, err = run(capsys, "run", "lif_digits", *argv, "--out", str(tmp_path), "--quiet")
    assert code == 2, err
    assert needle in err, err
    assert err.count("\n") == 1 and err.startswith("biosim: error:") and "Traceback" not in err
    assert not (tmp_path / "metrics.json").exists()


def test_list_shows_the_training_runs(capsys):
    code, out, _ = run(capsys, "list")
    names = {line.split()[0] for line in out.strip().splitlines()}
    assert {"lif_mnist", "lif_digits", "conv_lif_mnist"} <= names


@pytest.mark.slow
def test_lif_mnist_defaults_reach_95_percent(tmp_path, capsys):
    code, out, err = run(capsys, "run", "lif_mnist", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["dataset"] == "mnist5k" and m["n_train"] == 3600 and m["n_test"] == 1000
    assert m["test_accuracy"] >= 0.95
    assert m["total_wall_s"] < 300


@pytest.mark.slow
def test_lif_mnist_on_norse_modules_also_learns(tmp_path, capsys):
    code, _, err = run(capsys, "run", "lif_mnist", "--set", "learn.backend=norse", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "metrics.json").read_text())["test_accuracy"] >= 0.95


@pytest.mark.slow
def test_conv_lif_mnist_runs(tmp_path, capsys):
    code, _, err = run(capsys, "run", "conv_lif_mnist", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "metrics.json").read_text())["test_accuracy"] >= 0.95
