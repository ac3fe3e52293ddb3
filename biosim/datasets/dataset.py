"""The :class:`Dataset` record and the fixed, stratified train / validation / test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biosim.errors import BiosimError

__all__ = ["Dataset", "stratified_split", "TEST_FRACTION", "VAL_FRACTION"]

#: Share of each class held out for testing (mnist5k: 100 of 500 per class).
TEST_FRACTION = 0.2
#: Share of each class held out for validation (mnist5k: 40 of 500 per class).
VAL_FRACTION = 0.08


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images and labels split into train, validation and test sets.

    Attributes
    ----------
    name : str
        The name :func:`biosim.datasets.load` knows it by.
    x_train, x_val, x_test : numpy.ndarray
        uint8 images, shape (N, H, W), intensities 0..255.
    y_train, y_val, y_test : numpy.ndarray
        int64 class labels 0..n_classes-1, shape (N,).
    n_classes : int
        Number of classes.
    source : str
        Where the data came from (a file or a package), for run reports.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int = 10
    source: str = ""

    def __post_init__(self):
        for part in ("train", "val", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if x.dtype != np.uint8 or x.ndim != 3:
                raise TypeError(f"x_{part} must be uint8 (N, H, W), got {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.shape != (len(x),):
                raise TypeError(f"y_{part} must be int64 of shape ({len(x)},), got {y.dtype} {y.shape}")

    @property
    def image_shape(self) -> tuple[int, int]:
        """(height, width) of one image."""
        return tuple(self.x_train.shape[1:])

    @property
    def sizes(self) -> dict[str, int]:
        """Number of samples in each split."""
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def describe(self) -> str:
        """One line, e.g. ``mnist5k: 3600 train / 400 val / 1000 test, 28x28, 10 classes``."""
        h, w = self.image_shape
        n = self.sizes
        return (f"{self.name}: {n['train']} train / {n['val']} val / {n['test']} test, "
                f"{h}x{w}, {self.n_classes} classes")

    def __repr__(self) -> str:
        return f"<Dataset {self.describe()}>"


def stratified_split(labels, seed: int = 0, test_fraction: float = TEST_FRACTION,
                     val_fraction: float = VAL_FRACTION):
    """Split sample indices into train / validation / test, class by class.

    Each class gives ``round(n_c * test_fraction)`` samples to test and ``round(n_c *
    val_fraction)`` to validation, drawn with ``numpy.random.default_rng(seed)``; the rest is
    training data. Each split is then shuffled (so any prefix mixes the classes). The same labels
    and seed always give the same split.

    Parameters
    ----------
    labels : array-like of int
        Class label of every sample.
    seed : int
        Seed of the split.
    test_fraction, val_fraction : float
        Shares held out per class.

    Returns
    -------
    tuple of numpy.ndarray
        ``(train, val, test)`` int64 index arrays, disjoint, together covering every sample.
    """
    labels = np.asarray(labels)
    if not (0 <= test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise BiosimError(f"split fractions test={test_fraction}, val={val_fraction} must be in [0, 1) "
                          "and sum to less than 1")
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test:n_test + n_val])
        parts[0].append(idx[n_test + n_val:])
    return tuple(rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts)
