"""biosim: spiking, biologically inspired neural networks.

The public API is what this module re-exports; everything else is internal.
"""

import gc

# Importing the package (NumPy, Numba and biosim's models) makes tens of thousands of objects that
# live as long as the process; the cyclic garbage collector would scan them again and again while
# they are made. It is off during the import and back as it was afterwards (a cycle made meanwhile
# is collected at the next collection): about 0.02 s less of a warm `biosim run cuba` start, 0.08 s
# with the gc.freeze of biosim.cli.main (`biosim bench start` measures the start).
_GC_WAS_ENABLED = gc.isenabled()
gc.disable()
try:
    from biosim.equations import Model, SynapseModel
    from biosim.errors import BiosimError, SimulationError
    from biosim.network import AllToAll, Explicit, FixedProbability, Network, OneToOne, Result
    from biosim.neurons import HH, LIF, AdEx, CondLIF, Izhikevich
    from biosim.synapses import STDP
finally:
    if _GC_WAS_ENABLED:
        gc.enable()

__version__ = "0.1.0"

__all__ = [
    "Network", "Result", "AllToAll", "OneToOne", "FixedProbability", "Explicit",
    "LIF", "CondLIF", "AdEx", "Izhikevich", "HH", "STDP", "Model", "SynapseModel",
    "BiosimError", "SimulationError", "__version__",
]
