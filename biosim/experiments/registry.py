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
import math
import os
import re
import tomllib
from pathlib import Path

from biosim.errors import BiosimError, unknown
from biosim.experiments.model_table import model_from_table, neuron_defaults

__all__ = ["models_dir", "list_models", "load_model", "apply_overrides", "describe_keys", "format_value", "as_typed"]


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
    for key in _flat_keys(spec["params"]) if isinstance(spec["params"], dict) else ():
        value = spec["params"]
        for part in key.split("."):
            value = value[part]
        if _not_finite(value) is not None:
            raise BiosimError(f"{path}: {key} = {format_value(value)} is not a finite number")
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


def _check_type(key: str, default, value, text: str):
    bad = _not_finite(value)
    if bad is not None:
        raise BiosimError(f"--set {key}={text}: {format_value(bad)} is not a finite number")
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
            ok = value.is_integer()
            value = int(value) if ok else value
        elif ok and isinstance(default, float):
            value = float(value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise BiosimError(f"--set {key}={text}: expected {_KIND.get(type(default), 'a ' + type(default).__name__)} "
                          f"like {format_value(default)}")
    return value


#: how a value of each TOML type is called in an error message
_KIND = {bool: "true or false", int: "a whole number", float: "a number", str: "a text in quotes or a bare word",
         list: "a list", dict: "a table"}


def format_value(value) -> str:
    """``value`` as it is written in a TOML file (and after ``--set``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return repr(value)


def _not_finite(value):
    """The first NaN or infinite number inside ``value`` (a number, list or table), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        bad = _not_finite(item)
        if bad is not None:
            return bad
    return None


def apply_overrides(params: dict, sets: list[str]) -> dict:
    """Return a copy of ``params`` with ``key=value`` overrides applied and type-checked."""
    params = copy.deepcopy(params)
    for item in sets:
        if "=" not in item:
            raise BiosimError(f"--set {item}: expected key=value, e.g. --set bio_time_s=2")
        key, text = (s.strip() for s in item.split("=", 1))
        table, path = params, key.split(".")
        for part in path[:-1]:
            if not isinstance(table.get(part), dict):
                raise unknown("--set key", key, _flat_keys(params))
            table = table[part]
        leaf = path[-1]
        if leaf not in table or isinstance(table[leaf], dict):
            raise unknown("--set key", key, _flat_keys(params))
        table[leaf] = _check_type(key, table[leaf], _parse_value(text), text)
    return params


def _flat_keys(params: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in params.items():
        keys += _flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k]
    return keys


_TABLE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=\s*(.*?)\s*$")


def _trailing_comment(value_text: str) -> str:
    """The comment after a TOML value on its line ('' when none): the text after the first ``#``
    that is not inside the value (a string may hold one)."""
    for pos in (m.start() for m in re.finditer("#", value_text)):
        try:
            tomllib.loads(f"v = {value_text[:pos]}")
        except tomllib.TOMLDecodeError:
            continue
        return value_text[pos + 1:].strip()
    return ""


def key_meanings(path: Path) -> dict[str, str]:
    """The one-line meaning of each ``[params]`` key of a model file: the comment after its value
    (``n_exc = 100  # excitatory neurons``), keyed as ``--set`` names it (``neuron.tau_mem_ms``)."""
    meanings, prefix = {}, None
    for line in path.read_text().splitlines():
        table = _TABLE.match(line)
        if table:
            name = table.group(1).strip()
            prefix = "" if name == "params" else (name[len("params."):] + "." if name.startswith("params.") else None)
            continue
        key = _KEY.match(line)
        if key and prefix is not None:
            meanings[prefix + key.group(1)] = _trailing_comment(key.group(2))
    return meanings


def describe_keys(name: str) -> list[tuple[str, object, str]]:
    """Every ``--set`` key of the named run as ``(key, default, meaning)``, in the file's order;
    the meaning is the comment after the key's value in ``models/NAME.toml`` ('' when it has none;
    keys filled in from a ``[model]`` table are described as the model's parameters)."""
    spec = load_model(name)
    meanings = key_meanings(models_dir() / f"{name}.toml")
    out = []
    for key in _flat_keys(spec["params"]):
        value = spec["params"]
        for part in key.split("."):
            value = value[part]
        meaning = meanings.get(key, "")
        if not meaning and "model" in spec and key.startswith("neuron."):
            field = key[len("neuron."):]
            written = spec["model"].get("parameters", {}) if isinstance(spec["model"], dict) else {}
            name = max((n for n in written if field == n or field.startswith(n + "_")), key=len, default=field)
            meaning = f"{name} of the [model] equations" + (f" (written {written[name]!r})" if name in written else "")
        out.append((key, value, meaning))
    return out


def as_typed(message: str, sets) -> str:
    """``message`` with a ``key=value`` override's value quoted as it was typed where the message
    quotes it after conversion: ``dt_ms = -1.0 is out of range`` for ``--set dt_ms=-1`` reads
    ``dt_ms = -1 is out of range`` (the key may carry a prefix there, ``LIF.tau_mem_ms = 0.0``)."""
    for item in sets:
        key, _, text = (part.strip() for part in str(item).partition("="))
        leaf = key.rsplit(".", 1)[-1]
        for converted in _conversions(text):
            pattern = rf"(?<!\w){re.escape(leaf)} = {re.escape(converted)}(?![\w.])"
            if converted != text and re.search(pattern, message):
                message = re.sub(pattern, lambda _: f"{leaf} = {text}", message)
                break
    return message


def _conversions(text: str) -> list[str]:
    """How a typed number may read once converted (``-1`` -> ``-1.0``, ``1e3`` -> ``1000.0`` or ``1000``)."""
    try:
        value = float(text)
    except ValueError:
        return []
    out = [repr(value)]
    if value.is_integer() and abs(value) < 1e16:
        out.append(repr(int(value)))
    return out
