"""Neuron models written as equations: :meth:`Model.from_equations`.

Example
-------
>>> from biosim.equations import Model
>>> lif = Model.from_equations(
...     '''
...     dv/dt = (v_rest - v + ge + gi) / tau_mem : mV (unless refractory)
...     dge/dt = -ge / tau_exc : mV
...     dgi/dt = -gi / tau_inh : mV
...     ''',
...     parameters={"tau_mem": "20 ms", "tau_exc": "5 ms", "tau_inh": "10 ms",
...                 "v_rest": "-49 mV", "v_thresh": "-50 mV", "v_reset": "-60 mV"},
...     threshold="v > v_thresh", reset="v = v_reset", refractory="5 ms", name="my_lif")
>>> lif.methods
{'v': 'exact', 'ge': 'exact', 'gi': 'exact'}
>>> lif(tau_mem_ms=15.0).tau_mem_ms    # the parameters: a frozen dataclass, units in the names
15.0

The model's maths is generated once as a Python module (cached on disk, keyed by the model's
text) whose ``step``/``threshold``/``reset`` are the same kind of scalar ``njit`` functions as
the built-in models' -- the engine's kernels and the NumPy reference run them unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

from biosim._generated import load_keyed, source_hash
from biosim.equations.lines import check_identifier, model_name, read_parameters
from biosim.equations.units import parse_quantity
from biosim.errors import BiosimError, unknown
from biosim.neurons import register_model
from biosim.neurons.base import ModelSpec, check_numbers

__all__ = ["Model"]


@functools.lru_cache(maxsize=1)
def _generator_version() -> str:
    """Hash of this package's sources: a changed generator never reuses an old generated file."""
    folder = Path(__file__).parent
    return source_hash("".join(p.read_text() for p in sorted(folder.glob("*.py"))))


