r"""Training by backpropagation through time: Adam, a learning-rate schedule, validation each
epoch, the best-on-validation weights, checkpoints, and clean stops on Ctrl-C / SIGTERM.

One optimiser step per mini-batch minimises the read-out loss of
:func:`biosim.learn.readouts.readout_loss` over the ``T`` steps of the encoded batch; autograd
unrolls the network in time (BPTT). The learning rate at global step :math:`s` of
:math:`S = \text{epochs} \times \text{batches}`:

- ``cosine``: :math:`\eta_s = \eta_0 \cdot \frac12 (1 + \cos(\pi s / S))`
- ``step``: :math:`\eta_s = \eta_0 \, \gamma^{\lfloor e / k \rfloor}` in epoch :math:`e` (``lr_step_epochs`` k)
- ``constant``: :math:`\eta_s = \eta_0`

Determinism: the sample order and the augmentation of epoch ``e`` come from
``numpy.random.default_rng([seed, e])``; the forward pass of batch ``b`` of epoch ``e`` (dropout
masks, Poisson spikes) runs inside ``torch.random.fork_rng`` with torch's generator seeded from
``(seed, e, b)``, and evaluation on its own seeded stream in the same way, so training neither
depends on nor changes the caller's global RNG state (the initial weights come from the model's
builder: see :func:`biosim.learn.network.init_weights`). The run therefore depends only on the seed,
the configuration and the number of torch threads (set explicitly), and a run resumed from any
batch boundary ends with bitwise the same weights as an uninterrupted one.

Files written in the run folder: ``checkpoint.safetensors`` (after every epoch and on a stop:
weights, Adam state, counters, history, RNG state), ``best.safetensors`` (weights with the best
validation accuracy so far) and, at the end, ``model.safetensors`` (final weights).
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from biosim.errors import BiosimError, RunInterrupted, unknown
from biosim.learn.checkpoint import (load_checkpoint, pack_training_state, save_checkpoint, save_weights,
                                     unpack_training_state)
from biosim.learn.readouts import Readout, predict, readout_loss

_log = logging.getLogger(__name__)  # notes for the user; the CLI shows them on stderr

__all__ = ["TrainConfig", "Task", "FitResult", "SCHEDULES", "learning_rate", "shift_images",
           "epoch_plan", "evaluate", "fit", "TorchSettings", "StopRequest", "CHECKPOINT", "BEST", "FINAL",
           "on_batch_hook"]

CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"
FINAL = "model.safetensors"

#: learning-rate schedules
SCHEDULES = ("cosine", "step", "constant")

#: Called as ``on_batch_hook(epoch, batch)`` after every training batch when set (tests use it to
#: send themselves a signal mid-run).
on_batch_hook: Callable[[int, int], None] | None = None


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How to train.

    Attributes
    ----------
    epochs : int
        Passes over the training set, >= 1.
    batch_size : int
        Samples per optimiser step, >= 1.
    lr : float
        Adam's initial learning rate, > 0.
    lr_schedule : {"cosine", "step", "constant"}
        Schedule of the learning rate (see the module docstring).
    lr_step_epochs : int
        ``step`` schedule: epochs between decays, >= 1.
    lr_gamma : float
        ``step`` schedule: factor per decay, in (0, 1].
    weight_decay : float
        Adam's L2 penalty, >= 0.
    shift_px : int
        Random-shift augmentation: each training image moves by up to this many pixels in x and y
        (zero padding), >= 0.
    threads : int
        torch CPU threads; 0 means every core this process may use.
    eval_batch_size : int
        Samples per batch when evaluating.
    seed : int
        Seed of the sample order, the augmentation, dropout and Poisson spikes.
    """

    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    lr_schedule: str = "cosine"
    lr_step_epochs: int = 10
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    shift_px: int = 0
    threads: int = 1
    eval_batch_size: int = 1000
    seed: int = 0

    def __post_init__(self):
        for name, low in (("epochs", 1), ("batch_size", 1), ("lr_step_epochs", 1), ("eval_batch_size", 1),
                          ("shift_px", 0), ("threads", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise BiosimError(f"learn.{name} = {value!r} is out of range (must be an integer >= {low})")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise BiosimError(f"learn.lr = {self.lr!r} is out of range (must be > 0)")
        if not 0 < self.lr_gamma <= 1:
            raise BiosimError(f"learn.lr_gamma = {self.lr_gamma!r} is out of range (must be in (0, 1])")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise BiosimError(f"learn.weight_decay = {self.weight_decay!r} is out of range (must be >= 0)")
        if self.lr_schedule not in SCHEDULES:
            raise unknown("learn.lr_schedule", self.lr_schedule, SCHEDULES)

    def resolved_threads(self) -> int:
        """The number of torch threads to use (``threads``, or the usable cores for 0)."""
        if self.threads:
            return self.threads
        try:
            import os

            return len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            import os

            return os.cpu_count() or 1


@dataclass(frozen=True, eq=False)
class Task:
    """What to learn: uint8 images ``(N, H, W)``, int64 labels, an encoder and a read-out.

    ``encode(x)`` maps a float batch ``(B, 1, H, W)`` in [0, 1] to the network input
    ``(T, B, 1, H, W)``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    encode: Callable[[torch.Tensor], torch.Tensor]
    readout: Readout


@dataclass
class FitResult:
    """What :func:`fit` reports.

    Attributes
    ----------
    history : dict of str to list
        Per epoch: ``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss`` (absent for the
        epochs of a checkpoint written before it was recorded), ``val_accuracy``,
        ``test_accuracy``, ``lr`` (at the epoch's end), ``seconds`` (cumulative).
    best_epoch : int
        Epoch (1-based) with the best validation accuracy (the earliest on ties).
    train_seconds : float
        Wall time of training including per-epoch evaluation, summed over resumed sessions.
    step_seconds : float
        Wall time of the optimiser steps alone (forward, backward, update).
    samples : int
        Training samples processed.
    resumed : bool
        Whether this call continued from a checkpoint.
    """

    history: dict = field(default_factory=dict)
    best_epoch: int = 0
    train_seconds: float = 0.0
    step_seconds: float = 0.0
    samples: int = 0
    resumed: bool = False


def learning_rate(cfg: TrainConfig, step: int, batches_per_epoch: int) -> float:
    """Learning rate of global step ``step`` (0-based) under ``cfg``'s schedule."""
    if cfg.lr_schedule == "cosine":
        total = cfg.epochs * batches_per_epoch
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
    if cfg.lr_schedule == "step":
        return cfg.lr * cfg.lr_gamma ** ((step // batches_per_epoch) // cfg.lr_step_epochs)
    return cfg.lr


def shift_images(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Move image ``k`` of ``x`` ``(N, H, W)`` by ``dy[k]`` rows and ``dx[k]`` columns (zero fill).

    Positive shifts move the content down / right; shifts are at most the image size.
    """
    n, h, w = x.shape
    s = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    if s == 0:
        return x.copy()
    padded = np.pad(x, ((0, 0), (s, s), (s, s)))
    rows = (s - dy)[:, None] + np.arange(h)
    cols = (s - dx)[:, None] + np.arange(w)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def epoch_plan(seed: int, epoch: int, n: int, shift_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample order and per-sample shifts of epoch ``epoch``: ``(order, dy, dx)``, all length ``n``."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    if shift_px:
        dy, dx = rng.integers(-shift_px, shift_px + 1, size=(2, n))
    else:
        dy = dx = np.zeros(n, dtype=np.int64)
    return order, dy, dx


def _batch_seed(seed: int, epoch: int, batch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, batch]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _to_input(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.astype(np.float32) / np.float32(255.0)).unsqueeze(1)


def evaluate(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, encode, readout: Readout,
             batch_size: int = 1000, seed: int = 0, count_spikes: bool = False) -> dict:
    """Accuracy of ``model`` on images ``x`` ``(N, H, W)`` uint8 and labels ``y``.

    Runs without gradients in eval mode (no dropout) on a private RNG stream seeded by ``seed``
    (Poisson input), leaving torch's global RNG state untouched.

    Returns
    -------
    dict
        ``accuracy``, ``loss`` (mean), ``predictions`` (int64 array) and, with
        ``count_spikes``, ``spikes_per_sample`` (hidden and, for spiking read-outs, output
        spikes per sample over all steps) and ``hidden_spikes_per_sample`` per hidden stage.
    """
    was_training = model.training
    model.eval()
    preds, loss_sum = [], 0.0
    counts: dict[int, float] = {}

    def record(stage, z):
        counts[stage] = counts.get(stage, 0.0) + float(z.sum())

    out_spikes = 0.0
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for i in range(0, len(x), batch_size):
                xb, yb = _to_input(x[i:i + batch_size]), torch.from_numpy(y[i:i + batch_size])
                out = model(encode(xb), record=record if count_spikes else None)
                loss, s = readout_loss(out, yb, readout)
                loss_sum += float(loss) * len(yb)
                preds.append(predict(s).numpy())
                if count_spikes and readout.spiking:
                    out_spikes += float(out.sum())
    finally:
        model.train(was_training)
    preds = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    n = max(len(x), 1)
    result = {"accuracy": float((preds == y).mean()) if len(y) else float("nan"),
              "loss": loss_sum / n, "predictions": preds}
    if count_spikes:
        hidden = [counts.get(k, 0.0) / n for k in sorted(counts)]
        result["hidden_spikes_per_sample"] = hidden
        result["spikes_per_sample"] = float(sum(hidden) + out_spikes / n)
    return result


class StopRequest:
    """Turns the first SIGINT/SIGTERM into a request to stop after this ``unit`` of work (a batch, an
    image; a second SIGINT interrupts at once); restores the previous handlers on exit. The loop
    checks :attr:`signum` and saves its checkpoint."""

    def __init__(self, notice: bool = True, unit: str = "batch"):
        self.signum: int | None = None
        self.notice = notice
        self.unit = unit
        self._old = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        if self.notice:
            _log.warning(f"\nbiosim: {signal.Signals(signum).name} received; saving a checkpoint after this "
                         f"{self.unit} (Ctrl-C again to abort at once)")

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


class TorchSettings:
    """Context manager: torch's thread count and deterministic algorithms on; both restored after."""

    def __init__(self, threads: int):
        self.threads = threads

    def __enter__(self):
        self._old = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(True)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self._old[0])
        torch.use_deterministic_algorithms(self._old[1])
        return False


def _new_history():
    return {k: [] for k in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_accuracy",
                            "lr", "seconds")}


def fit(model: torch.nn.Module, task: Task, cfg: TrainConfig, out_dir, *, resume: bool = False,
        progress: bool = True, resume_hint: str = "", on_batch: Callable[[int, int], None] | None = None) -> FitResult:
    """Train ``model`` on ``task`` with ``cfg``, writing checkpoints into ``out_dir``.

    Parameters
    ----------
    model : torch.nn.Module
        A network mapping ``(T, B, ...)`` input to the ``(T, B, classes)`` output sequence
        (freshly initialised; with ``resume`` its weights are replaced by the checkpoint's).
    task : Task
        Data, encoder and read-out.
    cfg : TrainConfig
        Training settings (must equal the checkpoint's when resuming).
    out_dir : path-like
        Run folder for ``checkpoint.safetensors``, ``best.safetensors``, ``model.safetensors``.
    resume : bool
        Continue from ``out_dir/checkpoint.safetensors``.
    progress : bool
        Show a progress bar (loss, accuracy, samples/s) on stderr.
    resume_hint : str
        Command that resumes this run, quoted in the message of a stop.
    on_batch : callable, optional
        ``on_batch(epoch, batch)`` after each training batch (also :data:`on_batch_hook`).

    Returns
    -------
    FitResult
        History and timings; the model holds the final weights.

    Raises
    ------
    RunInterrupted
        After SIGINT/SIGTERM, once the checkpoint of the last finished batch is saved.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    n = len(task.y_train)
    nb = math.ceil(n / cfg.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    cfg_dict = asdict(cfg)
    state = {"epoch": 0, "batch": 0, "step": 0, "finished": False, "history": _new_history(),
             "best": {"epoch": 0, "val_accuracy": -1.0}, "partial": {"loss_sum": 0.0, "correct": 0, "seen": 0},
             "train_seconds": 0.0, "step_seconds": 0.0, "samples": 0}
    if resume:
        tensors, meta = load_checkpoint(out_dir / CHECKPOINT)
        if meta.get("train_config") != cfg_dict:
            raise BiosimError(f"checkpoint {out_dir / CHECKPOINT} was written with other training settings; "
                              "resume with the run's own config.json")
        unpack_training_state(tensors, meta, model, optimizer, out_dir / CHECKPOINT)
        state = meta["state"]
    hook = on_batch or on_batch_hook

    def checkpoint():
        tensors, meta = pack_training_state(model, optimizer)
        meta.update(state=state, train_config=cfg_dict,
                    rng={"torch": "forward pass of batch b of epoch e in a fork of torch's generator seeded "
                                  "from numpy SeedSequence([seed, e, b])",
                         "numpy": "order and shifts of epoch e from numpy default_rng([seed, e])"},
                    schedule={"kind": cfg.lr_schedule, "step": state["step"],
                              "lr": learning_rate(cfg, state["step"], nb) if not state["finished"] else None})
        save_checkpoint(out_dir / CHECKPOINT, tensors, meta)

    result = FitResult(resumed=resume)
    session_t0 = time.perf_counter()
    base_seconds = state["train_seconds"]
    session_samples, session_step_s = 0, 0.0
    with TorchSettings(cfg.resolved_threads()), StopRequest(notice=progress) as stop, \
            tqdm(total=cfg.epochs * nb, initial=state["epoch"] * nb + state["batch"], disable=not progress,
                 unit="batch", dynamic_ncols=True, file=sys.stderr, leave=True) as bar:
        model.train()

        def stop_now(epoch, batch):
            state["train_seconds"] = base_seconds + time.perf_counter() - session_t0
            checkpoint()
            bar.close()
            name = signal.Signals(stop.signum).name
            where = (f"epoch {epoch + 1}/{cfg.epochs}, batch {batch}/{nb}" if batch
                     else f"the end of epoch {epoch}/{cfg.epochs}")
            hint = f"; resume with: {resume_hint}" if resume_hint else ""
            raise RunInterrupted(f"stopped by {name} at {where}; checkpoint saved in {out_dir}{hint}",
                                 exit_code=128 + stop.signum)

        while state["epoch"] < cfg.epochs:
            epoch = state["epoch"]
            order, dy, dx = epoch_plan(cfg.seed, epoch, n, cfg.shift_px)
            bar.set_description(f"epoch {epoch + 1}/{cfg.epochs}")
            part = state["partial"]
            while state["batch"] < nb:
                b = state["batch"]
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                t0 = time.perf_counter()
                xb = _to_input(shift_images(task.x_train[idx], dy[idx], dx[idx]))
                yb = torch.from_numpy(task.y_train[idx])
                lr = learning_rate(cfg, state["step"], nb)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(_batch_seed(cfg.seed, epoch, b))
                    loss, scores = readout_loss(model(task.encode(xb)), yb, task.readout)
                if not torch.isfinite(loss):
                    raise BiosimError(f"the loss became {float(loss.detach())} at epoch {epoch + 1}, batch {b + 1}; "
                                      "lower learn.lr or the input gain")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                dt = time.perf_counter() - t0
                session_step_s += dt
                state["step_seconds"] += dt
                session_samples += len(idx)
                state["samples"] += len(idx)
                part["loss_sum"] += float(loss.detach()) * len(idx)
                part["correct"] += int((predict(scores) == yb).sum())
                part["seen"] += len(idx)
                state["batch"] = b + 1
                state["step"] += 1
                bar.update(1)
                if progress:
                    bar.set_postfix_str(
                        f"loss {part['loss_sum'] / part['seen']:.4f} acc {part['correct'] / part['seen']:.4f} "
                        f"{session_samples / max(session_step_s, 1e-9):.0f} samples/s", refresh=False)
                if hook is not None:
                    hook(epoch, b)
                if stop.signum is not None and state["batch"] < nb:
                    stop_now(epoch, state["batch"])
            # end of epoch: validate, test, keep the best, checkpoint
            val = evaluate(model, task.x_val, task.y_val, task.encode, task.readout, cfg.eval_batch_size,
                           seed=cfg.seed)
            test = evaluate(model, task.x_test, task.y_test, task.encode, task.readout, cfg.eval_batch_size,
                            seed=cfg.seed)
            h = state["history"]
            h["epoch"].append(epoch + 1)
            h["train_loss"].append(part["loss_sum"] / max(part["seen"], 1))
            h["train_accuracy"].append(part["correct"] / max(part["seen"], 1))
            if len(h.setdefault("val_loss", [])) == len(h["epoch"]) - 1:  # a checkpoint from before val_loss: none
                h["val_loss"].append(val["loss"])
            h["val_accuracy"].append(val["accuracy"])
            h["test_accuracy"].append(test["accuracy"])
            h["lr"].append(learning_rate(cfg, state["step"] - 1, nb))
            h["seconds"].append(base_seconds + time.perf_counter() - session_t0)
            if val["accuracy"] > state["best"]["val_accuracy"]:
                state["best"] = {"epoch": epoch + 1, "val_accuracy": val["accuracy"],
                                 "test_accuracy": test["accuracy"]}
                save_weights(out_dir / BEST, model, {"best": state["best"], "train_config": cfg_dict})
            state.update(epoch=epoch + 1, batch=0, partial={"loss_sum": 0.0, "correct": 0, "seen": 0})
            state["finished"] = state["epoch"] == cfg.epochs
            state["train_seconds"] = base_seconds + time.perf_counter() - session_t0
            if state["finished"]:
                save_weights(out_dir / FINAL, model, {"train_config": cfg_dict, "epochs": cfg.epochs})
            checkpoint()
            if progress:
                bar.write(f"epoch {epoch + 1}/{cfg.epochs}: train loss {h['train_loss'][-1]:.4f} "
                          f"acc {h['train_accuracy'][-1]:.4f} | val {val['accuracy']:.4f} "
                          f"test {test['accuracy']:.4f} | {h['seconds'][-1]:.1f} s")
            if stop.signum is not None and not state["finished"]:
                stop_now(epoch + 1, 0)
    result.history = state["history"]
    result.best_epoch = state["best"]["epoch"]
    result.train_seconds = state["train_seconds"]
    result.step_seconds = state["step_seconds"]
    result.samples = state["samples"]
    return result
