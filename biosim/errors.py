"""User-facing errors.

A :class:`BiosimError` is a mistake the user can fix (a misspelt name, a bad value, a network too
big for this machine). The CLI prints its message as one line and exits with status 2; it never
shows a traceback for one.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

__all__ = ["BiosimError", "SimulationError", "RunInterrupted", "closest", "unknown", "checked"]


class BiosimError(ValueError):
    """A problem with the user's input, explained in one line."""


class SimulationError(BiosimError):
    """A run that went wrong while simulating (for example NaN in a state variable)."""


class RunInterrupted(BiosimError):
    """A run stopped by Ctrl-C or SIGTERM after saving a checkpoint.

    The message says how to resume; ``exit_code`` is the shell convention for the signal
    (130 for SIGINT, 143 for SIGTERM), which the CLI exits with.
    """

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


def closest(name: str, choices: Iterable[str]) -> str | None:
    """Return the valid choice closest to ``name``, or None when nothing is close."""
    match = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return match[0] if match else None


def unknown(kind: str, name: str, choices: Iterable[str]) -> BiosimError:
    """Build the error for an unknown name, naming the closest valid choice and all of them."""
    choices = sorted(choices)
    guess = closest(name, choices)
    hint = f"; did you mean '{guess}'?" if guess else ""
    return BiosimError(f"unknown {kind} '{name}'{hint} (valid: {', '.join(choices)})")


def checked(name: str, value, kind=float, low: float | None = None, high: float | None = None,
            positive: bool = False, choices=None):
    """``value`` converted to ``kind`` (``float``, ``int``, ``str``...) and checked against the bounds
    given; a :class:`BiosimError` naming ``name`` and the value as typed otherwise. Shared by the
    configuration readers of every layer (a run's ``[params]``, the learning side's tables)."""
    not_a_number = kind in (int, float) and isinstance(value, bool)
    not_whole = kind is int and isinstance(value, float) and not value.is_integer()
    if not_a_number or not_whole:
        raise BiosimError(f"{name} = {value!r} must be {kind.__name__}")
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise BiosimError(f"{name} = {value!r} must be {kind.__name__}") from None
    if kind in (int, float):
        if not math.isfinite(value):
            raise BiosimError(f"{name} = {value!r} must be finite")
        if positive and value <= 0:
            raise BiosimError(f"{name} = {value!r} is out of range (must be > 0)")
        if low is not None and value < low or high is not None and value > high:
            rng = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
            raise BiosimError(f"{name} = {value!r} is out of range (must be in {rng})")
    if choices is not None and value not in choices:
        raise unknown(name, value, choices)
    return value
