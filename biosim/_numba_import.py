"""Importing Numba for the ``biosim`` command without the two optional packages it imports only to check.

``import numba`` imports SciPy, if installed, only to check that its version is at least 1.0, and
PyYAML, if installed, only to read a ``.numba_config.yaml`` in the working directory when there is
one. Neither is used again unless code asks for it (Numba's BLAS/LAPACK bindings import SciPy when
a function using them compiles). biosim requires SciPy >= 1.11, so the check cannot fail for it, and
the two imports took about 0.04 s of the 0.25-0.3 s that ``import numba`` takes on this project's
machines: a tenth of a warm ``biosim run cuba`` start (``biosim bench start``).

:func:`import_numba` imports Numba with both hidden (``sys.modules[name] = None`` while Numba's
``__init__`` runs, which makes their import raise ``ImportError``, as if not installed) and takes
them out again afterwards, so a later ``import scipy`` or ``import yaml`` imports them as usual.
Numba's configuration then reads a config file that appears later just as before: its
``_HAVE_YAML`` is set back to whether PyYAML is installed, and its ``yaml`` name is a stand-in whose
``safe_load`` imports PyYAML on first use. With a ``.numba_config.yaml`` in the working directory
it is a plain ``import numba``. Numba 0.68's ``numba/__init__.py`` and ``numba/core/config.py``;
anything else (another Numba without those names) leaves Numba as imported, with the config file
read as Numba does (``tests/backends/test_numba_import.py``).
"""

from __future__ import annotations

import importlib.util
import os
import sys

__all__ = ["import_numba", "HIDDEN"]

#: the packages ``import numba`` imports only for its start-up checks (see the module docstring)
HIDDEN = ("scipy", "yaml")

#: Numba's configuration file, read from the working directory
CONFIG_FILE = ".numba_config.yaml"


class _YamlOnDemand:
    """What Numba's configuration calls of PyYAML (``yaml.safe_load``), importing it on first use."""

    @staticmethod
    def safe_load(stream):
        import yaml

        return yaml.safe_load(stream)


def import_numba():
    """Import and return :mod:`numba` without importing SciPy and PyYAML for its checks (see the
    module docstring); Numba as it is when it is imported already, or a config file is there."""
    if "numba" in sys.modules or os.path.isfile(CONFIG_FILE):
        import numba

        return numba
    hidden = [name for name in HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None
    try:
        import numba
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    config = sys.modules.get("numba.core.config")
    if "yaml" in hidden and getattr(config, "_HAVE_YAML", None) is False \
            and importlib.util.find_spec("yaml") is not None:
        config.yaml = _YamlOnDemand
        config._HAVE_YAML = True
    return numba
