"""biosim: spiking, biologically inspired neural networks.

The public API is what this module re-exports; everything else is internal. The names are
imported on first use (PEP 562 ``__getattr__``), so ``import biosim`` itself is cheap: the
``biosim`` command's launcher (:mod:`biosim.launch`) runs inside the package and reaches a
resident worker without importing NumPy or Numba. ``from biosim import Network`` and
``biosim.Network`` import what they name, as before.
"""

import contextlib
import gc
import importlib

__version__ = "0.1.0"

__all__ = [
    "Network", "Result", "AllToAll", "OneToOne", "FixedProbability", "Explicit",
    "LIF", "CondLIF", "AdEx", "Izhikevich", "HH", "STDP", "Model", "SynapseModel",
    "BiosimError", "SimulationError", "__version__",
]

#: public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(("Model", "SynapseModel"), "biosim.equations"),
    **dict.fromkeys(("BiosimError", "SimulationError"), "biosim.errors"),
    **dict.fromkeys(("AllToAll", "Explicit", "FixedProbability", "Network", "OneToOne", "Result"), "biosim.network"),
    **dict.fromkeys(("HH", "LIF", "AdEx", "CondLIF", "Izhikevich"), "biosim.neurons"),
    "STDP": "biosim.synapses",
}


def import_paused_gc(name: str):
    """``importlib.import_module(name)`` with the cyclic garbage collector off meanwhile.

    Importing the engine (NumPy, Numba and biosim's models) makes tens of thousands of objects
    that live as long as the process; the collector would scan them again and again while they
    are made. It is off during the import and back as it was afterwards (a cycle made meanwhile
    is collected at the next collection). The lazy API (``biosim.Network``...) imports this way;
    the ``biosim`` command's launcher (:mod:`biosim.launch`) also freezes what its imports made.
    """
    with _gc_paused():
        return importlib.import_module(name)


@contextlib.contextmanager
def _gc_paused():
    """The cyclic garbage collector off inside, back as it was afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:  # a subpackage or module (biosim.neurons.register_model, ...), as before the lazy API
        try:
            return import_paused_gc(f"biosim.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"biosim.{name}":
                raise
        raise AttributeError(f"module 'biosim' has no attribute {name!r}")
    with _gc_paused():  # the getattr too: biosim.neurons imports a model's module when it is named
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
