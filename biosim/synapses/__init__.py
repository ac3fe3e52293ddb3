"""Synapse models: plasticity rules (static and exponential synapses live in the neuron models'
state variables and in :meth:`biosim.network.Network.connect`)."""

from biosim.synapses.stdp import STDP

__all__ = ["STDP"]
