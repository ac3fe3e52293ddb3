"""The ``train`` runner: train a spiking classifier with surrogate gradients, test it, plot it.

A model file (``models/lif_mnist.toml`` and friends) gives every setting under ``[params]``:
``data`` and the tables ``encoder``, ``net``, ``neuron``, ``surrogate``, ``readout``, ``learn`` and
``augment``. The runner loads the data, builds the network (biosim's layers, or norse's with
``learn.backend = "norse"``), trains it with :func:`biosim.learn.train.fit`, evaluates the
best-on-validation weights on the test set, and writes ``learning_curves.png``, ``raster.png`` and
``confusion_matrix.png`` beside the weights and checkpoints.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from biosim.errors import BiosimError
from biosim.files import atomic_savefig
from biosim.network.compile import available_bytes
from biosim.learn.network import build_from_params as _build_snn_from_params
from biosim.learn.network import param as _get
from biosim.learn.network import param_ints as _int_list
from biosim.learn.network import param_table as _table
from biosim.reports.learn_figures import (confusion_figure, confusion_matrix, hidden_raster_figure,
                                          learning_curves_figure)

_log = logging.getLogger(__name__)  # notes for the user; the CLI shows them on stderr

__all__ = ["run_train", "build_from_params", "train_config_from", "check_training_settings",
           "estimate_training_bytes"]

def augment_shift(shift_px: int, image_size: int) -> int:
    """The shift in pixels for an image of ``image_size``: ``augment.shift_px`` is given for
    28x28 digits and scales with the image, rounded down (so 8x8 digits are not shifted by 2)."""
    return shift_px * image_size // 28


def train_config_from(params: dict, seed: int, image_size: int = 28):
    """The :class:`~biosim.learn.train.TrainConfig` of a run's ``[params]`` (images of ``image_size``)."""
    from biosim.learn.train import SCHEDULES, TrainConfig

    learn, augment = _table(params, "learn"), _table(params, "augment")
    shift = augment_shift(_get(augment, "shift_px", int, low=0, high=8), image_size)
    return TrainConfig(
        epochs=_get(learn, "epochs", int, low=1), batch_size=_get(learn, "batch_size", int, low=1),
        lr=_get(learn, "lr", positive=True), lr_schedule=_get(learn, "lr_schedule", str, choices=SCHEDULES),
        lr_step_epochs=_get(learn, "lr_step_epochs", int, low=1), lr_gamma=_get(learn, "lr_gamma", low=0, high=1),
        weight_decay=_get(learn, "weight_decay", low=0), shift_px=shift,
        threads=_get(learn, "threads", int, low=0, high=1024),
        eval_batch_size=_get(learn, "eval_batch_size", int, low=1), seed=seed)


def build_from_params(params: dict, input_shape: tuple[int, int, int], n_classes: int, generator=None):
    """Network, encoder function, read-out and a description, from a run's ``[params]``.

    Spiking networks come from :func:`biosim.learn.network.build_from_params`; ``net.kind`` mlp |
    cnn | gru | lstm gives a non-spiking baseline. The caller seeds torch first (the weights are
    drawn from torch's global generator).

    Returns
    -------
    (torch.nn.Module, callable, Readout, dict)
        The network, ``encode(x) -> (T, B, ...)``, the read-out and facts for the metrics
        (``steps``, ``dt_ms``, ``backend``, ``notes``).
    """
    net_kind = params.get("net", {}).get("kind", "snn") if isinstance(params.get("net"), dict) else "snn"
    if net_kind != "snn":
        return _build_ann_from_params(params, input_shape, n_classes, generator)
    return _build_snn_from_params(params, input_shape, n_classes, generator=generator)


