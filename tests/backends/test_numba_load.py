"""Loading from Numba's cache without its set-up for compiling (:mod:`biosim._numba_load`): in a new
process the cached code is loaded that way (Numba's registries, which import ``numba.np.arraymath``,
stay unloaded), gives the same results, and anything else falls back to Numba's usual path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from biosim._numba_load import NRT_MAGIC, _read_nrt, _write_nrt, load_cached
from biosim.network import Network
from biosim.neurons import LIF

_MODULE = '''
import numpy as np
from numba import njit


@njit(cache=True)
def scaled(x, k):
    out = np.zeros(x.shape[0])  # np.zeros: the library holds environments of numba.np.arrayobj
    for j in range(x.shape[0]):
        out[j] = x[j] * k + 1.0
    return out
'''

_CALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
from fastload_probe import scaled
import numpy as np
from biosim._numba_load import load_cached
fast = load_cached(scaled, (np.arange(3.0), 2.0))
out = scaled(np.arange(3.0), 2.0)
registries = "numba.np.arraymath" in sys.modules
arrayobj = "numba.np.arrayobj" in sys.modules
hits, misses = sum(scaled.stats.cache_hits.values()), sum(scaled.stats.cache_misses.values())
library = next(iter(scaled.overloads.values())).library
unparsed = library._shared_module is None  # the bitcode beside the object code, not parsed yet
hashing = "numba.cpython.hashing" in sys.modules  # imported only for code that needs its symbols
from numba import njit
later = njit(lambda x: scaled(x, 3.0).sum() + np.zeros(2).sum())(np.arange(3.0))  # compiled after the load
print(json.dumps({"fast": fast, "out": out.tolist(), "registries": registries, "arrayobj": arrayobj, "hits": hits,
                  "misses": misses, "later": later, "unparsed": unparsed, "hashing": hashing,
                  "parsed_to_link": library._shared_module is not None}))
"""


