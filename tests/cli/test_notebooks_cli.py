"""`biosim notebooks render`: the notebooks executed and written as HTML, from the command line."""

from __future__ import annotations

import pytest

from biosim.cli import main

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("nbconvert")


def test_notebooks_render_writes_html(tmp_path, capsys):
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("One line of output, in fast mode."),
        nbformat.v4.new_code_cell("from biosim.fast import pick\nprint('mode:', pick(full='full', fast='fast'))"),
    ])
    nbformat.write(nb, str(nb_dir / "one.ipynb"))
    out = tmp_path / "html"
    assert main(["notebooks", "render", "--out", str(out), "--dir", str(nb_dir), "--fast"]) == 0
    html = (out / "one.html").read_text()
    assert "mode: fast" in html
    assert f"wrote {out / 'one.html'}" in capsys.readouterr().out


def test_notebooks_render_refuses_a_missing_folder(tmp_path, capsys):
    assert main(["notebooks", "render", "--out", str(tmp_path / "h"), "--dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("biosim: error: no notebooks folder at") and err.count("\n") == 1
