r"""ANN -> SNN conversion (rate coding) of a ReLU MLP, run in the engine through NIR.

Method (Diehl et al. 2015; Rueckauer et al. 2017): every ReLU unit becomes an integrate-and-fire
neuron with reset by subtraction, ``v += W x + b`` per step, spike when ``v > 1`` and ``v -= 1``;
its firing rate (spikes per step) then approximates the ReLU activation divided by a layer scale
``lambda_l``. Data-based normalisation picks ``lambda_l`` as the 99.9th percentile of layer
``l``'s ReLU activations on calibration data and rescales ``W_l <- W_l lambda_{l-1} / lambda_l``,
``b_l <- b_l / lambda_l`` (``lambda_0 = 1`` for inputs in [0, 1]), so that rates stay below one
spike per step. The input is the analog image as a constant current (direct encoding); the output
layer is a (non-leaky) integrator of its input current, and the class is the argmax of its final
potential (the sum over steps of ``W_L z + b_L``).

NIR graph: ``Input -> Affine -> IF -> ... -> Affine -> LI(tau = 1e6 dt, r = tau/dt) -> Output``
at ``dt = 1e-3`` s; IF has ``r = 1/dt`` (one step adds the whole input) and
``metadata["reset"] = "subtract"`` (biosim's reading of NIR's IF, which resets to ``v_reset``).
"""

from __future__ import annotations

import numpy as np

from biosim.errors import BiosimError

__all__ = ["convert_mlp", "snn_accuracy_vs_steps", "DT"]

DT = 1e-3
_TAU_OUT = 1e6 * DT  # an integrator: exp(-dt/tau) = 1 - 1e-6 per step


def _layers(model):
    import torch

    mods = [m for m in model.modules() if not list(m.children())]  # leaves (biosim's MLP or a Sequential)
    linears = [m for m in mods if isinstance(m, torch.nn.Linear)]
    for m in mods:
        if not isinstance(m, (torch.nn.Linear, torch.nn.ReLU, torch.nn.Flatten, torch.nn.Dropout, torch.nn.Identity)):
            raise BiosimError(f"ANN->SNN conversion handles Linear/ReLU MLPs; found {type(m).__name__}")
    if not linears:
        raise BiosimError("the ANN has no Linear layer")
    return linears


def convert_mlp(model, x_calib: np.ndarray, percentile: float = 99.9):
    """Convert a ReLU MLP (``Linear, ReLU, ..., Linear``) into a NIR graph of IF neurons.

    Parameters
    ----------
    model : torch.nn.Module
        Its leaf modules are ``Flatten`` / ``Linear`` / ``ReLU`` / ``Dropout`` (dropout ignored), in
        order: a ``Sequential`` or :class:`biosim.bridge.ann.MLP`.
    x_calib : numpy.ndarray
        Calibration inputs in [0, 1], shape ``(N, in_features)`` (or images, flattened here).
    percentile : float
        Percentile of the ReLU activations used as each layer's scale (99.9).

    Returns
    -------
    nir.NIRGraph
        The converted network (see the module docstring); metadata has ``lambdas``-free scalars
        ``dt``, ``source = "biosim"``, ``integration = "exact"``, ``readout = "last_membrane"``.
    """
    import nir
    import torch

    linears = _layers(model)
    x = torch.as_tensor(np.asarray(x_calib, np.float32).reshape(len(x_calib), -1))
    if not 0 < percentile <= 100:
        raise BiosimError(f"percentile = {percentile} is out of range (0, 100]")
    lambdas, h = [], x
    with torch.no_grad():
        for lin in linears[:-1]:
            h = torch.relu(lin(h))
            lam = float(np.percentile(h.numpy(), percentile))
            lambdas.append(lam if lam > 0 else 1.0)
    nodes = {"input": nir.Input(input_type={"input": np.array([linears[0].in_features])})}
    edges, prev, lam_prev = [], "input", 1.0
    for k, lin in enumerate(linears):
        w = lin.weight.detach().double().numpy()
        b = lin.bias.detach().double().numpy() if lin.bias is not None else np.zeros(w.shape[0])
        n = w.shape[0]
        if k < len(linears) - 1:
            lam = lambdas[k]
            nodes[f"fc{k}"] = nir.Affine(weight=w * lam_prev / lam, bias=b / lam)
            nodes[f"if{k}"] = nir.IF(r=np.full(n, 1.0 / DT), v_threshold=np.ones(n), v_reset=np.zeros(n),
                                     metadata={"reset": "subtract"})
            edges += [(prev, f"fc{k}"), (f"fc{k}", f"if{k}")]
            prev, lam_prev = f"if{k}", lam
        else:
            nodes[f"fc{k}"] = nir.Affine(weight=w * lam_prev, bias=b)
            nodes["out"] = nir.LI(tau=np.full(n, _TAU_OUT), r=np.full(n, _TAU_OUT / DT), v_leak=np.zeros(n))
            edges += [(prev, f"fc{k}"), (f"fc{k}", "out")]
            prev = "out"
    nodes["output"] = nir.Output(output_type={"output": np.array([linears[-1].out_features])})
    edges.append((prev, "output"))
    meta = {"source": "biosim", "dt": DT, "integration": "exact", "readout": "last_membrane",
            "encoder": "current", "encoder_gain": 1.0, "percentile": float(percentile)}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def snn_accuracy_vs_steps(graph, x: np.ndarray, y: np.ndarray, steps=(10, 25, 50, 100, 200),
                          dtype: str = "float32") -> dict:
    """Accuracy of the converted SNN after each number of ``steps`` (one engine run of max(steps)).

    Returns
    -------
    dict
        ``{steps: accuracy}`` and ``"spikes_per_sample"`` at the longest run.
    """
    from biosim.bridge.nir import import_nir
    from biosim.bridge.nir_engine import run

    net = import_nir(graph)
    xin = np.asarray(x, np.float32).reshape(len(x), *net.input_shape)
    t_max = int(max(steps))
    res = run(net, xin, steps=t_max, dtype=dtype)
    out = res["output"].reshape(t_max, len(x), -1)
    acc = {int(t): float((out[t - 1].argmax(1) == np.asarray(y)).mean()) for t in steps}
    acc["spikes_per_sample"] = sum(float(c.sum()) for c in res["spike_counts"]) / len(x)
    return acc
