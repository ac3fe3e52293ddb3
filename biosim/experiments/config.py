"""Typed access to a run's configuration (a TOML ``[params]`` table after ``--set`` overrides).

Builders read values with :func:`get` so that every value is type- and range-checked with a
message that names the key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from biosim.errors import BiosimError, unknown

__all__ = ["get", "params_from"]


def get(cfg: Mapping, key: str, kind=float, low: float | None = None, high: float | None = None,
        positive: bool = False, choices=None):
    """``cfg[key]`` converted to ``kind`` and checked against the bounds given."""
    value = cfg[key]
    not_a_number = kind in (int, float) and isinstance(value, bool)
    not_whole = kind is int and isinstance(value, float) and not value.is_integer()
    if not_a_number or not_whole:
        raise BiosimError(f"{key} = {value!r} must be {kind.__name__}")
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise BiosimError(f"{key} = {value!r} must be {kind.__name__}") from None
    if kind in (int, float):
        if not math.isfinite(value):
            raise BiosimError(f"{key} = {value!r} must be finite")
        if positive and value <= 0:
            raise BiosimError(f"{key} = {value!r} is out of range (must be > 0)")
        if low is not None and value < low or high is not None and value > high:
            rng = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
            raise BiosimError(f"{key} = {value!r} is out of range (must be in {rng})")
    if choices is not None and value not in choices:
        raise unknown(key, value, choices)
    return value


def params_from(cls, table: Mapping | None, prefix: str):
    """Build the frozen parameter dataclass ``cls`` from a config sub-table (unknown keys rejected)."""
    table = dict(table or {})
    names = [f.name for f in dataclasses.fields(cls)]
    for key in table:
        if key not in names:
            raise unknown(f"key in [{prefix}]", key, names)
    kwargs = {k: get(table, k, bool if isinstance(getattr(cls(), k), bool) else float) for k in table}
    try:
        return cls(**kwargs)
    except BiosimError as exc:
        raise BiosimError(f"{prefix}: {exc}") from None
