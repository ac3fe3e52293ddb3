"""The pieces a :class:`~biosim.network.Network` is made of. Plain records; the network checks
them when they are added and turns them into a :class:`~biosim.backends.plan.Plan`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from biosim.neurons.base import ModelSpec

__all__ = ["Population", "InputGroup", "Projection", "PoissonInput", "Current", "StateProbe"]


@dataclass(eq=False)
class Population:
    """``n`` neurons of one model. ``init`` maps variable -> scalar, array or ``f(rng, n)``."""

    name: str
    params: Any
    spec: ModelSpec
    n: int
    init: dict = field(default_factory=dict)
    record_spikes: bool = True
    index: int = -1


@dataclass(eq=False)
class InputGroup:
    """Spike sources: Poisson (``rates_hz``) or a spike generator (``indices``, ``times_ms``)."""

    name: str
    kind: str
    n: int
    rates_hz: np.ndarray | None = None
    indices: np.ndarray | None = None
    times_ms: np.ndarray | None = None
    index: int = -1


@dataclass(eq=False)
class Projection:
    """Synapses from a source group to a population, adding ``weight`` to ``var`` per spike."""

    src: Population | InputGroup
    tgt: Population
    var: str
    rule: Any
    weight: Any
    delay_ms: Any
    stdp: Any = None
    synapse: Any = None      # parameters of a synapse model (biosim.equations.SynapseModel)
    syn_spec: Any = None     # that model bound to the source and target models
    syn_init: dict = field(default_factory=dict)
    i: np.ndarray | None = None
    j: np.ndarray | None = None
    w: np.ndarray | None = None
    delay_steps: np.ndarray | None = None


@dataclass(eq=False)
class PoissonInput:
    """``n_sources`` independent Poisson sources per target neuron (Brian2's ``PoissonInput``)."""

    tgt: Population
    var: str
    n_sources: int
    rate_hz: float
    weight: float


@dataclass(eq=False)
class Current:
    """An external input ``amplitude`` (model's current unit) on during ``[start_ms, stop_ms)``."""

    tgt: Population
    amplitude: Any
    start_ms: float
    stop_ms: float


@dataclass(eq=False)
class StateProbe:
    """Record ``var`` of neurons ``indices`` of ``pop`` every ``every`` steps."""

    pop: Population
    var: str
    indices: np.ndarray
    every: int
