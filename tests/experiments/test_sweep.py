"""`biosim sweep` on Dask: a grid x seeds of tiny CUBA runs, resume, failing points, the heat map,
one-line errors, and `biosim compare` on the same executor.

One local cluster (2 worker processes, started by :class:`DaskExecutor` as ``biosim sweep`` starts
it) serves the whole module; the tests reach it by its scheduler's address on loopback, as a
cluster started elsewhere is reached with ``--scheduler``.
"""

import csv
import json
import os

import dask
import distributed  # noqa: F401 (its config defaults must exist before any dask.config.set below, see _note)
import pytest

from biosim.cli import main
from biosim.experiments.sweep import DaskExecutor, _split_values, one_line, run_sweep

TINY = ["--set", "bio_time_s=0.02", "--set", "n_exc=400", "--set", "n_inh=100"]
TINY_SETS = [s for s in TINY if s != "--set"]
WALL = ("sim_wall_s", "setup_wall_s", "total_wall_s")

# _note: ``dask.config.set({"distributed.x": ...})`` before ``distributed`` is imported creates the
# ``distributed`` section and, on exit, deletes the whole section -- the defaults that importing
# ``distributed`` meanwhile put there included. Every later Client or LocalCluster in the process
# then failed with KeyError 'comm' (seen when the one-line-error test ran first in its xdist worker).


@pytest.fixture(scope="module")
def scheduler():
    # a worker that dies is retried once (Dask's default is 3) so that the killed-worker test is quick
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with DaskExecutor(workers=2) as ex:
            assert ex.n_workers() == 2 and ex.n_threads() == 2
            yield ex.cluster.scheduler_address


def _no_wall(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in WALL}


