"""Counter-based random numbers (:mod:`biosim.backends.philox`).

* Philox4x32-10 gives Random123's known-answer vectors, compiled (njit), as plain Python and as
  element-wise NumPy; all three agree bit for bit on random counters and keys;
* the uniform numbers: 53 bits in [0, 1), keyed by (seed, stream, step, index), uniform and
  without correlation between neighbouring steps, indices, streams or seeds;
* the binomial counts: a fine grid of uniform numbers maps onto the exact pmf (inversion for small
  ``n*p``, the modal search for large), compiled and plain Python agree, edge cases;
* the bulk helpers equal the scalar functions wherever a chunk starts or ends;
* the CUDA device versions compile to PTX (leaf functions, when NVVM is installed) and, in Numba's
  CUDA simulator, a kernel calling them gives the host's numbers;
* a network's random inputs are those functions of (seed, input, step, index): the same spikes
  whatever the chunking (one call, ten calls, other internal chunk lengths) and on both backends,
  and the spikes of a step do not depend on the rates of other steps.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from biosim import LIF, FixedProbability, Network
from biosim.backends import philox as px

#: Random123's kat_vectors, philox4x32_10: counter (4 words), key (2 words) -> output (4 words)
KAT = [
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]

PY = px.python_functions()


@pytest.fixture(autouse=True)
def _floating_point_errors_raise():
    with np.errstate(all="raise"):
        yield


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_known_answers(counter, key, expected):
    assert tuple(int(w) for w in px.philox4x32(*counter, *key)) == expected
    assert tuple(int(w) for w in px.philox4x32.py_func(*counter, *key)) == expected
    assert tuple(int(w) for w in PY["philox4x32"](*counter, *key)) == expected
    # element-wise over NumPy arrays (uint64 words)
    arrays = [np.full(3, w, np.uint64) for w in counter + key]
    for out, want in zip(PY["philox4x32"](*arrays), expected):
        assert out.dtype == np.uint64
        np.testing.assert_array_equal(out, want)


def test_compiled_plain_and_numpy_agree_on_random_words():
    rng = np.random.default_rng(11)
    words = rng.integers(0, 2**32, size=(200, 6), dtype=np.uint64)
    vec = PY["philox4x32"](*words.T)
    for row, i in zip(words, range(len(words))):
        args = [int(w) for w in row]
        a = tuple(int(w) for w in px.philox4x32(*args))
        assert a == tuple(int(w) for w in PY["philox4x32"](*args))
        assert a == tuple(int(v[i]) for v in vec)
        assert all(0 <= w < 2**32 for w in a)
    for k0, k1, stream, step, index in rng.integers(0, 2**31, size=(100, 5)).tolist():
        u = px.uniform(k0, k1, stream, step, index)
        assert u == PY["uniform"](k0, k1, stream, step, index)
        pair = px.uniform_pair(k0, k1, stream, step >> 1, index)
        assert u == pair[step & 1] and pair == PY["uniform_pair"](k0, k1, stream, step >> 1, index)


def test_unit53_uses_53_bits_in_the_unit_interval():
    assert px.unit53(0, 0) == 0.0
    assert px.unit53(0xFFFFFFFF, 0xFFFFFFFF) == 1.0 - 2.0**-53
    assert px.unit53(0, 1 << 11) == 2.0**-53  # the lowest bit used
    assert px.unit53(0, (1 << 11) - 1) == 0.0  # the 11 bits below it are not
    assert px.unit53(1 << 31, 0) == 0.5


def test_uniform_numbers_are_uniform_and_independent():
    n = 200_000
    idx = np.arange(n, dtype=np.uint64)
    k0, k1 = px.key_of_seed(1234)
    stream = px.stream_id(px.POISSON_GROUP, 0)
    even, odd = PY["uniform_pair"](k0, k1, stream, np.uint64(5), idx)  # steps 10 and 11
    other_stream = PY["uniform_pair"](k0, k1, px.stream_id(px.POISSON_INPUT, 0), np.uint64(5), idx)[0]
    other_seed = PY["uniform_pair"](*px.key_of_seed(1235), stream, np.uint64(5), idx)[0]
    for u in (even, odd, other_stream, other_seed):
        assert u.min() >= 0.0 and u.max() < 1.0
        assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / n)
        hist = np.bincount((u * 20).astype(int), minlength=20)
        chi2 = ((hist - n / 20) ** 2 / (n / 20)).sum()
        assert chi2 < 50  # 19 degrees of freedom: p ~ 1e-4
    for a, b in ((even, odd), (even, other_stream), (even, other_seed), (even[:-1], even[1:])):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(n)
    assert len(np.unique(np.concatenate([even, odd, other_stream, other_seed]))) == 4 * n


def test_keys_and_streams():
    assert px.key_of_seed(0) == (0, 0)
    assert px.key_of_seed(2**32 + 7) == (7, 1)
    assert px.key_of_seed(2**64 + 7) == (7, 0)  # the seed modulo 2**64
    assert px.stream_id(px.POISSON_GROUP, 3) == (1 << 28) | 3
    assert px.stream_id(px.POISSON_INPUT, 0) == 2 << 28
    with pytest.raises(ValueError, match="out of range"):
        px.stream_id(px.POISSON_GROUP, 1 << 28)


def _pmf(n, p):
    k = np.arange(n + 1)
    lg = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
    with np.errstate(divide="ignore", under="ignore"):
        pmf = np.exp(lg + k * np.log(p) + (n - k) * np.log1p(-p))
    return np.where(pmf < 1e-300, 0.0, pmf)


@pytest.mark.parametrize("n,p", [(1, 0.3), (20, 0.05), (1000, 0.002), (50, 0.5), (40, 0.9), (100, 0.29),
                                 (200, 0.2), (5000, 0.01), (400, 0.7), (30, 0.999)])
def test_binomial_maps_a_uniform_grid_onto_the_exact_pmf(n, p):
    """Inversion: the share of a fine grid of ``u`` that gives ``k`` is ``pmf(k)`` to the grid's
    resolution (small n*p: from 0; large n*p (40, 80, 50, 280): from the mode)."""
    m = 200_000
    u = (np.arange(m) + 0.5) / m
    counts = np.array([px.binomial(n, p, x) for x in u])
    freq = np.bincount(counts, minlength=n + 1) / m
    np.testing.assert_allclose(freq, _pmf(n, p), rtol=0, atol=2.0 / m)
    if min(p, 1 - p) * n < px.BINOMIAL_INVERSION_MAX_MEAN:  # inversion of the CDF: monotone in u
        assert np.all(np.diff(counts) >= 0) if p <= 0.5 else np.all(np.diff(counts) <= 0)


def test_binomial_compiled_and_plain_agree_and_edge_cases():
    rng = np.random.default_rng(5)
    cases = [(int(n), float(p), float(u)) for n, p, u in zip(rng.integers(0, 3000, 300), rng.random(300) ** 3,
                                                             rng.random(300))]
    cases += [(0, 0.3, 0.5), (10, 0.0, 0.99), (10, 1.0, 0.0), (10, 1.0, 0.99), (7, 0.5, 0.0),
              (7, 0.5, 1.0 - 2**-53), (10**6, 0.5, 0.5), (10**6, 1e-7, 1.0 - 2**-53), (10**6, 0.3, 1.0 - 2**-53)]
    for n, p, u in cases:
        k = px.binomial(n, p, u)
        assert k == PY["binomial"](n, p, u)
        assert 0 <= k <= n
    assert px.binomial(10, 0.0, 0.99) == 0 and px.binomial(10, 1.0, 0.0) == 10 and px.binomial(0, 0.3, 0.5) == 0
    assert px.binomial(7, 0.5, 0.0) == 0 and px.binomial(7, 0.5, 1.0 - 2**-53) == 7
    assert px.binomial(10**6, 0.5, 0.0) == 500_000 and px.binomial(10**6, 0.3, 0.0) == 300_000  # modal search


@pytest.mark.parametrize("s0,n_steps", [(0, 1), (0, 9), (7, 1), (7, 10), (1000, 301)])
def test_bulk_helpers_equal_the_scalar_functions(s0, n_steps):
    k0, k1 = px.key_of_seed(99)
    stream = px.stream_id(px.POISSON_GROUP, 2)
    active = np.array([0, 3, 4, 10, 11, 30], np.int64)
    thr = np.array([0.2, 0.5, 0.05, 1.0, 0.3, 0.9])
    steps, src = px.bernoulli_events(k0, k1, stream, s0, n_steps, active, thr)
    want = [(t, k) for t in range(n_steps) for k, th in zip(active, thr)
            if px.uniform(k0, k1, stream, s0 + t, k) < th]
    assert list(zip(steps.tolist(), src.tolist())) == want
    out = np.full((n_steps, 9), -1, np.int32)
    px.binomial_block(k0, k1, stream, s0, 40, 0.1, out[:, 2:7])
    assert np.all(out[:, :2] == -1) and np.all(out[:, 7:] == -1)
    for t in range(n_steps):
        for j in range(5):
            assert out[t, 2 + j] == px.binomial(40, 0.1, px.uniform(k0, k1, stream, s0 + t, j))


def test_bulk_helpers_do_not_depend_on_the_chunking():
    k0, k1 = px.key_of_seed(3)
    active = np.arange(0, 50, 2, dtype=np.int64)
    thr = np.linspace(0.01, 0.3, len(active))
    whole = px.bernoulli_events(k0, k1, 5, 0, 100, active, thr)
    cuts = [0, 1, 2, 13, 14, 57, 100]
    parts = [px.bernoulli_events(k0, k1, 5, a, b - a, active, thr) for a, b in zip(cuts, cuts[1:])]
    np.testing.assert_array_equal(whole[0], np.concatenate([p[0] + a for p, a in zip(parts, cuts)]))
    np.testing.assert_array_equal(whole[1], np.concatenate([p[1] for p in parts]))
    block = np.zeros((100, 20), np.int32)
    px.binomial_block(k0, k1, 6, 0, 200, 0.03, block)
    pieces = np.zeros_like(block)
    for a, b in zip(cuts, cuts[1:]):
        px.binomial_block(k0, k1, 6, a, 200, 0.03, pieces[a:b])
    np.testing.assert_array_equal(block, pieces)


def test_leaf_functions_compile_for_cuda():
    """PTX for sm_90 (no GPU needed, only NVVM) of the functions that call no others: no NumPy call
    or type that CUDA device code lacks."""
    cuda = pytest.importorskip("numba.cuda")
    sigs = {"philox4x32": "UniTuple(uint64, 4)(uint64, uint64, uint64, int64, uint64, uint64)",
            "unit53": "float64(uint64, uint64)",
            "binomial_setup": "Tuple((float64, int64, float64, float64))(int64, float64)",
            "binomial_from": "int64(int64, float64, int64, float64, float64, float64)"}
    for name, sig in sigs.items():
        try:
            ptx, _ = cuda.compile_ptx(getattr(px, name).py_func, sig, device=True, cc=(9, 0))
        except Exception as exc:  # no CUDA compiler libraries on this machine (CI has none)
            text = f"{type(exc).__name__} {exc}".lower()
            if any(lib in text for lib in ("nvvm", "nvrtc", "libdevice", "dynamiclibnotfound")):
                pytest.skip(f"CUDA compiler libraries not available: {type(exc).__name__}")
            raise
        assert ".func" in ptx


_SIMULATOR = textwrap.dedent("""
    import numpy as np
    from numba import cuda
    from biosim.backends import philox as px

    dev = px.cuda_device_functions()
    uniform, uniform_pair, binomial = dev["uniform"], dev["uniform_pair"], dev["binomial"]

    @cuda.jit
    def draw(k0, k1, stream, s0, u_out, pair_out, b_out):
        t, j = cuda.grid(2)
        if t < u_out.shape[0] and j < u_out.shape[1]:
            u = uniform(k0, k1, stream, s0 + t, j)
            u_out[t, j] = u
            a, b = uniform_pair(k0, k1, stream, s0 + t, j)
            pair_out[t, j] = b
            b_out[t, j] = binomial(50, 0.1, u)

    k0, k1 = px.key_of_seed(2**40 + 17)
    u = np.zeros((5, 6)); pair = np.zeros((5, 6)); b = np.zeros((5, 6), np.int64)
    draw[(1, 1), (5, 6)](k0, k1, 12, 3, u, pair, b)
    for t in range(5):
        for j in range(6):
            assert u[t, j] == px.uniform(k0, k1, 12, 3 + t, j)
            assert pair[t, j] == px.uniform_pair(k0, k1, 12, 3 + t, j)[1]
            assert b[t, j] == px.binomial(50, 0.1, u[t, j])
    print("simulator ok")
