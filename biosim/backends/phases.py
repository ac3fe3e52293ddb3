"""The model-independent phases of a numba-cpu kernel step, compiled once for all kernels.

The generated kernel (:mod:`biosim.backends.kernel_body`) is compiled once per set of neuron and
synapse models. What in a step does not depend on the models -- Poisson input, a projection's
spikes through synapses without a synapse model (with STDP depression), STDP potentiation and the
decay of the traces -- is here instead, compiled and cached once, and called by every kernel (once
per step, projection or plastic projection: the loops over synapses and neurons are inside). This
makes a new kernel compile several seconds faster, at the same speed and with the same additions
in the same order. The kernel's text carries the hash of this file, so that its cache follows a
change here.

STDP constants come as a row of ``Plan.st_c`` and the column indices of
:mod:`biosim.synapses.stdp` as arguments (the kernel passes them by name), so that nothing here
depends on another file (:mod:`biosim._numba_cache`, rule 1).
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

__all__ = ["bisect", "borrowed", "decay_traces", "deliver", "depressed", "poisson_input", "potentiate", "potentiated", "prefetch",
           "prefetch_rows", "prefetch_span", "row", "span", "targets_sorted"]

#: How many spikes ahead :func:`deliver` asks for a spike's row bounds and for its targets.
BOUNDS_AHEAD, TARGETS_AHEAD = 8, 4
#: Bytes in a cache line, and the most lines of a row :func:`prefetch_span` asks for (a row of 80
#: int32 targets spans 5-6 lines; the hardware's prefetcher follows longer rows by itself).
CACHE_LINE_BYTES, SPAN_LINES = 64, 8


@intrinsic
def prefetch(typingctx, arr, idx):
    """Ask the CPU to bring ``arr[idx]`` (a 1-D array) into its caches (LLVM's ``llvm.prefetch``,
    for reading); a hint, which never faults, whatever ``idx``."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        size = context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype))
        idx = context.cast(builder, args[1], signature.args[1], types.intp)
        addr = builder.add(builder.ptrtoint(ary.data, cgutils.intp_t), builder.mul(idx, cgutils.intp_t(size)))
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.inttoptr(addr, i8p), i32(0), i32(3), i32(1)])  # read, keep, data cache
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always")
def prefetch_span(arr, lo, hi):
    """Ask for ``arr[lo:hi]`` (1-D), every cache line of it up to ``SPAN_LINES`` lines from ``lo``.

    A spike's row lies anywhere in the synapse arrays, and the first line alone (what the hardware
    prefetcher needs to notice a stream) left the rest of each row a cache miss: asking for the
    whole row halved the cost of a synaptic event at 200 000 neurons (16 M synapses)."""
    step = max(1, CACHE_LINE_BYTES // arr.itemsize)
    end = min(hi, lo + SPAN_LINES * step)
    for q in range(lo, end, step):
        prefetch(arr, q)
    if end > lo:
        prefetch(arr, end - 1)


def _check_c_array(arr, ndim, name):
    if not (isinstance(arr, types.Array) and arr.ndim == ndim and arr.layout == "C"):
        raise TypingError(f"{name} takes a {ndim}-D C-contiguous array, not {arr}")


def _unowned(context, builder, out_type, data, n, itemsize):
    """A 1-D C-contiguous array of ``n`` items from ``data`` that owns nothing (no meminfo)."""
    from numba.np.arrayobj import populate_array

    out = context.make_array(out_type)(context, builder)
    populate_array(out, data=data, shape=[n], strides=[itemsize], itemsize=itemsize, meminfo=None)
    return out._getvalue()


@intrinsic
def span(typingctx, arr, a, b):
    """``arr[a:b]`` of a 1-D C-contiguous array, as a view that owns nothing: Numba counts no
    reference to it, where a slice increments and decrements its parent's count atomically (with
    Numba's non-atomic counts, a debugging switch, CUBA's 4000-neuron loop was about 8 % faster;
    these views and the plan's fields as locals in the kernel recover about half of that, and a
    fifth of the loop at 100 neurons). For views used within a step, while ``arr`` is alive;
    ``0 <= a <= b <= len(arr)`` is the caller's to keep."""
    _check_c_array(arr, 1, "span")
    out_type = arr.copy(ndim=1, layout="C")
    sig = out_type(arr, a, b)

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        lo = context.cast(builder, args[1], signature.args[1], types.intp)
        hi = context.cast(builder, args[2], signature.args[2], types.intp)
        return _unowned(context, builder, out_type, cgutils.gep(builder, src.data, lo), builder.sub(hi, lo),
                        src.itemsize)

    return sig, codegen


@intrinsic
def row(typingctx, arr, k, a, b):
    """``arr[k, a:b]`` of a 2-D C-contiguous array as a view that owns nothing (as :func:`span`)."""
    _check_c_array(arr, 2, "row")
    out_type = arr.copy(ndim=1, layout="C")
    sig = out_type(arr, k, a, b)

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        kk, lo, hi = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:]))
        ncol = cgutils.unpack_tuple(builder, src.shape, 2)[1]
        start = builder.add(builder.mul(kk, ncol), lo)
        return _unowned(context, builder, out_type, cgutils.gep(builder, src.data, start), builder.sub(hi, lo),
                        src.itemsize)

    return sig, codegen


