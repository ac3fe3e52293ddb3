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
import math
import re
from pathlib import Path

import sympy as sp

from biosim._generated import load_keyed, source_hash
from biosim.equations import codegen
from biosim.equations.methods import DT, System, choose_methods, update_expressions
from biosim.equations.parse import parse_equations, parse_statements
from biosim.equations.scope import Scope, field_name
from biosim.equations.units import dim_mul, format_dim, parse_quantity, parse_unit
from biosim.errors import BiosimError
from biosim.neurons.base import ModelSpec, check_finite

__all__ = ["Model"]

_TIME = (0, 0, 1, 0, 0, 0, 0)


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

    def __call__(self, **overrides):
        fields = {f.name for f in dataclasses.fields(self.params_cls)}
        for key in overrides:
            if key not in fields:
                from biosim.errors import unknown
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
        parameters = dict(parameters or {})
        init = dict(init or {})
        values, units = {}, {}
        for pname, q in parameters.items():
            if not isinstance(pname, str) or not re.fullmatch(r"[A-Za-z]\w*", pname):
                raise BiosimError(f"parameter name {pname!r} must be an identifier")
            values[pname], units[pname] = parse_quantity(q, f"parameter '{pname}'")
        if method is not None and not isinstance(method, str):
            raise BiosimError(f"method = {method!r} must be a method name")
        if refractory is not None and not isinstance(refractory, (str, int, float, tuple, list)):
            raise BiosimError(f"refractory = {refractory!r} must be a time such as '5 ms' or a parameter name")
        ref = None if refractory in (None, 0, 0.0) else _quantity_or_expression(refractory, "refractory")
        init_q = {var: _quantity_or_expression(q, f"init of '{var}'") for var, q in init.items()}
        key = json.dumps({"eq": equations if isinstance(equations, str) else repr(equations), "units": units,
                          "threshold": threshold, "reset": reset, "ref": ref, "method": method,
                          "input": [input_name, input_unit], "init": init_q, "v": _generator_version()},
                         sort_keys=True, default=str)
        label = name or f"eq_{source_hash(key)[:8]}"
        if not re.fullmatch(r"[A-Za-z]\w*", label):
            raise BiosimError(f"model name {label!r} must be an identifier")
        module = load_keyed(f"biosim_model_{label}", key, lambda: _generate(
            label, equations, units, threshold, reset, ref, method, input_name, input_unit, init_q))
        return _from_module(label, module, values)


def _from_module(label: str, module, values: dict) -> Model:
    fields = [(f, float, dataclasses.field(default=values[n])) for n, f, _ in module.PARAMS]

    def post_init(self):
        check_finite(self)

    params_cls = dataclasses.make_dataclass(
        f"{label}_params", fields, frozen=True, kw_only=True, namespace={"__post_init__": post_init})
    params_cls.__doc__ = f"Parameters of the equation model '{label}'."

    spec = ModelSpec(
        name=label, params_cls=params_cls, var_names=module.VAR_NAMES, frozen_vars=module.FROZEN,
        constants=module.constants, initial=module.initial, t_ref_ms=module.t_ref_ms, step=module.step,
        threshold=module.threshold, reset=module.reset, current_unit=module.INPUT_UNIT,
        var_units=module.VAR_UNITS,
    )
    from biosim.neurons import register_model

    register_model(spec)
    return Model(label, spec, params_cls, dict(module.METHODS), module.__file__)


def _generate(label, equations, units, threshold, reset, ref, method, input_name, input_unit, init_q) -> str:
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
        cond = sc.parse(threshold, where)
        if not isinstance(cond, (sp.core.relational.Relational, sp.And, sp.Or, sp.Not)):
            raise BiosimError(f"{where} is not a condition (use a comparison such as 'v > v_thresh')")
        sc.dim(cond, where)
        cond = _stored_condition(cond, to_si)
    statements = []
    if reset is not None:
        for st in parse_statements(reset, names, states + consts, "reset"):
            statements.append((st.target, sc.assignment(st, f"reset '{st.text}'")))

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
        return sp.Float(q[0]) * s_ / target_scale

    t_ref = sp.Integer(0) if ref is None else sp.sympify(value_expr(ref, _TIME, sp.Rational(1, 1000), "refractory"))
    if t_ref.is_Number and t_ref < 0:
        raise BiosimError(f"refractory = {ref} must be >= 0")
    for var in init_q:
        if var not in rows:
            from biosim.errors import unknown
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
        f"INPUT_UNIT = {(input_unit or '1')!r}", "", "",
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


def _quantity_or_expression(value, what: str):
    """``(number, unit)`` for a quantity, else the text of an expression of the parameters."""
    if isinstance(value, str):
        try:
            return parse_quantity(value, what)
        except BiosimError:
            return value.strip()
    return parse_quantity(value, what)


def _stored_condition(cond, to_si):
    """The condition with both sides of each comparison in the left side's stored unit."""
    if isinstance(cond, (sp.And, sp.Or, sp.Not)):
        return cond.func(*[_stored_condition(a, to_si) for a in cond.args])
    lhs, rhs = to_si(cond.lhs), to_si(cond.rhs)
    first = lhs.args[0] if isinstance(lhs, sp.Add) else lhs
    coeff = first.as_coeff_Mul()[0]
    k = 1 / abs(coeff) if coeff != 0 and coeff.is_Number and math.isfinite(float(coeff)) else 1
    return cond.func(sp.factor_terms(lhs * k), sp.factor_terms(rhs * k))
