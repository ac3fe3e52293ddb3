"""Neuron models: parameter dataclasses and the registry the engine dispatches on."""

from biosim.errors import unknown
from biosim.neurons.adex import ADEX_SPEC, AdEx
from biosim.neurons.base import ModelSpec
from biosim.neurons.hh import HH, HH_SPEC
from biosim.neurons.izhikevich import IZHIKEVICH_SPEC, Izhikevich
from biosim.neurons.lif import COND_LIF_SPEC, LIF, LIF_SPEC, CondLIF

__all__ = ["LIF", "CondLIF", "AdEx", "Izhikevich", "HH", "MODELS", "ModelSpec", "spec_for", "model_by_name"]

#: Every model, by registry name. The kernels dispatch on ``ModelSpec.model_id``.
MODELS: dict[str, ModelSpec] = {
    s.name: s for s in (LIF_SPEC, COND_LIF_SPEC, ADEX_SPEC, IZHIKEVICH_SPEC, HH_SPEC)
}
if len({s.model_id for s in MODELS.values()}) != len(MODELS):  # pragma: no cover
    raise RuntimeError("neuron model ids must be unique")


def spec_for(params) -> ModelSpec:
    """The :class:`ModelSpec` whose parameter class ``params`` is an instance of."""
    for spec in MODELS.values():
        if type(params) is spec.params_cls:
            return spec
    raise TypeError(f"{type(params).__name__} is not a neuron parameter class")


def model_by_name(name: str) -> ModelSpec:
    """Look a model up by registry name, with the closest valid name in the error."""
    if name not in MODELS:
        raise unknown("neuron model", name, MODELS)
    return MODELS[name]
