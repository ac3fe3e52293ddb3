"""Loading compiled code from Numba's on-disk cache without Numba's set-up for compiling.

The first time a process compiles -- or loads from the cache -- an njit function, Numba
"refreshes" its CPU target: it imports and registers the implementations of everything it can
compile. On this project's machines that took 0.5-0.8 s of a new process's start (profiled: a
third of it importing ``scipy.linalg``, which ``numba.np.arraymath`` imports to see whether BLAS is
there). Code loaded from the cache is object code and needs none of it, only Numba's runtime
(NRT). :func:`load_cached` loads a dispatcher's cached code that way: CUBA's first step in a new
process went from 0.70-0.79 s to 0.18-0.25 s, with the same spikes.

It goes through Numba's private API (0.68: ``Dispatcher._cache``, ``_cache_hits``,
``add_overload``, the cache's ``_load_overload``, ``rtsys.initialize``), as
:mod:`biosim.neurons.fastmath_exp` does. Anything unexpected -- another Numba, no cache file, a
stale one -- makes it return False, and the dispatcher's first call compiles or loads as usual;
``tests/backends/test_numba_load.py`` checks that the fast path is the one taken.

Unpickling a cached library rebuilds one ``Environment`` per compiled function, and Numba's
``_rebuild_env`` imports the module the function came from for its globals: for ``np.empty`` and
``np.zeros`` that is ``numba.np.arrayobj``, whose import (with ``numba.cpython.unicode``) took
0.034 s of the 0.1 s kernel load. Only object-mode code reads an environment's globals
(``numba.core.pylowering``); :func:`load_cached` loads nopython code only, so during the load that
one module, if not imported yet, gets a stand-in globals dict holding its ``__name__`` (so the
environment still pickles, and can be cached, as before). Only that module: an import can have
side effects the compiled code needs. ``numba.cpython.hashing`` registers the hash secret's
symbols with LLVM when it is imported (a library hashing a string that skipped it aborted the
process: "Symbol not found"); it is the only module of ``numba.np.arrayobj``'s imports that
registers symbols at import time (Numba 0.68). It is imported (0.004-0.006 s) when a library needs a
symbol that nothing in the process provides yet (below), or when the library's object code is not
ELF and cannot be checked. Every other environment is rebuilt by Numba as usual.

**The bitcode beside the object code.** A cached library holds its object code and, for code
compiled later that calls it, its LLVM bitcode; Numba parses that bitcode when it loads the library,
to learn the names it defines (``_load_defined_symbols``), and keeps it for linking. For CUBA's kernel
that is 230 kB and 0.012-0.015 s, for code nothing will link against. :func:`load_cached` reads
the names from the object code's ELF symbol table instead (its global and weak symbols: the same
names, less the module's internal ones -- private constants, a format string -- which nothing looks
up by name and LLVM could not resolve from another module anyway) and parses the bitcode on demand,
the first time the library is linked into another (the internal names are added then).
The symbol table also names what the code needs from elsewhere: each such symbol must be defined by
code already loaded or known to LLVM (``llvmlite.binding.address_of_symbol``) before the object code
is handed to LLVM, which loads it anyway and leaves a call to a missing one to crash the process;
if one is missing even after ``numba.cpython.hashing``'s import, the load stops and Numba's usual
path takes over (its set-up registers every symbol it knows). Object code that is not ELF (macOS,
Windows) is loaded as Numba loads it.

**NRT's own functions.** Numba's runtime compiles a small LLVM module of its helper functions
(atomic reference counts, ``NRT_MemInfo_data_fast``, ...) in every process, the first time it is
needed (``rtsys.initialize``): 0.02 s of LLVM optimisation and code generation, in every warm start.
:func:`load_cached` keeps that library's object code on disk as Numba keeps a cached function's
(``serialize_using_object_code`` / ``unserialize_library``: the object code, and the bitcode later
compiles link in), in biosim's cache folder, named by the hash of everything the code depends on:
the module's LLVM IR, the target (triple, CPU, features), LLVM's, llvmlite's and Numba's versions
and the optimisation level. The file is written atomically with a SHA-256 of its contents, which is
checked before LLVM sees the bytes, and only once NRT is initialised; a missing, unreadable or
corrupt file, or one LLVM does not take, means Numba's usual compile (and the file is written
again).
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import sys

from biosim._generated import cache_dir
from biosim.files import atomic_binary

__all__ = ["load_cached"]

#: the first bytes of a file of NRT's compiled functions (the format's version is its last digit)
NRT_MAGIC = b"biosim-nrt-1\n"

#: ELF: a section of symbols, a symbol's global and weak bindings, an undefined symbol's section
_SHT_SYMTAB, _STB_GLOBAL, _STB_WEAK, _SHN_UNDEF = 2, 1, 2, 0

#: undefined symbols LLVM's loader provides itself (the TOC of ppc64, the GOT): never "missing"
_LOADER_SYMBOLS = frozenset({".TOC.", "_GLOBAL_OFFSET_TABLE_"})


#: the modules whose environments get a stand-in instead of their import (see the module docstring)
STAND_IN_FOR = frozenset({"numba.np.arrayobj"})


@contextlib.contextmanager
def _environments_without_imports():
    """While active, unpickled environments of a module of :data:`STAND_IN_FOR` not imported yet get
    ``{"__name__": name}`` as globals instead of importing the module (see the module docstring)."""
    from numba.core import environment

    rebuild = environment._rebuild_env

    def rebuild_env(modname, consts, env_name):
        if (modname not in STAND_IN_FOR or modname in sys.modules
                or environment.lookup_environment(env_name) is not None):
            return rebuild(modname, consts, env_name)
        env = environment.Environment({"__name__": modname})
        env.consts[:] = consts
        env.env_name = env_name
        environment.Environment._memo[env_name] = env
        return env

    environment._rebuild_env = rebuild_env
    try:
        yield
    finally:
        environment._rebuild_env = rebuild


def _elf_symbols(object_code: bytes) -> tuple[set[str], set[str]] | None:
    """The names an ELF64 little-endian object defines (its global and weak symbols) and those it
    needs from elsewhere (its undefined global symbols), or None if ``object_code`` is not such an
    object (or not one this reader understands)."""
    try:
        if object_code[:6] != b"\x7fELF\x02\x01":
            return None
        shoff, = struct.unpack_from("<Q", object_code, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", object_code, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", object_code, shoff + i * shentsize) for i in range(shnum)]
        defined, needed = set(), set()
        for _, kind, _, _, offset, size, link, _, _, entsize in sections:
            if kind != _SHT_SYMTAB or entsize == 0:
                continue
            strings = sections[link][4]
            for k in range(size // entsize):
                name, info, _, shndx, _, _ = struct.unpack_from("<IBBHQQ", object_code, offset + k * entsize)
                binding = info >> 4
                if name and (binding == _STB_WEAK or binding == _STB_GLOBAL):
                    end = object_code.index(b"\0", strings + name)
                    text = object_code[strings + name:end].decode()
                    if shndx != _SHN_UNDEF:
                        defined.add(text)
                    elif binding == _STB_GLOBAL and text not in _LOADER_SYMBOLS:
                        needed.add(text)
        return (defined, needed) if defined else None
    except (struct.error, ValueError, IndexError, UnicodeDecodeError, ZeroDivisionError):
        return None


class _Unresolved(Exception):
    """Cached object code needs a symbol nothing in the process provides (Numba's usual path then)."""


def _unresolved(engine, names: set[str]) -> list[str]:
    from llvmlite import binding as ll

    return sorted(n for n in names if not engine.is_symbol_defined(n) and ll.address_of_symbol(n) is None)


@contextlib.contextmanager
def _bitcode_parsed_on_demand():
    """While active, libraries Numba unserialises from object code take their defined names from
    the ELF symbol table and parse their bitcode when first linked (see the module docstring)."""
    from llvmlite import binding as ll
    from numba.core.codegen import CPUCodeLibrary

    unserialize = CPUCodeLibrary.__dict__["_unserialize"]

    def from_object_code(cls, codegen, state):
        name, kind, data = state
        symbols = _elf_symbols(data[0]) if kind == "object" else None
        if symbols is None:
            import numba.cpython.hashing  # noqa: F401 - symbols a library may need (see the module docstring)

            return unserialize.__func__(cls, codegen, state)
        names, needed = symbols
        if _unresolved(codegen._engine, needed):
            import numba.cpython.hashing  # noqa: F401 - registers the hash secret's symbols

            missing = _unresolved(codegen._engine, needed)
            if missing:
                raise _Unresolved(", ".join(missing[:5]))
        object_code, bitcode = data
        library = codegen.create_library(name)
        library.enable_object_caching()
        library._set_compiled_object(object_code)
        library._finalize_final_module()
        codegen._engine._defined_symbols |= names

        def module_for_linking():
            if library._shared_module is None:
                library._shared_module = ll.parse_bitcode(bitcode)
                codegen._engine._load_defined_symbols(library._shared_module)
            return library._shared_module

        library._get_module_for_linking = module_for_linking
        return library

    CPUCodeLibrary._unserialize = classmethod(from_object_code)
    try:
        yield
    finally:
        CPUCodeLibrary._unserialize = unserialize


def _nrt_file(ctx, ir_mod):
    """Where NRT's functions compiled from ``ir_mod`` for ``ctx``'s target are kept (see the module docstring)."""
    import llvmlite
    import numba
    from llvmlite import binding as ll
    from numba.core import config

    key = repr((str(ir_mod), ctx.codegen().magic_tuple(), ll.llvm_version_info, llvmlite.__version__,
                numba.__version__, str(config.OPT)))
    return cache_dir() / f"numba_nrt_{hashlib.sha256(key.encode()).hexdigest()[:16]}.bin"


def _read_nrt(path):
    """(object code, bitcode) from a file :func:`_write_nrt` wrote, or None if it is not such a file."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    head = len(NRT_MAGIC) + 32 + 8
    if len(blob) < head or not blob.startswith(NRT_MAGIC):
        return None
    digest, body = blob[len(NRT_MAGIC):len(NRT_MAGIC) + 32], blob[head:]
    n_object = int.from_bytes(blob[head - 8:head], "little")
    if hashlib.sha256(blob[head - 8:]).digest() != digest or n_object > len(body):
        return None
    return body[:n_object], body[n_object:]


def _write_nrt(path, object_code: bytes, bitcode: bytes) -> None:
    payload = len(object_code).to_bytes(8, "little") + object_code + bitcode
    with atomic_binary(path) as fh:
        fh.write(NRT_MAGIC + hashlib.sha256(payload).digest() + payload)


@contextlib.contextmanager
def _nrt_functions_from_disk():
    """While active, Numba's ``compile_nrt_functions`` loads NRT's compiled functions from biosim's
    cache folder when they are there, and compiles and keeps them there when not (see the module
    docstring)."""
    from numba.core.runtime import nrtdynmod

    compile_nrt_functions = nrtdynmod.compile_nrt_functions

    written = []  # (path, library) compiled here, written once NRT is initialised

    def load_or_compile(ctx):
        try:
            ir_mod, library = nrtdynmod.create_nrt_module(ctx)
            path = _nrt_file(ctx, ir_mod)
        except Exception:  # noqa: BLE001 - any surprise: Numba's own compile
            return compile_nrt_functions(ctx)
        found = _read_nrt(path)
        if found is not None:
            with contextlib.suppress(Exception):  # a file LLVM does not take: compiled and written again
                return ctx.codegen().unserialize_library(("nrt", "object", found))
        try:
            library.enable_object_caching()  # then compile_nrt_functions' two steps
            library.add_ir_module(ir_mod)
            library.finalize()
        except Exception:  # noqa: BLE001
            return compile_nrt_functions(ctx)
        written.append((path, library))
        return library

    nrtdynmod.compile_nrt_functions = load_or_compile
    try:
        yield
    finally:
        nrtdynmod.compile_nrt_functions = compile_nrt_functions
    for path, library in written:  # after the initialisation (an interrupt here leaves NRT whole)
        with contextlib.suppress(Exception):  # a cache that cannot be written: compiled again next time
            _, _, (object_code, bitcode) = library.serialize_using_object_code()
            _write_nrt(path, object_code, bitcode)


def load_cached(dispatcher, args) -> bool:
    """Make ``dispatcher`` (a ``cache=True`` njit function) ready for a call with ``args``: True
    when it already was, or its code for the types of ``args`` came from the cache without Numba's
    set-up for compiling (see the module docstring); False when it did not (the first call then
    compiles or loads it, as for any njit function). Never raises."""
    try:
        from numba.core.compiler_lock import global_compiler_lock
        from numba.core.runtime import rtsys

        sig = tuple(dispatcher.typeof_pyval(a) for a in args)
        with global_compiler_lock:
            if sig in dispatcher.overloads:
                return True
            cache, ctx = dispatcher._cache, dispatcher.targetctx
            with _bitcode_parsed_on_demand():
                with _nrt_functions_from_disk():
                    rtsys.initialize(ctx)
                with cache._guard_against_spurious_io_errors(), _environments_without_imports():
                    cres = cache._load_overload(sig, ctx)
            if cres is None or cres.objectmode:
                return False
            ctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
            dispatcher.add_overload(cres)
            dispatcher._cache_hits[sig] += 1
            return True
    except Exception:  # noqa: BLE001 - any surprise: the usual path
        return False
