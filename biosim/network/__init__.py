"""Networks: populations, inputs, connectivity, monitors, and the run driver."""

from biosim.network.connect import AllToAll, Explicit, FixedProbability, OneToOne
from biosim.network.network import Network
from biosim.network.simulate import Result

__all__ = ["Network", "Result", "AllToAll", "OneToOne", "FixedProbability", "Explicit"]
