"""Synapse models written as equations: per-synapse variables, event-driven traces, and the
statements run when a spike arrives (``on_pre``) or the target spikes (``on_post``), as in
Brian2's ``Synapses``.

Example: pair-based STDP, the text twin of :class:`biosim.STDP`::

    stdp = SynapseModel.from_equations(
        '''
        w : mV
        dapre/dt = -apre / tau_pre : 1 (event-driven)
        dapost/dt = -apost / tau_post : 1 (event-driven)
        ''',
        on_pre="ge += w; w = clip(w - a_minus * apost, w_min, w_max); apre += 1",
        on_post="w = clip(w + a_plus * apre, w_min, w_max); apost += 1",
        parameters={"tau_pre": "20 ms", "tau_post": "20 ms", "a_plus": "0.01 mV",
                    "a_minus": "0.0105 mV", "w_min": "0 mV", "w_max": "1 mV"})
    net.connect(inputs, exc, synapse=stdp(), init={"w": 0.5}, rule=...)

Statements may use the synapse's variables and parameters, the target neuron's variables (``ge``
or ``ge_post``; a variable marked "unless refractory" ignores writes while the target is
refractory, as plain projections do) and read the source neuron's (``v_pre``). Event-driven
equations must be linear in their own variable with constant coefficients (``dx/dt = a x + b``):
they are advanced exactly over the time since the synapse's last event.

A model is generated (and cached on disk) once per pair of neuron models it connects, so the
names and units of the target's variables are checked like everything else.
"""

from __future__ import annotations

import dataclasses
import json
import re

import sympy as sp

from biosim._generated import load_keyed, source_hash
from biosim.equations import codegen
from biosim.equations.methods import DT
from biosim.equations.model import _generator_version
from biosim.equations.parse import parse_equations, parse_statements
from biosim.equations.scope import Scope, field_name
from biosim.equations.units import dim_mul, parse_quantity
from biosim.errors import BiosimError, unknown
from biosim.neurons.base import check_finite
from biosim.synapses.spec import SynapseSpec

__all__ = ["SynapseModel"]

_PER_TIME = (0, 0, -1, 0, 0, 0, 0)
_ELAPSED = sp.Symbol("_h", real=True)


