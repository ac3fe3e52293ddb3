"""The numba-cpu backend: one compiled kernel, specialised to a network's models, advances a whole
:class:`~biosim.backends.plan.Plan`.

:func:`kernel` generates the Python source of a module for a tuple of
:class:`~biosim.neurons.base.ModelSpec` (the kernel of :mod:`biosim.backends.kernel_body`, plus
``pop_step``/``pop_threshold``/``pop_reset`` with one branch per model) and imports it with
:func:`biosim._generated.load_source`. Each branch calls the loops of one model over a
population's neurons, generated once per model (:func:`model_source`) in a module of their own:
the model's ``njit`` functions, imported from wherever they are defined, are compiled into those
loops from their ``py_func`` with ``inline="always"`` (a function Numba loaded from its own
on-disk cache is object code, which LLVM cannot inline, and a call per neuron cost CUBA's loop
about 15 %), and the loops are cached on their own, so a model's maths is compiled once, not once
per kernel that uses it. What does not depend on the models is compiled once for all kernels
(:mod:`biosim.backends.in_flight`, :mod:`biosim.backends.phases`). Each generated text names the
hash of the source of every module its code comes from, so the file name (the hash of the text)
changes whenever that source does, and Numba's on-disk cache beside the file is never stale; an
unchanged network loads the compiled kernel instead of compiling it. No model is named in this
package: adding a neuron model needs no change here.
"""

from __future__ import annotations

import hashlib
import inspect
import marshal
import sys
from pathlib import Path
from types import FunctionType

from biosim._generated import load_source, source_hash
from biosim.backends import in_flight, phases, spin
from biosim.backends.kernel_body import BUFFER_FULL, HIT, NOT_FINITE, NOT_FINITE_FLAG, OK
from biosim.errors import BiosimError

__all__ = ["BUFFER_FULL", "MAX_THREADS", "NOT_FINITE", "OK", "kernel", "kernel_source", "model_source"]

_TEMPLATE = Path(__file__).with_name("kernel_body.py")
_SOURCE_BEGINS = "# biosim-kernel: source begins\n"
_DISPATCH_BEGINS = "# biosim-kernel: dispatch begins\n"
_DISPATCH_ENDS = "# biosim-kernel: dispatch ends\n"
_ROLES = ("step", "threshold", "reset")

#: Numba's error model for the models' maths (compiled into each model's loops, :func:`model_source`,
#: and the kernel's dispatch to them): "numpy", so that a ``/`` is a plain IEEE divide, without the zero-divisor check
#: (a branch that raises ``ZeroDivisionError``) of the default "python", which stops LLVM from
#: vectorising a model's loop over neurons. A division by zero gives inf or NaN instead, which
#: the kernel reports as ``NOT_FINITE`` of the variable it reaches (or, divided into a finite
#: result, e.g. ``exp(-1/0)``, goes unreported, as in C).
_ERROR_MODEL = "numpy"

#: The model-independent compiled functions the kernel calls (compiled and cached once, not per
#: kernel; the kernel's text carries the hash of their source, so its cache follows them).
_HELPERS = (in_flight.rebuild, in_flight.advance, in_flight.deliver, in_flight.grown, phases.bisect,
            phases.decay_traces, phases.deliver, phases.poisson_input, phases.potentiate, phases.prefetch_rows,
            phases.targets_sorted,
            spin.barrier, spin.check_in)

#: Prefix of the generated module of a neuron model's loops (:func:`model_source`).
_MODEL_PREFIX = "biosim_model"

#: Kernel modules built in this process, by the models they were generated for.
_KERNELS: dict = {}


def MAX_THREADS() -> int:
    """The most threads :func:`kernel` can run on: the size of Numba's thread pool."""
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def kernel(specs, syn_specs=(), threads: int = 1):
    """The compiled ``run_chunk`` for a network whose populations use the models ``specs``.

    Parameters
    ----------
    specs : tuple of ModelSpec
        The network's distinct models; ``Plan.pop_model[p]`` indexes it
        (:func:`biosim.network.compile.model_specs`).
    syn_specs : tuple of SynapseSpec
        The network's synapse models (:class:`biosim.synapses.spec.SynapseSpec`);
        ``Plan.pr_syn[r]`` indexes it.
    threads : int
        Threads per step (at most :func:`MAX_THREADS`): above 1, the kernel runs each chunk in one
        parallel region of that many threads (:mod:`biosim.backends.kernel_body`), with the same results.

    Returns
    -------
    callable
        ``run_chunk(pl, inp, out, step0, n_steps, sp_n, rec_n)``, a Numba dispatcher with the
        contract described in :mod:`biosim.backends` (for ``threads > 1``, a function that calls
        the kernel's ``run_chunk_threads`` on that many of Numba's threads, which it keeps as its
        ``dispatcher``, with ``threads``, the dispatcher's last argument). Compiled on its first call (or
        loaded from Numba's cache); memoised per ``specs`` in this process.
    """
    specs, syn_specs = tuple(specs), tuple(syn_specs)
    key = (tuple((s.name, len(s.var_names), s.step, s.threshold, s.reset) for s in specs),
           tuple((s.name, s.on_pre, s.on_post) for s in syn_specs))
    mod = _KERNELS.get(key)
    if mod is None:
        for spec in specs:  # the kernel imports them
            load_source(_MODEL_PREFIX, model_source(spec))
        mod = load_source("biosim_kernel", kernel_source(specs, syn_specs))
        _KERNELS[key] = mod
    if threads == 1:
        return mod.run_chunk
    return _on_threads(mod.run_chunk_threads, int(threads))


