"""Counter-based random numbers: Philox4x32-10, and the random inputs of a network drawn with it.

Every random input of a network is a pure function of ``(seed, stream, step, index)``: no
generator state is carried from step to step, so the draws do not depend on how a run is cut into
chunks or calls, on a snapshot and restore in between, nor on which backend (or thread, or GPU
block) computes them.

Philox4x32-10 (Salmon, Moraes, Dror & Shaw 2011, "Parallel random numbers: as easy as 1, 2, 3",
the ``philox4x32_10`` of the Random123 library) maps a 128-bit counter ``(c0, c1, c2, c3)`` and a
64-bit key ``(k0, k1)`` to four 32-bit words. One round::

    hi0:lo0 = 0xD2511F53 * c0          (64-bit product of two 32-bit words)
    hi1:lo1 = 0xCD9E8D57 * c2
    (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)

ten times, the key bumped by ``(0x9E3779B9, 0xBB67AE85)`` (mod 2**32) before each round after
the first. The tests check Random123's known-answer vectors.

How biosim keys it
------------------
* key ``(k0, k1)``: the network's seed modulo 2**64, low word first (:func:`key_of_seed`);
* counter ``(index, pair_lo, pair_hi, stream)``: ``index`` is the source or target neuron within
  the input (< 2**32), ``pair = step >> 1`` (its low and high 32-bit words) and ``stream`` the
  input's stream id (:func:`stream_id`: the kind of input in the top 4 bits, its position among
  the network's inputs of that kind below);
* the four output words give two float64 numbers in [0, 1) of 53 random bits each
  (:func:`unit53`): words 0 and 1 for the even step ``2*pair``, words 2 and 3 for the odd step
  ``2*pair + 1``. :func:`uniform` gives the number of one step; :func:`uniform_pair` both.

What the network draws
----------------------
* Poisson group (stream ``stream_id(POISSON_GROUP, position in net.inputs)``): source ``k`` spikes
  at step ``s`` when ``uniform(k0, k1, stream, s, k) < rate_k * 1e-3 * dt_ms`` (both float64; the
  comparison is exact). Sources with rate 0 never spike and are not drawn.
* PoissonInput (stream ``stream_id(POISSON_INPUT, position in net.poisson_inputs)``): target
  neuron ``j`` receives ``binomial(n_sources, rate_hz * 1e-3 * dt_ms, uniform(k0, k1, stream, s,
  j))`` spikes at step ``s`` (:func:`binomial`, inversion of one uniform number).

Where these functions run
-------------------------
The numeric functions here (:data:`DEVICE_FUNCTIONS`, and the bulk host helpers
:func:`bernoulli_events` and :func:`binomial_block`) are ``numba.njit(cache=True)``, and those of
:data:`DEVICE_FUNCTIONS` are written for three targets at once:

* the CPU: call it from other njit code or from Python;
* plain Python / NumPy: :func:`python_functions` returns them as plain Python functions (their
  ``py_func``, each calling the plain versions of the others), which give bit-identical results
  (the tests check it); ``philox4x32``, ``unit53`` and ``uniform_pair`` there also accept NumPy
  integer arrays for their counter, pair and index arguments and then work element-wise;
* CUDA: :func:`cuda_device_functions` returns ``numba.cuda.jit(device=True)`` versions of them,
  built from the same Python functions, each calling the device versions of the others::

      dev = philox.cuda_device_functions()
      uniform_dev, binomial_dev = dev["uniform"], dev["binomial"]

      @cuda.jit
      def poisson_group(k0, k1, stream, s0, thr, out):  # out[t, k]: spike of source k at step s0+t
          t, k = cuda.grid(2)
          if t < out.shape[0] and k < out.shape[1]:
              out[t, k] = uniform_dev(k0, k1, stream, s0 + t, k) < thr[k]

  (``uniform_pair`` gives the next step's number from the same Philox call, as
  :func:`bernoulli_events` and :func:`binomial_block` use it.) Pass the key words, stream and
  step as integers (``key_of_seed``, ``stream_id``); a kernel that draws a network's inputs on the
  device gives the same numbers as the host does.

  Only uint64 integer arithmetic (every 32-bit word is held in a uint64 and masked explicitly; the
  32x32-bit products are computed as uint64, their high word is ``p >> 32``) and IEEE float64
  ``+ - * /`` are used on the paths that decide the draws, so the CPU, NumPy and CUDA results are
  the same bit for bit, provided the CUDA code is compiled without ``fastmath`` (which would
  flush denormals and use approximate division). The binomial inversion (small ``n*p``) is written
  so that no product feeds an addition directly (each probability is last divided, never
  multiplied, before it is summed), so NVVM's default FMA contraction cannot change its sums.
  Only the large-``n*p`` branch of :func:`binomial` uses ``math.lgamma``, ``log``, ``log1p`` and
  ``exp``, whose last bit may differ between libm and libdevice (a draw changes with probability
  of order 1e-13 there).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["philox4x32", "unit53", "uniform_pair", "uniform", "binomial_setup", "binomial_from",
           "binomial", "bernoulli_events", "binomial_block", "key_of_seed", "stream_id",
           "cuda_device_functions", "python_functions", "POISSON_GROUP", "POISSON_INPUT", "BINOMIAL_INVERSION_MAX_MEAN",
           "DEVICE_FUNCTIONS"]

#: kinds of random input (the top 4 bits of a stream id)
POISSON_GROUP = 1
POISSON_INPUT = 2

#: :func:`binomial` inverts the CDF from 0 while ``n * min(p, 1-p)`` is below this, else it searches
#: from the mode
BINOMIAL_INVERSION_MAX_MEAN = 30.0

#: the njit functions that :func:`cuda_device_functions` and :func:`python_functions` rebuild, each
#: after the ones it calls
DEVICE_FUNCTIONS = ("philox4x32", "unit53", "uniform_pair", "uniform", "binomial_setup", "binomial_from",
                    "binomial")


def _rebuilt(wrap) -> dict:
    """``wrap`` applied to the Python source of each of :data:`DEVICE_FUNCTIONS`, the functions it
    calls replaced by their wrapped versions, by name."""
    import types

    out: dict = {}
    for name in DEVICE_FUNCTIONS:
        f = globals()[name].py_func
        scope = dict(f.__globals__, **out)
        out[name] = wrap(types.FunctionType(f.__code__, scope, name, f.__defaults__, f.__closure__))
    return out


def cuda_device_functions() -> dict:
    """CUDA device versions of :data:`DEVICE_FUNCTIONS`, by name: ``numba.cuda.jit(device=True)``
    of each function's Python source, with the functions it calls replaced by their device
    versions (a device function may call only device functions). Compiled lazily, for the
    argument types of the first call."""
    from numba import cuda

    return _rebuilt(cuda.jit(device=True))


def python_functions() -> dict:
    """Plain Python versions of :data:`DEVICE_FUNCTIONS`, by name (no Numba at all: each calls the
    plain versions of the others). :func:`philox4x32`, :func:`unit53` and :func:`uniform_pair`
    work element-wise on NumPy integer arrays too."""
    return _rebuilt(lambda f: f)


def key_of_seed(seed: int) -> tuple[int, int]:
    """The Philox key ``(k0, k1)`` of a network seed: ``seed mod 2**64``, low word first."""
    s = int(seed) % (1 << 64)
    return s & 0xFFFFFFFF, s >> 32


def stream_id(kind: int, position: int) -> int:
    """The stream (counter word 3) of an input: ``kind`` (:data:`POISSON_GROUP` or
    :data:`POISSON_INPUT`) in the top 4 bits, ``position`` (< 2**28) below."""
    if not 0 <= position < (1 << 28):
        raise ValueError(f"stream position {position} out of range 0..2**28-1")
    return (kind << 28) | position


@njit(cache=True)
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter ``(c0, c1, c2, c3)`` and key ``(k0, k1)``.

    Arguments are integers in ``[0, 2**32)`` (any integer type, or NumPy integer arrays in plain
    Python); returns the four output words as uint64 values in ``[0, 2**32)``.
    """
    mask = np.uint64(0xFFFFFFFF)
    m0 = np.uint64(0xD2511F53)
    m1 = np.uint64(0xCD9E8D57)
    w0 = np.uint64(0x9E3779B9)
    w1 = np.uint64(0xBB67AE85)
    sh = np.uint64(32)
    x0 = np.uint64(c0) & mask
    x1 = np.uint64(c1) & mask
    x2 = np.uint64(c2) & mask
    x3 = np.uint64(c3) & mask
    a = np.uint64(k0) & mask
    b = np.uint64(k1) & mask
    for r in range(10):
        if r > 0:
            a = (a + w0) & mask
            b = (b + w1) & mask
        p0 = m0 * x0
        p1 = m1 * x2
        y0 = (p1 >> sh) ^ x1 ^ a
        y2 = (p0 >> sh) ^ x3 ^ b
        x0 = y0
        x1 = p1 & mask
        x2 = y2
        x3 = p0 & mask
    return x0, x1, x2, x3


