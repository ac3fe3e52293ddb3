"""Numba's on-disk cache without private APIs (see :mod:`biosim._numba_cache`).

* no ``cache=True`` function of the package compiles in code or constants of another file (the
  hazard that Numba, which keys the cache on the function's own file, would not notice);
* the check finds such a function when there is one;
* a second process loads the generated kernel from Numba's cache instead of compiling it, also for
  a model (HH) whose step is not cached on its own.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import biosim
from biosim._numba_cache import cache_hazards

PACKAGE = Path(biosim.__file__).parent

#: the kernel template is never compiled where it stands: the generated kernel made of its text is,
#: and that text imports the STDP index names in index order (tests/neurons/test_named_constants.py)
TEMPLATE = "biosim.backends.kernel_body"


def _modules_with_cached_functions():
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "cache=True" not in path.read_text():
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != TEMPLATE:
            out.append(name)
    return out


def test_no_cached_function_uses_another_file():
    names = _modules_with_cached_functions()
    assert "biosim.neurons.lif" in names and "biosim.neurons.hh" in names
    assert cache_hazards([importlib.import_module(n) for n in names]) == []


def test_the_check_finds_a_hazard(tmp_path, monkeypatch):
    pkg = tmp_path / "cachetoy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text(textwrap.dedent("""
        from numba import njit
        SCALE = 2.0

        @njit(cache=True)
        def double(x):
            return SCALE * x
    """))
    (pkg / "user.py").write_text(textwrap.dedent("""
        from numba import njit
        from cachetoy.helpers import SCALE, double

        @njit(cache=True)
        def uses_helper(x):
            return double(x) + 1.0

        @njit(cache=True)
        def uses_constant(x):
            return SCALE + x

        @njit
        def not_cached(x):
            return double(x)

        @njit(cache=True)
        def own(x):
            return x + 1.0
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        user = importlib.import_module("cachetoy.user")
        helpers = importlib.import_module("cachetoy.helpers")
        found = cache_hazards([user, helpers], package="cachetoy")
    finally:
        for name in ("cachetoy.user", "cachetoy.helpers", "cachetoy"):
            sys.modules.pop(name, None)
    assert found == ["cachetoy.user.uses_constant uses SCALE (imported from cachetoy.helpers.SCALE)",
                     "cachetoy.user.uses_helper calls double (njit function of cachetoy.helpers)"]


_PROBE = textwrap.dedent("""
    import json
    from biosim import HH, LIF, FixedProbability, Network
    from biosim.backends import numba_cpu
    from biosim.network.compile import model_specs

    net = Network(dt_ms=0.1, seed=3)
    a = net.population("a", LIF(), 20)
    b = net.population("b", HH(), 5)
    net.current(a, 20.0)
    net.current(b, 300.0)
    net.connect(a, b, "ge", weight=1.0, rule=FixedProbability(p=0.5))
    res = net.run(5.0)
    fn = numba_cpu.kernel(model_specs(net))
    print(json.dumps({"hits": sum(fn.stats.cache_hits.values()), "misses": sum(fn.stats.cache_misses.values()),
                      "spikes": [len(res.spikes[k][0]) for k in ("a", "b")]}))
""")


@pytest.mark.slow  # 37 s (a cold compile); tests/backends/test_numba_load.py checks a new process's cache hit by default
def test_a_second_process_loads_the_kernel_from_the_cache(tmp_path):
    env = {**os.environ, "BIOSIM_CACHE_DIR": str(tmp_path)}
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["misses"] >= 1 and first["hits"] == 0
    assert second["hits"] >= 1 and second["misses"] == 0
    assert first["spikes"] == second["spikes"] and sum(first["spikes"]) > 0


def test_hh_step_is_not_cached_on_its_own():
    from biosim.neurons import hh

    assert hh.hh_step.stats.cache_path is None  # it compiles in base.exprel
    assert hh.hh_threshold.stats.cache_path is not None
