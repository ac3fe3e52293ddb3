"""The line structure of Brian2-style equations (no sympy: cached models are loaded without it).

::

    dv/dt = (v_rest - v + ge) / tau_mem : mV (unless refractory)   # differential equation
    I_syn = ge * (e_exc - v) : pA                                   # named subexpression
    a : 1/ms                                                        # per-neuron constant
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from biosim.equations.units import parse_unit
from biosim.errors import BiosimError, closest

__all__ = ["Equation", "parse_equations", "FUNCTION_NAMES", "RESERVED"]

#: Function names an expression may use (their sympy forms are in :mod:`biosim.equations.parse`).
FUNCTION_NAMES = ("exp", "log", "log10", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arctan", "abs",
                  "exprel", "clip", "min", "max")
#: Names a model may not use for its own symbols.
RESERVED = {"dt", "t", "xi", "math", "np", "lastspike", "not_refractory", "True", "False", "and", "or", "not"}


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


def _check_name(name: str, line: str) -> None:
    if name.startswith("_") or name in RESERVED or name in FUNCTION_NAMES:
        raise BiosimError(f"equation '{line}': '{name}' is a reserved name; choose another")


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
        _check_name(name, line)
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