class SynapseModel:
    """A synapse model defined by equations and statements (see :meth:`from_equations`).

    Calling it returns its parameters (a frozen dataclass, units in the field names), to pass as
    ``synapse=`` to :meth:`biosim.Network.connect`.
    """

    def __init__(self, name: str, equations: str, on_pre: str, on_post: str | None, units: dict, values: dict):
        self.name = name
        self.equations = equations
        self.on_pre = on_pre
        self.on_post = on_post
        self.units = units
        self.fields = [field_name(p, u) for p, u in units.items()]
        self.var_names = tuple(e.name for e in parse_equations(equations)) if equations.strip() else ()
        fields = [(f, float, dataclasses.field(default=values[p])) for p, f in zip(units, self.fields)]

        def post_init(obj):
            check_finite(obj)

        self.params_cls = dataclasses.make_dataclass(
            f"{name}_params", fields, frozen=True, kw_only=True, namespace={"__post_init__": post_init})
        self.params_cls.__doc__ = f"Parameters of the synapse model '{name}'."
        self.params_cls._biosim_synapse_model = self
        self._bound: dict = {}

    def __call__(self, **overrides):
        names = [f.name for f in dataclasses.fields(self.params_cls)]
        for key in overrides:
            if key not in names:
                raise unknown(f"parameter of synapse model '{self.name}'", key, names)
        return self.params_cls(**overrides)

    def __repr__(self):
        return f"<SynapseModel '{self.name}': variables {', '.join(self.var_names) or 'none'}>"

    @classmethod
    def from_equations(cls, equations: str = "", *, on_pre: str, on_post: str | None = None,
                       parameters: dict | None = None, name: str | None = None) -> SynapseModel:
        """Define a synapse model.

        Parameters
        ----------
        equations : str
            Per-synapse variables (``w : mV``) and event-driven equations
            (``dapre/dt = -apre / tau_pre : 1 (event-driven)``), one per line; may be empty.
        on_pre : str
            Statements run when a presynaptic spike arrives (after the projection's delay),
            e.g. ``"ge += w"`` or ``"v += J"``.
        on_post : str, optional
            Statements run when the target neuron spikes.
        parameters : dict
            ``name -> quantity`` (``"20 ms"``); dataclass fields are ``name_<unit>``.
        name : str, optional
            Name (default ``syn_<hash>``).
        """
        if not isinstance(equations, str):
            raise BiosimError(f"equations must be a string, not {type(equations).__name__}")
        if not isinstance(on_pre, str) or not on_pre.strip():
            raise BiosimError("on_pre must be statements such as 'ge += w'")
        if on_post is not None and not isinstance(on_post, str):
            raise BiosimError("on_post must be statements such as 'apost += 1'")
        values, units = {}, {}
        for pname, q in dict(parameters or {}).items():
            if not isinstance(pname, str) or not re.fullmatch(r"[A-Za-z]\w*", pname):
                raise BiosimError(f"parameter name {pname!r} must be an identifier")
            values[pname], units[pname] = parse_quantity(q, f"parameter '{pname}'")
        if equations.strip():
            for e in parse_equations(equations):
                if e.kind == "subexpr" or (e.kind == "diff" and "event-driven" not in e.flags):
                    raise BiosimError(f"synapse equation '{e.line}': only per-synapse variables ('w : mV') and "
                                      f"event-driven equations ('... : 1 (event-driven)') are supported")
        label = name or "syn_" + source_hash(json.dumps([equations, on_pre, on_post, units]))[:8]
        if not re.fullmatch(r"[A-Za-z]\w*", label):
            raise BiosimError(f"synapse model name {label!r} must be an identifier")
        return cls(label, equations, on_pre, on_post, units, values)

    def bind(self, tgt_spec, src_spec=None) -> SynapseSpec:
        """The engine's form of this model between a source of model ``src_spec`` (None for an input
        group) and a target population of model ``tgt_spec``; statements are checked here."""
        ident = (id(tgt_spec), id(src_spec))
        if ident not in self._bound:
            if not tgt_spec.var_units:
                raise BiosimError(f"neuron model '{tgt_spec.name}' does not declare the units of its variables "
                                  f"(ModelSpec.var_units), which synapse models need")
            side = lambda spec: None if spec is None else [spec.var_names, spec.var_units]  # noqa: E731
            key = json.dumps({"eq": self.equations, "pre": self.on_pre, "post": self.on_post, "units": self.units,
                              "tgt": side(tgt_spec), "src": side(src_spec), "v": _generator_version()})
            module = load_keyed(f"biosim_synapse_{self.name}", key, lambda: self._generate(tgt_spec, src_spec))
            self._bound[ident] = SynapseSpec(
                name=self.name, params_cls=self.params_cls, var_names=module.VAR_NAMES, constants=module.constants,
                on_pre=module.on_pre, on_post=module.on_post, has_post=self.on_post is not None)
        return self._bound[ident]

    def _generate(self, tgt_spec, src_spec) -> str:
        eqs = parse_equations(self.equations) if self.equations.strip() else []
        sc = Scope()
        for e in eqs:
            sc.declare(e.name, e.unit, "synapse variable")
        for pname, unit in self.units.items():
            sc.declare(pname, unit, "parameter")
        names = dict(sc.sym)
        post_rows, pre_rows = {}, {}
        for side, spec, rows in (("post", tgt_spec, post_rows), ("pre", src_spec, pre_rows)):
            if spec is None:
                continue
            for r, (var, unit) in enumerate(zip(spec.var_names, spec.var_units)):
                s = sc.declare(f"{var}_{side}", unit, f"{side}-synaptic variable")
                rows[s.name] = r
                names[f"{var}_{side}"] = s
                if side == "post" and var not in names:
                    names[var] = s
        events = [e for e in eqs if e.kind == "diff"]
        advance = []
        for e in events:
            where = f"synapse equation '{e.line}'"
            rhs = sc.parse(e.expr_text, where, names)
            x = sc.sym[e.name]
            sc.check(rhs, dim_mul(sc.dims[x], _PER_TIME), where)
            f = sp.factor_terms(sc.stored(rhs, sc.scale[x]) * sp.Rational(1, 1000))
            a, b = sp.diff(f, x), f.subs(x, 0)
            params = {sc.sym[p] for p in self.units}
            if not (a.free_symbols <= params and b.free_symbols <= params):
                raise BiosimError(f"{where}: an event-driven equation must be linear in its own variable with "
                                  f"constant coefficients (dx/dt = a*x + b)")
            advance.append((e.name, a, b))
        targets = [e.name for e in eqs if e.kind == "const" or e.kind == "diff"]
        targets += [n for n, s in names.items() if s.name in post_rows]
        pathways = {}
        for label, text in (("on_pre", self.on_pre), ("on_post", self.on_post)):
            statements = []
            for st in parse_statements(text or "", names, targets, label):
                target = names[st.target].name
                st = type(st)(target, st.op, st.expr, st.text)
                statements.append((target, sc.assignment(st, f"{label} '{st.text}'")))
            pathways[label] = statements
        pool: dict = {}
        const_syms = {sc.sym[p] for p in self.units} | {DT}
        flat = [e for _, a, b in advance for e in (a, b)] + [e for sts in pathways.values() for _, e in sts]
        hoisted = iter(codegen.hoist(flat, const_syms, pool))
        advance = [(n, next(hoisted), next(hoisted)) for n, _, _ in advance]
        pathways = {k: [(t, next(hoisted)) for t, _ in sts] for k, sts in pathways.items()}
        consts_idx = {s: k for k, s in enumerate([sc.sym[p] for p in self.units] + [DT] + list(pool))}
        syn_rows = {e.name: k for k, e in enumerate(eqs)}
        head = [
            f'"""Generated by biosim from the synapse model {self.name!r} for targets of model '
            f'{tgt_spec.name!r}; do not edit."""', "",
            "import math  # noqa: F401", "", "import numpy as np", "from numba import njit", "",
            "from biosim.equations.runtime import clip, exp_euler, exprel  # noqa: F401", "",
            f"VAR_NAMES = {tuple(syn_rows)!r}", "", "",
        ]
        body = [codegen.constants_source(list(self.units), self.fields, pool, [], consts_idx)]
        for label, statements in pathways.items():
            body.append(_pathway_source(label, statements, advance, syn_rows, post_rows, pre_rows, consts_idx))
        return "\n".join(head) + "\n\n\n".join(body) + "\n"


