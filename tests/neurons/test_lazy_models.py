"""The built-in models' modules are imported when first used (:mod:`biosim.neurons`): a network of
LIF neurons does not import the other models' compiled functions, and every way of reaching a model
(its class, its spec by name, the registry mapping) still finds it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import biosim.neurons as neurons
from biosim.errors import BiosimError

_PROBE = """
import json, sys
import biosim.neurons as neurons
before = sorted(m for m in sys.modules if m.startswith("biosim.neurons."))
from biosim.neurons import LIF
spec = neurons.spec_for(LIF())
after_lif = sorted(m for m in sys.modules if m.startswith("biosim.neurons."))
hh = neurons.model_by_name("hh")
after_hh = sorted(m for m in sys.modules if m.startswith("biosim.neurons."))
print(json.dumps({"before": before, "after_lif": after_lif, "after_hh": after_hh, "spec": spec.name,
                  "hh": hh.params_cls.__name__}))
"""


def test_a_model_module_is_imported_when_the_model_is_first_used():
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"] == ["biosim.neurons.base"]
    assert out["after_lif"] == ["biosim.neurons.base", "biosim.neurons.lif"] and out["spec"] == "lif"
    assert "biosim.neurons.hh" in out["after_hh"] and "biosim.neurons.adex" not in out["after_hh"]
    assert out["hh"] == "HH"


def test_the_registry_mapping_and_the_classes_match():
    assert list(neurons.MODELS) == ["lif", "cond_lif", "adex", "izhikevich", "hh", "layer_lif"]
    assert len(neurons.MODELS) == 6 and "adex" in neurons.MODELS and "nope" not in neurons.MODELS
    for name, spec in neurons.MODELS.items():
        assert spec.name == name
        assert getattr(neurons, spec.params_cls.__name__) is spec.params_cls
        assert neurons.spec_for(spec.params_cls()) is spec is neurons.model_by_name(name)
    assert set(neurons.MODELS.imported()) == set(neurons.MODELS)  # all used above
    # what the dict it was gave
    assert neurons.MODELS.copy() == dict(neurons.MODELS) and type(neurons.MODELS.copy()) is dict
    assert (neurons.MODELS | {"x": 1})["x"] == 1 and ({"x": 1} | neurons.MODELS)["lif"] is neurons.MODELS["lif"]
    assert "lif" in repr(neurons.MODELS)


def test_unknown_names_are_clear():
    with pytest.raises(BiosimError, match="did you mean 'adex'"):
        neurons.model_by_name("adx")
    with pytest.raises(AttributeError, match="no attribute 'Adex'"):
        neurons.Adex  # noqa: B018
    with pytest.raises(KeyError):
        neurons.MODELS["adx"]
