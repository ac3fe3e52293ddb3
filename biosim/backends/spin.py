"""A spinning barrier for the threads of one numba-cpu parallel region.

The threaded kernel (:mod:`biosim.backends.kernel_body`) runs a whole chunk of steps in one
parallel region, one thread per ``prange`` iteration, and separates the phases of a step with
:func:`barrier`: a few hundred nanoseconds, where starting a parallel region per phase (what
``prange`` costs) took several microseconds per step, more than the step itself in a network of
a few thousand neurons.

A barrier needs every thread to be running at once. Numba's threading layer normally gives each
of the ``T`` iterations its own thread, but it may run them one after the other (a nested
parallel region, a smaller OpenMP team): :func:`check_in`, the first barrier, gives up after
``CHECK_IN_SPINS`` spins without the others, and then every thread returns ``False`` and does
nothing, so the caller runs the chunk on one thread instead (the same results). The barrier
state is a zeroed int64 array of ``BARRIER_SIZE``: arrivals and the generation on cache lines of
their own.

The atomics are LLVM's (``atomicrmw``, ``cmpxchg``, atomic loads and stores, sequentially
consistent, which also order the threads' ordinary reads and writes around a barrier), through
small Numba intrinsics; :func:`pause` is x86's ``pause`` (nothing on other processors).
"""

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["BARRIER_SIZE", "CHECK_IN_SPINS", "barrier", "check_in"]

#: Where the arrivals and the generation live in the barrier array (64 bytes apart), and its size.
ARRIVALS, GENERATION = 0, 8
BARRIER_SIZE = 16

#: Spins a thread waits at :func:`check_in` for the others before it gives the region up (about
#: 0.1 s).
CHECK_IN_SPINS = 1 << 20

_ABANDONED = -(1 << 62)  # the arrivals once a thread gave the region up


def _address(context, builder, arr_type, arr, idx, idx_type):
    ary = context.make_array(arr_type)(context, builder, arr)
    i = context.cast(builder, idx, idx_type, types.intp)
    return builder.gep(ary.data, [i])


@intrinsic
def _fetch_add(typingctx, arr, idx, value):
    """``arr[idx] += value`` atomically; the value before."""
    sig = types.int64(arr, idx, value)

    def codegen(context, builder, signature, args):
        ptr = _address(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        val = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, val, "seq_cst")

    return sig, codegen


@intrinsic
def _load(typingctx, arr, idx):
    """``arr[idx]``, an atomic read."""
    sig = types.int64(arr, idx)

    def codegen(context, builder, signature, args):
        ptr = _address(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        return builder.load_atomic(ptr, "seq_cst", 8)

    return sig, codegen


@intrinsic
def _store(typingctx, arr, idx, value):
    """``arr[idx] = value``, an atomic write."""
    sig = types.void(arr, idx, value)

    def codegen(context, builder, signature, args):
        ptr = _address(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        val = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(val, ptr, "seq_cst", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _swap_if(typingctx, arr, idx, expected, value):
    """``arr[idx] = value`` if it is ``expected`` (atomic compare-and-swap); whether it was."""
    sig = types.boolean(arr, idx, expected, value)

    def codegen(context, builder, signature, args):
        ptr = _address(context, builder, signature.args[0], args[0], args[1], signature.args[1])
        old = context.cast(builder, args[2], signature.args[2], types.int64)
        new = context.cast(builder, args[3], signature.args[3], types.int64)
        pair = builder.cmpxchg(ptr, old, new, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return sig, codegen


_X86 = llvm.get_process_triple().startswith(("x86_64", "i686", "i386"))


@intrinsic
def pause(typingctx):
    """A hint to the processor that this thread is spinning (x86 ``pause``)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def check_in(bar, T):
    """The first barrier of ``T`` threads on the zeroed array ``bar``: ``True`` once all are here;
    ``False`` (for every thread) if one gave up waiting for the others (``CHECK_IN_SPINS``)."""
    if _fetch_add(bar, ARRIVALS, 1) < 0:
        return False  # given up already
    spins = 0
    while True:
        seen = _load(bar, ARRIVALS)
        if seen < 0:
            return False
        if seen >= T:  # all here (the first may have reached the next barrier already)
            return True
        spins += 1
        if spins > CHECK_IN_SPINS and _swap_if(bar, ARRIVALS, seen, _ABANDONED):
            return False
        pause()


@njit(cache=True)
def barrier(bar, T, passed):
    """Wait until all ``T`` threads are here; ``passed`` is how many barriers this thread has
    passed since :func:`check_in` (every thread passes the same ones). Returns ``passed + 1``."""
    if _fetch_add(bar, ARRIVALS, 1) + 1 == T * (passed + 2):
        _store(bar, GENERATION, passed + 1)
    else:
        while _load(bar, GENERATION) < passed + 1:
            pause()
    return passed + 1
