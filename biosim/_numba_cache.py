"""Numba's on-disk cache in biosim: the rule that keeps it sound, and its check.

Numba keys a ``cache=True`` function's cache on its own source file (modification time and size,
and Numba's version). What the compiled code took from *other* files is not in that key: njit
functions it calls are compiled into it, and module-level numbers it reads are frozen in as
constants. After an edit of such a file, Numba would load the old code. biosim relies on Numba's
public behaviour only, with two rules:

1. **A cached function uses only its own file.** A ``cache=True`` function of the package calls
   only njit functions defined in its own file and reads only constants defined there (modules such
   as ``math`` and ``numpy`` are fine: Numba's version is in the key). :func:`cache_hazards` finds
   exceptions; ``tests/backends/test_numba_cache.py`` runs it over the package. So the models' index names
   live beside their maths, and ``neurons/hh.py``'s step, which compiles in ``base.exprel``, is not
   cached on its own (compiling it costs well under a second, and only when a kernel is built).
2. **What must combine files is generated, and named by everything it combines.** The numba-cpu
   kernel (:mod:`biosim.backends.numba_cpu`) and the models written as equations
   (:mod:`biosim.equations`) are written as modules whose file name is the hash of their text
   (:mod:`biosim._generated`); the kernel's text names the hash of every module whose code it
   compiles in, an equation model's key the hash of the generator's sources. Numba's cache beside
   such a file can never be stale, and a second process imports the same file and loads the
   compiled code instead of compiling. The kernel also calls model-independent helpers compiled
   and cached once in their own module (:mod:`biosim.backends.in_flight`), and its text names the
   hash of that module too. The kernel template (:mod:`biosim.backends.kernel_body`)
   is the one exception to rule 1: it reads the STDP constants by the names of
   :mod:`biosim.synapses.stdp`, and imports them all, in index order, so that a new layout is a new
   text (``tests/neurons/test_named_constants.py`` checks the order).

An installed package does not change between runs, and reinstalling it gives its files new
modification times, so the rules matter above all to developers editing the sources. (An earlier
version of this module inserted locator classes into Numba's private ``_CacheImpl`` to key every
package function on a hash of all engine files; the rules above need no private API.)
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import ModuleType

__all__ = ["cache_hazards"]


def _is_njit(value) -> bool:
    return hasattr(value, "py_func") and hasattr(value, "signatures") and hasattr(value, "stats")


def _global_names(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _global_names(const)
    return names


def _imported_from_package(path: Path, package: str) -> dict[str, str]:
    """Names the module at ``path`` binds by importing them from ``package`` -> where from."""
    tree = ast.parse(path.read_text())
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == package):
            for alias in node.names:
                out[alias.asname or alias.name] = f"{'.' * node.level}{node.module or ''}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package:
                    out[alias.asname or alias.name.split(".")[0]] = alias.name
    return out


def cache_hazards(modules, package: str = "biosim") -> list[str]:
    """The ``cache=True`` njit functions defined in ``modules`` that break rule 1 above.

    Parameters
    ----------
    modules : iterable of module
        Imported modules to check (only the njit functions they define are checked, not the ones
        they import).
    package : str
        Top-level package whose other files count as "another file".

    Returns
    -------
    list of str
        One line per hazard: ``"module.function uses name (from where)"``; empty when none.
    """
    found = []
    for mod in modules:
        if not isinstance(mod, ModuleType) or not getattr(mod, "__file__", None):
            continue
        path = Path(mod.__file__).resolve()
        imported = _imported_from_package(path, package)
        for name, fn in sorted(vars(mod).items()):
            if not _is_njit(fn) or fn.py_func.__module__ != mod.__name__ or fn.stats.cache_path is None:
                continue
            for g in sorted(_global_names(fn.py_func.__code__)):
                value = fn.py_func.__globals__.get(g)
                if _is_njit(value) and Path(inspect.getfile(value.py_func)).resolve() != path:
                    found.append(f"{mod.__name__}.{name} calls {g} (njit function of {value.py_func.__module__})")
                elif g in imported:
                    found.append(f"{mod.__name__}.{name} uses {g} (imported from {imported[g]})")
    return found
