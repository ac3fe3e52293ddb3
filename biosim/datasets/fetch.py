"""Download full MNIST's four ``.gz`` files, with a progress bar, atomically, MD5-checked.

Each file is streamed into a temporary file beside its destination and renamed into place only
after its MD5 matches the published sum, so an interrupted or corrupt download never leaves a file
that :func:`biosim.datasets.load` would read. Files already present with the right MD5 are kept.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from biosim.datasets.mnist import MNIST_FILES, MNIST_MD5, md5sum
from biosim.datasets.paths import mnist_dir
from biosim.errors import BiosimError
from biosim.files import atomic_binary, make_dir

__all__ = ["fetch_mnist", "MNIST_MIRRORS"]

#: Base URLs tried in turn (the original site often refuses scripted downloads).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_CHUNK = 1 << 16


def _download(url: str, dest: Path, expected_md5: str, progress: bool, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "biosim"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        digest = hashlib.md5(usedforsecurity=False)
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                  disable=not progress, file=sys.stderr, leave=True) as bar, atomic_binary(dest) as fh:
            while block := response.read(_CHUNK):
                fh.write(block)
                digest.update(block)
                received += len(block)
                # never past the announced total (a longer download fails below): no negative time left
                bar.update(len(block) if total is None else max(0, min(len(block), total - bar.n)))
            if total is not None and received != total:
                raise BiosimError(f"{url}: download cut short ({received} of {total} bytes)")
            if digest.hexdigest() != expected_md5:
                raise BiosimError(f"{url}: MD5 {digest.hexdigest()} does not match the published "
                                  f"{expected_md5}, not saved")


def fetch_mnist(dest: str | os.PathLike | None = None, base_url: str | None = None,
                progress: bool = True, timeout: float = 30.0, log: Callable[[str], None] | None = None) -> Path:
    """Download the four MNIST ``.gz`` files into ``dest``.

    Parameters
    ----------
    dest : path-like, optional
        Folder to write to; default :func:`biosim.datasets.paths.mnist_dir` (``data/mnist`` or
        ``$BIOSIM_DATA/mnist``), where :func:`biosim.datasets.load` looks.
    base_url : str, optional
        A URL the file names are appended to; by default each of :data:`MNIST_MIRRORS` in turn.
    progress : bool
        Show a tqdm progress bar per file (on stderr).
    timeout : float
        Seconds to wait for a server before giving up.
    log : callable, optional
        Receives one line for every file that is already present and verified (not downloaded
        again); the CLI prints it. Default: nothing is said.

    Returns
    -------
    pathlib.Path
        The folder holding the four verified files.

    Raises
    ------
    BiosimError
        One line when no server can be reached (offline), a file is missing there, or a download
        does not match its MD5.
    """
    dest = Path(dest) if dest is not None else mnist_dir()
    if base_url:
        bases = [base_url if base_url.endswith("/") else base_url + "/"]
    else:
        bases = list(MNIST_MIRRORS)
    make_dir(dest, "--dest")  # a file or a place where no folder can be made: one line naming it
    for stem in MNIST_FILES.values():
        name = stem + ".gz"
        target, expected = dest / name, MNIST_MD5[name]
        if target.is_file() and md5sum(target) == expected:
            if log is not None:
                log(f"{name}: already present and verified")
            continue
        failures, offline = [], True
        for base in bases:
            try:
                _download(base + name, target, expected, progress, timeout)
                break
            except urllib.error.HTTPError as exc:
                failures.append(f"{base + name}: HTTP {exc.code} {exc.reason}")
                offline = False
            except urllib.error.URLError as exc:
                failures.append(f"{base + name}: {exc.reason}")
            except http.client.HTTPException as exc:  # e.g. the connection dropped mid-file
                failures.append(f"{base + name}: {exc!r}")
                offline = False
            except OSError as exc:
                failures.append(f"{base + name}: {exc}")
            except BiosimError as exc:
                failures.append(str(exc))
                offline = False
        else:
            if offline:
                why = f"no network? ({failures[0].split(': ', 1)[1]}; {len(bases)} server(s) tried)"
            else:
                why = "; ".join(failures)
            raise BiosimError(f"cannot download {name}: {why}; copy the four MNIST .gz files into "
                              f"{dest} by hand, or pass --url BASE")
    return dest
