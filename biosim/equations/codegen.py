"""Python source of an equation model: the scalar ``step``/``threshold``/``reset`` functions (same
signature as the built-in models, see :mod:`biosim.neurons.base`) and its ``constants``.

Sub-expressions that depend only on parameters and ``dt`` are computed once per population by
``constants`` (hoisted out of the neuron loop); repeated sub-expressions are shared (sympy's
``cse``).
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from biosim.equations.methods import DT, NOT_REF

__all__ = ["Printer", "hoist", "step_source", "threshold_source", "reset_source", "constants_source",
           "param_function_source"]


class Printer(PythonCodePrinter):
    """Python for numba: ``math`` functions, and the helpers of :mod:`biosim.equations.runtime`."""

    def _print_helper(self, e):
        return f"{type(e).__name__}({', '.join(self._print(a) for a in e.args)})"

    _print_exprel = _print_clip = _print_exp_euler = _print_helper

    def _print_Rational(self, e):
        if max(abs(e.p), e.q) < 2**53:
            return f"({e.p}/{e.q})"
        return repr(float(e))  # numba's integers are 64-bit: a huge literal would not compile

    def _print_Pow(self, e, rational=False):
        # small integer powers as products, multiplied left to right: numba would compute v**4 by
        # repeated squaring and Python's float ** calls C pow(); written out, every backend does the
        # same float operations in the same order
        n = e.exp
        if n.is_Integer and 2 <= abs(int(n)) <= 8:
            base = f"({self._print(e.base)})"
            product = base
            for _ in range(abs(int(n)) - 1):
                product = f"({product} * {base})"
            return product if n > 0 else f"(1.0 / {product})"
        return super()._print_Pow(e, rational=rational)

    def _print_Integer(self, e):
        return str(e.p) if abs(e.p) < 2**53 else repr(float(e))


_P = Printer({"fully_qualified_modules": True, "standard": "python3"})


def pr(e) -> str:
    return _P.doprint(e)


def hoist(exprs: list, const_syms: set, pool: dict) -> list:
    """Replace the parts of ``exprs`` built only from ``const_syms`` by new symbols ``_k<n>``,
    recorded in ``pool`` (symbol -> expression), and return the rewritten expressions."""
    by_expr = {v: k for k, v in pool.items()}

    def name_for(e):
        if e.is_Number or e.is_Symbol:
            return e
        if e in by_expr:
            return by_expr[e]
        s = sp.Symbol(f"_k{len(pool)}", real=True)
        pool[s] = e
        by_expr[e] = s
        return s

    def is_const(e):
        return e.free_symbols <= const_syms and not isinstance(e, sp.core.relational.Relational)

    def walk(e):
        if e.is_Atom:
            return e
        if is_const(e):
            return name_for(e)
        if isinstance(e, (sp.Add, sp.Mul)):
            const = [a for a in e.args if is_const(a) and not a.is_Number]
            rest = [walk(a) for a in e.args if not (is_const(a) and not a.is_Number)]
            if len(const) > 1:
                return e.func(name_for(e.func(*const)), *rest)
            return e.func(*[name_for(a) for a in const], *rest)
        return e.func(*[walk(a) for a in e.args])

    return [walk(e) for e in exprs]


def _loads(used: set, rows: dict, consts: dict) -> list[str]:
    lines = [f"    {n} = _X[{rows[n]}][_i]" for n in rows if sp.Symbol(n, real=True) in used]
    lines += [f"    {s.name} = _c[{k}]" for s, k in consts.items() if s in used]
    return lines


def step_source(updates: dict, rows: dict, consts: dict, frozen: set, input_name: str | None) -> str:
    """``step(_X, _i, _c, _input, _refractory)``: every integrated variable advanced by ``dt``."""
    names = list(updates)
    exprs = []
    for r in names:
        free, ref = updates[r]
        exprs.append(free)
        if ref is not None:
            exprs.append(ref)
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_t"), optimizations="basic")
    used = set().union(*(e.free_symbols for _, e in temps), *(e.free_symbols for e in reduced)) if exprs else set()
    body = _loads(used, rows, consts)
    if input_name and sp.Symbol(input_name, real=True) in used:
        body.append(f"    {input_name} = _input")
    if NOT_REF in used:
        body.append("    _nr = 0.0 if _refractory else 1.0")
    body += [f"    {s.name} = {pr(e)}" for s, e in temps]
    it = iter(reduced)
    writes = []
    for r in names:
        free = pr(next(it))
        ref = pr(next(it)) if updates[r][1] is not None else (r if r in frozen else None)
        if ref is None:
            writes.append(f"    _X[{rows[r]}][_i] = {free}")
            continue
        # new values into locals first, then a select: a branch around the arithmetic would keep
        # LLVM from vectorising the neuron loop
        body.append(f"    _new_{r} = {free}")
        if ref != r:
            body.append(f"    _ref_{r} = {ref}")
            ref = f"_ref_{r}"
        else:  # r + 0.0: the select stays a select, not a masked store (see biosim.neurons.lif.lif_step)
            ref = f"({r} + 0.0)"
        writes.append(f"    _X[{rows[r]}][_i] = {ref} if _refractory else _new_{r}")
    body += writes
    return "\n".join(["@njit(cache=True)", "def step(_X, _i, _c, _input, _refractory):", *(body or ["    pass"])])


def threshold_source(cond, rows: dict, consts: dict) -> str:
    """``threshold(_X, _i, _c) -> bool``."""
    if cond is None:
        return "@njit(cache=True)\ndef threshold(_X, _i, _c):\n    return False"
    body = _loads(cond.free_symbols, rows, consts)
    return "\n".join(["@njit(cache=True)", "def threshold(_X, _i, _c):", *body, f"    return {pr(cond)}"])


def reset_source(statements: list, rows: dict, consts: dict) -> str:
    """``reset(_X, _i, _c)``: the reset statements in order, each seeing the ones before."""
    used = set().union(*(e.free_symbols for _, e in statements)) | {sp.Symbol(t, real=True) for t, _ in statements}
    body = _loads(used, rows, consts) if statements else []
    body += [f"    {t} = {pr(e)}" for t, e in statements]
    body += [f"    _X[{rows[t]}][_i] = {t}" for t in dict.fromkeys(t for t, _ in statements)]
    return "\n".join(["@njit(cache=True)", "def reset(_X, _i, _c):", *(body or ["    pass"])])


def constants_source(params: list[str], fields: list[str], pool: dict, blocks: list, consts: dict) -> str:
    """``constants(p, dt_ms) -> np.ndarray``: parameters, hoisted expressions, exact propagators,
    in the order of ``consts`` (symbol -> index)."""
    body = [f"    {n} = float(_p.{f})" for n, f in zip(params, fields)]
    body.append(f"    {DT.name} = float(_dt_ms)")
    body += [f"    {s.name} = {pr(e)}" for s, e in pool.items()]
    for b, blk in enumerate(blocks):
        body.append(f"    _M{b} = np.array([{', '.join('[' + ', '.join(pr(x) for x in row) + ']' for row in blk.M)}], dtype=np.float64)")
        body.append(f"    _U{b} = np.array([{', '.join('[' + ', '.join(pr(x) for x in row) + ']' for row in blk.U)}], dtype=np.float64)")
        body += _propagator_lines(f"_Phi{b}", f"_Gam{b}", blk.M, blk.U, b, blk.phi, blk.gam)
        if blk.phi_ref or blk.gam_ref:
            body.append(f"    _M{b}[{blk.frozen_rows}, :] = 0.0")
            body.append(f"    _U{b}[{blk.frozen_rows}, :] = 0.0")
            body += _propagator_lines(f"_PhiR{b}", f"_GamR{b}", blk.M, blk.U, b, blk.phi_ref, blk.gam_ref)
    body.append(f"    return np.array([{', '.join(s.name for s in consts)}], dtype=np.float64)")
    return "\n".join(["def constants(_p, _dt_ms):", *body])


def param_function_source(name: str, params: list[str], fields: list[str], value) -> str:
    """``name(_p)``: ``value`` (an expression, or a dict of them) of the parameters ``_p``."""
    exprs = value if isinstance(value, dict) else {None: value}
    used = set().union(*(sp.sympify(e).free_symbols for e in exprs.values()))
    body = [f"    {n} = float(_p.{f})" for n, f in zip(params, fields) if sp.Symbol(n, real=True) in used]
    if isinstance(value, dict):
        body.append("    return {" + ", ".join(f"{k!r}: float({pr(e)})" for k, e in exprs.items()) + "}")
    else:
        body.append(f"    return float({pr(value)})")
    return "\n".join([f"def {name}(_p):", *body])


def _propagator_lines(phi_name: str, gam_name: str, M, U, b: int, phi: dict, gam: dict) -> list[str]:
    """Lines computing one propagator of exact block ``b`` and reading the entries the step uses."""
    lines = [f"    {phi_name}, {gam_name} = propagator(_M{b}, _U{b}, dt)"]
    lines += [f"    {sym.name} = {phi_name}[{r}, {c}]" for (r, c), sym in phi.items()]
    lines += [f"    {sym.name} = {gam_name}[{r}, {c}]" for (r, c), sym in gam.items()]
    return lines
