"""Typed access to a run's configuration (a TOML ``[params]`` table after ``--set`` overrides).

Builders read values with :func:`get` so that every value is type- and range-checked with a
message that names the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from biosim.errors import BiosimError, checked, unknown

__all__ = ["get", "params_from"]


def get(cfg: Mapping, key: str, kind=float, low: float | None = None, high: float | None = None,
        positive: bool = False, choices=None):
    """``cfg[key]`` converted to ``kind`` and checked against the bounds given."""
    return checked(key, cfg[key], kind, low, high, positive, choices)


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
