r"""Run an imported NIR graph in the engine: a Numba-compiled, layered, clock-driven executor.

:func:`biosim.bridge.nir.import_nir` turns a NIR graph into an :class:`EngineNet`: a chain of
layers (dense / convolution / sum-pooling / flatten / scale synapses and neuron layers) with every
neuron parameter already discretised for one step ``dt`` (s). :func:`run` advances the chain over
``T`` steps for a batch of inputs, in float32 or float64, calling one ``numba.njit`` kernel per
layer and step (parallel over the batch).

Neuron update (one scalar function, :func:`_neuron_scalar`, for IF, LIF, CubaLIF, LI, CubaLI)::

    i+ = i + c_s * x                                (synaptic current, CubaLIF / CubaLI)
    v- = a_m * v + c_m * v_leak + g * i+            (g * x without a synaptic current)
    z  = v- > v_th                                  (spiking kinds)
    v' = reset(v-, z);   i' = a_s * i+

with, for NIR's ODEs ``tau_syn di/dt = -i + w_in S`` and ``tau dv/dt = v_leak - v + r i``
(``dv/dt = r i`` for IF):

===================  ==========================  ===================================
discretisation       ``a_m`` / ``a_s``            ``c_m``, ``g``, ``c_s``
===================  ==========================  ===================================
``exact`` (ZOH)      ``exp(-dt/tau)``            ``1 - a_m``, ``(1 - a_m) r``, ``w_in dt/tau_syn``
``euler``            ``1 - dt/tau``              ``dt/tau``, ``r dt/tau``, ``w_in dt/tau_syn``
IF (both)            ``1``                       ``0``, ``r dt``
===================  ==========================  ===================================

``exact`` holds the input (and ``i+``) constant over the step and integrates ``v`` exactly: this is
biosim's torch layers (:mod:`biosim.learn.layers`, ``integration="exact"``) operation for
operation, so float32 runs reproduce their spikes up to the summation order of the synapses.
The step's input enters the synaptic current as an impulse of area ``x dt`` (the jump
``w_in x dt / tau_syn``). ``euler`` is forward Euler (snnTorch, norse, biosim's ``"norse"`` mode).

Reset modes: ``zero`` (NIR's: ``v = v_reset``, as ``v- - z (v- - v_reset)``), ``subtract``
(``v- - z (v_th - v_reset)``, biosim's default) and ``delayed`` (snnTorch's ``Leaky``: the
threshold is subtracted at the *next* step, after the decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from biosim.errors import BiosimError

__all__ = ["Dense", "Conv", "SumPool", "Flatten", "Scale", "Neuron", "EngineNet", "RESETS", "run",
           "engine_agreement"]

RESETS = {"zero": 0, "subtract": 1, "delayed": 2}
_DTYPES = {"float32": np.float32, "float64": np.float64}


# ----------------------------------------------------------------------------- layers

@dataclass
class Dense:
    """``y = W x + b``: ``weight`` (out, in), ``bias`` (out,) or None."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    in_shape: tuple = ()
    out_shape: tuple = ()


