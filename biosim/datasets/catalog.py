"""The named data sets and :func:`load`.

========  ==============================================  ==================================
name      what                                            split (train / val / test)
========  ==============================================  ==================================
mnist5k   5000 real MNIST digits, 500 per class, 28x28,   3600 / 400 / 1000, stratified
          embedded in ``data/mnist5k.npz`` (no download)  (per class 360 / 40 / 100)
digits    scikit-learn's 1797 digits, 8x8 (0..16 scaled   about 72 % / 8 % / 20 %, stratified
          to 0..255)
mnist     full MNIST from IDX files (see                  55000 / 5000 / 10000: official test,
          :mod:`biosim.datasets.mnist`)                   validation the last 5000 of train
mnist1d   MNIST-1D, 5000 generated 1-D digits, 1x40       stratified as digits
          (:mod:`biosim.datasets.mnist1d`)
xor       1000 noisy XOR pairs, 1x2                       stratified as digits
========  ==============================================  ==================================

The stratified splits come from :func:`biosim.datasets.dataset.stratified_split` with
``split_seed`` (default 0, the fixed split every run uses).
"""

from __future__ import annotations

import zipfile
import zlib

import numpy as np

from biosim.datasets.dataset import Dataset, stratified_split
from biosim.datasets.mnist import load_mnist
from biosim.datasets.mnist1d import make_mnist1d, to_uint8
from biosim.datasets.paths import embedded_dir
from biosim.errors import BiosimError, unknown

__all__ = ["DATASETS", "load", "load_mnist5k", "load_digits", "split_arrays"]

#: Name -> one-line description (``biosim data list``); every name :func:`load` accepts.
DATASETS = {
    "mnist5k": "5000 real MNIST digits (500 per class, 28x28), embedded: no download",
    "digits": "scikit-learn's 1797 handwritten digits, 8x8",
    "mnist": "full MNIST, 70000 digits, 28x28, from IDX files (biosim data fetch mnist)",
    "mnist1d": "MNIST-1D (Greydanus 2020): 5000 procedurally generated 1-D digits, 40 points, seed 42",
    "xor": "XOR of two noisy binary inputs (1000 samples, 1x2, noise sd 0.1): the classic small case",
}


def split_arrays(name: str, images: np.ndarray, labels: np.ndarray, split_seed: int,
                 source: str) -> Dataset:
    """Build a :class:`Dataset` from all images and labels with the stratified split."""
    labels = np.asarray(labels, dtype=np.int64)
    train, val, test = stratified_split(labels, seed=split_seed)
    return Dataset(name, images[train], labels[train], images[val], labels[val], images[test],
                   labels[test], n_classes=int(labels.max()) + 1, source=source)


def load_mnist5k(split_seed: int = 0) -> Dataset:
    """The embedded 5000 MNIST digits (``data/mnist5k.npz``; provenance in ``data/README.md``)."""
    path = embedded_dir() / "mnist5k.npz"
    if not path.is_file():
        raise BiosimError(f"{path} is missing: the embedded data set ships with the repository "
                          f"({_RESTORE_MNIST5K})")
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as archive:  # numpy leaks its own handle
            images, labels = archive["images"], archive["labels"]                  # on a damaged zip
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise BiosimError(f"{path} is damaged or truncated ({type(exc).__name__}: {str(exc)[:80]}); "
                          f"{_RESTORE_MNIST5K}") from None
    if images.dtype != np.uint8 or images.ndim != 3 or labels.shape != images.shape[:1] or labels.size == 0:
        raise BiosimError(f"{path} does not hold the embedded digits (images {images.dtype} {images.shape}, labels "
                          f"{labels.shape}); {_RESTORE_MNIST5K}")
    return split_arrays("mnist5k", images, labels, split_seed, str(path))


_RESTORE_MNIST5K = ("restore it with `git checkout -- data/mnist5k.npz` in a clone of the repository, or reinstall "
                    "biosim")


def load_digits(split_seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits, intensities 0..16 scaled to 0..255 (uint8)."""
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return split_arrays("digits", images, bunch.target, split_seed, "sklearn.datasets.load_digits")


def load_mnist1d(split_seed: int = 0) -> Dataset:
    """MNIST-1D generated with seed 42 (:mod:`biosim.datasets.mnist1d`), stored as ``1 x 40`` uint8."""
    signals, labels = make_mnist1d()
    return split_arrays("mnist1d", to_uint8(signals), labels, split_seed, "biosim.datasets.mnist1d (seed 42)")


def load_xor(split_seed: int = 0) -> Dataset:
    """XOR: inputs ``a, b`` in {0, 1} plus Gaussian noise (sd 0.1), clipped to [0, 1], as ``1 x 2``
    uint8 images; label ``a xor b``. 1000 samples from seed 0."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(1000, 2))
    x = np.clip(bits + 0.1 * rng.standard_normal(bits.shape), 0.0, 1.0)
    images = np.rint(255.0 * x).astype(np.uint8)[:, None, :]
    return split_arrays("xor", images, bits[:, 0] ^ bits[:, 1], split_seed, "generated (biosim.datasets.catalog)")


_LOADERS = {"mnist5k": load_mnist5k, "digits": load_digits, "mnist": load_mnist, "mnist1d": load_mnist1d,
            "xor": load_xor}


def load(name: str, split_seed: int = 0) -> Dataset:
    """Load a named data set with its fixed train / validation / test split.

    Parameters
    ----------
    name : {"mnist5k", "digits", "mnist", "mnist1d", "xor"}
        Which data set (see :data:`DATASETS`).
    split_seed : int
        Seed of the stratified split (0: the fixed split runs use). Ignored by ``mnist``, whose
        split is the official one.

    Returns
    -------
    Dataset
        uint8 images (N, H, W) and int64 labels for train, val and test.

    Raises
    ------
    BiosimError
        For an unknown name (with the closest valid one) or missing or corrupt files.
    """
    if name not in _LOADERS:
        raise unknown("dataset", name, _LOADERS)
    return _LOADERS[name](split_seed=split_seed)