def _on_threads(fn, threads: int):
    """``run_chunk`` calling the threaded kernel ``fn`` on ``threads`` of Numba's threads."""
    import numba

    def run_chunk(pl, inp, out, step0, n_steps, sp_n, rec_n):
        old = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            return fn(pl, inp, out, step0, n_steps, sp_n, rec_n, threads)
        finally:
            numba.set_num_threads(old)

    run_chunk.dispatcher, run_chunk.threads = fn, threads  # what it calls, with ``threads`` last
    return run_chunk


def kernel_source(specs, syn_specs=()) -> str:
    """The text of the kernel module :func:`kernel` generates for ``specs`` (and ``syn_specs``)."""
    specs = tuple(specs)
    if not specs:
        raise BiosimError("a kernel needs at least one neuron model")
    text = _TEMPLATE.read_text()
    _, found, body = text.partition(_SOURCE_BEGINS)
    head, found2, rest = body.partition(_DISPATCH_BEGINS)
    _, found3, tail = rest.partition(_DISPATCH_ENDS)
    if not (found and found2 and found3):  # pragma: no cover - the template is part of the package
        raise RuntimeError(f"{_TEMPLATE} lost its biosim-kernel markers")
    header = [
        "# Generated by biosim.backends.numba_cpu.kernel from biosim/backends/kernel_body.py; do not edit.",
        "# Compiled helpers it calls (module, hash of its text): "
        + ", ".join(f"{m} {h}" for m, h in _source_hashes(_HELPERS)),
        "# Models (index, name, state variables, then each source module and the hash of its text):",
    ]
    imports = []
    for k, spec in enumerate(specs):
        mods = ", ".join(f"{m} {h}" for m, h in _source_hashes(_functions(spec)))
        header.append(f"#   m{k} {spec.name} ({', '.join(spec.var_names)}): {mods}")
        name = f"{_MODEL_PREFIX}_{source_hash(model_source(spec))}"
        for role in _ROLES:
            imports.append(f"from {name} import {role}_all as m{k}_{role}")
    for k, spec in enumerate(syn_specs):
        fns = (spec.on_pre, spec.on_post)
        mods = ", ".join(f"{m} {h}" for m, h in _source_hashes(fns))
        header.append(f"#   s{k} synapse model {spec.name} ({', '.join(spec.var_names)}): {mods}")
        for role, fn in zip(("on_pre", "on_post"), fns):
            imports.append(f"from {fn.py_func.__module__} import {fn.py_func.__name__} as s{k}_{role}")
    dispatch = "\n".join(imports) + "\n\n\n" + _dispatch_source(specs) + "\n\n\n" + _synapse_source(syn_specs) + "\n"
    return "\n".join(header) + "\n" + head + dispatch + tail


