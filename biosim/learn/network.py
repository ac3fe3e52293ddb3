r"""Feed-forward and convolutional spiking networks built from a run's configuration.

A :class:`SpikingNet` is a stack of stages; each stage is a synapse (a ``torch.nn`` module:
``Conv2d`` then ``MaxPool2d`` for a convolutional stage, ``Linear`` for a fully connected one) and
a neuron layer from :mod:`biosim.learn.layers` driven by the synapse's output current::

    x_t --conv/pool--> LIF --conv/pool--> LIF --flatten/linear--> LIF ... --linear--> read-out
          (stage 0)           (stage 1)                (hidden)              LI or LIF

``forward(x_seq)`` runs the stack over time, ``x_seq`` of shape ``(T, batch, *input)``, and
returns the output layer's sequence ``(T, batch, classes)`` (membrane potentials of a leaky
integrator, or spikes). When ``x_seq`` is constant in time (an expanded view, as the direct-current
encoder returns), the first synapse is evaluated once instead of ``T`` times: same result, less
work. Dropout on hidden spikes uses one mask per sample for all time steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from biosim.errors import BiosimError

__all__ = ["NetSpec", "SpikingNet", "build_net", "count_params"]


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
        Odd convolution kernel size (padding keeps the size; each stage then max-pools by 2).
    hidden : tuple of int
        Sizes of the fully connected hidden LIF layers.
    dropout : float
        Dropout probability on hidden spikes, in [0, 1).
    weight_scale : float
        Factor applied to torch's default initial weights and biases of every synapse (> 0);
        spike inputs (Poisson, latency) usually need more than 1 to make the first layer fire.
    """

    input_shape: tuple[int, int, int]
    n_classes: int
    conv_channels: tuple[int, ...] = ()
    kernel_size: int = 5
    hidden: tuple[int, ...] = (1000,)
    dropout: float = 0.0
    weight_scale: float = 1.0

    def __post_init__(self):
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
    """

    def __init__(self, synapses: Sequence[torch.nn.Module], neurons: Sequence[torch.nn.Module],
                 dropout: float = 0.0):
        super().__init__()
        if len(synapses) != len(neurons) or not synapses:
            raise ValueError("one neuron layer per synapse, at least one stage")
        self.synapses = torch.nn.ModuleList(synapses)
        self.neurons = torch.nn.ModuleList(neurons)
        self.dropout = float(dropout)

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
              make_readout: Callable[[], torch.nn.Module]) -> SpikingNet:
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

    Returns
    -------
    SpikingNet
        Weights initialised by torch's defaults from torch's global generator (seed it first),
        times ``spec.weight_scale``.
    """
    synapses, neurons = [], []
    stages = list(_stage_sizes(spec))
    flatten_next = bool(spec.conv_channels)
    for k, (kind, n_in, n_out, _shape) in enumerate(stages):
        last = k == len(stages) - 1
        if kind == "conv":
            pad = spec.kernel_size // 2
            synapses.append(torch.nn.Sequential(torch.nn.Conv2d(n_in, n_out, spec.kernel_size, padding=pad),
                                                torch.nn.MaxPool2d(2)))
            neurons.append(make_neuron(None))
            continue
        linear = torch.nn.Linear(n_in, n_out)
        if flatten_next or k == 0:
            synapses.append(torch.nn.Sequential(torch.nn.Flatten(), linear))
            flatten_next = False
        else:
            synapses.append(linear)
        neurons.append(make_readout() if last else make_neuron(n_out))
    if spec.weight_scale != 1.0:
        with torch.no_grad():
            for syn in synapses:
                for p in syn.parameters():
                    p.mul_(spec.weight_scale)
    return SpikingNet(synapses, neurons, dropout=spec.dropout)


def count_params(net: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
