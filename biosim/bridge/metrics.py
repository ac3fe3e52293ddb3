r"""NeuroBench's metrics for spiking and conventional networks, plus time and an energy estimate.

Definitions (NeuroBench, Yik et al. 2024/2025; ``DESIGN.md`` section 7), every one per model and
data set; "connection layers" are ``Linear``, ``Conv1d/2d``, ``GRUCell``, ``LSTMCell`` and the
recurrent weights of a recurrent LIF layer; "neuron layers" are the hidden spiking layers (and a
spiking output layer) of an SNN, the hidden ReLUs of an MLP/CNN and the hidden states of a GRU/LSTM.

=========================  ======================================================================
metric                     definition
=========================  ======================================================================
footprint_bytes            bytes of all parameters and buffers (``numel * element_size``)
n_params                   number of trainable parameters
connection_sparsity        zero weights / weights of the connection layers (biases excluded)
activation_sparsity        1 - nonzero outputs / outputs of the neuron layers, over every step
                           and sample
synops (per sample)        synaptic operations summed over the steps, biases excluded:
                           **effective**: one operation per (input, weight) pair with both
                           nonzero; counted as ACs (accumulates) when every input of the layer
                           in that call lies in {-1, 0, 1} (spikes), else as MACs
                           (multiply-accumulates) — an SNN fed analog pixels pays MACs in its
                           first layer; **dense**: every weight and every input set to 1
                           (padding stays 0), i.e. the operations of the dense computation
spikes_per_layer           nonzero outputs per sample of each neuron layer (spikes for an SNN,
                           nonzero activations for an ANN), summed over steps
energy_estimate_uJ         estimate only: ``ACs * 0.9 pJ + MACs * 4.6 pJ`` per sample (45 nm
                           CMOS, fp32, Horowitz 2014), compute alone
latency_ms_per_sample      median wall time of one forward pass (batch of 1, encoding included)
                           on this CPU with the run's torch thread count
=========================  ======================================================================

Counting conventions that differ between implementations are stated here: an input held constant
over the steps (the direct-current encoder) is counted at every step, as NeuroBench's per-step
models are (biosim's trainer evaluates such a layer once, which saves ``T - 1`` of its first-layer
MACs in practice); GRU and LSTM cells add their element-wise gate products (GRU: ``3 h``, LSTM:
``3 h`` per step) as MACs to the weight products, like NeuroBench; activation functions (sigmoid,
tanh, ReLU, the spike threshold) and membrane updates are not synaptic operations.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ENERGY_PJ", "ENERGY_ASSUMPTIONS", "METRIC_DEFINITIONS", "footprint_bytes", "connection_sparsity",
           "count_params", "OpCounter", "workload_metrics", "latency_ms", "energy_estimate", "static_metrics"]

#: energy per operation (pJ), 45 nm CMOS, 32-bit float (Horowitz, ISSCC 2014)
ENERGY_PJ = {"mac": 4.6, "ac": 0.9}

ENERGY_ASSUMPTIONS = (
    "Estimate of compute energy only: effective MACs x 4.6 pJ + effective ACs x 0.9 pJ per sample "
    "(fp32 multiply-add 4.6 pJ, fp32 add 0.9 pJ, 45 nm CMOS, Horowitz ISSCC 2014). Memory access is "
    "left out and usually dominates: reading 64 bits from SRAM costs about 10 pJ (8 kB) to 100 pJ "
    "(1 MB), from DRAM 1.3-2.6 nJ; neuron-state updates, activation functions and data movement are "
    "not counted. Use it to compare operation counts, not as a hardware measurement.")

#: short definitions shown beside every metric in reports
METRIC_DEFINITIONS = {
    "test_accuracy": "test accuracy of the weights with the best validation accuracy (validation-selected; the "
                     "honest number)",
    "best_test_accuracy_seen": "highest test accuracy over the epochs (best-test; optimistic, selection on test)",
    "val_accuracy": "validation accuracy of the selected weights",
    "train_seconds": "wall time of training incl. per-epoch evaluation on this CPU",
    "latency_ms_per_sample": "median wall time of one forward pass, batch of 1, encoding included, this CPU",
    "n_params": "trainable parameters",
    "footprint_bytes": "bytes of parameters and buffers (NeuroBench footprint)",
    "connection_sparsity": "zero weights / weights of connection layers, biases excluded (NeuroBench)",
    "activation_sparsity": "1 - nonzero outputs / outputs of the neuron layers over steps and samples (NeuroBench)",
    "synops_effective_macs": "multiply-accumulates with nonzero input and weight per sample, summed over steps, "
                             "in layers whose inputs are not all in {-1,0,1} (NeuroBench Effective_MACs)",
    "synops_effective_acs": "accumulates with nonzero (spike) input and weight per sample, summed over steps, in "
                            "layers whose inputs are all in {-1,0,1} (NeuroBench Effective_ACs)",
    "synops_dense": "operations per sample with every weight and input set to 1, summed over steps (NeuroBench "
                    "Dense)",
    "energy_estimate_uJ": "ESTIMATE: effective MACs x 4.6 pJ + ACs x 0.9 pJ per sample (45 nm, fp32, Horowitz "
                          "2014), compute only, memory access excluded",
    "spikes_per_sample": "spikes (SNN) or nonzero activations (ANN) of all neuron layers per sample, summed over "
                         "steps",
}

_CONV = (torch.nn.Conv1d, torch.nn.Conv2d)
_CELLS = (torch.nn.GRUCell, torch.nn.LSTMCell)


def _rlif_class():
    from biosim.learn.layers import RecurrentLIF

    return RecurrentLIF


def count_params(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def footprint_bytes(model: torch.nn.Module) -> int:
    """Bytes of all parameters and buffers (NeuroBench's footprint)."""
    return int(sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers())))


