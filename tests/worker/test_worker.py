"""The resident worker (``biosim worker start|stop|status``) and the ``biosim`` command's hand-over to it.

Every command runs as a user runs it: a new process running what the ``biosim`` script runs
(:func:`biosim.launch.main`), with ``$BIOSIM_WORKER_DIR`` naming a private temporary folder, so
no test meets a user's worker. Each worker is stopped (and killed if need be) in teardown. No
timed assertions (``biosim bench start --worker`` times the start); the waits are generous for a
loaded machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import biosim
from biosim.worker import client
from biosim.worker.protocol import ENV_BYPASS, ENV_DIR, socket_path

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(__import__("socket"), "send_fds"),
                                reason="the worker needs fork and SCM_RIGHTS (Linux, macOS)")

ROOT = Path(biosim.__file__).resolve().parents[1]
#: what the `biosim` script runs
SCRIPT = "import sys; from biosim.launch import main; sys.exit(main())"
TINY = ["--set", "bio_time_s=0.01", "--quiet"]
#: seconds a command may take here: anything, on a loaded machine
LIMIT = 600


def _env(folder: Path, **more) -> dict:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, ENV_DIR: str(folder), **more}


def biosim_cmd(env: dict, *argv, cwd=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, *argv], env=env, cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=LIMIT, **kwargs)


def _status(env: dict) -> dict | None:
    out = biosim_cmd(env, "worker", "status")
    assert out.returncode == 0, out.stderr
    m = re.match(r"worker (\d+): up \d+ s, (\d+) commands? served", out.stdout)
    return None if m is None else {"pid": int(m[1]), "served": int(m[2])}


def _wait_for(condition, what: str, limit: float = LIMIT):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Worker:
    """A worker in a private temporary folder: ``env`` reaches it, ``pid`` is its process."""

    def __init__(self, *start_args: str, server: bool = False):
        self.folder = Path(tempfile.mkdtemp(prefix="biosim-w-"))  # short: a socket path has ~100 bytes
        self.env = _env(self.folder)
        self.pid = None
        try:
            self._start(start_args, server)
        except BaseException:
            self.close()
            raise

    def _start(self, start_args, server: bool) -> None:
        if server:  # the worker's own entry point, for options the CLI does not offer
            code = "import sys; from biosim.worker.server import main; sys.exit(main())"
            with open(self.folder / "server.log", "w") as log:  # not a pipe: the worker keeps it open
                out = subprocess.run([sys.executable, "-c", code, "--detach", *start_args], env=self.env,
                                     cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, text=True, timeout=LIMIT)
        else:
            out = biosim_cmd(self.env, "worker", "start", *start_args)
        assert out.returncode == 0, self.log() if server else out.stdout + out.stderr
        if server:
            self.pid = _wait_for(lambda: (_status(self.env) or {}).get("pid"), "the worker to answer")
        else:  # `worker start` returns once the worker answers
            self.pid = int(re.match(r"started worker (\d+) on ", out.stdout)[1])
        self.socket = socket_path(self.folder)

    def log(self) -> str:
        return "".join(p.read_text() for p in self.folder.glob("*.log"))

    def close(self) -> None:
        biosim_cmd(self.env, "worker", "stop")
        if self.pid is not None and _alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def worker():
    w = Worker("--idle-timeout", "3600")
    yield w
    w.close()


def _served(w: Worker) -> int:
    return _status(w.env)["served"]


def _without_times(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.endswith("_wall_s")}


def test_a_run_through_the_worker_is_the_run_in_process(worker, tmp_path):
    before = _served(worker)
    out = biosim_cmd(worker.env, "run", "cuba", *TINY, "--out", "via_worker", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert _served(worker) == before + 1  # it went through the worker ...
    assert "n_spikes:" in out.stdout and "wrote via_worker" in out.stdout  # ... which wrote to our stdout, in our cwd
    own = biosim_cmd({**worker.env, ENV_BYPASS: "1"}, "run", "cuba", *TINY, "--out", "in_process", cwd=tmp_path)
    assert own.returncode == 0, own.stderr
    assert _served(worker) == before + 1  # $BIOSIM_NO_WORKER: not through the worker
    a, b = tmp_path / "via_worker", tmp_path / "in_process"
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    assert (a / "config.json").read_bytes() == (b / "config.json").read_bytes()
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert ma["n_spikes"] > 0 and _without_times(ma) == _without_times(mb)  # same seed, same spikes
    assert (a / "raster.png").read_bytes() == (b / "raster.png").read_bytes()


@pytest.mark.parametrize("argv, needle", [
    (["run", "cuba", "--set", "bio_tim=1"], "unknown --set key 'bio_tim'"),  # biosim's own error
    (["run", "cuba", "--seed", "x"], "argument --seed: invalid int value"),  # argparse's exit
])
def test_a_mistake_through_the_worker_is_one_line_and_status_2(worker, tmp_path, argv, needle):
    before = _served(worker)
    out = biosim_cmd(worker.env, *argv, cwd=tmp_path)
    assert _served(worker) == before + 1
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("biosim: error:") and needle in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert list(tmp_path.iterdir()) == []


@contextlib.contextmanager
def _long_run(w: Worker, folder: Path):
    """A CUBA run of hours through the worker, once its process is running (its pid from the log);
    the client and the command's process are killed at the end, whatever happened."""
    before = _served(w)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, "run", "cuba", "--set", "bio_time_s=10000", "--quiet",
                             "--out", "long"], env=w.env, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    proc.child = None
    try:
        _wait_for(lambda: _served(w) > before, "the worker to take the run")
        proc.child = int(_wait_for(lambda: re.findall(rf"request {before + 1}, process (\d+):", w.log()), "the log")[0])
        _wait_for(lambda: (folder / "long" / "config.json").exists(), "the run to start")
        yield proc
    finally:
        proc.kill()
        proc.communicate()
        if proc.child is not None and _alive(proc.child):
            os.kill(proc.child, signal.SIGKILL)


