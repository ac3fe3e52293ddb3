"""The probe of ``biosim bench start``: stamps a ``biosim run`` process's stages up to its first step.

Standard library only and no biosim import, so that a fresh process can load this file by its
path (``importlib.util.spec_from_file_location``) before anything of biosim is imported. Two uses:

- a new process (:mod:`biosim.bench.start`'s child): :class:`Hook`, an import hook that stamps
  the end of the imports it is given (the child's: the ``biosim`` command's module) and
  instruments :mod:`biosim.network.simulate` when it is first imported;
- a fork of the resident worker (:mod:`biosim.worker.server`), where that module is imported
  already: :func:`stamp_in_fork`, when the command's environment names a stamps file in
  ``$BIOSIM_BENCH_STAMPS``.

The instrumented ``Simulation`` stamps ``network_defined`` (its set-up starts), ``plan_compiled``,
``kernel_loaded`` (``kernel_compiled`` too: whether Numba compiled instead of loading from its
cache) and ``first_step``; the first kernel call with steps to do is cut to exactly one step, after
which ``finish`` is called (it writes the stamps and ends the process). Stamps are
``time.monotonic()``, a system-wide clock on Linux and macOS.
"""

from __future__ import annotations

import importlib.abc
import json
import sys
import time

__all__ = ["ENV_STAMPS", "instrument", "Hook", "stamp_in_fork", "write_stamps"]

#: the environment variable that makes a fork of the worker stamp its stages into that file
ENV_STAMPS = "BIOSIM_BENCH_STAMPS"


def write_stamps(path: str, stamps: dict) -> None:
    with open(path, "w") as fh:
        json.dump(stamps, fh)


def instrument(mod, stamps: dict, finish) -> None:
    """Wrap ``mod.Simulation`` (and ``mod.compile_network``, every kernel set as ``run_chunk``) to
    stamp into ``stamps``; ``finish()`` after the first step."""
    sim = mod.Simulation
    compile_network = mod.compile_network

    def compiled(*a, **k):
        plan = compile_network(*a, **k)
        stamps["plan_compiled"] = time.monotonic()
        return plan
    mod.compile_network = compiled

    def wrap(run_chunk):
        def first(pl, inp, out, step0, n_steps, *rest):
            if n_steps <= 0:
                return run_chunk(pl, inp, out, step0, n_steps, *rest)
            run_chunk(pl, inp, out, step0, 1, *rest)
            stamps["first_step"] = time.monotonic()
            finish()
        first.raw = run_chunk
        return first

    setattr_ = sim.__setattr__

    def __setattr__(self, name, value):
        setattr_(self, name, wrap(value) if name == "run_chunk" else value)
    sim.__setattr__ = __setattr__
    init = sim.__init__

    def __init__(self, *a, **k):
        stamps["network_defined"] = time.monotonic()
        init(self, *a, **k)
        stamps["kernel_loaded"] = time.monotonic()
        stats = getattr(getattr(self.__dict__.get("run_chunk"), "raw", None), "stats", None)
        if stats is not None:
            stamps["kernel_compiled"] = sum(stats.cache_misses.values()) > 0
    sim.__init__ = __init__


class Hook(importlib.abc.MetaPathFinder):
    """Instrument :mod:`biosim.network.simulate` (see :func:`instrument`) when it is imported, and
    stamp ``stamp_after[name]`` when module ``name`` has been imported (its code run)."""

    SIMULATE = "biosim.network.simulate"

    def __init__(self, stamps: dict, finish, stamp_after: dict | None = None):
        self.stamps, self.finish = stamps, finish
        self.stamp_after = dict(stamp_after or {})
        self.pending = {self.SIMULATE, *self.stamp_after}

    def find_spec(self, name, path, target=None):
        if name not in self.pending:
            return None
        self.pending.discard(name)
        for finder in sys.meta_path:
            found = getattr(finder, "find_spec", None) if finder is not self else None
            spec = found(name, path, target) if found is not None else None
            if spec is not None:
                break
        else:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            if name == self.SIMULATE:
                instrument(module, self.stamps, self.finish)
            if name in self.stamp_after:
                self.stamps[self.stamp_after[name]] = time.monotonic()
        spec.loader.exec_module = exec_module
        if not self.pending:
            sys.meta_path.remove(self)
        return spec


def stamp_in_fork(path: str, forked_at: float) -> None:
    """In a fork of the worker: stamp ``forked`` (``forked_at``) and the stages into ``path``; after
    the first step the command ends with status 0 (``SystemExit``)."""
    stamps = {"forked": forked_at}

    def finish():
        write_stamps(path, stamps)
        raise SystemExit(0)
    instrument(sys.modules["biosim.network.simulate"], stamps, finish)
