"""Named experiments: ``models/<name>.toml`` -> a runner (see :mod:`biosim.experiments.registry`)."""

from __future__ import annotations

from biosim.errors import unknown

__all__ = ["RUNNERS", "get_runner"]

#: runner name -> "module:function"
RUNNERS = {
    "simulation": "biosim.experiments.simulation:run_simulation",
    "train": "biosim.experiments.train_runner:run_train",
    "convert": "biosim.experiments.convert_runner:run_convert",
    "stdp": "biosim.experiments.stdp_runner:run_stdp",
}


def get_runner(name: str):
    """The runner function for ``name``."""
    import importlib

    if name not in RUNNERS:
        raise unknown("runner", name, RUNNERS)
    module, func = RUNNERS[name].split(":")
    return getattr(importlib.import_module(module), func)
