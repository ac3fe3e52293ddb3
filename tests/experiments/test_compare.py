"""`biosim compare`: a self-contained report, per-seed metrics, reuse of finished runs, one-line errors."""

import json
import re
import time

import pytest

from biosim.cli import main

TINY = ["--set", "learn.epochs=1", "--set", "net.hidden=[32]"]


def test_compare_writes_reports_and_reuses_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "cmp"
    t0 = time.perf_counter()
    assert main(["compare", "lif_digits", "mlp_digits", "--seeds", "2", "--out", str(out), "--quiet", *TINY]) == 0
    first = time.perf_counter() - t0
    for name in ("report.html", "report.md", "metrics.json"):
        assert (out / name).is_file(), name
    page = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"]?https?:""", page)
    assert "<link" not in page and "<script" not in page
    assert page.count("data:image/png;base64,") >= 5
    for text in ("WORSE", "Engine agreement", "Horowitz", "validation-selected", "best-test"):
        assert text in page, text
    data = json.loads((out / "metrics.json").read_text())
    assert data["models"] == ["lif_digits", "mlp_digits"]
    for name in data["models"]:
        seeds = data["per_seed"][name]
        assert [s["seed"] for s in seeds] == [0, 1]
        assert not any(s["reused"] for s in seeds)
        assert data["summary"][name]["test_accuracy"]["n"] == 2
        assert data["summary"][name]["test_accuracy"]["std"] is not None
    assert "mlp_digits - lif_digits" in data["differences"]
    assert len(list((tmp_path / "runs" / "lif_digits").iterdir())) == 2

    out2 = tmp_path / "cmp2"
    assert main(["compare", "lif_digits", "mlp_digits", "--seeds", "2", "--out", str(out2), "--quiet", *TINY]) == 0
    data2 = json.loads((out2 / "metrics.json").read_text())
    assert all(s["reused"] for n in data2["models"] for s in data2["per_seed"][n])
    assert len(list((tmp_path / "runs" / "lif_digits").iterdir())) == 2  # nothing retrained
    assert data2["summary"]["lif_digits"]["test_accuracy"] == data["summary"]["lif_digits"]["test_accuracy"]
    assert "reusing" in capsys.readouterr().out
    del first


@pytest.mark.parametrize("argv,expect", [
    (["compare", "lif_digit", "mlp_digits"], "did you mean 'lif_digits'"),
    (["compare", "lif_digits", "mlp_digits", "--set", "learn.epoch=1"], "did you mean 'learn.epochs'"),
    (["compare", "lif_digits"], "at least two"),
    (["compare", "cuba", "mlp_digits"], "does not train a classifier"),
    (["compare", "lif_digits", "mlp_digits", "--seeds", "0"], "--seeds"),
    (["compare", "lif_digits", "mlp_digits", "--workers", "0"], "--workers = 0 is out of range"),
    (["compare", "lif_digits", "mlp_digits", "--scheduler", "tcp://nowhere"], "not a Dask scheduler address"),
    (["compare", "lif_digits", "mlp_digits", "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"],
     "has its own workers"),
])
def test_compare_errors_one_line(tmp_path, monkeypatch, capsys, argv, expect):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("biosim: error:") and expect in err
    assert not (tmp_path / "runs").exists()


def test_compare_puts_the_stdp_learner_beside_a_supervised_ann(tmp_path, monkeypatch, capsys):
    """The unsupervised STDP run is a classifier like the others: same report, its own caveats."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "cmp"
    sets = ["--set", "n_exc=6", "--set", "n_train=20", "--set", "n_test=10", *TINY]
    assert main(["compare", "stdp_mnist", "mlp_mnist", "--seeds", "1", "--out", str(out), "--quiet", *sets]) == 0
    data = json.loads((out / "metrics.json").read_text())
    assert data["kinds"] == {"stdp_mnist": "snn", "mlp_mnist": "mlp"}
    stdp = data["summary"]["stdp_mnist"]
    assert stdp["test_accuracy"]["n"] == 1 and stdp["n_params"]["mean"] == 6 * 784 + 6
    assert stdp["synops_effective_acs"]["n"] == 0  # not measured for it, and the report says so
    assert "stdp_mnist" not in data["engine_agreement"]
    assert "no validation set" in (out / "report.md").read_text()
