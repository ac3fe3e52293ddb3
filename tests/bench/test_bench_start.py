"""``biosim bench start``: new processes timed from their start to their first simulated step.

No timed assertions: the report has its fields, every time is positive, and the stages come in
order. A tiny CUBA (50 neurons) uses the same kernel as the full one, so the warm-up launch
compiles it only on a cold cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biosim.bench import start
from biosim.bench.start import STAGES, WORKER_STAGES, format_start_report, run_start_bench
from biosim.cli import main
from biosim.errors import BiosimError

TINY = ["n_exc=40", "n_inh=10", "bio_time_s=0.01"]


def _check(report, repeats):
    json.dumps(report)  # plain JSON all the way down
    assert report["benchmark"] == "start" and report["name"] == "cuba"
    assert report["command"].startswith("biosim run cuba")
    assert report["repeats"] == repeats and len(report["start_to_first_step_all_s"]) == repeats
    first = report["start_to_first_step_s"]
    assert 0 < report["start_to_first_step_best_s"] <= first < 600
    assert list(report["stages_s"]) == list(STAGES)
    ats = list(report["stages_s"].values())
    assert ats[0] > 0 and ats == sorted(ats) and ats[-1] == pytest.approx(first)
    for launch in report["stages_all_s"]:
        assert list(launch) == list(STAGES) and list(launch.values()) == sorted(launch.values())
    assert report["compiled_launches"] in range(repeats + 1)
    assert report["goal_s"] == 0.5 and report["meets_goal"] == (first <= 0.5)


def test_the_child_keeps_the_command_from_a_worker():
    from biosim.worker.protocol import ENV_BYPASS

    assert start.NO_WORKER == ENV_BYPASS


def test_run_start_bench_reports_stages_and_floor():
    said = []
    report = run_start_bench("cuba", TINY, repeats=1, log=said.append)
    _check(report, 1)
    assert any("warm-up" in line for line in said)
    floor = report["numba_floor_s"]
    assert 0 < report["numba_floor_best_s"] <= floor < 600 and len(report["numba_floor_all_s"]) == 1
    fs = report["numba_floor_stages_s"]
    assert 0 < fs["interpreter_ready"] < fs["numpy_numba_imported"] < floor
    assert report["above_floor_s"] == pytest.approx(report["start_to_first_step_s"] - floor)
    text = format_start_report(report)
    assert "start to first step: median" in text and "numba floor" in text and "first step simulated" in text


def test_cli_bench_start_json_without_floor_is_quick(capsys, monkeypatch):
    """The CLI passes --set and --repeats through and prints the report as JSON on stdout (timed
    here without the warm-up and the floor, which the test above covers)."""
    calls = {}
    real = start.run_start_bench

    def no_floor(*args, **kwargs):
        calls.update(kwargs, args=args)
        return real(*args, **{**kwargs, "floor": False, "warmup": 0})

    monkeypatch.setattr(start, "run_start_bench", no_floor)  # the CLI imports it when the command runs
    code = main(["bench", "start", "--repeats", "1", "--json", *(a for s in TINY for a in ("--set", s))])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    _check(report, 1)
    assert "numba_floor_s" not in report and report["sets"] == TINY
    assert calls["repeats"] == 1 and calls["backend"] is None
    assert "bench start:" in err  # progress on stderr


@pytest.mark.parametrize("argv, needle", [
    (["bench", "start", "--against", "brian2"], "--against is not an option of bench start"),
    (["bench", "start", "--model", "equations"], "not start"),
    (["bench", "start", "--backend", "numba-cpux"], "did you mean 'numba-cpu'"),
    (["bench", "start", "--set", "n_exk=10"], "n_exk"),
    (["bench", "start", "--repeats", "0"], "--repeats = 0 is out of range"),
    (["bench", "start", "--baseline", "/nonexistent/biosim-checkout"], "not a biosim checkout"),
    (["bench", "cuba", "--baseline", "."], "--baseline is for bench start, not cuba"),
])
def test_bench_start_errors_are_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


def test_run_start_bench_beside_a_baseline_checkout():
    """--baseline: another checkout's launches alternate with these (here the same checkout, from
    its own folder), and the change is the median of the paired differences."""
    root = Path(start.__file__).resolve().parents[2]
    report = run_start_bench("cuba", TINY, repeats=2, warmup=0, floor=False, baseline=root)
    _check(report, 2)
    assert report["baseline"] == str(root) and len(report["baseline_first_step_all_s"]) == 2
    assert list(report["baseline_stages_s"]) == list(STAGES)
    pairs = [a - b for a, b in zip(report["start_to_first_step_all_s"], report["baseline_first_step_all_s"])]
    assert report["change_s"] == pytest.approx(sum(pairs) / 2)  # (the median of two)
    text = format_start_report(report)
    assert "this checkout minus the baseline, launch by launch" in text


def test_a_baseline_that_cannot_run_is_an_error(tmp_path):
    (tmp_path / "biosim").mkdir()
    (tmp_path / "biosim" / "__init__.py").write_text("raise ImportError('not this one')\n")
    with pytest.raises(BiosimError, match="before its first step"):
        run_start_bench("cuba", TINY, repeats=1, warmup=0, floor=False, baseline=tmp_path)


def test_run_start_bench_refuses_a_training_run():
    with pytest.raises(BiosimError, match="simulation runs"):
        run_start_bench("lif_mnist", repeats=1)


def test_run_start_bench_through_a_worker(monkeypatch):
    """--worker: the same command through a resident worker of the bench's own, stamped in the
    worker's fork (``$BIOSIM_BENCH_STAMPS``), also when the bench itself runs with
    ``$BIOSIM_NO_WORKER`` set (its launches through the worker must not inherit it)."""
    monkeypatch.setenv("BIOSIM_NO_WORKER", "1")
    report = run_start_bench("cuba", TINY, repeats=1, warmup=0, floor=False, worker=True)
    _check(report, 1)
    assert list(report["worker_stages_s"]) == list(WORKER_STAGES)
    ats = list(report["worker_stages_s"].values())
    assert 0 < ats[0] and ats == sorted(ats) and ats[-1] == pytest.approx(report["worker_first_step_s"])
    assert 0 < report["worker_first_step_best_s"] <= report["worker_first_step_s"] < 600
    assert report["worker_meets_goal"] == (report["worker_first_step_s"] <= 0.5)
    assert report["worker_compiled_launches"] in (0, 1)
    assert "through the worker" in format_start_report(report)


def test_bench_worker_flag_is_for_bench_start(capsys):
    assert main(["bench", "sweep", "--worker"]) == 2
    assert "--worker is for bench start, not sweep" in capsys.readouterr().err
