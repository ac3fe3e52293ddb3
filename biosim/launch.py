"""The ``biosim`` command's entry point: a resident worker runs the command if one is there, else
this process does (:func:`biosim.cli.main`).

Standard library only up to the hand-over: reaching a worker (:func:`biosim.worker.client.forward`)
imports neither NumPy nor Numba. ``biosim worker ...`` itself, ``$BIOSIM_NO_WORKER`` set, no
worker running, or one that refuses the command (biosim's sources changed since it started,
another interpreter, other start-up environment variables): the command runs here, as without a
worker.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence

from biosim import _gc_paused
from biosim._numba_import import import_numba
from biosim.worker.client import forward

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``biosim ARGV`` (default ``sys.argv[1:]``) and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["worker"]:
        code = forward(argv)
        if code is not None:
            return code
    with _gc_paused():
        import_numba()
        cli = importlib.import_module("biosim.cli")
        gc.freeze()
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