@dataclass
class Conv:
    """2-d convolution (torch's ``Conv2d`` semantics): ``weight`` (C_out, C_in/groups, kh, kw)."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    in_shape: tuple = ()
    out_shape: tuple = ()


@dataclass
class SumPool:
    """2-d sum pooling (``AvgPool`` is a SumPool times ``scale``)."""

    name: str
    kernel: tuple
    stride: tuple
    padding: tuple
    scale: float = 1.0
    in_shape: tuple = ()
    out_shape: tuple = ()


@dataclass
class Flatten:
    """Flatten one sample to a vector."""

    name: str
    in_shape: tuple = ()
    out_shape: tuple = ()


@dataclass
class Scale:
    """Element-wise ``y = s x``."""

    name: str
    scale: np.ndarray
    in_shape: tuple = ()
    out_shape: tuple = ()


@dataclass
class Neuron:
    """A neuron layer; every coefficient is float64, shape ``(n,)`` (see the module docstring)."""

    name: str
    kind: str
    spiking: bool
    has_syn: bool
    a_m: np.ndarray
    c_m: np.ndarray
    g: np.ndarray
    v_leak: np.ndarray
    a_s: np.ndarray
    c_s: np.ndarray
    v_th: np.ndarray
    v_reset: np.ndarray
    reset: str = "zero"
    in_shape: tuple = ()
    out_shape: tuple = ()


@dataclass
class EngineNet:
    """An imported NIR graph: a chain of layers at one time step ``dt`` (s).

    Attributes
    ----------
    layers : list
        :class:`Dense`, :class:`Conv`, :class:`SumPool`, :class:`Flatten`, :class:`Scale` and
        :class:`Neuron` in order.
    dt : float
        Time step (s) the neuron coefficients were computed for.
    input_shape, output_shape : tuple of int
        Shape of one sample at the input and at the output.
    source : str
        Who wrote the graph (``biosim``, ``snntorch``, ``norse`` or ``nir``).
    integration : str
        ``exact`` or ``euler``.
    metadata : dict
        The graph's metadata (biosim writes its encoder and read-out there).
    """

    layers: list
    dt: float
    input_shape: tuple
    output_shape: tuple
    source: str = "nir"
    integration: str = "exact"
    metadata: dict = field(default_factory=dict)

    def neuron_layers(self) -> list:
        """The :class:`Neuron` layers, in order."""
        return [layer for layer in self.layers if isinstance(layer, Neuron)]


# ----------------------------------------------------------------------------- kernels

@njit(cache=True, parallel=True)
def _dense(x, wt, b, has_bias, out):
    """``out[s] = x[s] @ wt + b``, accumulated in float64, skipping zero inputs (event-driven)."""
    n_b, n_in = x.shape
    n_out = wt.shape[1]
    for s in prange(n_b):
        acc = np.zeros(n_out, np.float64)
        for j in range(n_in):
            xj = x[s, j]
            if xj != 0:
                xd = np.float64(xj)
                for o in range(n_out):
                    acc[o] += np.float64(wt[j, o]) * xd
        for o in range(n_out):
            if has_bias:
                acc[o] += np.float64(b[o])
            out[s, o] = acc[o]


@njit(cache=True, parallel=True)
def _conv2d(x, w, b, has_bias, sh, sw, ph, pw, dh, dw, groups, out):
    """torch ``conv2d`` (zero padding), float64 accumulation; ``x`` (B, C, H, W)."""
    n_b, c_in, h_in, w_in = x.shape
    c_out, cpg, kh, kw = w.shape
    h_out, w_out = out.shape[2], out.shape[3]
    opg = c_out // groups
    for s in prange(n_b):
        for co in range(c_out):
            g0 = (co // opg) * cpg
            for oy in range(h_out):
                for ox in range(w_out):
                    acc = np.float64(b[co]) if has_bias else 0.0
                    for ci in range(cpg):
                        for ky in range(kh):
                            iy = oy * sh - ph + ky * dh
                            if iy < 0 or iy >= h_in:
                                continue
                            for kx in range(kw):
                                ix = ox * sw - pw + kx * dw
                                if ix < 0 or ix >= w_in:
                                    continue
                                acc += np.float64(w[co, ci, ky, kx]) * np.float64(x[s, g0 + ci, iy, ix])
                    out[s, co, oy, ox] = acc


@njit(cache=True, parallel=True)
def _sumpool2d(x, kh, kw, sh, sw, ph, pw, scale, out):
    n_b, c, h_in, w_in = x.shape
    h_out, w_out = out.shape[2], out.shape[3]
    for s in prange(n_b):
        for ch in range(c):
            for oy in range(h_out):
                for ox in range(w_out):
                    acc = 0.0
                    for ky in range(kh):
                        iy = oy * sh - ph + ky
                        if iy < 0 or iy >= h_in:
                            continue
                        for kx in range(kw):
                            ix = ox * sw - pw + kx
                            if 0 <= ix < w_in:
                                acc += np.float64(x[s, ch, iy, ix])
                    out[s, ch, oy, ox] = acc * scale


@njit(cache=True, inline="always")
def _neuron_scalar(x, v, i, zprev, a_m, c_m, g, v_leak, a_s, c_s, v_th, v_reset, dv_reset,
                   has_syn, spiking, reset):
    """One neuron, one step: returns (output, v', i', z). All arguments of one float type."""
    if has_syn:
        ip = i + c_s * x
    else:
        ip = x
    v_pre = a_m * v + c_m * v_leak + g * ip
    if reset == 2:
        v_pre = v_pre - zprev * v_th
    i_new = a_s * ip if has_syn else i
    if not spiking:
        return v_pre, v_pre, i_new, zprev * 0
    z = v_pre * 0
    if v_pre > v_th:
        z = z + 1
    if reset == 0:
        v_new = v_pre - z * (v_pre - v_reset)
    elif reset == 1:
        v_new = v_pre - z * dv_reset
    else:
        v_new = v_pre
    return z, v_new, i_new, z


@njit(cache=True, parallel=True)
def _neuron(x, v, i, zp, a_m, c_m, g, v_leak, a_s, c_s, v_th, v_reset, dv_reset,
            has_syn, spiking, reset, out, counts):
    """Advance a neuron layer one step for the batch ``x`` (B, n); spike counts accumulate."""
    n_b, n = x.shape
    for s in prange(n_b):
        for k in range(n):
            o, vn, inew, z = _neuron_scalar(x[s, k], v[s, k], i[s, k], zp[s, k], a_m[k], c_m[k], g[k],
                                            v_leak[k], a_s[k], c_s[k], v_th[k], v_reset[k], dv_reset[k],
                                            has_syn, spiking, reset)
            out[s, k] = o
            v[s, k] = vn
            i[s, k] = inew
            zp[s, k] = z
            if spiking and z != 0:
                counts[s, k] += 1


# ----------------------------------------------------------------------------- running

class _Prepared:
    """Arrays of one layer in the run's dtype (what the kernels take)."""

    def __init__(self, layer, dtype):
        self.layer = layer
        cast = lambda a: np.ascontiguousarray(np.asarray(a, np.float64).astype(dtype))  # noqa: E731
        if isinstance(layer, Dense):
            self.wt = cast(layer.weight.T)
            self.b = cast(layer.bias) if layer.bias is not None else np.zeros(1, dtype)
        elif isinstance(layer, Conv):
            self.w = cast(layer.weight)
            self.b = cast(layer.bias) if layer.bias is not None else np.zeros(1, dtype)
        elif isinstance(layer, Scale):
            self.s = cast(np.broadcast_to(layer.scale, layer.in_shape))
        elif isinstance(layer, Neuron):
            n = int(np.prod(layer.in_shape))
            for name in ("a_m", "c_m", "g", "v_leak", "a_s", "c_s", "v_th", "v_reset"):
                setattr(self, name, cast(np.broadcast_to(getattr(layer, name), (n,))))
            self.dv_reset = cast(np.broadcast_to(np.asarray(layer.v_th, np.float64)
                                                 - np.asarray(layer.v_reset, np.float64), (n,)))