def model_source(spec) -> str:
    """The text of the module of one neuron model's loops, which every kernel using the model
    imports: ``step_all``, ``threshold_all`` and ``reset_all`` over a population's neurons, with
    the model's ``step``/``threshold``/``reset`` compiled in (``inline="always"``, so that LLVM
    vectorises the loops). ``step_all`` goes by blocks of ``block`` neurons and sets each block's
    flags in the same vectorised loop that steps it, from the new state: HIT when a neuron is above
    threshold (refractory or not) and NOT_FINITE when the sum ``t`` of a neuron's state variables
    has ``t - t != 0`` (NaN when a state is NaN or inf; a sum that overflows only makes the kernel
    search the block for nothing). Both are counted in integers, which add up lane by lane, where
    or-ing booleans packed the vector's comparison bits every iteration: a micro-benchmark of CUBA's
    update at 4000 neurons went from 1.23-2.34 to 1.09-1.36 ns per neuron (6 runs each). A second
    pass over the block, from the L1 cache, cost CUBA's update about 5 % more (cycle counts of the
    phase at 4000 neurons). ``threshold_all`` then looks only into the blocks with a HIT (through the population's rows, without
    a view per block: a view costs two atomic reference counts; spikes are rare:
    CUBA at 200000 neurons has about 100 per step), and the kernel only searches for a non-finite
    state when a block is flagged: at 200000 neurons this saved the full-length threshold scan and
    NaN check, about 0.5-0.9 ns per neuron-step. A population without external input this chunk
    (``driven`` false: its ``i_ext`` all +0.0) is stepped with a zero of the state's type instead of
    its ``i_ext``, which is then not read: at 200000 neurons the update streams its state from the L3
    cache, and the stream fewer took CUBA's loop from 1.97 to 1.70 s (median of 8 alternating
    runs). Cached on its own (``cache=True``; the file is named by the hash of this
    text, which names the hash of every source module the maths comes from), so a model's loops are
    compiled once, not once per kernel: the kernel calls them once per population and step."""
    fns = _functions(spec)
    mods = ", ".join(f"{m} {h}" for m, h in _source_hashes(fns))
    lines = [
        f"# Generated by biosim.backends.numba_cpu.model_source for neuron model {spec.name!r}; do not edit.",
        f"# State variables: {', '.join(spec.var_names)}. Sources (module, hash of its text): {mods}",
        '"""The loops of one neuron model over a population\'s neurons (``R``: its state rows)."""',
        "",
        "from numba import njit",
        "",
    ]
    for role, fn in zip(_ROLES, fns):
        lines.append(f"from {fn.py_func.__module__} import {fn.py_func.__name__} as _{role}")
    lines.append("")
    for role in _ROLES:
        lines.append(f"{role}_one = njit(inline=\"always\")(_{role}.py_func)")
    lines += ["", f"HIT, NOT_FINITE = {HIT}, {NOT_FINITE_FLAG}  # bits of a block's flags"]
    deco = f"@njit(cache=True, error_model={_ERROR_MODEL!r})"
    n_var = len(spec.var_names)
    total = " + ".join(f"B[{k}][i]" for k in range(n_var))
    lines += [
        "", "",
        deco,
        "def step_all(R, c, e, r, s, flags, block, driven):",
        "    n = e.shape[0]",
        "    zero = e.dtype.type(0)",
        "    for k in range((n + block - 1) // block):",
        "        a = k * block",
        "        b = min(a + block, n)",
        f"        B = {_views('R[{}][a:b]', n_var)}",
        "        eb = e[a:b]",
        "        rb = r[a:b]",
        "        hit = 0",
        "        bad = 0",
        "        if driven:",
        *_block_loop("eb[i]", total),
        "        else:  # no external input: zero, without reading it",
        *_block_loop("zero", total),
        "        flags[k] = (HIT if hit else 0) + (NOT_FINITE if bad else 0)",
        "", "",
        deco,
        "def threshold_all(R, c, r, s, a, out, flags, block):",
        "    cnt = 0",
        "    n = r.shape[0]",
        "    for k in range((n + block - 1) // block):",
        "        if flags[k] & HIT:",
        "            for i in range(k * block, min(k * block + block, n)):  # (no views: see the docstring)",
        "                if threshold_one(R, i, c) and s >= r[i]:",
        "                    out[cnt] = a + i",
        "                    cnt += 1",
        "    return cnt",
        "", "",
        deco,
        "def reset_all(R, c, spiking, a):",
        "    for e in range(spiking.shape[0]):",
        "        reset_one(R, spiking[e] - a, c)",
        "",
    ]
    return "\n".join(lines)


def _block_loop(current: str, total: str) -> list[str]:
    """Lines of ``step_all``'s loop over a block: each neuron stepped with external input
    ``current``, then counted above threshold (``hit``) and non-finite (``bad``, from ``total``)."""
    return [
        "            for i in range(b - a):",
        f"                step_one(B, i, c, {current}, s < rb[i])",
        "                hit += threshold_one(B, i, c)",
        f"                tot = {total}",
        "                bad += tot - tot != 0.0",
    ]


def _functions(spec) -> tuple:
    """``(step, threshold, reset)`` of ``spec``, checked to be top-level njit functions of an
    importable module (the generated kernel imports them by name)."""
    fns = (spec.step, spec.threshold, spec.reset)
    for role, fn in zip(_ROLES, fns):
        py = getattr(fn, "py_func", None)
        if py is None or not hasattr(fn, "signatures"):
            raise BiosimError(f"neuron model '{spec.name}': {role} must be a numba njit function, "
                              f"got {type(fn).__name__}")
        mod = sys.modules.get(py.__module__)
        if mod is None or getattr(mod, py.__name__, None) is not fn:
            raise BiosimError(f"neuron model '{spec.name}': {role} function {py.__qualname__} must be defined "
                              f"at the top level of an importable module (it is not {py.__module__}.{py.__name__})")
    if not spec.var_names:
        raise BiosimError(f"neuron model '{spec.name}' has no state variables")
    return fns


