"""What the ``biosim`` command and its resident worker share: where the socket is, how messages are
framed, and the stamp that says whether the worker's code is still the code on disk.

Standard library only: the client imports this before it knows whether a worker is there.

**Where.** One worker per Python interpreter, biosim version and biosim package folder (different
virtual environments or checkouts never share one), in a private folder (mode 0700, refused if
another user owns it or others may enter it): ``$BIOSIM_WORKER_DIR`` if set, else ``worker/`` in
biosim's cache folder (``$BIOSIM_CACHE_DIR``, or ``$XDG_CACHE_HOME/biosim``, default
``~/.cache/biosim``). The folder holds ``<key>.sock`` (the socket), ``<key>.lock`` (held by the
living worker) and ``<key>.log`` (its log).

**Messages.** A message is a 4-byte big-endian length and that many bytes of JSON. A request is
``{"op": "run" | "status" | "stop", ...}``; a ``run`` request comes with the client's standard
input, output and error as ``SCM_RIGHTS`` file descriptors on its first bytes.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import sys
import zlib
from pathlib import Path

from biosim import __version__

__all__ = ["ENV_DIR", "ENV_BYPASS", "PACKAGE", "Refused", "worker_dir", "worker_key", "socket_path",
           "identity", "startup_env", "source_stamp", "send", "receive", "receive_with_fds"]

#: the environment variable naming the worker's folder
ENV_DIR = "BIOSIM_WORKER_DIR"
#: set (to anything but '', 0, false, no, off) to run every command in its own process
ENV_BYPASS = "BIOSIM_NO_WORKER"

#: the biosim package folder this code belongs to
PACKAGE = Path(__file__).resolve().parents[1]

#: environment variables read when a process starts or imports NumPy and Numba: a worker serves a
#: command only if the command's values are its own
_STARTUP_PREFIXES = ("PYTHON", "NUMBA_", "OMP_", "OPENBLAS_", "MKL_", "BIOSIM_CACHE_DIR")

_HEADER = struct.Struct(">I")
_MAX_MESSAGE = 64 * 1024 * 1024


class Refused(Exception):
    """The worker did not take the request (or the socket is not a worker's)."""


def worker_dir(create: bool = False) -> Path:
    """The private folder of the workers (see the module docstring); with ``create``, made if missing
    (mode 0700). Raises :class:`Refused` when it is not private."""
    env = os.environ.get(ENV_DIR)
    if env:
        path = Path(env)
    else:
        base = os.environ.get("BIOSIM_CACHE_DIR")
        if not base:
            base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                                "biosim")
        path = Path(base) / "worker"
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.stat(path)  # FileNotFoundError when there is none (no worker)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise Refused(f"{path} is not a private folder of this user (mode 0700)")
    return path


def identity() -> dict:
    """What a worker and a client must share: the interpreter and its environment (a virtual
    environment's ``python`` is a link to the base interpreter, so its own path and ``sys.prefix``
    tell two venvs apart), biosim's version and package folder."""
    return {"executable": os.path.abspath(sys.executable), "prefix": sys.prefix, "version": __version__,
            "package": str(PACKAGE)}


def worker_key() -> str:
    """The worker's name for this interpreter, biosim version and package folder (8 hex digits; a
    worker also checks each request's identity, so a collision only costs a refusal). CRC-32, not
    hashlib: importing hashlib is several milliseconds of every command's start."""
    return f"{zlib.crc32(json.dumps(identity(), sort_keys=True).encode()):08x}"


def socket_path(folder: Path) -> Path:
    """The socket of this interpreter's worker in ``folder``."""
    return folder / f"{worker_key()}.sock"


def startup_env(env: dict) -> dict:
    """The variables of ``env`` that act when a process starts (see ``_STARTUP_PREFIXES``)."""
    return {k: v for k, v in env.items() if k.startswith(_STARTUP_PREFIXES)}


def source_stamp() -> list:
    """The newest modification time (ns) and the number of biosim's ``.py`` files: a worker serves
    only while this is what it was when it started."""
    newest, count = 0, 0
    todo = [str(PACKAGE)]
    while todo:
        with os.scandir(todo.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        todo.append(entry.path)
                elif entry.name.endswith(".py"):
                    newest, count = max(newest, entry.stat().st_mtime_ns), count + 1
    return [newest, count]


def send(sock: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    """Send one message (with ``fds`` on its first bytes)."""
    body = json.dumps(message).encode()
    head = _HEADER.pack(len(body))
    if fds:
        socket.send_fds(sock, [head], fds)
        sock.sendall(body)
    else:
        sock.sendall(head + body)


def _exactly(sock: socket.socket, n: int, start: bytes = b"") -> bytes:
    data = bytearray(start)
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("the other side closed the connection")
        data += chunk
    return bytes(data)


def _decode(sock: socket.socket, head: bytes) -> dict:
    (size,) = _HEADER.unpack(head)
    if size > _MAX_MESSAGE:
        raise Refused(f"message of {size} bytes")
    message = json.loads(_exactly(sock, size))
    if not isinstance(message, dict):
        raise Refused("not a message")
    return message


def receive(sock: socket.socket) -> dict:
    """One message; :class:`EOFError` if the connection closed first."""
    return _decode(sock, _exactly(sock, _HEADER.size))


def receive_with_fds(sock: socket.socket, max_fds: int = 3) -> tuple[dict, list[int]]:
    """One message and the file descriptors that came with it (the caller closes them)."""
    head, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, max_fds)
    try:
        if not head:
            raise EOFError("the other side closed the connection")
        return _decode(sock, _exactly(sock, _HEADER.size, head)), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