def run(net: EngineNet, x: np.ndarray, steps: int | None = None, dtype: str = "float32",
        record_spikes: bool = False) -> dict:
    """Run ``net`` on a batch of inputs.

    Parameters
    ----------
    net : EngineNet
        The imported graph.
    x : numpy.ndarray
        Input currents: ``(T, B, *input_shape)``, or ``(B, *input_shape)`` held for ``steps``.
    steps : int, optional
        Number of steps when ``x`` is constant in time.
    dtype : {"float32", "float64"}
        Float type of states and synaptic outputs (float64 accumulation in the synapses).
    record_spikes : bool
        Also return every spiking layer's spikes ``(T, B, n)`` (memory!).

    Returns
    -------
    dict
        ``output`` ``(T, B, *output_shape)`` (spikes or membrane potentials), ``spike_counts``
        (list, one ``(B, n)`` int array per spiking layer) and ``spikes`` if asked for.
    """
    if dtype not in _DTYPES:
        raise BiosimError(f"unknown dtype '{dtype}' (valid: float32, float64)")
    ft = _DTYPES[dtype]
    x = np.asarray(x)
    shape_in = tuple(net.input_shape)
    static = steps is not None
    if static:
        if tuple(x.shape[1:]) != shape_in:
            raise BiosimError(f"input of shape {x.shape[1:]} does not fit the graph's input {shape_in}")
        n_b = x.shape[0]
    else:
        if x.ndim < 2 or tuple(x.shape[2:]) != shape_in:
            raise BiosimError(f"input of shape {x.shape[2:]} does not fit the graph's input {shape_in} "
                              "(expected (T, batch, *input))")
        steps, n_b = x.shape[0], x.shape[1]
    x = x.astype(ft, copy=False)
    prep = [_Prepared(layer, ft) for layer in net.layers]
    states = {}
    for k, p in enumerate(prep):
        if isinstance(p.layer, Neuron):
            n = int(np.prod(p.layer.in_shape))
            v0 = np.broadcast_to(p.v_leak, (n_b, n)).copy()
            states[k] = (v0, np.zeros((n_b, n), ft), np.zeros((n_b, n), ft), np.zeros((n_b, n), np.int64))
    # synapses before the first neuron layer see a constant input when x is static: compute once
    first_neuron = next((k for k, p in enumerate(prep) if isinstance(p.layer, Neuron)), len(prep))
    outputs, spikes = [], []
    cached = None
    for t in range(steps):
        h = x if static else x[t]
        start = 0
        if static and cached is not None:
            h, start = cached, first_neuron
        step_spikes = []
        for k in range(start, len(prep)):
            h = _apply(prep[k], h, n_b, ft, states.get(k), step_spikes)
            if static and k == first_neuron - 1 and cached is None:
                cached = h
        outputs.append(h.reshape((n_b, *net.output_shape)).copy())
        if record_spikes:
            spikes.append(step_spikes)
    result = {"output": np.stack(outputs),
              "spike_counts": [states[k][3] for k, p in enumerate(prep)
                               if isinstance(p.layer, Neuron) and p.layer.spiking]}
    if record_spikes:
        result["spikes"] = [np.stack([s[j] for s in spikes]) for j in range(len(spikes[0]))] if spikes else []
    return result


