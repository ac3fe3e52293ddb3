"""Neuron models: parameter dataclasses and the registry the engine finds them in.

:data:`MODELS` holds the built-in models; :func:`register_model` adds a user's model (for example
one generated from equations). The engine needs nothing else: the compiled kernel is generated
for the models a network uses (see :func:`biosim.backends.numba_cpu.kernel`).
"""

from biosim.errors import BiosimError, unknown
from biosim.neurons.adex import ADEX_SPEC, AdEx
from biosim.neurons.base import ModelSpec
from biosim.neurons.hh import HH, HH_SPEC
from biosim.neurons.izhikevich import IZHIKEVICH_SPEC, Izhikevich
from biosim.neurons.layer import LAYER_LIF_SPEC, LayerLIF
from biosim.neurons.lif import COND_LIF_SPEC, LIF, LIF_SPEC, CondLIF

__all__ = [
    "HH", "LIF", "MODELS", "AdEx", "CondLIF", "Izhikevich", "LayerLIF", "ModelSpec", "model_by_name", "register_model", "spec_for",
]

#: The built-in models, by registry name.
MODELS: dict[str, ModelSpec] = {
    s.name: s for s in (LIF_SPEC, COND_LIF_SPEC, ADEX_SPEC, IZHIKEVICH_SPEC, HH_SPEC, LAYER_LIF_SPEC)
}

#: Models added by :func:`register_model`, by name.
_REGISTERED: dict[str, ModelSpec] = {}


def _all_models() -> dict[str, ModelSpec]:
    return {**MODELS, **_REGISTERED}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Make a user's model known to :func:`spec_for` and :func:`model_by_name`; returns ``spec``.

    Registering a name again replaces the earlier model of that name. A name or a parameter class
    that belongs to a built-in model (or, for the class, to another registered model) is refused
    with a :class:`~biosim.errors.BiosimError`.
    """
    if not isinstance(spec, ModelSpec):
        raise BiosimError(f"register_model expects a ModelSpec, got {type(spec).__name__}")
    if spec.name in MODELS:
        raise BiosimError(f"neuron model name '{spec.name}' is taken by a built-in model; choose another name "
                          f"(built-in: {', '.join(sorted(MODELS))})")
    for other in _all_models().values():
        if other.params_cls is spec.params_cls and other.name != spec.name:
            raise BiosimError(f"parameter class {spec.params_cls.__name__} already belongs to neuron model "
                              f"'{other.name}'; each model needs its own parameter class")
    _REGISTERED[spec.name] = spec
    return spec


def spec_for(params) -> ModelSpec:
    """The :class:`ModelSpec` (built-in or registered) whose parameter class is exactly ``type(params)``
    (a parameter class may name its spec itself, as ``_biosim_spec``: models written as equations do,
    so their parameters stay usable when a later model takes the same name)."""
    own = getattr(type(params), "_biosim_spec", None)
    if isinstance(own, ModelSpec) and own.params_cls is type(params):
        return own
    for spec in _all_models().values():
        if type(params) is spec.params_cls:
            return spec
    known = ", ".join(sorted(s.params_cls.__name__ for s in _all_models().values()))
    raise BiosimError(f"{type(params).__name__} is not the parameter class of a known neuron model "
                      f"(known: {known}; add a model with biosim.neurons.register_model)")


def model_by_name(name: str) -> ModelSpec:
    """Look a model (built-in or registered) up by name, with the closest valid name in the error."""
    models = _all_models()
    if name not in models:
        raise unknown("neuron model", name, models)
    return models[name]
