"""The layers of biosim, and the rule that nothing imports upward.

From the bottom (a module may import its own layer and the layers below it, never one above):

0. **foundation**: ``errors`` (:class:`BiosimError` and the one-line messages), ``fast`` (the
   ``BIOSIM_FAST`` switch of shorter example runs), ``files`` (run
   folders and atomic writes), ``_generated`` (the cache of generated kernel sources),
   ``_numba_cache`` (where Numba keeps compiled kernels) and ``_numba_load`` (loading them without
   Numba's set-up for compiling). Standard library and numba only; every layer may use them.
1. **models and data**: ``neurons`` and ``synapses`` (the built-in models: parameters, specs, the
   scalar update functions) and ``datasets`` (loading, IDX files, the MNIST download). They know
   nothing of networks, training or each other's users.
2. **equations**: models written as equations. It builds neuron and synapse models from text, so
   it sits just above the built-in ones (it registers its models in the neurons' registry and
   reuses the synapses' spec); nothing below the engine needs it.
3. **engine**: ``backends``, ``network``, and the package itself (``biosim/__init__.py``, the
   public API, re-exports the engine, the models and ``equations``).
4. **learn**: surrogate-gradient training in torch.
5. **bridge**: spiking vs conventional networks: ANN baselines, NeuroBench-style metrics, ANN-to-SNN
   conversion, NIR export / import and the NIR engine.
6. **reports**: figures and the comparison report (markdown and self-contained HTML). They render
   what the layers below computed and compute nothing that a lower layer needs.
7. **experiments**: the named runs (``models/*.toml`` -> a runner) and ``compare``, which trains or
   reuses runs and hands their metrics to the report.
8. **bench**: benchmarks against Brian2, snnTorch and norse (they build the experiments' networks).
9. **cli**: the ``biosim`` command. Library functions return data; the CLI prints it. With it,
   ``launch`` (the command's entry point: a resident worker runs the command if one is there) and
   ``worker`` (that worker, its client and their protocol): the worker runs the CLI, the CLI starts
   and stops the worker.

The rule holds for every import in a file: at module level, inside functions, and modules named
in strings for :mod:`importlib` (``"biosim.experiments.networks:build_cuba"``). An import inside a
function is there for import cost (torch, matplotlib and the engine's kernels load only for the
commands that need them), for an optional dependency, or to break a cycle within one layer; it is
never a way around the order. Within a layer imports go either way (``network`` uses ``backends``,
``synapses`` uses ``neurons``, ``bridge.nir_engine`` uses ``bridge.nir``).

Two rules about third-party packages, checked here too: packages that only the ``dev`` extra
installs (brian2, norse, snntorch, Cython) are imported inside functions only, so every biosim
module imports without them; and layers 0-3 import neither torch nor matplotlib (nor nir,
scikit-learn, scipy) at module level, so ``import biosim`` and a simulation do not pay for them.

A new top-level module or package must be given a layer in :data:`LAYERS` (the test says so).

Function-level imports of biosim modules only where they pay: every one must defer a heavy or
optional package (:data:`DEFERRED`: the imported module, or a package above it that the import
runs, imports one at module level, directly or through other biosim modules; packages that
``import biosim`` imports anyway do not count), or break a genuine import cycle listed in
:data:`CYCLE_BREAKING_IMPORTS`. Everything else goes at the top of the module, where a reader sees
what it depends on. ``biosim list``, ``biosim --help`` and the engine's
warm start stay fast because the heavy packages are the ones deferred, not the light modules.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "biosim"

#: bottom to top: (layer name, the modules and packages in it). "biosim" is the package's own
#: __init__.py only (the public API); every other entry covers a module or a whole package.
LAYERS = (
    ("foundation", ("biosim.errors", "biosim.files", "biosim.fast", "biosim._generated", "biosim._numba_cache",
                    "biosim._numba_load", "biosim._numba_import")),
    ("models and data", ("biosim.neurons", "biosim.synapses", "biosim.datasets")),
    ("equations", ("biosim.equations",)),
    ("engine", ("biosim.backends", "biosim.network", "biosim")),
    ("learn", ("biosim.learn",)),
    ("bridge", ("biosim.bridge",)),
    ("reports", ("biosim.reports",)),
    ("experiments", ("biosim.experiments",)),
    ("bench", ("biosim.bench",)),
    ("cli", ("biosim.cli", "biosim.worker", "biosim.launch")),
)

#: installed by the ``dev`` extra only: never imported at module level
DEV_ONLY = ("brian2", "norse", "snntorch", "Cython", "cython")

#: not imported at module level by the layers up to and including this one
LIGHT_UP_TO = "engine"
HEAVY = ("torch", "matplotlib", "nir", "sklearn", "scipy")

#: third-party packages that justify importing a biosim module inside a function: slow to import
#: or optional (extras, dev-only)
DEFERRED = ("torch", "matplotlib", "sympy", "brian2", "norse", "snntorch", "nir", "scipy", "sklearn",
            "safetensors", "tqdm", "numba", "dask")

#: function-level imports of light biosim modules that break an import cycle:
#: (importing module, imported module) -> why. A stale entry fails the test.
CYCLE_BREAKING_IMPORTS: dict[tuple[str, str], str] = {}

#: function-level imports of light biosim modules that belong at the top of their module but sit in
#: code another change is editing; move them and remove the entry (a stale entry fails the test).
NOT_YET_MOVED: dict[tuple[str, str], str] = {}

#: modules that still print, and why; library code returns data and the CLI prints it. Remove an
#: entry when its prints go (a stale entry does not fail the test, a new printer does).
STILL_PRINTING: dict[str, str] = {}

_DYNAMIC = re.compile(r"biosim(\.\w+)+(:\w+)?")


class Import(NamedTuple):
    importer: str  # dotted module name
    path: str  # file, relative to the repository
    line: int
    target: str  # dotted name of the imported module
    names: tuple[str, ...]  # what ``from target import ...`` takes (empty for ``import target``)
    where: str  # "module level", "in a function" or "dynamic"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve_from(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _in_functions(tree: ast.Module) -> set[int]:
    """ids of the nodes inside a function body (everything else runs when the module is imported)."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inside.update(id(sub) for sub in ast.walk(node) if sub is not node)
    return inside