def _pathway_source(label, statements, advance, syn_rows, post_rows, pre_rows, consts_idx) -> str:
    """``on_pre``/``on_post``: advance the event-driven variables, run the statements, write back."""
    used = set().union(*(e.free_symbols for _, e in statements), *(a.free_symbols | b.free_symbols for _, a, b in advance))
    used |= {sp.Symbol(t, real=True) for t, _ in statements}
    lines = [f"    {n} = _S[{r}, _k]" for n, r in syn_rows.items()]
    lines += [f"    {s.name} = _c[{k}]" for s, k in consts_idx.items() if s in used or (s == DT and advance)]
    lines += [f"    {n} = _X[{r}, _j]" for n, r in post_rows.items() if sp.Symbol(n, real=True) in used]
    lines += [f"    {n} = _X[{r}, _i]" for n, r in pre_rows.items() if sp.Symbol(n, real=True) in used]
    if advance:
        lines.append(f"    {_ELAPSED.name} = _elapsed * {DT.name}")
    lines += [f"    {n} = exp_euler({n}, {codegen.pr(a)}, {codegen.pr(b)}, {_ELAPSED.name})" for n, a, b in advance]
    lines += [f"    {t} = {codegen.pr(e)}" for t, e in statements]
    lines += [f"    _S[{r}, _k] = {n}" for n, r in syn_rows.items()]
    for t in dict.fromkeys(t for t, _ in statements):
        if t in post_rows:
            lines.append(f"    if not (_gate[{post_rows[t]}, _j] and _refractory):")
            lines.append(f"        _X[{post_rows[t]}, _j] = {t}")
    return "\n".join(["@njit(cache=True)", f"def {label}(_S, _k, _X, _i, _j, _c, _gate, _refractory, _elapsed):",
                      *(lines or ["    pass"])])
