"""Full MNIST from its four IDX files, checked against the published MD5 sums.

The files are looked for in ``$BIOSIM_DATA/mnist/`` (or ``data/mnist/`` when ``BIOSIM_DATA`` is
unset), then in ``$BIOSIM_DATA`` itself; each may be gzip-compressed (``NAME.gz``, as
distributed) or not (``NAME``). Split: the official 10,000 test images; validation is the *last*
5,000 images of the official 60,000-image training set (the last 1/12 when a file holds another
number, as in the tests), training the first 55,000. That split is fixed: ``split_seed`` does
not change it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from biosim.datasets.dataset import Dataset
from biosim.datasets.idx import read_idx
from biosim.datasets.paths import data_root, mnist_dir
from biosim.errors import BiosimError

__all__ = ["MNIST_FILES", "MNIST_MD5", "md5sum", "check_md5", "find_mnist", "load_mnist",
           "FETCH_HINT"]

#: Role -> file name without ``.gz``.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: File name -> MD5. The ``.gz`` sums are those published with MNIST (DESIGN.md section 8); the
#: uncompressed ones are those listed for the same files by several MNIST loaders (sizes
#: 47,040,016 / 60,008 / 7,840,016 / 10,008 bytes).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

FETCH_HINT = "run `biosim data fetch mnist` (needs internet) or set BIOSIM_DATA to a folder holding them"


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path: str | os.PathLike) -> Path:
    """Raise a one-line :class:`BiosimError` unless ``path`` has its published MD5."""
    path = Path(path)
    expected = MNIST_MD5.get(path.name)
    if expected is None:
        raise BiosimError(f"{path}: not an MNIST file name (valid: {', '.join(sorted(MNIST_MD5))})")
    got = md5sum(path)
    if got != expected:
        raise BiosimError(f"{path}: MD5 {got} does not match the published {expected}: the file is "
                          f"corrupt or incomplete; delete it and {FETCH_HINT}")
    return path


def _candidate_dirs() -> list[Path]:
    dirs = [mnist_dir()]
    if os.environ.get("BIOSIM_DATA"):
        dirs.append(data_root())
    return dirs


def find_mnist() -> dict[str, Path]:
    """Role -> path of each of the four files (``.gz`` preferred), or a one-line error."""
    dirs = _candidate_dirs()
    partial = None
    for folder in dirs:
        found = {}
        for role, stem in MNIST_FILES.items():
            for name in (stem + ".gz", stem):
                if (folder / name).is_file():
                    found[role] = folder / name
                    break
        if len(found) == len(MNIST_FILES):
            return found
        if found and partial is None:
            partial = (folder, [MNIST_FILES[r] + ".gz" for r in MNIST_FILES if r not in found])
    if partial:
        raise BiosimError(f"full MNIST in {partial[0]} lacks {', '.join(partial[1])}; {FETCH_HINT}")
    where = " or ".join(str(d) for d in dirs)
    raise BiosimError(f"full MNIST not found in {where}; {FETCH_HINT}")


def _load_checked(path: Path, ndim: int) -> np.ndarray:
    check_md5(path)
    array = read_idx(path)
    if array.dtype != np.uint8 or array.ndim != ndim:
        raise BiosimError(f"{path}: expected a uint8 IDX array with {ndim} dimensions, "
                          f"got {array.dtype} with shape {array.shape}")
    return array


def load_mnist(split_seed: int = 0) -> Dataset:
    """Load full MNIST (see the module docstring for where from and the split).

    Parameters
    ----------
    split_seed : int
        Ignored: the official test set and the last-5000 validation set are fixed.

    Returns
    -------
    Dataset
        55,000 train / 5,000 val / 10,000 test for the real files.
    """
    del split_seed
    paths = find_mnist()
    x_train = _load_checked(paths["train_images"], 3)
    y_train = _load_checked(paths["train_labels"], 1).astype(np.int64)
    x_test = _load_checked(paths["test_images"], 3)
    y_test = _load_checked(paths["test_labels"], 1).astype(np.int64)
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        if len(x) != len(y):
            raise BiosimError(f"MNIST {part}: {len(x)} images but {len(y)} labels")
        if y.size and y.max() > 9:
            raise BiosimError(f"MNIST {part}: label {y.max()} out of range 0..9")
    n_val = int(round(len(y_train) / 12))  # 5000 of 60000
    cut = len(y_train) - n_val
    return Dataset("mnist", x_train[:cut], y_train[:cut], x_train[cut:], y_train[cut:], x_test, y_test,
                   n_classes=10, source=str(paths["train_images"].parent))