def _build_ann_from_params(params: dict, input_shape: tuple[int, int, int], n_classes: int, generator=None):
    """:func:`build_from_params` for the non-spiking baselines (``net.kind`` mlp | cnn | gru | lstm).

    Their model files hold ``[params.encoder]`` (``kind`` image | sequence, ``gain``),
    ``[params.net]`` (``kind``, ``conv_channels``, ``kernel_size``, ``hidden``, ``dropout``),
    ``[params.readout]`` (``label_smoothing``), ``learn`` and ``augment`` as the spiking runs do.
    """
    from functools import partial

    from biosim.bridge.ann import ANN_KINDS, build_ann, image_encoder, sequence_encoder
    from biosim.learn.readouts import Readout

    enc, net, ro = _table(params, "encoder"), _table(params, "net"), _table(params, "readout")
    kind = _get(net, "kind", str, choices=("snn", *ANN_KINDS))
    enc_kind = _get(enc, "kind", str, choices=("image", "sequence"))
    if enc_kind == "sequence":
        encode = partial(sequence_encoder, gain=_get(enc, "gain", low=0))
        step_shape, steps = (input_shape[0] * input_shape[1],), input_shape[2]
    else:
        encode, step_shape, steps = image_encoder, input_shape, 1
    model = build_ann(kind, step_shape, n_classes, hidden=_int_list(net, "hidden", "net"),
                      conv_channels=_int_list(net, "conv_channels", "net") if "conv_channels" in net else (),
                      kernel_size=_get(net, "kernel_size", int, low=1) if "kernel_size" in net else 5,
                      dropout=_get(net, "dropout", low=0, high=0.99), generator=generator)
    readout = Readout(kind="mean_membrane", label_smoothing=_get(ro, "label_smoothing", low=0, high=0.99))
    facts = {"steps": steps, "dt_ms": 1.0, "backend": "torch", "encoder": enc_kind, "neuron": "none",
             "readout": "linear scores, cross-entropy", "notes": [], "model_kind": kind}
    return model, encode, readout, facts


