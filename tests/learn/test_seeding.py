"""Initial weights from an explicit generator, and training that leaves torch's global RNG alone.

* :func:`biosim.learn.network.init_weights` draws with torch's default distributions: a generator
  seeded with ``s`` gives bitwise the weights of ``torch.manual_seed(s)`` and the modules' own
  constructors (Linear, Conv2d, GRUCell, LSTMCell, RecurrentLIF);
* :func:`build_net` and :func:`build_ann` with a generator: the same seed gives the same weights
  whatever used torch's global generator in between, another seed other weights; the recurrent
  weight of a RecurrentLIF layer is redrawn too (zero diagonal kept);
* :func:`biosim.learn.train.fit` gives the same weights whatever the global RNG state before, and
  leaves that state as it found it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from biosim.bridge.ann import build_ann
from biosim.learn.layers import LI, LIF, LIParams, RecurrentLIF, make_neuron
from biosim.learn.network import NetSpec, build_net, init_weights
from biosim.learn.readouts import Readout
from biosim.learn.train import Task, TrainConfig, fit


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("make", [
    lambda: torch.nn.Linear(7, 5),
    lambda: torch.nn.Conv2d(2, 3, 3, padding=1),
    lambda: torch.nn.Conv1d(2, 3, 5, bias=False),
    lambda: torch.nn.GRUCell(4, 6),
    lambda: torch.nn.LSTMCell(4, 6),
    lambda: RecurrentLIF(9),
    lambda: torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)),
], ids=["linear", "conv2d", "conv1d_nobias", "gru", "lstm", "rlif", "sequential"])
def test_init_weights_uses_torch_default_distributions(make):
    torch.manual_seed(11)
    reference = _state(make())
    torch.manual_seed(999)
    module = make()
    assert not _same(_state(module), reference)
    init_weights(module, torch.Generator().manual_seed(11))
    assert _same(_state(module), reference)


def test_recurrent_weight_without_reset_hook_is_redrawn():
    class Plain(torch.nn.Module):
        def __init__(self, n, autapses):
            super().__init__()
            self.init_scale, self.autapses = 0.5, autapses
            self.recurrent_weight = torch.nn.Parameter(torch.zeros(n, n))

    for autapses in (False, True):
        m = init_weights(Plain(50, autapses), torch.Generator().manual_seed(1))
        w = m.recurrent_weight.detach()
        bound = 0.5 / math.sqrt(50)
        assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound
        assert bool((w.diagonal() == 0).all()) != autapses


def _snn(seed, neuron="lif", weight_scale=1.0):
    spec = NetSpec(input_shape=(1, 6, 6), n_classes=3, hidden=(8, 5), weight_scale=weight_scale)
    return build_net(spec, lambda n: make_neuron(neuron, n), lambda: LI(LIParams()),
                     generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("neuron", ["lif", "rlif"])
def test_build_net_same_seed_same_weights(neuron):
    a = _state(_snn(3, neuron))
    torch.rand(1000)  # use torch's global generator in between
    torch.manual_seed(12345)
    b = _state(_snn(3, neuron))
    c = _state(_snn(4, neuron))
    assert _same(a, b)
    assert all(not torch.equal(a[k], c[k]) for k in a)
    if neuron == "rlif":
        rec = [k for k in a if k.endswith("recurrent_weight")]
        assert rec and all(bool((a[k].diagonal() == 0).all()) for k in rec)


def test_build_net_generator_matches_the_global_seed_and_scales():
    """Without recurrent layers nothing is drawn between the synapses: the generator gives the
    weights the global generator gave (``torch.manual_seed(s)`` then building)."""
    spec = NetSpec(input_shape=(1, 6, 6), n_classes=3, hidden=(8,), conv_channels=(2,), kernel_size=3,
                   weight_scale=2.5)
    torch.manual_seed(7)
    old = _state(build_net(spec, lambda n: LIF(), lambda: LI(LIParams())))
    torch.manual_seed(0)
    new = _state(build_net(spec, lambda n: LIF(), lambda: LI(LIParams()), generator=torch.Generator().manual_seed(7)))
    assert _same(old, new)


@pytest.mark.parametrize(("kind", "shape", "kw"), [
    ("mlp", (1, 6, 6), {"hidden": [8]}),
    ("cnn", (1, 8, 8), {"hidden": [8], "conv_channels": [3], "kernel_size": 3}),
    ("gru", (4,), {"hidden": [6, 5]}),
    ("lstm", (4,), {"hidden": [6]}),
])
def test_build_ann_same_seed_same_weights(kind, shape, kw):
    a = _state(build_ann(kind, shape, 3, generator=torch.Generator().manual_seed(5), **kw))
    torch.rand(77)
    b = _state(build_ann(kind, shape, 3, generator=torch.Generator().manual_seed(5), **kw))
    c = _state(build_ann(kind, shape, 3, generator=torch.Generator().manual_seed(6), **kw))
    assert _same(a, b)
    assert all(not torch.equal(a[k], c[k]) for k in a)
    torch.manual_seed(5)
    assert _same(_state(build_ann(kind, shape, 3, **kw)), a)  # torch's default distributions


def _task():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(48, 6, 6), dtype=np.uint8)
    y = rng.integers(0, 3, size=48).astype(np.int64)

    def encode(xb):  # Poisson spikes: torch's generator inside fit's fork
        from biosim.learn.encoders import poisson

        return poisson(xb, 4, 0.8)

    return Task(x[:32], y[:32], x[32:40], y[32:40], x[40:], y[40:], encode, Readout(kind="mean_membrane"))


def test_fit_is_independent_of_and_leaves_the_global_rng(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-2, eval_batch_size=16, seed=2)
    finals = []
    for k, garbage in enumerate((0, 5000)):
        torch.manual_seed(321)
        torch.rand(garbage)
        before = torch.get_rng_state()
        spec = NetSpec(input_shape=(1, 6, 6), n_classes=3, hidden=(10,), dropout=0.3)
        model = build_net(spec, lambda n: LIF(), lambda: LI(LIParams()), generator=torch.Generator().manual_seed(2))
        fit(model, _task(), cfg, tmp_path / str(k), progress=False)
        assert torch.equal(torch.get_rng_state(), before)
        finals.append(_state(model))
    assert _same(*finals)
