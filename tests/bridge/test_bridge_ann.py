"""ANN baselines train with the spiking runs' trainer and beat chance; the MNIST-1D generator."""

import json

import numpy as np
import pytest
import torch

from biosim.bridge.ann import build_ann, image_encoder, sequence_encoder
from biosim.cli import main
from biosim.datasets.mnist1d import from_uint8, make_mnist1d, templates, to_uint8
from biosim.errors import BiosimError


def test_mnist1d_deterministic_and_shaped():
    x1, y1 = make_mnist1d(200, seed=3)
    x2, y2 = make_mnist1d(200, seed=3)
    x3, _ = make_mnist1d(200, seed=4)
    assert x1.shape == (200, 40) and y1.shape == (200,) and y1.dtype == np.int64
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert np.bincount(y1).tolist() == [20] * 10
    assert abs(x1.mean()) < 1e-9 and x1.std() == pytest.approx(1.0)
    t = templates()
    assert t.shape == (10, 12) and np.all(t[:, 0] == 0)
    q = to_uint8(x1)
    assert q.shape == (200, 1, 40) and q.dtype == np.uint8
    inside = np.abs(x1) < 3.9
    assert np.max(np.abs(from_uint8(q) - x1)[inside]) <= 4.0 / 255 + 1e-12


def test_catalog_mnist1d_and_xor():
    from biosim.datasets import load

    d = load("mnist1d")
    assert d.image_shape == (1, 40) and d.n_classes == 10
    assert sum(d.sizes.values()) == 5000
    x = load("xor")
    assert x.image_shape == (1, 2) and x.n_classes == 2


@pytest.mark.parametrize("kind,shape,kw", [
    ("mlp", (1, 8, 8), {"hidden": [16, 8]}),
    ("cnn", (1, 8, 8), {"conv_channels": [4], "hidden": [8], "kernel_size": 3}),
    ("gru", (1,), {"hidden": [6]}),
    ("lstm", (1,), {"hidden": [6]}),
])
def test_baseline_shapes_and_record(kind, shape, kw):
    torch.manual_seed(0)
    net = build_ann(kind, shape, 10, **kw)
    if kind in ("gru", "lstm"):
        x_seq = sequence_encoder(torch.rand(3, 1, 1, 7))
        assert x_seq.shape == (7, 3, 1, 1, 1)
    else:
        x_seq = image_encoder(torch.rand(3, *shape))
    seen = []
    out = net(x_seq, record=lambda k, z: seen.append(k))
    assert out.shape == (1, 3, 10)
    assert seen


def test_bad_baseline_settings():
    with pytest.raises(BiosimError, match="net.kind"):
        build_ann("mlpp", (1, 8, 8), 10)
    with pytest.raises(BiosimError, match="do not fit"):
        build_ann("cnn", (1, 2, 2), 10, conv_channels=[4, 4])


@pytest.mark.parametrize("name,sets,chance", [
    ("digits_mlp", ["learn.epochs=3"], 0.1),
    ("cnn_mnist", ["data=digits", "net.conv_channels=[4]", "net.hidden=[32]", "learn.epochs=2"], 0.1),
    ("gru_mnist1d", ["learn.epochs=4"], 0.1),
    ("xor", ["learn.epochs=5"], 0.5),
])
def test_baseline_runs_beat_chance(tmp_path, capsys, name, sets, chance):
    args = ["run", name, "--quiet", "--out", str(tmp_path)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["test_accuracy"] > chance + 0.1
    assert m["model_kind"] in ("mlp", "cnn", "gru")
    for key in ("synops_effective_macs", "synops_dense", "activation_sparsity", "energy_estimate_uJ",
                "latency_ms_per_sample", "footprint_bytes", "connection_sparsity", "spikes_per_layer"):
        assert key in m, key
    assert m["synops_effective_acs"] == 0  # analog activations everywhere: MACs only
    assert (tmp_path / "confusion_matrix.png").is_file()


def test_snn_run_has_metrics(tmp_path, capsys):
    assert main(["run", "xor_snn", "--quiet", "--out", str(tmp_path), "--set", "learn.epochs=2"]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["model_kind"] == "snn"
    assert m["synops_effective_acs"] > 0  # hidden spikes into the read-out
    assert m["synops_effective_macs"] > 0  # analog current into layer 1
    assert m["spikes_per_sample"] == pytest.approx(sum(m["spikes_per_layer"]))
