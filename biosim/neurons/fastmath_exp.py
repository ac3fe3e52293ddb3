r"""``exp`` and ``expm1`` of a float64, in plain arithmetic that Numba can inline and vectorise,
giving bit for bit the results of glibc's ``exp``/``expm1`` (which ``math.exp``/``math.expm1`` call
in Numba-compiled code on Linux).

Why: Numba lowers ``math.exp`` and ``math.expm1`` to calls into the C library. An opaque call
costs a call and stops LLVM from vectorising the loop around it; in the Hodgkin-Huxley neuron
(:mod:`biosim.neurons.hh`, seven ``exp`` and three ``expm1`` per neuron and step) those calls were
about 60% of the COBAHH loop. The functions here compute the same numbers with the same
operations in the same order, so code that calls them instead gets the same results, bit for bit.

What is replicated: glibc picks its implementation when it is loaded (an ifunc); on x86-64 with FMA
and AVX2 it is the variant compiled with ``-mfma -mavx2``, in which gcc contracted some ``a * b +
c`` into one fused multiply-add (one rounding instead of two). Where it did was read from the
machine code of glibc 2.36's ``__exp_fma`` and ``__expm1_fma`` (Debian 12's ``libm.so.6``);
:func:`_fma` below marks each of those places, and every other operation is a separately rounded
``*``, ``+``, ``-`` or ``/`` as in the C source. Numba does not contract ``a * b + c`` by itself
(no ``fastmath``), so the order written here is the order computed.

* :func:`exp`: glibc's ``sysdeps/ieee754/dbl-64/e_exp.c`` (Szabolcs Nagy's algorithm from Arm's
  optimized-routines, MIT licence), with ``EXP_TABLE_BITS = 7`` and ``EXP_POLY_ORDER = 5``.
  ``x = k ln2/N + r`` with ``N = 128``, integer ``k`` and ``|r| <= ln2/(2N)``;
  ``exp(x) = 2^(k/N) exp(r)``, where ``2^(k/N) = scale (1 + tail)`` comes from a table of ``N``
  pairs (``tail``, ``bits of scale`` minus ``k mod N`` in the exponent field) and ``exp(r) - 1``
  from the polynomial ``r + C2 r^2 + C3 r^3 + C4 r^4 + C5 r^5``; the result is
  ``scale + scale * (tail + exp(r) - 1)``. Arguments with ``|x| >= 512`` have their own scaling
  (glibc's ``specialcase``) so that ``scale`` cannot overflow, and a rounding step of its own for
  results in the subnormal range; ``|x| < 2^-54`` gives ``1 + x``; beyond ``|x| >= 1024``
  the result is ``+inf`` or ``+0`` (``exp(-inf) = 0``, ``exp(nan) = nan``).
* :func:`expm1`: glibc's ``sysdeps/ieee754/dbl-64/s_expm1.c``, fdlibm's algorithm (Copyright (C)
  1993 by Sun Microsystems, Inc.; "Permission to use, copy, modify, and distribute this software
  is freely granted, provided that this notice is preserved"). ``x = k ln2 + r`` with
  ``|r| <= ln2/2`` (``hi``/``lo`` halves of ``ln2`` and a correction ``c`` for the rounding of
  ``r``); ``expm1(r)`` from a rational approximation ``r - E`` with ``R1(r^2/2) = 1 + Q1 z + ... +
  Q5 z^5``; then ``2^k (expm1(r) + 1) - 1`` rearranged per range of ``k`` to avoid cancellation;
  ``|x| < 2^-54`` gives ``x``, ``x < -56 ln2`` gives ``-1``, ``x > 709.78...`` gives ``+inf``.

Used by :func:`biosim.neurons.hh.hh_step` (seven ``exp`` and three ``expm1`` per neuron and step),
written without a branch (:func:`where`) so that the kernel's loop over neurons vectorises: 4 neurons
at a time with AVX2 (the kernel compiles models with Numba's ``error_model="numpy"``, so a ``/``
has no zero-divisor branch either; :func:`prefer_gathers` keeps LLVM's cost model from scalarising
the table loads, and most of the loop with them, on CPUs it thinks have slow gathers, such as AMD's). Computed one at a time, the branch-free code here costs more
than glibc's branchy code: it pays only in a loop that vectorises.

Called from Python (the NumPy reference backend runs models' maths as Python), :func:`exp` and
:func:`expm1` are ``math.exp`` and ``math.expm1``; only Numba-compiled code gets the overloads.

Both work on float64 only: any other argument type (a float32 in a float32 network) is passed to
``math.exp``/``math.expm1`` as before. The replica is used only where it was checked to be exact:
glibc 2.36 (the release whose machine code was read) on an x86-64 CPU with FMA and AVX2, the
combination glibc's ifunc maps to the FMA variants; elsewhere :data:`REPLICATES_LIBM` is False and
:func:`exp`/:func:`expm1` call ``math.exp``/``math.expm1``. ``tests/neurons/test_fastmath_exp.py``
compares them bit for bit with ``math.exp``/``math.expm1`` in Numba on the machine that runs it.
"""

