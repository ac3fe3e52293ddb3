"""Generate the Python module of a neuron model written as equations (the slow path of
:meth:`biosim.equations.Model.from_equations`, taken once per model text: its result is cached).

Parse, check units, choose an integration method per variable, hoist what depends only on
parameters, and print ``constants``/``initial``/``t_ref_ms``/``step``/``threshold``/``reset``.
"""

from __future__ import annotations

import math
import re

import sympy as sp

from biosim.equations import codegen
from biosim.equations.methods import DT, System, choose_methods, update_expressions
from biosim.equations.lines import parse_equations
from biosim.equations.parse import parse_condition, parse_statements
from biosim.equations.scope import Scope, rational
from biosim.equations.units import dim_mul, field_name, format_dim, parse_unit
from biosim.errors import BiosimError, unknown

__all__ = ["neuron_source"]

_TIME = (0, 0, 1, 0, 0, 0, 0)


def neuron_source(label, equations, units, threshold, reset, ref, method, input_name, input_unit, init_q) -> str:
    """The whole pipeline: parse, check units, choose methods, generate the module's text."""
    eqs = parse_equations(equations)
    sc = Scope()
    var_units = {e.name: e.unit for e in eqs}
    for e in eqs:
        sc.declare(e.name, e.unit, "variable")
    for pname, unit in units.items():
        sc.declare(pname, unit, "parameter")
    text_all = " ".join([e.expr_text for e in eqs] + [threshold or "", reset or ""])
    uses_input = re.search(rf"\b{re.escape(input_name)}\b", text_all) is not None
    if uses_input:
        if input_unit is None:
            raise BiosimError(f"the equations use the external input '{input_name}': give its unit as input_unit "
                              f"(e.g. input_unit='pA')")
        sc.declare(input_name, input_unit, "input")
    sym, dims, scale = sc.sym, sc.dims, sc.scale
    states = [e.name for e in eqs if e.kind == "diff"]
    consts = [e.name for e in eqs if e.kind == "const"]
    if not states:
        raise BiosimError("the equations have no differential equation ('dx/dt = ... : unit')")
    for e in eqs:
        if "event-driven" in e.flags:
            raise BiosimError(f"equation '{e.line}': 'event-driven' is for synapse models, not neurons")
    parsed = {e.name: sc.parse(e.expr_text, f"equation '{e.line}'") for e in eqs if e.kind != "const"}
    sc.subexprs = {e.name: parsed[e.name] for e in eqs if e.kind == "subexpr"}
    for e in eqs:
        if e.kind != "const":
            want = dims[sym[e.name]]
            sc.check(parsed[e.name], dim_mul(want, tuple(-x for x in _TIME)) if e.kind == "diff" else want,
                     f"equation '{e.line}'")
    to_si, stored = sc.to_si, sc.stored
    f = {r: sp.factor_terms(stored(parsed[r], scale[sym[r]]) * sp.Rational(1, 1000)) for r in states}
    lines = {e.name: e.line for e in eqs}
    inputs = ([input_name] if uses_input else []) + consts
    frozen = {e.name for e in eqs if "unless refractory" in e.flags}
    sysm = System(states, f, sym, list(units), inputs, frozen, lines)
    methods = choose_methods(sysm, method)
    updates, blocks, _ = update_expressions(sysm, methods)

    names = dict(sym)
    cond = None
    if threshold is not None:
        if not isinstance(threshold, str):
            raise BiosimError(f"threshold must be a condition string such as 'v > v_thresh', not {threshold!r}")
        where = f"threshold '{threshold}'"
        cond = parse_condition(threshold, names, where)
        sc.dim(cond, where)
        cond = _stored_condition(cond, to_si)
    statements = []
    if reset is not None:
        for st in parse_statements(reset, names, states + consts, "reset"):
            statements.append((st.target, sc.assignment(st, f"reset '{st.text}'")))
    in_sym = sym.get(input_name) if uses_input else None
    for what, exprs in (("threshold", [cond] if cond is not None else []), ("reset", [e for _, e in statements])):
        if in_sym is not None and any(in_sym in e.free_symbols for e in exprs):
            raise BiosimError(f"the external input '{input_name}' can only appear in the differential equations, "
                              f"not in the {what}")

    pool: dict = {}
    const_syms = {sym[p] for p in units} | {DT}
    order = [r for r in states]
    flat = []
    for r in order:
        flat += [updates[r][0]] + ([updates[r][1]] if updates[r][1] is not None else [])
    if cond is not None:
        flat.append(cond)
    flat += [e for _, e in statements]
    hoisted = iter(codegen.hoist(flat, const_syms, pool))
    updates = {r: (next(hoisted), next(hoisted) if updates[r][1] is not None else None) for r in order}
    cond = next(hoisted) if cond is not None else None
    statements = [(t, next(hoisted)) for t, _ in statements]
    const_list = [sym[p] for p in units] + [DT] + list(pool)
    for blk in blocks:
        const_list += list(blk.phi.values()) + list(blk.gam.values()) + list(blk.phi_ref.values()) + list(blk.gam_ref.values())
    consts_idx = {s: k for k, s in enumerate(const_list)}
    var_names = states + consts
    rows = {n: k for k, n in enumerate(var_names)}
    fields = [field_name(p, units[p]) for p in units]
    if len(set(fields)) != len(fields):
        raise BiosimError("two parameters map to the same field name; rename one")

    param_names = {p: sym[p] for p in units}

    def value_expr(q, target_dim, target_scale, what):
        """A quantity or an expression of the parameters, in the target's stored unit."""
        if isinstance(q, str):
            e = sc.parse(q, what, param_names)
            sc.check(e, target_dim, what, f"'{q}'")
            return sc.stored(e, target_scale)
        s_, d = parse_unit(q[1])
        if d != target_dim:
            raise BiosimError(f"{what}: '{q[0]} {q[1]}' is in {format_dim(d)}, not {format_dim(target_dim)}")
        return sp.Float(q[0]) * rational(s_) / target_scale

    t_ref = sp.Integer(0) if ref is None else sp.sympify(value_expr(ref, _TIME, sp.Rational(1, 1000), "refractory"))
    if t_ref.is_Number and t_ref < 0:
        raise BiosimError(f"refractory = {ref} must be >= 0")
    for var in init_q:
        if var not in rows:
            raise unknown(f"variable of model '{label}'", var, var_names)
    init_exprs = {var: (value_expr(init_q[var], dims[sym[var]], scale[sym[var]], f"init of '{var}'")
                        if var in init_q else sp.Integer(0)) for var in var_names}
    head = [
        f'"""Generated by biosim from the equations of model {label!r}; do not edit.',
        "", *[f"    {e.line}" for e in eqs],
        f"threshold: {threshold}", f"reset: {reset}", f"methods: {methods}", '"""', "",
        "import math", "", "import numpy as np", "from numba import njit", "",
        "from biosim.equations.runtime import clip, exp_euler, exprel, propagator  # noqa: F401", "",
        f"VAR_NAMES = {tuple(var_names)!r}", f"VAR_UNITS = {tuple(var_units[v] for v in var_names)!r}", f"FROZEN = {tuple(v for v in var_names if v in frozen)!r}",
        f"METHODS = {methods!r}", f"PARAMS = {[(p, fld, units[p]) for p, fld in zip(units, fields)]!r}",
        f"INPUT_UNIT = {(input_unit if uses_input else '')!r}", "", "",
    ]
    body = [
        codegen.constants_source(list(units), fields, pool, blocks, consts_idx),
        codegen.param_function_source("initial", list(units), fields, init_exprs),
        codegen.param_function_source("t_ref_ms", list(units), fields, t_ref),
        codegen.step_source(updates, rows, consts_idx, frozen, input_name if uses_input else None),
        codegen.threshold_source(cond, rows, consts_idx),
        codegen.reset_source(statements, rows, consts_idx),
    ]
    return "\n".join(head) + "\n\n\n".join(body) + "\n"


def _stored_condition(cond, to_si):
    """The condition with both sides of each comparison in the left side's stored unit."""
    if isinstance(cond, (sp.And, sp.Or, sp.Not)):
        return cond.func(*[_stored_condition(a, to_si) for a in cond.args])
    lhs, rhs = to_si(cond.lhs), to_si(cond.rhs)
    first = lhs.args[0] if isinstance(lhs, sp.Add) else lhs
    coeff = first.as_coeff_Mul()[0]
    k = 1 / abs(coeff) if coeff != 0 and coeff.is_Number and math.isfinite(float(coeff)) else 1
    return cond.func(sp.factor_terms(lhs * k), sp.factor_terms(rhs * k))
