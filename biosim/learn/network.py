r"""Feed-forward and convolutional spiking networks built from a run's configuration.

A :class:`SpikingNet` is a stack of stages; each stage is a synapse (a ``torch.nn`` module:
``Conv2d`` then ``MaxPool2d`` or ``AvgPool2d`` for a convolutional stage, ``Linear`` for a fully connected one) and
a neuron layer from :mod:`biosim.learn.layers` driven by the synapse's output current::

    x_t --conv/pool--> LIF --conv/pool--> LIF --flatten/linear--> LIF ... --linear--> read-out
          (stage 0)           (stage 1)                (hidden)              LI or LIF

``forward(x_seq)`` runs the stack over time, ``x_seq`` of shape ``(T, batch, *input)``, and
returns the output layer's sequence ``(T, batch, classes)`` (membrane potentials of a leaky
integrator, or spikes). When ``x_seq`` is constant in time (an expanded view, as the direct-current
encoder returns), the first synapse is evaluated once instead of ``T`` times: same result, less
work. Dropout on hidden spikes uses one mask per sample for all time steps.

With ``fused=True`` (the default; ``learn.fused`` in a run's configuration) every plain
:class:`~biosim.learn.layers.LIF` layer that :func:`fusable` accepts (exact integration, a reset
and surrogate the fused kernels know) runs its whole time loop as one autograd node
(:func:`biosim.learn.fused.lif_sequence`): the network is then run stage by stage instead of step
by step, each synapse still applied to one step at a time, so the spikes and outputs are the same
as the step loop's and only the gradients differ (float rounding, about 1e-7). The modules, their
parameters and the dropout masks drawn are the same either way.

Initial weights: :func:`build_net` with a ``generator`` draws them from it (:func:`init_weights`:
torch's default distributions), so the same seed gives the same network whatever else used torch's
global generator before; without one they come from torch's global generator.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from biosim.errors import BiosimError, checked, unknown

__all__ = ["NetSpec", "SpikingNet", "build_net", "build_from_params", "count_params", "fusable", "init_weights",
           "POOLS",
           "param", "param_table", "param_ints"]

#: net.pool -> the pooling module of a convolutional stage
POOLS = {"max": torch.nn.MaxPool2d, "avg": torch.nn.AvgPool2d}


@dataclass(frozen=True, kw_only=True)
class NetSpec:
    """Shape of a spiking network (what :func:`build_net` builds).

    Attributes
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one input.
    n_classes : int
        Number of outputs.
    conv_channels : tuple of int
        Output channels of each convolutional stage (empty: fully connected only).
    kernel_size : int
        Odd convolution kernel size (padding keeps the size; each stage then pools by 2).
    pool : {"max", "avg"}
        Pooling of the convolutional stages: ``MaxPool2d(2)`` or ``AvgPool2d(2)`` (NIR can express
        only the average, so only "avg" nets export).
    hidden : tuple of int
        Sizes of the fully connected hidden LIF layers.
    dropout : float
        Dropout probability on hidden spikes, in [0, 1).
    weight_scale : float
        Factor applied to torch's default initial weights and biases of every synapse (> 0);
        spike inputs (Poisson, latency) usually need more than 1 to make the first layer fire.
    fused : bool
        Run the LIF layers that :func:`fusable` accepts with the fused time loop (same spikes).
    """

    input_shape: tuple[int, int, int]
    n_classes: int
    conv_channels: tuple[int, ...] = ()
    kernel_size: int = 5
    hidden: tuple[int, ...] = (1000,)
    dropout: float = 0.0
    weight_scale: float = 1.0
    pool: str = "max"
    fused: bool = True

    def __post_init__(self):
        if self.pool not in POOLS:
            raise unknown("net.pool", self.pool, POOLS)
        if any(c < 1 for c in self.conv_channels) or any(h < 1 for h in self.hidden):
            raise BiosimError(f"layer sizes must be >= 1 (conv_channels={list(self.conv_channels)}, "
                              f"hidden={list(self.hidden)})")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise BiosimError(f"net.kernel_size = {self.kernel_size} must be an odd number >= 1")
        if not self.weight_scale > 0:
            raise BiosimError(f"net.weight_scale = {self.weight_scale} is out of range (must be > 0)")
        if not 0.0 <= self.dropout < 1.0:
            raise BiosimError(f"net.dropout = {self.dropout} is out of range (must be in [0, 1))")
        _, h, w = self.input_shape
        if min(h, w) >> len(self.conv_channels) < 1:
            raise BiosimError(f"{len(self.conv_channels)} convolutional stages (each halving the size) "
                              f"do not fit a {h}x{w} input")


class SpikingNet(torch.nn.Module):
    """Stages of (synapse, neuron) run over time; see the module docstring.

    Parameters
    ----------
    synapses : sequence of torch.nn.Module
        One per stage, the last one mapping to the classes.
    neurons : sequence of torch.nn.Module
        Neuron layer of each stage (``initial_state(x)`` and ``forward(x, state) -> (out, state)``);
        the last one is the read-out (spiking or not).
    dropout : float
        Dropout on the spikes of every hidden stage.
    fused : bool
        Run the neuron layers that :func:`fusable` accepts with
        :func:`biosim.learn.fused.lif_sequence` (the same spikes; False: the step loop).
    """

    def __init__(self, synapses: Sequence[torch.nn.Module], neurons: Sequence[torch.nn.Module],
                 dropout: float = 0.0, fused: bool = True):
        super().__init__()
        if len(synapses) != len(neurons) or not synapses:
            raise ValueError("one neuron layer per synapse, at least one stage")
        self.synapses = torch.nn.ModuleList(synapses)
        self.neurons = torch.nn.ModuleList(neurons)
        self.dropout = float(dropout)
        self.fused = bool(fused)

    def fused_stages(self) -> list[bool]:
        """Which stages' neuron layers run fused (all False with ``fused=False``)."""
        return [self.fused and fusable(m) for m in self.neurons]

    def forward(self, x_seq: torch.Tensor, record: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Run the network over the ``T`` steps of ``x_seq`` ``(T, batch, *input)``.

        Parameters
        ----------
        x_seq : torch.Tensor
            Input sequence, time first.
        record : callable, optional
            Called as ``record(stage, spikes)`` with every hidden stage's spikes at every step
            (for spike counts and rasters).

        Returns
        -------
        torch.Tensor
            Output-layer sequence ``(T, batch, classes)``.
        """
        steps = x_seq.shape[0]
        static = steps > 1 and x_seq.stride(0) == 0
        fused = self.fused_stages()
        if any(fused):
            return self._forward_stages(x_seq, static, fused, record)
        n = len(self.synapses)
        states: list = [None] * n
        masks: list = [None] * n
        first = self.synapses[0](x_seq[0]) if static else None
        outs = []
        for t in range(steps):
            h = first if static else self.synapses[0](x_seq[t])
            for k in range(n):
                if k:
                    h = self.synapses[k](h)
                if states[k] is None:
                    states[k] = self.neurons[k].initial_state(h)
                h, states[k] = self.neurons[k](h, states[k])
                if k < n - 1:
                    if record is not None:
                        record(k, h)
                    if self.dropout and self.training:
                        if masks[k] is None:
                            keep = 1.0 - self.dropout
                            masks[k] = torch.bernoulli(torch.full_like(h, keep)) / keep
                        h = h * masks[k]
            outs.append(h)
        return torch.stack(outs)

    def _forward_stages(self, x_seq: torch.Tensor, static: bool, fused: list[bool],
                        record: Callable[[int, torch.Tensor], None] | None) -> torch.Tensor:
        """:meth:`forward` stage by stage (all steps of a stage, then the next stage): the same
        operations on the same values as the step loop, fused LIF layers as one node each."""
        from biosim.learn.fused import lif_sequence

        steps = x_seq.shape[0]
        n = len(self.synapses)
        h_seq = x_seq
        for k in range(n):
            syn, neuron = self.synapses[k], self.neurons[k]
            # the synapse on one step at a time, as in the step loop (the same rounding)
            if k == 0 and static:
                cur, held = syn(x_seq[0]), True
            else:
                cur, held = torch.stack([syn(h_seq[t]) for t in range(steps)]), False
            if fused[k]:
                h_seq = lif_sequence(cur, neuron.params, steps if held else None, membrane=False).z
            else:
                state, outs = None, []
                for t in range(steps):
                    h = cur if held else cur[t]
                    if state is None:
                        state = neuron.initial_state(h)
                    h, state = neuron(h, state)
                    outs.append(h)
                h_seq = torch.stack(outs)
            if k < n - 1:
                if record is not None:
                    for t in range(steps):
                        record(k, h_seq[t])
                if self.dropout and self.training:
                    keep = 1.0 - self.dropout
                    h_seq = h_seq * (torch.bernoulli(torch.full_like(h_seq[0], keep)) / keep)
        return h_seq


def fusable(neuron: torch.nn.Module) -> bool:
    """Whether :func:`biosim.learn.fused.lif_sequence` computes what ``neuron`` computes: a plain
    :class:`~biosim.learn.layers.LIF` layer with plain :class:`~biosim.learn.layers.LIFParams`,
    ``integration="exact"`` and a reset the fused kernels implement (they take every surrogate)."""
    from biosim.learn.layers import LIF, LIFParams

    if type(neuron) is not LIF:
        return False
    p = neuron.params
    return type(p) is LIFParams and p.integration == "exact" and p.reset in ("subtract", "zero")


def _stage_sizes(spec: NetSpec):
    c, h, w = spec.input_shape
    for ch in spec.conv_channels:
        yield "conv", c, ch, (ch, h // 2, w // 2)
        c, h, w = ch, h // 2, w // 2
    features = c * h * w
    for size in (*spec.hidden, spec.n_classes):
        yield "fc", features, size, (size,)
        features = size


def build_net(spec: NetSpec, make_neuron: Callable[[int | None], torch.nn.Module],
              make_readout: Callable[[], torch.nn.Module], generator: torch.Generator | None = None) -> SpikingNet:
    """Build the :class:`SpikingNet` of ``spec``.

    Parameters
    ----------
    spec : NetSpec
        Layer sizes.
    make_neuron : callable
        ``make_neuron(n)`` returns a hidden neuron layer; ``n`` is the layer's size for a fully
        connected stage and None after a convolution.
    make_readout : callable
        Returns the output neuron layer.
    generator : torch.Generator, optional
        Source of every initial weight (:func:`init_weights`); without one, torch's global
        generator (seed it first).

    Returns
    -------
    SpikingNet
        Weights initialised with torch's default distributions, the synapses' times
        ``spec.weight_scale``.
    """
    if generator is None:
        net = _build_stages(spec, make_neuron, make_readout)
    else:
        with torch.random.fork_rng(devices=[]):  # the constructors' own draws leave no trace
            net = _build_stages(spec, make_neuron, make_readout)
        init_weights(net, generator)
    if spec.weight_scale != 1.0:
        with torch.no_grad():
            for syn in net.synapses:
                for p in syn.parameters():
                    p.mul_(spec.weight_scale)
    return net


def _build_stages(spec: NetSpec, make_neuron, make_readout) -> SpikingNet:
    synapses, neurons = [], []
    stages = list(_stage_sizes(spec))
    flatten_next = bool(spec.conv_channels)
    for k, (kind, n_in, n_out, _shape) in enumerate(stages):
        last = k == len(stages) - 1
        if kind == "conv":
            pad = spec.kernel_size // 2
            synapses.append(torch.nn.Sequential(torch.nn.Conv2d(n_in, n_out, spec.kernel_size, padding=pad),
                                                POOLS[spec.pool](2)))
            neurons.append(make_neuron(None))
            continue
        linear = torch.nn.Linear(n_in, n_out)
        if flatten_next or k == 0:
            synapses.append(torch.nn.Sequential(torch.nn.Flatten(), linear))
            flatten_next = False
        else:
            synapses.append(linear)
        neurons.append(make_readout() if last else make_neuron(n_out))
    return SpikingNet(synapses, neurons, dropout=spec.dropout, fused=spec.fused)


def count_params(net: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def init_weights(module: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Draw every random initial weight of ``module`` again from ``generator``, with the
    distributions torch's own constructors use, module by module in the order of
    ``module.modules()``; returns ``module``.

    - ``Linear`` and convolutions: the weight from ``kaiming_uniform_(a=sqrt(5))`` (uniform in
      ``±1/sqrt(fan_in)``), the bias uniform in ``±1/sqrt(fan_in)``;
    - recurrent cells and layers (``GRUCell``, ``LSTMCell``, ``GRU``...): every parameter uniform
      in ``±1/sqrt(hidden_size)``;
    - a module with a ``recurrent_weight`` (:class:`biosim.learn.layers.RecurrentLIF`): its own
      ``reset_parameters(generator)``; without one, uniform in ``±init_scale/sqrt(n)`` with a zero
      diagonal unless ``autapses``.

    Other parameters (neuron constants, normalisation layers) are not random and stay as they are.
    A generator seeded with ``s`` gives the weights that ``torch.manual_seed(s)`` followed by
    building the same modules gives, wherever a network draws nothing between its modules.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
                torch.nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    fan_in = m.weight[0].numel()
                    bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
                    torch.nn.init.uniform_(m.bias, -bound, bound, generator=generator)
            elif isinstance(m, (torch.nn.RNNCellBase, torch.nn.RNNBase)):
                bound = 1.0 / math.sqrt(m.hidden_size) if m.hidden_size > 0 else 0.0
                for p in m.parameters():
                    torch.nn.init.uniform_(p, -bound, bound, generator=generator)
            elif isinstance(getattr(m, "recurrent_weight", None), torch.nn.Parameter):
                reset = getattr(m, "reset_parameters", None)
                if reset is not None and "generator" in inspect.signature(reset).parameters:
                    reset(generator)
                else:
                    w = m.recurrent_weight
                    bound = float(getattr(m, "init_scale", 0.5)) / math.sqrt(w.shape[0])
                    w.uniform_(-bound, bound, generator=generator)
                    if not getattr(m, "autapses", False):
                        w.fill_diagonal_(0.0)
    return module


# ----------------------------------------------------------------------------- from a run's [params]
# The spiking network of a run's configuration. It lives here, below the experiments and the
# bridge, so that both build it (the train runner to train it, the NIR bridge to load a trained
# run) without the bridge importing the experiments.

_NEURON_KEYS = {
    "lif": ("tau_mem_ms", "v_th", "v_reset", "reset", "detach_reset", "dt_ms", "integration"),
}
_NEURON_KEYS["rlif"] = _NEURON_KEYS["lif"]
_NEURON_KEYS["cuba"] = _NEURON_KEYS["lif"] + ("tau_syn_ms",)
_NEURON_KEYS["alif"] = _NEURON_KEYS["lif"] + ("tau_adapt_ms", "beta_adapt")
_KINDS = {"tau_mem_ms": float, "v_th": float, "v_reset": float, "reset": str, "detach_reset": bool,
          "dt_ms": float, "integration": str, "tau_syn_ms": float, "tau_adapt_ms": float, "beta_adapt": float}


class _Table(dict):
    """A ``[params.NAME]`` sub-table whose values :func:`param` reports as ``NAME.key``."""

    name = ""


def param_table(params: Mapping, name: str) -> dict:
    """The sub-table ``[params.NAME]`` of a run's parameters (one-line error when it is missing)."""
    table = params.get(name)
    if not isinstance(table, dict):
        raise BiosimError(f"the run's parameters have no [params.{name}] table")
    out = _Table(table)
    out.name = name
    return out


def param(table: Mapping, key: str, kind=float, low: float | None = None, high: float | None = None,
          positive: bool = False, choices=None):
    """``table[key]`` converted to ``kind`` and checked against the bounds given; errors name the
    value by its dotted key (``learn.lr``) when ``table`` comes from :func:`param_table`."""
    name = f"{table.name}.{key}" if getattr(table, "name", "") else key
    if key not in table:
        raise BiosimError(f"the run's parameters have no '{name}'")
    return checked(name, table[key], kind, low, high, positive, choices)


def param_ints(table: Mapping, key: str, prefix: str) -> tuple[int, ...]:
    """``table[key]`` as a tuple of integers >= 1 (layer sizes)."""
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                              for v in value):
        raise BiosimError(f"{prefix}.{key} = {value!r} must be a list of integers >= 1, e.g. [1000] (or [])")
    return tuple(value)


