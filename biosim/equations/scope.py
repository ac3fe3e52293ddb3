"""The symbols of one model: their units, the dimension checks, and the conversion of expressions
to stored units (every variable and parameter kept in its own declared unit, time in ms)."""

from __future__ import annotations

import sympy as sp

from biosim.equations.parse import ANY, Statement, dims_of, parse_expression
from biosim.equations.units import DIMLESS, UNITS, format_dim, parse_unit
from biosim.errors import BiosimError

__all__ = ["Scope", "rational"]


def rational(x) -> sp.Rational:
    """An exact sympy number from a :class:`fractions.Fraction`."""
    return sp.Rational(x.numerator, x.denominator)


def _scale_inside(expr) -> sp.Expr:
    """Move positive constant factors into ``clip``/``min``/``max`` (``1000*clip(w/1000, 0, 1/1000)``
    -> ``clip(w, 0, 1)``), so a unit conversion does not round a value that is only limited."""
    from biosim.equations.parse import clip

    def inside(e):
        coeff, rest = e.as_coeff_Mul()
        if coeff.is_positive and isinstance(rest, (clip, sp.Min, sp.Max)):
            return rest.func(*[_scale_inside(sp.factor_terms(coeff * a)) for a in rest.args])
        return e

    return expr.replace(lambda e: isinstance(e, sp.Mul), inside)


class Scope:
    """Names a model's expressions may use, with scale (to SI) and dimension of each."""

    def __init__(self):
        self.sym: dict[str, sp.Symbol] = {}
        self.dims: dict[sp.Symbol, tuple] = {}
        self.scale: dict[sp.Symbol, sp.Expr] = {}
        self.subexprs: dict[str, sp.Expr] = {}
        self._si: dict[str, sp.Expr] = {}
        for unit_name, (s, d) in UNITS.items():
            us = sp.Symbol(f"unit:{unit_name}")
            self.scale[us], self.dims[us] = rational(s), d

    def declare(self, name: str, unit: str, what: str) -> sp.Symbol:
        if name in self.sym:
            raise BiosimError(f"{what} '{name}' has the name of another symbol of the model; rename it")
        s = self.sym[name] = sp.Symbol(name, real=True)
        scale, self.dims[s] = parse_unit(unit)
        self.scale[s] = rational(scale)
        return s

    def parse(self, text: str, where: str, names: dict | None = None) -> sp.Expr:
        return parse_expression(text, self.sym if names is None else names, where)

    def dim(self, expr, where: str):
        return dims_of(expr, self.dims, where)

    def check(self, expr, want, where: str, what: str = "the right-hand side") -> None:
        """Raise unless ``expr`` has dimension ``want`` (a literal 0 fits any)."""
        got = self.dim(expr, where)
        if got is not ANY and want is not ANY and got != want:
            raise BiosimError(f"{where}: {what} is in {format_dim(got)} but must be in {format_dim(want)}")

    def to_si(self, expr, stack=()) -> sp.Expr:
        """``expr`` with every symbol replaced by its SI value (subexpressions substituted)."""
        repl = {}
        for s in expr.free_symbols:
            if s.name in self.subexprs:
                if s.name in stack:
                    raise BiosimError(f"subexpression '{s.name}' refers to itself")
                if s.name not in self._si:
                    self._si[s.name] = self.to_si(self.subexprs[s.name], stack + (s.name,))
                repl[s] = self._si[s.name]
            elif s.name.startswith("unit:"):
                repl[s] = self.scale[s]
            elif s in self.scale:
                repl[s] = self.scale[s] * s
        return expr.xreplace(repl)

    def stored(self, expr, target_scale) -> sp.Expr:
        """``expr`` in the unit whose scale is ``target_scale``."""
        return _scale_inside(sp.factor_terms(self.to_si(expr) / target_scale))

    def assignment(self, st: Statement, where: str) -> sp.Expr:
        """The new stored value of ``st.target`` after the statement (units checked)."""
        t = self.sym[st.target]
        want = DIMLESS if st.op in ("*=", "/=") else self.dims[t]
        self.check(st.expr, want, where, "the value")
        value = self.to_si(st.expr) if st.op in ("*=", "/=") else self.stored(st.expr, self.scale[t])
        return {"=": value, "+=": t + value, "-=": t - value, "*=": t * value, "/=": t / value}[st.op]