def test_grid_by_seeds_writes_runs_tables_and_a_heat_map(scheduler, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "sweep"
    argv = ["sweep", "cuba", "--grid", "we_mv=1.0,2.0", "--grid", "wi_mv=-9,-5", "--seeds", "2", *TINY,
            "--scheduler", scheduler, "--out", str(out), "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "8 runs (4 grid points x 2 seeds): 8 ran, 0 reused, 0 failed" in text

    with open(out / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8
    assert {(r["we_mv"], r["wi_mv"], r["seed"]) for r in rows} == {
        (we, wi, s) for we in ("1.0", "2.0") for wi in ("-9.0", "-5.0") for s in ("0", "1")}
    for r in rows:
        assert r["status"] == "ran" and r["error"] == ""
        assert float(r["mean_rate_hz"]) > 0 and int(r["n_neurons"]) == 500
        assert "populations.exc.mean_rate_hz" in r
    data = json.loads((out / "sweep.json").read_text())
    assert data["counts"] == {"ran": 8, "reused": 0, "failed": 0} and data["failed"] == []
    assert data["grid"] == {"we_mv": [1.0, 2.0], "wi_mv": [-9.0, -5.0]}
    assert len(data["summary"]) == 4 and all(s["metrics"]["mean_rate_hz"]["n"] == 2 for s in data["summary"])

    png = out / "heatmap_mean_rate_hz.png"
    assert data["plots"] == ["heatmap_mean_rate_hz.png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(png).ndim == 3

    # every point is an ordinary run folder; same seed, same result as `biosim run` alone
    point = out / "points" / "we_mv=2.0,wi_mv=-5.0,seed=1"
    assert {"config.json", "metrics.json", "raster.png", "rate.png"} <= {p.name for p in point.iterdir()}
    alone = tmp_path / "alone"
    assert main(["run", "cuba", *TINY, "--set", "we_mv=2", "--set", "wi_mv=-5", "--seed", "1", "--quiet",
                 "--out", str(alone)]) == 0
    assert json.loads((alone / "config.json").read_text()) == json.loads((point / "config.json").read_text())
    assert _no_wall(json.loads((alone / "metrics.json").read_text())) == \
        _no_wall(json.loads((point / "metrics.json").read_text()))
    seeds = [json.loads((out / "points" / f"we_mv=2.0,wi_mv=-5.0,seed={s}" / "metrics.json").read_text())
             for s in (0, 1)]
    assert seeds[0]["n_spikes"] != seeds[1]["n_spikes"]  # the seed matters


def test_an_interrupted_sweep_resumes(scheduler, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kw = dict(grid=["we_mv=1.0,1.5,2.0"], sets=TINY_SETS, scheduler=scheduler, out=tmp_path / "s", progress=False)
    first = run_sweep("cuba", **kw)
    assert first["counts"] == {"ran": 3, "reused": 0, "failed": 0}
    points = {p["label"]: p for p in first["points"]}
    kept = tmp_path / "s" / "points" / "we_mv=1.0,seed=0" / "metrics.json"
    before = kept.stat().st_mtime_ns
    (tmp_path / "s" / "points" / "we_mv=1.5,seed=0" / "metrics.json").unlink()  # as if stopped there

    second = run_sweep("cuba", **kw)
    assert second["counts"] == {"ran": 1, "reused": 2, "failed": 0}
    assert [p["label"] for p in second["points"] if p["status"] == "ran"] == ["we_mv=1.5,seed=0"]
    assert kept.stat().st_mtime_ns == before
    for p in second["points"]:
        assert _no_wall(p["metrics"]) == _no_wall(points[p["label"]]["metrics"])
    # a trend plot for one swept key
    assert second["plots"] == ["mean_rate_hz_vs_we_mv.png"]
    assert (tmp_path / "s" / "mean_rate_hz_vs_we_mv.png").read_bytes()[:4] == b"\x89PNG"

    # another --set is another configuration: nothing reused
    third = run_sweep("cuba", **{**kw, "sets": [*TINY_SETS, "p_connect=0.05"]})
    assert third["counts"] == {"ran": 3, "reused": 0, "failed": 0}


def test_a_failing_point_is_recorded_and_the_others_go_on(scheduler, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "s"
    argv = ["sweep", "cuba", "--grid", "p_connect=0.02,1.5", "--grid", "we_mv=1.5,oops", *TINY,
            "--scheduler", scheduler, "--out", str(out), "--quiet"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and err.startswith("biosim: error: 3 of 4 runs failed")
    assert "p_connect=1.5,we_mv=1.5,seed=0" in err and "Traceback" not in err + captured.out
    data = json.loads((out / "sweep.json").read_text())
    assert data["counts"] == {"ran": 1, "reused": 0, "failed": 3}
    errors = {f["label"]: f["error"] for f in data["failed"]}
    assert "out of range" in errors["p_connect=1.5,we_mv=1.5,seed=0"]  # raised on the worker
    assert "we_mv=oops: expected a number" in errors["p_connect=0.02,we_mv=oops,seed=0"]  # not a value of the key
    assert all("\n" not in e for e in errors.values())
    ok = [p for p in data["points"] if p["status"] == "ran"]
    assert [p["label"] for p in ok] == ["p_connect=0.02,we_mv=1.5,seed=0"] and ok[0]["metrics"]["n_spikes"] > 0
    assert (out / "heatmap_mean_rate_hz.png").is_file()  # failed cells are drawn as such
    with open(out / "sweep.csv", newline="") as fh:
        assert sum(r["status"] == "failed" for r in csv.DictReader(fh)) == 3


def test_a_killed_worker_fails_its_task_only(scheduler):
    with DaskExecutor(scheduler=scheduler) as ex:
        got = {i: (result, error) for i, result, error in ex.run(_exit_or_square, [(True,), (3,)])}
        ex.client.wait_for_workers(2, timeout=60)  # the nannies start new workers
    assert got[1] == (9, None)
    assert got[0][0] is None and "died" in one_line(got[0][1])


def _exit_or_square(x):
    if x is True:
        os._exit(1)
    return x * x


@pytest.mark.parametrize("argv,expect", [
    (["--grid", "we_m=1,2"], "unknown --grid key 'we_m'; did you mean 'we_mv'?"),
    (["--grid", "we_mv=1,2", "--grid", "we_mv=3"], "given twice"),
    (["--grid", "we_mv=1,,2"], "empty value"),
    (["--grid", "we_mv=1,1.0"], "the same value once read"),
    ([], "at least one --grid"),
    (["--grid", "we_mv=1,2", "--set", "we_mv=1"], "also given with --set"),
    (["--grid", "we_mv=1,2", "--workers", "0"], "--workers = 0 is out of range"),
    (["--grid", "we_mv=1,2", "--workers", "two"], "invalid int value: 'two'"),
    (["--grid", "we_mv=1,2", "--seeds", "0"], "--seeds = 0"),
    (["--grid", "we_mv=1,2", "--scheduler", "tcp://nowhere"], "not a Dask scheduler address"),
    (["--grid", "we_mv=1,2", "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"], "has its own workers"),
    (["--grid", "we_mv=1,2", "--backend", "numba-cpx"], "did you mean 'numba-cpu'"),
])
def test_sweep_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, expect):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["sweep", "cuba", *argv, "--out", str(tmp_path / "s")])
    except SystemExit as exc:  # argparse's own errors (one line too, see biosim.cli._Parser)
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("biosim: error:") and expect in err, err
    assert not (tmp_path / "s" / "points").exists()


def test_an_unreachable_scheduler_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert main(["sweep", "cuba", "--grid", "we_mv=1,2", *TINY, "--scheduler", "127.0.0.1:1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in err


def test_a_cluster_started_with_the_dask_commands(tmp_path, monkeypatch, capsys):
    """As the README says: `dask scheduler` and `dask worker` started elsewhere, then --scheduler."""
    import subprocess
    import sys
    import time

    from dask.distributed import Client

    monkeypatch.chdir(tmp_path)
    exe = os.path.join(os.path.dirname(sys.executable), "dask")
    file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([exe, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        procs.append(subprocess.Popen([exe, "worker", "--scheduler-file", str(file), "--nthreads", "1",
                                       "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = json.loads(file.read_text())["address"]
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(1, timeout=60)
        assert main(["sweep", "cuba", "--grid", "we_mv=1,2", *TINY, "--scheduler", address, "--out", "s",
                     "--quiet"]) == 0
        assert f"on the Dask cluster at {address}: 1 worker, 1 thread" in capsys.readouterr().out
        assert json.loads((tmp_path / "s" / "sweep.json").read_text())["counts"]["ran"] == 2
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)


def test_grid_values_split_outside_brackets():
    assert _split_values("1, 2.5 ,3") == ["1", "2.5", "3"]
    assert _split_values("[32,64],[16]") == ["[32,64]", "[16]"]
    assert _split_values('"a,b",c') == ['"a,b"', "c"]


def _no_timing(obj):
    """``obj`` without the measured times (wall clock, throughput, latency), at every level."""
    if isinstance(obj, dict):
        return {k: _no_timing(v) for k, v in obj.items()
                if not any(t in k for t in ("second", "wall", "latency", "per_s")) and not k.endswith("_s")}
    if isinstance(obj, list):
        return [_no_timing(v) for v in obj]
    return obj


@pytest.mark.slow  # 28 s; the grid tests run sweeps on Dask in the default suite
def test_compare_fans_its_runs_out_on_the_same_executor(scheduler, tmp_path, monkeypatch, capsys):
    """`biosim compare --scheduler`: the same run folders as the plain loop, the same metrics (but times)."""
    monkeypatch.chdir(tmp_path)
    tiny = ["--set", "learn.epochs=1", "--set", "net.hidden=[16]"]
    assert main(["compare", "lif_digits", "mlp_digits", "--seeds", "1", "--out", "par", "--quiet",
                 "--scheduler", scheduler, *tiny]) == 0
    assert "training 2 runs on the Dask cluster at" in capsys.readouterr().out
    par = json.loads((tmp_path / "par" / "metrics.json").read_text())
    assert not any(s["reused"] for n in par["models"] for s in par["per_seed"][n])
    for name in ["lif_digits"]:  # the spiking one (mlp_digits trains in milliseconds, the same way)
        run_dir = tmp_path / par["per_seed"][name][0]["run_dir"]
        assert main(["run", name, "--seed", "0", *tiny, "--quiet", "--out", f"one/{name}"]) == 0
        alone = tmp_path / "one" / name
        assert json.loads((alone / "config.json").read_text()) == json.loads((run_dir / "config.json").read_text())
        assert _no_timing(json.loads((alone / "metrics.json").read_text())) == \
            _no_timing(json.loads((run_dir / "metrics.json").read_text()))
    # the plain loop (workers=1) now reuses what the workers trained
    assert main(["compare", "lif_digits", "mlp_digits", "--seeds", "1", "--out", "seq", "--quiet", *tiny]) == 0
    seq = json.loads((tmp_path / "seq" / "metrics.json").read_text())
    assert all(s["reused"] for n in seq["models"] for s in seq["per_seed"][n])
