"""Plots of training runs: learning curves, a hidden-layer spike raster, a confusion matrix."""

from __future__ import annotations

import numpy as np

from biosim.reports.figures import _figure

__all__ = ["learning_curves_figure", "hidden_raster_figure", "confusion_figure", "confusion_matrix"]


def learning_curves_figure(history: dict, title: str, best_epoch: int | None = None):
    """Training loss (left) and train / validation / test accuracy (right) per epoch."""
    fig = _figure(figsize=(9, 3.6))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = history["epoch"]
    ax_loss.plot(epochs, history["train_loss"], "o-", ms=3, color="C0", label="train")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(fontsize=8)
    for key, color, label in (("train_accuracy", "C0", "train (augmented, dropout)"),
                              ("val_accuracy", "C1", "validation"), ("test_accuracy", "C2", "test")):
        ax_acc.plot(epochs, 100 * np.asarray(history[key]), "o-", ms=3, color=color, label=label)
    if best_epoch:
        ax_acc.axvline(best_epoch, color="0.6", lw=0.8, ls="--", label=f"best on validation (epoch {best_epoch})")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    lows = [min(history[k]) for k in ("val_accuracy", "test_accuracy") if history[k]]
    if lows:
        ax_acc.set_ylim(max(0.0, 100 * min(lows) - 2), 100.5)
    ax_acc.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    return fig


def hidden_raster_figure(image: np.ndarray, spikes: np.ndarray, dt_ms: float, title: str):
    """The input digit (left) and the spikes of one hidden layer over time (right).

    Parameters
    ----------
    image : numpy.ndarray
        The digit, ``(H, W)``.
    spikes : numpy.ndarray
        ``(T, N)`` spikes in {0, 1} of the layer's ``N`` neurons.
    dt_ms : float
        Time step (ms) for the time axis.
    title : str
        Figure title.
    """
    spikes = np.asarray(spikes)
    steps, n = spikes.shape
    counts = spikes.sum(0)
    active = np.flatnonzero(counts > 0)
    first = np.argmax(spikes[:, active] > 0, axis=0) if active.size else np.zeros(0, dtype=int)
    order = active[np.lexsort((-counts[active], first))]  # by first spike, then most spikes first
    fig = _figure(figsize=(9, 4))
    ax_img, ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 3]})
    ax_img.imshow(image, cmap="gray_r")
    ax_img.set_xticks([])
    ax_img.set_yticks([])
    if order.size:
        ax.imshow(spikes[:, order].T > 0, aspect="auto", cmap="Greys", interpolation="nearest",
                  extent=(-0.5 * dt_ms, (steps - 0.5) * dt_ms, order.size - 0.5, -0.5), vmin=0, vmax=1)
    ax.set_xlim(-0.5 * dt_ms, (steps - 0.5) * dt_ms)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("active neurons (by first spike)")
    ax.set_title(f"{int(spikes.sum())} spikes; {order.size} of {n} neurons active (black: spike)", fontsize=9)
    fig.suptitle(title)
    return fig


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``C[true, predicted]``, shape ``(n_classes, n_classes)``."""
    c = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(c, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return c


def confusion_figure(matrix: np.ndarray, title: str):
    """Confusion matrix with counts in the cells (rows: true class, columns: predicted)."""
    fig = _figure(figsize=(5.2, 4.6))
    ax = fig.add_subplot()
    im = ax.imshow(matrix, cmap="Blues")
    k = matrix.shape[0]
    top = matrix.max() if matrix.size else 0
    for r in range(k):
        for c in range(k):
            if matrix[r, c]:
                ax.text(c, r, str(matrix[r, c]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[r, c] > top / 2 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)
    return fig
