"""Training: checkpoints round-trip and refuse damage in one line; the schedule and augmentation
are what they say; the same seed gives the same weights; a run stopped by SIGTERM/SIGINT after k
batches and resumed ends with bitwise the same weights as an uninterrupted run."""

from __future__ import annotations

import math
import os
import signal

import numpy as np
import pytest
import torch

from biosim.datasets import load
from biosim.errors import BiosimError, RunInterrupted
from biosim.experiments.registry import apply_overrides, load_model
from biosim.experiments.train_runner import build_from_params, train_config_from
from biosim.learn.checkpoint import (load_checkpoint, load_weights, pack_training_state, save_checkpoint,
                                     unpack_training_state)
from biosim.learn.train import (CHECKPOINT, FINAL, Task, TrainConfig, epoch_plan, fit, learning_rate,
                                shift_images)

TINY = ["net.hidden=[24]", "learn.epochs=2", "learn.batch_size=100", "encoder.steps=4", "learn.eval_batch_size=500"]


def tiny(extra=(), seed=0):
    spec = load_model("lif_digits")
    params = apply_overrides(spec["params"], [*TINY, *extra])
    ds = load("digits")
    torch.manual_seed(seed)
    model, encode, readout, _ = build_from_params(params, (1, 8, 8), 10)
    task = Task(ds.x_train, ds.y_train, ds.x_val, ds.y_val, ds.x_test, ds.y_test, encode, readout)
    return model, task, train_config_from(params, seed)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ----------------------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip(tmp_path):
    model, task, cfg = tiny()
    fit(model, task, cfg, tmp_path, progress=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = sum((p ** 2).sum() for p in model.parameters())
    loss.backward()
    opt.step()
    tensors, meta = pack_training_state(model, opt)
    meta["counters"] = {"epoch": 3, "note": "ünïcode"}
    save_checkpoint(tmp_path / "c.safetensors", tensors, meta)
    back, meta2 = load_checkpoint(tmp_path / "c.safetensors")
    assert meta2["counters"] == {"epoch": 3, "note": "ünïcode"} and meta2["format"] == "biosim-checkpoint"
    model2, _, _ = tiny(seed=5)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.5)
    unpack_training_state(back, meta2, model2, opt2)
    assert_same(weights(model), weights(model2))
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i in s1["state"]:
        for key in s1["state"][i]:
            assert torch.equal(s1["state"][i][key], s2["state"][i][key])
    # the file is safetensors: readable without biosim, no pickle anywhere
    from safetensors.torch import load_file

    assert "model.synapses.0.1.weight" in load_file(tmp_path / "c.safetensors")
    assert b"pickle" not in (tmp_path / "c.safetensors").read_bytes()[:200]


def damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flip":
        data[-100] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncate", "flip", "garbage", "empty"])
def test_damaged_checkpoint_is_one_line_error(tmp_path, how):
    model, _, _ = tiny()
    opt = torch.optim.Adam(model.parameters())
    save_checkpoint(tmp_path / "c.safetensors", *pack_training_state(model, opt))
    damage(tmp_path / "c.safetensors", how)
    with pytest.raises(BiosimError, match="is damaged or not a biosim checkpoint") as info:
        load_checkpoint(tmp_path / "c.safetensors")
    assert "\n" not in str(info.value)


def test_other_safetensors_file_and_missing_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, tmp_path / "other.safetensors")
    with pytest.raises(BiosimError, match="damaged or not a biosim checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors")
    with pytest.raises(BiosimError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_weights_of_another_network_are_refused(tmp_path):
    model, task, cfg = tiny()
    fit(model, task, cfg, tmp_path, progress=False)
    other, _, _ = tiny(["net.hidden=[30]"])
    with pytest.raises(BiosimError, match="do not fit this network"):
        load_weights(tmp_path / FINAL, other)


# ----------------------------------------------------------------------------- schedule, data order

def test_learning_rate_schedules():
    cos = TrainConfig(epochs=4, lr=0.01, lr_schedule="cosine")
    assert learning_rate(cos, 0, 10) == 0.01
    assert learning_rate(cos, 20, 10) == pytest.approx(0.005)
    assert learning_rate(cos, 40, 10) == pytest.approx(0.0, abs=1e-18)
    step = TrainConfig(epochs=9, lr=0.01, lr_schedule="step", lr_step_epochs=3, lr_gamma=0.5)
    lrs = [learning_rate(step, s, 10) for s in (0, 29, 30, 59, 60)]
    assert lrs == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])
    assert learning_rate(TrainConfig(lr_schedule="constant", lr=0.2), 1000, 10) == 0.2


