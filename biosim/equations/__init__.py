"""Models written as equations (Brian2's syntax), compiled into the engine like the built-ins.

:meth:`Model.from_equations` parses and checks the equations (sympy; units checked), chooses an
integration method per variable (:mod:`biosim.equations.methods`), and generates the model's
scalar ``step``/``threshold``/``reset`` functions (:mod:`biosim.equations.codegen`), cached on
disk keyed by the model's text. :meth:`SynapseModel.from_equations` does the same for synapses
with their own variables and ``on_pre``/``on_post`` statements (plasticity rules as text).
"""

from biosim.equations.model import Model
from biosim.equations.synapses import SynapseModel

__all__ = ["Model", "SynapseModel"]
