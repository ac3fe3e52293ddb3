"""Fast mode: the one place that reads ``BIOSIM_FAST``, the switch that shortens example runs.

The notebooks (and the test suite that executes them) ask :func:`pick` for every length that sets
their run time -- biological time, training epochs, numbers of images -- so that one environment
variable turns the whole course into a quick check without changing what the code does::

    from biosim.fast import pick
    bio_time_s = pick(full=1.0, fast=0.1)

``BIOSIM_FAST`` counts as on when it is set to anything but ``""``, ``0``, ``false``, ``no`` or
``off`` (any case).
"""

from __future__ import annotations

import os
from typing import TypeVar

__all__ = ["ENV", "enabled", "pick"]

#: The environment variable that turns fast mode on.
ENV = "BIOSIM_FAST"

T = TypeVar("T")


def enabled() -> bool:
    """Whether fast mode is on (``BIOSIM_FAST`` set and not ``0``/``false``/``no``/``off``)."""
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def pick(full: T, fast: T) -> T:
    """``fast`` in fast mode, ``full`` otherwise."""
    return fast if enabled() else full
