"""What a synapse model with its own variables provides to the engine (see
:class:`biosim.equations.SynapseModel`, which generates one for each target model it is used with).

The scalar functions, Numba ``njit`` like the neuron models', run once per synapse and event::

    on_pre(S, k, X, i, j, c, gate, refractory, elapsed)   # a presynaptic spike arrives at synapse k
    on_post(S, k, X, i, j, c, gate, refractory, elapsed)  # the target of synapse k spiked

``S`` is the ``(n_vars, n_synapses)`` matrix of synapse variables, ``X`` the neurons' state
matrix, ``i``/``j`` the global indices of the source (``-1`` for an input group) and target
neurons, ``c`` the constants, ``gate`` the plan's "ignores input while refractory" mask,
``refractory`` whether the target is refractory now and ``elapsed`` the steps since the synapse's
last event (its event-driven variables are advanced over them first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["SynapseSpec"]


@dataclass(frozen=True)
class SynapseSpec:
    """A synapse model bound to the neuron models on both sides of a projection.

    Attributes
    ----------
    name : str
    params_cls : type
        The frozen parameter dataclass.
    var_names : tuple of str
        Per-synapse variables, in the row order of ``S``.
    constants : callable
        ``constants(params, dt_ms) -> np.ndarray``.
    on_pre, on_post : numba dispatchers
        The statements run at a presynaptic spike and at a postsynaptic spike (``on_post`` does
        nothing for a model without ``on_post`` statements; ``has_post`` says so).
    has_post : bool
    """

    name: str
    params_cls: type
    var_names: tuple[str, ...]
    constants: Callable[..., np.ndarray]
    on_pre: Callable
    on_post: Callable
    has_post: bool