def _connection_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    rlif = _rlif_class()
    weights = []
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, *_CONV)):
            weights.append(m.weight)
        elif isinstance(m, _CELLS):
            weights += [m.weight_ih, m.weight_hh]
        elif isinstance(m, rlif):
            weights.append(m.recurrent_weight * m._mask if not m.autapses else m.recurrent_weight)
    return weights


def connection_sparsity(model: torch.nn.Module) -> float:
    """Zero weights / weights over the connection layers (biases excluded; NeuroBench)."""
    weights = _connection_weights(model)
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / total if total else 0.0


def static_metrics(model: torch.nn.Module) -> dict:
    """``n_params``, ``footprint_bytes`` and ``connection_sparsity`` of ``model``."""
    return {"n_params": count_params(model), "footprint_bytes": footprint_bytes(model),
            "connection_sparsity": connection_sparsity(model)}


def _is_spikes(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


def _nz(t: torch.Tensor) -> torch.Tensor:
    return (t != 0).to(torch.float64)


class OpCounter:
    """Forward hooks that count the synaptic operations of every connection layer of a model.

    Use as a context manager around forward passes; ``layers`` then maps each connection layer's
    qualified name to ``{"kind", "acs", "macs", "dense"}`` summed over the calls (steps) and the
    samples seen. Inputs of a call whose values all lie in {-1, 0, 1} count as ACs, else as MACs.
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.layers: dict[str, dict] = {}
        self._handles = []
        self._dense_cache: dict = {}

    def _add(self, name, kind, spiking, effective, dense):
        entry = self.layers.setdefault(name, {"kind": kind, "acs": 0.0, "macs": 0.0, "dense": 0.0,
                                              "input": "spikes"})
        entry["acs" if spiking else "macs"] += float(effective)
        entry["dense"] += float(dense)
        if not spiking:
            entry["input"] = "analog"

    def _linear_hook(self, name):
        def hook(module, args, output):
            x = args[0]
            w = _nz(module.weight)
            eff = F.linear(_nz(x).to(w.dtype), w).sum()
            batch = x.numel() // module.in_features
            self._add(name, "linear", _is_spikes(x), eff, batch * module.in_features * module.out_features)
        return hook

    def _conv_hook(self, name):
        def hook(module, args, output):
            x = args[0]
            w = _nz(module.weight)
            conv = F.conv2d if isinstance(module, torch.nn.Conv2d) else F.conv1d
            kw = dict(stride=module.stride, padding=module.padding, dilation=module.dilation, groups=module.groups)
            eff = conv(_nz(x), w, **kw).sum()
            key = (name, tuple(x.shape[1:]))
            if key not in self._dense_cache:
                ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64)
                self._dense_cache[key] = float(conv(ones, torch.ones_like(w), **kw).sum())
            self._add(name, "conv", _is_spikes(x), eff, x.shape[0] * self._dense_cache[key])
        return hook

    def _cell_hook(self, name):
        def hook(module, args, output):
            x = args[0]
            hx = args[1] if len(args) > 1 else None
            h = None if hx is None else (hx if isinstance(module, torch.nn.GRUCell) else hx[0])
            batch, n_h = x.shape[0], module.hidden_size
            eff = (_nz(x) @ _nz(module.weight_ih).T).sum()
            dense = batch * module.weight_ih.numel()
            if h is not None:
                eff = eff + (_nz(h) @ _nz(module.weight_hh).T).sum()
            dense += batch * module.weight_hh.numel()  # a zero initial state still costs the dense products
            elementwise = 3 * n_h * batch
            spiking = _is_spikes(x) and (h is None or _is_spikes(h))
            self._add(name, "gru" if isinstance(module, torch.nn.GRUCell) else "lstm", spiking,
                      eff, dense + elementwise)
            self.layers[name]["macs"] += elementwise  # the gate products are multiplications either way
        return hook

    def _rlif_hook(self, name):
        def hook(module, args):
            state = args[1] if len(args) > 1 else None
            if state is None:
                return
            z = state.z
            w = module.recurrent_weight if module.autapses else module.recurrent_weight * module._mask
            eff = (_nz(z) @ _nz(w).T).sum()
            self._add(name, "recurrent", _is_spikes(z), eff, z.shape[0] * w.numel())
        return hook

    def __enter__(self):
        rlif = _rlif_class()
        for name, m in self.model.named_modules():
            if isinstance(m, torch.nn.Linear):
                self._handles.append(m.register_forward_hook(self._linear_hook(name)))
            elif isinstance(m, _CONV):
                self._handles.append(m.register_forward_hook(self._conv_hook(name)))
            elif isinstance(m, _CELLS):
                self._handles.append(m.register_forward_hook(self._cell_hook(name)))
            elif isinstance(m, rlif):
                self._handles.append(m.register_forward_pre_hook(self._rlif_hook(name)))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        return False

    def totals(self) -> dict:
        """``acs``, ``macs`` and ``dense`` summed over the layers."""
        return {k: sum(e[k] for e in self.layers.values()) for k in ("acs", "macs", "dense")}


def _materialise(x_seq: torch.Tensor) -> torch.Tensor:
    # a stride-0 (expanded) input makes SpikingNet evaluate its first layer once; count every step
    return x_seq.contiguous() if x_seq.dim() and x_seq.stride(0) == 0 else x_seq


def workload_metrics(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, encode: Callable,
                     scores_fn: Callable[[torch.Tensor], torch.Tensor], *, spiking_output: bool = False,
                     batch_size: int = 1000, seed: int = 0, to_input: Callable | None = None) -> dict:
    """Accuracy, synaptic operations, activation sparsity and spikes per layer on ``(x, y)``.

    Parameters
    ----------
    model : torch.nn.Module
        ``forward(x_seq, record=None) -> (T, B, classes)``; ``record(stage, out)`` receives every
        neuron layer's output at every step.
    x, y : numpy.ndarray
        uint8 inputs ``(N, H, W)`` and int64 labels.
    encode : callable
        ``encode(batch (B, 1, H, W) in [0, 1]) -> (T, B, ...)``.
    scores_fn : callable
        Class scores ``(B, classes)`` from the model's output.
    spiking_output : bool
        Whether the output layer spikes (then it counts as a neuron layer).
    batch_size, seed : int
        Evaluation batch size; seed of a private RNG stream (Poisson input).

    Returns
    -------
    dict
        ``accuracy``, ``predictions``, ``activation_sparsity``, ``spikes_per_sample``,
        ``spikes_per_layer`` (list), ``synops`` (per sample: ``effective_acs``,
        ``effective_macs``, ``dense``, ``per_layer``), ``energy_estimate_uJ``.
    """
    if to_input is None:
        from biosim.learn.train import _to_input as to_input
    n = len(x)
    nonzero: dict[int, float] = {}
    outputs: dict[int, float] = {}

    def record(stage, z):
        nonzero[stage] = nonzero.get(stage, 0.0) + float((z != 0).sum())
        outputs[stage] = outputs.get(stage, 0.0) + float(z.numel())

    preds = []
    was = model.training
    model.eval()
    counter = OpCounter(model)
    out_nonzero = out_total = 0.0
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]), counter:
            torch.manual_seed(seed)
            for i in range(0, n, batch_size):
                out = model(_materialise(encode(to_input(x[i:i + batch_size]))), record=record)
                preds.append(scores_fn(out).argmax(1).numpy())
                if spiking_output:
                    out_nonzero += float((out != 0).sum())
                    out_total += float(out.numel())
    finally:
        model.train(was)
    preds = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    stages = sorted(nonzero)
    per_layer = [nonzero[k] / n for k in stages]
    total_nz, total_out = sum(nonzero.values()), sum(outputs.values())
    if spiking_output:
        per_layer.append(out_nonzero / n)
        total_nz += out_nonzero
        total_out += out_total
    ops = counter.totals()
    synops = {"effective_acs": ops["acs"] / n, "effective_macs": ops["macs"] / n, "dense": ops["dense"] / n,
              "per_layer": {name: {"kind": e["kind"], "input": e["input"], "effective_acs": e["acs"] / n,
                                   "effective_macs": e["macs"] / n, "dense": e["dense"] / n}
                            for name, e in counter.layers.items()}}
    return {
        "accuracy": float((preds == y).mean()) if len(y) else float("nan"),
        "predictions": preds,
        "activation_sparsity": 1.0 - total_nz / total_out if total_out else float("nan"),
        "spikes_per_sample": float(sum(per_layer)),
        "spikes_per_layer": per_layer,
        "synops": synops,
        "energy_estimate_uJ": energy_estimate(synops["effective_acs"], synops["effective_macs"]) * 1e-6,
    }


def energy_estimate(acs: float, macs: float) -> float:
    """Estimated compute energy in pJ: ``acs * 0.9 + macs * 4.6`` (see :data:`ENERGY_ASSUMPTIONS`)."""
    return acs * ENERGY_PJ["ac"] + macs * ENERGY_PJ["mac"]


def latency_ms(model: torch.nn.Module, x: np.ndarray, encode: Callable, n: int = 50, warmup: int = 3,
               to_input: Callable | None = None) -> dict:
    """Wall time of one forward pass per sample (batch of 1, encoding included) on this CPU.

    Returns ``{"median": ms, "p90": ms, "samples": n}`` over the first ``n`` inputs of ``x``.
    """
    if to_input is None:
        from biosim.learn.train import _to_input as to_input
    n = min(n, len(x))
    was = model.training
    model.eval()
    times = []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for k in range(-min(warmup, n), n):
                xb = x[max(k, 0):max(k, 0) + 1]
                t0 = time.perf_counter()
                model(encode(to_input(xb)))
                if k >= 0:
                    times.append(1e3 * (time.perf_counter() - t0))
    finally:
        model.train(was)
    if not times:
        return {"median": float("nan"), "p90": float("nan"), "samples": 0}
    times.sort()
    return {"median": statistics.median(times), "p90": times[min(len(times) - 1, int(0.9 * len(times)))],
            "samples": len(times)}
