"""Data sets for learning: the embedded MNIST subset, scikit-learn's digits, full MNIST.

``load(name)`` returns a :class:`Dataset` with a fixed, stratified train / validation / test
split; :mod:`biosim.datasets.idx` reads and writes IDX files; :func:`fetch_mnist` downloads full
MNIST (``biosim data fetch mnist``).
"""

from __future__ import annotations

from biosim.datasets.catalog import DATASETS, load
from biosim.datasets.dataset import Dataset, stratified_split
from biosim.datasets.fetch import fetch_mnist
from biosim.datasets.idx import read_idx, write_idx

__all__ = ["DATASETS", "Dataset", "load", "stratified_split", "fetch_mnist", "read_idx", "write_idx"]