def _source_hashes(fns) -> list[tuple[str, str]]:
    """``(module, hash of its source)`` for the modules of ``fns`` and of the njit functions they
    call through module globals (transitively), sorted by module name. Plain Python functions among
    those globals count too: in compiled code they are Numba overloads (e.g.
    :func:`biosim.neurons.fastmath_exp.exp`), whose implementation is in their module."""
    seen_fns: set[int] = set()
    mods: dict[str, list] = {}
    todo = list(fns)
    while todo:
        fn = todo.pop()
        if id(fn) in seen_fns:
            continue
        seen_fns.add(id(fn))
        py = getattr(fn, "py_func", fn)
        mods.setdefault(py.__module__, []).append(py)
        for name in _global_names(py.__code__):
            value = py.__globals__.get(name)
            if (hasattr(value, "py_func") and hasattr(value, "signatures")) or isinstance(value, FunctionType):
                todo.append(value)
    return [(m, hashlib.sha256(_module_text(m, pys)).hexdigest()[:16]) for m, pys in sorted(mods.items())]


def _global_names(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _global_names(const)
    return names


def _module_text(modname: str, pys: list) -> bytes:
    """The source of module ``modname``; for a module without a file (an interactive session), the
    source of the functions, or failing that their byte code."""
    path = getattr(sys.modules.get(modname), "__file__", None)
    if path:
        try:
            return Path(path).read_bytes()
        except OSError:
            pass
    try:
        return "".join(inspect.getsource(py) for py in pys).encode()
    except (OSError, TypeError):
        return b"".join(marshal.dumps(py.__code__) for py in pys)


def _views(pattern: str, n: int) -> str:
    """Source of the tuple ``(pattern.format(0), ..., pattern.format(n - 1))``, e.g. the 1-D row views
    ``(X[0, a:b], ..., X[n-1, a:b])`` of ``_views("X[{}, a:b]", n)``."""
    return "(" + ", ".join(pattern.format(r) for r in range(n)) + ("," if n == 1 else "") + ")"


def _dispatch_source(specs) -> str:
    """``pop_step``, ``pop_threshold`` and ``pop_reset``: one branch per model index."""
    def branches(call):
        out = []
        for k, spec in enumerate(specs):
            out.append(f"    {'if' if k == 0 else 'elif'} model == {k}:")
            out.append(f"        {call(k, _views('phases.row(X, {}, a, b)', len(spec.var_names)))}")
        return out

    step = [
        f"@njit(cache=True, error_model={_ERROR_MODEL!r})",
        "def pop_step(model, X, a, b, c, i_ext, ref_until, s, flags, driven):",
        '    """Advance neurons ``a..b-1`` of one population (model index ``model``) by one step; flag its',
        '    blocks of NEURON_BLOCK neurons (``flags``). ``driven``: whether ``i_ext`` may be other than +0.0 there."""',
        "    e = phases.span(i_ext, a, b)",
        "    r = phases.span(ref_until, a, b)",
        *branches(lambda k, rows: f"m{k}_step({rows}, c, e, r, s, flags, NEURON_BLOCK, driven)"),
    ]
    threshold = [
        f"@njit(cache=True, error_model={_ERROR_MODEL!r})",
        "def pop_threshold(model, X, a, b, c, ref_until, s, out, flags):",
        '    """Write the (global) indices of neurons ``a..b-1`` that spike at step ``s`` into ``out[0:]``',
        '    in ascending order (looking only into the blocks ``flags`` marks HIT); return how many."""',
        "    r = phases.span(ref_until, a, b)",
        *branches(lambda k, rows: f"return m{k}_threshold({rows}, c, r, s, a, out, flags, NEURON_BLOCK)"),
        "    return 0",
    ]
    reset = [
        f"@njit(cache=True, error_model={_ERROR_MODEL!r})",
        "def pop_reset(model, X, a, b, c, spiking):",
        '    """Reset the neurons whose global indices are in ``spiking`` (all within ``a..b-1``)."""',
        *branches(lambda k, rows: f"m{k}_reset({rows}, c, spiking, a)"),
    ]
    return "\n\n\n".join("\n".join(f) for f in (step, threshold, reset))


def _synapse_source(syn_specs) -> str:
    """``syn_pre`` and ``syn_post``: one branch per synapse model index."""
    out = []
    for role in ("pre", "post"):
        lines = ["@njit(cache=True)", f"def syn_{role}(kind, S, k, X, i, j, c, gate, refractory, elapsed):"]
        for q in range(len(syn_specs)):
            lines.append(f"    {'if' if q == 0 else 'elif'} kind == {q}:")
            lines.append(f"        s{q}_on_{role}(S, k, X, i, j, c, gate, refractory, elapsed)")
        if not syn_specs:
            lines.append("    pass")
        out.append("\n".join(lines))
    return "\n\n\n".join(out)
