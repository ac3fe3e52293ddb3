"""What every neuron model provides, and the shared parameter checks.

A model is a :class:`ModelSpec`: its state variables, a frozen parameter dataclass and three
scalar functions that hold the model's maths once for every backend::

    step(X, i, c, i_ext, refractory)  # advance neuron i by one dt, in place
    threshold(X, i, c) -> bool        # has neuron i crossed threshold?
    reset(X, i, c)                    # apply the reset to neuron i

``X`` holds the state rows, indexed ``X[var][i]``: a tuple of 1-D row views of one population in
the compiled kernel (``i`` local), the whole ``(n_vars, n_neurons)`` matrix in the NumPy reference
(``i`` global). ``c`` holds the model's constants (the
parameters turned into per-step factors by :meth:`ModelSpec.constants`), ``i_ext`` the external
input of neuron ``i`` in the model's current unit and ``refractory`` whether neuron ``i`` is in its
refractory period. The functions are Numba ``njit`` functions defined at the top level of an
importable module: the numba-cpu backend generates a kernel that imports and inlines them, the
NumPy reference calls their pure-Python ``py_func``. A model outside the package is made known to
the engine with :func:`biosim.neurons.register_model`; nothing in ``biosim.backends`` changes.

The built-in models state the layout of ``c`` once, as a ``NamedTuple`` of the constants
(:class:`biosim.neurons.lif.LIFConstants`...) from which ``constants`` builds the array, and their
functions read it by module-level index names (``c[LIF_V_REST]``), which Numba compiles in as
constants. A model's functions may be ``cache=True`` when they use only njit functions and
constants of their own file: Numba keys the cache on that file alone (see :mod:`biosim._numba_cache`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from biosim.errors import BiosimError, unknown

__all__ = ["ModelSpec", "check_numbers", "check_positive", "check_below", "check_range", "exprel", "refractory_steps"]


def check_positive(obj, *names: str, allow_zero: bool = False) -> None:
    """Raise a BiosimError naming the field when a parameter is not a finite positive number."""
    for name in names:
        value = getattr(obj, name)
        ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
        if not ok:
            bound = ">= 0" if allow_zero else "> 0"
            raise BiosimError(f"{type(obj).__name__}.{name} = {value!r} is out of range (must be {bound})")


def check_range(obj, name: str, low: float, high: float) -> None:
    """Raise a BiosimError naming the field when a parameter lies outside [low, high]."""
    value = getattr(obj, name)
    if not (math.isfinite(value) and low <= value <= high):
        raise BiosimError(f"{type(obj).__name__}.{name} = {value!r} is out of range (must be in [{low}, {high}])")


def check_numbers(obj) -> None:
    """Raise a BiosimError when a field of a parameter dataclass is not a finite real number
    (a string, None, a bool...); whole numbers become floats."""
    import numbers

    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise BiosimError(f"{type(obj).__name__}.{f.name} = {value!r} must be a number")
        object.__setattr__(obj, f.name, float(value))
    check_finite(obj)


def check_finite(obj) -> None:
    """Raise a BiosimError when any float field of a parameter dataclass is NaN or infinite, or not a
    number at all (a string, None, a bool: ``LIF(tau_mem_ms="20")``)."""
    import numbers

    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.type in ("float", float) and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise BiosimError(f"{type(obj).__name__}.{f.name} = {value!r} must be a number")
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isfinite(value):
            raise BiosimError(f"{type(obj).__name__}.{f.name} = {value!r} must be a finite number")


def check_below(obj, low: str, high: str, why: str) -> None:
    """Raise a BiosimError naming both fields unless ``obj.low < obj.high`` (e.g. a reset below the
    threshold); ``why`` says what would happen otherwise."""
    a, b = getattr(obj, low), getattr(obj, high)
    if not a < b:
        raise BiosimError(f"{type(obj).__name__}.{low} = {a!r} is at or above {high} = {b!r}: {why}; "
                          f"{low} must be below {high}")


def exprel(x: float) -> float:
    """``(exp(x) - 1) / x``, equal to 1 at ``x == 0`` and accurate near it."""
    if x == 0.0:
        return 1.0
    return math.expm1(x) / x


def refractory_steps(t_ref_ms: float, dt_ms: float) -> int:
    """Brian2's ``timestep(t_ref, dt)``: whole steps in the refractory period."""
    return int((t_ref_ms + 1e-3 * dt_ms) / dt_ms)


@dataclass(frozen=True)
class ModelSpec:
    """A neuron model as the engine sees it.

    Attributes
    ----------
    name : str
        Registry name (``"lif"``, ``"hh"``...).
    params_cls : type
        The frozen parameter dataclass.
    var_names : tuple of str
        State variables, in the row order of ``X``.
    frozen_vars : tuple of str
        Variables marked "unless refractory": not integrated and deaf to synaptic input while
        the neuron is refractory.
    constants : callable
        ``constants(params, dt_ms) -> np.ndarray`` of float64 per-step factors (the ``c`` of the
        scalar functions).
    initial : callable
        ``initial(params) -> dict`` of default initial values per variable.
    t_ref_ms : callable
        ``t_ref_ms(params) -> float``.
    step, threshold, reset : numba dispatchers
        The scalar maths (see the module docstring).
    current_unit : str
        Unit of ``i_ext`` for this model.
    var_units : tuple of str
        Unit of each state variable (Brian2 unit names, ``"1"`` for none); synapse models
        written as equations check their statements against them.
    """

    name: str
    params_cls: type
    var_names: tuple[str, ...]
    frozen_vars: tuple[str, ...]
    constants: Callable[..., np.ndarray]
    initial: Callable[..., dict]
    t_ref_ms: Callable[..., float]
    step: Callable
    threshold: Callable
    reset: Callable
    current_unit: str
    var_units: tuple[str, ...] = ()

    def var_index(self, var: str) -> int:
        """Row of ``var`` in the state matrix, with a clear error for an unknown name."""
        if var not in self.var_names:
            raise unknown(f"state variable of model '{self.name}'", var, self.var_names)
        return self.var_names.index(var)
