"""Plots of training runs: learning curves, a hidden-layer spike raster, a confusion matrix."""

from __future__ import annotations

import numpy as np

from biosim.reports.figures import _figure

__all__ = ["learning_curves_figure", "hidden_raster_figure", "confusion_figure", "confusion_matrix"]


def _epoch_axis(ax) -> None:
    """Epochs are whole numbers: integer ticks only."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (pass over the training set)")


def _series(history: dict, key: str, n: int):
    """``history[key]`` when it has one value per epoch, else None (older runs have no val_loss)."""
    values = history.get(key)
    return np.asarray(values, dtype=float) if values is not None and len(values) == n and n else None


def learning_curves_figure(history: dict, title: str, best_epoch: int | None = None):
    """Loss (left: training and validation) and accuracy (right: training, validation and test)
    per epoch, on axes that show every point; legends below the axes hide none of them.

    ``history`` holds lists with one value per epoch: ``epoch``, ``train_loss``, ``train_accuracy``,
    ``val_accuracy``, ``test_accuracy`` (fractions) and, where recorded, ``val_loss``.
    """
    fig = _figure(figsize=(9.5, 4.4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = np.asarray(history["epoch"])
    n = len(epochs)
    for key, color, label in (("train_loss", "C0", "training (augmented, dropout)"),
                              ("val_loss", "C1", "validation")):
        values = _series(history, key, n)
        if values is not None:
            ax_loss.plot(epochs, values, "o-", ms=3, color=color, label=label)
    ax_loss.set_ylabel("loss per sample (dimensionless)")
    ax_loss.set_title("loss", fontsize=10)
    shown = []
    for key, color, label in (("train_accuracy", "C0", "training (augmented, dropout)"),
                              ("val_accuracy", "C1", "validation"), ("test_accuracy", "C2", "test")):
        values = _series(history, key, n)
        if values is not None:
            ax_acc.plot(epochs, 100 * values, "o-", ms=3, color=color, label=label)
            shown.append(100 * values)
    if best_epoch:
        for ax in (ax_loss, ax_acc):
            ax.axvline(best_epoch, color="0.5", lw=0.8, ls="--", label=f"best on validation (epoch {best_epoch})")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("accuracy", fontsize=10)
    if shown:  # every series inside the axes: from just below the lowest point to 100 %
        low = float(np.nanmin(np.concatenate(shown)))
        ax_acc.set_ylim(max(0.0, low - max(1.0, 0.05 * (100 - low))), 100.5)
    for ax in (ax_loss, ax_acc):
        _epoch_axis(ax)
        if n == 1:
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
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
    fig = _figure(figsize=(9, 4), layout="constrained")
    ax_img, ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 3]})
    image = np.asarray(image)
    if image.ndim == 1 or image.shape[0] == 1:  # a 1-D signal (MNIST-1D): drawn as a curve
        signal = image.reshape(-1)
        ax_img.plot(np.arange(signal.size), signal, color="k", lw=1)
        ax_img.set_xlabel("position in the signal (index)", fontsize=8)
        ax_img.set_ylabel("input value (a.u.)", fontsize=8)
        ax_img.tick_params(labelsize=7)
    else:
        ax_img.imshow(image, cmap="gray_r")
        ax_img.set_xticks([])
        ax_img.set_yticks([])
    ax_img.set_title("input", fontsize=9)
    if order.size:
        ax.imshow(spikes[:, order].T > 0, aspect="auto", cmap="Greys", interpolation="nearest",
                  extent=(-0.5 * dt_ms, (steps - 0.5) * dt_ms, order.size - 0.5, -0.5), vmin=0, vmax=1)
    ax.set_xlim(-0.5 * dt_ms, (steps - 0.5) * dt_ms)
    ax.set_xlabel("time (ms)")
    if steps <= 20:  # few steps: a tick per step, no fractional times between them
        ax.set_xticks(np.arange(steps) * dt_ms)
    ax.set_ylabel("hidden neuron (active ones,\nsorted by first spike)")
    ax.set_title(f"{int(spikes.sum())} spikes; {order.size} of {n} neurons active (black: spike)", fontsize=9)
    fig.suptitle(title)
    return fig


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``C[true, predicted]``, shape ``(n_classes, n_classes)``."""
    c = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(c, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return c


def confusion_figure(matrix: np.ndarray, title: str, class_names=None):
    """Confusion matrix with counts in the cells (rows: true class, columns: predicted), every class
    named on both axes, and a colour bar of the counts.

    ``class_names`` defaults to ``0 .. k-1`` (the digits, for MNIST)."""
    matrix = np.asarray(matrix)
    k = matrix.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    size = max(5.2, 0.42 * k + 1.5)
    fig = _figure(figsize=(size + 0.8, size), layout="constrained")
    ax = fig.add_subplot()
    _confusion_axes(fig, ax, matrix, names)
    ax.set_title(title, fontsize=10)
    return fig


def _confusion_axes(fig, ax, matrix: np.ndarray, names: list[str], fontsize: float = 7) -> None:
    """Draw ``matrix`` on ``ax``: counts in the cells, every class labelled, a colour bar."""
    k = matrix.shape[0]
    im = ax.imshow(matrix, cmap="Blues", vmin=0)
    top = matrix.max() if matrix.size else 0
    if k <= 20:
        for r in range(k):
            for c in range(k):
                if matrix[r, c]:
                    ax.text(c, r, str(int(matrix[r, c])), ha="center", va="center", fontsize=fontsize,
                            color="white" if matrix[r, c] > top / 2 else "black")
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="test samples (count)")
