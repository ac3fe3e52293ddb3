"""Named runs: one TOML file per name in ``models/``; ``--set key=value`` overrides.

A model file has a ``description``, a ``runner`` (the kind of experiment), optionally a
``builder`` (which network), and a ``[params]`` table holding every key the run accepts with its
default value. Overrides may only name keys that exist there (dotted for sub-tables, e.g.
``neuron.tau_mem_ms``); values are parsed as TOML and must keep the default's type.

An optional ``[model]`` table defines the neuron model in equations (see
:mod:`biosim.experiments.model_table`); its parameters become the defaults of ``[params.neuron]``.
"""

from __future__ import annotations

import copy
import os
import tomllib
from pathlib import Path

from biosim.errors import BiosimError, unknown
from biosim.experiments.model_table import model_from_table, neuron_defaults

__all__ = ["models_dir", "list_models", "load_model", "apply_overrides"]


def models_dir() -> Path:
    """``$BIOSIM_MODELS`` if set, else the ``models/`` folder beside the package."""
    env = os.environ.get("BIOSIM_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "models"


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            spec = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise BiosimError(f"{path}: invalid TOML ({exc})") from None
    for key in ("description", "runner", "params"):
        if key not in spec:
            raise BiosimError(f"{path}: missing required key '{key}'")
    return spec


def list_models() -> dict[str, str]:
    """Every runnable name with its one-line description."""
    return {p.stem: _read(p)["description"] for p in sorted(models_dir().glob("*.toml"))}


def load_model(name: str) -> dict:
    """The model spec of ``name`` (closest valid name in the error)."""
    path = models_dir() / f"{name}.toml"
    if not path.is_file():
        raise unknown("run name", name, [p.stem for p in models_dir().glob("*.toml")])
    spec = _read(path)
    spec["name"] = name
    if "model" in spec:
        _add_model_defaults(spec, path)
    return spec


def _add_model_defaults(spec: dict, path: Path) -> None:
    """Check the ``[model]`` table (building the model) and fill ``[params.neuron]`` with its parameters."""
    if spec["runner"] != "simulation":
        raise BiosimError(f"{path}: a [model] table needs runner = \"simulation\" (this run's runner is "
                          f"'{spec['runner']}')")
    defaults = neuron_defaults(model_from_table(spec["model"], str(path)))
    neuron = spec["params"].setdefault("neuron", {})
    if not isinstance(neuron, dict):
        raise BiosimError(f"{path}: [params] neuron must be a table ([params.neuron])")
    for key in neuron:
        if key not in defaults:
            raise BiosimError(f"{path}: {unknown('key in [params.neuron]', key, defaults)}")
    spec["params"]["neuron"] = {**defaults, **neuron}


def _parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string


def _check_type(key: str, default, value):
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
            ok = value.is_integer()
            value = int(value)
        elif ok and isinstance(default, float):
            value = float(value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise BiosimError(f"--set {key}: expected a {type(default).__name__} like {default!r}, got {value!r}")
    return value


def apply_overrides(params: dict, sets: list[str]) -> dict:
    """Return a copy of ``params`` with ``key=value`` overrides applied and type-checked."""
    params = copy.deepcopy(params)
    for item in sets:
        if "=" not in item:
            raise BiosimError(f"--set expects key=value, got '{item}'")
        key, text = (s.strip() for s in item.split("=", 1))
        table, path = params, key.split(".")
        for part in path[:-1]:
            if not isinstance(table.get(part), dict):
                raise unknown("--set key", key, _flat_keys(params))
            table = table[part]
        leaf = path[-1]
        if leaf not in table or isinstance(table[leaf], dict):
            raise unknown("--set key", key, _flat_keys(params))
        table[leaf] = _check_type(key, table[leaf], _parse_value(text))
    return params


def _flat_keys(params: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in params.items():
        keys += _flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k]
    return keys