def test_ctrl_c_reaches_the_command_in_the_worker(worker, tmp_path):
    with _long_run(worker, tmp_path) as proc:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=LIMIT)
        assert proc.returncode == 130, err
        assert err.startswith("biosim: error: stopped by SIGINT before the run finished") and err.count("\n") == 1, err
        assert _wait_for(lambda: not _alive(proc.child) or None, "the command's process to end")
    assert worker.pid and _alive(worker.pid)  # the worker goes on


def test_a_command_process_that_dies_gives_one_line_and_non_zero(worker, tmp_path):
    with _long_run(worker, tmp_path) as proc:
        os.kill(proc.child, signal.SIGKILL)
        out, err = proc.communicate(timeout=LIMIT)
        assert proc.returncode == 2
        assert err.startswith("biosim: error: the biosim worker's process") and err.count("\n") == 1, err
    assert _status(worker.env) is not None  # the worker itself is still there


def test_a_killed_client_ends_its_command(worker, tmp_path):
    """A client killed with SIGKILL (no signal to pass on) closes its connection: the command's
    process sees it and ends, instead of running on for nobody."""
    with _long_run(worker, tmp_path) as proc:
        proc.kill()
        proc.communicate(timeout=LIMIT)
        assert _wait_for(lambda: not _alive(proc.child) or None, "the command's process to end")
    assert _status(worker.env) is not None


def test_a_stale_worker_refuses_exits_and_the_command_runs_in_process(tmp_path):
    w = Worker("--stamp", "0", "0", "--idle-timeout", "3600", server=True)  # a stamp the sources do not have
    try:
        out = biosim_cmd(w.env, "run", "cuba", *TINY, "--out", "run", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "wrote run" in out.stdout and (tmp_path / "run" / "metrics.json").exists()
        _wait_for(lambda: not w.socket.exists(), "the stale worker to remove its socket")
        _wait_for(lambda: not _alive(w.pid), "the stale worker to exit")
        assert "sources changed since the worker started" in w.log()
    finally:
        w.close()


def test_status_stop_and_the_socket(tmp_path):
    w = Worker("--idle-timeout", "3600")
    try:
        assert w.socket.exists() and (w.socket.stat().st_mode & 0o777) == 0o600
        assert (w.folder.stat().st_mode & 0o777) == 0o700
        again = biosim_cmd(w.env, "worker", "start")
        assert again.returncode == 0 and again.stdout.startswith(f"already running: worker {w.pid}")
        out = biosim_cmd(w.env, "worker", "stop")
        assert out.returncode == 0 and out.stdout.strip() == f"stopped worker {w.pid}"
        assert not w.socket.exists()
        _wait_for(lambda: not _alive(w.pid), "the worker to exit")
        assert biosim_cmd(w.env, "worker", "status").stdout.strip() == "no worker running"
        assert biosim_cmd(w.env, "worker", "stop").stdout.strip() == "no worker running"
    finally:
        w.close()


def test_an_idle_worker_exits_and_removes_its_socket():
    w = Worker("--idle-timeout", "1")
    try:
        _wait_for(lambda: not _alive(w.pid), "the idle worker to exit", limit=120)
        assert not w.socket.exists() and "idle for" in w.log()
    finally:
        w.close()


def test_no_worker_or_a_folder_others_may_enter_means_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "none"))
    assert client.forward(["list"]) is None and client.status() is None and client.stop() is None
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    monkeypatch.setenv(ENV_DIR, str(shared))
    assert client.forward(["list"]) is None
    out = biosim_cmd(_env(shared), "worker", "start")
    assert out.returncode == 2 and out.stderr.startswith("biosim: error: worker:") and "0700" in out.stderr
    assert out.stderr.count("\n") == 1


def _python(code: str, folder: Path) -> str:
    """The standard output of ``python -c code`` (a new process, this checkout), which must succeed."""
    out = subprocess.run([sys.executable, "-c", code], env=_env(folder), capture_output=True, text=True,
                         timeout=LIMIT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_client_path_imports_neither_numpy_nor_numba_and_the_api_is_lazy(tmp_path):
    probe = ("import sys, biosim.launch, biosim\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'numba'))\n"
             "light = set(dir(biosim)) >= set(biosim.__all__)\n"
             "from biosim import Network, LIF, __version__\n"
             "print(heavy, light, Network.__module__, biosim.STDP.__name__, __version__ == biosim.__version__)")
    assert _python(probe, tmp_path).split() == ["[]", "True", "biosim.network.network", "STDP", "True"]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        biosim.Nope  # noqa: B018
    # subpackages are attributes once asked for, as when import biosim imported them eagerly
    sub = subprocess.run([sys.executable, "-c", "import biosim; print(biosim.neurons.register_model.__name__, "
                          "biosim.network.snapshot.__name__)"], env=_env(tmp_path), capture_output=True, text=True,
                         timeout=LIMIT)
    assert sub.returncode == 0 and sub.stdout.split() == ["register_model", "biosim.network.snapshot"], sub.stderr


def test_the_warm_up_imports_every_built_in_model(tmp_path):
    """A run imports a neuron model's module on first use (biosim.neurons); the worker's forks find
    every built-in one imported already."""
    probe = ("import sys\n"
             "from biosim.worker import server\n"
             "from biosim.neurons import _BUILTIN_AT\n"
             "server._warm_up()\n"
             "print(sorted({m for m, _ in _BUILTIN_AT.values()} - set(sys.modules)))")
    assert _python(probe, tmp_path).split()[-1] == "[]"
