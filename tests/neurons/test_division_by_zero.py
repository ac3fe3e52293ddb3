"""A model's step that divides by zero: the numba-cpu kernel compiles models' maths with Numba's
error_model="numpy" (a plain IEEE divide, no zero-divisor branch, so that loops over neurons can
vectorise), so the quotient is inf or NaN, and the run stops with the one-line NOT_FINITE error
naming the variable, the population, the neuron and the step, as the NumPy reference does."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from numba import njit

from biosim.errors import SimulationError
from biosim.network import Network
from biosim.neurons import ModelSpec, register_model


@dataclass(frozen=True, kw_only=True)
class Inverse:
    t_ref_ms: float = 1.0


@njit(cache=True)
def inverse_step(X, i, c, i_ext, refractory):
    X[0][i] = X[0][i] + c[0] / X[1][i]


@njit(cache=True)
def inverse_threshold(X, i, c):
    return X[0][i] > 1e300


@njit(cache=True)
def inverse_reset(X, i, c):
    pass


INVERSE_SPEC = ModelSpec(
    name="toy_inverse", params_cls=Inverse, var_names=("v", "d"), frozen_vars=(),
    constants=lambda p, dt_ms: np.array([1.0]), initial=lambda p: {"v": 0.0, "d": 1.0},
    t_ref_ms=lambda p: p.t_ref_ms, step=inverse_step, threshold=inverse_threshold, reset=inverse_reset,
    current_unit="1",
)
register_model(INVERSE_SPEC)


@pytest.mark.parametrize("backend", ["numba-cpu", "numpy"])
def test_division_by_zero_is_reported_as_not_finite(backend):
    net = Network(dt_ms=0.1)
    net.population("div", Inverse(), 4, init={"d": np.array([1.0, 2.0, 0.0, 4.0])})
    with np.errstate(divide="ignore"), pytest.raises(SimulationError) as e:
        net.run(1.0, backend=backend)
    msg = str(e.value)
    assert "\n" not in msg
    assert "v of population 'div' became inf (neuron 2) at step 0 " in msg, msg
