"""The line structure of Brian2-style equations (no sympy: cached models are loaded without it).

::

    dv/dt = (v_rest - v + ge) / tau_mem : mV (unless refractory)   # differential equation
    I_syn = ge * (e_exc - v) : pA                                   # named subexpression
    a : 1/ms                                                        # per-neuron constant
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass

from biosim.equations.units import parse_quantity, parse_unit
from biosim.errors import BiosimError, closest

__all__ = ["Equation", "parse_equations", "check_identifier", "read_parameters", "model_name", "FUNCTION_NAMES", "RESERVED", "UNSUPPORTED"]

#: Function names an expression may use (their sympy forms are in :mod:`biosim.equations.parse`).
FUNCTION_NAMES = ("exp", "log", "log10", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arctan", "abs",
                  "exprel", "clip", "min", "max")
#: Brian2's special names that biosim's equations do not support (yet), with what they mean there.
UNSUPPORTED = {"t": "time", "dt": "the time step", "xi": "white noise", "i": "the neuron index",
               "N": "the group size", "lastspike": "the last spike time", "not_refractory": "the refractory flag"}
#: Names a model may not use for its own symbols: the above, the names generated code relies on,
#: the functions, Python keywords and builtins.
RESERVED = set(UNSUPPORTED) | {"math", "np", "njit", "propagator", "exprel", "clip", "exp_euler"}


def check_identifier(name, what: str) -> str:
    """``name`` if a model may use it for ``what`` (a variable, a parameter...), else a BiosimError."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z]\w*", name):
        raise BiosimError(f"{what} name {name!r} must be an identifier (letters, digits, _; not starting with _)")
    if keyword.iskeyword(name) or name in RESERVED or name in FUNCTION_NAMES or hasattr(builtins, name):
        raise BiosimError(f"{what} name '{name}' is reserved (a Python or biosim name); choose another")
    return name


@dataclass(frozen=True)
class Equation:
    """One line of a model: ``kind`` is ``"diff"``, ``"subexpr"`` or ``"const"``."""

    kind: str
    name: str
    expr_text: str
    unit: str
    flags: tuple[str, ...]
    line: str


_DIFF = re.compile(r"^d\s*([A-Za-z_]\w*)\s*/\s*dt\s*=\s*(.+?)\s*:\s*([^()]*?)\s*(?:\((.*)\))?\s*$")
_SUBEXPR = re.compile(r"^([A-Za-z_]\w*)\s*=\s*(.+?)\s*:\s*([^()]*?)\s*(?:\((.*)\))?\s*$")
_CONST = re.compile(r"^([A-Za-z_]\w*)\s*:\s*([^()]*?)\s*(?:\((.*)\))?\s*$")
_FLAGS = {"diff": {"unless refractory", "event-driven", "clock-driven"}, "subexpr": {"constant over dt"},
          "const": {"constant"}}


def read_parameters(parameters) -> tuple[dict, dict]:
    """``(values, units)`` of a ``{name: quantity}`` mapping, names and quantities checked."""
    if parameters is None:
        return {}, {}
    if not isinstance(parameters, dict):
        raise BiosimError(f"parameters must be a mapping of name to quantity, not {type(parameters).__name__}")
    values, units = {}, {}
    for name, q in parameters.items():
        check_identifier(name, "parameter")
        values[name], units[name] = parse_quantity(q, f"parameter '{name}'")
    return values, units


def model_name(name, default: str, what: str) -> str:
    """``name`` checked as a model name (an identifier of at most 64 characters), or ``default``."""
    if name is None:
        return default
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z]\w{0,63}", name):
        raise BiosimError(f"{what} name {name!r} must be an identifier of at most 64 characters")
    return name


def parse_equations(text: str) -> list[Equation]:
    """Split an equations string into :class:`Equation` records (syntax and flags checked)."""
    if not isinstance(text, str):
        raise BiosimError(f"equations must be a string, not {type(text).__name__}")
    out: list[Equation] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        for kind, pattern in (("diff", _DIFF), ("subexpr", _SUBEXPR), ("const", _CONST)):
            m = pattern.match(line)
            if m:
                break
        else:
            raise BiosimError(f"equation '{line}' is not of the form 'dx/dt = expr : unit', "
                              f"'name = expr : unit' or 'name : unit'")
        if kind == "const":
            name, expr_text, unit, flags = m.group(1), "", m.group(2), m.group(3)
        else:
            name, expr_text, unit, flags = m.groups()
        if not (unit or "").strip():
            raise BiosimError(f"equation '{line}': give the unit after ':' (1 for a dimensionless variable)")
        try:
            check_identifier(name, "variable")
        except BiosimError as exc:
            raise BiosimError(f"equation '{line}': {exc}") from None
        if name in seen:
            raise BiosimError(f"equation '{line}': '{name}' is defined twice")
        seen.add(name)
        try:
            parse_unit(unit or "1")
        except BiosimError as exc:
            raise BiosimError(f"equation '{line}': {exc}") from None
        flag_list = tuple(f.strip() for f in (flags or "").split(",") if f.strip())
        for flag in flag_list:
            if flag not in _FLAGS[kind]:
                guess = closest(flag, _FLAGS[kind])
                hint = f"; did you mean '{guess}'?" if guess else ""
                raise BiosimError(f"equation '{line}': unknown flag '{flag}'{hint}")
        out.append(Equation(kind, name, expr_text.strip(), (unit or "1").strip(), flag_list, line))
    if not out:
        raise BiosimError("the equations define nothing (no 'dx/dt = ... : unit' line)")
    return out


