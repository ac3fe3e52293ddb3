"""The resident worker process (``python -m biosim.worker.server``; ``biosim worker start`` starts it).

It imports the ``biosim`` command with NumPy and Numba, runs a tiny CUBA once (the kernel loaded
from Numba's cache, on one thread: Numba's thread pool is never started here, so every fork may
start its own), freezes what is alive (``gc.freeze``: the forks share those pages instead of
copying them when the collector runs) and waits on its socket (see :mod:`biosim.worker.protocol`).

For each ``run`` request it checks the request: the same interpreter and biosim (else it refuses
and exits), biosim's sources unchanged since it started (else it refuses and exits), the same
start-up environment variables as its own (else it refuses the request only). Then it forks; the
fork becomes the command's process: its own process group, the client's standard streams on
0, 1 and 2, the client's working folder, environment and ``sys.argv``, default signal handlers. It
tells the client its pid, waits for the go, runs :func:`biosim.cli.main`, runs the ``atexit``
handlers and sends the exit status. The worker itself goes on accepting requests; it exits after
``--idle-timeout`` seconds without one, on ``stop`` or SIGTERM, or when its socket file is gone
or replaced, and removes its socket. It logs to ``<key>.log`` beside the socket.
"""

from __future__ import annotations

import argparse
import atexit
import fcntl
import gc
import os
import select
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback

from biosim.bench.probe import ENV_STAMPS, stamp_in_fork
from biosim.cli import main as cli_main
from biosim.neurons import MODELS
from biosim.worker.client import DEFAULT_IDLE_S
from biosim.worker.protocol import (Refused, identity, receive, receive_with_fds, send, socket_path, source_stamp,
                                    startup_env, worker_dir, worker_key)

__all__ = ["main", "serve", "WARM_UP"]

#: the command run once at start-up (the kernel of ``biosim run cuba``, any size, on one thread)
WARM_UP = ["run", "cuba", "--quiet", "--set", "n_exc=40", "--set", "n_inh=10", "--set", "bio_time_s=0.001"]

#: seconds between the worker's checks of its socket file and its children while idle
_POLL_S = 2.0

#: objects of the worker kept alive in its forks (the standard streams it started with: replaced,
#: not closed, as closing them would close the client's descriptors dup'ed onto 0, 1, 2)
_KEPT: list = []


def _log(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{os.getpid()}] {line}", flush=True)


class _Stop(Exception):
    """SIGTERM in the worker: leave the loop and clean up."""


def _raise_stop(_signum, _frame):
    raise _Stop


def _warm_up() -> None:
    with tempfile.TemporaryDirectory(prefix="biosim-worker-") as tmp:
        code = cli_main([*WARM_UP, "--out", os.path.join(tmp, "run")])
    if code != 0:
        raise RuntimeError(f"the warm-up run (biosim {' '.join(WARM_UP)}) ended with status {code}")
    dict(MODELS)  # every built-in model's module, which a command's process would import on first use
    numba_parallel = sys.modules.get("numba.np.ufunc.parallel")
    if numba_parallel is not None and getattr(numba_parallel, "_is_initialized", False):
        raise RuntimeError("the warm-up started Numba's thread pool: forks would inherit a dead pool")


def serve(lock, idle_timeout_s: float, stamp: list | None = None) -> int:
    """Warm up, then serve on the socket until idle for ``idle_timeout_s`` seconds, stopped or
    stale; ``lock`` is the worker's open, locked lock file. ``stamp``: the sources' stamp to serve
    under (default: :func:`source_stamp` now; the tests give a wrong one for a stale worker)."""
    t0 = time.monotonic()
    stamp = _stamp() if stamp is None else stamp
    _warm_up()
    gc.collect()
    gc.freeze()
    env = startup_env(os.environ)
    path = socket_path(worker_dir())
    path.unlink(missing_ok=True)  # a dead worker's (we hold the lock)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(64)
    inode = os.stat(path).st_ino
    info = {"pid": os.getpid(), "started": time.time(), "socket": str(path), "idle_timeout_s": idle_timeout_s,
            "log": str(path.with_suffix(".log")), "served": 0}
    _log(f"serving on {path} (warm-up {time.monotonic() - t0:.2f} s, idle timeout {idle_timeout_s:g} s)")
    old_term = signal.signal(signal.SIGTERM, _raise_stop)
    last = time.monotonic()
    try:
        while True:
            _reap()
            idle = time.monotonic() - last
            if idle >= idle_timeout_s:
                _log(f"idle for {idle:.0f} s: exiting")
                return 0
            try:
                if os.stat(path).st_ino != inode:
                    raise FileNotFoundError
            except FileNotFoundError:
                _log("the socket file is gone or replaced: exiting")
                return 0
            ready, _, _ = select.select([listener], [], [], min(_POLL_S, idle_timeout_s - idle))
            if not ready:
                continue
            conn, _ = listener.accept()
            last = time.monotonic()
            with conn:
                if _handle(conn, listener, lock, info, stamp, env):
                    return 0
    except _Stop:
        _log("SIGTERM: exiting")
        return 0
    finally:
        signal.signal(signal.SIGTERM, old_term)
        try:
            if os.stat(path).st_ino == inode:
                path.unlink()
        except FileNotFoundError:
            pass
        listener.close()


