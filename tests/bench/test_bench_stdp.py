"""biosim.bench.stdp_bench: ``biosim bench stdp`` (Diehl & Cook STDP training speed), tiny settings."""

from __future__ import annotations

import json

import pytest

from biosim.bench.stdp_bench import format_stdp_report, run_stdp_bench
from biosim.cli import main
from biosim.errors import BiosimError


def test_biosim_side_alone_fields_and_table(capsys):
    said = []
    rep = run_stdp_bench(n_exc=10, n_images=2, against="", log=said.append)
    assert capsys.readouterr().out == ""  # the library returns data; the CLI prints
    json.dumps(rep)
    assert set(rep["simulators"]) == {"biosim"} and rep["ratio_vs_brian2_cython"] is None
    assert rep["ratio_vs_brian2_cython_loops"] is None
    bio = rep["simulators"]["biosim"]
    assert rep["images_per_second"] == bio["images_per_second"] > 0
    assert bio["images"] == 2 and 2 <= bio["showings"] <= 10 and bio["wall_s"] > 0 and bio["build_s"] > 0
    assert bio["bio_seconds"] == pytest.approx(0.5 * bio["showings"])
    assert bio["bio_seconds_per_second"] == pytest.approx(bio["bio_seconds"] / bio["wall_s"])
    assert bio["mean_theta_mv"] > 20.0  # it learned: thresholds rose
    assert rep["n_exc"] == 10 and rep["n_input"] == 784 and rep["n_synapses"] == 7840 and rep["dt_ms"] == 0.5
    assert (rep["present_ms"], rep["rest_ms"], rep["w_sum"]) == (350.0, 150.0, 78.0)
    assert any("biosim, 2 images" in line for line in said)
    out = format_stdp_report(rep)
    assert "images/s" in out and "\nbiosim " in out and "\nbrian2_cython" not in out


def test_cli_against_nothing(capsys):
    assert main(["bench", "stdp", "--n-exc", "10", "--images", "2", "--against", ""]) == 0
    out, err = capsys.readouterr()
    assert "bench stdp: Diehl & Cook, 784 inputs -> 10 exc" in out and "images/s" in out
    assert "bench stdp: biosim" in err and "bench stdp: biosim" not in out
    assert main(["bench", "stdp", "--n-exc", "10", "--images", "1", "--against", "", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["simulators"]["biosim"]["images"] == 1


@pytest.mark.parametrize("argv, needle", [
    (["bench", "stdp", "--images", "0"], "--images = 0 is out of range (must be 1..100000)"),
    (["bench", "stdp", "--repeats", "2"], "--repeats is not an option of bench stdp"),
    (["bench", "cuba", "--n-exc", "10"], "--n-exc is for bench stdp, not cuba"),
    (["bench", "stdp", "--against", "brain2"], "did you mean 'brian2'"),
])
def test_cli_errors(capsys, argv, needle):
    assert main(argv) != 0
    assert needle in capsys.readouterr().err


def test_library_errors():
    with pytest.raises(BiosimError, match="n_images = 0"):
        run_stdp_bench(n_exc=10, n_images=0, against="")
    with pytest.raises(BiosimError, match="n_images = 100000: mnist5k has"):
        run_stdp_bench(n_exc=10, n_images=100000, against="")


@pytest.mark.slow
def test_brian2_side_one_image():
    """Brian2 cython: one warm-up and one timed image (the first run in a fresh cache compiles for a minute)."""
    pytest.importorskip("brian2")
    pytest.importorskip("Cython")
    rep = run_stdp_bench(n_exc=10, n_images=2, brian2_images=1, against="brian2")
    b2 = rep["simulators"]["brian2_cython"]
    assert b2["images"] == 1 and b2["images_per_second"] > 0 and b2["first_image_s"] > 0
    assert 0 < b2["loop_s"] <= b2["wall_s"]
    assert rep["ratio_vs_brian2_cython"] == pytest.approx(rep["images_per_second"] / b2["images_per_second"])
    assert b2["gc_collect_s"] >= 0 and rep["ratio_vs_brian2_cython_loops"] > 0
    assert "biosim / brian2 cython" in format_stdp_report(rep)
