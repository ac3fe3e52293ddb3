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

from biosim.errors import BiosimError

__all__ = ["make_run_dir", "run_dir_path", "make_dir", "created_dirs", "remove_unused", "atomic_binary", "atomic_write_text", "atomic_write_json", "atomic_savefig"]


def make_run_dir(name: str, out: str | None, overwrite: bool = False, flag: str = "--out") -> Path:
    """``out`` if given, else ``runs/NAME/<timestamp>/`` (created).

    ``out`` may be a new folder or an empty one. A folder that holds files is refused unless
    ``overwrite`` (then its ``config.json``, ``metrics.json`` and ``checkpoint.safetensors`` are removed
    first, so that a new run that fails never sits beside the old run's results or checkpoint); a file, or a place where no folder can be
    made, is refused. Each refusal is a :class:`~biosim.errors.BiosimError` naming ``flag`` and the
    path as typed.
    """
    if not out:
        return make_dir(run_dir_path(name, None), flag)
    path = Path(out)
    if path.is_dir() and any(path.iterdir()):
        held = [f for f in ("config.json", "metrics.json") if (path / f).exists()]
        if not overwrite:
            what = f"a run ({', '.join(held)})" if held else "files"
            raise BiosimError(f"{flag} {out}: the folder already holds {what}; choose a new folder, or add "
                              f"--overwrite to replace it")
        for f in (*held, "checkpoint.safetensors"):  # nor a checkpoint of the old run to resume by mistake
            (path / f).unlink(missing_ok=True)
    return make_dir(path, flag)


def run_dir_path(name: str, out: str | None) -> Path:
    """Where :func:`make_run_dir` puts a run: ``out``, else ``runs/NAME/<timestamp>``."""
    if out:
        return Path(out)
    return Path("runs") / name / _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def make_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create the folder ``path`` (and its parents); a :class:`~biosim.errors.BiosimError` naming
    ``flag`` and the path where it is a file or cannot be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BiosimError(f"{flag} {path}: is a file, not a folder")
    created = created_dirs(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        remove_unused(created, files=())
        raise BiosimError(f"{flag} {path}: cannot create the folder ({_why(exc)})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        remove_unused(created, files=())
        raise BiosimError(f"{flag} {path}: the folder is not writable")
    return path


def created_dirs(path: str | os.PathLike) -> list[Path]:
    """The folders from ``path`` up that do not exist yet (deepest first): what creating ``path``
    adds, for :func:`remove_unused`."""
    path, missing = Path(path), []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def remove_unused(created: list[Path], files: tuple[str, ...] = ("config.json",)) -> None:
    """Undo a run that was refused before it produced anything: remove ``files`` from the deepest of
    the ``created`` folders, then each of those folders that is left empty (deepest first). Folders
    that existed before, and anything else inside them, are left alone."""
    if not created:
        return
    for f in files:
        with contextlib.suppress(OSError):
            (created[0] / f).unlink()
    for folder in created:
        try:
            folder.rmdir()  # only when empty
        except OSError:
            return


def _why(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower() if exc.strerror else str(exc)


@contextlib.contextmanager
def atomic_binary(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for writing; rename it to ``path`` on success. The file
    gets the permissions a plain ``open`` would give it (0644 under the usual umask 022).

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # readable by others as a plain open() would make it, not 0600
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's file-creation mask (read from /proc where it can be, so the mask is never changed)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
