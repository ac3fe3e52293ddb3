r"""MNIST-1D generated procedurally: ten 1-D digit templates, randomly padded, scaled, translated,
noised and sheared, then subsampled to 40 points (Greydanus 2020, "Scaling down deep learning";
https://github.com/greydanus/mnist1d, Apache-2.0). An own implementation of the paper's generator
with the defaults of its reference code; deterministic from ``seed`` (numpy ``default_rng``), so its
samples follow the same distribution as, but are not bitwise those of, the published pickle.

Per sample of class ``c`` with template :math:`x_c` (12 points, whitened, starting at 0, scaled by
1/6) on the time axis ``linspace(-5, 5, 12) / 6``:

1. pad with ``p ~ U{36..60}`` zeros at the end, then resample linearly to 72 points;
2. scale the amplitude by ``1 + 0.4 (u - 0.5)``;
3. roll right by ``k ~ U{0..47}`` points;
4. replace the zero (padding) points by correlated noise (Gaussian noise of scale 0.25 smoothed
   by a Gaussian filter of sigma 2) and add i.i.d. noise of scale 0.02 everywhere;
5. shear: subtract ``0.75 (u - 0.5) * linspace(-0.5, 0.5, 72)``;
6. resample linearly to 40 points.

The whole set is then standardised (mean 0, standard deviation 1 over all values). As a biosim
:class:`~biosim.datasets.dataset.Dataset` each signal is stored as a ``1 x 40`` uint8 "image",
``round((s + 4) / 8 * 255)`` clipped to 0..255 (values beyond 4 standard deviations are clipped; the
quantisation step 8/255 is below the i.i.d. noise).
"""

from __future__ import annotations

import numpy as np

__all__ = ["templates", "make_mnist1d", "to_uint8", "from_uint8", "N_SAMPLES", "LENGTH"]

N_SAMPLES = 5000
LENGTH = 40
_TEMPLATE_LEN = 12
_PADDING = (36, 60)
_SCALE_COEFF = 0.4
_MAX_TRANSLATION = 48
_CORR_NOISE = 0.25
_IID_NOISE = 2e-2
_SHEAR = 0.75


def templates() -> np.ndarray:
    """The ten digit templates ``(10, 12)`` (whitened, each starting at 0, scaled by 1/6)."""
    d = np.asarray([
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5]], dtype=np.float64)
    d = d - d.mean(1, keepdims=True)
    d = d / d.std(1, keepdims=True)
    d = d - d[:, :1]
    return d / 6.0


def _resample(x: np.ndarray, n: int) -> np.ndarray:
    return np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, len(x)), x)


def _transform(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    low, high = _PADDING
    p = low + int(rng.random() * (high - low + 1))
    x = np.concatenate([x + 1e-8, np.zeros(p)])
    x = _resample(x, _TEMPLATE_LEN + high)
    x = x * (1.0 + _SCALE_COEFF * (rng.random() - 0.5))
    k = int(rng.integers(_MAX_TRANSLATION))
    x = np.roll(x, k)
    mask = x != 0
    corr = gaussian_filter1d(_CORR_NOISE * rng.standard_normal(x.shape), 2.0, mode="reflect")
    x = np.where(mask, x, corr) + _IID_NOISE * rng.standard_normal(x.shape)
    x = x - _SHEAR * (rng.random() - 0.5) * np.linspace(-0.5, 0.5, len(x))
    return _resample(x, LENGTH)


def make_mnist1d(n_samples: int = N_SAMPLES, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Generate MNIST-1D: standardised signals ``(n, 40)`` float64 and int64 labels ``(n,)``.

    ``n_samples // 10`` samples per class, shuffled; the same ``seed`` gives the same arrays.
    """
    if n_samples < 10:
        raise ValueError(f"n_samples = {n_samples} must be >= 10 (one per class)")
    rng = np.random.default_rng(seed)
    t = templates()
    per_class = n_samples // 10
    xs = np.stack([_transform(t[c], rng) for c in range(10) for _ in range(per_class)])
    ys = np.repeat(np.arange(10, dtype=np.int64), per_class)
    order = rng.permutation(len(ys))
    xs, ys = xs[order], ys[order]
    xs = (xs - xs.mean()) / xs.std()
    return xs, ys


def to_uint8(signals: np.ndarray) -> np.ndarray:
    """Standardised signals ``(n, L)`` as uint8 images ``(n, 1, L)``: ``round((s + 4) / 8 * 255)``."""
    q = np.rint((np.asarray(signals) + 4.0) / 8.0 * 255.0)
    return np.clip(q, 0, 255).astype(np.uint8)[:, None, :]


def from_uint8(images: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_uint8` up to the quantisation: ``(n, 1, L)`` uint8 -> ``(n, L)`` float."""
    return images[:, 0, :].astype(np.float64) / 255.0 * 8.0 - 4.0