def _apply(p, h, n_b, ft, state, step_spikes):
    layer = p.layer
    if isinstance(layer, Dense):
        h2 = np.ascontiguousarray(h.reshape(n_b, -1))
        out = np.empty((n_b, p.wt.shape[1]), ft)
        _dense(h2, p.wt, p.b, layer.bias is not None, out)
        return out
    if isinstance(layer, Conv):
        h4 = np.ascontiguousarray(h.reshape((n_b, *layer.in_shape)))
        out = np.empty((n_b, *layer.out_shape), ft)
        _conv2d(h4, p.w, p.b, layer.bias is not None, layer.stride[0], layer.stride[1], layer.padding[0],
                layer.padding[1], layer.dilation[0], layer.dilation[1], layer.groups, out)
        return out
    if isinstance(layer, SumPool):
        h4 = np.ascontiguousarray(h.reshape((n_b, *layer.in_shape)))
        out = np.empty((n_b, *layer.out_shape), ft)
        _sumpool2d(h4, layer.kernel[0], layer.kernel[1], layer.stride[0], layer.stride[1], layer.padding[0],
                   layer.padding[1], float(layer.scale), out)
        return out
    if isinstance(layer, Flatten):
        return np.ascontiguousarray(h.reshape(n_b, -1))
    if isinstance(layer, Scale):
        return (h.reshape((n_b, *layer.in_shape)) * p.s).astype(ft, copy=False)
    v, i, zp, counts = state
    h2 = np.ascontiguousarray(h.reshape(n_b, -1))
    out = np.empty_like(h2)
    _neuron(h2, v, i, zp, p.a_m, p.c_m, p.g, p.v_leak, p.a_s, p.c_s, p.v_th, p.v_reset, p.dv_reset,
            layer.has_syn, layer.spiking, RESETS[layer.reset], out, counts)
    if layer.spiking:
        step_spikes.append(out.copy())
    return out


