"""Parse Brian2-style equations and statements into sympy, and check their units.

Equation lines (one per line, ``#`` starts a comment)::

    dv/dt = (v_rest - v + ge) / tau_mem : mV (unless refractory)   # differential equation
    I_syn = ge * (e_exc - v) : pA                                   # named subexpression
    a : 1/ms                                                        # per-neuron constant

Expressions use the state variables, the model's parameters, subexpressions, the external input,
unit names (``140*mV/ms``) and the functions ``exp log log10 sqrt sin cos tan sinh cosh tanh
arctan abs exprel clip min max``. Every symbol must be defined and every term must have the
units its equation requires; a mistake is a :class:`~biosim.errors.BiosimError` naming the
equation and the symbol or terms.
"""

from __future__ import annotations

import ast
import re
import tokenize
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp
from sympy.parsing.sympy_parser import parse_expr, standard_transformations

from biosim.equations.lines import UNSUPPORTED
from biosim.equations.units import DIMLESS, UNITS, Dim, dim_mul, dim_pow, format_dim
from biosim.errors import BiosimError, closest

__all__ = ["ANY", "Statement", "parse_condition", "parse_expression", "parse_statements", "dims_of", "FUNCTIONS", "exprel", "clip"]


class exprel(sp.Function):  # noqa: N801 (the name users write)
    """``(exp(x) - 1)/x``."""

    nargs = 1

    def fdiff(self, argindex=1):
        x = self.args[0]
        return (sp.exp(x) * x - sp.exp(x) + 1) / x**2


class clip(sp.Function):  # noqa: N801
    """``clip(x, lo, hi)``."""

    nargs = 3


#: Function names an expression may use, as sympy functions.
FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "log10": lambda x: sp.log(x, 10), "sqrt": sp.sqrt,
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh,
    "arctan": sp.atan, "abs": sp.Abs, "exprel": exprel, "clip": clip, "min": sp.Min, "max": sp.Max,
}
#: The dimension of a literal 0, which fits any unit.
ANY = None
@dataclass(frozen=True)
class Statement:
    """``target op expr`` with ``op`` one of ``= += -= *= /=``."""

    target: str
    op: str
    expr: sp.Expr
    text: str


#: Mathematical constants an expression may use (unless the model defines the name itself).
_CONSTANTS = {"pi": sp.pi, "e": sp.E}
_IDENT = re.compile(r"[A-Za-z_]\w*")
_GLOBALS = {"Integer": sp.Integer, "Float": sp.Float, "Rational": sp.Rational, "Symbol": sp.Symbol}


def parse_expression(text: str, names: dict[str, sp.Symbol], where: str) -> sp.Expr:
    """Parse ``text`` with the symbols ``names`` (and unit names); unknown names are an error."""
    if not isinstance(text, str) or not text.strip():
        raise BiosimError(f"{where}: empty expression")
    code = re.sub(r"\band\b", "&", text)
    code = re.sub(r"\bor\b", "|", code)
    code = re.sub(r"\bnot\b", "~", code)
    local: dict[str, object] = {}
    for ident in set(_IDENT.findall(re.sub(r"(?<![\w.])(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+", "0", code))):
        if ident in names:
            local[ident] = names[ident]
        elif ident in FUNCTIONS:
            local[ident] = FUNCTIONS[ident]
        elif ident in UNITS:
            local[ident] = sp.Symbol(f"unit:{ident}")
        elif ident in _CONSTANTS:
            local[ident] = _CONSTANTS[ident]
        elif ident in UNSUPPORTED:
            raise BiosimError(f"{where}: '{ident}' ({UNSUPPORTED[ident]}, in Brian2) is not supported in biosim's "
                              f"equations")
        else:
            same_letters = [u for u in UNITS if u.lower() == ident.lower()]
            guess = closest(ident, list(names) + list(FUNCTIONS)) or (same_letters or [closest(ident, UNITS)])[0]
            hint = f"; did you mean '{guess}'?" if guess else ""
            raise BiosimError(f"{where}: unknown symbol '{ident}'{hint}")
    try:
        expr = parse_expr(code, local_dict=local, global_dict=dict(_GLOBALS),
                          transformations=standard_transformations, evaluate=True)
    except (SyntaxError, TypeError, tokenize.TokenError, AttributeError, ValueError) as exc:
        raise BiosimError(f"{where}: cannot parse '{text}' ({type(exc).__name__})") from None
    if not isinstance(expr, sp.Basic):
        raise BiosimError(f"{where}: '{text}' is not an expression")
    return sp.sympify(expr)


_COMPARISONS = {ast.Gt: sp.StrictGreaterThan, ast.Lt: sp.StrictLessThan, ast.GtE: sp.GreaterThan,
                ast.LtE: sp.LessThan, ast.Eq: sp.Eq, ast.NotEq: sp.Ne}


