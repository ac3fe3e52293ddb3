"""NIR export / import of biosim SNNs and the engine's NIR executor (biosim.bridge.nir*)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir")

from biosim.bridge.nir import export_nir, import_nir, to_nir_graph  # noqa: E402
from biosim.bridge.nir_engine import run  # noqa: E402
from biosim.errors import BiosimError  # noqa: E402
from biosim.learn.layers import LI, CubaLIF, CubaLIFParams, LIF, LIFParams, LIParams  # noqa: E402
from biosim.learn.network import SpikingNet  # noqa: E402


def _mlp(neuron="lif", reset="subtract", tau_syn_out=0.0, dt_ms=1.0, seed=0, sizes=(20, 40, 30, 5), v_leak=0.0):
    torch.manual_seed(seed)
    syn, neu = [], []
    for k in range(len(sizes) - 1):
        lin = torch.nn.Linear(sizes[k], sizes[k + 1])
        with torch.no_grad():
            lin.weight.mul_(3.0)
        syn.append(lin)
        if k == len(sizes) - 2:
            neu.append(LI(LIParams(tau_mem_ms=5.0, tau_syn_ms=tau_syn_out, dt_ms=dt_ms, v_leak=v_leak)))
        elif neuron == "cuba":
            neu.append(CubaLIF(CubaLIFParams(tau_mem_ms=8.0, tau_syn_ms=4.0, reset=reset, dt_ms=dt_ms, v_leak=v_leak)))
        else:
            neu.append(LIF(LIFParams(tau_mem_ms=6.0, reset=reset, dt_ms=dt_ms, v_leak=v_leak)))
    return SpikingNet(syn, neu).eval()


def _torch_run(model, x, steps=False):
    counts, seq = {}, {}

    def record(stage, z):
        counts[stage] = counts.get(stage, 0) + z
        seq.setdefault(stage, []).append(z.numpy().copy())

    with torch.no_grad():
        out = model(x, record=record)
    counts = [counts[k].numpy() for k in sorted(counts)]
    if steps:
        return out, counts, [np.stack(seq[k]) for k in sorted(seq)]
    return out, counts


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("neuron,reset,tau_syn_out", [("lif", "subtract", 0.0), ("cuba", "zero", 3.0),
                                                      ("lif", "zero", 2.0), ("cuba", "subtract", 0.0)])
def test_round_trip_spikes_identical(dtype, neuron, reset, tau_syn_out):
    """export -> nir.write -> nir.read -> engine populations and projections: the same spikes as
    torch, every step."""
    model = _mlp(neuron, reset, tau_syn_out)
    tdt = torch.float32 if dtype == "float32" else torch.float64
    model = model.to(tdt)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(25, 16, 20, generator=gen, dtype=tdt)
    out_t, counts_t, seq_t = _torch_run(model, x, steps=True)
    buf = io.BytesIO()
    export_nir(model, buf)
    buf.seek(0)
    net = import_nir(buf)
    assert net.source == "biosim" and net.dt == pytest.approx(1e-3) and net.integration == "exact"
    res = run(net, x.numpy(), dtype=dtype, record_spikes=True)
    assert sum(c.sum() for c in counts_t) > 100  # the test means something: neurons fire
    for a, b in zip(counts_t, res["spike_counts"]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(seq_t, res["spikes"]):  # every spike at its step
        np.testing.assert_array_equal(a, b)
    # the read-out membrane: same float ops up to the synapses' summation order
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(res["output"], out_t.numpy(), rtol=tol, atol=tol)


def test_export_file_and_metadata(tmp_path):
    model = _mlp()
    path = tmp_path / "net.nir"
    graph = export_nir(model, path, meta={"encoder": "current", "steps": 8})
    assert set(type(n).__name__ for n in graph.nodes.values()) == {"Input", "Affine", "LIF", "LI", "Output"}
    back = nir.read(path)
    lif = back.nodes["n0"]
    np.testing.assert_allclose(lif.tau, 6e-3)  # the true time constant, in s
    np.testing.assert_allclose(np.exp(-1e-3 / lif.tau), LIFParams(tau_mem_ms=6.0).beta_mem(), rtol=1e-6)
    net = import_nir(path)
    assert net.metadata["encoder"] == "current" and net.metadata["steps"] == 8
    assert [n.reset for n in net.neuron_layers()[:2]] == ["subtract", "subtract"]


def test_conv_round_trip():
    """Conv2d -> AvgPool2d -> LIF, flatten, linear -> LI (NIR Conv2d, AvgPool2d, Flatten, Affine)."""
    torch.manual_seed(3)
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.AvgPool2d(2))
    with torch.no_grad():
        conv[0].weight.abs_().mul_(2.0)
    model = SpikingNet([conv, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 6))],
                       [LIF(LIFParams(tau_mem_ms=4.0)), LI(LIParams(tau_mem_ms=5.0))]).eval().double()
    x = 3 * torch.rand(10, 5, 1, 8, 8, dtype=torch.float64)
    out_t, counts_t = _torch_run(model, x)
    net = import_nir(to_nir_graph(model, input_shape=(1, 8, 8)))
    res = run(net, x.numpy(), dtype="float64")
    assert counts_t[0].sum() > 50
    np.testing.assert_array_equal(counts_t[0].reshape(5, -1), res["spike_counts"][0])
    np.testing.assert_allclose(res["output"], out_t.numpy(), rtol=1e-12, atol=1e-12)


def test_graph_becomes_engine_populations_and_projections():
    """Each neuron node is a population of the engine's layer neuron, each linear node between two
    of them one projection onto x_syn with the node's weights, each bias the target's i_in."""
    from biosim.network import Network

    model = _mlp()
    graph = import_nir(to_nir_graph(model))
    assert isinstance(graph.network, Network)
    assert list(graph.populations) == ["n0", "n1", "n2"]
    assert [p.n for p in graph.populations.values()] == [40, 30, 5]
    assert all(p.spec.name == "layer_lif" for p in graph.populations.values())
    net = graph.network
    assert [(p.src.name, p.tgt.name, p.var) for p in net.projections] == [("n0", "n1", "x_syn"), ("n1", "n2", "x_syn")]
    run(graph, np.zeros((1, 20), np.float32), steps=2)
    for proj, lin in zip(net.projections, list(model.synapses)[1:]):
        i, j, w = net.weights(proj)
        dense = np.zeros(lin.weight.shape, np.float32)
        dense[j, i] = w
        np.testing.assert_array_equal(dense, lin.weight.detach().numpy())
    np.testing.assert_array_equal(net.state(graph.populations["n2"], "i_in"), model.synapses[2].bias.detach().numpy())
    # the graph runs on the engine's other backend too, with the same spikes
    x = torch.rand(12, 4, 20, generator=torch.Generator().manual_seed(5))
    _, counts_t = _torch_run(model, x)
    res = import_nir(to_nir_graph(model), backend="numpy").run(x.numpy())
    for a, b in zip(counts_t, res["spike_counts"]):
        np.testing.assert_array_equal(a, b)


def test_bias_and_resting_potential_wait_for_their_layer():
    """A layer k steps behind the input must not integrate its bias or leak towards v_leak before
    its first step: identical spikes and read-out with v_leak != 0 and biases (float64)."""
    model = _mlp("cuba", "zero", 2.0, v_leak=0.3).double()
    x = torch.rand(15, 8, 20, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out_t, counts_t = _torch_run(model, x)
    res = run(import_nir(to_nir_graph(model)), x.numpy(), dtype="float64")
    assert counts_t[1].sum() > 20
    for a, b in zip(counts_t, res["spike_counts"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(res["output"], out_t.numpy(), rtol=1e-12, atol=1e-12)
    # a constant input held for `steps` gives what the same input repeated in time gives
    static = run(import_nir(to_nir_graph(model)), x[0].numpy(), steps=15, dtype="float64")
    _, counts_s = _torch_run(model, x[:1].expand(15, -1, -1))
    for a, b in zip(counts_s, static["spike_counts"]):
        np.testing.assert_array_equal(a, b)


def test_conv_between_spiking_layers():
    """Conv2d -> AvgPool2d between two spiking layers: one projection with explicit connectivity."""
    torch.manual_seed(4)
    conv0 = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.AvgPool2d(2))
    conv1 = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1, stride=1), torch.nn.AvgPool2d(2))
    with torch.no_grad():
        conv0[0].weight.abs_().mul_(2.0)
        conv1[0].weight.mul_(4.0)
    model = SpikingNet([conv0, conv1, torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 2 * 2, 5))],
                       [LIF(LIFParams(tau_mem_ms=4.0)), LIF(LIFParams(tau_mem_ms=4.0, reset="zero")),
                        LI(LIParams(tau_mem_ms=5.0))]).eval().double()
    x = 3 * torch.rand(12, 6, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out_t, counts_t = _torch_run(model, x)
    graph = import_nir(to_nir_graph(model, input_shape=(1, 8, 8)))
    assert len(graph.network.projections) == 2
    res = run(graph, x.numpy(), dtype="float64")
    assert counts_t[1].sum() > 20
    for a, b in zip(counts_t, res["spike_counts"]):
        np.testing.assert_array_equal(a.reshape(6, -1), b)
    np.testing.assert_allclose(res["output"], out_t.numpy(), rtol=1e-12, atol=1e-12)


def test_result_states_since():
    """Result.states_since: the records of the last run call only, with their times."""
    from biosim.network import Network
    from biosim.neurons.layer import LayerLIF

    net = Network(dt_ms=0.5)
    pop = net.population("p", LayerLIF(spiking=False), 2, init={"i_in": [1.0, 2.0]})
    net.monitor(pop, "v")
    net.run(3.0)
    res = net.run(2.0)
    times, v = res.states_since(res.start_ms)[("p", "v")]
    all_t, all_v = res.states[("p", "v")]
    np.testing.assert_allclose(times, [3.0, 3.5, 4.0, 4.5])
    np.testing.assert_array_equal(v, all_v[6:])
    t2, v2 = res.states_since(1.2)[("p", "v")]
    np.testing.assert_allclose(t2, all_t[3:])
    np.testing.assert_array_equal(v2, all_v[3:])
    assert res.states_since(99.0)[("p", "v")][1].shape == (0, 2)


def test_maxpool_is_refused():
    model = SpikingNet([torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.MaxPool2d(2)),
                        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3))],
                       [LIF(), LI()])
    with pytest.raises(BiosimError, match="MaxPool2d"):
        to_nir_graph(model, input_shape=(1, 8, 8))


def test_net_pool_avg_builds_an_exportable_conv_net():
    """net.pool = "avg" (conv stages average-pool) exports to NIR; "max" is refused; others are errors."""
    from biosim.learn.network import NetSpec, build_net

    def make(pool):
        spec = NetSpec(input_shape=(1, 8, 8), n_classes=3, conv_channels=(2,), kernel_size=3, hidden=(), pool=pool)
        return build_net(spec, lambda n: LIF(), LI)

    graph = to_nir_graph(make("avg"), input_shape=(1, 8, 8))
    assert "AvgPool2d" in {type(n).__name__ for n in graph.nodes.values()}
    with pytest.raises(BiosimError, match="MaxPool2d"):
        to_nir_graph(make("max"), input_shape=(1, 8, 8))
    with pytest.raises(BiosimError, match="net.pool"):
        make("min")


def _li_graph(tau=10e-3):
    return nir.NIRGraph.from_list(nir.Input(input_type=np.array([3])),
                                  nir.Affine(weight=np.eye(3, dtype=np.float32), bias=np.zeros(3, np.float32)),
                                  nir.LI(tau=np.full(3, tau), r=np.ones(3), v_leak=np.zeros(3)),
                                  nir.Output(output_type=np.array([3])))


def test_dt_continuous_time_consistent():
    """The same graph at dt and dt/4 (4x the steps) gives the same trajectory and spike counts."""
    x = np.array([[0.5, 1.0, 2.0]])
    # leaky integrator, constant input: exact (zero-order hold) is exact at any dt
    coarse = run(import_nir(_li_graph(), dt=1e-3), x, steps=20, dtype="float64")["output"][:, 0]
    fine = run(import_nir(_li_graph(), dt=0.25e-3), x, steps=80, dtype="float64")["output"][3::4, 0]
    np.testing.assert_allclose(coarse, fine, rtol=1e-12)
    np.testing.assert_allclose(coarse[-1], x[0] * (1 - np.exp(-20e-3 / 10e-3)), rtol=1e-12)
    # LIF firing rate under constant drive: the count over 200 ms hardly depends on dt
    lif = nir.NIRGraph.from_list(nir.Input(input_type=np.array([3])),
                                 nir.LIF(tau=np.full(3, 10e-3), r=np.ones(3), v_leak=np.zeros(3),
                                         v_threshold=np.ones(3), v_reset=np.zeros(3)),
                                 nir.Output(output_type=np.array([3])))
    xs = np.array([[1.5, 3.0, 6.0]])
    counts = [run(import_nir(lif, dt=dt), xs, steps=int(round(0.2 / dt)), dtype="float64")["spike_counts"][0][0]
              for dt in (1e-3, 0.5e-3, 0.1e-3)]
    # analytic rate of a LIF with reset to 0 (no refractory period): 1 / (tau ln(I / (I - 1)))
    rate = 1.0 / (10e-3 * np.log(xs[0] / (xs[0] - 1.0)))
    isi = 1.0 / rate
    for dt, c in zip((1e-3, 0.5e-3, 0.1e-3), counts):
        # a spike waits for the next step: each period lengthens by less than dt
        assert np.all(c <= 0.2 / isi + 1) and np.all(c >= 0.2 / (isi + dt) - 1), (dt, c, 0.2 * rate)
    assert np.all(np.abs(counts[2] - 0.2 * rate) <= 0.06 * 0.2 * rate + 1)  # dt -> 0: near the ODE's rate
    with pytest.raises(BiosimError, match="dt"):
        import_nir(lif)  # a plain NIR graph does not say its step


def test_bad_graphs():
    unknown = nir.NIRGraph.from_list(nir.Input(input_type=np.array([3])), nir.Threshold(threshold=np.ones(3)),
                                     nir.Output(output_type=np.array([3])))
    with pytest.raises(BiosimError, match="unknown NIR node type 'Threshold'") as err:
        import_nir(unknown, dt=1e-3)
    assert "\n" not in str(err.value)
    mismatch = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([4])),
               "fc": nir.Affine(weight=np.ones((5, 4)), bias=np.zeros(5)),
               "lif": nir.LIF(tau=np.full(7, 0.01), r=np.ones(7), v_leak=np.zeros(7), v_threshold=np.ones(7)),
               "output": nir.Output(output_type=np.array([7]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False)
    with pytest.raises(BiosimError, match="node 'lif' \\(LIF\\) expects 7 inputs but receives 5") as err:
        import_nir(mismatch, dt=1e-3)
    assert "\n" not in str(err.value)
    branch = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])), "a": nir.Linear(weight=np.ones((2, 2))),
               "b": nir.Linear(weight=np.ones((2, 2))), "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")], type_check=False)
    with pytest.raises(BiosimError, match="feed-forward"):
        import_nir(branch, dt=1e-3)
    with pytest.raises(BiosimError, match="no NIR file"):
        import_nir("/nonexistent/graph.nir")
    with pytest.raises(BiosimError, match="dt"):
        import_nir(_li_graph(), dt=-1.0)


def test_cli_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    code = ("import sys\nfrom biosim.bridge.nir import import_nir\nfrom biosim.errors import BiosimError\n"
            f"try:\n    import_nir({str(bad)!r})\nexcept BiosimError as e:\n    print(e)\n    sys.exit(2)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout.count("\n") == 1 and "cannot read" in proc.stdout


@pytest.mark.slow
def test_lif_mnist_engine_fidelity(tmp_path):
    """Issue 4: the trained lif_mnist net in the engine: same class >= 99.9 %, same counts >= 99 %."""
    from biosim.bridge.nir_engine import engine_agreement

    out = tmp_path / "lm"
    subprocess.run([sys.executable, "-m", "biosim.cli", "run", "lif_mnist", "--out", str(out), "--quiet"],
                   check=True, timeout=600)
    agreement = engine_agreement(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert agreement["n_samples"] == 1000
    assert agreement["same_class_fraction"] >= 0.999
    assert agreement["identical_spike_counts_fraction"] >= 0.99
    assert agreement["torch_accuracy"] == pytest.approx(metrics["test_accuracy"])