def _sequence(x: torch.Tensor, gain: float) -> torch.Tensor:
    """A 1-D signal stored as an image ``(B, 1, H, W)`` as the sequence ``(W, B, 1, 1, H)``: step
    ``t`` receives column ``t`` as the current ``gain * (2 x - 1)`` (as
    :func:`biosim.bridge.ann.sequence_encoder`)."""
    b, c, h, w = x.shape
    return (gain * (2.0 * x - 1.0)).permute(3, 0, 1, 2).reshape(w, b, c, 1, h)


def build_from_params(params: Mapping, input_shape: tuple[int, int, int], n_classes: int,
                      generator: torch.Generator | None = None):
    """The spiking network of a run's ``[params]``, its encoder function, read-out and a description.

    ``[params]`` holds the tables ``encoder``, ``net``, ``neuron``, ``surrogate``, ``readout`` and
    ``learn`` (see ``models/lif_mnist.toml``). The initial weights are drawn from ``generator``
    (:func:`init_weights`), or without one from torch's global generator (seed it first). The
    non-spiking baselines (``net.kind`` other than ``snn``) are built by
    :func:`biosim.experiments.train_runner.build_from_params`.

    Returns
    -------
    (SpikingNet, callable, Readout, dict)
        The network, ``encode(x) -> (T, B, ...)``, the read-out and facts for the metrics
        (``steps``, ``dt_ms``, ``backend``, ``notes``).
    """
    from biosim.learn import encoders
    from biosim.learn.layers import LI, NEURONS, LIParams, make_neuron
    from biosim.learn.readouts import READOUTS, Readout
    from biosim.learn.surrogate import SURROGATES, Surrogate

    enc, net, neuron = param_table(params, "encoder"), param_table(params, "net"), param_table(params, "neuron")
    sur, ro, learn = param_table(params, "surrogate"), param_table(params, "readout"), param_table(params, "learn")
    if net.get("kind", "snn") != "snn":
        raise BiosimError(f"net.kind = {net['kind']!r} is not a spiking network (snn)")
    backend = param(learn, "backend", str, choices=("biosim", "norse"))
    kind = param(enc, "kind", str, choices=(*encoders.ENCODERS, "sequence"))
    steps = param(enc, "steps", int, low=1, high=10000)
    if kind == "sequence":  # a 1-D signal (1, 1, L): one sample per step, L steps
        input_shape, steps = (input_shape[0], 1, input_shape[1]), input_shape[2]
    gain = param(enc, "gain", low=0)
    if kind == "poisson" and gain > 1:
        raise BiosimError(f"encoder.gain = {gain} is a spike probability per step with encoder.kind=poisson "
                          "(must be in [0, 1])")

    neuron_kind = param(net, "neuron", str, choices=NEURONS)
    surrogate = Surrogate(kind=param(sur, "kind", str, choices=SURROGATES), alpha=param(sur, "alpha", positive=True))
    nparams = {k: param(neuron, k, _KINDS[k]) for k in _NEURON_KEYS[neuron_kind]}
    for key in ("tau_mem_ms", "dt_ms", "tau_syn_ms", "tau_adapt_ms"):
        if key in nparams and nparams[key] <= 0:
            raise BiosimError(f"neuron.{key} = {nparams[key]!r} is out of range (must be > 0)")
    readout = Readout(kind=param(ro, "kind", str, choices=READOUTS),
                      label_smoothing=param(ro, "label_smoothing", low=0, high=0.99))
    li = LIParams(tau_mem_ms=param(ro, "tau_mem_ms", positive=True), tau_syn_ms=param(ro, "tau_syn_ms", low=0),
                  dt_ms=nparams["dt_ms"], integration=nparams["integration"])
    spec = NetSpec(input_shape=input_shape, n_classes=n_classes, conv_channels=param_ints(net, "conv_channels", "net"),
                   kernel_size=param(net, "kernel_size", int, low=1), hidden=param_ints(net, "hidden", "net"),
                   dropout=param(net, "dropout", low=0, high=0.99),
                   weight_scale=param(net, "weight_scale", positive=True),
                   pool=param(net, "pool", str) if "pool" in net else "max",
                   fused=param(learn, "fused", bool) if "fused" in learn else True)
    out_kind = neuron_kind if neuron_kind in ("lif", "cuba") else "lif"
    out_params = {k: v for k, v in nparams.items() if k in _NEURON_KEYS[out_kind]}
    notes = []
    if backend == "norse":
        from biosim.learn.norse_backend import norse_neuron, norse_readout

        hidden_p = NEURONS[neuron_kind][1](surrogate=surrogate, **nparams)
        out_p = NEURONS[out_kind][1](surrogate=surrogate, **out_params)

        def mk_neuron(n):
            return norse_neuron(neuron_kind, hidden_p)

        def mk_readout():
            return norse_neuron(out_kind, out_p) if readout.spiking else norse_readout(li)

        if surrogate.kind == "fast_sigmoid" and surrogate.alpha != 1.0:
            notes.append(f"norse 1.1.0's SuperSpike ignores alpha={surrogate.alpha:g} (its gradient is 1/(|x|+1)^2)")
        if nparams["detach_reset"]:
            notes.append("norse does not detach the reset from the gradient")
    else:
        def mk_neuron(n):
            return make_neuron(neuron_kind, n, surrogate=surrogate, **nparams)

        def mk_readout():
            return make_neuron(out_kind, None, surrogate=surrogate, **out_params) if readout.spiking else LI(li)

    model = build_net(spec, mk_neuron, mk_readout, generator)

    def encode(x):
        if kind == "sequence":
            return _sequence(x, gain)
        return encoders.encode(kind, x, steps, gain)

    facts = {"steps": steps, "dt_ms": nparams["dt_ms"], "backend": backend, "encoder": kind,
             "neuron": neuron_kind, "readout": readout.kind, "notes": notes, "model_kind": "snn"}
    return model, encode, readout, facts