def _biosim_targets(node: ast.Import | ast.ImportFrom, importer: str, known: dict[str, Path],
                    is_package: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(module, names taken from it) for each biosim module that one import statement imports."""
    if isinstance(node, ast.Import):
        return [(a.name, ()) for a in node.names if a.name == "biosim" or a.name.startswith("biosim.")]
    target = _resolve_from(node, importer, is_package)
    if target != "biosim" and not target.startswith("biosim."):
        return []
    # `from biosim.bridge import nir_engine` imports the module biosim.bridge.nir_engine
    subs = [a.name for a in node.names if f"{target}.{a.name}" in known]
    rest = tuple(a.name for a in node.names if a.name not in subs)
    return [(f"{target}.{sub}", ()) for sub in subs] + ([(target, rest)] if rest else [])


def imports_of(source: str, importer: str, path: str, known: dict[str, Path], is_package: bool = False) -> list[Import]:
    """The imports of biosim modules in ``source`` (the module ``importer``), at every level."""
    tree = ast.parse(source)
    inside = _in_functions(tree)
    out = []
    for node in ast.walk(tree):
        where = "in a function" if id(node) in inside else "module level"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out += [Import(importer, path, node.lineno, target, names, where)
                    for target, names in _biosim_targets(node, importer, known, is_package)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DYNAMIC.fullmatch(node.value):
            target, _, func = node.value.partition(":")
            if target in known:
                out.append(Import(importer, path, node.lineno, target, (func,) if func else (), "dynamic"))
    return out


def all_imports() -> list[Import]:
    known = modules()
    out = []
    for name, path in known.items():
        out += imports_of(path.read_text(), name, str(path.relative_to(ROOT)), known,
                          is_package=path.name == "__init__.py")
    return out


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of the layer holding ``module`` (longest matching entry), or None."""
    best, best_len = None, -1
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            matches = module == member if member == "biosim" else (module == member
                                                                   or module.startswith(member + "."))
            if matches and len(member) > best_len:
                best, best_len = index, len(member)
    return best


def _describe(imp: Import) -> str:
    what = f"{', '.join(imp.names)} from {imp.target}" if imp.names else imp.target
    return (f"{imp.path}:{imp.line} ({imp.where}): {LAYERS[layer_of(imp.importer)][0]} -> "
            f"{LAYERS[layer_of(imp.target)][0]}: {imp.importer} imports {what}")


def test_every_module_has_a_layer():
    missing = sorted(name for name in modules() if layer_of(name) is None)
    assert not missing, ("modules without a layer (add them to LAYERS in tests/test_layers.py, and say why in "
                         f"its docstring): {', '.join(missing)}")


def test_the_layer_table_names_real_modules():
    known = modules()
    stale = [m for _, members in LAYERS for m in members if m not in known]
    assert not stale, f"LAYERS names modules that do not exist: {', '.join(stale)}"


def test_nothing_imports_upward():
    upward = [imp for imp in all_imports()
              if layer_of(imp.target) is not None and layer_of(imp.importer) is not None
              and layer_of(imp.target) > layer_of(imp.importer)]
    if upward:
        pytest.fail("upward imports (a layer may import itself and the layers below it; see the docstring of "
                    "tests/test_layers.py):\n" + "\n".join(map(_describe, upward)), pytrace=False)


def test_the_checker_sees_every_kind_of_import():
    """The resolver is not vacuous: relative, function-level, submodule and dynamic imports all count."""
    known = modules()
    source = (
        "from . import nir_engine\n"
        "from ..errors import BiosimError\n"
        "try:\n    import biosim.learn.layers\nexcept ImportError:\n    pass\n"
        "def f():\n    from biosim.experiments.registry import load_model\n    return load_model\n"
        "RUNNER = 'biosim.experiments.train_runner:run_train'\n"
    )
    got = {(i.target, i.names, i.where) for i in imports_of(source, "biosim.bridge.example", "x.py", known)}
    assert got == {
        ("biosim.bridge.nir_engine", (), "module level"),
        ("biosim.errors", ("BiosimError",), "module level"),
        ("biosim.learn.layers", (), "module level"),
        ("biosim.experiments.registry", ("load_model",), "in a function"),
        ("biosim.experiments.train_runner", ("run_train",), "dynamic"),
    }
    upward = [i for i in imports_of(source, "biosim.bridge.example", "x.py", known)
              if layer_of(i.target) > layer_of("biosim.bridge")]
    assert {i.target for i in upward} == {"biosim.experiments.registry", "biosim.experiments.train_runner"}
    assert [i.target for i in imports_of("from . import comparison\n", "biosim.reports", "x.py", known,
                                         is_package=True)] == ["biosim.reports.comparison"]


def _module_level_third_party(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import that runs when the module is imported."""
    tree = ast.parse(path.read_text())
    inside = _in_functions(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in inside:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def test_dev_only_packages_are_imported_inside_functions():
    bad = [f"{path.relative_to(ROOT)}:{line}: {pkg}" for name, path in modules().items()
           for line, pkg in _module_level_third_party(path) if pkg in DEV_ONLY]
    assert not bad, "packages of the dev extra imported at module level:\n" + "\n".join(bad)


def test_engine_layers_do_not_import_torch_or_matplotlib_at_module_level():
    limit = [n for n, _ in LAYERS].index(LIGHT_UP_TO)
    bad = [f"{path.relative_to(ROOT)}:{line}: {pkg}" for name, path in modules().items()
           if layer_of(name) is not None and layer_of(name) <= limit
           for line, pkg in _module_level_third_party(path) if pkg in HEAVY]
    assert not bad, (f"layers up to '{LIGHT_UP_TO}' must not import {', '.join(HEAVY)} at module level:\n"
                     + "\n".join(bad))


def test_library_code_does_not_print():
    """Library functions return data (or take a ``log`` callable); only the CLI layer prints (the
    command, and its worker's log and one-line errors)."""
    bad = []
    for name, path in modules().items():
        if layer_of(name) == layer_of("biosim.cli") or name in STILL_PRINTING:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, "print() outside biosim/cli.py (return the text, or take a log= callable):\n" + "\n".join(bad)


def test_tests_mirror_the_package():
    """Every test folder is named after a part of the package (or is the cross-cutting contract
    suite), and every test file lives in one."""
    tests = ROOT / "tests"
    parts = {p.name for p in (ROOT / "biosim").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    parts |= {p.stem for p in (ROOT / "biosim").glob("*.py")}
    folders = {p.name for p in tests.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders - parts <= {"contract"}, f"test folders without a package part: {sorted(folders - parts - {'contract'})}"
    loose = sorted(p.name for p in tests.glob("test_*.py") if p.name != "test_layers.py")
    assert not loose, f"test files outside the mirrored folders: {loose}"


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): its imports never run."""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_run_on_import(source: str, importer: str, known: dict[str, Path],
                          is_package: bool = False) -> tuple[set[str], set[str]]:
    """(top-level third-party packages, biosim modules) that importing ``importer`` imports: every
    import outside functions and outside ``if TYPE_CHECKING:`` blocks (in ``try``, ``if`` and class
    bodies too)."""
    tree = ast.parse(source)
    skip = _in_functions(tree)
    for node in ast.walk(tree):
        if _is_type_checking(node):
            skip.update(id(sub) for sub in ast.walk(node))
    packages, targets = set(), set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            packages.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            packages.add(node.module.split(".")[0])
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            targets.update(t for t, _ in _biosim_targets(node, importer, known, is_package))
    return packages - {"biosim"}, targets


def _module_deps() -> dict[str, tuple[set[str], set[str]]]:
    known = modules()
    return {name: imports_run_on_import(path.read_text(), name, known, is_package=path.name == "__init__.py")
            for name, path in known.items()}


def preloaded(deps: dict[str, tuple[set[str], set[str]]] | None = None) -> set[str]:
    """The biosim modules that ``import biosim`` imports: imported already before any other biosim
    module runs (Python runs ``biosim/__init__.py`` first)."""
    deps = deps if deps is not None else _module_deps()
    seen, todo = set(), ["biosim"]
    while todo:
        name = todo.pop()
        if name in seen or name not in deps:
            continue
        seen.add(name)
        for target in deps[name][1]:
            parts = target.split(".")
            todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return seen


def runs(target: str, importer: str, already: set[str]) -> list[str]:
    """The biosim modules whose import costs count for importing ``target`` in ``importer``:
    ``target`` itself and each package above it that is not imported already (neither one holding
    ``importer`` nor one of ``already``, what ``import biosim`` imports)."""
    parts = target.split(".")
    above = [".".join(parts[:i]) for i in range(1, len(parts))]
    return [target] + [p for p in above if p not in already and not importer.startswith(p + ".")]


def heavy_modules() -> dict[str, str]:
    """Module -> a package of :data:`DEFERRED` that importing it imports, directly or through the
    biosim modules it imports at module level (and the packages above them, see :func:`runs`)."""
    deps = _module_deps()
    already = preloaded(deps)
    heavy = {name: min(packages & set(DEFERRED)) for name, (packages, _) in deps.items()
             if packages & set(DEFERRED)}
    changed = True
    while changed:  # to the fixed point (cycles among biosim modules are fine)
        changed = False
        for name, (_, targets) in deps.items():
            hits = sorted(heavy[m] for t in targets for m in runs(t, name, already) if m in heavy)
            if name not in heavy and hits:
                heavy[name] = hits[0]
                changed = True
    return heavy


def test_the_heavy_module_finder_is_not_vacuous():
    known = modules()
    heavy = heavy_modules()
    assert heavy["biosim.learn.layers"] == "torch"
    assert "biosim.errors" not in heavy and "biosim.files" not in heavy
    # a light module in a heavy package: importing it from outside runs the package's __init__.py
    # (biosim.datasets imports tqdm) ...
    assert "biosim.datasets.paths" not in heavy and heavy["biosim.datasets"] == "tqdm"
    already = preloaded()
    assert runs("biosim.datasets.paths", "biosim.cli", already) == ["biosim.datasets.paths", "biosim.datasets"]
    # ... but not from inside it
    assert runs("biosim.datasets.paths", "biosim.datasets.catalog", already) == ["biosim.datasets.paths"]
    # `import biosim` imports no biosim module (the public API is imported on first use), so a
    # package above the target counts wherever it is imported from ...
    assert already == {"biosim"}
    assert runs("biosim.network.stats", "biosim.reports.figures", already) == ["biosim.network.stats", "biosim.network"]
    # ... unless `import biosim` imported it (the rule, should the package import one again)
    assert runs("biosim.network.stats", "biosim.reports.figures", {"biosim", "biosim.network"}) == ["biosim.network.stats"]
    source = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    import torch\n    from biosim.learn import fit\n"
              "try:\n    import numba.core\nexcept ImportError:\n    pass\n"
              "class A:\n    from ..files import atomic_binary\n"
              "def f():\n    import matplotlib\n    from biosim.errors import unknown\n")
    assert imports_run_on_import(source, "biosim.bridge.example", known) == ({"typing", "numba"}, {"biosim.files"})


def test_function_level_imports_defer_a_heavy_package():
    """An import of a biosim module inside a function defers a package of :data:`DEFERRED` or
    breaks a listed cycle; anything else goes at the top of the module (see the docstring)."""
    heavy, already = heavy_modules(), preloaded()
    light = [imp for imp in all_imports() if imp.where == "in a function"
             and not any(m in heavy for m in runs(imp.target, imp.importer, already))]
    listed = {**CYCLE_BREAKING_IMPORTS, **NOT_YET_MOVED}
    bad = [imp for imp in light if (imp.importer, imp.target) not in listed]
    stale = sorted(set(listed) - {(imp.importer, imp.target) for imp in light})
    message = []
    if bad:
        message.append("light biosim modules imported inside functions (move the import to the top of the module; "
                       "if that makes an import cycle, list the pair in CYCLE_BREAKING_IMPORTS with the reason):\n"
                       + "\n".join(f"{imp.path}:{imp.line}: {imp.importer} imports {imp.target}" for imp in bad))
    if stale:
        message.append("stale entries (no such light function-level import any more; remove them):\n"
                       + "\n".join(f"{a} -> {b}" for a, b in stale))
    if message:
        pytest.fail("\n\n".join(message), pytrace=False)
