"""Where data files live: the repository's ``data/`` folder, or ``$BIOSIM_DATA`` for full MNIST."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["embedded_dir", "data_root", "mnist_dir"]


def embedded_dir() -> Path:
    """The ``data/`` folder beside the package, which holds the embedded ``mnist5k.npz``."""
    return Path(__file__).resolve().parents[2] / "data"


def data_root() -> Path:
    """``$BIOSIM_DATA`` if set, else :func:`embedded_dir`: where downloaded data sets go."""
    env = os.environ.get("BIOSIM_DATA")
    return Path(env).expanduser() if env else embedded_dir()


def mnist_dir() -> Path:
    """Where full MNIST's IDX files are looked for and fetched to: ``<data root>/mnist``."""
    return data_root() / "mnist"
