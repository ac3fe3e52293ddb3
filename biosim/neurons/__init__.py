"""Neuron models: parameter dataclasses and the registry the engine finds them in.

:data:`MODELS` holds the built-in models; :func:`register_model` adds a user's model (for example
one generated from equations). The engine needs nothing else: the compiled kernel is generated
for the models a network uses (see :func:`biosim.backends.numba_cpu.kernel`).

A built-in model's module is imported when the model is first used (its class named, as in
``from biosim.neurons import HH``, or its spec looked up): a network of LIF neurons does not import
the other models' compiled functions (about 0.012 s of ``biosim run cuba``'s start).
"""

import importlib
import sys
from collections.abc import Iterator, Mapping

from biosim.errors import BiosimError, unknown
from biosim.neurons.base import ModelSpec

__all__ = [
    "HH", "LIF", "MODELS", "AdEx", "CondLIF", "Izhikevich", "LayerLIF", "ModelSpec", "model_by_name", "register_model", "spec_for",
]

#: where each built-in model is defined: registry name -> (module, the name of its ModelSpec there)
_BUILTIN_AT = {
    "lif": ("biosim.neurons.lif", "LIF_SPEC"), "cond_lif": ("biosim.neurons.lif", "COND_LIF_SPEC"),
    "adex": ("biosim.neurons.adex", "ADEX_SPEC"), "izhikevich": ("biosim.neurons.izhikevich", "IZHIKEVICH_SPEC"),
    "hh": ("biosim.neurons.hh", "HH_SPEC"), "layer_lif": ("biosim.neurons.layer", "LAYER_LIF_SPEC"),
}

#: the parameter classes this package exports, by the module that defines them
_CLASSES_AT = {"LIF": "biosim.neurons.lif", "CondLIF": "biosim.neurons.lif", "AdEx": "biosim.neurons.adex",
               "Izhikevich": "biosim.neurons.izhikevich", "HH": "biosim.neurons.hh", "LayerLIF": "biosim.neurons.layer"}


def __getattr__(name: str):
    """The parameter classes of :data:`__all__`, imported from their module when first named."""
    if name in _CLASSES_AT:
        return getattr(importlib.import_module(_CLASSES_AT[name]), name)
    raise AttributeError(f"module 'biosim.neurons' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _BuiltinModels(Mapping):
    """The built-in models' :class:`ModelSpec` by registry name (a read-only mapping); looking a model
    up imports its module."""

    def __getitem__(self, name: str) -> ModelSpec:
        module, spec = _BUILTIN_AT[name]
        return getattr(importlib.import_module(module), spec)

    def __contains__(self, name) -> bool:
        return name in _BUILTIN_AT

    def __iter__(self) -> Iterator[str]:
        return iter(_BUILTIN_AT)

    def __len__(self) -> int:
        return len(_BUILTIN_AT)

    def copy(self) -> dict[str, ModelSpec]:
        """Every built-in model, as a plain dict (as ``MODELS.copy()`` gave when it was one)."""
        return dict(self)

    def __or__(self, other):
        return {**self, **other} if isinstance(other, Mapping) else NotImplemented

    def __ror__(self, other):
        return {**other, **self} if isinstance(other, Mapping) else NotImplemented

    def __repr__(self) -> str:
        return f"<the built-in neuron models: {', '.join(_BUILTIN_AT)}>"

    def imported(self) -> dict[str, ModelSpec]:
        """The models whose module is imported already: every built-in model whose parameter class
        exists in this process."""
        return {name: self[name] for name, (module, _) in _BUILTIN_AT.items() if module in sys.modules}


#: The built-in models, by registry name.
MODELS: Mapping[str, ModelSpec] = _BuiltinModels()

#: Models added by :func:`register_model`, by name.
_REGISTERED: dict[str, ModelSpec] = {}


def _all_models() -> dict[str, ModelSpec]:
    return {**MODELS, **_REGISTERED}


def _models_with_classes() -> dict[str, ModelSpec]:
    """The models whose parameter class can exist in this process (imported built-ins, registered)."""
    return {**MODELS.imported(), **_REGISTERED}


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
    for other in _models_with_classes().values():
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
    for spec in _models_with_classes().values():
        if type(params) is spec.params_cls:
            return spec
    known = ", ".join(sorted(s.params_cls.__name__ for s in _all_models().values()))
    raise BiosimError(f"{type(params).__name__} is not the parameter class of a known neuron model "
                      f"(known: {known}; add a model with biosim.neurons.register_model)")


def model_by_name(name: str) -> ModelSpec:
    """Look a model (built-in or registered) up by name, with the closest valid name in the error."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in MODELS:
        raise unknown("neuron model", name, [*MODELS, *_REGISTERED])
    return MODELS[name]
