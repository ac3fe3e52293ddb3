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
    """Synapses from a source group to a population, adding ``weight`` to ``var`` per spike.

    ``i`` and ``j`` (int64 source and target of each synapse, in synapse order) are drawn arrays
    while the network is laid out; afterwards they are read from the plan's CSR block of the
    projection (:meth:`keep_in_plan`) on each access, so that the host keeps no per-synapse copy
    of them (16 bytes a synapse) beside the plan.
    """

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
    w: np.ndarray | None = None
    delay_steps: np.ndarray | None = None
    _i: np.ndarray | None = None
    _j: np.ndarray | None = None
    _csr: tuple | None = None  # (indptr block, tgt block, first target neuron) in the plan

    @property
    def i(self) -> np.ndarray | None:
        if self._csr is None:
            return self._i
        ptr = self._csr[0]
        return np.repeat(np.arange(len(ptr) - 1, dtype=np.int64), np.diff(ptr))

    @i.setter
    def i(self, value) -> None:
        self._i, self._csr = value, None

    @property
    def j(self) -> np.ndarray | None:
        if self._csr is None:
            return self._j
        return self._csr[1].astype(np.int64) - self._csr[2]

    @j.setter
    def j(self, value) -> None:
        self._j, self._csr = value, None

    @property
    def n_syn(self) -> int:
        """The number of synapses (0 before they are drawn)."""
        if self._csr is not None:
            return len(self._csr[1])
        return 0 if self._i is None else len(self._i)

    def keep_in_plan(self, indptr_block: np.ndarray, tgt_block: np.ndarray, tgt_offset: int) -> None:
        """Read ``i`` and ``j`` from now on from the plan's arrays (views of the projection's
        block: ``indptr`` relative to its first synapse, ``tgt`` global) and drop the drawn ones."""
        self._i = self._j = None
        self.delay_steps = None
        self._csr = (indptr_block - indptr_block[0], tgt_block, int(tgt_offset))


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