def _borrow_value(context, builder, typ, val):
    """``val`` (of Numba type ``typ``) with every array in it (itself, or a tuple's items, nested)
    owning nothing; any other value as it is."""
    from numba.np.arrayobj import populate_array

    if isinstance(typ, types.Array):
        src = context.make_array(typ)(context, builder, val)
        out = context.make_array(typ)(context, builder)
        populate_array(out, data=src.data, shape=src.shape, strides=src.strides, itemsize=src.itemsize,
                       meminfo=None)
        return out._getvalue()
    if isinstance(typ, types.BaseTuple):
        for i, item in enumerate(typ):
            val = builder.insert_value(val, _borrow_value(context, builder, item,
                                                          builder.extract_value(val, i)), i)
    return val


def _has_array(typ) -> bool:
    return isinstance(typ, types.Array) or (isinstance(typ, types.BaseTuple) and any(_has_array(t) for t in typ))


def _borrowable(typ) -> bool:
    """Arrays, numbers and booleans, and tuples of them: nothing else that Numba counts references to
    (a string or a typed list in the tuple would come back uncounted and be freed once too often)."""
    if isinstance(typ, types.BaseTuple):
        return all(_borrowable(t) for t in typ)
    return isinstance(typ, (types.Array, types.Number, types.Boolean))


@intrinsic
def borrowed(typingctx, value):
    """``value`` -- an array, or a tuple or named tuple of arrays, numbers and booleans (nested
    tuples too) -- with the same type, data, shapes and strides, whose arrays own nothing: Numba
    counts no reference to them. For use while the caller holds ``value``: a borrowed array must
    not be returned, stored or kept past that.

    A function that reads the fields of a named tuple (the plan) or passes an array to a function
    it does not inline increments and decrements the array's reference count each time, atomically
    (``lock xadd``, through a call into Numba's runtime). In the kernel's steps those counts were
    most of what a step cost beyond the neurons and synapses (``perf`` and ``gdb`` samples of one
    population of 5 neurons landed in ``NRT_incref``/``NRT_decref``): with the plan, the chunk's
    inputs and outputs and the scratch arrays borrowed, such a step went from 0.83 to 0.31
    microseconds, and CUBA's loop at 100 neurons from 0.0112 to 0.0045 s."""
    if not (_has_array(value) and _borrowable(value)):
        raise TypingError(f"borrowed takes an array or a tuple of arrays, numbers and booleans, not {value}")
    sig = value(value)

    def codegen(context, builder, signature, args):
        return _borrow_value(context, builder, signature.args[0], args[0])

    return sig, codegen


