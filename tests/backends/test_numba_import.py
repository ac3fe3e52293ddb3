"""Importing Numba without the packages it imports only to check them (:mod:`biosim._numba_import`):
in a new process SciPy and PyYAML stay unimported, import as usual afterwards, and Numba's config
file is read as Numba reads it, whether it is there at the start or appears later."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from biosim._numba_import import CONFIG_FILE, HIDDEN

pytest.importorskip("yaml")

_PROBE = """
import json, sys
from biosim._numba_import import import_numba
numba = import_numba()
hidden = sorted(m for m in sys.modules if m.split(".")[0] in ("scipy", "yaml"))
from numba.core import config
start = config.BOUNDSCHECK
if sys.argv[1] == "later":
    open(".numba_config.yaml", "w").write("boundscheck: 1\\n")
    config.reload_config()
import scipy, yaml  # as usual afterwards
print(json.dumps({"hidden": hidden, "start": start, "now": config.BOUNDSCHECK, "have_yaml": config._HAVE_YAML,
                  "scipy": scipy.__version__ > "1", "yaml": yaml.safe_load("a: 2"), "numba": numba.__name__}))
"""


def _probe(cwd, when: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE, when], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_numba_imports_without_scipy_and_yaml_which_import_as_usual_afterwards(tmp_path):
    out = _probe(tmp_path, "never")
    assert out["hidden"] == [] and HIDDEN == ("scipy", "yaml")
    assert out["start"] is None and out["now"] is None and out["have_yaml"] is True
    assert out["scipy"] and out["yaml"] == {"a": 2} and out["numba"] == "numba"


def test_a_config_file_that_appears_later_is_read_as_numba_reads_it(tmp_path):
    out = _probe(tmp_path, "later")
    assert out["hidden"] == [] and out["start"] is None and out["now"] == 1


def test_with_a_config_file_it_is_numbas_own_import(tmp_path):
    (tmp_path / CONFIG_FILE).write_text("boundscheck: 1\n")
    out = _probe(tmp_path, "never")
    assert "yaml" in {m.split(".")[0] for m in out["hidden"]} and out["start"] == 1


def test_the_biosim_command_imports_numba_that_way_and_freezes_what_the_imports_made(tmp_path):
    """The ``biosim`` command's imports: Numba without SciPy and PyYAML, and what the imports made
    frozen (``gc.freeze``) before the garbage collector is back on (:mod:`biosim.launch`)."""
    code = ("import gc, sys\nfrom biosim.launch import main\ncode = main(['list'])\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numba', 'scipy', 'yaml'}), code, "
            "gc.isenabled(), gc.get_freeze_count() > 50_000)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BIOSIM_NO_WORKER": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "['numba'] 0 True True"
