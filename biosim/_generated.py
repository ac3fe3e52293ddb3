"""Generated Python modules, cached on disk by the hash of their text.

Models written as equations and the kernels specialised to a network's models are generated as
Python source. :func:`load_source` writes such a source once to ``<cache>/<prefix>_<hash>.py``
(atomically, so parallel processes never see half a file) and imports it under that name. The
file name changes whenever the text does, so Numba's own on-disk cache beside it (``cache=True``)
is never served stale, wherever the user's model came from; a second run imports the same file
and loads the compiled code instead of compiling again.

The cache lives in ``$BIOSIM_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/biosim`` (default
``~/.cache/biosim``).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

from biosim.files import atomic_binary

__all__ = ["cache_dir", "load_source", "load_keyed", "source_hash", "write_source"]


def cache_dir() -> Path:
    """The folder generated modules are written to (created on first use)."""
    env = os.environ.get("BIOSIM_CACHE_DIR")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = Path(base) / "biosim"
    path = path / "generated"
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_hash(text: str) -> str:
    """Short, stable hash of a source text (16 hex digits)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_source(prefix: str, text: str) -> ModuleType:
    """Import the module whose source is ``text``, writing it to the cache first if needed.

    Parameters
    ----------
    prefix : str
        A valid identifier that starts the module name (``biosim_kernel``...).
    text : str
        The module's complete source.

    Returns
    -------
    module
        The imported module, named ``<prefix>_<hash of text>``.
    """
    return _import(f"{prefix}_{source_hash(text)}", lambda: text)


def write_source(prefix: str, text: str) -> Path:
    """Write the module whose source is ``text`` to the cache if it is not there, without importing it.

    Returns
    -------
    Path
        ``<cache>/<prefix>_<hash of text>.py``; another process imports it as ``path.stem`` with
        ``path.parent`` on its ``sys.path``.
    """
    return _write(f"{prefix}_{source_hash(text)}", lambda: text)


def load_keyed(prefix: str, key: str, make_text) -> ModuleType:
    """Import the module generated for ``key``, calling ``make_text()`` only if it is not cached.

    For sources that are expensive to produce (equation models go through sympy): the file is
    named by the hash of ``key`` (which must describe everything the text depends on), so a
    second run imports it without generating it again.
    """
    return _import(f"{prefix}_{source_hash(key)}", make_text)


def _write(name: str, make_text) -> Path:
    path = cache_dir() / f"{name}.py"
    if not path.exists():
        with atomic_binary(path) as fh:
            fh.write(make_text().encode())
        os.chmod(path, 0o644)
    return path


def _import(name: str, make_text) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    folder = _write(name, make_text).parent
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    importlib.invalidate_caches()
    return importlib.import_module(name)