""")


def test_cuda_device_functions_in_the_simulator():
    """The device versions (built from the same Python source) called from a kernel, run by Numba's
    CUDA simulator: the host's numbers."""
    pytest.importorskip("numba.cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    res = subprocess.run([sys.executable, "-c", _SIMULATOR], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "simulator ok" in res.stdout


# --- a network's random inputs ----------------------------------------------------------------

def _net(seed=4, rates=None):
    net = Network(dt_ms=0.1, seed=seed)
    pg = net.poisson_group("pg", 50, rate_hz=np.linspace(0.0, 80.0, 50) if rates is None else rates)
    gen = net.spike_generator("gen", 3, [0, 1, 2], [1.0, 5.0, 7.3])
    exc = net.population("exc", LIF(), 40, init={"v": lambda rng, n: rng.uniform(-65.0, -52.0, n)})
    inh = net.population("inh", LIF(), 10)
    net.connect(pg, exc, "ge", weight=3.0, rule=FixedProbability(p=0.3))
    net.connect(gen, exc, "ge", weight=3.0, rule=FixedProbability(p=0.5))
    net.connect(exc, inh, "ge", weight=3.0, rule=FixedProbability(p=0.3))
    net.poisson_input(exc, "ge", n_sources=30, rate_hz=15.0, weight=1.5)
    net.poisson_input(inh, "ge", n_sources=500, rate_hz=900.0, weight=0.05)  # n*p = 45: the modal search
    return net, pg, exc


def _spikes(result):
    return {k: (np.asarray(t), np.asarray(i)) for k, (t, i) in result.spikes.items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k][0], b[k][0])
        np.testing.assert_array_equal(a[k][1], b[k][1])