def discretise(kind: str, dt: float, integration: str, *, tau=None, tau_syn=None, r=1.0, v_leak=0.0,
               w_in=1.0, v_threshold=None, v_reset=None, reset: str = "zero", name: str = "") -> Neuron:
    """Coefficients of a NIR neuron node (``IF``, ``LIF``, ``CubaLIF``, ``LI``, ``CubaLI``) for ``dt``.

    All parameters are arrays broadcast to one shape (the layer's, flattened); times in s.
    """
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise BiosimError(f"dt = {dt!r} s is out of range (must be > 0)")
    arr = lambda a: np.asarray(a, np.float64).reshape(-1)  # noqa: E731
    r = arr(r)
    spiking = kind in ("IF", "LIF", "CubaLIF")
    has_syn = kind in ("CubaLIF", "CubaLI")
    one = np.ones_like(r)
    if kind == "IF":
        a_m, c_m, g = one, 0.0 * one, r * dt
        v_leak = 0.0 * one
    else:
        tau = arr(tau)
        if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
            raise BiosimError(f"node '{name}': tau must be > 0 (got min {tau.min():g} s)")
        if integration == "euler":
            a_m = 1.0 - dt / tau
            c_m = dt / tau
        else:
            a_m = np.exp(-dt / tau)
            c_m = 1.0 - a_m
        g = c_m * r
        v_leak = arr(v_leak)
    if has_syn:
        tau_syn = arr(tau_syn)
        if np.any(~np.isfinite(tau_syn)) or np.any(tau_syn <= 0):
            raise BiosimError(f"node '{name}': tau_syn must be > 0 (got min {tau_syn.min():g} s)")
        a_s = 1.0 - dt / tau_syn if integration == "euler" else np.exp(-dt / tau_syn)
        c_s = arr(w_in) * dt / tau_syn
    else:
        a_s = np.zeros(1)
        c_s = np.zeros(1)
    if spiking:
        v_th = arr(v_threshold)
        v_reset = arr(v_reset) if v_reset is not None else np.zeros_like(v_th)
    else:
        v_th = np.full(1, np.inf)
        v_reset = np.zeros(1)
    if reset not in RESETS:
        raise BiosimError(f"node '{name}': unknown reset '{reset}' (valid: {', '.join(RESETS)})")
    parts = [a_m, c_m, g, v_leak, a_s, c_s, v_th, v_reset]
    try:
        shape = np.broadcast_shapes(*(p.shape for p in parts))
    except ValueError:
        raise BiosimError(f"node '{name}': parameters of different sizes "
                          f"({', '.join(str(p.size) for p in parts)})") from None
    parts = [np.broadcast_to(p, shape).copy() for p in parts]
    return Neuron(name, kind, spiking, has_syn, *parts, reset=reset)


# ----------------------------------------------------------------------------- agreement

