r"""Torch <-> engine through NIR (the neuromorphic intermediate representation, package ``nir``).

NIR is continuous-time: it stores ODE parameters (``tau``, ``r``, ``v_leak``, ``v_threshold``, ...,
times in seconds) and no time step. Each importer must choose a ``dt`` and a discretisation.

Export (:func:`export_nir`)
    A biosim :class:`~biosim.learn.network.SpikingNet` (or a ``biosim run`` folder) becomes
    ``Input -> [Flatten] -> Affine -> LIF|CubaLIF -> ... -> Affine -> LI|CubaLI|LIF -> Output``
    (``Conv2d`` stages too, when pooled by sum/average; NIR has no max pooling). The true time
    constants are written (``tau = tau_mem_ms * 1e-3`` s), with ``r = 1`` and
    ``w_in = tau_syn / dt`` (so a step's input ``x`` makes the synaptic current jump by ``x``),
    and the graph's metadata records ``dt`` (= the run's ``dt_ms * 1e-3`` s), the discretisation
    (``exact``: zero-order hold, biosim's default; ``euler``: biosim's ``"norse"`` mode), the reset
    (``subtract`` or ``zero``; NIR itself only knows reset to ``v_reset``, so a biosim
    subtract-reset layer carries ``metadata["reset"] = "subtract"``), the encoder and the read-out.
    Re-discretised with that ``dt`` (see :mod:`biosim.bridge.nir_engine`) these parameters give
    exactly biosim's per-step update: ``exp(-dt/tau)`` is the torch layer's ``beta``.

Import (:func:`import_nir`)
    The graph becomes populations and projections of an engine :class:`~biosim.network.Network`
    (:class:`~biosim.bridge.nir_engine.EngineGraph`): neuron nodes are populations, the linear
    nodes between them projections (see :mod:`biosim.bridge.nir_engine`).
    Nodes ``Input``, ``Output``, ``Affine``, ``Linear``, ``Conv2d``, ``Flatten``, ``SumPool2d``,
    ``AvgPool2d``, ``Scale``, ``IF``, ``LIF``, ``CubaLIF``, ``LI``, ``CubaLI`` in one feed-forward
    chain. The writer is recognised (``source="auto"``) and its conventions applied:

    ``biosim``   graph metadata ``source = "biosim"``: its ``dt``, discretisation and resets.
    ``snntorch`` every LIF/CubaLIF has ``r = tau / 1e-4`` (snnTorch 0.9 exports with
                 ``dt = 1e-4`` s, ``tau = dt / (1 - beta)``, ``r = tau / dt``,
                 ``w_in = tau_syn / dt``): forward Euler at ``dt = 1e-4`` s reproduces
                 ``beta``; snnTorch writes ``v_reset = 0`` but its ``Leaky``/``Synaptic``
                 subtract the threshold one step late (``reset_mechanism="subtract"``, delayed),
                 which is what is run.
    ``norse``    ``r = 1`` and time constants below 1 ms with ``w_in = 1``: norse 1.1.0 writes
                 ``tau = dt / tau_inv`` (should be ``1 / tau_inv``), so the true
                 ``tau = tau_written / dt`` with its ``dt = 1e-3`` s; its synaptic current jumps
                 by the full input (``w_in`` should be ``tau_syn / dt``); forward Euler.
    ``nir``      anything else: NIR's own semantics (reset to ``v_reset``), exact
                 (zero-order-hold) discretisation at the ``dt`` given (required).

    ``dt`` given explicitly overrides the writer's: the time constants stay (continuous-time
    consistent), only the per-step coefficients change.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from biosim.bridge import nir_engine as ne
from biosim.bridge.nir_engine import EngineGraph
from biosim.errors import BiosimError

__all__ = ["export_nir", "import_nir", "to_nir_graph", "load_run", "SOURCES", "SNNTORCH_DT", "NORSE_DT"]

SNNTORCH_DT = 1e-4
NORSE_DT = 1e-3
SOURCES = ("auto", "biosim", "snntorch", "norse", "nir")
_NEURON_TYPES = ("IF", "LIF", "CubaLIF", "LI", "CubaLI")
_SUPPORTED = ("Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d",
              "Scale", *_NEURON_TYPES)


def _nir():
    try:
        import nir
    except ImportError:  # pragma: no cover - nir is a dependency
        raise BiosimError("the NIR bridge needs the package 'nir' (pip install nir)") from None
    return nir


# ----------------------------------------------------------------------------- export

def load_run(run_dir, weights: str = "best"):
    """The trained network of a ``biosim run`` folder and what the bridge needs to know about it.

    Returns
    -------
    (SpikingNet, dict)
        The network (eval mode) and ``{"dataset", "encode", "readout", "meta"}``; ``meta`` is the
        graph metadata :func:`export_nir` writes (encoder, steps, read-out, dt).
    """
    import torch

    from biosim.datasets import load
    from biosim.learn.checkpoint import load_weights
    from biosim.learn.network import build_from_params

    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except FileNotFoundError:
        raise BiosimError(f"{run_dir} is not a run folder (no config.json)") from None
    params = config.get("params", {})
    if config.get("builder", config.get("name")) is None or "net" not in params:
        raise BiosimError(f"{run_dir} is not a training run (its config.json has no [params.net])")
    if isinstance(params["net"], dict) and params["net"].get("kind", "snn") != "snn":
        raise BiosimError(f"{run_dir} is a non-spiking baseline (net.kind = {params['net']['kind']!r}); "
                          "only spiking networks export to NIR")
    wfile = {"best": "best.safetensors", "final": "model.safetensors"}.get(weights)
    if wfile is None:
        raise BiosimError(f"unknown weights '{weights}' (valid: best, final)")
    ds = load(params["data"])
    h, w = ds.image_shape
    with torch.random.fork_rng(devices=[]):
        model, encode, readout, facts = build_from_params(params, (1, h, w), ds.n_classes)
    load_weights(run_dir / wfile, model)
    model.eval()
    enc = params["encoder"]
    meta = {"encoder": enc["kind"], "encoder_gain": float(enc["gain"]), "steps": int(enc["steps"]),
            "readout": readout.kind, "input_shape": [1, h, w], "learn_backend": facts["backend"]}
    if facts["backend"] != "biosim":
        raise BiosimError(f"{run_dir} was trained with learn.backend = '{facts['backend']}'; "
                          "only biosim's own layers export to NIR")
    return model, {"dataset": ds, "encode": encode, "readout": readout.kind, "meta": meta}


def _np(t) -> np.ndarray:
    a = t.detach().cpu().numpy()  # float32 or float64 as trained: the engine casts
    return a if a.dtype == np.float64 else a.astype(np.float32)


def to_nir_graph(model, input_shape=None, meta: dict | None = None):
    """The :class:`nir.NIRGraph` of a biosim :class:`~biosim.learn.network.SpikingNet`.

    Parameters
    ----------
    model : SpikingNet
        Feed-forward stages of (``Linear`` | ``Sequential(Flatten, Linear)`` |
        ``Sequential(Conv2d, AvgPool2d)``, LIF | CubaLIF | LI).
    input_shape : tuple of int, optional
        Shape of one input sample (default ``meta["input_shape"]``, else ``(in_features,)``).
    meta : dict, optional
        Extra graph metadata (encoder, steps, read-out); flat str / number values.

    Returns
    -------
    nir.NIRGraph
    """
    import torch

    from biosim.learn.layers import LI, CubaLIF, LIF

    nir = _nir()
    meta = dict(meta or {})
    if input_shape is None:
        input_shape = meta.get("input_shape")
    nodes: dict = {}
    edges: list = []
    prev = "input"
    dt = integration = None

    def add(name, node):
        nonlocal prev
        nodes[name] = node
        edges.append((prev, name))
        prev = name

    cur_shape = None
    for k, (syn, neuron) in enumerate(zip(model.synapses, model.neurons)):
        mods = list(syn) if isinstance(syn, torch.nn.Sequential) else [syn]
        for j, m in enumerate(mods):
            name = f"s{k}_{j}"
            if isinstance(m, torch.nn.Linear) and input_shape is None and k == 0 and j == 0:
                input_shape = (m.in_features,)
            shp = cur_shape if k or j else input_shape
            if shp is None:
                raise BiosimError("input_shape is needed to export a network that starts with a convolution")
            cur_shape = _trace([m], shp, k)
            if isinstance(m, torch.nn.Flatten):
                add(name, nir.Flatten(input_type={"input": np.array(shp)}, start_dim=0, end_dim=-1))
            elif isinstance(m, torch.nn.Linear):
                if m.bias is None:
                    add(name, nir.Linear(weight=_np(m.weight)))
                else:
                    add(name, nir.Affine(weight=_np(m.weight), bias=_np(m.bias)))
            elif isinstance(m, torch.nn.Conv2d):
                if m.padding_mode != "zeros" or isinstance(m.padding, str):
                    raise BiosimError(f"stage {k}: only zero, numeric padding exports to NIR")
                bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
                add(name, nir.Conv2d(input_shape=tuple(shp[1:]), weight=_np(m.weight), stride=m.stride, padding=m.padding,
                                     dilation=m.dilation, groups=m.groups, bias=bias))
            elif isinstance(m, torch.nn.AvgPool2d):
                ks = np.array(torch.nn.modules.utils._pair(m.kernel_size))
                st = np.array(torch.nn.modules.utils._pair(m.stride or m.kernel_size))
                add(name, nir.AvgPool2d(kernel_size=ks, stride=st,
                                        padding=np.array(torch.nn.modules.utils._pair(m.padding))))
            elif isinstance(m, torch.nn.MaxPool2d):
                raise BiosimError(f"stage {k} max-pools (MaxPool2d), which NIR 1.0 cannot express "
                                  "(it has SumPool2d and AvgPool2d only); train with sum/average pooling "
                                  "to export this network")
            else:
                raise BiosimError(f"stage {k}: synapse {type(m).__name__} has no NIR equivalent")
        p = neuron.params
        if type(neuron) not in (LIF, CubaLIF, LI):
            raise BiosimError(f"stage {k}: neuron layer {type(neuron).__name__} has no NIR equivalent "
                              "(exportable: LIF, CubaLIF, LI)")
        this_dt = p.dt_ms * 1e-3
        this_int = "euler" if p.integration == "norse" else "exact"
        if dt is not None and (this_dt != dt or this_int != integration):
            raise BiosimError(f"stage {k}: dt or integration differs from the earlier stages")
        dt, integration = this_dt, this_int
        size = cur_shape
        full = lambda v: np.full(size, v, np.float64)  # noqa: E731
        tau = full(p.tau_mem_ms * 1e-3)
        name = f"n{k}"
        if isinstance(neuron, LI):
            if p.tau_syn_ms:
                node = nir.CubaLI(tau_syn=full(p.tau_syn_ms * 1e-3), tau_mem=tau, r=full(1.0), v_leak=full(p.v_leak),
                                  w_in=full(p.tau_syn_ms * 1e-3 / dt))
            else:
                node = nir.LI(tau=tau, r=full(1.0), v_leak=full(p.v_leak))
        else:
            nmeta = {"reset": p.reset}
            if isinstance(neuron, CubaLIF):
                node = nir.CubaLIF(tau_syn=full(p.tau_syn_ms * 1e-3), tau_mem=tau, r=full(1.0),
                                   v_leak=full(p.v_leak), v_threshold=full(p.v_th), v_reset=full(p.v_reset),
                                   w_in=full(p.tau_syn_ms * 1e-3 / dt), metadata=nmeta)
            else:
                node = nir.LIF(tau=tau, r=full(1.0), v_leak=full(p.v_leak), v_threshold=full(p.v_th),
                               v_reset=full(p.v_reset), metadata=nmeta)
        add(name, node)
    if input_shape is None:
        raise BiosimError("input_shape is needed to export a network that starts with a convolution")
    nodes["input"] = nir.Input(input_type={"input": np.array(input_shape)})
    nodes["output"] = nir.Output(output_type={"output": np.array(cur_shape)})
    edges.append((prev, "output"))
    gmeta = {"source": "biosim", "dt": float(dt), "integration": integration}
    gmeta.update({k: v for k, v in meta.items() if isinstance(v, (str, int, float))})
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=gmeta, type_check=False)
    return graph


def _trace(mods, shape, k):
    """Shape of one sample after the synapse modules ``mods`` (input ``shape``)."""
    import torch

    if shape is None:
        raise BiosimError("input_shape is needed to export a network that starts with a convolution")
    shape = tuple(int(s) for s in shape)
    for m in mods:
        if isinstance(m, torch.nn.Flatten):
            shape = (int(np.prod(shape)),)
        elif isinstance(m, torch.nn.Linear):
            if int(np.prod(shape)) != m.in_features:
                raise BiosimError(f"stage {k}: Linear expects {m.in_features} inputs, gets shape {shape}")
            shape = (m.out_features,)
        else:
            with torch.no_grad():
                dtype = next(m.parameters(), torch.zeros(0)).dtype
                shape = tuple(m(torch.zeros(1, *shape, dtype=dtype)).shape[1:])
    return shape


def export_nir(src, path=None, *, weights: str = "best", meta: dict | None = None):
    """Export a trained biosim SNN to a NIR graph (and to an HDF5 file when ``path`` is given).

    Parameters
    ----------
    src : path-like or SpikingNet
        A ``biosim run`` folder (``config.json`` + weights) or a network.
    path : path-like or file object, optional
        Where to write the graph (``nir.write``, HDF5).
    weights : {"best", "final"}
        For a run folder: ``best.safetensors`` or ``model.safetensors``.
    meta : dict, optional
        Extra graph metadata for a network (a run folder supplies its encoder and read-out).

    Returns
    -------
    nir.NIRGraph
        The graph; its metadata holds ``dt`` (s), ``integration``, and the encoder / read-out.
    """
    import torch

    if isinstance(src, torch.nn.Module):
        graph = to_nir_graph(src, meta=meta)
    else:
        model, info = load_run(src, weights=weights)
        graph = to_nir_graph(model, meta={**info["meta"], **(meta or {})})
    if path is not None:
        nir = _nir()
        if isinstance(path, (str, Path)):
            path = Path(path)
            if not path.parent.is_dir():
                raise BiosimError(f"cannot write {path}: no folder {path.parent}")
        nir.write(path, graph)
    return graph


# ----------------------------------------------------------------------------- import

def _read(src):
    nir = _nir()
    if isinstance(src, nir.NIRGraph):
        return src
    if isinstance(src, (str, Path)) and not Path(src).exists():
        raise BiosimError(f"no NIR file at {src}")
    try:
        return nir.read(src, type_check=False)
    except Exception as exc:  # h5py / nir raise many kinds; any failure means an unreadable graph
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        name = src if isinstance(src, (str, Path)) else "the NIR data"
        raise BiosimError(f"cannot read {name} as a NIR graph ({msg})") from None


def _str(v) -> str:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray) and v.shape == ():
        return _str(v[()])
    return str(v)


def _chain(graph) -> list[str]:
    """Node names from Input to Output, checking the graph is one feed-forward chain."""
    nodes = graph.nodes
    for name, node in nodes.items():
        t = type(node).__name__
        if t == "NIRGraph":
            raise BiosimError(f"node '{name}' is a subgraph (recurrent layer); only feed-forward chains "
                              "are supported")
        if t not in _SUPPORTED:
            raise BiosimError(f"unknown NIR node type '{t}' (node '{name}'); supported: {', '.join(_SUPPORTED)}")
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in graph.edges:
        if a not in nodes or b not in nodes:
            raise BiosimError(f"edge ({a} -> {b}) names a node that is not in the graph")
        succ[a].append(b)
        pred[b].append(a)
    inputs = [n for n, node in nodes.items() if type(node).__name__ == "Input"]
    if len(inputs) != 1:
        raise BiosimError(f"the graph has {len(inputs)} Input nodes; exactly one is supported")
    order, cur, seen = [], inputs[0], set()
    while True:
        if cur in seen:
            raise BiosimError(f"the graph has a cycle through '{cur}' (recurrence is not supported)")
        seen.add(cur)
        order.append(cur)
        if len(pred[cur]) > 1 or len(succ[cur]) > 1:
            raise BiosimError(f"node '{cur}' branches or merges; only feed-forward chains are supported")
        if not succ[cur]:
            break
        cur = succ[cur][0]
    if type(nodes[order[-1]]).__name__ != "Output":
        raise BiosimError(f"the chain from the Input ends at '{order[-1]}', not at an Output node")
    if len(order) != len(nodes):
        extra = sorted(set(nodes) - seen)
        raise BiosimError(f"nodes not on the Input-Output chain: {', '.join(extra)}")
    return order


def _arr(v) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v, np.float64)


def _detect(graph) -> str:
    meta = graph.metadata or {}
    if _str(meta.get("source", "")) == "biosim":
        return "biosim"
    neurons = [n for n in graph.nodes.values() if type(n).__name__ in _NEURON_TYPES]
    if not neurons:
        return "nir"

    def tau_of(n):
        return _arr(getattr(n, "tau", getattr(n, "tau_mem", np.nan)))

    spk = [n for n in neurons if type(n).__name__ in ("LIF", "CubaLIF")]
    if spk and all(np.allclose(_arr(n.r), tau_of(n) / SNNTORCH_DT, rtol=1e-4) for n in spk):
        if not all(np.allclose(tau_of(n), SNNTORCH_DT) for n in spk):  # r == tau/dt is not r == 1 by chance
            return "snntorch"
    taus = [tau_of(n) for n in neurons if type(n).__name__ != "IF"]
    if all(np.all(_arr(n.r) == 1.0) for n in neurons) and taus and all(np.all(t < NORSE_DT) for t in taus):
        cuba = [n for n in neurons if type(n).__name__ in ("CubaLIF", "CubaLI")]
        if all(np.all(_arr(n.w_in) == 1.0) for n in cuba):
            return "norse"
    return "nir"


def import_nir(src, dt: float | None = None, source: str = "auto", integration: str | None = None,
               dtype: str = "float32", backend: str | None = None) -> EngineGraph:
    """Build an engine network from a NIR graph.

    Parameters
    ----------
    src : path-like, file object or nir.NIRGraph
        The graph (HDF5 as written by ``nir.write``) or the graph itself.
    dt : float, optional
        Time step (s). Default: the writer's (biosim: the graph's ``dt``; snnTorch 1e-4 s;
        norse 1e-3 s); required for other graphs.
    source : {"auto", "biosim", "snntorch", "norse", "nir"}
        Whose conventions to apply (module docstring); ``auto`` recognises the writer.
    integration : {"exact", "euler"}, optional
        Discretisation; default the writer's (biosim: the graph's; snnTorch, norse: euler;
        plain NIR: exact).
    dtype : {"float32", "float64"}
        Float type of the engine network (a run may ask for the other).
    backend : str, optional
        Engine backend to run on (default ``numba-cpu``).

    Returns
    -------
    EngineGraph
        Its neuron nodes as populations and the linear chains between them as projections of a
        :class:`~biosim.network.Network`; run it with :meth:`EngineGraph.run`
        (:mod:`biosim.bridge.nir_engine`).

    Raises
    ------
    BiosimError
        Unreadable file, unknown node type, branching / recurrent graph, shapes that do not fit,
        no neuron node.
    """
    graph = _read(src)
    if source not in SOURCES:
        raise BiosimError(f"unknown NIR source '{source}' (valid: {', '.join(SOURCES)})")
    order = _chain(graph)
    if source == "auto":
        source = _detect(graph)
    meta = {k: (_str(v) if isinstance(v, (bytes, str)) or (isinstance(v, np.ndarray) and v.dtype.kind in "SOU")
                else (v.item() if isinstance(v, np.ndarray) and v.shape == () else v))
            for k, v in (graph.metadata or {}).items()}
    default_dt = {"biosim": meta.get("dt"), "snntorch": SNNTORCH_DT, "norse": NORSE_DT}.get(source)
    if dt is None:
        dt = default_dt
    if dt is None:
        raise BiosimError("this NIR graph does not say its time step: pass dt (s), e.g. dt=1e-3")
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise BiosimError(f"dt = {dt!r} s is out of range (must be > 0)")
    if integration is None:
        integration = {"biosim": meta.get("integration", "exact"), "snntorch": "euler",
                       "norse": "euler"}.get(source, "exact")
    if integration not in ("exact", "euler"):
        raise BiosimError(f"unknown integration '{integration}' (valid: exact, euler)")
    if dtype not in ("float32", "float64"):
        raise BiosimError(f"unknown dtype '{dtype}' (valid: float32, float64)")

    nodes = graph.nodes
    first = nodes[order[0]]
    in_type = first.input_type.get("input") if isinstance(first.input_type, dict) else None
    if in_type is None:
        in_type = first.output_type.get("output")
    if in_type is None:
        raise BiosimError(f"Input node '{order[0]}' does not declare its shape")
    shape = tuple(int(s) for s in np.asarray(in_type).reshape(-1))
    nxt = type(nodes[order[1]]).__name__ if len(order) > 2 else ""
    if len(shape) >= 2 and shape[0] == 1 and (len(shape) == 4 or nxt in ("Affine", "Linear")):
        shape = shape[1:]  # nirtorch traced with a batch of one (norse's exporter keeps that dimension)
    input_shape = shape
    layers, links, chain, chain_in = [], [], [], shape
    for name in order[1:-1]:
        node = nodes[name]
        item = _layer(name, type(node).__name__, node, shape, dt, integration, source)
        if isinstance(item, ne.NeuronLayer):
            links.append(ne.compose(chain, chain_in))
            layers.append(item)
            chain, chain_in = [], item.shape
            shape = item.shape
        else:
            chain.append(item)
            shape = item.out_shape
    out_node = nodes[order[-1]]
    want = out_node.output_type.get("output") if isinstance(out_node.output_type, dict) else None
    if want is not None and int(np.prod(np.asarray(want))) != int(np.prod(shape)):
        raise BiosimError(f"Output node '{order[-1]}' declares {int(np.prod(np.asarray(want)))} values, "
                          f"but the chain gives {int(np.prod(shape))} {shape}")
    tail = ne.compose(chain, chain_in) if chain else None
    return EngineGraph(layers, links, tail, dt, input_shape, tuple(shape), source=source, integration=integration,
                       metadata=meta, dtype=dtype, backend=backend or "numba-cpu")


def _pair(v, name, what):
    a = np.asarray(v).reshape(-1)
    if a.size == 1:
        return (int(a[0]), int(a[0]))
    if a.size == 2:
        return (int(a[0]), int(a[1]))
    raise BiosimError(f"node '{name}': {what} = {v!r} must be one or two integers")


def _mismatch(name, t, want, got_shape):
    return BiosimError(f"node '{name}' ({t}) expects {want} inputs but receives {int(np.prod(got_shape))} "
                       f"(shape {tuple(got_shape)})")


def _layer(name, t, node, shape, dt, integration, source):
    n_in = int(np.prod(shape))
    if t in ("Affine", "Linear"):
        w = _arr(node.weight)
        if w.ndim != 2:
            raise BiosimError(f"node '{name}' ({t}): weight must be 2-d (got shape {w.shape})")
        if w.shape[1] != n_in:
            raise _mismatch(name, t, w.shape[1], shape)
        b = _arr(node.bias).reshape(-1) if t == "Affine" else None
        if b is not None and b.size != w.shape[0]:
            raise BiosimError(f"node '{name}' (Affine): bias has {b.size} values for {w.shape[0]} outputs")
        return ne.dense(name, w, b, shape)
    if t == "Conv2d":
        w = _arr(node.weight)
        if w.ndim != 4:
            raise BiosimError(f"node '{name}' (Conv2d): weight must be 4-d (got shape {w.shape})")
        groups = int(node.groups)
        if len(shape) != 3 or shape[0] != w.shape[1] * groups:
            raise BiosimError(f"node '{name}' (Conv2d) expects ({w.shape[1] * groups}, H, W) inputs "
                              f"but receives shape {tuple(shape)}")
        stride, dil = _pair(node.stride, name, "stride"), _pair(node.dilation, name, "dilation")
        kh, kw = w.shape[2:]
        if isinstance(node.padding, str):
            if node.padding == "valid":
                pad = (0, 0)
            elif node.padding == "same" and stride == (1, 1):
                pad = (dil[0] * (kh - 1) // 2, dil[1] * (kw - 1) // 2)
            else:
                raise BiosimError(f"node '{name}' (Conv2d): padding '{node.padding}' is not supported here")
        else:
            pad = _pair(node.padding, name, "padding")
        ho = (shape[1] + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
        wo = (shape[2] + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
        if ho < 1 or wo < 1:
            raise BiosimError(f"node '{name}' (Conv2d): a {kh}x{kw} kernel does not fit a {shape[1]}x{shape[2]} input")
        b = _arr(node.bias).reshape(-1)
        if b.size != w.shape[0]:
            raise BiosimError(f"node '{name}' (Conv2d): bias has {b.size} values for {w.shape[0]} channels")
        return ne.conv2d(name, w, b, shape, stride, pad, dil, groups, (w.shape[0], ho, wo))
    if t in ("SumPool2d", "AvgPool2d"):
        if len(shape) != 3:
            raise BiosimError(f"node '{name}' ({t}) expects (C, H, W) inputs but receives shape {tuple(shape)}")
        k = _pair(node.kernel_size, name, "kernel_size")
        s = _pair(node.stride, name, "stride")
        p = _pair(node.padding, name, "padding")
        ho = (shape[1] + 2 * p[0] - k[0]) // s[0] + 1
        wo = (shape[2] + 2 * p[1] - k[1]) // s[1] + 1
        if ho < 1 or wo < 1:
            raise BiosimError(f"node '{name}' ({t}): a {k} window does not fit a {shape[1]}x{shape[2]} input")
        factor = 1.0 / (k[0] * k[1]) if t == "AvgPool2d" else 1.0
        return ne.sum_pool2d(name, shape, k, s, p, factor, (shape[0], ho, wo))
    if t == "Flatten":
        return ne.flatten(name, shape)
    if t == "Scale":
        s = _arr(node.scale)
        if s.size not in (1, n_in):
            raise _mismatch(name, t, s.size, shape)
        return ne.scale(name, s, shape)
    # neurons
    params = {}
    for attr in ("tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in"):
        if hasattr(node, attr) and getattr(node, attr) is not None:
            params[attr] = _arr(getattr(node, attr)).reshape(-1)
    for attr, v in params.items():
        if v.size not in (1, n_in):
            raise _mismatch(name, t, v.size, shape)
        if not np.all(np.isfinite(v)):
            raise BiosimError(f"node '{name}' ({t}): {attr} has non-finite values")
    tau = params.get("tau", params.get("tau_mem"))
    tau_syn = params.get("tau_syn")
    w_in = params.get("w_in", 1.0)
    nmeta = getattr(node, "metadata", None) or {}
    reset = "zero"
    if source == "biosim":
        reset = _str(nmeta.get("reset", "zero"))
    elif source == "snntorch":
        reset = "delayed"
    elif source == "norse":
        if tau is not None:
            tau = tau / NORSE_DT  # norse writes dt / tau_inv
        if tau_syn is not None:
            tau_syn = tau_syn / NORSE_DT
            w_in = tau_syn / NORSE_DT  # norse's current jumps by the whole input
    if t == "IF" and source == "norse":
        params["r"] = params["r"] / NORSE_DT  # norse's IAF adds the input per step
    if t != "IF" and tau is None:
        raise BiosimError(f"node '{name}' ({t}) has no time constant (tau)")
    if t in ("CubaLIF", "CubaLI") and tau_syn is None:
        raise BiosimError(f"node '{name}' ({t}) has no tau_syn")
    if t in ("IF", "LIF", "CubaLIF") and "v_threshold" not in params:
        raise BiosimError(f"node '{name}' ({t}) has no v_threshold")
    return ne.neuron_layer(name, t, dt, integration, tuple(shape), tau=tau, tau_syn=tau_syn, r=params.get("r", 1.0),
                           v_leak=params.get("v_leak", 0.0), w_in=w_in, v_threshold=params.get("v_threshold"),
                           v_reset=params.get("v_reset"), reset=reset)


def engine_input(x_images: np.ndarray, meta: dict) -> np.ndarray:
    """Direct-current input of a biosim-exported graph: ``gain * x / 255`` in float32, ``(B, 1, H, W)``."""
    if meta.get("encoder") != "current":
        raise BiosimError(f"only the direct-current encoder runs in the engine (this graph's: {meta.get('encoder')})")
    x = x_images.astype(np.float32) / np.float32(255.0)
    return (x * np.float32(meta["encoder_gain"]))[:, None]

