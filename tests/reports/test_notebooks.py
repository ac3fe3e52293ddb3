"""The notebooks (``notebooks/*.ipynb``) run as part of the test suite, in fast mode.

Every notebook of the folder is executed, top to bottom, in a fresh kernel of this Python
(:func:`biosim.reports.notebooks.execute_notebook`) with ``BIOSIM_FAST=1`` and ``MPLBACKEND=Agg``,
warnings turned into errors inside the kernel (with the same exceptions as the suite's
``filterwarnings`` in ``pyproject.toml``), and a limit on each cell and on the whole notebook. Any
error fails the test, and so does a figure without an x or a y axis label. The stored files are
checked too: no outputs, a markdown cell first, imports from biosim, NumPy, matplotlib and the
standard library only (Brian2 only inside a ``try`` block, as an optional extra), and fast mode
through :func:`biosim.fast.pick`.
"""

from __future__ import annotations

import ast
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from biosim.reports.notebooks import execute_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

#: top-level packages a notebook may import (besides the standard library)
ALLOWED = {"biosim", "numpy", "matplotlib"}
#: optional packages a notebook may import inside a ``try`` block only
OPTIONAL = {"brian2"}

#: seconds: one cell, and a whole notebook in fast mode (they take 10-20 s on an idle 2-core
#: machine; the limits leave room for a cold Numba cache and a machine busy with other tests)
CELL_TIMEOUT_S = 300
NOTEBOOK_BUDGET_S = 180

#: the suite's warning filters (pyproject.toml [tool.pytest.ini_options] filterwarnings), in the
#: kernel; the last cell puts the kernel's own filters back, so that its shutdown is not an error
PRELUDE = (
    "import warnings as _biosim_warnings\n"
    "_biosim_saved_filters = _biosim_warnings.filters[:]\n"
    "_biosim_warnings.simplefilter('error')\n"
    "for _module in ('brian2.*', 'sympy.*', 'pyparsing.*'):\n"
    "    _biosim_warnings.filterwarnings('ignore', category=DeprecationWarning, module=_module)",
    # the kernel must be this environment's Python
    f"import sys as _biosim_sys\nassert _biosim_sys.prefix == {sys.prefix!r}, _biosim_sys.prefix",
    # after each cell: note every figure without an x or a y axis label (on none of its axes that
    # show data, nor as the figure's supxlabel/supylabel), then close the figures, as Jupyter's
    # inline backend does (Agg would keep them open)
    "_biosim_unlabelled, _biosim_offset = [], get_ipython().execution_count\n"
    "def _biosim_check_and_close_figures():\n"
    "    plt = _biosim_sys.modules.get('matplotlib.pyplot')\n"
    "    if plt is None:\n"
    "        return\n"
    "    for num in plt.get_fignums():\n"
    "        fig = plt.figure(num)\n"
    "        axes = [a for a in fig.get_axes() if a.axison and a.has_data()]\n"
    "        sup = {k: getattr(getattr(fig, f'_sup{k}label', None), 'get_text', str)() for k in 'xy'}\n"
    "        for k in 'xy':\n"
    "            if axes and not sup[k] and not any(getattr(a, f'get_{k}label')() for a in axes):\n"
    "                title = fig._suptitle.get_text() if fig._suptitle else axes[0].get_title()\n"
    "                _biosim_unlabelled.append(f'code cell {get_ipython().execution_count - _biosim_offset}, figure {title!r}: no {k} label')\n"
    "    plt.close('all')\n"
    "get_ipython().events.register('post_execute', _biosim_check_and_close_figures)",
)
EPILOGUE = (
    "_biosim_warnings.filters[:] = _biosim_saved_filters\n"
    "assert not _biosim_unlabelled, 'figures need axis labels with units: ' + '; '.join(_biosim_unlabelled)",
)

_params = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


def _read(path: Path):
    return nbformat.read(str(path), as_version=4)


def _code(cell) -> str:
    """A code cell's source as Python (IPython magics translated)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(cell.source)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@_params
def test_stored_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    dirty = [k for k, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them before saving"


@_params
def test_opens_with_a_markdown_paragraph(path):
    nb = _read(path)
    assert nb.cells and nb.cells[0].cell_type == "markdown", f"{path.name} must open with a markdown cell"
    prose = [line for line in nb.cells[0].source.splitlines() if line.strip() and not line.startswith("#")]
    assert prose, f"{path.name}: the first cell needs a paragraph saying what the notebook teaches"


def _imports(tree: ast.AST):
    """(top-level module, inside a try block) for every import in ``tree``."""
    found = []

    def visit(node, in_try):
        if isinstance(node, ast.Import):
            found.extend((alias.name.split(".")[0], in_try) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], in_try))
        if isinstance(node, ast.Try):
            for child in node.body:
                visit(child, True)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, in_try)
        else:
            for child in ast.iter_child_nodes(node):
                visit(child, in_try)

    visit(tree, False)
    return found


@_params
def test_imports_only_biosim_numpy_matplotlib(path):
    bad = []
    for cell in _read(path).cells:
        if cell.cell_type != "code":
            continue
        for module, in_try in _imports(ast.parse(_code(cell))):
            if module in ALLOWED or module in sys.stdlib_module_names or (module in OPTIONAL and in_try):
                continue
            bad.append(module + (" (outside a try block)" if module in OPTIONAL else ""))
    assert not bad, f"{path.name} imports {sorted(set(bad))}; notebooks use biosim, numpy and matplotlib only"


@_params
def test_uses_fast_mode(path):
    source = "\n".join(_code(c) for c in _read(path).cells if c.cell_type == "code")
    assert re.search(r"from biosim\.fast import .*\bpick\b", source), \
        f"{path.name}: run lengths must go through biosim.fast.pick (fast mode)"


@_params
def test_runs_in_fast_mode(path):
    start = time.perf_counter()
    nb = execute_notebook(path, fast_mode=True, env={"MPLBACKEND": "Agg"}, prelude=PRELUDE, epilogue=EPILOGUE,
                          timeout_s=CELL_TIMEOUT_S, cwd=path.parent)
    elapsed = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
    assert elapsed < NOTEBOOK_BUDGET_S, f"{path.name} took {elapsed:.0f} s in fast mode (budget {NOTEBOOK_BUDGET_S} s)"


def test_readme_links_every_notebook():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in NOTEBOOKS if f"notebooks/{p.name}" not in readme]
    assert not missing, f"README.md's Notebooks section does not link {missing}"