def _run(code: str, *args: str, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                          env=None if env is None else {**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_new_process_loads_the_cached_code_without_the_registries(tmp_path):
    (tmp_path / "fastload_probe.py").write_text(_MODULE)
    first = _run(_CALL, str(tmp_path))  # nothing cached yet: Numba compiles, as usual
    assert first["fast"] is False and first["misses"] == 1 and first["registries"]
    second = _run(_CALL, str(tmp_path))
    assert second["fast"] is True and second["hits"] == 1 and second["misses"] == 0
    assert not second["registries"] and not second["arrayobj"]  # environments without their module's import
    assert second["out"] == first["out"] == [1.0, 3.0, 5.0]
    assert second["later"] == first["later"] == 12.0  # linked against the loaded library
    assert second["unparsed"] and second["parsed_to_link"] and not second["hashing"]


_EXTERNAL = '''
import ctypes
import sys

from llvmlite import binding as ll
from numba import njit, types

if sys.argv[2] == "compile":  # the symbol is known only to the process that compiles
    ll.add_symbol("biosim_probe_labs", ctypes.cast(ctypes.CDLL(None).labs, ctypes.c_void_p).value)
labs = types.ExternalFunction("biosim_probe_labs", types.int64(types.int64))


@njit(cache=True)
def absolute(x):
    return labs(x)
'''

_EXTERNAL_CALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
import external_probe
from biosim._numba_load import load_cached
if sys.argv[2] == "compile":
    print(json.dumps({"value": external_probe.absolute(-3)}))
else:
    print(json.dumps({"fast": load_cached(external_probe.absolute, (-3,))}))
"""


def test_code_that_needs_a_symbol_nothing_provides_takes_numbas_path(tmp_path):
    """LLVM loads object code that needs a symbol nobody defines, and the call crashes the process
    (a segmentation fault, here): the load checks first and leaves the function to Numba's usual path."""
    (tmp_path / "external_probe.py").write_text(_EXTERNAL)
    assert _run(_EXTERNAL_CALL, str(tmp_path), "compile") == {"value": 3}
    assert _run(_EXTERNAL_CALL, str(tmp_path), "load") == {"fast": False}


def test_the_object_codes_symbols_are_the_names_the_bitcode_defines(tmp_path, monkeypatch):
    """The names :func:`load_cached` reads from the ELF symbol table instead of parsing the bitcode:
    the same, less the module's internal ones (here its private constants, ``.const.*``)."""
    import importlib

    from llvmlite import binding as ll

    from biosim._numba_load import _elf_symbols

    (tmp_path / "symbols_probe.py").write_text(_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    scaled = importlib.import_module("symbols_probe").scaled
    scaled(np.arange(3.0), 2.0)
    library = next(iter(scaled.overloads.values())).library
    _, _, (object_code, bitcode) = library.serialize_using_object_code()
    module = ll.parse_bitcode(bitcode)
    defined = {g.name for gs in (module.functions, module.global_variables) for g in gs if not g.is_declaration}
    declared = {f.name for f in module.functions if f.is_declaration}
    names, needed = _elf_symbols(object_code)
    assert names and names == {n for n in defined if not n.startswith(".const.")}
    declared |= {g.name for g in module.global_variables if g.is_declaration}
    assert needed and needed - declared <= {"memset", "memcpy", "memmove"}  # (what LLVM's code generator calls)
    assert _elf_symbols(b"\xcf\xfa\xed\xfe" + object_code[4:]) is None  # not ELF (Mach-O's magic)
    assert _elf_symbols(object_code[:200]) is None  # cut short
    assert _elf_symbols(_with_symbol_entry_size(object_code, 0)) is None  # a malformed symbol table
    assert "memset" in needed  # renamed to ppc64's TOC, which LLVM's loader provides itself: not needed
    assert _elf_symbols(object_code.replace(b"\0memset\0", b"\0.TOC.\0\0"))[1] == needed - {"memset"}


def _with_symbol_entry_size(object_code: bytes, size: int) -> bytes:
    """``object_code`` with its symbol tables' entry size set to ``size``."""
    import struct

    out = bytearray(object_code)
    shoff, = struct.unpack_from("<Q", out, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", out, 0x3A)
    for i in range(shnum):
        if struct.unpack_from("<I", out, shoff + i * shentsize + 4)[0] == 2:  # SHT_SYMTAB
            struct.pack_into("<Q", out, shoff + i * shentsize + 56, size)
    return bytes(out)


_NRT_CALL = _CALL.replace("print(json.dumps({", """from numba.core.runtime import rtsys
nrt_compiled = any(True for _ in rtsys.library._final_module.functions)  # False: its object code, loaded
print(json.dumps({"nrt_compiled": nrt_compiled, """)


def test_nrts_functions_compile_once_and_load_from_the_cache_folder_after(tmp_path):
    """The first :func:`load_cached` in a process compiles NRT's functions and keeps their object code in
    biosim's cache folder; later processes load it (unless the file is corrupt: compiled again and
    rewritten), and run and link code against it as against the compiled one."""
    (tmp_path / "fastload_probe.py").write_text(_MODULE)
    env = {"BIOSIM_CACHE_DIR": str(tmp_path / "cache")}
    files = lambda: sorted((tmp_path / "cache" / "generated").glob("numba_nrt_*.bin"))  # noqa: E731
    first = _run(_NRT_CALL, str(tmp_path), env=env)  # compiles the function and NRT's
    assert not first["fast"] and first["nrt_compiled"] and len(files()) == 1
    assert files()[0].read_bytes().startswith(NRT_MAGIC) and _read_nrt(files()[0]) is not None
    loaded = _run(_NRT_CALL, str(tmp_path), env=env)
    assert loaded["fast"] and not loaded["nrt_compiled"]
    assert loaded["out"] == first["out"] == [1.0, 3.0, 5.0] and loaded["later"] == first["later"] == 12.0
    blob = bytearray(files()[0].read_bytes())
    blob[-5] ^= 0xFF  # one flipped bit pattern in the bitcode
    files()[0].write_bytes(bytes(blob))
    assert _read_nrt(files()[0]) is None
    again = _run(_NRT_CALL, str(tmp_path), env=env)
    assert again["fast"] and again["nrt_compiled"] and again["out"] == first["out"]
    assert _read_nrt(files()[0]) is not None  # rewritten
    _write_nrt(files()[0], b"not object code", b"")  # intact, but not something LLVM takes
    again = _run(_NRT_CALL, str(tmp_path), env=env)
    assert again["fast"] and again["nrt_compiled"] and again["out"] == first["out"]
    assert _read_nrt(files()[0])[0].startswith(b"\x7fELF")  # rewritten


_HASHING = '''
import numpy as np
from numba import njit


@njit(cache=True)
def hashed(n):
    return hash("k" + str(n))


@njit(cache=True)
def in_a_set(n):
    out = np.zeros(n)  # environments of numba.np.arrayobj beside those of the string hashing
    seen = set()
    for j in range(n):
        seen.add("a" + str(j % 3))
        out[j] = len(seen)
    return out
'''

_HASHING_CALL = """
import json, sys
sys.path.insert(0, sys.argv[1])
from hashing_probe import hashed, in_a_set
from biosim._numba_load import load_cached
fast = [load_cached(hashed, (3,)), load_cached(in_a_set, (5,))]
print(json.dumps({"fast": fast, "hash_ok": hashed(3) == hash("k3"), "set": in_a_set(5).tolist()}))
"""


def test_code_that_hashes_strings_loads_and_runs(tmp_path):
    """Hashing a string needs symbols that ``numba.cpython.hashing`` registers when it is imported:
    loading without that import aborted the process ("Symbol not found") or crashed it."""
    (tmp_path / "hashing_probe.py").write_text(_HASHING)
    first = _run(_HASHING_CALL, str(tmp_path))  # compiles and caches
    second = _run(_HASHING_CALL, str(tmp_path))
    assert second["fast"] == [True, True]
    assert first["hash_ok"] and second["hash_ok"]
    assert second["set"] == first["set"] == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_anything_else_takes_the_usual_path():
    plain = njit(lambda x: x + 1)  # no cache
    assert load_cached(plain, (1,)) is False and plain(1) == 2
    assert load_cached(lambda x: x, (1,)) is False  # not a dispatcher
    assert load_cached(plain, (1,)) is True  # compiled for these types already


_NETWORK = """
import json, sys
from biosim.network import Network
from biosim.neurons import LIF
net = Network(dt_ms=0.1, seed=4)
pop = net.population("p", LIF(), 30)
net.current(pop, 3.0)
res = net.run(30.0, threads=int(sys.argv[1]))
t, i = res.spikes["p"]
kernel = getattr(net._sim.run_chunk, "dispatcher", net._sim.run_chunk)
print(json.dumps({"t": t.tolist(), "i": i.tolist(), "registries": "numba.np.arraymath" in sys.modules,
                  "hits": sum(kernel.stats.cache_hits.values())}))
"""


@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2: may compile (about 40 s)
def test_the_kernel_in_a_new_process_loads_fast_and_gives_the_same_spikes(threads):
    _run(_NETWORK, str(threads))  # (compiles the kernel when no other test has yet)
    again = _run(_NETWORK, str(threads))
    assert not again["registries"] and again["hits"] == 1
    net = Network(dt_ms=0.1, seed=4)
    pop = net.population("p", LIF(), 30)
    net.current(pop, 3.0)
    t, i = net.run(30.0).spikes["p"]
    assert len(t) > 0
    np.testing.assert_array_equal(np.asarray(again["t"]), t)
    np.testing.assert_array_equal(np.asarray(again["i"]), i)

