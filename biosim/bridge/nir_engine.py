r"""Run an imported NIR graph in the engine: its nodes become populations and projections of a
:class:`~biosim.network.Network`.

:func:`biosim.bridge.nir.import_nir` turns a NIR graph into an :class:`EngineGraph`:

- every neuron node (``IF``, ``LIF``, ``CubaLIF``, ``LI``, ``CubaLI``) is a population of the
  engine's layer neuron (:class:`biosim.neurons.layer.LayerLIF`), with one value per neuron of each
  of its factors (``beta_mem``, ``gain``, ``beta_syn``, ``r``, ``w_in``, ``v_leak``, ``v_th``,
  ``v_reset``: state rows of the model);
- the linear nodes between two neuron nodes (``Affine``, ``Linear``, ``Conv2d``, ``SumPool2d``,
  ``AvgPool2d``, ``Flatten``, ``Scale``, or a chain of them) are one projection onto the target's
  ``x_syn`` with explicit connectivity: the chain's matrix (the product of its nodes' sparse
  matrices, float64) with one synapse per nonzero entry. The chain's bias (``A2 b1 + b2`` through
  the chain) is the target's constant input ``i_in``;
- the linear chain from the graph's ``Input`` to the first neuron node is applied to each input
  sample (sums in float64, rounded to the run's float type) and is that node's ``i_in``; a chain
  after the last neuron node is applied to its outputs.

:meth:`EngineGraph.run` runs the same network for every sample of a batch, one sample after the
other (the state is reset in place between samples, nothing is rebuilt or recompiled), on any of the
engine's backends, in float32 or float64.

Neuron update (:mod:`biosim.neurons.layer`, per step of ``dt``, input ``x = x_syn + i_in``)::

    i+ = i + w_in x                                    (synaptic current, CubaLIF / CubaLI)
    v- = beta_mem v + gain (r i+ + v_leak)            (r x without a synaptic current)
    z  = v- > v_th                                     (spiking kinds)
    v' = reset(v-, z);   i' = beta_syn i+

with, for NIR's ODEs ``tau_syn di/dt = -i + w_in S`` and ``tau dv/dt = v_leak - v + r i``
(``dv/dt = r i`` for IF), from :func:`biosim.neurons.layer.coefficients`:

===================  ==========================  ===================================
discretisation       ``beta_mem`` / ``beta_syn``  ``gain``, engine ``w_in``
===================  ==========================  ===================================
``exact`` (ZOH)      ``exp(-dt/tau)``             ``1 - beta_mem``, ``w_in dt/tau_syn``
``euler``            ``1 - dt/tau``               ``dt/tau``, ``w_in dt/tau_syn``
IF (both)            ``1``                        ``dt`` (``v_leak = 0``)
===================  ==========================  ===================================

``r`` is folded into the gain where it is not 0 (engine ``gain = gain r``, ``r = 1``,
``v_leak = v_leak / r``: the same ODE; ``r = tau/dt`` of snnTorch then gives a gain of exactly
1). ``exact`` holds the input (and ``i+``) constant over the step and integrates ``v`` exactly:
this is biosim's torch layers (:mod:`biosim.learn.layers`, ``integration="exact"``) operation for
operation, so float32 runs reproduce their spikes up to the summation order of the synapses. The
step's input enters the synaptic current as an impulse of area ``x dt`` (the jump
``w_in x dt / tau_syn``). ``euler`` is forward Euler (snnTorch, norse, biosim's ``"norse"`` mode).

Reset modes: ``zero`` (NIR's: ``v = v_reset``, as ``v- - z (v- - v_reset)``), ``subtract``
(``v- - z (v_th - v_reset)``, biosim's default) and ``delayed`` (snnTorch's ``Leaky``: the
threshold is subtracted at the *next* step, after the decay).

Schedule: a spike reaches the next population one engine step later than in a torch forward pass
(the engine's schedule is Brian2's), so neuron layer ``k`` (0-based) is ``k`` steps behind the
input. A run of ``T`` input steps runs ``T + L - 1`` engine steps (``L`` neuron layers; one more
when the output is a membrane trace, which the monitor records at the start of the next step) and
reads layer ``k`` over engine steps ``[k, k + T)``. Layer ``k`` must not move before its step
``k``: where it has a bias (or ``v_leak != 0``) its ``i_in`` (and its ``beta_mem``, ``gain``) are
held at 0 (1, 0) until then.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from biosim.errors import BiosimError, unknown
from biosim.network import Network
from biosim.network.connect import Explicit
from biosim.neurons.layer import RESETS, LayerLIF, coefficients, decay

__all__ = ["LinearMap", "NeuronLayer", "EngineGraph", "dense", "conv2d", "sum_pool2d", "flatten", "scale",
           "compose", "neuron_layer", "run", "engine_agreement", "run_dataset", "NEURON_KINDS", "RESETS"]

NEURON_KINDS = ("IF", "LIF", "CubaLIF", "LI", "CubaLI")
_DTYPES = ("float32", "float64")
_FACTORS = ("beta_mem", "gain", "beta_syn", "r", "w_in", "v_leak", "v_th", "v_reset")


# ----------------------------------------------------------------------------- linear maps

@dataclass
class LinearMap:
    """``y = A x + b`` on one flattened sample: ``matrix`` (n_out, n_in) CSR float64, ``bias`` (n_out,) or None.

    ``name`` names the NIR node(s) it stands for; the shapes are of one sample.
    """

    name: str
    matrix: sp.csr_matrix
    bias: np.ndarray | None
    in_shape: tuple
    out_shape: tuple

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``A x + b`` for a batch ``x`` of shape ``(B, n_in)``, in float64: ``(B, n_out)``."""
        y = np.asarray(self.matrix @ np.asarray(x, np.float64).T).T
        return y + self.bias if self.bias is not None else y


