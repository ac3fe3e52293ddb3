"""biosim.neurons.fastmath_exp: exp and expm1 give bit for bit the results of math.exp and
math.expm1 in Numba-compiled code (glibc's FMA variants on this machine), and a loop calling them
vectorises."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from numba import njit

from biosim.neurons.fastmath_exp import REPLICATES_LIBM, exp, expm1

#: Random inputs per function and source (a few million in all).
N_RANDOM = 400_000
#: Neighbours (in ulps, each side) of every special value.
NEIGHBOURS = 16


@njit
def _libm_exp(a, out):
    for i in range(a.shape[0]):
        out[i] = math.exp(a[i])


@njit
def _libm_expm1(a, out):
    for i in range(a.shape[0]):
        out[i] = math.expm1(a[i])


@njit
def _fast_exp(a, out):
    for i in range(a.shape[0]):
        out[i] = exp(a[i])


@njit
def _fast_expm1(a, out):
    for i in range(a.shape[0]):
        out[i] = expm1(a[i])


PAIRS = {"exp": (_libm_exp, _fast_exp), "expm1": (_libm_expm1, _fast_expm1)}


def _special_values() -> np.ndarray:
    """Zeros, subnormals, the extremes, inf, nans (quiet, signalling, with payloads) and the bounds
    of every argument range of both algorithms, each with its neighbours."""
    f = np.finfo(np.float64)
    ln2 = math.log(2.0)
    values = [
        0.0, f.smallest_subnormal, f.tiny, f.max, math.inf, 2.0**-54, 2.0**-53, 2.0**-55, 0.25, 1.0,
        512.0, 1024.0, 708.3964185322641, 709.782712893384, 709.7827128933841, 710.0,
        745.1332191019411, 745.1332191019412, 744.4400719213812, 1022 * ln2, 1074 * ln2,  # exp under/overflow
        0.5 * ln2, 1.5 * ln2, 19.5 * ln2, 20 * ln2, 56 * ln2, 57 * ln2, 38.816242111356935,  # expm1's k ranges
    ]
    base = np.array(values + [-v for v in values], dtype=np.float64).view(np.int64)
    near = (base[:, None] + np.arange(-NEIGHBOURS, NEIGHBOURS + 1)[None, :]).ravel()
    nans = np.array([0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FF4000000000000,
                     0x7FF8000000000123, 0xFFF0000000000001], dtype=np.uint64).view(np.int64)
    return np.concatenate([near, nans]).view(np.float64)


def _random_values(seed: int) -> np.ndarray:
    """The ranges the HH model uses (about -50..50, with more weight near 0) and everything else:
    uniform over the finite range of both functions, log-uniform magnitudes, random bit patterns."""
    rng = np.random.default_rng(seed)
    n = N_RANDOM
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return np.concatenate([
        rng.uniform(-50.0, 50.0, n), rng.uniform(-1.0, 1.0, n), rng.uniform(-750.0, 710.0, n),
        sign * 2.0 ** rng.uniform(-60.0, 10.0, n),
        rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, n, dtype=np.int64).view(np.float64),
    ])


def _mismatches(name: str, a: np.ndarray) -> list[str]:
    libm, fast = PAIRS[name]
    want, got = np.empty_like(a), np.empty_like(a)
    libm(a, want)
    fast(a, got)
    bad = np.flatnonzero(want.view(np.int64) != got.view(np.int64))
    return [f"{name}({a[i].hex()}) = {got[i].hex()}, math.{name}: {want[i].hex()}" for i in bad[:5]]


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_bit_identical_to_libm_on_special_values(name):
    assert _mismatches(name, _special_values()) == []


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_bit_identical_to_libm_on_random_values(name):
    assert _mismatches(name, _random_values(seed=20240611)) == []


def test_called_from_python_equals_math():
    """The NumPy reference runs models' py_func in Python: there the functions give math's values."""
    for x in (-45.3, -0.3, 0.0, 1e-20, 0.7, 3.5, 49.9, 700.0, -800.0):  # (Python raises for exp(800))
        assert math.exp(x).hex() == float(exp(x)).hex()
        assert math.expm1(x).hex() == float(expm1(x)).hex()


def test_float32_is_math_exp_of_float32():
    """A float32 argument (a float32 network) gets Numba's math.exp/expm1 of the float32, as before."""
    @njit
    def both(x):
        return exp(x), math.exp(x), expm1(x), math.expm1(x)

    for x in (np.float32(-3.25), np.float32(0.125), np.float32(20.5)):
        e_fast, e_libm, m_fast, m_libm = both(x)
        assert e_fast == e_libm and m_fast == m_libm


@pytest.mark.skipif(not REPLICATES_LIBM, reason="exp/expm1 call the C library on this machine")
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_loop_vectorises(name):
    """No call into the C library is left, and LLVM vectorises the loop (4 doubles with AVX2)."""
    fast = PAIRS[name][1]
    llvm = fast.inspect_llvm(fast.signatures[0])
    assert not re.search(r"call [^\n]*@(exp|expm1)\(", llvm)
    assert "<4 x double>" in llvm or "<8 x double>" in llvm


def test_where_is_a_conditional_in_python_and_a_select_in_numba():
    from biosim.neurons.fastmath_exp import where

    @njit(error_model="numpy")
    def f(a, b, out):
        for i in range(a.shape[0]):
            out[i] = where(b[i] != 0.0, a[i] / where(b[i] != 0.0, b[i], 1.0), -1.0)

    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.0, -4.0])
    out = np.empty(3)
    f(a, b, out)
    assert out.tolist() == [0.5, -1.0, -0.75]
    assert [where(x != 0.0, 1.0 / where(x != 0.0, x, 1.0), -1.0) for x in b.tolist()] == [0.5, -1.0, -0.25]
    keep32 = njit(lambda x: where(x > 0, x, np.float32(0)))
    assert keep32(np.float32(2)) == 2.0 and str(keep32.nopython_signatures[0].return_type) == "float32"


@pytest.mark.skipif(not REPLICATES_LIBM, reason="exp/expm1 call the C library on this machine")
def test_hh_loop_vectorises_fully():
    """The HH step in a loop like the kernel's (error_model="numpy"): no call into the C library,
    and the exps' table loads are gathers, so the FMAs are vector FMAs, not 4 scalar ones per lane
    (LLVM's cost model for AMD CPUs scalarises gathers, and most of the loop with them, unless
    hh_step's prefer_gathers() marks the function)."""
    from biosim.neurons.hh import HH, _hh_constants, hh_step

    step = njit(inline="always")(hh_step.py_func)

    @njit(error_model="numpy")
    def loop(R, c, e):
        for i in range(e.shape[0]):
            step(R, i, c, e[i], False)

    X = np.zeros((6, 64))
    X[0] = np.linspace(-80.0, 40.0, 64)
    loop(tuple(X[k] for k in range(6)), _hh_constants(HH(), 0.1), np.zeros(64))
    llvm = loop.inspect_llvm(loop.signatures[0])
    assert not re.search(r"call [^\n]*@(exp|expm1)\(", llvm)
    # vector FMAs of the CPU's width (v4f64 with AVX2, v8f64 with AVX-512: Numba compiles for this CPU)
    vector, scalar = len(re.findall(r"@llvm\.fma\.v\d+f64\(", llvm)), llvm.count("call double @llvm.fma.f64(")
    assert vector >= scalar > 0  # scalar ones: the remainder loop only
