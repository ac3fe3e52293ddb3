r"""Integration methods for equation models, chosen as Brian2 chooses them.

The system is :math:`dx_r/dt = f_r(x, p, u)` in the variables' own units per ms, with parameters
``p`` (one value per population) and inputs ``u`` (the external input and per-neuron constants,
constant over a step).

- ``exact``: the system is linear with constant coefficients, :math:`dx/dt = M x + U (1, u)`;
  one step is :math:`x' = \Phi x + \Gamma (1, u)` from the matrix exponential
  (:func:`biosim.equations.runtime.propagator`), exact also for equal time constants.
- ``exponential_euler``: each :math:`f_r` is linear in its own variable,
  :math:`f_r = A_r x_r + B_r` with ``A``, ``B`` taken at the start of the step;
  :math:`x_r' = (x_r + B_r/A_r) e^{A_r dt} - B_r/A_r`. Chosen automatically only where ``A``
  and ``B`` are free of :math:`x_r`; forced, it accepts Brian2's looser split (the terms of the
  expanded :math:`f_r` that carry a factor :math:`x_r`).
- ``euler``, ``rk2`` (midpoint), ``rk4``: explicit Runge-Kutta.

Automatic choice (``method=None``): ``exact`` when the whole system is linear; otherwise the
variables that form a closed linear subsystem (synaptic decays, say) are integrated exactly and
the others by ``exponential_euler`` when it applies, else ``euler`` (Brian2's default fallback).
A forced method applies to every variable, as in Brian2.

Variables marked "unless refractory" have zero derivative while the neuron is refractory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from biosim.errors import BiosimError, unknown

__all__ = ["METHODS", "System", "choose_methods", "update_expressions"]

METHODS = ("exact", "exponential_euler", "euler", "rk2", "rk4")
DT = sp.Symbol("dt", real=True)
NOT_REF = sp.Symbol("_nr", real=True)


class exp_euler(sp.Function):  # noqa: N801 (printed as the runtime helper of that name)
    """``exp_euler(x, a, b, dt)``: one exponential-Euler step (:func:`biosim.equations.runtime.exp_euler`)."""

    nargs = 4


@dataclass
class System:
    """Differential equations in stored units (time in ms), ready for integration."""

    states: list[str]                 # integrated variables, in row order
    f: dict[str, sp.Expr]             # d(state)/dt per ms
    sym: dict[str, sp.Symbol]         # every name -> its symbol
    params: list[str]                 # per-population parameters
    inputs: list[str]                 # external input and per-neuron constants
    frozen: set[str] = field(default_factory=set)
    lines: dict[str, str] = field(default_factory=dict)


def _free_of(expr, names, sym) -> bool:
    return not any(sym[n] in expr.free_symbols for n in names)


def _linear_coefficients(sysm: System, r: str):
    """``(M row, U row)`` of ``f_r`` if it is linear with constant coefficients, else None."""
    f = sysm.f[r]
    varying = sysm.states + sysm.inputs
    row, urow = {}, {}
    for s in varying:
        d = sp.diff(f, sysm.sym[s])
        if not _free_of(d, varying, sysm.sym):
            return None
        if d != 0:
            (row if s in sysm.states else urow)[s] = d
    const = f.subs({sysm.sym[s]: 0 for s in varying})
    if not _free_of(const, varying, sysm.sym) or const.has(sp.zoo, sp.nan):
        return None
    return row, urow, const


def _conditionally_linear(sysm: System, r: str):
    """``(A, B)`` with ``f_r = A x_r + B`` (A, B free of ``x_r``), or None."""
    x = sysm.sym[r]
    a = sp.diff(sysm.f[r], x)
    if x in a.free_symbols:
        return None
    b = sysm.f[r].subs(x, 0)
    if b.has(sp.zoo, sp.nan):
        return None
    return a, b


def _collected(sysm: System, r: str):
    """Brian2's looser split for a forced ``exponential_euler``: expand ``f_r`` and collect the
    terms in ``x_r``; ``A`` may still depend on ``x_r`` (it is evaluated at the start of the
    step, e.g. a sodium current ``g m_inf(v)^3 (v - E)``), and so may ``B``. None when the
    expansion has other powers of ``x_r``."""
    exact = _conditionally_linear(sysm, r)
    if exact is not None:
        return exact
    x = sysm.sym[r]
    terms = sp.collect(sp.expand(sysm.f[r]), x, evaluate=False)
    if set(terms) - {x, sp.S.One} or x not in terms:
        return None
    return terms[x], terms.get(sp.S.One, sp.Integer(0))


def choose_methods(sysm: System, method: str | None) -> dict[str, str]:
    """Method per integrated variable (see the module docstring)."""
    if method is not None and method not in METHODS:
        raise unknown("integration method", method, METHODS)
    linear = {r for r in sysm.states if _linear_coefficients(sysm, r) is not None}
    closed = set(linear)
    changed = True
    while changed:
        changed = False
        for r in list(closed):
            row = _linear_coefficients(sysm, r)[0]
            if any(s not in closed for s in row):
                closed.discard(r)
                changed = True
    if method == "exact":
        bad = [r for r in sysm.states if r not in linear]
        if bad:
            raise BiosimError(f"method 'exact' needs linear equations with constant coefficients; "
                              f"'{sysm.lines.get(bad[0], bad[0])}' is not")
        return {r: "exact" for r in sysm.states}
    if method == "exponential_euler":
        bad = [r for r in sysm.states if _collected(sysm, r) is None]
        if bad:
            raise BiosimError(f"method 'exponential_euler' needs each equation linear in its own variable; "
                              f"'{sysm.lines.get(bad[0], bad[0])}' is not")
        return {r: "exponential_euler" for r in sysm.states}
    if method is not None:
        return {r: method for r in sysm.states}
    rest = [r for r in sysm.states if r not in closed]
    rest_method = "exponential_euler" if all(_conditionally_linear(sysm, r) for r in rest) else "euler"
    return {r: ("exact" if r in closed else rest_method) for r in sysm.states}


def _reach(rows: dict[str, dict], group: list[str]) -> dict[str, set[str]]:
    """For each variable, the variables of ``group`` it depends on, directly or not (itself included)."""
    dep = {r: {r} | set(rows[r]) for r in group}
    changed = True
    while changed:
        changed = False
        for r in group:
            new = set().union(*(dep[s] for s in dep[r]))
            if new != dep[r]:
                dep[r], changed = new, True
    return dep


@dataclass
class Exact:
    """What the constants function needs to build one exact block."""

    group: list[str]
    inputs: list[str]
    M: list[list[sp.Expr]]
    U: list[list[sp.Expr]]
    frozen_rows: list[int]
    phi: dict[tuple[int, int], sp.Symbol]
    gam: dict[tuple[int, int], sp.Symbol]
    phi_ref: dict[tuple[int, int], sp.Symbol]
    gam_ref: dict[tuple[int, int], sp.Symbol]


def _exact_updates(sysm: System, group: list[str]):
    coeffs = {r: _linear_coefficients(sysm, r) for r in group}
    rows = {r: c[0] for r, c in coeffs.items()}
    inputs = [u for u in sysm.inputs if any(u in c[1] for c in coeffs.values())]
    M = [[coeffs[r][0].get(s, sp.Integer(0)) for s in group] for r in group]
    U = [[coeffs[r][2]] + [coeffs[r][1].get(u, sp.Integer(0)) for u in inputs] for r in group]
    dep = _reach(rows, group)
    frozen_rows = [k for k, r in enumerate(group) if r in sysm.frozen]
    blk = Exact(group, inputs, M, U, frozen_rows, {}, {}, {}, {})
    updates = {}
    for a, r in enumerate(group):
        needs_ref = bool(dep[r] & sysm.frozen) and r not in sysm.frozen

        def build(phi, gam, tag):
            terms = []
            for b, s in enumerate(group):
                if s in dep[r]:
                    phi[(a, b)] = sp.Symbol(f"_{tag}phi_{r}_{s}", real=True)
                    terms.append(phi[(a, b)] * sysm.sym[s])
            sources = dep[r]
            for k, col in enumerate([None] + inputs):
                if any((U[group.index(s)][k] != 0) for s in sources):
                    gam[(a, k)] = sp.Symbol(f"_{tag}gam_{r}_{col or 'const'}", real=True)
                    terms.append(gam[(a, k)] * (sysm.sym[col] if col else 1))
            return sp.Add(*terms)

        free = build(blk.phi, blk.gam, "")
        ref = build(blk.phi_ref, blk.gam_ref, "r") if needs_ref else None
        updates[r] = (free, ref)
    return updates, blk


def _stage(sysm: System, group: list[str], shift: dict[str, sp.Expr]) -> dict[str, sp.Expr]:
    """``dt * f_r`` at the state shifted by ``shift`` (frozen variables scaled by not-refractory)."""
    sub = {sysm.sym[s]: sysm.sym[s] + d for s, d in shift.items()}
    out = {}
    for r in group:
        k = DT * sysm.f[r].xreplace(sub)
        out[r] = k * NOT_REF if r in sysm.frozen else k
    return out


def update_expressions(sysm: System, methods: dict[str, str]):
    """New value of every integrated variable, as sympy expressions.

    Returns ``(updates, exact_blocks, uses_not_ref)`` where ``updates[r] = (free, ref)``: ``free``
    is the new value outside the refractory period; ``ref`` the one inside it for a variable not
    frozen itself whose update reads a frozen one (else None; frozen variables keep their value).
    Symbols ``_phi...``/``_gam...`` are filled in by the constants function from
    ``exact_blocks``; ``_nr`` (1 outside, 0 inside the refractory period) appears in Runge-Kutta
    stages of frozen variables.
    """
    updates: dict[str, tuple] = {}
    blocks = []
    exact = [r for r in sysm.states if methods[r] == "exact"]
    if exact:
        up, blk = _exact_updates(sysm, exact)
        updates.update(up)
        blocks.append(blk)
    for r in sysm.states:
        if methods[r] == "exponential_euler":
            a, b = _collected(sysm, r)
            updates[r] = (exp_euler(sysm.sym[r], a, b, DT), None)
        elif methods[r] == "euler":
            updates[r] = (sysm.sym[r] + DT * sysm.f[r], None)
    explicit = [r for r in sysm.states if methods[r] in ("rk2", "rk4")]
    uses_nr = False
    if explicit:
        uses_nr = any(r in sysm.frozen for r in explicit)
        x = {r: sysm.sym[r] for r in explicit}
        k1 = _stage(sysm, explicit, {})
        if methods[explicit[0]] == "rk2":
            k2 = _stage(sysm, explicit, {r: k1[r] / 2 for r in explicit})
            for r in explicit:
                updates[r] = (x[r] + k2[r], None)
        else:
            k2 = _stage(sysm, explicit, {r: k1[r] / 2 for r in explicit})
            k3 = _stage(sysm, explicit, {r: k2[r] / 2 for r in explicit})
            k4 = _stage(sysm, explicit, {r: k3[r] for r in explicit})
            for r in explicit:
                updates[r] = (x[r] + (k1[r] + 2 * k2[r] + 2 * k3[r] + k4[r]) / 6, None)
    return updates, blocks, uses_nr
