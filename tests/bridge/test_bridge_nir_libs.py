"""NIR graphs written by snnTorch's and norse's own exporters, imported and run in the engine.

Both libraries integrate with forward Euler; the importer recognises each writer and applies its
conventions (biosim.bridge.nir's docstring): snnTorch's dt = 1e-4 s and delayed subtractive reset,
norse's tau = dt / tau_inv and full-input current jumps. The engine then reproduces the library's
own forward pass. Tolerance: we require identical per-neuron spike counts for >= 95 % of samples
(in practice all): the engine's coefficients are recomputed from the exported float32 time
constants (``1 - dt/tau`` is ``beta`` only to ~1 ulp) and the synapses sum in another order, so an
exact tie with the threshold may resolve differently.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nir")

from biosim.bridge.nir import import_nir  # noqa: E402
from biosim.bridge.nir_engine import run  # noqa: E402

T, B = 50, 64


def _agree(counts_lib, counts_engine):
    for a, b in zip(counts_lib, counts_engine):
        a = a.reshape(b.shape)
        assert a.sum() > 50  # the layer fires: the comparison means something
        assert (a == b).all(axis=1).mean() >= 0.95
        assert abs(a.sum() - b.sum()) <= 0.01 * a.sum()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_snntorch_export_matches_snntorch_forward():
    snn = pytest.importorskip("snntorch")
    import snntorch.utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    lin1, lin2 = torch.nn.Linear(12, 20), torch.nn.Linear(20, 6)
    # vector parameters: snnTorch 0.9 exports scalar beta with shape () (its type check then fails)
    l1 = snn.Leaky(beta=torch.full((20,), 0.9), threshold=torch.ones(20), init_hidden=True)
    l2 = snn.Synaptic(alpha=torch.full((6,), 0.8), beta=torch.full((6,), 0.85), threshold=torch.ones(6),
                      init_hidden=True, output=True)
    net = torch.nn.Sequential(lin1, l1, lin2, l2)
    graph = export_to_nir(net, torch.randn(1, 12), ignore_dims=[0])
    x = torch.rand(T, B, 12, generator=torch.Generator().manual_seed(1)) * 1.5
    snntorch.utils.reset(net)
    c1 = c2 = 0
    with torch.no_grad():
        for t in range(T):
            z1 = l1(lin1(x[t]))
            z2, _, _ = l2(lin2(z1))
            c1, c2 = c1 + z1, c2 + z2
    engine = import_nir(graph)
    assert (engine.source, engine.dt, engine.integration) == ("snntorch", 1e-4, "euler")
    assert [n.reset for n in engine.neuron_layers()] == ["delayed", "delayed"]
    res = run(engine, x.numpy(), dtype="float32")
    _agree([c1.numpy(), c2.numpy()], res["spike_counts"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_norse_export_matches_norse_forward():
    norse = pytest.importorskip("norse.torch")
    from norse.torch.utils.export_nir import to_nir

    torch.manual_seed(0)
    model = norse.SequentialState(torch.nn.Linear(12, 20), norse.LIFBoxCell(), torch.nn.Linear(20, 6),
                                  norse.LIFCell())
    graph = to_nir(model, torch.randn(1, 12))
    # norse's quirk, as written: tau = dt / tau_inv = 1e-3 / 100 = 1e-5 s (truly 10 ms)
    lif = next(n for n in graph.nodes.values() if type(n).__name__ == "LIF")
    assert np.allclose(lif.tau, 1e-5)
    path = graph  # norse 1.1.0 leaves torch tensors in the nodes, which nir.write cannot store
    x = torch.rand(T, B, 12, generator=torch.Generator().manual_seed(2)) * 3
    s1 = s2 = None
    c1 = c2 = 0
    with torch.no_grad():
        for t in range(T):
            z1, s1 = model[1](model[0](x[t]), s1)
            z2, s2 = model[3](model[2](z1), s2)
            c1, c2 = c1 + z1, c2 + z2
    engine = import_nir(path)
    assert (engine.source, engine.dt, engine.integration) == ("norse", 1e-3, "euler")
    res = run(engine, x.numpy(), dtype="float32")
    _agree([c1.numpy(), c2.numpy()], res["spike_counts"])
    # ignoring the quirk (plain NIR semantics, tau = 10 us) gives something else entirely
    plain = run(import_nir(path, source="nir", dt=1e-3), x.numpy(), dtype="float32")
    assert plain["spike_counts"][0].sum() != c1.sum()
