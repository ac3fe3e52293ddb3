"""The client side of the resident worker: hand a command to it, and ``biosim worker start|stop|status``.

Standard library only (and :mod:`biosim.errors`): :func:`forward` runs before NumPy or Numba is
imported, and when it returns ``None`` the command runs in its own process as if there were no
worker. See :mod:`biosim.worker` for the whole picture.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

from biosim.errors import BiosimError
from biosim.worker.protocol import (ENV_BYPASS, ENV_DIR, PACKAGE, Refused, identity, receive, send, socket_path, worker_dir,
                                    worker_key)

__all__ = ["forward", "start", "stop", "status", "log_path", "DEFAULT_IDLE_S"]

#: the worker exits after this many seconds without a request, unless told otherwise
DEFAULT_IDLE_S = 1800.0

#: seconds a worker has to take a request (accept it, check it, fork: milliseconds) before the
#: command runs in its own process instead
_HANDSHAKE_S = 5.0

#: seconds ``worker start`` waits for the new worker to answer (its warm-up may compile the kernel)
_START_WAIT_S = 600.0


def _connect(timeout: float) -> socket.socket | None:
    """A connection to this interpreter's worker, or None when there is none (or it is not ours)."""
    if not hasattr(socket, "AF_UNIX") or not hasattr(socket, "send_fds"):
        return None
    try:
        path = socket_path(worker_dir())
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except (OSError, Refused):
        return None
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def forward(argv: list[str]) -> int | None:
    """Run ``biosim ARGV`` in the worker, with this process's working folder, environment and
    standard streams; return its exit status, or None when no worker took it (none running, one
    that refused it, ``$BIOSIM_NO_WORKER`` set): then the caller runs it itself.

    Once the worker has started the command, SIGINT, SIGTERM and SIGHUP sent to this process are
    passed on to the command's process group; if that process ends without an exit status, one
    ``biosim: error:`` line on stderr and status 2.
    """
    if os.environ.get(ENV_BYPASS, "").strip().lower() not in ("", "0", "false", "no", "off"):
        return None
    sock = _connect(_HANDSHAKE_S)
    if sock is None:
        return None
    with sock:
        try:
            send(sock, {"op": "run", "argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), **identity()},
                 fds=[0, 1, 2])
            reply = receive(sock)
        except (OSError, EOFError, Refused, ValueError):  # refused, gone, timed out: it will not run there
            return None
        if reply.get("status") != "started" or not isinstance(reply.get("pid"), int):
            return None
        return _wait(sock, reply["pid"])


def _wait(sock: socket.socket, pid: int) -> int:
    """Tell the worker's process ``pid`` to go, pass signals on to it, and return its exit status."""
    def pass_on(signum, _frame):
        try:
            os.killpg(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    log = log_path()
    old = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        sock.settimeout(None)
        try:
            send(sock, {"op": "go"})
            while True:
                reply = receive(sock)
                if reply.get("status") == "exit":
                    return int(reply["code"])
        except (OSError, EOFError, Refused, ValueError, KeyError, TypeError):
            print(f"biosim: error: the biosim worker's process {pid} ended before the command finished "
                  f"(see {log}); run it again, or with {ENV_BYPASS}=1 without the worker", file=sys.stderr)
            return 2
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _ask(op: str) -> dict | None:
    """The worker's answer to ``op`` (status, stop), or None when none is running."""
    sock = _connect(_HANDSHAKE_S)
    if sock is None:
        return None
    with sock:
        try:
            send(sock, {"op": op})
            return receive(sock)
        except (OSError, EOFError, Refused, ValueError):
            return None


def log_path() -> Path:
    """The log of this interpreter's worker."""
    return worker_dir(create=True) / f"{worker_key()}.log"


def status() -> dict | None:
    """The running worker's pid, uptime_s, served (requests run), idle_timeout_s, socket and log;
    None when none is running."""
    reply = _ask("status")
    return reply if reply is not None and reply.get("status") == "running" else None


def stop(wait_s: float = 30.0) -> int | None:
    """Stop the running worker (its commands in flight finish); its pid, or None when none was
    running. Returns once its socket is gone (at most ``wait_s`` seconds)."""
    reply = _ask("stop")
    if reply is None or reply.get("status") != "stopping":
        return None
    path = socket_path(worker_dir())
    deadline = time.monotonic() + wait_s
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return int(reply["pid"])


def _held(lock: Path) -> bool:
    """Whether a process holds the worker's lock file (a worker starting or running)."""
    import fcntl

    try:
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    return False


def start(idle_timeout_s: float = DEFAULT_IDLE_S) -> tuple[dict, bool]:
    """Start a worker in the background, unless one is running; return its status and whether it
    is new. Raises :class:`BiosimError` (naming the log) when it did not come up.

    The new process takes the worker's lock, forks the worker (in a new session, detached from
    the terminal) and exits; the worker warms up, then answers on its socket.
    """
    if not hasattr(socket, "AF_UNIX") or not hasattr(socket, "send_fds") or not hasattr(os, "fork"):
        raise BiosimError("the worker needs Unix sockets and fork (Linux, macOS); every command runs in its own process")
    if not idle_timeout_s > 0:
        raise BiosimError(f"--idle-timeout = {idle_timeout_s:g} must be > 0 (seconds)")
    try:
        folder = worker_dir(create=True)
    except Refused as exc:
        raise BiosimError(f"worker: {exc}") from None
    if len(os.fsencode(socket_path(folder))) > 100:
        raise BiosimError(f"worker: the socket path {socket_path(folder)} is too long for a Unix socket; "
                          f"set ${ENV_DIR} to a shorter folder")
    running = status()
    if running is not None:
        return running, False
    import subprocess  # here, not at the top: every command's start imports this module

    log = log_path()
    # sys.path[0] is '' (the working folder) for `python -c`; the worker's forks change folder to
    # their command's, so it becomes biosim's own folder, as the `biosim` script has its bin folder there
    code = (f"import sys; sys.path[0] = {str(PACKAGE.parent)!r}; from biosim.worker.server import main; "
            f"sys.exit(main())")
    with open(log, "ab") as fh:
        launched = subprocess.run([sys.executable, "-c", code, "--detach", "--idle-timeout", repr(float(idle_timeout_s))],
                                  cwd=folder, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                  start_new_session=True, timeout=_START_WAIT_S).returncode
    deadline = time.monotonic() + _START_WAIT_S
    while time.monotonic() < deadline:
        running = status()
        if running is not None:
            return running, launched == 0
        if not _held(folder / f"{worker_key()}.lock"):
            break
        time.sleep(0.05)
    lines = log.read_text(errors="replace").strip().splitlines()
    raise BiosimError(f"worker: it did not start: {lines[-1] if lines else 'no output'} (log: {log})")
