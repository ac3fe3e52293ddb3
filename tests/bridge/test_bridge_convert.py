"""ANN -> SNN rate conversion (biosim.bridge.convert) run in the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nir")

from biosim.bridge.convert import convert_mlp, snn_accuracy_vs_steps  # noqa: E402
from biosim.datasets import load  # noqa: E402
from biosim.errors import BiosimError  # noqa: E402


def _train_mlp(x, y, hidden=128, epochs=5, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X[idx]), Y[idx]).backward()
            opt.step()
    return model.eval()


def test_conversion_accuracy_vs_steps_mnist5k():
    """At 100 steps the converted SNN loses <= 0.5 percentage points against its ANN (mnist5k)."""
    ds = load("mnist5k")
    flat = lambda a: a.reshape(len(a), -1).astype(np.float32) / np.float32(255.0)  # noqa: E731
    xtr, xte = flat(ds.x_train), flat(ds.x_test)
    with torch.random.fork_rng(devices=[]):
        model = _train_mlp(xtr, ds.y_train)
    with torch.no_grad():
        ann = float((model(torch.from_numpy(xte)).argmax(1).numpy() == ds.y_test).mean())
    graph = convert_mlp(model, xtr, percentile=99.9)
    acc = snn_accuracy_vs_steps(graph, xte, ds.y_test, steps=(5, 20, 100))
    assert ann > 0.9
    assert acc[100] >= ann - 0.005, (ann, acc)
    assert acc[5] <= acc[100] + 0.005  # more steps, finer rates: accuracy does not fall
    assert acc["spikes_per_sample"] > 0


def test_conversion_rejects_non_mlp():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    with pytest.raises(BiosimError, match="Tanh"):
        convert_mlp(model, np.random.default_rng(0).random((8, 4)))


def test_convert_mnist_run(tmp_path, capsys):
    """`biosim run convert_mnist` (tiny): ANN trained, converted, run in the engine, plotted."""
    import json

    from biosim.cli import main

    args = ["run", "convert_mnist", "--quiet", "--out", str(tmp_path)]
    for s in ("data=digits", "net.hidden=[32]", "net.dropout=0.0", "learn.epochs=10", "learn.lr=0.01",
              "augment.shift_px=0", "convert.steps=[5, 100]", "convert.calib_samples=200"):
        args += ["--set", s]
    assert main(args) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["ann_accuracy"] > 0.85
    assert set(m["snn_accuracy"]) == {"5", "100"}
    assert m["loss_pp_at_100"] == pytest.approx(100 * (m["ann_accuracy"] - m["snn_accuracy"]["100"]))
    assert m["loss_pp_at_100"] <= 2.0  # a tiny digits net: within 2 pp of its ANN at 100 steps
    assert m["n_test"] == len(load("digits").y_test) and m["snn_spikes_per_sample"] > 0
    assert (tmp_path / "accuracy_vs_steps.png").is_file() and (tmp_path / "best.safetensors").is_file()


@pytest.mark.parametrize("sets,match", [
    (["convert.steps=[]"], "convert.steps"),
    (["convert.percentile=0.0"], "convert.percentile"),
    (["net.kind=cnn"], "net.kind"),
])
def test_convert_run_rejects_bad_settings(tmp_path, sets, match):
    from biosim.experiments.convert_runner import run_convert
    from biosim.experiments.registry import apply_overrides, load_model

    spec = load_model("convert_mnist")
    with pytest.raises(BiosimError, match=match):
        run_convert(spec, apply_overrides(spec["params"], sets), 0, "numpy", tmp_path, progress=False)
