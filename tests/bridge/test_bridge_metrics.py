"""NeuroBench-style metrics on small networks whose operations are counted by hand."""

import numpy as np
import pytest
import torch

from biosim.bridge.metrics import (ENERGY_ASSUMPTIONS, OpCounter, connection_sparsity, energy_estimate,
                                   footprint_bytes, latency_ms, static_metrics, workload_metrics)


class TwoLayer(torch.nn.Module):
    """Linear(3, 2) -> Heaviside(h >= 1) spikes -> Linear(2, 2), run over time."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(3, 2)
        self.fc2 = torch.nn.Linear(2, 2)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, -1.0, 0.0]]))
            self.fc1.bias.fill_(0.5)
            self.fc2.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
            self.fc2.bias.fill_(0.0)

    def forward(self, x_seq, record=None):
        outs = []
        for x in x_seq:
            z = (self.fc1(x) >= 1.0).float()
            if record is not None:
                record(0, z)
            outs.append(self.fc2(z))
        return torch.stack(outs)


def _run(model, x):
    # x: (N, T, 3) float samples; encode puts time first
    return workload_metrics(model, x, np.zeros(len(x), dtype=np.int64), lambda b: b.transpose(0, 1),
                            lambda out: out.sum(0), to_input=torch.from_numpy)


def test_hand_counted_two_layer_net():
    # step 0: x = [0.5, 0, 1] (analog): fc1 pairs with nonzero input and weight: (0,0), (0,2) -> 2 MACs;
    #         h = [0.5 + 2 + 0.5, 0.5] -> spikes [1, 0]; fc2 (spike input): (0,0) -> 1 AC
    # step 1: x = 0: no operations; h = bias = [0.5, 0.5] -> no spikes
    x = np.array([[[0.5, 0.0, 1.0], [0.0, 0.0, 0.0]]] * 2, dtype=np.float32)  # two identical samples
    r = _run(TwoLayer(), x)
    syn = r["synops"]
    assert syn["effective_macs"] == 2
    assert syn["effective_acs"] == 1
    assert syn["dense"] == 2 * (3 * 2 + 2 * 2)  # all weights and inputs one, two steps, bias excluded
    assert syn["per_layer"]["fc1"]["effective_macs"] == 2 and syn["per_layer"]["fc1"]["input"] == "analog"
    assert syn["per_layer"]["fc2"]["effective_acs"] == 1 and syn["per_layer"]["fc2"]["input"] == "spikes"
    assert r["spikes_per_layer"] == [1.0]
    assert r["activation_sparsity"] == pytest.approx(1 - 1 / 4)  # 1 spike of 2 neurons x 2 steps
    assert r["energy_estimate_uJ"] == pytest.approx((2 * 4.6 + 1 * 0.9) * 1e-6)


def test_static_metrics_hand_counted():
    net = TwoLayer()
    assert connection_sparsity(net) == pytest.approx(4 / 10)  # 3 zeros in fc1, 1 in fc2; biases excluded
    assert footprint_bytes(net) == 4 * (6 + 2 + 4 + 2)
    net.register_buffer("extra", torch.zeros(3, dtype=torch.float64))
    assert footprint_bytes(net) == 4 * 14 + 8 * 3
    assert static_metrics(net)["n_params"] == 14


def test_conv_counts_respect_padding():
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=True)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0  # one spike in the middle: it reaches all 9 outputs
    with OpCounter(conv) as counter:
        conv(x)
    entry = counter.layers[""]
    assert entry["acs"] == 9 and entry["macs"] == 0
    assert entry["dense"] == 4 * 4 + 4 * 6 + 9  # corners, edges, centre of a padded 3x3 map


def test_gru_cell_dense_count():
    cell = torch.nn.GRUCell(1, 2)
    x, h = torch.full((1, 1), 0.3), torch.zeros(1, 2)
    with OpCounter(cell) as counter:
        cell(x, h)
    entry = counter.layers[""]
    # input products 3*2*1, hidden products 3*2*2 (zero state: none effective), 3*2 gate products
    assert entry["dense"] == 6 + 12 + 6
    assert entry["macs"] == 6 + 0 + 6


def test_energy_and_latency():
    assert energy_estimate(acs=10, macs=1) == pytest.approx(13.6)
    assert "memory access" in ENERGY_ASSUMPTIONS.lower() and "Horowitz" in ENERGY_ASSUMPTIONS
    x = np.zeros((5, 2, 3), dtype=np.float32)
    lat = latency_ms(TwoLayer(), x, lambda b: b.transpose(0, 1), n=5, to_input=torch.from_numpy)
    assert lat["samples"] == 5 and lat["median"] > 0


def test_snn_first_layer_counted_every_step():
    """An expanded (stride-0) direct-current input is still counted at every step."""
    from biosim.learn.layers import LI, LIParams, make_neuron
    from biosim.learn.network import NetSpec, build_net

    torch.manual_seed(0)
    spec = NetSpec(input_shape=(1, 2, 2), n_classes=3, hidden=(5,))
    net = build_net(spec, lambda n: make_neuron("lif", n), lambda: LI(LIParams()))
    x = np.full((4, 2, 2), 255, dtype=np.uint8)
    r = workload_metrics(net, x, np.zeros(4, dtype=np.int64),
                         lambda b: (3.0 * b).unsqueeze(0).expand(6, *b.shape), lambda out: out.max(0).values)
    first = r["synops"]["per_layer"]["synapses.0.1"]
    assert first["effective_macs"] == 6 * 4 * 5  # 6 steps x 4 inputs x 5 neurons, all nonzero
    assert first["dense"] == 6 * 4 * 5
    assert r["synops"]["per_layer"]["synapses.1"]["input"] == "spikes"
