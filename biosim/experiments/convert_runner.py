"""The ``convert`` runner: train a ReLU MLP, convert it to a rate-coded SNN, run that in the engine.

A model file (``models/convert_mnist.toml``) holds the ``train`` runner's tables for a
``net.kind = "mlp"`` baseline plus ``[params.convert]``: ``percentile`` (data-based normalisation,
99.9), ``steps`` (the step counts to report), ``calib_samples`` (training images used to pick the
layer scales) and ``test_samples`` (0: the whole test set). The ANN is trained by
:func:`biosim.experiments.train_runner.run_train` (its weights, plots and metrics land in the same
folder); its best-on-validation weights are converted by :func:`biosim.bridge.convert.convert_mlp`
and run by the engine (:mod:`biosim.bridge.nir_engine`). Writes ``accuracy_vs_steps.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from biosim.bridge.convert import convert_mlp, snn_accuracy_vs_steps
from biosim.errors import BiosimError
from biosim.files import atomic_savefig
from biosim.reports.figures import _figure as _new_figure

_log = logging.getLogger(__name__)  # notes for the user; the CLI shows them on stderr

__all__ = ["run_convert"]


def _convert_settings(params: dict) -> dict:
    conv = params.get("convert")
    if not isinstance(conv, dict):
        raise BiosimError("the run's parameters have no [params.convert] table")
    steps = conv.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, int) and not isinstance(s, bool)
                                                            and 1 <= s <= 100000 for s in steps):
        raise BiosimError(f"convert.steps = {steps!r} must be a non-empty list of integers >= 1, e.g. [10, 100]")
    pct = conv.get("percentile")
    if not isinstance(pct, (int, float)) or isinstance(pct, bool) or not 0 < pct <= 100:
        raise BiosimError(f"convert.percentile = {pct!r} is out of range (0, 100]")
    out = {"steps": sorted(set(steps)), "percentile": float(pct)}
    for key in ("calib_samples", "test_samples"):
        value = conv.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BiosimError(f"convert.{key} = {value!r} must be an integer >= 0 (0: all)")
        out[key] = value
    if params.get("net", {}).get("kind") != "mlp":
        raise BiosimError(f"convert runs need net.kind = 'mlp', got {params.get('net', {}).get('kind')!r}")
    return out


def _figure(steps: list[int], snn: dict, ann: float, title: str):
    fig = _new_figure(figsize=(5.5, 3.9), layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, [100 * snn[s] for s in steps], "o-", color="C0", label="converted SNN (engine)")
    ax.axhline(100 * ann, color="C1", ls="--", label=f"ANN {100 * ann:.2f} %")
    ax.set_xscale("log")
    ax.set_xticks(steps, [str(s) for s in steps], minor=False)  # the step counts run, not powers of ten
    ax.minorticks_off()
    ax.set_xlabel("simulation time steps per sample (count)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # off the data
    ax.set_title(title, fontsize=9)
    return fig


def run_convert(spec: dict, params: dict, seed: int, backend: str, out_dir: Path, progress: bool = True) -> dict:
    """Train the ANN of ``params``, convert it, and report the SNN's accuracy against its steps.

    Parameters
    ----------
    spec : dict
        The model file (``name``, ``description``, ``runner``, ``params``).
    params : dict
        ``[params]`` after ``--set`` overrides.
    seed : int
        Seed of the ANN's training (the conversion and the engine run are deterministic).
    backend : str
        The engine's simulation backend (unused: the converted net runs in the NIR executor).
    out_dir : pathlib.Path
        Run folder.
    progress : bool
        Progress bar on stderr while training.

    Returns
    -------
    dict
        ``ann_accuracy`` and ``snn_accuracy`` (``{steps: accuracy}``) on the same test samples,
        ``loss_pp_at_100`` (ANN minus SNN at 100 steps, percentage points; None unless 100 is in
        ``convert.steps``), ``snn_spikes_per_sample`` at the longest run, the settings, and the
        ANN's training metrics under ``ann``.
    """
    import torch

    from biosim.datasets import load
    from biosim.experiments.train_runner import build_from_params, run_train
    from biosim.learn.checkpoint import load_weights
    from biosim.learn.train import BEST

    conv = _convert_settings(params)
    out_dir = Path(out_dir)
    ann_metrics = run_train(spec, params, seed, backend, out_dir, progress=progress)
    ds = load(params["data"])
    h, w = ds.image_shape
    model, _, _, _ = build_from_params(params, (1, h, w), ds.n_classes)
    load_weights(out_dir / BEST, model)
    model.eval()

    def flat(a, n):
        a = a[:n] if n else a
        return a.reshape(len(a), -1).astype(np.float32) / np.float32(255.0)

    x_cal, x_test = flat(ds.x_train, conv["calib_samples"]), flat(ds.x_test, conv["test_samples"])
    y_test = ds.y_test[:len(x_test)]
    with torch.no_grad():
        ann_pred = model(torch.from_numpy(x_test).reshape(1, len(x_test), 1, h, w))[0].argmax(1).numpy()
    ann = float((ann_pred == y_test).mean())
    graph = convert_mlp(model, x_cal, percentile=conv["percentile"])
    res = snn_accuracy_vs_steps(graph, x_test, y_test, steps=conv["steps"])
    snn = {s: res[s] for s in conv["steps"]}
    title = f"{spec['name']}: ANN -> SNN on {params['data']} ({len(x_test)} test samples, seed {seed})"
    atomic_savefig(_figure(conv["steps"], snn, ann, title), out_dir / "accuracy_vs_steps.png")
    for s in conv["steps"]:
        _log.info(f"  {s:>6} steps: SNN {100 * snn[s]:.2f} %  (ANN {100 * ann:.2f} %)")
    return {
        "ann_accuracy": ann,
        "snn_accuracy": {str(s): a for s, a in snn.items()},
        "loss_pp_at_100": 100 * (ann - snn[100]) if 100 in snn else None,
        "snn_spikes_per_sample": res["spikes_per_sample"],
        "n_test": len(x_test),
        "n_calib": len(x_cal),
        "percentile": conv["percentile"],
        "steps": conv["steps"],
        "seed": seed,
        "method": "rate conversion, IF neurons with reset by subtraction, data-based normalisation "
                  "(Rueckauer et al. 2017); analog image as constant input current; see biosim.bridge.convert",
        "ann": {k: v for k, v in ann_metrics.items() if k not in ("history", "confusion_matrix")},
    }
