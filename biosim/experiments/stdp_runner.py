"""The ``stdp`` runner: unsupervised STDP learning of MNIST digits on the engine (Diehl & Cook 2015).

The network and protocol of DESIGN.md section 5, built from the Python API like any network:
784 Poisson inputs (rate = pixel / 8 * intensity Hz) -> ``n_exc`` adaptive-threshold excitatory
neurons through plastic synapses (:func:`biosim.equations.library.diehl_cook_stdp`); each
excitatory neuron excites one inhibitory neuron, which inhibits all the other excitatory ones.
For each training image: normalise every neuron's input weights to sum ``w_sum``, show the image
``present_ms``, then ``rest_ms`` of silence; with fewer than ``min_spikes`` excitatory spikes, show
it again with the intensity raised by 1. The same network is re-run image after image: nothing is
rebuilt or recompiled.

After training, plasticity is switched off and the thresholds frozen (parameters set between runs);
each neuron is labelled with the class it answers most on the training images (never the test
images), and a test image is classified by the class whose neurons spike most on average.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from pathlib import Path

import numpy as np

from biosim.errors import BiosimError, RunInterrupted
from biosim.experiments.config import get
from biosim.files import atomic_binary, atomic_savefig
from biosim.network import snapshot
from biosim.reports.learn_figures import confusion_figure, confusion_matrix
from biosim.reports.stdp_figures import receptive_fields_figure, threshold_figure

__all__ = ["build_diehl_cook", "run_stdp", "present", "CHECKPOINT", "MODEL"]

#: The training checkpoint (the network's whole state and the position in the training images).
CHECKPOINT = "checkpoint.safetensors"

#: The learned input weights ``(n_exc, n_input)`` and adaptive thresholds (mV) after training.
MODEL = "model.safetensors"


def build_diehl_cook(n_exc: int, n_input: int, dt_ms: float, seed: int, delay_ms: float = 0.0):
    """The Diehl & Cook network; returns ``(net, handles)`` with handles ``input``, ``exc``, ``inh``,
    ``plastic`` (the input projection) and the three models."""
    from biosim.equations import library
    from biosim.network import AllToAll, Explicit, Network, OneToOne

    net = Network(dt_ms=dt_ms, seed=seed)
    # Exponential Euler for v (method=None): D&C's code uses Euler, which at dt 0.5 ms turns unstable
    # once many inhibitory neurons fire together (gi ~ 17 x hundreds): v then oscillates with a
    # growing amplitude and the whole layer fires at the refractory limit.
    exc_model, inh_model = library.diehl_cook_exc(method=None), library.diehl_cook_inh(method=None)
    stdp = library.diehl_cook_stdp()
    inp = net.poisson_group("input", n_input, 0.0)
    exc = net.population("exc", exc_model(), n_exc)
    inh = net.population("inh", inh_model(), n_exc, record_spikes=False)
    plastic = net.connect(inp, exc, synapse=stdp(), rule=AllToAll(), delay_ms=delay_ms,
                          init={"w": lambda rng, n: (rng.random(n) + 0.01) * 0.3})
    net.connect(exc, inh, "ge", weight=10.4, rule=OneToOne())
    i, j = np.nonzero(~np.eye(n_exc, dtype=bool))
    net.connect(inh, exc, "gi", weight=17.0, rule=Explicit(i, j))
    return net, {"input": inp, "exc": exc, "inh": inh, "plastic": plastic,
                 "exc_model": exc_model, "stdp": stdp}


def present(net, h: dict, image: np.ndarray, cfg: dict, normalize: bool) -> tuple[np.ndarray, int]:
    """Show one image (re-shown at a higher intensity while the excitatory layer stays nearly
    silent); returns the excitatory spike counts of the last showing and how many showings it took."""
    rates = image.reshape(-1).astype(np.float64) / 8.0
    intensity = cfg["intensity"]
    for showing in range(1, cfg["max_showings"] + 1):
        if normalize:
            net.normalize(h["plastic"], cfg["w_sum"])
        net.set_rates(h["input"], np.minimum(rates * intensity, 1e3 / net.dt_ms))
        res = net.run(cfg["present_ms"])
        counts = np.bincount(res.spikes_since(res.start_ms)["exc"][1], minlength=h["exc"].n)
        net.set_rates(h["input"], 0.0)
        net.run(cfg["rest_ms"])
        if counts.sum() >= cfg["min_spikes"]:
            break
        intensity += 1.0
    return counts, showing


def _settings(params: dict) -> dict:
    return {
        "n_exc": get(params, "n_exc", int, low=1, high=10000),
        "epochs": get(params, "epochs", int, low=1, high=1000),
        "n_train": get(params, "n_train", int, low=0),
        "n_test": get(params, "n_test", int, low=0),
        "dt_ms": get(params, "dt_ms", positive=True),
        "present_ms": get(params, "present_ms", positive=True),
        "rest_ms": get(params, "rest_ms", low=0.0),
        "intensity": get(params, "intensity", positive=True),
        "min_spikes": get(params, "min_spikes", int, low=0),
        "max_showings": get(params, "max_showings", int, low=1, high=100),
        "w_sum": get(params, "w_sum", positive=True),
        "data": get(params, "data", str),
        "checkpoint_every": get(params, "checkpoint_every", int, low=1),
    }


def assign_labels(counts: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The class each neuron answers most to, on average over the images of each class
    (``counts``: images x neurons)."""
    mean = np.zeros((n_classes, counts.shape[1]))
    for c in range(n_classes):
        sel = labels == c
        if sel.any():
            mean[c] = counts[sel].mean(axis=0)
    return np.argmax(mean, axis=0)