@njit(cache=True)
def unit53(hi, lo):
    """A float64 in ``[0, 1)`` from two 32-bit words: the 32 bits of ``hi`` above the top 21 bits of
    ``lo`` (53 bits), times 2**-53 (exact)."""
    x = ((np.uint64(hi) << np.uint64(21)) | (np.uint64(lo) >> np.uint64(11))) & np.uint64(0x1FFFFFFFFFFFFF)
    return np.float64(x) * 1.1102230246251565e-16  # 2**-53


@njit(cache=True)
def uniform_pair(k0, k1, stream, pair, index):
    """The numbers of steps ``2*pair`` and ``2*pair + 1`` of ``index`` in ``stream``: two float64
    in ``[0, 1)``, each of 53 random bits."""
    p = np.uint64(pair)
    w = philox4x32(index, p & np.uint64(0xFFFFFFFF), p >> np.uint64(32), stream, k0, k1)
    return unit53(w[0], w[1]), unit53(w[2], w[3])


@njit(cache=True)
def uniform(k0, k1, stream, step, index):
    """The number of ``step`` (>= 0) and ``index`` in ``stream``: a float64 in ``[0, 1)``."""
    s = np.uint64(step)
    p = s >> np.uint64(1)
    w = philox4x32(index, p & np.uint64(0xFFFFFFFF), p >> np.uint64(32), stream, k0, k1)
    if s & np.uint64(1):
        return unit53(w[2], w[3])
    return unit53(w[0], w[1])


