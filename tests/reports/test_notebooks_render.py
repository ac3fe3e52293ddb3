"""biosim.reports.notebooks.render: notebooks executed and written as HTML with their figures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from biosim.errors import BiosimError
from biosim.reports import notebooks as nbr

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("nbconvert")


def _small_notebook(folder: Path, name: str = "tiny") -> Path:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("A tiny notebook: one figure, in fast mode or not."),
        nbformat.v4.new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "from biosim.fast import pick\n"
            "n = pick(full=10, fast=3)\n"
            "print('points:', n)\n"
            "fig, ax = plt.subplots()\n"
            "ax.plot(range(n))\n"
            "ax.set_xlabel('index (1)')\n"
            "ax.set_ylabel('value (1)')"),
    ])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_render_writes_html_with_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOSIM_FAST", "1")          # the caller's fast mode does not leak into the kernel
    nb_dir = tmp_path / "nbs"
    source = _small_notebook(nb_dir)
    before = source.read_bytes()
    out = tmp_path / "html"
    paths = nbr.render(out, notebooks_dir=nb_dir, fast=False)
    assert paths == [out / "tiny.html"]
    html = paths[0].read_text()
    assert "points: 10" in html                   # full mode in the kernel (fast=True: test_notebooks.py)
    assert "data:image/png;base64," in html and "<img" in html   # the figure, embedded
    assert sorted(p.name for p in out.iterdir()) == ["tiny.html"]   # no temporary files left
    assert source.read_bytes() == before          # the notebook itself stays without outputs


def test_a_failing_cell_is_one_line_naming_notebook_and_cell(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("Fails."),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('broken on purpose')"),
    ])
    nbformat.write(nb, str(tmp_path / "bad.ipynb"))
    with pytest.raises(BiosimError) as err:
        nbr.render(tmp_path / "html", notebooks_dir=tmp_path, fast=True)
    msg = str(err.value)
    assert "\n" not in msg
    assert "bad.ipynb" in msg and "code cell 2" in msg and "ValueError: broken on purpose" in msg
    assert not (tmp_path / "html" / "bad.html").exists()


def test_missing_folder_or_notebooks(tmp_path):
    with pytest.raises(BiosimError, match="no notebooks folder"):
        nbr.render(tmp_path / "out", notebooks_dir=tmp_path / "nowhere")
    with pytest.raises(BiosimError, match=r"no notebooks \(\*\.ipynb\)"):
        nbr.render(tmp_path / "out", notebooks_dir=tmp_path)


def test_missing_tools_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nbclient", None)   # import nbclient -> ImportError
    with pytest.raises(BiosimError, match=r'pip install -e "\.\[notebooks\]"') as err:
        nbr.render(tmp_path / "out", notebooks_dir=tmp_path)
    assert "\n" not in str(err.value)


def test_default_folder_is_the_repositorys():
    assert nbr.default_notebooks_dir() == Path(__file__).resolve().parents[2] / "notebooks"