@njit(cache=True)
def _clip(x, lo, hi):
    return lo if x < lo else (hi if x > hi else x)  # noqa: FURB136 (min() would change NaN handling)


@njit(inline="always")
def depressed(wv, xp, st_c, z, a_minus, w_min, w_max, multiplicative):
    """Weight ``wv`` after STDP depression by the target's trace ``xp`` (plastic projection ``z``,
    its row of ``Plan.st_c``; the column indices of :mod:`biosim.synapses.stdp` as arguments); the
    one statement of the rule, for the CPU kernel and (through ``cuda.jit(device=True)``) the GPU's:

        w <- clip(w - A_minus * x_post * (w - w_min if multiplicative else 1), w_min, w_max)
    """
    if st_c[z, multiplicative] != 0:
        wv = wv - st_c[z, a_minus] * xp * (wv - st_c[z, w_min])
    else:
        wv = wv - st_c[z, a_minus] * xp
    return _clip(wv, st_c[z, w_min], st_c[z, w_max])


@njit(inline="always")
def potentiated(wv, xp, st_c, z, a_plus, w_min, w_max, multiplicative):
    """Weight ``wv`` after STDP potentiation by the source's trace ``xp`` (as :func:`depressed`):

        w <- clip(w + A_plus * x_pre * (w_max - w if multiplicative else 1), w_min, w_max)
    """
    if st_c[z, multiplicative] != 0:
        wv = wv + st_c[z, a_plus] * xp * (st_c[z, w_max] - wv)
    else:
        wv = wv + st_c[z, a_plus] * xp
    return _clip(wv, st_c[z, w_min], st_c[z, w_max])


