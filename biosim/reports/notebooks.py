"""The notebooks (``notebooks/*.ipynb``) executed, and rendered as HTML with their figures.

:func:`render` runs every notebook of a folder in a fresh Python kernel and writes
``OUT/<name>.html`` (nbconvert's HTML, figures embedded as PNG), atomically; ``biosim notebooks
render --out DIR [--fast]`` calls it. :func:`execute_notebook` is the one way both it and the test
suite (``tests/reports/test_notebooks.py``) execute a notebook.

The kernel is always the Python running biosim (``sys.executable``): a kernel spec written for it
into a temporary folder, so that a ``python3`` kernel registered elsewhere on the machine (another
environment's) is never the one that runs. Fast mode (``BIOSIM_FAST=1``, see :mod:`biosim.fast`)
is set or cleared in the kernel's environment, whatever the caller's environment says.

nbclient, nbconvert and ipykernel are optional (the ``notebooks`` and ``dev`` extras); they are
imported inside the functions, and their absence is a one-line :class:`~biosim.errors.BiosimError`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from biosim.errors import BiosimError
from biosim.fast import ENV as FAST_ENV
from biosim.files import atomic_write_text

__all__ = ["default_notebooks_dir", "execute_notebook", "render"]

#: matplotlib's inline backend: figures go into the notebook as PNG outputs
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

_INSTALL_HINT = 'pip install -e ".[notebooks]"'


def default_notebooks_dir() -> Path:
    """``notebooks/`` beside the package (the repository's, for an editable install)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def _require_tools():
    """nbclient, nbformat and the kernel's tools, or a one-line error saying how to install them."""
    try:
        import ipykernel.kernelspec  # noqa: F401
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
        from jupyter_client.kernelspec import KernelSpecManager  # noqa: F401
    except ImportError as exc:
        raise BiosimError(f"running notebooks needs nbclient, nbformat and ipykernel ({exc.name} is missing): "
                          f"{_INSTALL_HINT}") from None


def execute_notebook(path, *, fast_mode: bool, env: Mapping[str, str] | None = None,
                     prelude: Sequence[str] = (), epilogue: Sequence[str] = (), timeout_s: float = 600.0,
                     cwd=None):
    """Execute the notebook at ``path`` in a fresh kernel of this Python; return the executed
    notebook (an ``nbformat.NotebookNode``; the file is not changed).

    Parameters
    ----------
    path : path-like
        The ``.ipynb`` file.
    fast_mode : bool
        ``BIOSIM_FAST`` in the kernel: ``"1"`` or ``"0"``.
    env : mapping, optional
        Extra environment variables for the kernel (on top of this process's environment).
    prelude, epilogue : sequences of str
        Code cells run before the notebook's first cell and after its last (in the same kernel;
        the test suite turns warnings into errors with one). They are not part of the notebook's
        cell numbering in error messages.
    timeout_s : float
        Limit on each cell's execution, in seconds.
    cwd : path-like, optional
        The kernel's working directory (default: the notebook's folder).

    Raises
    ------
    BiosimError
        A missing tool, or a cell that failed: one line naming the notebook, the cell (counting
        the notebook's code cells from 1) and the error.
    """
    _require_tools()
    import nbformat
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    try:
        nb = nbformat.read(str(path), as_version=4)
    except (OSError, ValueError) as exc:
        raise BiosimError(f"cannot read notebook {path}: {exc}") from None
    n_pre = len(prelude)
    nb.cells[:0] = [nbformat.v4.new_code_cell(src) for src in prelude]
    nb.cells.extend(nbformat.v4.new_code_cell(src) for src in epilogue)

    kernel_env = dict(os.environ)
    kernel_env.update(env or {})
    kernel_env[FAST_ENV] = "1" if fast_mode else "0"
    kernel_env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # no debugger chatter on stderr
    with tempfile.TemporaryDirectory(prefix="biosim_kernel_") as tmp:
        write_kernel_spec(Path(tmp) / "python3")       # argv: this sys.executable -m ipykernel_launcher
        spec_manager = KernelSpecManager(kernel_dirs=[tmp], ensure_native_kernel=False)
        km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=spec_manager)
        client = NotebookClient(nb, km=km, timeout=timeout_s, kernel_name="python3", allow_errors=False,
                                resources={"metadata": {"path": str(cwd or path.parent)}})
        try:
            client.execute(cleanup_kc=True, env=kernel_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except CellExecutionError as exc:
            raise BiosimError(f"notebook {path.name}: {_failed_cell(nb, n_pre, len(epilogue))}{exc.ename}: "
                              f"{str(exc.evalue).splitlines()[0] if exc.evalue else ''}") from None
        except CellTimeoutError:
            raise BiosimError(f"notebook {path.name}: {_failed_cell(nb, n_pre, len(epilogue))}no result within "
                              f"{timeout_s:g} s") from None
        except DeadKernelError as exc:
            raise BiosimError(f"notebook {path.name}: the kernel died ({exc})") from None
    del nb.cells[:n_pre]
    if epilogue:
        del nb.cells[-len(epilogue):]
    return nb


def _failed_cell(nb, n_pre: int, n_post: int) -> str:
    """``"code cell K: "`` (the notebook's code cells counted from 1) for the last cell that started
    running, the one that failed; ``"prelude: "``/``"epilogue: "`` for the cells added around them."""
    started = [k for k, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count")]
    if not started:
        return ""
    k = started[-1]
    if k < n_pre:
        return "prelude: "
    if k >= len(nb.cells) - n_post:
        return "epilogue: "
    code_cells = [j for j, c in enumerate(nb.cells[:len(nb.cells) - n_post]) if c.cell_type == "code" and j >= n_pre]
    return f"code cell {code_cells.index(k) + 1}: "


def render(out_dir, notebooks_dir=None, fast: bool = False, timeout_s: float = 1800.0) -> list[Path]:
    """Execute every notebook of ``notebooks_dir`` and write it as HTML with its figures.

    Parameters
    ----------
    out_dir : path-like
        Folder for ``<name>.html``, one per notebook (created if missing; each file written
        atomically).
    notebooks_dir : path-like, optional
        Folder of ``*.ipynb`` files; default :func:`default_notebooks_dir` (the repository's
        ``notebooks/``).
    fast : bool
        Fast mode (``BIOSIM_FAST=1``): shorter runs, the same figures.
    timeout_s : float
        Limit on each cell's execution, in seconds.

    Returns
    -------
    list of pathlib.Path
        The HTML files written, in the notebooks' (sorted) order.
    """
    _require_tools()
    try:
        from nbconvert import HTMLExporter
    except ImportError:
        raise BiosimError(f"rendering notebooks needs nbconvert: {_INSTALL_HINT}") from None

    folder = Path(notebooks_dir) if notebooks_dir is not None else default_notebooks_dir()
    if not folder.is_dir():
        raise BiosimError(f"no notebooks folder at {folder} (the notebooks ship with the repository: "
                          f"pass notebooks_dir, or use an editable install of a checkout)")
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        raise BiosimError(f"no notebooks (*.ipynb) in {folder}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    written = []
    for path in paths:
        nb = execute_notebook(path, fast_mode=fast, env={"MPLBACKEND": INLINE_BACKEND}, timeout_s=timeout_s)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
        target = out / f"{path.stem}.html"
        atomic_write_text(target, body)
        written.append(target)
    return written
