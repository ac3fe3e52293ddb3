"""The IDX file format of MNIST: read and write, plain or gzip-compressed.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), the
dimensions as big-endian uint32, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from biosim.errors import BiosimError
from biosim.files import atomic_binary

__all__ = ["read_idx", "write_idx", "IDX_TYPES"]

#: IDX type code -> big-endian NumPy dtype.
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _raw_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise BiosimError(f"{path}: damaged gzip data ({exc})") from None
    return data


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not, told apart by its first bytes).

    Parameters
    ----------
    path : path-like
        The file, e.g. ``t10k-labels-idx1-ubyte.gz``.

    Returns
    -------
    numpy.ndarray
        The array in native byte order (``uint8`` for MNIST images and labels).

    Raises
    ------
    BiosimError
        If the file is missing, not IDX, or shorter or longer than its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise BiosimError(f"{path}: no such file")
    data = _raw_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise BiosimError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise BiosimError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise BiosimError(f"{path}: IDX data is {len(data) - header} bytes, header says {expected} "
                          f"(shape {shape}); the file is truncated or damaged")
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a native, writable copy


def write_idx(path: str | os.PathLike, array, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically.

    Parameters
    ----------
    path : path-like
        Destination; written via a temporary file and a rename.
    array : array-like
        uint8, int8, int16, int32, float32 or float64 data with at least one dimension.
    compress : bool, optional
        gzip the file; by default when ``path`` ends in ``.gz``. The gzip header carries no
        timestamp, so equal arrays give equal files.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise BiosimError(f"IDX cannot store dtype {array.dtype} "
                          f"(valid: {', '.join(str(d.newbyteorder('=')) for d in IDX_TYPES.values())})")
    if not 1 <= array.ndim <= 255:
        raise BiosimError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + np.ascontiguousarray(array, IDX_TYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        payload = gzip.compress(payload, mtime=0)
    with atomic_binary(path) as fh:
        fh.write(payload)
    return path