def test_network_inputs_do_not_depend_on_chunking_or_backend():
    ref, *_ = _net()
    one = _spikes(ref.run(100.0, backend="numba-cpu"))
    assert len(one["exc"][0]) > 50 and len(one["inh"][0]) > 20
    ten, *_ = _net()
    for _ in range(10):
        res = ten.run(10.0, backend="numba-cpu")
    _assert_same(one, _spikes(res))
    for backend, max_chunk in (("numba-cpu", 7), ("numba-cpu", 1), ("numpy", 33), ("numpy", 2000)):
        net, *_ = _net()
        net.run(0.0, backend=backend)
        net._sim.max_chunk = max_chunk  # internal chunk length
        _assert_same(one, _spikes(net.run(100.0)))
    other_seed, *_ = _net(seed=5)
    assert len(_spikes(other_seed.run(100.0))["exc"][0]) != len(one["exc"][0])


def test_chunk_inputs_are_the_keyed_functions():
    """The driver's inputs of a chunk: Poisson group source k at step s spikes iff uniform(seed,
    stream of the group, s, k) < rate_k dt; PoissonInput q's count of target j at step s is
    binomial(n, rate dt, uniform(seed, stream of q, s, j))."""
    net, pg, exc = _net(seed=2**33 + 9)
    net.run(0.0)
    sim = net._sim
    sim.step = 1001  # any step: nothing carries over from earlier steps
    inp = sim._inputs(20)
    k0, k1 = px.key_of_seed(2**33 + 9)
    s_pg = px.stream_id(px.POISSON_GROUP, 0)
    off = int(sim.plan.grp_off[pg.index])
    thr = pg.rates_hz * 1e-3 * 0.1
    for t in range(20):
        got = set((inp.in_src[inp.in_ptr[t]:inp.in_ptr[t + 1]] - off).tolist())
        want = {k for k in range(50) if px.uniform(k0, k1, s_pg, 1001 + t, k) < thr[k]}
        assert got == want
    for q, (n_src, rate, n_tgt) in enumerate(((30, 15.0, 40), (500, 900.0, 10))):
        col = int(sim.plan.pi_col[q])
        stream = px.stream_id(px.POISSON_INPUT, q)
        want = [[px.binomial(n_src, rate * 1e-3 * 0.1, px.uniform(k0, k1, stream, 1001 + t, j)) for j in range(n_tgt)]
                for t in range(20)]
        np.testing.assert_array_equal(inp.counts[:, col:col + n_tgt], want)


def test_the_spikes_of_a_step_do_not_depend_on_the_rates_of_other_steps():
    """No stream to advance: a group silenced for 20 ms (or given other rates) draws afterwards what
    a group that never stopped draws."""
    rates = np.linspace(10.0, 80.0, 50)
    a, pg_a, _ = _net()
    b, pg_b, _ = _net()
    a.run(20.0)
    b.set_rates(pg_b, 0.0)
    b.run(10.0)
    b.set_rates(pg_b, rates[::-1])
    b.run(10.0)
    for net, pg in ((a, pg_a), (b, pg_b)):
        net.set_rates(pg, rates)
    a.run(0.0)
    b.run(0.0)
    ia, ib = a._sim._inputs(100), b._sim._inputs(100)
    for x, y in zip(ia, ib):
        np.testing.assert_array_equal(x, y)