def _csr(rows, cols, data, shape) -> sp.csr_matrix:
    return sp.csr_matrix((np.asarray(data, np.float64), (np.asarray(rows), np.asarray(cols))), shape=shape)


def dense(name: str, weight: np.ndarray, bias: np.ndarray | None, in_shape: tuple) -> LinearMap:
    """NIR ``Affine`` / ``Linear``: ``weight`` (out, in)."""
    w = np.asarray(weight, np.float64)
    return LinearMap(name, sp.csr_matrix(w), None if bias is None else np.asarray(bias, np.float64).reshape(-1),
                     tuple(in_shape), (w.shape[0],))


def conv2d(name: str, weight: np.ndarray, bias: np.ndarray | None, in_shape: tuple, stride: tuple,
           padding: tuple, dilation: tuple, groups: int, out_shape: tuple) -> LinearMap:
    """torch ``conv2d`` (zero padding) as a matrix: ``weight`` (C_out, C_in/groups, kh, kw), input (C_in, H, W)."""
    w = np.asarray(weight, np.float64)
    c_out, cpg, kh, kw = w.shape
    _, h_in, w_in = in_shape
    _, ho, wo = out_shape
    opg = c_out // groups
    co, ci, oy, ox = np.meshgrid(np.arange(c_out), np.arange(cpg), np.arange(ho), np.arange(wo), indexing="ij")
    rows_all, cols_all, data_all = [], [], []
    for ky in range(kh):
        for kx in range(kw):
            iy = oy * stride[0] - padding[0] + ky * dilation[0]
            ix = ox * stride[1] - padding[1] + kx * dilation[1]
            ok = (iy >= 0) & (iy < h_in) & (ix >= 0) & (ix < w_in)
            cin = (co // opg) * cpg + ci
            rows_all.append(((co * ho + oy) * wo + ox)[ok])
            cols_all.append(((cin * h_in + iy) * w_in + ix)[ok])
            data_all.append(w[co[ok], ci[ok], ky, kx])
    m = _csr(np.concatenate(rows_all), np.concatenate(cols_all), np.concatenate(data_all),
             (c_out * ho * wo, int(np.prod(in_shape))))
    b = None if bias is None else np.repeat(np.asarray(bias, np.float64).reshape(-1), ho * wo)
    return LinearMap(name, m, b, tuple(in_shape), tuple(out_shape))


def sum_pool2d(name: str, in_shape: tuple, kernel: tuple, stride: tuple, padding: tuple, factor: float,
               out_shape: tuple) -> LinearMap:
    """2-d sum pooling times ``factor`` (``AvgPool2d``: ``1 / (kh kw)``, zero padding counted)."""
    c, h_in, w_in = in_shape
    _, ho, wo = out_shape
    ch, oy, ox = np.meshgrid(np.arange(c), np.arange(ho), np.arange(wo), indexing="ij")
    rows_all, cols_all = [], []
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            iy = oy * stride[0] - padding[0] + ky
            ix = ox * stride[1] - padding[1] + kx
            ok = (iy >= 0) & (iy < h_in) & (ix >= 0) & (ix < w_in)
            rows_all.append(((ch * ho + oy) * wo + ox)[ok])
            cols_all.append(((ch * h_in + iy) * w_in + ix)[ok])
    rows, cols = np.concatenate(rows_all), np.concatenate(cols_all)
    m = _csr(rows, cols, np.full(len(rows), float(factor)), (c * ho * wo, c * h_in * w_in))
    return LinearMap(name, m, None, tuple(in_shape), tuple(out_shape))


def flatten(name: str, in_shape: tuple) -> LinearMap:
    """Flatten one sample to a vector (the identity on the flattened sample)."""
    n = int(np.prod(in_shape))
    return LinearMap(name, sp.identity(n, dtype=np.float64, format="csr"), None, tuple(in_shape), (n,))


def scale(name: str, factors: np.ndarray, shape: tuple) -> LinearMap:
    """Element-wise ``y = s x`` (``s`` one value or one per element)."""
    n = int(np.prod(shape))
    s = np.broadcast_to(np.asarray(factors, np.float64).reshape(-1), (n,))
    return LinearMap(name, sp.diags(s, format="csr"), None, tuple(shape), tuple(shape))


def compose(maps: list[LinearMap], shape: tuple) -> LinearMap:
    """One map for the chain ``maps`` (applied in order; the identity on ``shape`` when empty)."""
    if not maps:
        return flatten("", shape)
    out = maps[0]
    for m in maps[1:]:
        bias = None
        if out.bias is not None:
            bias = m.matrix @ out.bias
        if m.bias is not None:
            bias = m.bias if bias is None else bias + m.bias
        out = LinearMap(f"{out.name}+{m.name}", (m.matrix @ out.matrix).tocsr(), bias, out.in_shape, m.out_shape)
    return out


# ----------------------------------------------------------------------------- neuron layers

@dataclass
class NeuronLayer:
    """A NIR neuron node as the engine runs it: one :class:`~biosim.neurons.layer.LayerLIF` population.

    ``factors`` maps each of ``beta_mem``, ``gain``, ``beta_syn``, ``r``, ``w_in``, ``v_leak``,
    ``v_th``, ``v_reset`` to a float64 array, one value per neuron (engine values: see the module
    docstring); ``v0`` is the resting potential the state starts from (NIR's ``v_leak``).
    """

    name: str
    kind: str
    shape: tuple
    spiking: bool
    has_syn: bool
    reset: str
    factors: dict
    v0: np.ndarray

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def params(self) -> LayerLIF:
        """The population's parameters; every factor is overridden per neuron by :attr:`factors`
        (``beta_syn = 1`` here only marks a layer with a synaptic current)."""
        return LayerLIF(beta_syn=1.0 if self.has_syn else 0.0, reset=self.reset, spiking=self.spiking)


def _coefficient_arrays(dt: float, tau: np.ndarray | None, method: str) -> tuple[np.ndarray, np.ndarray]:
    """``beta_mem`` and ``gain`` per neuron (``tau`` None: non-leaky), from :func:`coefficients`."""
    if tau is None:
        c = coefficients(dt, None, 0.0, method)
        return np.array([c.beta_mem]), np.array([c.gain])
    uniq, inv = np.unique(tau, return_inverse=True)
    vals = np.array([coefficients(dt, float(t), 0.0, method)[:2] for t in uniq]).reshape(-1, 2)
    return vals[inv.reshape(-1), 0], vals[inv.reshape(-1), 1]


def neuron_layer(name: str, kind: str, dt: float, integration: str, shape: tuple, *, tau=None, tau_syn=None,
                 r=1.0, v_leak=0.0, w_in=1.0, v_threshold=None, v_reset=None, reset: str = "zero") -> NeuronLayer:
    """The engine layer of a NIR neuron node (``IF``, ``LIF``, ``CubaLIF``, ``LI``, ``CubaLI``) for step ``dt`` (s).

    Every parameter is a number or one value per neuron (the node's ``shape``, flattened); times in s.
    """
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise BiosimError(f"dt = {dt!r} s is out of range (must be > 0)")
    if kind not in NEURON_KINDS:
        raise unknown("NIR neuron node type", kind, NEURON_KINDS)
    if integration not in ("exact", "euler"):
        raise unknown("integration", integration, ("exact", "euler"))
    if reset not in RESETS:
        raise BiosimError(f"node '{name}': unknown reset '{reset}' (valid: {', '.join(RESETS)})")
    n = int(np.prod(shape))

    def arr(a, what):
        a = np.asarray(a, np.float64).reshape(-1)
        if a.size not in (1, n):
            raise BiosimError(f"node '{name}' ({kind}) expects {a.size} inputs but receives {n} "
                              f"(shape {tuple(shape)}; parameter {what})")
        return np.broadcast_to(a, (n,)).copy()

    spiking = kind in ("IF", "LIF", "CubaLIF")
    has_syn = kind in ("CubaLIF", "CubaLI")
    r = arr(r, "r")
    if kind == "IF":
        beta, gain = _coefficient_arrays(dt, None, integration)
        v_leak = np.zeros(n)
    else:
        tau = arr(tau, "tau")
        if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
            raise BiosimError(f"node '{name}': tau must be > 0 (got min {tau.min():g} s)")
        beta, gain = _coefficient_arrays(dt, tau, integration)
        v_leak = arr(v_leak, "v_leak")
    if has_syn:
        tau_syn = arr(tau_syn, "tau_syn")
        if np.any(~np.isfinite(tau_syn)) or np.any(tau_syn <= 0):
            raise BiosimError(f"node '{name}': tau_syn must be > 0 (got min {tau_syn.min():g} s)")
        beta_syn = np.array([decay(dt, float(t), integration) for t in tau_syn])
        w_syn = arr(w_in, "w_in") * dt / tau_syn
    else:
        beta_syn, w_syn = np.zeros(n), np.ones(n)
    if spiking:
        v_th = arr(v_threshold, "v_threshold")
        v_rst = arr(v_reset, "v_reset") if v_reset is not None else np.zeros(n)
    else:
        v_th, v_rst = np.ones(n), np.zeros(n)
    beta, gain = np.broadcast_to(beta, (n,)), np.broadcast_to(gain, (n,))
    fold = r != 0  # gain (r i + v_leak) == (gain r) (i + v_leak / r)
    g_eng = np.where(fold, gain * r, gain)
    vl_eng = np.where(fold, v_leak / np.where(fold, r, 1.0), v_leak)
    r_eng = np.where(fold, 1.0, r)
    factors = {"beta_mem": beta, "gain": g_eng, "beta_syn": beta_syn, "r": r_eng, "w_in": w_syn,
               "v_leak": vl_eng, "v_th": v_th, "v_reset": v_rst}
    factors = {k: np.ascontiguousarray(v, np.float64) for k, v in factors.items()}
    for k, v in factors.items():
        if not np.all(np.isfinite(v)):
            raise BiosimError(f"node '{name}' ({kind}): its parameters give non-finite {k} at dt = {dt:g} s")
    return NeuronLayer(name, kind, tuple(shape), spiking, has_syn, reset, factors, v_leak.copy())


# ----------------------------------------------------------------------------- the graph in the engine

class _Built:
    """The network of an :class:`EngineGraph` for one float type and backend."""

    def __init__(self, graph: EngineGraph, dtype: str, backend: str):
        self.net = Network(dt_ms=graph.dt * 1e3, dtype=dtype)
        self.backend = backend
        self.pops = []
        for k, layer in enumerate(graph.layers):
            init = dict(layer.factors)
            init.update(v=layer.v0, i_in=graph.links[k].bias if k and graph.links[k].bias is not None else 0.0)
            self.pops.append(self.net.population(layer.name, layer.params(), layer.size, init=init,
                                                 record_spikes=layer.spiking))
        self.projections = []
        for k in range(1, len(graph.layers)):
            coo = graph.links[k].matrix.tocoo()
            keep = coo.data != 0
            self.projections.append(self.net.connect(self.pops[k - 1], self.pops[k], "x_syn",
                                                     weight=coo.data[keep], rule=Explicit(coo.col[keep], coo.row[keep])))
        self.monitored = not graph.layers[-1].spiking
        if self.monitored:
            self.net.monitor(self.pops[-1], "v")
        self.setup_s, self.compiled = 0.0, False

    def compile(self):
        """Lay the network out and compile it for its backend (``run(0)``), once."""
        if not self.compiled:
            t0 = time.perf_counter()
            self.net.run(0.0, backend=self.backend)
            self.setup_s, self.compiled = time.perf_counter() - t0, True


@dataclass
class EngineGraph:
    """An imported NIR graph as engine populations and projections, at one time step ``dt`` (s).

    Attributes
    ----------
    layers : list of NeuronLayer
        The neuron nodes, input to output; each is a population of :attr:`network`.
    links : list of LinearMap
        ``links[k]`` is the linear chain into ``layers[k]``: from the graph's input for ``k = 0``
        (applied to each sample), a projection ``layers[k-1] -> layers[k]`` (and the bias as
        ``i_in``) for ``k >= 1``.
    tail : LinearMap or None
        A linear chain after the last neuron node (applied to its outputs), if the graph has one.
    dt : float
        Time step (s) the neuron factors were computed for.
    input_shape, output_shape : tuple of int
        Shape of one sample at the input and at the output.
    source : str
        Who wrote the graph (``biosim``, ``snntorch``, ``norse`` or ``nir``).
    integration : str
        ``exact`` or ``euler``.
    metadata : dict
        The graph's metadata (biosim writes its encoder and read-out there).
    dtype : {"float32", "float64"}
        Float type of :attr:`network` (:meth:`run` can ask for the other).
    backend : str
        The engine backend it runs on (``numba-cpu``, ``numpy``, ...).
    """

    layers: list
    links: list
    tail: LinearMap | None
    dt: float
    input_shape: tuple
    output_shape: tuple
    source: str = "nir"
    integration: str = "exact"
    metadata: dict = field(default_factory=dict)
    dtype: str = "float32"
    backend: str = "numba-cpu"

    def __post_init__(self):
        if not self.layers:
            raise BiosimError("the graph has no neuron node (IF, LIF, CubaLIF, LI, CubaLI); the engine runs "
                              "spiking networks")
        if self.dtype not in _DTYPES:
            raise unknown("dtype", self.dtype, _DTYPES)
        self._built = {}

    # --- the network ----------------------------------------------------------------------
    def _get(self, dtype: str | None = None, backend: str | None = None) -> _Built:
        dtype = dtype or self.dtype
        if dtype not in _DTYPES:
            raise unknown("dtype", dtype, _DTYPES)
        key = (dtype, backend or self.backend)
        if key not in self._built:
            self._built[key] = _Built(self, *key)
        return self._built[key]

    @property
    def network(self):
        """The :class:`~biosim.network.Network` (in :attr:`dtype`) the graph runs as."""
        return self._get().net

    @property
    def populations(self) -> dict:
        """NIR neuron node name -> its :class:`~biosim.network.parts.Population` in :attr:`network`."""
        b = self._get()
        return {layer.name: pop for layer, pop in zip(self.layers, b.pops)}

    def neuron_layers(self) -> list:
        """The :class:`NeuronLayer` s, in order."""
        return list(self.layers)

    # --- running --------------------------------------------------------------------------
    def run(self, x: np.ndarray, steps: int | None = None, record_spikes: bool = False, dtype: str | None = None,
            backend: str | None = None) -> dict:
        """Run the graph on a batch of inputs, one sample after the other.

        Parameters
        ----------
        x : numpy.ndarray
            Input currents: ``(T, B, *input_shape)``, or ``(B, *input_shape)`` held for ``steps``.
        steps : int, optional
            Number of steps ``T`` when ``x`` is constant in time.
        record_spikes : bool
            Also return every spiking layer's spikes ``(T, B, n)``.
        dtype : {"float32", "float64"}, optional
            Float type of the engine's states and weights (default :attr:`dtype`).
        backend : str, optional
            Engine backend (default :attr:`backend`).

        Returns
        -------
        dict
            ``output`` ``(T, B, *output_shape)`` (spikes or membrane potentials of the last layer,
            through :attr:`tail` if any), ``spike_counts`` (list, one ``(B, n)`` int64 array per
            spiking layer), ``spikes`` if asked for, ``setup_s`` (building and compiling the
            network, 0 when it was ready) and ``run_s`` (wall seconds of the runs).
        """
        built = self._get(dtype, backend)
        ft = np.dtype(built.net.dtype)
        x = np.asarray(x)
        shape_in = tuple(self.input_shape)
        static = steps is not None
        if static:
            if tuple(x.shape[1:]) != shape_in:
                raise BiosimError(f"input of shape {x.shape[1:]} does not fit the graph's input {shape_in}")
            n_b, n_t = x.shape[0], int(steps)
            if n_t < 1:
                raise BiosimError(f"steps = {steps} must be >= 1")
        else:
            if x.ndim < 2 or tuple(x.shape[2:]) != shape_in:
                raise BiosimError(f"input of shape {x.shape[2:]} does not fit the graph's input {shape_in} "
                                  "(expected (T, batch, *input))")
            n_t, n_b = x.shape[0], x.shape[1]
        built.compile()
        t_start = time.perf_counter()
        # the input chain, for every sample (and step) at once: float64 sums, rounded to the run's type
        flat = x.reshape(-1, int(np.prod(shape_in))).astype(ft, copy=False)
        drive = self.links[0].apply(flat).astype(ft)
        drive = drive.reshape((n_b, -1) if static else (n_t, n_b, -1))
        layers, pops, net = self.layers, built.pops, built.net
        n_layers = len(layers)
        n_steps = n_t + n_layers - 1 + (1 if built.monitored else 0)
        dt_ms = net.dt_ms
        # layers that must not move before their first step k: bias (i_in) and a resting potential
        held = {k: bool(np.any(layers[k].v0 != 0))
                for k in range(1, n_layers)
                if (self.links[k].bias is not None and np.any(self.links[k].bias != 0)) or np.any(layers[k].v0 != 0)}
        changes = sorted({*held, *(range(n_t) if not static else [0])})
        bounds = [s for s in changes if 0 < s < n_steps] + [n_steps]
        spiking = [k for k, layer in enumerate(layers) if layer.spiking]
        counts = {k: np.zeros((n_b, layers[k].size), np.int64) for k in spiking}
        spikes = {k: np.zeros((n_t, n_b, layers[k].size), ft) for k in spiking} if record_spikes else {}
        last = n_layers - 1
        out = np.zeros((n_t, n_b, layers[last].size), ft)
        for b in range(n_b):
            for k, (layer, pop) in enumerate(zip(layers, pops)):
                net.set_state(pop, "v", _compact(layer.v0))
                if layer.has_syn:
                    net.set_state(pop, "i", 0.0)
                if layer.reset == "delayed":
                    net.set_state(pop, "z_prev", 0.0)
                if k:
                    net.set_state(pop, "x_syn", 0.0)
                if k in held:
                    net.set_state(pop, "i_in", 0.0)
                    if held[k]:
                        net.set_state(pop, "beta_mem", 1.0)
                        net.set_state(pop, "gain", 0.0)
            step, start_ms, res = 0, None, None
            for stop in bounds:
                if step < n_t and (not static or step == 0):
                    net.set_state(pops[0], "i_in", drive[b] if static else drive[step, b])
                if step in held:
                    bias = self.links[step].bias
                    net.set_state(pops[step], "i_in", _compact(bias) if bias is not None else 0.0)
                    if held[step]:
                        net.set_state(pops[step], "beta_mem", _compact(layers[step].factors["beta_mem"]))
                        net.set_state(pops[step], "gain", _compact(layers[step].factors["gain"]))
                res = net.run((stop - step) * dt_ms)
                if start_ms is None:
                    start_ms = res.start_ms
                step = stop
            s0 = int(round(start_ms / dt_ms))
            got = res.spikes_since(start_ms)
            for k in spiking:
                t_ms, idx = got[layers[k].name]
                st = np.rint(t_ms / dt_ms).astype(np.int64) - s0 - k
                sel = (st >= 0) & (st < n_t)
                counts[k][b] = np.bincount(idx[sel], minlength=layers[k].size)
                if record_spikes:
                    spikes[k][st[sel], b, idx[sel]] = 1
                if k == last:
                    out[st[sel], b, idx[sel]] = 1
            if built.monitored:
                _, v = res.states_since(start_ms)[(layers[last].name, "v")]
                out[:, b] = v[last + 1:last + 1 + n_t]
        if self.tail is not None:
            out = self.tail.apply(out.reshape(n_t * n_b, -1)).astype(ft)
        result = {"output": out.reshape((n_t, n_b, *self.output_shape)),
                  "spike_counts": [counts[k] for k in spiking],
                  "setup_s": built.setup_s, "run_s": time.perf_counter() - t_start}
        built.setup_s = 0.0
        if record_spikes:
            result["spikes"] = [spikes[k] for k in spiking]
        return result


def _compact(values: np.ndarray):
    """One number when every value is the same (cheaper to set), else the array."""
    return float(values[0]) if values.size and np.all(values == values[0]) else values


def run(net: EngineGraph, x: np.ndarray, steps: int | None = None, dtype: str = "float32",
        record_spikes: bool = False, backend: str | None = None) -> dict:
    """Run an imported graph on a batch of inputs: :meth:`EngineGraph.run` in float type ``dtype``."""
    if dtype not in _DTYPES:
        raise BiosimError(f"unknown dtype '{dtype}' (valid: float32, float64)")
    return net.run(x, steps=steps, record_spikes=record_spikes, dtype=dtype, backend=backend)


# ----------------------------------------------------------------------------- agreement

def engine_agreement(run_dir, n: int | None = None, dtype: str = "float32", weights: str = "best",
                     backend: str | None = None) -> dict:
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
    backend : str, optional
        Engine backend (default numba-cpu).

    Returns
    -------
    dict
        ``same_class_fraction``, ``identical_spike_counts_fraction`` (every hidden neuron's spike
        count equal), ``n_samples``, ``engine_accuracy``, ``torch_accuracy``, plus
        ``mean_abs_spike_count_diff``, the graph's ``dt``, ``engine_setup_s`` (building and
        compiling the network) and ``engine_s`` (running every sample).
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
    net = bnir.import_nir(buf, dtype=dtype, backend=backend)
    gain = np.float32(info["meta"]["encoder_gain"])
    xe = xin.numpy() * gain  # the direct-current encoder, same float32 product as torch's
    res = net.run(xe, steps=info["meta"]["steps"])
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
            "dt": net.dt, "dtype": dtype, "engine_setup_s": res["setup_s"], "engine_s": res["run_s"]}


