"""biosim.bench.train_bench: ``biosim bench train --against snntorch,norse`` (tiny settings)."""

from __future__ import annotations

import json

import pytest

from biosim.bench.train_bench import COMPETITORS, format_report, run_train_bench
from biosim.errors import BiosimError

pytest.importorskip("snntorch")
pytest.importorskip("norse")

# norse 1.1.0 and snnTorch may warn about torch.jit / deprecated torch APIs at import
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:norse.*"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:snntorch.*"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit.*")]

TINY = dict(n_batches=2, hidden=32, warmup=1, repeats=1, steps=8, batch_size=32, threads=1)


def test_train_mode_fields_and_losses_drop(capsys):
    rep = run_train_bench(["snntorch", "norse"], seed=3, **TINY)
    assert capsys.readouterr().out == ""  # the library returns data; the CLI prints
    json.dumps(rep)  # serialisable
    assert rep["mode"] == "train" and rep["n_batches"] == 2 and rep["threads"] == 1
    assert rep["steps"] == 8 and rep["batch_size"] == 32
    libs = rep["libraries"]
    assert set(libs) == {"biosim", "biosim_stock", "snntorch", "norse"}
    for name, lib in libs.items():
        assert lib["samples_per_s"] > 0 and lib["seconds"] > 0 and len(lib["seconds_all"]) == 1
        assert lib["final_loss"] > 0
        assert lib["loss_dropped"], (name, lib["first_loss"], lib["first_batch_loss_after"])
    # every library starts from the same weights on the same batch
    assert libs["biosim"]["first_loss"] == pytest.approx(libs["norse"]["first_loss"], rel=1e-4)
    assert libs["biosim"]["first_loss"] == pytest.approx(libs["biosim_stock"]["first_loss"], rel=1e-5)
    assert libs["biosim"]["first_loss"] == pytest.approx(libs["snntorch"]["first_loss"], rel=0.05)
    for comp in ("snntorch", "norse"):
        assert rep[f"speedup_vs_{comp}"] == pytest.approx(libs["biosim"]["samples_per_s"] / libs[comp]["samples_per_s"])
        assert rep[f"speedup_vs_{comp}_median"] > 0


def test_train_mode_table_and_one_competitor():
    rep = run_train_bench("snntorch", stock=False, verbatim=True, **TINY)
    out = format_report(rep)
    assert "samples/s" in out and "snntorch" in out and "vs snntorch" in out
    assert set(rep["libraries"]) == {"biosim", "snntorch"}
    assert rep["speedup_vs_norse"] is None and rep["verbatim"] is True


def test_layer_mode():
    said = []
    rep = run_train_bench("snntorch,norse", layer=24, steps=30, batch_size=4, n_batches=1, repeats=2, threads=1,
                          log=said.append)
    out = format_report(rep)
    assert any("repeat 2/2" in line for line in said)
    assert "Linear(24, 24) + LIF" in out and "ms" in out
    assert rep["mode"] == "layer" and rep["layer"] == 24 and rep["steps"] == 30
    for lib in rep["libraries"].values():
        assert lib["ms"] > 0 and len(lib["ms_all"]) == 2 and 0 <= lib["spike_rate"] <= 1
    assert rep["speedup_vs_snntorch"] == pytest.approx(rep["libraries"]["snntorch"]["ms"] / rep["libraries"]["biosim"]["ms"])
    assert rep["speedup_vs_norse"] > 0


def test_unknown_competitor_and_bad_settings():
    with pytest.raises(BiosimError, match="unknown competitor 'snntorc'; did you mean 'snntorch'"):
        run_train_bench(["snntorc"])
    with pytest.raises(BiosimError, match="unknown competitor 'brian2'"):
        run_train_bench("norse,brian2")
    with pytest.raises(BiosimError, match="n_batches"):
        run_train_bench("norse", n_batches=0)
    with pytest.raises(BiosimError, match="layer"):
        run_train_bench("norse", layer=0)
    assert set(COMPETITORS) == {"snntorch", "norse"}
    with pytest.raises(BiosimError, match="warmup"):
        run_train_bench("norse", warmup=0)