def _reap() -> None:
    """Collect the exit status of every fork that ended (they report to their clients themselves)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _handle(conn, listener, lock, info: dict, stamp: list, env: dict) -> bool:
    """Answer one request; True when the worker must exit."""
    conn.settimeout(30.0)
    try:
        message, fds = receive_with_fds(conn)
    except (OSError, EOFError, Refused, ValueError):
        return False
    try:
        op = message.get("op")
        if op == "status":
            send(conn, {"status": "running", **info, "uptime_s": time.time() - info["started"]})
            return False
        if op == "stop":
            send(conn, {"status": "stopping", "pid": os.getpid()})
            _log("stop requested: exiting")
            return True
        if op != "run" or len(fds) != 3:
            send(conn, {"status": "refused", "reason": f"not a request: {op!r} with {len(fds)} descriptors"})
            return False
        mine = identity()
        if {k: message.get(k) for k in mine} != mine:
            send(conn, {"status": "refused", "reason": "another interpreter or biosim"})
            _log(f"refused a request of another interpreter or biosim ({ {k: message.get(k) for k in mine} }): exiting")
            return True
        if _stamp() != stamp:
            send(conn, {"status": "refused", "reason": "biosim's sources changed since the worker started"})
            _log("biosim's sources changed since the worker started: refused a request, exiting")
            return True
        theirs = startup_env(message.get("env") or {})
        if theirs != env:
            send(conn, {"status": "refused", "reason": "other start-up environment variables"})
            _log(f"refused a request with other start-up variables: {sorted(set(theirs.items()) ^ set(env.items()))}")
            return False
        info["served"] += 1
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(conn, listener, lock, fds, message)  # never returns
        _log(f"request {info['served']}, process {pid}: biosim {' '.join(message['argv'])}")
        return False
    except (OSError, KeyError, TypeError, ValueError) as exc:
        _log(f"a request failed: {exc!r}")
        return False
    finally:
        for fd in fds:
            os.close(fd)


def _stamp() -> list:
    """:func:`source_stamp` with the modification times of NumPy's and Numba's ``__init__.py``
    (an upgrade of either rewrites it): a worker serves only while this is what it was when it
    started."""
    import numba
    import numpy

    return source_stamp() + [os.stat(m.__file__).st_mtime_ns for m in (numpy, numba)]


def _watch_client(conn) -> None:
    """Kill this command's process group when the client's connection ends (the client sends
    nothing after its go: end of file means it is gone, e.g. killed with SIGKILL), so that a
    command does not run on without anyone waiting for it."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os.killpg(0, signal.SIGKILL)


def _child(conn, listener, lock, fds: list[int], message: dict) -> None:
    """The fork: become the command's process, run it, report its status, exit."""
    code = 1
    try:
        t_fork = time.monotonic()
        listener.close()
        lock.close()  # the worker keeps its lock; this process must not hold it after the worker exits
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        conn.settimeout(None)
        send(conn, {"status": "started", "pid": os.getpid()})
        if receive(conn).get("op") != "go":
            os._exit(1)
        threading.Thread(target=_watch_client, args=(conn,), daemon=True).start()
        _adopt(fds, message)
        code = _run(message["argv"], t_fork)
        send(conn, {"status": "exit", "code": code})
    except BaseException:  # noqa: BLE001 - a failure of this code, not of the command: on the stream it has
        traceback.print_exc()
    finally:
        os._exit(code & 0xFF)


def _adopt(fds: list[int], message: dict) -> None:
    """Take the client's standard streams, environment, arguments and working folder."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    encoding = sys.stdout.encoding
    _KEPT.extend((sys.stdin, sys.stdout, sys.stderr))
    sys.stdin = sys.__stdin__ = open(0, encoding=encoding, closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1 if os.isatty(1) else -1, encoding=encoding,
                                       closefd=False)
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, encoding=encoding, errors="backslashreplace",
                                       closefd=False)
    os.environ.clear()
    os.environ.update(message["env"])
    tempfile.tempdir = None  # the client's TMPDIR, not the one the worker's warm-up found
    sys.argv = ["biosim", *message["argv"]]
    os.chdir(message["cwd"])


def _run(argv: list[str], t_fork: float) -> int:
    """``biosim ARGV`` as the ``biosim`` script runs it: its exit status (argparse's and
    ``sys.exit``'s included; a traceback and 1 for an uncaught exception)."""
    if os.environ.get(ENV_STAMPS):
        stamp_in_fork(os.environ[ENV_STAMPS], t_fork)
    try:
        code = cli_main(argv)
    except SystemExit as exc:
        code = exc.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 130
    except BaseException:  # noqa: BLE001 - as the interpreter reports an uncaught exception
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()  # what the interpreter runs at exit (os._exit skips it)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass
    return code or 0


def main(argv: list[str] | None = None) -> int:
    """``python -m biosim.worker.server [--idle-timeout S] [--detach]``: take the worker's lock and
    serve (with ``--detach``, in a fork in a new session, the command returning at once)."""
    parser = argparse.ArgumentParser(prog="python -m biosim.worker.server")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_S, metavar="S")
    parser.add_argument("--detach", action="store_true", help="serve in a detached fork; exit at once")
    parser.add_argument("--stamp", type=int, nargs=2, default=None, help=argparse.SUPPRESS)  # tests: a stale worker
    args = parser.parse_args(argv)
    folder = worker_dir(create=True)
    lock = open(folder / f"{worker_key()}.lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _log("another worker of this interpreter is running or starting")
        return 3
    if args.detach:
        sys.stdout.flush()
        if os.fork():
            os._exit(0)
        os.setsid()
    try:
        return serve(lock, args.idle_timeout, args.stamp)
    except Exception:  # noqa: BLE001 - logged for `biosim worker start`, which shows the last line
        _log(traceback.format_exc().rstrip())
        _log(f"failed: {traceback.format_exc().strip().splitlines()[-1]}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