@njit(cache=True)
def binomial_setup(n, p):
    """What :func:`binomial_from` needs for Binomial(``n``, ``p``), computed once per ``(n, p)``:
    ``(q, flip, r, f0)`` with ``q = min(p, 1-p)``, ``flip`` (1 when ``q = 1-p``: the count is
    ``n`` minus a Binomial(n, q) count), ``r = q / (1-q)`` and ``f0 = (1-q)**n`` by repeated
    squaring (multiplications only; used when ``n*q`` is below
    :data:`BINOMIAL_INVERSION_MAX_MEAN`, where it cannot underflow)."""
    flip = 0
    q = p
    if p > 0.5:
        q = 1.0 - p
        flip = 1
    if q <= 0.0 or n <= 0:
        return q, flip, 0.0, 1.0
    r = q / (1.0 - q)
    f0 = 1.0
    base = 1.0 - q
    e = n
    while e > 0:  # f0 = base**n
        if e & 1:
            f0 = f0 * base
        base = base * base
        e = e >> 1
    return q, flip, r, f0


@njit(cache=True)
def binomial_from(n, q, flip, r, f0, u):
    """A Binomial(``n``, ``p``) count from one uniform number ``u`` in ``[0, 1)``, with ``(q, flip,
    r, f0) = binomial_setup(n, p)``.

    Small mean (``n*q <`` :data:`BINOMIAL_INVERSION_MAX_MEAN`): inversion of the CDF, the smallest
    ``k`` with ``u < F(k) = f(0) + ... + f(k)``, the pmf from ``f(0) = (1-q)**n`` by the exact
    recurrence ``f(k+1) = f(k) * r * (n-k) / (k+1)``; about ``n*q + 1`` steps.

    Large mean: inversion over the support ordered by decreasing probability (unimodal pmf, so
    from the mode ``m = floor((n+1) q)`` outwards, one step down or up to whichever neighbour is
    more probable): the first ``k`` in that order where the summed pmf exceeds ``u``. ``f(m)`` comes
    from ``lgamma``, the neighbours by the same recurrence (up) and its inverse (down); about
    ``0.8 sqrt(n q (1-q))`` steps. Any fixed order of the support gives the binomial
    distribution; this one keeps the search short.

    Either way the count is a deterministic function of ``u`` (exact in distribution up to float64
    rounding of the pmf; a ``u`` beyond the rounded total mass, probability ~1e-15, gives the last
    ``k`` visited whose pmf is not 0 in float64). With ``flip`` the count is ``n`` minus the
    Binomial(n, q) count.
    """
    if q <= 0.0 or n <= 0:
        k = 0
    elif n * q < BINOMIAL_INVERSION_MAX_MEAN:
        k = 0
        f = f0
        cdf = f0
        while u >= cdf and k < n:
            f_next = f * r * (n - k) / (k + 1)  # the last operation a division: no FMA into the sum
            if f_next == 0.0:  # underflow past the mode: no mass left in float64
                break
            f = f_next
            k += 1
            cdf = cdf + f
    else:
        m = int(math.floor((n + 1) * q))
        if m > n:
            m = n
        fm = math.exp(math.lgamma(n + 1.0) - math.lgamma(m + 1.0) - math.lgamma(n - m + 1.0)
                      + m * math.log(q) + (n - m) * math.log1p(-q))
        k = m
        cdf = fm
        lo = m
        hi = m
        f_lo = fm
        f_hi = fm
        while u >= cdf and (lo > 0 or hi < n):
            down = -1.0
            up = -1.0
            if lo > 0:
                down = (f_lo * lo) / ((n - lo + 1) * r)  # f(lo-1)
            if hi < n:
                up = f_hi * r * (n - hi) / (hi + 1)  # f(hi+1)
            if down <= 0.0 and up <= 0.0:  # both tails underflowed: no mass left in float64
                break
            if down >= up:
                lo -= 1
                f_lo = down
                k = lo
                cdf = cdf + down
            else:
                hi += 1
                f_hi = up
                k = hi
                cdf = cdf + up
    if flip:
        return n - k
    return k