from __future__ import annotations

import math
import platform
import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

__all__ = ["REPLICATES_LIBM", "exp", "expm1", "prefer_gathers", "where"]


def _glibc_fma_variant() -> bool:
    """Whether ``math.exp``/``math.expm1`` in Numba run glibc's FMA variants on this machine."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    lib, version = platform.libc_ver()
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return False
    if lib != "glibc" or (major, minor) not in _GLIBC_CHECKED:
        return False
    from llvmlite import binding

    features = binding.get_host_cpu_features()
    return bool(features.get("fma")) and bool(features.get("avx2"))


#: glibc releases whose ``__exp_fma``/``__expm1_fma`` were checked to be what this module computes
#: (another release may have changed either: add it here once the tests pass there).
_GLIBC_CHECKED = frozenset({(2, 36)})

#: True where :func:`exp` and :func:`expm1` compute glibc's results themselves (inlined, vectorisable
#: code); False where they call ``math.exp``/``math.expm1`` (see the module docstring).
REPLICATES_LIBM: bool = _glibc_fma_variant()


# --- bit-level helpers (LLVM instructions) ------------------------------------------------------

@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's ``llvm.fma.f64``: one ``vfmadd`` where the CPU has FMA)."""
    if not all(isinstance(t, types.Float) and t.bitwidth == 64 for t in (a, b, c)):
        raise TypingError("_fma takes three float64")

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@intrinsic
def _bits(typingctx, x):
    """The IEEE-754 bits of the float64 ``x`` as an int64 (a bit cast, no conversion)."""
    if not (isinstance(x, types.Float) and x.bitwidth == 64):
        raise TypingError("_bits takes a float64")

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, i):
    """The float64 whose IEEE-754 bits are the int64 ``i`` (a bit cast, no conversion)."""
    if not (isinstance(i, types.Integer) and i.bitwidth == 64):
        raise TypingError("_from_bits takes a 64-bit integer")

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(i), codegen


@intrinsic
def _wrapping_add(typingctx, a, b):
    """``a + b`` of two int64, wrapping around on overflow (Numba's ``+`` of signed integers tells
    LLVM that they never overflow; the exponent arithmetic here relies on the wrap-around)."""
    if not all(isinstance(t, types.Integer) and t.bitwidth == 64 and t.signed for t in (a, b)):
        raise TypingError("_wrapping_add takes two int64")

    def codegen(context, builder, signature, args):
        return builder.add(*args)

    return types.int64(types.int64, types.int64), codegen


@intrinsic
def _divide(typingctx, a, b):
    """``a / b`` of two float64 as IEEE-754 divides (inf or nan for ``b == 0``): Numba's ``/``
    checks for a zero divisor to raise ``ZeroDivisionError``, a branch out of the loop around it
    that stops LLVM from vectorising the loop."""
    if not all(isinstance(t, types.Float) and t.bitwidth == 64 for t in (a, b)):
        raise TypingError("_divide takes two float64")

    def codegen(context, builder, signature, args):
        return builder.fdiv(*args)

    return types.float64(types.float64, types.float64), codegen