class Model:
    """A neuron model defined by equations (see :meth:`from_equations`).

    Calling the model returns its parameters, a frozen dataclass instance with units in the field
    names (``tau_mem_ms``...), with any defaults overridden; pass that (or the model itself, for
    the defaults) to :meth:`biosim.Network.population`.

    Attributes
    ----------
    name : str
    spec : biosim.neurons.ModelSpec
        What the engine runs.
    params_cls : type
        The parameter dataclass.
    methods : dict
        Integration method chosen for each variable.
    """

    def __init__(self, name: str, spec: ModelSpec, params_cls: type, methods: dict, source_file: str):
        self.name = name
        self.spec = spec
        self.params_cls = params_cls
        self.methods = methods
        self.source_file = source_file

    def __call__(self, *args, **overrides):
        if args:
            raise BiosimError(f"parameters of model '{self.name}' are keyword arguments (model(name_unit=value))")
        fields = {f.name for f in dataclasses.fields(self.params_cls)}
        for key in overrides:
            if key not in fields:
                raise unknown(f"parameter of model '{self.name}'", key, fields)
        return self.params_cls(**overrides)

    def describe(self) -> str:
        """One line: the model's variables and how each is integrated."""
        return f"model '{self.name}': " + ", ".join(f"{v} by {m}" for v, m in self.methods.items())

    def __repr__(self):
        return f"<Model {self.describe()}>"

    @classmethod
    def from_equations(cls, equations: str, *, parameters: dict | None = None, threshold: str | None = None,
                       reset: str | None = None, refractory=None, method: str | None = None,
                       input_unit: str | None = None, input_name: str = "i_ext", init: dict | None = None,
                       name: str | None = None) -> Model:
        """Build (or load from the cache) a neuron model from Brian2-style equations.

        Parameters
        ----------
        equations : str
            One equation per line: ``dx/dt = expr : unit (flags)``, ``name = expr : unit``
            (subexpression) or ``name : unit`` (a per-neuron constant, set through ``init``).
            Flag: ``unless refractory``.
        parameters : dict
            ``name -> quantity`` (``"20 ms"``, ``(20, "ms")`` or a number for dimensionless).
            The parameter dataclass field is ``name_<unit>`` (``tau_mem_ms``).
        threshold : str, optional
            Condition such as ``"v > v_thresh"``; no spikes without one.
        reset : str, optional
            Statements ``"v = v_reset; w += b"`` run in order after a spike.
        refractory : quantity or parameter name, optional
            Refractory period (``"5 ms"`` or ``"t_ref"``); 0 without one.
        method : {None, "exact", "exponential_euler", "euler", "rk2", "rk4"}
            Forced integration method; ``None`` chooses (see :mod:`biosim.equations.methods`).
        input_unit, input_name : str
            Unit and symbol of the external input (:meth:`biosim.Network.current`); needed when
            the equations use ``input_name``.
        init : dict, optional
            Default initial value per variable: a quantity or a parameter name (default 0).
        name : str, optional
            Registry name (default ``eq_<hash>``).

        Returns
        -------
        Model
        """
        if not isinstance(equations, str):
            raise BiosimError(f"equations must be a string, not {type(equations).__name__}")
        values, units = read_parameters(parameters)
        if init is not None and not isinstance(init, dict):
            raise BiosimError(f"init must be a mapping of variable to value, not {type(init).__name__}")
        init = dict(init or {})
        for what, value in (("threshold", threshold), ("reset", reset), ("input_unit", input_unit)):
            if value is not None and not isinstance(value, str):
                raise BiosimError(f"{what} = {value!r} must be a string")
        check_identifier(input_name, "input")
        if method is not None and not isinstance(method, str):
            raise BiosimError(f"method = {method!r} must be a method name")
        if refractory is not None and not isinstance(refractory, (str, int, float, tuple, list)):
            raise BiosimError(f"refractory = {refractory!r} must be a time such as '5 ms' or a parameter name")
        ref = None if refractory in (None, 0, 0.0) else _quantity_or_expression(refractory, "refractory")
        init_q = {var: _quantity_or_expression(q, f"init of '{var}'") for var, q in init.items()}
        key = json.dumps({"eq": equations, "units": units,
                          "threshold": threshold, "reset": reset, "ref": ref, "method": method,
                          "input": [input_name, input_unit], "init": init_q, "v": _generator_version()},
                         sort_keys=True, default=str)
        label = model_name(name, f"eq_{source_hash(key)[:8]}", "model")

        def generate() -> str:
            from biosim.equations.generate import neuron_source  # sympy: only when the cache misses

            return neuron_source(label, equations, units, threshold, reset, ref, method, input_name, input_unit, init_q)

        module = load_keyed(f"biosim_model_{label}", key, generate)
        return _from_module(label, module, values)


def _from_module(label: str, module, values: dict) -> Model:
    fields = [(f, float, dataclasses.field(default=values[n])) for n, f, _ in module.PARAMS]

    def post_init(self):
        check_numbers(self)

    params_cls = dataclasses.make_dataclass(
        f"{label}_params", fields, frozen=True, kw_only=True, namespace={"__post_init__": post_init})
    params_cls.__doc__ = f"Parameters of the equation model '{label}'."

    spec = ModelSpec(
        name=label, params_cls=params_cls, var_names=module.VAR_NAMES, frozen_vars=module.FROZEN,
        constants=module.constants, initial=module.initial, t_ref_ms=module.t_ref_ms, step=module.step,
        threshold=module.threshold, reset=module.reset, current_unit=module.INPUT_UNIT,
        var_units=module.VAR_UNITS,
    )
    params_cls._biosim_spec = spec
    register_model(spec)
    return Model(label, spec, params_cls, dict(module.METHODS), module.__file__)


def _quantity_or_expression(value, what: str):
    """``(number, unit)`` for a quantity, else the text of an expression of the parameters."""
    if isinstance(value, str):
        try:
            return parse_quantity(value, what)
        except BiosimError:
            return value.strip()
    return parse_quantity(value, what)