@njit(cache=True)
def bisect(a, lo, hi, x):
    """The first index of ``lo..hi-1`` where the ascending ``a`` is at least ``x`` (``hi``: none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def decay_traces(trace, a, n, factor):
    """``trace[a:a+n] *= factor`` (the per-step decay of a plastic projection's traces)."""
    for e in range(a, a + n):
        trace[e] *= factor


@njit(cache=True)
def poisson_input(X, counts, col, row, weight, a, b, lo, hi, gate, ref_until, s):
    """Add one Poisson input's spikes of this step, ``counts[col + j - a] * weight``, to row ``row``
    of its targets ``j`` in ``a..b-1`` that lie in ``lo..hi-1`` (not while refractory, for a gated
    row)."""
    for j in range(max(a, lo), min(b, hi)):
        n = counts[col + j - a]
        if n != 0 and not (gate[row, j] and s < ref_until[j]):
            X[row, j] += n * weight


@njit(cache=True)
def deliver(X, w, xpost, spikes, g0, indptr, base, tgt, dly, delayed, row, wc, ws, gate, gated, ref_until, s, lo, hi,
            full, sorted_rows, st_c, z, t0, a_minus, w_min, w_max, multiplicative):
    """The spikes ``spikes`` (sources ``g0 + local index``) of one projection without a synapse
    model, arriving now, along their CSR rows (``indptr[base + local]``): each synapse's weight to
    row ``row`` of its target ``j`` in ``lo..hi-1`` (all of them when ``full``; not while
    refractory, for a gated row), then STDP depression. ``gated``: whether any target's row ``row``
    is gated (when not, the gate, a read from a random place per synapse, is not read).

    The weight is ``wc`` (the projection's one weight) when ``ws < 0``, else ``w[syn - ws]``. With
    per-synapse delays (``delayed``) the row is ordered by delay (``dly``) and only its synapses of
    delay 0 are delivered (the rest are in flight: :mod:`biosim.backends.in_flight`). With
    ``sorted_rows`` (rows sorted by target), the row's part in ``lo..hi-1`` is found by bisection.
    A plastic projection (``z >= 0``, its row of ``Plan.st_c``, with ``t0`` the offset of target
    ``j``'s trace ``xpost[j - t0]``, and the indices of the columns) depresses each weight
    (:func:`depressed`).
    """
    n = spikes.shape[0]
    for e in range(n):
        if e + BOUNDS_AHEAD < n:  # rows far apart in memory: ask for later ones now (cache misses)
            prefetch(indptr, base + spikes[e + BOUNDS_AHEAD] - g0)
        if e + TARGETS_AHEAD < n:  # the whole row (and its weights, when it has its own)
            ahead = base + spikes[e + TARGETS_AHEAD] - g0
            prefetch_span(tgt, indptr[ahead], indptr[ahead + 1])
            if ws >= 0:
                prefetch_span(w, indptr[ahead] - ws, indptr[ahead + 1] - ws)
        loc = spikes[e] - g0
        sa = indptr[base + loc]
        sb = indptr[base + loc + 1]
        if sorted_rows:
            sa = bisect(tgt, sa, sb, lo)
        for syn in range(sa, sb):
            j = tgt[syn]
            if not full and (j < lo or j >= hi):
                if sorted_rows:
                    break
                continue
            if delayed and dly[syn] > 0:  # the rest of the row is delayed: in flight
                break
            wv = wc if ws < 0 else w[syn - ws]
            if not (gated and gate[row, j] and s < ref_until[j]):
                X[row, j] += wv
            if z >= 0:  # STDP depression (plastic synapses have their own weights)
                w[syn - ws] = depressed(wv, xpost[j - t0], st_c, z, a_minus, w_min, w_max, multiplicative)


@njit(cache=True)
def prefetch_rows(spikes, g0, indptr, base, tgt):
    """Ask for the CSR rows (bounds, then targets) of the first ``TARGETS_AHEAD`` of ``spikes``
    (sources ``g0 + local index``, rows ``indptr[base + local]``): :func:`deliver` asks for the rows
    of later spikes while it delivers earlier ones, which leaves the first few of each projection
    without. Called for every projection without a synapse model before any delivers, they arrive
    while the others work (at 40000 neurons a projection has a few spikes per step, most of them
    among its first)."""
    n = min(spikes.shape[0], TARGETS_AHEAD)
    for e in range(n):
        prefetch(indptr, base + spikes[e] - g0)
    for e in range(n):
        loc = base + spikes[e] - g0
        prefetch_span(tgt, indptr[loc], indptr[loc + 1])


@njit(cache=True)
def potentiate(w, xpre, xpost, spiked, t0, lo, hi, rptr, rb, rsyn, rsrc, ws, pre_off, post_off, st_c, z, a_plus,
               w_min, w_max, multiplicative):
    """STDP potentiation of plastic projection ``z`` (its row of ``Plan.st_c``) for its targets that spiked now (``spiked``,
    global indices, population starting at ``t0``) within ``lo..hi-1``: each synapse onto them
    (by-target index ``rptr[rb + local]``, synapse ids ``rsyn``, local sources ``rsrc``; weight of
    synapse ``k`` in ``w[k - ws]``; :func:`potentiated`), then the target's trace
    ``xpost[post_off + local] += 1``.
    """
    for e in range(spiked.shape[0]):
        j = spiked[e]
        if lo <= j < hi:
            jl = j - t0
            for kk in range(rptr[rb + jl], rptr[rb + jl + 1]):
                k = rsyn[kk] - ws
                w[k] = potentiated(w[k], xpre[pre_off + rsrc[kk]], st_c, z, a_plus, w_min, w_max, multiplicative)
            xpost[post_off + jl] += 1


@njit(cache=True)
def targets_sorted(indptr, tgt):
    """Whether every CSR row's targets are in ascending order."""
    for row in range(indptr.shape[0] - 1):
        for syn in range(indptr[row] + 1, indptr[row + 1]):
            if tgt[syn] < tgt[syn - 1]:
                return False
    return True
