"""Helpers shared by the benchmarks: the machine description, number formatting and spike counts."""

from __future__ import annotations

import math
import os
import platform

__all__ = ["cpu_name", "machine", "fmt", "spike_count"]


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(**versions) -> dict:
    """CPU, core count, Python version and the given package versions, for a report."""
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(), **versions}


def spike_count(spikes: dict) -> int:
    """How many spikes ``{population: (times, indices)}`` holds."""
    return int(sum(len(t) for t, _ in spikes.values()))


def fmt(x, spec: str = ".3f") -> str:
    """``x`` formatted with ``spec``; ``-`` for None or NaN."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)