def classify(counts: np.ndarray, assignment: np.ndarray, n_classes: int) -> np.ndarray:
    """Per image, the class whose assigned neurons spike most on average."""
    scores = np.full((counts.shape[0], n_classes), -1.0)
    for c in range(n_classes):
        sel = assignment == c
        if sel.any():
            scores[:, c] = counts[:, sel].mean(axis=1)
    return np.argmax(scores, axis=1)


def _fields(params) -> dict:

    return dataclasses.asdict(params)


def _weight_matrix(net, h) -> np.ndarray:
    """Input weights as ``(n_exc, n_input)``."""
    i, j, w = net.weights(h["plastic"], "w")
    out = np.zeros((h["exc"].n, h["input"].n))
    out[j, i] = w
    return out


def _pass(net, h, images, cfg, normalize, desc, progress, labels=None, assignment=None, n_classes=10):
    from tqdm import tqdm

    out = np.zeros((len(images), h["exc"].n), dtype=np.int64)
    bar = tqdm(total=len(images), desc=desc, unit="img", disable=not progress, leave=False)
    correct = 0
    try:
        for k, image in enumerate(images):
            out[k], _ = present(net, h, image, cfg, normalize)
            if assignment is not None and labels is not None:
                correct += int(classify(out[k:k + 1], assignment, n_classes)[0] == labels[k])
                bar.set_postfix(acc=f"{correct / (k + 1):.3f}")
            bar.update(1)
    finally:
        bar.close()
    return out


def _save_model(path: Path, weights: np.ndarray, theta: np.ndarray, cfg: dict) -> None:

    from safetensors.numpy import save


    data = save({"input_weights": np.ascontiguousarray(weights), "theta_mv": np.ascontiguousarray(theta)},
                metadata={"biosim": json.dumps({"format": "biosim-stdp-model", "n_exc": cfg["n_exc"]})})
    with atomic_binary(path) as fh:
        fh.write(data)


def _train(net, h, images, cfg: dict, out_dir: Path, progress: bool, resume: bool, hint: str) -> tuple[float, bool]:
    """The training passes, with checkpoints; returns the training seconds (over all sessions) and
    whether this session resumed."""
    from tqdm import tqdm

    from biosim.learn.train import StopRequest

    pos = {"epoch": 0, "image": 0, "train_seconds": 0.0, "finished": False}
    if resume:
        snap, extra = snapshot.load(out_dir / CHECKPOINT) if (out_dir / CHECKPOINT).exists() else (None, None)
        if snap is None:
            raise BiosimError(f"--resume: {out_dir} has no {CHECKPOINT} (the run stopped before its first one)")
        if extra.get("finished") and (out_dir / "metrics.json").exists():
            raise BiosimError(f"--resume: the run in {out_dir} has finished (see its metrics.json); nothing to resume")
        net.restore(snap)
        pos.update(extra)
    n, total = len(images), cfg["epochs"] * len(images)

    def save_checkpoint():
        snapshot.save(out_dir / CHECKPOINT, net.snapshot(), extra=pos)

    t0, base = time.perf_counter(), pos["train_seconds"]
    with StopRequest(notice=progress, unit="image") as stop, \
            tqdm(total=total, initial=pos["epoch"] * n + pos["image"], desc="training", unit="img",
                 disable=not progress, leave=False) as bar:
        done = pos["epoch"] * n + pos["image"]
        while done < total:
            bar.set_description(f"training, epoch {pos['epoch'] + 1}/{cfg['epochs']}")
            present(net, h, images[pos["image"]], cfg, True)
            done += 1
            pos["epoch"], pos["image"] = divmod(done, n)
            bar.update(1)
            if done < total and (stop.signum is not None or done % cfg["checkpoint_every"] == 0):
                pos["train_seconds"] = base + time.perf_counter() - t0
                save_checkpoint()
                if stop.signum is not None:
                    raise RunInterrupted(f"stopped by {signal.Signals(stop.signum).name} after training image "
                                         f"{done}/{total}; checkpoint saved in {out_dir}; resume with: {hint}",
                                         exit_code=128 + stop.signum)
    pos["train_seconds"] = base + time.perf_counter() - t0
    pos["finished"] = True
    save_checkpoint()
    return pos["train_seconds"], resume