def engine_agreement(run_dir, n: int | None = None, dtype: str = "float32", weights: str = "best") -> dict:
    """Export a trained run to NIR, import it into the engine and compare with torch on the test set.

    Parameters
    ----------
    run_dir : path-like
        A ``biosim run`` folder of a feed-forward train model (``config.json`` + weights).
    n : int, optional
        Use the first ``n`` test samples (all by default).
    dtype : {"float32", "float64"}
        Engine float type (torch runs in float32).
    weights : {"best", "final"}
        ``best.safetensors`` (the weights the run's test accuracy is of) or ``model.safetensors``.

    Returns
    -------
    dict
        ``same_class_fraction``, ``identical_spike_counts_fraction`` (every hidden neuron's spike
        count equal), ``n_samples``, ``engine_accuracy``, ``torch_accuracy``, plus
        ``mean_abs_spike_count_diff`` and the graph's ``dt``.
    """
    import io

    import torch

    from biosim.bridge import nir as bnir
    from biosim.learn.readouts import scores
    from biosim.learn.train import _to_input

    model, info = bnir.load_run(run_dir, weights=weights)
    ds = info["dataset"]
    x, y = ds.x_test, ds.y_test
    if n is not None:
        x, y = x[:n], y[:n]
    # torch side
    enc = info["encode"]
    counts_t: dict[int, torch.Tensor] = {}

    def record(stage, z):
        counts_t[stage] = counts_t.get(stage, 0) + z.reshape(z.shape[0], -1)

    model.eval()
    with torch.no_grad():
        xin = _to_input(x)
        out_t = model(enc(xin), record=record)
    s_t = scores(out_t, info["readout"]).numpy()
    # engine side, through a NIR file in memory
    buf = io.BytesIO()
    bnir.export_nir(model, buf, meta=info["meta"])
    buf.seek(0)
    net = bnir.import_nir(buf)
    gain = np.float32(info["meta"]["encoder_gain"])
    xe = xin.numpy() * gain  # the direct-current encoder, same float32 product as torch's
    res = run(net, xe, steps=info["meta"]["steps"], dtype=dtype)
    out_e = torch.from_numpy(res["output"].astype(np.float32))
    s_e = scores(out_e, info["readout"]).numpy()
    pred_t, pred_e = s_t.argmax(1), s_e.argmax(1)
    hidden_t = [counts_t[k].numpy().astype(np.int64) for k in sorted(counts_t)]
    hidden_e = res["spike_counts"][:len(hidden_t)]
    same = np.ones(len(y), bool)
    diff = 0.0
    for a, b in zip(hidden_t, hidden_e):
        same &= (a == b).all(axis=1)
        diff += np.abs(a - b).sum()
    return {"same_class_fraction": float((pred_t == pred_e).mean()),
            "identical_spike_counts_fraction": float(same.mean()),
            "n_samples": int(len(y)),
            "engine_accuracy": float((pred_e == y).mean()),
            "torch_accuracy": float((pred_t == y).mean()),
            "mean_abs_spike_count_diff": float(diff / len(y)),
            "dt": net.dt, "dtype": dtype}


def run_dataset(src, data: str = "mnist5k", n: int | None = None, dtype: str = "float32",
                steps: int | None = None, gain: float | None = None, readout: str | None = None) -> dict:
    """Run a NIR graph in the engine on a data set's test images (direct-current input).

    The encoder (``gain``, ``steps``) and the read-out come from the graph's metadata when biosim
    wrote it; pass them for other graphs. The graph's input must be ``(1, H, W)`` or ``(H*W,)``.

    Returns
    -------
    dict
        ``accuracy``, ``n_samples``, ``spikes_per_sample`` (hidden and spiking-output), ``steps``,
        ``dt``, ``source``, ``seconds`` (engine time).
    """
    import time

    import torch

    from biosim.bridge import nir as bnir
    from biosim.datasets import load
    from biosim.learn.readouts import READOUTS, scores

    net = bnir.import_nir(src)
    meta = net.metadata
    steps = int(steps if steps is not None else meta.get("steps", 0))
    gain = float(gain if gain is not None else meta.get("encoder_gain", 0.0))
    readout = readout or meta.get("readout", "count_ce")
    if steps < 1 or gain <= 0:
        raise BiosimError("this graph does not say its input encoding: pass steps and gain")
    if readout not in READOUTS:
        raise BiosimError(f"unknown readout '{readout}' (valid: {', '.join(READOUTS)})")
    if meta.get("encoder", "current") != "current":
        raise BiosimError(f"the graph's encoder is '{meta.get('encoder')}'; the engine runs direct-current input")
    ds = load(data)
    x, y = ds.x_test, ds.y_test
    if n is not None:
        x, y = x[:n], y[:n]
    xin = (x.astype(np.float32) / np.float32(255.0)) * np.float32(gain)
    if int(np.prod(net.input_shape)) != xin[0].size:
        raise BiosimError(f"the graph's input {net.input_shape} does not fit {data}'s images {x.shape[1:]}")
    t0 = time.perf_counter()
    res = run(net, xin.reshape(len(x), *net.input_shape), steps=steps, dtype=dtype)
    seconds = time.perf_counter() - t0
    out = torch.from_numpy(res["output"].reshape(steps, len(x), -1).astype(np.float32))
    pred = scores(out, readout).numpy().argmax(1)
    spikes = sum(int(c.sum()) for c in res["spike_counts"])
    return {"accuracy": float((pred == y).mean()), "n_samples": int(len(y)),
            "spikes_per_sample": spikes / max(len(y), 1), "steps": steps, "dt": net.dt, "source": net.source,
            "seconds": seconds}
