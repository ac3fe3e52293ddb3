"""`biosim run stdp_mnist` (Diehl & Cook 2015 on the engine), on a few images: it learns (weights
move, thresholds rise, every neuron's input stays normalised), it labels neurons from training
images only, same seed same result, and the label/classify helpers on made-up responses."""

from __future__ import annotations

import json

import numpy as np
from biosim.cli import main
from biosim.experiments.stdp_runner import assign_labels, build_diehl_cook, classify, present

TINY = ["--set", "n_exc=12", "--set", "n_train=25", "--set", "n_test=15"]


def _run(tmp_path, capsys, name, *extra):
    code = main(["run", "stdp_mnist", *TINY, *extra, "--out", str(tmp_path / name), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads((tmp_path / name / "metrics.json").read_text())


def test_stdp_mnist_runs_and_repeats(tmp_path, capsys):
    m = _run(tmp_path, capsys, "a")
    for key in ("test_accuracy", "train_seconds", "images_per_second", "n_exc", "n_train", "epochs"):
        assert key in m
    assert m["n_exc"] == 12 and m["n_train"] == 25 and m["n_test"] == 15 and m["epochs"] == 1
    assert 0.0 <= m["test_accuracy"] <= 1.0
    assert m["mean_theta_mv"] > 20.0  # thresholds rose from their start at 20 mV while learning
    for png in ("receptive_fields.png", "thresholds.png", "confusion_matrix.png"):
        assert (tmp_path / "a" / png).stat().st_size > 1000
    again = _run(tmp_path, capsys, "b")
    assert again["test_accuracy"] == m["test_accuracy"] and again["mean_theta_mv"] == m["mean_theta_mv"]


def test_presentation_learns_and_keeps_inputs_normalised():
    from biosim.datasets import load

    images = load("mnist5k").x_train[:6]
    net, h = build_diehl_cook(8, 784, 0.5, seed=1)
    net.run(0.0)
    cfg = {"intensity": 2.0, "max_showings": 5, "present_ms": 350.0, "rest_ms": 150.0, "min_spikes": 5, "w_sum": 78.0}
    _, _, w0 = net.weights(h["plastic"], "w")
    shown = [present(net, h, img, cfg, normalize=True)[1] for img in images]
    assert all(1 <= s <= 5 for s in shown)
    i, j, w = net.weights(h["plastic"], "w")
    assert np.max(np.abs(w - w0)) > 1e-3
    net.normalize(h["plastic"], 78.0)
    _, _, wn = net.weights(h["plastic"], "w")
    np.testing.assert_allclose(np.bincount(j, weights=wn, minlength=8), 78.0, rtol=1e-12)


def test_labels_come_from_responses_and_classify_by_mean_response():
    counts = np.array([[5, 0, 1], [4, 1, 0], [0, 6, 1], [1, 0, 7]])
    labels = np.array([0, 0, 1, 2])
    assignment = assign_labels(counts, labels, 3)
    np.testing.assert_array_equal(assignment, [0, 1, 2])
    np.testing.assert_array_equal(classify(counts, assignment, 3), [0, 0, 1, 2])


def test_bad_settings_are_one_line(tmp_path, capsys):
    code = main(["run", "stdp_mnist", "--set", "n_exc=0", "--out", str(tmp_path / "x"), "--quiet"])
    _, err = capsys.readouterr()
    assert code == 2 and "n_exc" in err and len(err.strip().splitlines()) == 1
    code = main(["run", "stdp_mnist", *TINY, "--backend", "numpy", "--out", str(tmp_path / "y"), "--quiet"])
    _, err = capsys.readouterr()
    assert code == 2 and "numba-cpu" in err


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, capsys, monkeypatch):
    """SIGTERM during training saves a checkpoint and exits 143; --resume continues to the same
    learned weights, thresholds and test accuracy as a run that never stopped."""
    import os
    import signal

    from safetensors.numpy import load_file

    from biosim.experiments import stdp_runner

    whole = _run(tmp_path, capsys, "whole", "--set", "checkpoint_every=7")
    real_present, calls = stdp_runner.present, []

    def present_then_stop(*args, **kw):
        calls.append(1)
        out = real_present(*args, **kw)
        if len(calls) == 11:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(stdp_runner, "present", present_then_stop)
    out_dir = tmp_path / "cut"
    code = main(["run", "stdp_mnist", *TINY, "--set", "checkpoint_every=7", "--out", str(out_dir), "--quiet"])
    err = capsys.readouterr().err
    assert code == 143, err
    assert "after training image 11/25" in err and "--resume" in err
    assert not (out_dir / "metrics.json").exists()
    monkeypatch.setattr(stdp_runner, "present", real_present)
    assert main(["run", "stdp_mnist", "--resume", str(out_dir), "--quiet"]) == 0
    resumed = json.loads((out_dir / "metrics.json").read_text())
    assert resumed["resumed"] is True and whole["resumed"] is False
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(out_dir / "model.safetensors")
    np.testing.assert_array_equal(a["input_weights"], b["input_weights"])
    np.testing.assert_array_equal(a["theta_mv"], b["theta_mv"])
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    # a finished run is not redone
    assert main(["run", "stdp_mnist", "--resume", str(out_dir), "--quiet"]) == 2
    assert "has finished" in capsys.readouterr().err


def test_full_mnist_runs_when_its_idx_files_are_present(tmp_path, capsys, monkeypatch):
    """`--set data=mnist` reads full MNIST's IDX files (here small ones the test writes)."""
    import hashlib

    from biosim.datasets import write_idx
    from biosim.datasets.mnist import MNIST_FILES, MNIST_MD5

    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    arrays = {"train_images": rng.integers(0, 256, (36, 28, 28), dtype=np.uint8),
              "train_labels": (np.arange(36) % 10).astype(np.uint8),
              "test_images": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
              "test_labels": (np.arange(10) % 10).astype(np.uint8)}
    for role, a in arrays.items():
        path = write_idx(folder / MNIST_FILES[role], a)
        monkeypatch.setitem(MNIST_MD5, path.name, hashlib.md5(path.read_bytes()).hexdigest())
    monkeypatch.setenv("BIOSIM_DATA", str(tmp_path / "data"))
    code = main(["run", "stdp_mnist", "--set", "n_exc=6", "--set", "data=mnist", "--out", str(tmp_path / "m"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    m = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert m["data"] == "mnist" and m["n_train"] == 33 and m["n_test"] == 10  # the last 3 train images: validation