def run_stdp(spec: dict, params: dict, seed: int, backend: str, out_dir: Path, progress: bool = True,
             resume: bool = False, threads: int = 1) -> dict:
    """Train, label and test; write plots and the learned weights and thresholds
    (``model.safetensors``) into ``out_dir``; return the metrics. The engine runs each step on
    ``threads`` of Numba's threads (the same spikes, and so the same weights, whatever the number).

    During training the network's whole state is saved every ``checkpoint_every`` images, and when
    SIGINT/SIGTERM asks the run to stop (``checkpoint.safetensors``); ``resume=True`` continues
    from there to the same final weights as a run that never stopped."""
    from biosim.datasets import load

    if backend != "numba-cpu":
        raise BiosimError("stdp runs use the numba-cpu backend (the NumPy reference is far too slow for MNIST)")
    cfg = _settings(params)
    data = load(cfg["data"])
    x_train, y_train = data.x_train, data.y_train
    if cfg["n_train"]:
        x_train, y_train = x_train[:cfg["n_train"]], y_train[:cfg["n_train"]]
    x_test, y_test = (data.x_test[:cfg["n_test"]], data.y_test[:cfg["n_test"]]) if cfg["n_test"] else (data.x_test, data.y_test)
    net, h = build_diehl_cook(cfg["n_exc"], int(np.prod(x_train.shape[1:])), cfg["dt_ms"], seed)
    # draw the synapses and compile (or load) the kernel before the clock starts; every later
    # net.run (one per image shown and rest) keeps these threads
    net.run(0.0, threads=threads)
    train_s, resumed = _train(net, h, x_train, cfg, out_dir, progress, resume,
                              f"biosim run {spec['name']} --resume {out_dir}")
    exc_params = net.populations[h["exc"].index].params
    net.set_params(h["exc"], h["exc_model"](**{**_fields(exc_params), "theta_plus_mv": 0.0, "tau_theta_ms": 1e300}))
    net.set_params(h["plastic"], h["stdp"](**{**_fields(h["plastic"].synapse), "nu_pre": 0.0, "nu_post": 0.0}))
    t1 = time.perf_counter()
    label_counts = _pass(net, h, x_train, cfg, False, "labelling (training images)", progress)
    assignment = assign_labels(label_counts, y_train, data.n_classes)
    t2 = time.perf_counter()
    test_counts = _pass(net, h, x_test, cfg, False, "testing", progress, y_test, assignment, data.n_classes)
    pred = classify(test_counts, assignment, data.n_classes)
    test_s = time.perf_counter() - t2
    eval_s = time.perf_counter() - t1
    accuracy = float(np.mean(pred == y_test)) if len(y_test) else float("nan")
    theta = net.state(h["exc"], "theta")
    matrix = confusion_matrix(y_test, pred, data.n_classes)
    n_syn = sum(p.n_syn for p in net.projections)
    _save_model(out_dir / MODEL, _weight_matrix(net, h), theta, cfg)
    title = f"{spec['name']} (n_exc {cfg['n_exc']}, seed {seed})"
    atomic_savefig(receptive_fields_figure(_weight_matrix(net, h), x_train.shape[1:], title),
                   out_dir / "receptive_fields.png")
    atomic_savefig(threshold_figure(theta, title), out_dir / "thresholds.png")
    atomic_savefig(confusion_figure(matrix, title), out_dir / "confusion_matrix.png")
    n_images = cfg["epochs"] * len(x_train)
    return {
        "test_accuracy": accuracy,
        "train_seconds": train_s,
        "images_per_second": n_images / train_s if train_s > 0 else float("nan"),
        "eval_seconds": eval_s,
        "n_exc": cfg["n_exc"],
        "n_train": int(len(x_train)),
        "n_test": int(len(x_test)),
        "epochs": cfg["epochs"],
        "resumed": resumed,
        "mean_theta_mv": float(np.mean(theta)),
        "neurons_per_class": np.bincount(assignment, minlength=data.n_classes).tolist(),
        "data": cfg["data"],
        "seed": seed,
        "threads": threads,
        # for `biosim compare` (the same keys as the supervised runs; what is not measured here,
        # synaptic operations and energy, is left out rather than estimated)
        "model_kind": "snn",
        "dataset": cfg["data"],
        "n_params": int(h["plastic"].i.size + h["exc"].n),  # learned: input weights and thresholds
        "footprint_bytes": int(8 * (n_syn + h["exc"].n)),  # every weight and threshold, float64
        "latency_ms_per_sample": 1e3 * test_s / max(len(x_test), 1),
        "spikes_per_sample": float(test_counts.sum() / max(len(x_test), 1)),  # excitatory spikes
        "confusion_matrix": {"rows_true_cols_predicted": matrix.tolist()},
        "report_note": ("unsupervised STDP with labels assigned from the training images: no validation "
                        "set, so its test accuracy is of the final weights (not validation-selected); latency "
                        "is the mean engine wall time per test image (0.35 s + 0.15 s of biological time, "
                        "re-showings included); synaptic operations and energy are not measured for it."),
    }
