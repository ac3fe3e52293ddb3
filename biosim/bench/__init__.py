"""Speed benchmarks against Brian2 (``biosim bench <name> --against brian2``).

:func:`biosim.bench.runner.run_bench` runs a named network in biosim and in Brian2 in one process;
:mod:`biosim.bench.brian2_nets` builds the same networks in Brian2 (also for the agreement tests).
Brian2 is imported only when one of these modules is used.
"""

from __future__ import annotations

from biosim.bench.runner import run_bench

__all__ = ["run_bench"]
