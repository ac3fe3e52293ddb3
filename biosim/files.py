"""Run directories and atomic writes: an interrupted run never leaves a half-written file.

A bottom-layer module (standard library only): data sets, checkpoints, generated kernels, figures
and reports all write through it (see ``tests/test_layers.py``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["make_run_dir", "atomic_binary", "atomic_write_text", "atomic_write_json", "atomic_savefig"]


def make_run_dir(name: str, out: str | None) -> Path:
    """``out`` if given, else ``runs/NAME/<timestamp>/`` (created)."""
    if out:
        path = Path(out)
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        path = Path("runs") / name / stamp
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_binary(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for writing; rename it to ``path`` on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename."""
    with atomic_binary(path) as fh:
        fh.write(text.encode())


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def atomic_write_json(path, data) -> None:
    """Write ``data`` as indented JSON (NaN/inf become null) atomically."""
    atomic_write_text(path, json.dumps(_clean(data), indent=2, sort_keys=True) + "\n")


def atomic_savefig(fig, path) -> None:
    """Save a matplotlib figure as PNG atomically."""
    with atomic_binary(path) as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
