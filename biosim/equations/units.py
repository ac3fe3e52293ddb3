"""Physical units for equations: names, scales and dimensions, and the dimension check.

A unit is a scale (to SI, an exact fraction) and a dimension: exponents of the SI base units
``(m, kg, s, A, K, mol, cd)``. Unit names are Brian2's: a prefix (``p n u m c k M G``) and a
base (``V``/``volt``, ``s``/``second``, ``A``/``amp``, ``S``/``siemens``, ``F``/``farad``,
``ohm``, ``Hz``/``hertz``, ``m``/``metre``, ``mol``/``mole``, ``M``/``molar``, ``l``/``litre``,
``g``/``gram``, ``K``/``kelvin``), plus squares and cubes of lengths (``cm2``, ``um2``, ``cm3``).
``1`` is dimensionless.

Quantities are strings such as ``"20 ms"``, ``"-49 mV"``, ``"1 uF/cm**2"``, ``"0.02 /ms"`` or
``"0.5"`` (dimensionless), or ``(value, "unit")`` pairs.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from biosim.errors import BiosimError, closest

__all__ = ["DIMLESS", "UNITS", "Dim", "field_name", "format_dim", "parse_quantity", "parse_unit", "unit_suffix"]

Dim = tuple  # seven Fractions: exponents of m, kg, s, A, K, mol, cd
DIMLESS: Dim = (Fraction(0),) * 7


def _dim(m=0, kg=0, s=0, A=0, K=0, mol=0, cd=0) -> Dim:
    return tuple(Fraction(x) for x in (m, kg, s, A, K, mol, cd))


def dim_mul(a: Dim, b: Dim) -> Dim:
    return tuple(x + y for x, y in zip(a, b))


def dim_pow(a: Dim, k) -> Dim:
    return tuple(x * Fraction(k) for x in a)


_BASES = {
    ("V", "volt"): _dim(m=2, kg=1, s=-3, A=-1),
    ("s", "second"): _dim(s=1),
    ("A", "amp", "ampere"): _dim(A=1),
    ("S", "siemens"): _dim(m=-2, kg=-1, s=3, A=2),
    ("F", "farad"): _dim(m=-2, kg=-1, s=4, A=2),
    ("ohm",): _dim(m=2, kg=1, s=-3, A=-2),
    ("Hz", "hertz"): _dim(s=-1),
    ("m", "metre", "meter"): _dim(m=1),
    ("mol", "mole"): _dim(mol=1),
    ("M", "molar"): _dim(m=-3, mol=1),
    ("l", "litre", "liter"): _dim(m=3),
    ("K", "kelvin"): _dim(K=1),
    ("C", "coulomb"): _dim(s=1, A=1),
}
# Scales relative to SI of the bases that are not SI units themselves.
_BASE_SCALE = {"M": Fraction(1000), "molar": Fraction(1000), "l": Fraction(1, 1000),
               "litre": Fraction(1, 1000), "liter": Fraction(1, 1000)}
_PREFIXES = {"": 0, "p": -12, "n": -9, "u": -6, "m": -3, "c": -2, "k": 3, "M": 6, "G": 9}


def _build_units() -> dict[str, tuple[Fraction, Dim]]:
    units: dict[str, tuple[Fraction, Dim]] = {}
    for names, dim in _BASES.items():
        for base in names:
            for prefix, exp10 in _PREFIXES.items():
                if base == "C" and prefix:  # mC, nC... would shadow nothing useful; keep C alone
                    continue
                name = prefix + base
                units.setdefault(name, (Fraction(10) ** exp10 * _BASE_SCALE.get(base, Fraction(1)), dim))
    # gram: kg is the SI base, so g = 1e-3 kg
    for prefix, exp10 in _PREFIXES.items():
        for base in ("g", "gram"):
            units.setdefault(prefix + base, (Fraction(10) ** (exp10 - 3), _dim(kg=1)))
    for prefix in ("", "c", "m", "u"):
        for base in ("m", "metre", "meter"):
            scale, dim = units[prefix + base]
            units[f"{prefix}{base}2"] = (scale**2, dim_pow(dim, 2))
            units[f"{prefix}{base}3"] = (scale**3, dim_pow(dim, 3))
    return units


#: Every unit name -> (scale to SI, dimension).
UNITS: dict[str, tuple[Fraction, Dim]] = _build_units()

_NAMED_DIMS = {
    DIMLESS: "1", _dim(m=2, kg=1, s=-3, A=-1): "V", _dim(s=1): "s", _dim(s=-1): "1/s",
    _dim(A=1): "A", _dim(m=-2, kg=-1, s=3, A=2): "S", _dim(m=-2, kg=-1, s=4, A=2): "F",
    _dim(m=2, kg=1, s=-4, A=-1): "V/s", _dim(A=1, s=-1): "A/s", _dim(m=-2, kg=-1, s=2, A=2): "S/s",
    _dim(m=2, kg=1, s=-3, A=-2): "ohm", _dim(m=1): "m", _dim(m=2): "m^2",
    _dim(A=1, m=-2): "A/m^2", _dim(m=-4, kg=-1, s=3, A=2): "S/m^2", _dim(m=-4, kg=-1, s=4, A=2): "F/m^2",
    _dim(m=-3, mol=1): "mol/m^3",
}
_BASE_NAMES = ("m", "kg", "s", "A", "K", "mol", "cd")


def format_dim(dim: Dim) -> str:
    """A readable name for a dimension (``V``, ``V/s``, ``S``, else SI base units)."""
    if dim in _NAMED_DIMS:
        return _NAMED_DIMS[dim]
    simple = [(d, lb) for d, lb in _NAMED_DIMS.items() if d != DIMLESS and "/" not in lb and "^" not in lb]
    for named, label in simple:
        for k in (2, 3, 4, -1, -2):
            if dim_pow(named, k) == dim:
                return f"{label}^{k}"
            for other, olabel in simple:
                for sign, op in ((1, "*"), (-1, "/")):
                    if dim_mul(dim_pow(named, k), dim_pow(other, sign)) == dim:
                        return f"{label}^{k}{op}{olabel}"
    parts = [n if e == 1 else f"{n}^{e}" for n, e in zip(_BASE_NAMES, dim) if e != 0]
    return "*".join(parts)


def parse_unit(text: str) -> tuple[Fraction, Dim]:
    """Scale to SI and dimension of a unit string (``"mV"``, ``"nS/cm**2"``, ``"1/ms"``, ``"1"``)."""
    text = str(text).strip()
    if text in ("", "1"):
        return Fraction(1), DIMLESS
    if text.startswith("/"):
        text = "1" + text
    text = text.replace("^", "**")
    if not re.fullmatch(r"[A-Za-z0-9_.*/() +-]+", text):
        raise BiosimError(f"unit '{text}' has characters a unit cannot have")
    scale, dim = Fraction(1), DIMLESS
    tokens = re.findall(r"\*\*|[A-Za-z_]\w*|[0-9.]+|[*/()]|\S", text)
    # A unit string is a product of names and numbers with * and /, optionally ** integers.
    pos, sign, operand_next = 0, 1, True
    while pos < len(tokens):
        tok = tokens[pos]
        if tok in ("*", "/"):
            sign, pos, operand_next = (1 if tok == "*" else -1), pos + 1, True
            continue
        if not operand_next:
            raise BiosimError(f"unit '{text}': join units with * or / (e.g. 'mV/ms')")
        operand_next = False
        power = 1
        if pos + 2 < len(tokens) + 1 and pos + 1 < len(tokens) and tokens[pos + 1] == "**":
            try:
                power = int(tokens[pos + 2].strip("()"))
            except (IndexError, ValueError):
                raise BiosimError(f"unit '{text}': a power must be a whole number") from None
            step = 3
        else:
            step = 1
        if re.fullmatch(r"[0-9.]+", tok):
            if float(tok) != 1.0:
                raise BiosimError(f"unit '{text}': numbers belong in the value, not the unit")
        elif tok in UNITS:
            s, d = UNITS[tok]
            scale = scale * s ** (sign * power)
            dim = dim_mul(dim, dim_pow(d, sign * power))
        else:
            guess = closest(tok, UNITS)
            hint = f"; did you mean '{guess}'?" if guess else ""
            raise BiosimError(f"unknown unit '{tok}' in '{text}'{hint}")
        pos += step
    return scale, dim


_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*?\s*(.*?)\s*$")


def parse_quantity(value, what: str) -> tuple[float, str]:
    """``(number, unit string)`` of a quantity given as ``"20 ms"``, ``(20, "ms")`` or ``20``."""
    import numbers

    if isinstance(value, bool):
        raise BiosimError(f"{what} = {value!r} must be a number with a unit, e.g. '20 ms'")
    if isinstance(value, numbers.Real):
        number, unit = float(value), "1"
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        number, unit = value
        if isinstance(number, bool) or not isinstance(number, numbers.Real):
            raise BiosimError(f"{what} = {value!r}: the value must be a number")
        number, unit = float(number), str(unit)
    elif isinstance(value, str):
        m = _QUANTITY.match(value)
        if not m:
            raise BiosimError(f"{what} = {value!r} is not a quantity like '20 ms' or '-65 mV'")
        number, unit = float(m.group(1)), m.group(2) or "1"
    else:
        raise BiosimError(f"{what} = {value!r} must be a quantity like '20 ms' or '-65 mV'")
    if not math.isfinite(number):
        raise BiosimError(f"{what} = {value!r} must be finite")
    try:
        parse_unit(unit)
    except BiosimError as exc:
        raise BiosimError(f"{what}: {exc}") from None
    return number, unit


def unit_suffix(unit: str) -> str:
    """The field-name suffix of a unit (``mV`` -> ``mv``, ``nS/cm**2`` -> ``ns_per_cm2``); ``""``
    for a dimensionless one."""
    text = str(unit).strip().replace("**", "").replace("^", "").replace(" ", "")
    if text in ("", "1"):
        return ""
    if text.startswith("1/"):
        text = text[1:]
    out = text.replace("/", "_per_").replace("*", "_").replace("(", "").replace(")", "").lower()
    return out.lstrip("_")


def field_name(name: str, unit: str) -> str:
    """The parameter dataclass field of parameter ``name`` in ``unit`` (``tau_mem`` -> ``tau_mem_ms``)."""
    suffix = unit_suffix(unit)
    return f"{name}_{suffix}" if suffix else name
