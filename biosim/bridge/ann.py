r"""Non-spiking baselines (MLP, CNN, GRU, LSTM) shaped like the spiking networks they are compared with.

Every baseline takes the same input as a :class:`biosim.learn.network.SpikingNet`, a sequence
``x_seq`` of shape ``(T, batch, *input)`` (time first), and returns ``(1, batch, classes)`` class
scores, so :func:`biosim.learn.train.fit`, :func:`biosim.learn.readouts.readout_loss` (with the
``mean_membrane`` read-out: the scores themselves for ``T = 1``) and the metrics of
:mod:`biosim.bridge.metrics` treat both kinds alike.

=======  ====================================================================  ==================
kind     layers                                                                mirrors
=======  ====================================================================  ==================
mlp      flatten, [Linear, ReLU, dropout] per hidden size, Linear              784-1000-10 LIF
cnn      [Conv k x k (same padding), max-pool 2, ReLU] per channel count,       conv_lif_mnist
         flatten, [Linear, ReLU, dropout] per hidden size, Linear
gru      GRUCell over the ``T`` steps (one per hidden size, stacked), Linear   lif_mnist1d
         on the last step's hidden state
lstm     LSTMCell, otherwise as gru
=======  ====================================================================  ==================

Static inputs (images) are given with ``T = 1`` (:func:`image_encoder`); the first step is used.
``forward(x_seq, record=None)`` calls ``record(stage, activation)`` with each hidden layer's output
(ReLU activations, or the recurrent hidden state at every step), as the spiking network does with
its spikes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from biosim.errors import BiosimError, unknown
from biosim.learn.network import init_weights

__all__ = ["ANN_KINDS", "MLP", "CNN", "RecurrentNet", "build_ann", "image_encoder", "sequence_encoder"]

#: baseline kind -> one-line description
ANN_KINDS = {
    "mlp": "fully connected ReLU network",
    "cnn": "convolutional ReLU network (conv, max-pool 2, ReLU stages, then fully connected)",
    "gru": "GRU (GRUCell over time steps), linear read-out of the last hidden state",
    "lstm": "LSTM (LSTMCell over time steps), linear read-out of the last hidden state",
}


def image_encoder(x: torch.Tensor) -> torch.Tensor:
    """An image batch ``(B, C, H, W)`` as a one-step sequence ``(1, B, C, H, W)`` (no encoding)."""
    return x.unsqueeze(0)


def sequence_encoder(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """A 1-D signal stored as an image ``(B, 1, H, W)`` in [0, 1] as the sequence ``(W, B, 1, 1, H)``.

    Step ``t`` receives column ``t`` as the input current ``gain * (2 x - 1)`` (0.5 maps to 0).
    """
    b, c, h, w = x.shape
    return (gain * (2.0 * x - 1.0)).permute(3, 0, 1, 2).reshape(w, b, c, 1, h)


class MLP(torch.nn.Module):
    """Fully connected ReLU network: ``features -> hidden[0] -> ... -> n_classes``.

    Parameters
    ----------
    n_in : int
        Input features (the flattened input).
    hidden : sequence of int
        Hidden layer sizes.
    n_classes : int
        Outputs.
    dropout : float
        Dropout after every hidden ReLU, in [0, 1).
    """

    def __init__(self, n_in: int, hidden: Sequence[int], n_classes: int, dropout: float = 0.0):
        super().__init__()
        sizes = [n_in, *hidden, n_classes]
        self.flatten = torch.nn.Flatten()
        self.linears = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.relus = torch.nn.ModuleList(torch.nn.ReLU() for _ in hidden)
        self.drop = torch.nn.Dropout(dropout)

    def features(self, h: torch.Tensor, record=None, offset: int = 0) -> torch.Tensor:
        h = self.flatten(h)
        for k, linear in enumerate(self.linears):
            h = linear(h)
            if k < len(self.relus):
                h = self.relus[k](h)
                if record is not None:
                    record(offset + k, h)
                h = self.drop(h)
        return h

    def forward(self, x_seq: torch.Tensor, record: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Scores ``(1, B, classes)`` of the first step of ``x_seq`` ``(T, B, *input)``."""
        return self.features(x_seq[0], record).unsqueeze(0)


