"""A neuron model defined in a run's TOML file: the ``[model]`` table.

A ``models/<name>.toml`` may define the neuron model its network uses, in Brian2's equation syntax
(see :meth:`biosim.equations.Model.from_equations`), so that a user's network runs with ``biosim
run`` without writing Python::

    [model]
    name = "qif"
    equations = '''
    dv/dt = ((v - v_rest) * (v - v_crit) / delta_v + ge + gi) / tau_mem : mV (unless refractory)
    dge/dt = -ge / tau_exc : mV
    dgi/dt = -gi / tau_inh : mV
    '''
    threshold = "v > v_peak"
    reset = "v = v_reset"
    refractory = "t_ref"          # a time ("2 ms") or a parameter name
    method = "euler"              # optional; chosen per variable when left out
    input_unit = "mV"             # needed when the equations use i_ext

    [model.parameters]            # name = "quantity"; the parameter field is name_<unit>
    tau_mem = "10 ms"
    ...

    [model.init]                  # optional initial values: quantities or parameter names
    v = "v_rest"

The parameters become the fields of the model's parameter dataclass (``tau_mem_ms``...); they are
also the defaults of the run's ``[params.neuron]`` table, so ``--set neuron.tau_mem_ms=15``
works as for the built-in neurons.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from biosim.equations import Model
from biosim.errors import BiosimError, unknown
from biosim.neurons import model_by_name

__all__ = ["MODEL_KEYS", "model_from_table", "neuron_defaults"]

#: key of the ``[model]`` table -> the type TOML must give it
MODEL_KEYS = {
    "equations": str, "threshold": str, "reset": str, "refractory": (str, int, float), "method": str,
    "input_unit": str, "input_name": str, "name": str, "parameters": dict, "init": dict,
}

_CACHE: dict[str, object] = {}


def _check(table: Mapping, where: str) -> None:
    if not isinstance(table, Mapping):
        raise BiosimError(f"{where}: 'model' must be a table ([model]), not {type(table).__name__}")
    for key in table:
        if key not in MODEL_KEYS:
            raise BiosimError(f"{where}: {unknown('key in [model]', key, MODEL_KEYS)}")
    if "equations" not in table:
        raise BiosimError(f"{where}: [model] needs 'equations' (one 'dx/dt = expr : unit' per line)")
    for key, kinds in MODEL_KEYS.items():
        value = table.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            want = "a table" if kinds is dict else "a string" if kinds is str else "a string or a number"
            shown = f"[model.{key}]" if kinds is dict else f"[model] {key}"
            raise BiosimError(f"{where}: {shown} must be {want}, not {value!r}")
    for sub in ("parameters", "init"):
        for name, value in (table.get(sub) or {}).items():
            if isinstance(value, (bool, dict, list)) or not isinstance(value, (str, int, float)):
                raise BiosimError(f"{where}: [model.{sub}] {name} = {value!r} must be a quantity such as "
                                  f"\"20 ms\" (or a number when dimensionless)")


def model_from_table(table: Mapping, where: str = "[model]"):
    """The :class:`~biosim.equations.Model` defined by a ``[model]`` table (built once per process).

    Parameters
    ----------
    table : mapping
        The ``[model]`` table of a run's TOML file (keys: :data:`MODEL_KEYS`).
    where : str
        What to name in error messages, e.g. ``"models/qif.toml"``.

    Returns
    -------
    biosim.equations.Model

    Raises
    ------
    BiosimError
        One line, prefixed with ``where``: an unknown key (with the closest valid one), a value of
        the wrong type, or any mistake in the equations (syntax, unknown symbol, units...).
    """
    _check(table, where)
    key = json.dumps(table, sort_keys=True, default=str)
    model = _CACHE.get(key)
    if model is not None and _still_registered(model):
        return model

    kwargs = {k: table[k] for k in ("threshold", "reset", "refractory", "method", "input_unit", "name")
              if table.get(k) is not None}
    if table.get("input_name") is not None:
        kwargs["input_name"] = table["input_name"]
    try:
        model = Model.from_equations(table["equations"], parameters=dict(table.get("parameters") or {}),
                                     init=dict(table.get("init") or {}), **kwargs)
    except BiosimError as exc:
        raise BiosimError(f"{where}: {exc}") from None
    _CACHE[key] = model
    return model


def _still_registered(model) -> bool:
    """False when another model of the same name has replaced ``model`` in the neuron registry."""
    try:
        return model_by_name(model.name) is model.spec
    except BiosimError:
        return False


def neuron_defaults(model) -> dict[str, float]:
    """``{field: default}`` of the model's parameter dataclass (``{"tau_mem_ms": 20.0, ...}``)."""
    params = model()
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
