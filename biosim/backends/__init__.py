"""Backends behind one registry. Each provides ``run_chunk`` with the contract of
:func:`biosim.backends.numba_cpu.run_chunk`; compiled ones are imported only when asked for."""

from __future__ import annotations

import importlib

from biosim.errors import unknown

__all__ = ["BACKENDS", "get_backend"]

#: Backend name -> module that implements it.
BACKENDS = {
    "numba-cpu": "biosim.backends.numba_cpu",
    "numpy": "biosim.backends.numpy_ref",
}


def get_backend(name: str):
    """Return the backend module for ``name`` (closest valid name in the error)."""
    if name not in BACKENDS:
        raise unknown("backend", name, BACKENDS)
    return importlib.import_module(BACKENDS[name])
