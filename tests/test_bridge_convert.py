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