def test_shift_images_moves_content_and_fills_zeros():
    x = np.zeros((3, 5, 5), dtype=np.uint8)
    x[:, 2, 2] = 255
    out = shift_images(x, np.array([1, -2, 0]), np.array([0, 1, -1]))
    assert out[0, 3, 2] == 255 and out[1, 0, 3] == 255 and out[2, 2, 1] == 255
    assert out.sum() == 3 * 255
    edge = np.full((1, 4, 4), 7, dtype=np.uint8)
    moved = shift_images(edge, np.array([2]), np.array([-1]))
    assert (moved[0, :2] == 0).all() and (moved[0, :, 3] == 0).all() and moved[0, 3, 0] == 7


def test_epoch_plan_depends_only_on_seed_and_epoch():
    a = epoch_plan(3, 1, 100, 2)
    b = epoch_plan(3, 1, 100, 2)
    c = epoch_plan(3, 2, 100, 2)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    assert sorted(a[0]) == list(range(100)) and a[1].min() >= -2 and a[1].max() <= 2


@pytest.mark.parametrize("kwargs, needle", [
    ({"epochs": 0}, "learn.epochs = 0 is out of range"),
    ({"lr": -1.0}, "learn.lr = -1.0 is out of range"),
    ({"lr_schedule": "cosin"}, "did you mean 'cosine'"),
    ({"lr_gamma": 1.5}, "learn.lr_gamma = 1.5 is out of range"),
])
def test_bad_train_config(kwargs, needle):
    with pytest.raises(BiosimError, match=needle):
        TrainConfig(**kwargs)


# ----------------------------------------------------------------------------- determinism, resume

def test_training_learns_and_same_seed_gives_same_weights(tmp_path):
    runs = []
    for k in range(2):
        model, task, cfg = tiny(["learn.epochs=3"])
        result = fit(model, task, cfg, tmp_path / str(k), progress=False)
        runs.append((weights(model), result.history))
    assert_same(runs[0][0], runs[1][0])
    assert runs[0][1]["train_loss"] == runs[1][1]["train_loss"]
    assert runs[0][1]["val_accuracy"] == runs[1][1]["val_accuracy"]
    assert runs[0][1]["val_accuracy"][-1] > 0.4  # chance is 0.1 (24 hidden neurons, 3 short epochs)
    model, task, cfg = tiny(["learn.epochs=3"], seed=1)
    fit(model, task, cfg, tmp_path / "seed1", progress=False)
    assert not torch.equal(weights(model)["synapses.0.1.weight"], runs[0][0]["synapses.0.1.weight"])


@pytest.mark.parametrize("sig, stop_batch, extra", [
    (signal.SIGTERM, 4, ()),                                        # mid-epoch 1
    (signal.SIGINT, 13, ("net.dropout=0.3", "encoder.kind=poisson", "encoder.gain=0.8")),  # mid-epoch 2, RNG in use
    (signal.SIGTERM, 12, ()),                                       # last batch of epoch 1: stops at the epoch end
])
def test_stop_and_resume_gives_bitwise_the_same_weights(tmp_path, sig, stop_batch, extra):
    model, task, cfg = tiny(extra)
    straight = fit(model, task, cfg, tmp_path / "straight", progress=False)
    want = weights(model)
    nb = math.ceil(len(task.y_train) / cfg.batch_size)
    calls = []

    def send(epoch, batch):
        calls.append((epoch, batch))
        if epoch * nb + batch + 1 == stop_batch:
            os.kill(os.getpid(), sig)

    model, task, cfg = tiny(extra)
    with pytest.raises(RunInterrupted) as info:
        fit(model, task, cfg, tmp_path / "stopped", progress=False, on_batch=send,
            resume_hint="biosim run lif_digits --resume X")
    assert info.value.exit_code == 128 + sig
    assert "checkpoint saved" in str(info.value) and "--resume X" in str(info.value)
    assert len(calls) == stop_batch
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    model, task, cfg = tiny(extra, seed=0)
    torch.manual_seed(123)  # a different global RNG state must not matter
    resumed = fit(model, task, cfg, tmp_path / "stopped", resume=True, progress=False)
    assert resumed.resumed
    assert_same(weights(model), want)
    assert resumed.history["train_loss"] == straight.history["train_loss"]
    assert resumed.history["val_accuracy"] == straight.history["val_accuracy"]
    assert resumed.samples == straight.samples
    _, meta = load_checkpoint(tmp_path / "stopped" / CHECKPOINT)
    assert meta["state"]["finished"] and meta["schedule"]["kind"] == "cosine"


def test_resume_refuses_other_settings(tmp_path):
    model, task, cfg = tiny()
    fit(model, task, cfg, tmp_path, progress=False)
    model, task, cfg = tiny(["learn.lr=0.01"])
    with pytest.raises(BiosimError, match="other training settings"):
        fit(model, task, cfg, tmp_path, resume=True, progress=False)