def parse_condition(text: str, names: dict[str, sp.Symbol], where: str):
    """Parse a condition with Python's precedence: comparisons (chained ones too: ``a < v < b``)
    joined by ``and``/``or``/``not``; each side is an expression (:func:`parse_expression`)."""
    if not isinstance(text, str) or not text.strip():
        raise BiosimError(f"{where}: empty condition")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise BiosimError(f"{where}: cannot parse '{text}' (SyntaxError)") from None

    def convert(node):
        if isinstance(node, ast.BoolOp):
            return (sp.And if isinstance(node.op, ast.And) else sp.Or)(*[convert(v) for v in node.values])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return sp.Not(convert(node.operand))
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            relations = []
            for a, op, b in zip(sides, node.ops, sides[1:]):
                if type(op) not in _COMPARISONS:
                    raise BiosimError(f"{where}: '{text}' compares with an operator a condition cannot use")
                lhs, rhs = (parse_expression(ast.unparse(x), names, where) for x in (a, b))
                relations.append(_COMPARISONS[type(op)](lhs, rhs, evaluate=False))
            return sp.And(*relations) if len(relations) > 1 else relations[0]
        raise BiosimError(f"{where} is not a condition (use a comparison such as 'v > v_thresh')")

    return convert(tree.body)


_STATEMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(=|\+=|-=|\*=|/=)\s*(.+?)\s*$")


def parse_statements(text: str, names: dict[str, sp.Symbol], targets, what: str) -> list[Statement]:
    """Parse ``a = expr; b += expr`` (``;`` or newlines) into statements on ``targets``."""
    if not isinstance(text, str):
        raise BiosimError(f"{what} must be a string of statements, not {type(text).__name__}")
    out = []
    for part in re.split(r"[;\n]", text):
        part = part.split("#", 1)[0].strip()
        if not part:
            continue
        m = _STATEMENT.match(part)
        if not m:
            raise BiosimError(f"{what} '{part}' is not a statement like 'v = v_reset' or 'w += b'")
        target, op, expr_text = m.groups()
        if target not in targets:
            guess = closest(target, targets)
            hint = f"; did you mean '{guess}'?" if guess else ""
            raise BiosimError(f"{what} '{part}': '{target}' is not a variable that can be set{hint}")
        out.append(Statement(target, op, parse_expression(expr_text, names, f"{what} '{part}'"), part))
    return out


def _fraction(x: sp.Expr) -> Fraction:
    if x.is_Rational:
        return Fraction(int(x.p), int(x.q))
    return Fraction(float(x)).limit_denominator(1000)


def dims_of(expr: sp.Expr, dims: dict[sp.Symbol, Dim], where: str) -> Dim:
    """The dimension of ``expr`` given each symbol's; inconsistent units raise a BiosimError.

    A literal zero fits any unit: its dimension is :data:`ANY`, which compares equal to all."""

    def same(a, b):
        return a is ANY or b is ANY or a == b

    def mismatch(a, da, b, db):
        return BiosimError(f"{where}: units do not match: '{a}' is in {format_dim(da)} but '{b}' is in {format_dim(db)}")

    def walk(e):
        if e.has(sp.zoo, sp.oo, sp.nan, sp.I):
            raise BiosimError(f"{where}: '{e}' is infinite or not a real number (a division by 0, the log of a "
                              f"negative number?)")
        if e.is_number and e == 0:
            return ANY
        if e.is_number or e in (sp.true, sp.false):
            return DIMLESS
        if e.is_Symbol:
            return dims[e]
        if isinstance(e, (sp.Add, sp.Min, sp.Max, clip, sp.Abs)):  # every argument in the same unit
            first, d0 = e.args[0], walk(e.args[0])
            for a in e.args[1:]:
                d = walk(a)
                if not same(d, d0):
                    raise mismatch(first, d0, a, d)
                if d0 is ANY:
                    first, d0 = a, d
            return d0
        if isinstance(e, sp.Mul):
            d = DIMLESS
            for a in e.args:
                d = dim_mul(d, walk(a))
            return d
        if isinstance(e, sp.Pow):
            base, ex = e.args
            db = walk(base)
            if walk(ex) != DIMLESS:
                raise BiosimError(f"{where}: the exponent '{ex}' must be dimensionless")
            if db == DIMLESS:
                return DIMLESS
            if not ex.is_Number:
                raise BiosimError(f"{where}: '{base}' has units ({format_dim(db)}); its power '{ex}' must be a number")
            return dim_pow(db, _fraction(ex))
        if isinstance(e, sp.core.relational.Relational):
            da, db = walk(e.lhs), walk(e.rhs)
            if not same(da, db):
                raise mismatch(e.lhs, da, e.rhs, db)
            return DIMLESS
        if isinstance(e, (sp.And, sp.Or, sp.Not)):
            for a in e.args:
                walk(a)
            return DIMLESS
        if isinstance(e, sp.Function):
            for a in e.args:
                d = walk(a)
                if d != DIMLESS:
                    raise BiosimError(f"{where}: the argument '{a}' of {e.func.__name__} must be dimensionless, "
                                      f"not {format_dim(d)}")
            return DIMLESS
        raise BiosimError(f"{where}: '{e}' is not supported in equations")

    return walk(expr)