def run_train(spec: dict, params: dict, seed: int, backend: str, out_dir: Path, progress: bool = True,
              resume: bool = False) -> dict:
    """Train the named spiking classifier; write weights, checkpoints and plots into ``out_dir``.

    Parameters
    ----------
    spec : dict
        The model file (``name``, ``description``, ``runner``, ``params``).
    params : dict
        ``[params]`` after ``--set`` overrides.
    seed : int
        Seed of the weights, sample order, augmentation, dropout and input spikes.
    backend : str
        The engine's simulation backend (unused: training runs in torch; see ``learn.backend``).
    out_dir : pathlib.Path
        Run folder.
    progress : bool
        Progress bar on stderr.
    resume : bool
        Continue from ``out_dir/checkpoint.safetensors``.

    Returns
    -------
    dict
        The metrics. ``test_accuracy``: test accuracy of the best-on-validation weights (the
        honest number); ``val_accuracy``: their validation accuracy; ``best_test_accuracy_seen``:
        the highest per-epoch test accuracy (optimistic, for reference); ``final_test_accuracy``:
        the last epoch's weights. ``train_seconds`` (training with per-epoch evaluation, summed
        over resumed sessions), ``samples_per_s`` (training samples per second of optimiser
        steps), ``spikes_per_sample`` (hidden and spiking-output spikes per test sample over all
        steps), sizes, settings and the per-epoch ``history``.
    """
    import torch

    from biosim.datasets import load
    from biosim.datasets.catalog import DATASETS
    from biosim.learn.checkpoint import load_weights
    from biosim.learn.network import count_params
    from biosim.learn.train import BEST, Task, TorchSettings, evaluate, fit

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    data_name = _get(params, "data", str, choices=DATASETS)
    train_config_from(params, seed)  # check the settings before loading data
    ds = load(data_name)
    sizes = ds.sizes
    _log.info(f"data: {ds.describe()} ({sizes['train'] + sizes['val'] + sizes['test']} samples; from {ds.source})")
    h, w = ds.image_shape
    cfg = train_config_from(params, seed, min(h, w))
    check_training_settings(params)
    need, parts = estimate_training_bytes(params, (h, w), ds.n_classes)
    have = available_bytes()
    if need > have:
        raise BiosimError(f"network too big for this machine: training needs about {need / 2**30:.1f} GiB ({parts}), "
                          f"{have / 2**30:.1f} GiB available; use smaller layers (net.hidden, net.conv_channels), "
                          f"a smaller learn.batch_size or fewer encoder.steps")
    if cfg.shift_px != params["augment"]["shift_px"]:
        _log.info(f"note: augment.shift_px = {params['augment']['shift_px']} (for 28x28) is {cfg.shift_px} px "
                  f"for {h}x{w} images")
    model, encode, readout, facts = build_from_params(params, (1, h, w), ds.n_classes,
                                                      generator=torch.Generator().manual_seed(seed))
    for note in facts["notes"]:
        _log.info(f"note: {note}")
    task = Task(ds.x_train, ds.y_train, ds.x_val, ds.y_val, ds.x_test, ds.y_test, encode, readout)
    if resume:
        _refuse_finished(out_dir)
        _log.info(f"resuming the run in {out_dir}")
    result = fit(model, task, cfg, out_dir, resume=resume, progress=progress,
                 resume_hint=f"biosim run {spec['name']} --resume {out_dir}")

    # final weights, then the best-on-validation weights
    with TorchSettings(cfg.resolved_threads()):
        final_test = evaluate(model, ds.x_test, ds.y_test, encode, readout, cfg.eval_batch_size, seed=seed)
        best_meta = load_weights(out_dir / BEST, model)
        val = evaluate(model, ds.x_val, ds.y_val, encode, readout, cfg.eval_batch_size, seed=seed)
        test = evaluate(model, ds.x_test, ds.y_test, encode, readout, cfg.eval_batch_size, seed=seed,
                        count_spikes=True)
        raster = _hidden_spikes(model, encode, ds.x_test[:1], seed) if facts["model_kind"] == "snn" else None
        bridge = _bridge_metrics(model, ds, encode, readout, cfg, seed)
    hist = result.history
    matrix = confusion_matrix(ds.y_test, test["predictions"], ds.n_classes)
    title = f"{spec['name']} on {data_name} (seed {seed}, {facts['backend']})"
    atomic_savefig(learning_curves_figure(hist, title, result.best_epoch), out_dir / "learning_curves.png")
    digit = f"test sample #0 (true class {int(ds.y_test[0])}, predicted class {int(test['predictions'][0])})"
    if raster is not None:
        atomic_savefig(hidden_raster_figure(ds.x_test[0], raster, facts["dt_ms"], f"last hidden layer, {digit}"),
                       out_dir / "raster.png")
    atomic_savefig(confusion_figure(matrix, f"{title}\ntest accuracy {100 * test['accuracy']:.2f} %"),
                   out_dir / "confusion_matrix.png")
    n_train_total = result.samples
    return {
        "test_accuracy": test["accuracy"],
        "val_accuracy": val["accuracy"],
        "best_epoch": result.best_epoch,
        "best_test_accuracy_seen": max(hist["test_accuracy"]),
        "final_test_accuracy": final_test["accuracy"],
        "train_seconds": result.train_seconds,
        "step_seconds": result.step_seconds,
        "samples_per_s": n_train_total / result.step_seconds if result.step_seconds else float("nan"),
        "total_wall_s": time.perf_counter() - t_start,
        "epochs": cfg.epochs,
        "dataset": data_name,
        "n_train": sizes["train"],
        "n_val": sizes["val"],
        "n_test": sizes["test"],
        "n_params": count_params(model),
        "spikes_per_sample": (test["spikes_per_sample"] if facts["model_kind"] == "snn"
                              else bridge["spikes_per_sample"]),
        "model_kind": facts["model_kind"],
        **{k: v for k, v in bridge.items() if k != "spikes_per_sample"},
        "steps": facts["steps"],
        "encoder": facts["encoder"],
        "neuron": facts["neuron"],
        "readout": facts["readout"],
        "learn_backend": facts["backend"],
        "threads": cfg.resolved_threads(),
        "shift_px": cfg.shift_px,
        "seed": seed,
        "resumed": result.resumed,
        "notes": {"backend": facts["notes"]},
        "hidden_spikes_per_sample": {"per_stage": test["hidden_spikes_per_sample"]},
        "history": hist,
        "confusion_matrix": {"rows_true_cols_predicted": matrix.tolist()},
        "best_weights": {"file": BEST, "epoch": best_meta.get("best", {}).get("epoch")},
    }


