"""Training checkpoints as safetensors files (never pickles), written atomically.

A checkpoint holds named tensors (model weights ``model.*``, optimiser state ``optim.*``, RNG
states ``rng.*``) and one JSON metadata blob under the safetensors metadata key ``biosim``: the
format name and version, counters (epoch, batch, step), the optimiser's hyper-parameters, the
learning-rate schedule, history, and a SHA-256 digest of every tensor's bytes, so that a file
damaged anywhere (truncated, overwritten) is refused with one clear line instead of loading
garbage.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import torch

from biosim.errors import BiosimError
from biosim.files import atomic_binary

__all__ = ["FORMAT", "VERSION", "save_checkpoint", "load_checkpoint", "pack_training_state",
           "unpack_training_state", "save_weights", "load_weights"]

FORMAT = "biosim-checkpoint"
VERSION = 1


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write ``tensors`` and the JSON-able ``meta`` to ``path`` atomically (safetensors).

    Parameters
    ----------
    path : path-like
        Destination file (its folder must exist).
    tensors : dict of str to torch.Tensor
        Named CPU tensors (copied to contiguous memory).
    meta : dict
        JSON-serialisable metadata; stored with the format, version and a digest.
    """
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    blob = dict(meta, format=FORMAT, version=VERSION, sha256=_digest(tensors))
    data = save(tensors, metadata={"biosim": json.dumps(blob)})
    with atomic_binary(path) as fh:
        fh.write(data)


def _fail(path, why: str) -> BiosimError:
    return BiosimError(f"checkpoint {path} is damaged or not a biosim checkpoint ({why}); "
                       "delete it and start the run again")


def load_checkpoint(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by :func:`save_checkpoint`; check its format and digest.

    Returns
    -------
    (dict, dict)
        The tensors and the metadata.

    Raises
    ------
    BiosimError
        When the file is missing, truncated, altered or of another format (one line).
    """
    from safetensors.torch import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BiosimError(f"no checkpoint at {path}") from None
    except OSError as exc:
        raise BiosimError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    try:
        tensors = load(data)
        (n,) = struct.unpack("<Q", data[:8])
        meta = json.loads(json.loads(data[8:8 + n])["__metadata__"]["biosim"])
    except Exception as exc:  # safetensors raises its own error types; any failure means damage
        raise _fail(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(path, "unknown format")
    if meta.get("version") != VERSION:
        raise _fail(path, f"version {meta.get('version')}, this biosim reads {VERSION}")
    if meta.get("sha256") != _digest(tensors):
        raise _fail(path, "checksum mismatch")
    return tensors, meta


def pack_training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Tensors and metadata of the model, the optimiser and torch's RNG state.

    Returns
    -------
    (dict, dict)
        ``model.<name>``, ``optim.<param>.<key>``, ``rng.torch`` tensors, and the optimiser's
        non-tensor state (``param_groups``) for the metadata.
    """
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict = {}
    for idx, st in opt["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"optimizer": {"param_groups": opt["param_groups"], "scalars": scalars}}
    return tensors, meta


def unpack_training_state(tensors: dict, meta: dict, model: torch.nn.Module,
                          optimizer: torch.optim.Optimizer, path="checkpoint") -> None:
    """Load what :func:`pack_training_state` saved into ``model`` and ``optimizer`` (in place)."""
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_sd, strict=True)
    except RuntimeError as exc:
        raise BiosimError(f"checkpoint {path} does not fit this network ({str(exc).splitlines()[0]}); "
                          "was the run's configuration changed?") from None
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, extra in meta["optimizer"].get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(extra)
    groups = meta["optimizer"]["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as exc:
        raise BiosimError(f"checkpoint {path}: optimiser state does not fit ({exc})") from None
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])


def save_weights(path, model: torch.nn.Module, meta: dict | None = None) -> None:
    """Save only the model's weights (``model.*``) with ``meta``, atomically."""
    save_checkpoint(path, {f"model.{k}": v for k, v in model.state_dict().items()}, meta or {})


def load_weights(path, model: torch.nn.Module) -> dict:
    """Load weights saved by :func:`save_weights` into ``model``; return the metadata."""
    tensors, meta = load_checkpoint(path)
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_sd, strict=True)
    except RuntimeError as exc:
        raise BiosimError(f"weights in {path} do not fit this network ({str(exc).splitlines()[0]})") from None
    return meta
