"""biosim: spiking, biologically inspired neural networks.

The public API is what this module re-exports; everything else is internal.
"""

from biosim.equations import Model, SynapseModel
from biosim.errors import BiosimError, SimulationError
from biosim.network import AllToAll, Explicit, FixedProbability, Network, OneToOne, Result
from biosim.neurons import HH, LIF, AdEx, CondLIF, Izhikevich
from biosim.synapses import STDP

__version__ = "0.1.0"

__all__ = [
    "Network", "Result", "AllToAll", "OneToOne", "FixedProbability", "Explicit",
    "LIF", "CondLIF", "AdEx", "Izhikevich", "HH", "STDP", "Model", "SynapseModel",
    "BiosimError", "SimulationError", "__version__",
]