def _number(table, key):
    value = table.get(key) if isinstance(table, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def check_training_settings(params: dict) -> None:
    """Refuse a spiking network whose reset lies at or above its threshold, and warn (once per run) when
    the step ``neuron.dt_ms`` is longer than the shortest time constant the network uses. Values of
    the wrong type are left to the builder, which names them."""
    net, neuron, readout = (params.get(k) if isinstance(params.get(k), dict) else {}
                            for k in ("net", "neuron", "readout"))
    if net.get("kind", "snn") != "snn":
        return
    v_th, v_reset = _number(neuron, "v_th"), _number(neuron, "v_reset")
    if v_th is not None and v_reset is not None and v_reset >= v_th:
        raise BiosimError(f"neuron.v_reset = {v_reset!r} is at or above neuron.v_th = {v_th!r}: a spike would not "
                          f"lower the membrane; v_reset must be below v_th")
    kind = net.get("neuron", "lif")
    taus = {"neuron.tau_mem_ms": _number(neuron, "tau_mem_ms")}
    if kind == "cuba":
        taus["neuron.tau_syn_ms"] = _number(neuron, "tau_syn_ms")
    if kind == "alif":
        taus["neuron.tau_adapt_ms"] = _number(neuron, "tau_adapt_ms")
    if readout.get("kind") in ("max_membrane", "mean_membrane"):
        taus["readout.tau_mem_ms"] = _number(readout, "tau_mem_ms")
        if (_number(readout, "tau_syn_ms") or 0) > 0:
            taus["readout.tau_syn_ms"] = _number(readout, "tau_syn_ms")
    taus = {k: v for k, v in taus.items() if v is not None and v > 0}
    dt = _number(neuron, "dt_ms")
    if taus and dt is not None and dt > min(taus.values()):
        key = min(taus, key=taus.get)
        _log.warning(f"warning: neuron.dt_ms = {dt:g} is longer than {key} = {taus[key]:g}; the network may "
                     f"mean little (use neuron.dt_ms <= {taus[key]:g})")


def estimate_training_bytes(params: dict, image_shape: tuple[int, int], n_classes: int) -> tuple[int, str]:
    """About how much memory training ``params`` takes: weights with their gradients and two Adam
    moments (float32), and the activations backpropagation through time keeps (a few tensors per
    neuron, step and sample of a batch). Returns the bytes and a short breakdown. An estimate to refuse
    a network that cannot fit before torch allocates, not a measurement."""
    net = params.get("net") if isinstance(params.get("net"), dict) else {}
    enc = params.get("encoder") if isinstance(params.get("encoder"), dict) else {}
    learn = params.get("learn") if isinstance(params.get("learn"), dict) else {}

    def ints(key):
        value = net.get(key, [])
        return [v for v in value if isinstance(v, int) and v > 0] if isinstance(value, list) else []

    h, w = image_shape
    kind = net.get("kind", "snn")
    steps = (_number(enc, "steps") or 1) if kind == "snn" else 1
    if enc.get("kind") == "sequence":
        steps, n_in = w, h
    else:
        n_in = h * w
    k = _number(net, "kernel_size") or 5
    weights, neurons, c_in = 0, 0, 1
    for c in ints("conv_channels"):
        weights += c_in * c * k * k + c
        neurons += c * h * w  # the convolution's output before pooling
        h, w, c_in = max(1, h // 2), max(1, w // 2), c
        n_in = c * h * w
    gates = {"gru": 3, "lstm": 4}.get(kind, 1)
    for n in ints("hidden"):
        weights += gates * (n_in * n + n) + (gates * n * n if gates > 1 or net.get("neuron") == "rlif" else 0)
        neurons += gates * n
        n_in = n
    weights += n_in * n_classes + n_classes
    neurons += n_classes
    batch = max(_number(learn, "batch_size") or 1, 1)
    eval_batch = max(_number(learn, "eval_batch_size") or 1, 1)
    state = 16 * weights  # float32 weights, gradients, Adam's two moments
    kept = 4 * 4 * batch * steps * neurons  # about four float32 tensors per neuron and step for the backward pass
    evaluation = 4 * 2 * eval_batch * steps * neurons
    need = int(state + kept + evaluation)
    parts = (f"{weights / 1e6:.3g} million weights with their gradients and optimiser state {state / 2**30:.1f} GiB, "
             f"activations of a batch of {batch} over {steps} steps kept for backpropagation {kept / 2**30:.1f} GiB")
    return need, parts


def _refuse_finished(out_dir: Path) -> None:
    """A :class:`BiosimError` when the run in ``out_dir`` has finished (its checkpoint says so and
    its ``metrics.json`` is written): resuming it would only redo the evaluation."""
    from biosim.learn.checkpoint import load_checkpoint
    from biosim.learn.train import CHECKPOINT

    if not (out_dir / CHECKPOINT).exists() or not (out_dir / "metrics.json").exists():
        return
    _, meta = load_checkpoint(out_dir / CHECKPOINT)
    if meta.get("state", {}).get("finished"):
        raise BiosimError(f"--resume: the run in {out_dir} has finished (see its metrics.json); nothing to resume")


def _hidden_spikes(model, encode, x: np.ndarray, seed: int) -> np.ndarray:
    """Spikes ``(T, N)`` of the last hidden stage for one image ``x`` ``(1, H, W)``."""
    import torch

    from biosim.learn.train import _to_input

    spikes: dict[int, list] = {}

    def record(stage, z):
        spikes.setdefault(stage, []).append(z.reshape(z.shape[0], -1)[0].numpy().copy())

    was = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model(encode(_to_input(x)), record=record)
    finally:
        model.train(was)
    if not spikes:
        return np.zeros((1, 1))
    return np.stack(spikes[max(spikes)])


def _bridge_metrics(model, ds, encode, readout, cfg, seed: int) -> dict:
    """NeuroBench-style metrics of the selected weights on the test set (see :mod:`biosim.bridge.metrics`)."""
    from biosim.bridge.metrics import ENERGY_ASSUMPTIONS, latency_ms, static_metrics, workload_metrics
    from biosim.learn.readouts import scores

    work = workload_metrics(model, ds.x_test, ds.y_test, encode, lambda out: scores(out, readout.kind),
                            spiking_output=readout.spiking, batch_size=cfg.eval_batch_size, seed=seed)
    lat = latency_ms(model, ds.x_test, encode)
    syn = work["synops"]
    return {
        **static_metrics(model),
        "activation_sparsity": work["activation_sparsity"],
        "spikes_per_sample": work["spikes_per_sample"],
        "spikes_per_layer": work["spikes_per_layer"],
        "synops_effective_acs": syn["effective_acs"],
        "synops_effective_macs": syn["effective_macs"],
        "synops_dense": syn["dense"],
        "energy_estimate_uJ": work["energy_estimate_uJ"],
        "latency_ms_per_sample": lat["median"],
        "synops": syn,
        "latency": {**lat, "unit": "ms", "batch": 1, "threads": cfg.resolved_threads()},
        "metric_notes": {"energy": ENERGY_ASSUMPTIONS,
                         "metrics_accuracy": work["accuracy"],
                         "definitions": "see biosim.bridge.metrics.METRIC_DEFINITIONS"},
    }