class CNN(torch.nn.Module):
    """Convolutional ReLU network with the stages of a convolutional :class:`SpikingNet`.

    ``[Conv2d(k, same padding), MaxPool2d(2), ReLU]`` per entry of ``conv_channels``, then an
    :class:`MLP` head on the flattened features.
    """

    def __init__(self, input_shape: tuple[int, int, int], conv_channels: Sequence[int], kernel_size: int,
                 hidden: Sequence[int], n_classes: int, dropout: float = 0.0):
        super().__init__()
        c, h, w = input_shape
        convs = []
        for ch in conv_channels:
            convs.append(torch.nn.Sequential(torch.nn.Conv2d(c, ch, kernel_size, padding=kernel_size // 2),
                                             torch.nn.MaxPool2d(2)))
            c, h, w = ch, h // 2, w // 2
        self.convs = torch.nn.ModuleList(convs)
        self.relus = torch.nn.ModuleList(torch.nn.ReLU() for _ in conv_channels)
        self.head = MLP(c * h * w, hidden, n_classes, dropout)

    def forward(self, x_seq: torch.Tensor, record: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Scores ``(1, B, classes)`` of the first step of ``x_seq`` ``(T, B, C, H, W)``."""
        h = x_seq[0]
        for k, (conv, relu) in enumerate(zip(self.convs, self.relus)):
            h = relu(conv(h))
            if record is not None:
                record(k, h)
        return self.head.features(h, record, offset=len(self.convs)).unsqueeze(0)


class RecurrentNet(torch.nn.Module):
    """Stacked GRU or LSTM cells run over the ``T`` steps; a linear read-out of the last hidden state.

    Parameters
    ----------
    cell : {"gru", "lstm"}
        Recurrent cell type (``torch.nn.GRUCell`` / ``torch.nn.LSTMCell``; cells, not the fused
        ``torch.nn.GRU``, so every step's operations can be counted).
    n_in : int
        Input features per step (the flattened step input).
    hidden : sequence of int
        Hidden sizes of the stacked cells.
    n_classes : int
        Outputs.
    dropout : float
        Dropout on the last hidden state before the read-out.
    """

    def __init__(self, cell: str, n_in: int, hidden: Sequence[int], n_classes: int, dropout: float = 0.0):
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise unknown("recurrent cell", cell, ("gru", "lstm"))
        if not hidden:
            raise BiosimError(f"net.hidden must name at least one recurrent layer for net.kind = {cell!r}")
        make = torch.nn.GRUCell if cell == "gru" else torch.nn.LSTMCell
        sizes = [n_in, *hidden]
        self.kind = cell
        self.cells = torch.nn.ModuleList(make(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.drop = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(sizes[-1], n_classes)

    def forward(self, x_seq: torch.Tensor, record: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Scores ``(1, B, classes)`` after the last of the ``T`` steps of ``x_seq`` ``(T, B, *input)``."""
        steps, batch = x_seq.shape[:2]
        states: list = [None] * len(self.cells)
        h = x_seq.new_zeros(batch, 0)
        for t in range(steps):
            h = x_seq[t].reshape(batch, -1)
            for k, cell in enumerate(self.cells):
                if states[k] is None:
                    zero = h.new_zeros(batch, cell.hidden_size)
                    states[k] = zero if self.kind == "gru" else (zero, zero)
                states[k] = cell(h, states[k])
                h = states[k] if self.kind == "gru" else states[k][0]
                if record is not None:
                    record(k, h)
        return self.out(self.drop(h)).unsqueeze(0)


def build_ann(kind: str, input_shape: tuple[int, ...], n_classes: int, *, hidden: Sequence[int] = (),
              conv_channels: Sequence[int] = (), kernel_size: int = 5, dropout: float = 0.0,
              generator: torch.Generator | None = None) -> torch.nn.Module:
    """Build the baseline ``kind`` (see :data:`ANN_KINDS`) for inputs of ``input_shape``.

    ``input_shape`` is one step's input: ``(C, H, W)`` for images, the step's features for
    sequences. The initial weights (torch's default distributions) are drawn from ``generator``
    (:func:`biosim.learn.network.init_weights`), or without one from torch's global generator
    (seed it first).
    """
    if kind not in ANN_KINDS:
        raise unknown("net.kind", kind, ("snn", *ANN_KINDS))
    if any(h < 1 for h in hidden) or any(c < 1 for c in conv_channels):
        raise BiosimError(f"layer sizes must be >= 1 (hidden={list(hidden)}, conv_channels={list(conv_channels)})")
    if not 0.0 <= dropout < 1.0:
        raise BiosimError(f"net.dropout = {dropout} is out of range (must be in [0, 1))")
    n_in = 1
    for s in input_shape:
        n_in *= int(s)
    if generator is None:
        return _build(kind, input_shape, n_in, n_classes, hidden, conv_channels, kernel_size, dropout)
    with torch.random.fork_rng(devices=[]):  # the constructors' own draws leave no trace
        model = _build(kind, input_shape, n_in, n_classes, hidden, conv_channels, kernel_size, dropout)
    return init_weights(model, generator)


def _build(kind, input_shape, n_in, n_classes, hidden, conv_channels, kernel_size, dropout) -> torch.nn.Module:
    if kind == "mlp":
        return MLP(n_in, hidden, n_classes, dropout)
    if kind == "cnn":
        if len(input_shape) != 3:
            raise BiosimError(f"net.kind = 'cnn' needs image input (C, H, W), got {tuple(input_shape)}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise BiosimError(f"net.kernel_size = {kernel_size} must be an odd number >= 1")
        if min(input_shape[1:]) >> len(conv_channels) < 1:
            raise BiosimError(f"{len(conv_channels)} convolutional stages do not fit a "
                              f"{input_shape[1]}x{input_shape[2]} input")
        return CNN(tuple(input_shape), conv_channels, kernel_size, hidden, n_classes, dropout)
    return RecurrentNet(kind, n_in, hidden, n_classes, dropout)
