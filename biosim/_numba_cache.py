"""Numba on-disk caching that notices changes anywhere in biosim.

Numba keys a cached function on its own source file only, but compiled functions may inline
functions from other files (a model's step calling a helper of ``neurons/base.py``): after editing
the helper, stale code would be loaded. This module registers cache locators (tried before
Numba's own) for the package's functions whose source stamp hashes every ``.py`` file of the
engine folders (backends, neurons, synapses), so any change there recompiles. Imported first by
:mod:`biosim`.

The network kernel itself is not cached here: :func:`biosim.backends.numba_cpu.kernel` generates
it as a module outside the package whose file name is the hash of its text, and the text names
the hash of every model module it inlines, so Numba's own cache beside that file is never stale.
"""

from __future__ import annotations

import functools
import hashlib
import os

from numba.core import caching
from numba.core.caching import InTreeCacheLocator, UserWideCacheLocator

_IMPL = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")

_PKG = os.path.dirname(os.path.abspath(__file__))


#: The folders whose modules compiled code is made of.
_ENGINE_DIRS = ("backends", "neurons", "synapses")


@functools.lru_cache(maxsize=1)
def package_stamp() -> bytes:
    """Hash of the paths, sizes and modification times of every engine module."""
    h = hashlib.sha256()
    for root, dirs, files in (w for d in _ENGINE_DIRS for w in os.walk(os.path.join(_PKG, d))):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(root, name))
                h.update(f"{os.path.relpath(os.path.join(root, name), _PKG)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.digest()


class _PackageStampMixin:
    def get_source_stamp(self):
        return package_stamp()

    @classmethod
    def from_function(cls, py_func, py_file):
        if not os.path.abspath(py_file).startswith(_PKG + os.sep):
            return None
        return super().from_function(py_func, py_file)


class PackageInTreeLocator(_PackageStampMixin, InTreeCacheLocator):
    """``__pycache__`` beside the module, invalidated by any change in the package."""


class PackageUserWideLocator(_PackageStampMixin, UserWideCacheLocator):
    """The user-wide cache directory, invalidated by any change in the package."""


for _cls in (PackageUserWideLocator, PackageInTreeLocator):
    if _cls not in _IMPL._locator_classes:
        _IMPL._locator_classes.insert(0, _cls)