@intrinsic
def _select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select`` (no branch: both are computed): int64 for two
    integers, else float64."""
    if not isinstance(cond, types.Boolean) or not all(isinstance(t, (types.Integer, types.Float)) for t in (a, b)):
        raise TypingError("_select takes a boolean and two numbers")
    kind = types.int64 if all(isinstance(t, types.Integer) for t in (a, b)) else types.float64

    def codegen(context, builder, signature, args):
        c, x, y = args
        _, tx, ty = signature.args
        return builder.select(c, context.cast(builder, x, tx, kind), context.cast(builder, y, ty, kind))

    return kind(cond, a, b), codegen


# --- exp: glibc's e_exp.c -----------------------------------------------------------------------

#: log2 of the table size N: 2^(k/N) for k mod N is tabulated.
EXP_TABLE_BITS = 7
_N = 1 << EXP_TABLE_BITS
_INDEX_MASK = _N - 1
#: Shift that moves ``k`` (as an integer in the low bits of ``kd``) into the exponent field.
_K_TO_EXPONENT = 52 - EXP_TABLE_BITS

# The constants of glibc's ``__exp_data`` (bit patterns, exact).
_INV_LN2_N = float.fromhex("0x1.71547652b82fep+7")      # N / ln2
_NEG_LN2_HI_N = float.fromhex("-0x1.62e42fefa0000p-8")  # -ln2 / N, high part
_NEG_LN2_LO_N = float.fromhex("-0x1.cf79abc9e3b3ap-47")  # -ln2 / N, low part
_SHIFT = float.fromhex("0x1.8p52")                       # rounds N x / ln2 to an integer
_C2 = float.fromhex("0x1.ffffffffffdbdp-2")              # exp(r) - 1 ~ r + C2 r^2 + ... + C5 r^5
_C3 = float.fromhex("0x1.555555555543cp-3")
_C4 = float.fromhex("0x1.55555cf172b91p-5")
_C5 = float.fromhex("0x1.1111167a4d017p-7")

#: ``exp``'s table: for ``j = 0..N-1``, ``_EXP_TAB[2 j]`` is the bits of ``tail`` and
#: ``_EXP_TAB[2 j + 1]`` the bits of ``scale`` minus ``j << 45``, with ``2^(j/N) ~ scale (1 + tail)``
#: (glibc's ``__exp_data.tab``, as stored in its ``libm.so.6``).
_EXP_TAB = np.array([
    0x0000000000000000, 0x3ff0000000000000,
    0x3c9b3b4f1a88bf6e, 0x3feff63da9fb3335,
    0xbc7160139cd8dc5d, 0x3fefec9a3e778061,
    0xbc905e7a108766d1, 0x3fefe315e86e7f85,
    0x3c8cd2523567f613, 0x3fefd9b0d3158574,
    0xbc8bce8023f98efa, 0x3fefd06b29ddf6de,
    0x3c60f74e61e6c861, 0x3fefc74518759bc8,
    0x3c90a3e45b33d399, 0x3fefbe3ecac6f383,
    0x3c979aa65d837b6d, 0x3fefb5586cf9890f,
    0x3c8eb51a92fdeffc, 0x3fefac922b7247f7,
    0x3c3ebe3d702f9cd1, 0x3fefa3ec32d3d1a2,
    0xbc6a033489906e0b, 0x3fef9b66affed31b,
    0xbc9556522a2fbd0e, 0x3fef9301d0125b51,
    0xbc5080ef8c4eea55, 0x3fef8abdc06c31cc,
    0xbc91c923b9d5f416, 0x3fef829aaea92de0,
    0x3c80d3e3e95c55af, 0x3fef7a98c8a58e51,
    0xbc801b15eaa59348, 0x3fef72b83c7d517b,
    0xbc8f1ff055de323d, 0x3fef6af9388c8dea,
    0x3c8b898c3f1353bf, 0x3fef635beb6fcb75,
    0xbc96d99c7611eb26, 0x3fef5be084045cd4,
    0x3c9aecf73e3a2f60, 0x3fef54873168b9aa,
    0xbc8fe782cb86389d, 0x3fef4d5022fcd91d,
    0x3c8a6f4144a6c38d, 0x3fef463b88628cd6,
    0x3c807a05b0e4047d, 0x3fef3f49917ddc96,
    0x3c968efde3a8a894, 0x3fef387a6e756238,
    0x3c875e18f274487d, 0x3fef31ce4fb2a63f,
    0x3c80472b981fe7f2, 0x3fef2b4565e27cdd,
    0xbc96b87b3f71085e, 0x3fef24dfe1f56381,
    0x3c82f7e16d09ab31, 0x3fef1e9df51fdee1,
    0xbc3d219b1a6fbffa, 0x3fef187fd0dad990,
    0x3c8b3782720c0ab4, 0x3fef1285a6e4030b,
    0x3c6e149289cecb8f, 0x3fef0cafa93e2f56,
    0x3c834d754db0abb6, 0x3fef06fe0a31b715,
    0x3c864201e2ac744c, 0x3fef0170fc4cd831,
    0x3c8fdd395dd3f84a, 0x3feefc08b26416ff,
    0xbc86a3803b8e5b04, 0x3feef6c55f929ff1,
    0xbc924aedcc4b5068, 0x3feef1a7373aa9cb,
    0xbc9907f81b512d8e, 0x3feeecae6d05d866,
    0xbc71d1e83e9436d2, 0x3feee7db34e59ff7,
    0xbc991919b3ce1b15, 0x3feee32dc313a8e5,
    0x3c859f48a72a4c6d, 0x3feedea64c123422,
    0xbc9312607a28698a, 0x3feeda4504ac801c,
    0xbc58a78f4817895b, 0x3feed60a21f72e2a,
    0xbc7c2c9b67499a1b, 0x3feed1f5d950a897,
    0x3c4363ed60c2ac11, 0x3feece086061892d,
    0x3c9666093b0664ef, 0x3feeca41ed1d0057,
    0x3c6ecce1daa10379, 0x3feec6a2b5c13cd0,
    0x3c93ff8e3f0f1230, 0x3feec32af0d7d3de,
    0x3c7690cebb7aafb0, 0x3feebfdad5362a27,
    0x3c931dbdeb54e077, 0x3feebcb299fddd0d,
    0xbc8f94340071a38e, 0x3feeb9b2769d2ca7,
    0xbc87deccdc93a349, 0x3feeb6daa2cf6642,
    0xbc78dec6bd0f385f, 0x3feeb42b569d4f82,
    0xbc861246ec7b5cf6, 0x3feeb1a4ca5d920f,
    0x3c93350518fdd78e, 0x3feeaf4736b527da,
    0x3c7b98b72f8a9b05, 0x3feead12d497c7fd,
    0x3c9063e1e21c5409, 0x3feeab07dd485429,
    0x3c34c7855019c6ea, 0x3feea9268a5946b7,
    0x3c9432e62b64c035, 0x3feea76f15ad2148,
    0xbc8ce44a6199769f, 0x3feea5e1b976dc09,
    0xbc8c33c53bef4da8, 0x3feea47eb03a5585,
    0xbc845378892be9ae, 0x3feea34634ccc320,
    0xbc93cedd78565858, 0x3feea23882552225,
    0x3c5710aa807e1964, 0x3feea155d44ca973,
    0xbc93b3efbf5e2228, 0x3feea09e667f3bcd,
    0xbc6a12ad8734b982, 0x3feea012750bdabf,
    0xbc6367efb86da9ee, 0x3fee9fb23c651a2f,
    0xbc80dc3d54e08851, 0x3fee9f7df9519484,
    0xbc781f647e5a3ecf, 0x3fee9f75e8ec5f74,
    0xbc86ee4ac08b7db0, 0x3fee9f9a48a58174,
    0xbc8619321e55e68a, 0x3fee9feb564267c9,
    0x3c909ccb5e09d4d3, 0x3feea0694fde5d3f,
    0xbc7b32dcb94da51d, 0x3feea11473eb0187,
    0x3c94ecfd5467c06b, 0x3feea1ed0130c132,
    0x3c65ebe1abd66c55, 0x3feea2f336cf4e62,
    0xbc88a1c52fb3cf42, 0x3feea427543e1a12,
    0xbc9369b6f13b3734, 0x3feea589994cce13,
    0xbc805e843a19ff1e, 0x3feea71a4623c7ad,
    0xbc94d450d872576e, 0x3feea8d99b4492ed,
    0x3c90ad675b0e8a00, 0x3feeaac7d98a6699,
    0x3c8db72fc1f0eab4, 0x3feeace5422aa0db,
    0xbc65b6609cc5e7ff, 0x3feeaf3216b5448c,
    0x3c7bf68359f35f44, 0x3feeb1ae99157736,
    0xbc93091fa71e3d83, 0x3feeb45b0b91ffc6,
    0xbc5da9b88b6c1e29, 0x3feeb737b0cdc5e5,
    0xbc6c23f97c90b959, 0x3feeba44cbc8520f,
    0xbc92434322f4f9aa, 0x3feebd829fde4e50,
    0xbc85ca6cd7668e4b, 0x3feec0f170ca07ba,
    0x3c71affc2b91ce27, 0x3feec49182a3f090,
    0x3c6dd235e10a73bb, 0x3feec86319e32323,
    0xbc87c50422622263, 0x3feecc667b5de565,
    0x3c8b1c86e3e231d5, 0x3feed09bec4a2d33,
    0xbc91bbd1d3bcbb15, 0x3feed503b23e255d,
    0x3c90cc319cee31d2, 0x3feed99e1330b358,
    0x3c8469846e735ab3, 0x3feede6b5579fdbf,
    0xbc82dfcd978e9db4, 0x3feee36bbfd3f37a,
    0x3c8c1a7792cb3387, 0x3feee89f995ad3ad,
    0xbc907b8f4ad1d9fa, 0x3feeee07298db666,
    0xbc55c3d956dcaeba, 0x3feef3a2b84f15fb,
    0xbc90a40e3da6f640, 0x3feef9728de5593a,
    0xbc68d6f438ad9334, 0x3feeff76f2fb5e47,
    0xbc91eee26b588a35, 0x3fef05b030a1064a,
    0x3c74ffd70a5fddcd, 0x3fef0c1e904bc1d2,
    0xbc91bdfbfa9298ac, 0x3fef12c25bd71e09,
    0x3c736eae30af0cb3, 0x3fef199bdd85529c,
    0x3c8ee3325c9ffd94, 0x3fef20ab5fffd07a,
    0x3c84e08fd10959ac, 0x3fef27f12e57d14b,
    0x3c63cdaf384e1a67, 0x3fef2f6d9406e7b5,
    0x3c676b2c6c921968, 0x3fef3720dcef9069,
    0xbc808a1883ccb5d2, 0x3fef3f0b555dc3fa,
    0xbc8fad5d3ffffa6f, 0x3fef472d4a07897c,
    0xbc900dae3875a949, 0x3fef4f87080d89f2,
    0x3c74a385a63d07a7, 0x3fef5818dcfba487,
    0xbc82919e2040220f, 0x3fef60e316c98398,
    0x3c8e5a50d5c192ac, 0x3fef69e603db3285,
    0x3c843a59ac016b4b, 0x3fef7321f301b460,
    0xbc82d52107b43e1f, 0x3fef7c97337b9b5f,
    0xbc892ab93b470dc9, 0x3fef864614f5a129,
    0x3c74b604603a88d3, 0x3fef902ee78b3ff6,
    0x3c83c5ec519d7271, 0x3fef9a51fbc74c83,
    0xbc8ff7128fd391f0, 0x3fefa4afa2a490da,
    0xbc8dae98e223747d, 0x3fefaf482d8e67f1,
    0x3c8ec3bc41aa2008, 0x3fefba1bee615a27,
    0x3c842b94c3a9eb32, 0x3fefc52b376bba97,
    0x3c8a64a931d185ee, 0x3fefd0765b6e4540,
    0xbc8e37bae43be3ed, 0x3fefdbfdad9cbe14,
    0x3c77893b4d91cd9d, 0x3fefe7c1819e90d8,
    0x3c5305c14160cc89, 0x3feff3c22b8f71f1,
], dtype=np.uint64).view(np.int64)
_TAIL, _SCALE = 0, 1  # offsets in a pair of _EXP_TAB

# top12(x): the sign and exponent bits of x; the ranges of exp's argument, as glibc tests them.
_TOP12_TINY = 0x3C9    # top12(2^-54): below it, exp(x) = 1 + x
_TOP12_LARGE = 0x408   # top12(512): from it on, scale may leave the normal range
_TOP12_HUGE = 0x409    # top12(1024): from it on, the result is +inf or +0
_TOP12_INF = 0x7FF     # top12(inf): inf or nan
_EXPONENT_MASK = 0x7FF
_NEG_INF_BITS = -0x10000000000000  # bits of -inf as an int64 (0xfff0000000000000)
_SIGN_OF_K = 0x80000000            # glibc's test of k < 0 in the low 32 bits of ki
_BIAS_DOWN = 1009 << 52            # 512 <= |x| < 1024, k > 0: scale / 2^1009
_BIAS_UP = 1022 << 52              # 512 <= |x| < 1024, k < 0: scale * 2^1022
_TWO_POW_1009 = float.fromhex("0x1p1009")
_TWO_POW_M1022 = float.fromhex("0x1p-1022")


@njit(cache=True, inline="always")
def _exp_f64(x):
    """glibc 2.36's ``__exp_fma`` (see the module docstring), bit for bit.

    Every path of the C code is computed and the result selected, with no branch: LLVM can then
    vectorise a loop that calls it (the rare paths cost a few operations more per call).
    """
    ix = _bits(x)
    abstop = (ix >> 52) & _EXPONENT_MASK
    # x = k ln2/N + r; kd = k as a double, ki = its bits (k in the low bits)
    kd = _fma(x, _INV_LN2_N, _SHIFT)
    ki = _bits(kd)
    kd = kd - _SHIFT
    r = _fma(kd, _NEG_LN2_HI_N, x)
    r = _fma(kd, _NEG_LN2_LO_N, r)
    # 2^(k/N) ~ scale (1 + tail)
    j = 2 * (ki & _INDEX_MASK)
    tail = _from_bits(_EXP_TAB[j + _TAIL])
    sbits = _wrapping_add(_EXP_TAB[j + _SCALE], ki << _K_TO_EXPONENT)
    # tmp = tail + r + r^2 (C2 + r C3) + r^4 (C4 + r C5) ~ tail + exp(r) - 1
    r2 = r * r
    tmp = _fma(_fma(r, _C3, _C2), r2, r + tail)
    tmp = _fma(r2 * r2, _fma(r, _C5, _C4), tmp)
    # glibc's specialcase for 512 <= |x| < 1024, where 2^(k/N) may lie outside the normal range:
    # for k > 0 the exponent of scale is lowered by 1009 and the result multiplied by 2^1009; for
    # k < 0 it is raised by 1022, the result (not fused) rounded to the precision it keeps in the
    # subnormal range if below 1 (one rounding instead of two), and multiplied by 2^-1022. Other
    # arguments take the same operations with a bias of 0 and a factor of 1 (exact), and no lane
    # makes a subnormal number it does not return (a slow operation on most CPUs).
    large = abstop == _TOP12_LARGE
    k_positive = (ki & _SIGN_OF_K) == 0
    fused = k_positive | ~large
    bias = _select(large, _select(k_positive, -_BIAS_DOWN, _BIAS_UP), 0)
    factor = _select(large, _select(k_positive, _TWO_POW_1009, _TWO_POW_M1022), 1.0)
    scale = _from_bits(_wrapping_add(sbits, bias))
    y = _fma(scale, tmp, scale)
    scale_tmp = scale * tmp
    y_neg = scale + scale_tmp
    lo = scale - y_neg + scale_tmp
    hi = 1.0 + y_neg
    lo = 1.0 - hi + y_neg + lo
    y_sub = (lo + hi) - 1.0
    y_sub = _select(y_sub == 0.0, 0.0, y_sub)  # not -0
    y_neg = _select(y_neg < 1.0, y_sub, y_neg)
    y = _select(fused, y, y_neg) * factor
    # tiny, huge and non-finite arguments
    huge = _select(ix < 0, 0.0, math.inf)
    huge = _select(abstop == _TOP12_INF, 1.0 + x, huge)  # nan, +inf
    huge = _select(ix == _NEG_INF_BITS, 0.0, huge)
    y = _select(abstop >= _TOP12_HUGE, huge, y)
    return _select(abstop < _TOP12_TINY, 1.0 + x, y)


# --- expm1: glibc's s_expm1.c (fdlibm) ----------------------------------------------------------

_LN2_HI = float.fromhex("0x1.62e42fee00000p-1")    # ln2, high part (its products by k are exact)
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")   # ln2 - _LN2_HI
_INV_LN2 = float.fromhex("0x1.71547652b82fep+0")   # 1 / ln2
_O_THRESHOLD = float.fromhex("0x1.62e42fefa39efp+9")  # 709.78...: above it, expm1 overflows
_Q1 = float.fromhex("-0x1.11111111110f4p-5")        # R1(z) ~ 1 + Q1 z + ... + Q5 z^5 (scaled)
_Q2 = float.fromhex("0x1.a01a019fe5585p-10")
_Q3 = float.fromhex("-0x1.4ce199eaadbb7p-14")
_Q4 = float.fromhex("0x1.0cfca86e65239p-18")
_Q5 = float.fromhex("-0x1.afdb76e09c32dp-23")

# High words (sign cleared) of the bounds of expm1's argument ranges, as fdlibm tests them.
_HX_56_LN2 = 0x4043687A        # 56 ln2: from it on, expm1(x) = -1 for negative x
_HX_HALF_LN2 = 0x3FD62E42      # above 0.5 ln2: reduce the argument
_HX_1_5_LN2 = 0x3FF0A2B2       # below 1.5 ln2: k = +-1
_HX_TINY = 0x3C900000          # 2^-54: below it, expm1(x) = x
_SIGN_CLEAR = 0x7FFFFFFF
_K_BIG = 56                    # beyond it (and for k <= -2), 2^k (1 - (e - x)) - 1 is close enough
_K_SPLIT = 20                  # below it, 1 - 2^-k is a double with a zero low word
_SMALL_K_MASK = 31             # k & 31 = k for the k < _K_SPLIT that use it (a defined shift for the rest)
_ONE_HIGH = 0x3FF00000         # high word of 1.0
_HALF_ULP_HIGH = 0x200000      # 0x200000 >> k: high word of 2^-k below 1.0
_EXP_BIAS = 0x3FF


@njit(cache=True, inline="always")
def _add_exponent(y, k):
    """``y * 2^k`` by adding ``k`` to the exponent field (fdlibm's ``SET_HIGH_WORD(y, high + (k <<
    20))``, wrapping as its unsigned 32-bit sum does)."""
    return _from_bits(_wrapping_add(_bits(y), k << 52))


@njit(cache=True, inline="always")
def _expm1_f64(x):
    """glibc 2.36's ``__expm1_fma`` (see the module docstring), bit for bit.

    As in :func:`_exp_f64`, every path of the C code is computed and the result selected. The
    argument reduction is written once for its three cases: ``k = 0`` (``|x| <= ln2/2``),
    ``k = +-1`` (``|x| < 1.5 ln2``) and ``k`` the truncation of ``x/ln2 +- 1/2``, each as
    ``hi = fma(-k, ln2_hi, x)``, ``lo = k ln2_lo``, which gives the C code's values in all three
    (``x - ln2_hi`` and ``k ln2_lo`` are exact or equally rounded there). Arguments outside
    ``(-56 ln2, 709.78]`` are replaced by 0 before the reduction, so that no lane converts a huge
    number to an integer; their results are the special values.
    """
    ix = _bits(x)
    hx = (ix >> 32) & _SIGN_CLEAR
    negative = ix < 0
    in_range = (hx < _HX_56_LN2) | (~negative & (x <= _O_THRESHOLD))
    xs = _select(in_range, x, 0.0)
    # argument reduction: x = k ln2 + r, r = xr + c
    kd = np.float64(np.int32(_INV_LN2 * xs + _select(negative, -0.5, 0.5)))
    kd = _select(hx < _HX_1_5_LN2, _select(negative, -1.0, 1.0), kd)
    kd = _select(hx > _HX_HALF_LN2, kd, 0.0)
    k = np.int64(np.int32(kd))
    hi = _fma(-kd, _LN2_HI, xs)
    lo = kd * _LN2_LO
    xr = hi - lo
    c = (hi - xr) - lo
    # expm1(r) = r - E with E from R1(r^2/2) = 1 + Q1 z + ... + Q5 z^5
    hfx = 0.5 * xr
    hxs = xr * hfx
    r_1 = _fma(hxs, _Q1, 1.0)
    r_2 = _fma(hxs, _Q3, _Q2)
    r_3 = _fma(hxs, _Q5, _Q4)
    h2 = hxs * hxs
    h4 = h2 * h2
    r1 = _fma(h4, r_3, _fma(h2, r_2, r_1))
    t = _fma(-r1, hfx, 3.0)
    e = _divide(r1 - t, _fma(-xr, t, 6.0)) * hxs
    y_k0 = xr - _fma(xr, e, -hxs)
    # 2^k (expm1(r) + 1) - 1 = 2^k (r - E + 1) - 1, arranged per k
    e = _fma(xr, e - c, -c) - hxs
    y_km1 = _fma(0.5, xr - e, -0.5)
    y_k1 = _select(xr < -0.25, -2.0 * (e - (xr + 0.5)), _fma(2.0, xr - e, 1.0))
    y_far = _add_exponent(1.0 - (e - xr), k) - 1.0
    one_minus = _from_bits((_ONE_HIGH - (_HALF_ULP_HIGH >> (k & _SMALL_K_MASK))) << 32)  # 1 - 2^-k
    y_small = _add_exponent(one_minus - (e - xr), k)
    two_to_minus_k = _from_bits((_EXP_BIAS - k) << 52)
    y_big = _add_exponent((xr - (e + two_to_minus_k)) + 1.0, k)
    y = _select(k >= _K_SPLIT, y_big, y_small)
    y = _select((k <= -2) | (k > _K_BIG), y_far, y)
    y = _select(k == 1, y_k1, y)
    y = _select(k == -1, y_km1, y)
    y = _select(k == 0, y_k0, y)
    # tiny, huge and non-finite arguments
    y = _select(hx < _HX_TINY, x, y)
    y = _select((hx >= _HX_56_LN2) & negative, -1.0, y)
    y = _select(x > _O_THRESHOLD, math.inf, y)
    return _select(math.isnan(x), x + x, y)


# --- public functions ---------------------------------------------------------------------------

def exp(x):
    """``e^x``, bit for bit ``math.exp(x)`` of Numba-compiled code (glibc's ``exp``).

    Called from Python, this is ``math.exp(x)`` (the NumPy reference backend runs models' maths as
    Python); in Numba-compiled code, an overload: for a float64, glibc's algorithm inline (where
    :data:`REPLICATES_LIBM`), for any other number type ``math.exp(x)``.

    Parameters
    ----------
    x : float

    Returns
    -------
    float
        ``e^x``, of the type ``math.exp`` gives for ``x``.
    """
    return math.exp(x)


def expm1(x):
    """``e^x - 1``, accurate for small ``x``; bit for bit ``math.expm1(x)`` of Numba-compiled code
    (glibc's ``expm1``).

    Called from Python, this is ``math.expm1(x)``; in Numba-compiled code, an overload: for a
    float64, fdlibm's algorithm inline (where :data:`REPLICATES_LIBM`), for any other number type
    ``math.expm1(x)``.

    Parameters
    ----------
    x : float

    Returns
    -------
    float
        ``e^x - 1``, of the type ``math.expm1`` gives for ``x``.
    """
    return math.expm1(x)


# The replica is for the CPU (target "cpu"); on another target (numba-cuda compiling the same model
# functions for a GPU) math.exp/math.expm1 are that target's own (the "generic" overloads).
@overload(exp, inline="always")
def _exp_generic_ol(x):
    return lambda x: math.exp(x)


@overload(expm1, inline="always")
def _expm1_generic_ol(x):
    return lambda x: math.expm1(x)


@overload(exp, inline="always", target="cpu")
def _exp_ol(x):
    if REPLICATES_LIBM and isinstance(x, types.Float) and x.bitwidth == 64:
        return lambda x: _exp_f64(x)
    return lambda x: math.exp(x)


@overload(expm1, inline="always", target="cpu")
def _expm1_ol(x):
    if REPLICATES_LIBM and isinstance(x, types.Float) and x.bitwidth == 64:
        return lambda x: _expm1_f64(x)
    return lambda x: math.expm1(x)


def where(cond, a, b):
    """``a if cond else b``: in Python exactly that; in Numba-compiled code one LLVM ``select``
    of two float64 (or two int64), both computed, so that a loop around it stays branch-free and
    can vectorise (a ``/`` in ``a`` or ``b`` must then not divide by zero in Python: guard the
    divisor with another ``where``)."""
    return a if cond else b


@intrinsic
def _select_unified(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select``, in the type Numba unifies ``a`` and ``b`` to
    (a float32 stays a float32)."""
    kind = typingctx.unify_types(a, b) if isinstance(cond, types.Boolean) else None
    if not isinstance(kind, (types.Integer, types.Float)):
        raise TypingError("where takes a boolean and two numbers")

    def codegen(context, builder, signature, args):
        c, x, y = args
        _, tx, ty = signature.args
        return builder.select(c, context.cast(builder, x, tx, kind), context.cast(builder, y, ty, kind))

    return kind(cond, a, b), codegen


@overload(where, inline="always")
def _where_ol(cond, a, b):
    return lambda cond, a, b: _select_unified(cond, a, b)


def prefer_gathers():
    """Nothing in Python. In Numba-compiled code for the CPU, marks the function being compiled
    (the kernel's ``pop_step``, into which a model's step is inlined) as running on a CPU whose
    vector gathers are fast ("+fast-gather"): LLVM's cost model then loads :func:`exp`'s table
    entries for 4 lanes with one ``vgatherqpd`` instead of scalarising the loads -- and, with them,
    most of the loop body around them (an ``exp`` of a value computed from another ``exp``, as in
    the HH gates, ended up scalar in each lane). A cost-model hint only: no result changes."""


@overload(prefer_gathers, inline="always")
def _prefer_gathers_generic_ol():
    return lambda: None


@intrinsic
def _mark_fast_gather(typingctx):
    def codegen(context, builder, signature, args):
        features = getattr(context.codegen(), "_tm_features", "")
        if features and "+avx2" in features.split(","):
            attrs = builder.function.attributes
            # llvmlite's FunctionAttributes accepts only its known keywords: add the string
            # attribute to the underlying set (it is printed as written).
            set.add(attrs, f'"target-features"="{features},+fast-gather"')
        return context.get_dummy_value()

    return types.none(), codegen


@overload(prefer_gathers, inline="always", target="cpu")
def _prefer_gathers_ol():
    return lambda: _mark_fast_gather()