@njit(cache=True)
def binomial(n, p, u):
    """A Binomial(``n``, ``p``) count from one uniform number ``u`` in ``[0, 1)`` (see
    :func:`binomial_from`; :func:`binomial_setup` once per ``(n, p)`` saves its work when drawing
    many counts)."""
    q, flip, r, f0 = binomial_setup(n, p)
    return binomial_from(n, q, flip, r, f0, u)


@njit(cache=True)
def bernoulli_events(k0, k1, stream, s0, n_steps, active, thr):
    """The events of a Poisson group over steps ``s0 .. s0+n_steps-1``: source ``active[i]`` spikes
    at step ``s`` when ``uniform(k0, k1, stream, s, active[i]) < thr[i]``.

    Returns ``(steps, sources)`` (int64; steps relative to ``s0``), ordered by step, then as in
    ``active``. Only the sources in ``active`` are drawn (a source with ``thr = 0`` never spikes).
    """
    na = len(active)
    cap = 16 + int(1.5 * n_steps * thr.sum())
    out_s = np.empty(cap, np.int64)
    out_k = np.empty(cap, np.int64)
    odd = np.empty(na, np.bool_)
    n_out = 0
    s_end = s0 + n_steps
    for pair in range(s0 >> 1, ((s_end - 1) >> 1) + 1):
        even_step = 2 * pair
        if n_out + 2 * na > cap:
            cap = 2 * cap + 2 * na
            out_s = np.concatenate((out_s[:n_out], np.empty(cap - n_out, np.int64)))
            out_k = np.concatenate((out_k[:n_out], np.empty(cap - n_out, np.int64)))
        take_even = even_step >= s0
        for i in range(na):
            ue, uo = uniform_pair(k0, k1, stream, pair, active[i])
            if take_even and ue < thr[i]:
                out_s[n_out] = even_step - s0
                out_k[n_out] = active[i]
                n_out += 1
            odd[i] = uo < thr[i]
        if even_step + 1 < s_end:
            for i in range(na):
                if odd[i]:
                    out_s[n_out] = even_step + 1 - s0
                    out_k[n_out] = active[i]
                    n_out += 1
    return out_s[:n_out].copy(), out_k[:n_out].copy()


@njit(cache=True)
def binomial_block(k0, k1, stream, s0, n, p, out):
    """Fill ``out`` (``(n_steps, n_targets)`` int32) with the counts of a PoissonInput: ``out[t, j] =
    binomial(n, p, uniform(k0, k1, stream, s0 + t, j))``."""
    n_steps, n_tgt = out.shape
    q, flip, r, f0 = binomial_setup(n, p)
    s_end = s0 + n_steps
    for pair in range(s0 >> 1, ((s_end - 1) >> 1) + 1):
        te = 2 * pair - s0
        for j in range(n_tgt):
            ue, uo = uniform_pair(k0, k1, stream, pair, j)
            if te >= 0:
                out[te, j] = binomial_from(n, q, flip, r, f0, ue)
            if te + 1 < n_steps:
                out[te + 1, j] = binomial_from(n, q, flip, r, f0, uo)