def run_dataset(src, data: str = "mnist5k", n: int | None = None, dtype: str = "float32",
                steps: int | None = None, gain: float | None = None, readout: str | None = None,
                backend: str | None = None) -> dict:
    """Run a NIR graph in the engine on a data set's test images (direct-current input).

    The encoder (``gain``, ``steps``) and the read-out come from the graph's metadata when biosim
    wrote it; pass them for other graphs. The graph's input must be ``(1, H, W)`` or ``(H*W,)``.

    Returns
    -------
    dict
        ``accuracy``, ``n_samples``, ``spikes_per_sample`` (hidden and spiking-output), ``steps``,
        ``dt``, ``source``, ``seconds`` (engine time: building, compiling and running).
    """
    import torch

    from biosim.bridge import nir as bnir
    from biosim.datasets import load
    from biosim.learn.readouts import READOUTS, scores

    net = bnir.import_nir(src, dtype=dtype, backend=backend)
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
    res = net.run(xin.reshape(len(x), *net.input_shape), steps=steps)
    out = torch.from_numpy(res["output"].reshape(steps, len(x), -1).astype(np.float32))
    pred = scores(out, readout).numpy().argmax(1)
    spikes = sum(int(c.sum()) for c in res["spike_counts"])
    return {"accuracy": float((pred == y).mean()), "n_samples": int(len(y)),
            "spikes_per_sample": spikes / max(len(y), 1), "steps": steps, "dt": net.dt, "source": net.source,
            "seconds": res["setup_s"] + res["run_s"]}
