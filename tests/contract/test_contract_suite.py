"""The suite itself: strict numerics are in force and the matrix covers every model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from biosim.equations.library import EQUATION_MODELS
from biosim.neurons import MODELS as BUILTIN_MODELS
from biosim.neurons import spec_for

from contract_cases import CASES


def test_strict_numerics_are_in_force():
    assert set(np.geterr().values()) == {"raise"}
    with pytest.raises(FloatingPointError):
        np.float64(1.0) / np.float64(0.0)
    with pytest.raises(UserWarning):  # pyproject.toml: filterwarnings = ["error", ...]
        warnings.warn("warnings are errors in the suite", UserWarning, stacklevel=1)
    assert torch.are_deterministic_algorithms_enabled()


def test_every_model_and_equation_twin_is_a_case():
    assert set(BUILTIN_MODELS) | {f"eq_{name}" for name in EQUATION_MODELS} == set(CASES)
    for name, case in CASES.items():
        params = case.params(case.network_params)
        assert spec_for(params).name == name
        assert spec_for(params) is case.spec
        assert case.builtin_of(params) == case.network_params  # a twin runs its built-in's values
