r"""Read-outs: class scores from the output layer's activity over time, and their losses.

The output layer gives a sequence ``out`` of shape ``(T, batch, classes)``: spikes of a LIF layer
(``count_*`` read-outs) or the membrane potential of a non-spiking leaky integrator
(``*_membrane``). With :math:`o_{t,c}` the output of class :math:`c` at step :math:`t`:

==================  ==============================  =============================================
kind                score :math:`s_c`               loss
==================  ==============================  =============================================
``count_ce``        :math:`\sum_t o_{t,c}`          cross-entropy of softmax(s) (label smoothing)
``count_mse``       :math:`\sum_t o_{t,c}`          :math:`\frac1C\sum_c (s_c - T r_c)^2 / T^2`,
                                                    :math:`r_c` = ``rate_correct`` for the label,
                                                    ``rate_incorrect`` otherwise
``max_membrane``    :math:`\max_t o_{t,c}`          cross-entropy (label smoothing)
``mean_membrane``   :math:`\frac1T\sum_t o_{t,c}`   cross-entropy (label smoothing)
==================  ==============================  =============================================

The predicted class is :math:`\arg\max_c s_c` (ties go to the lowest class index).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from biosim.errors import BiosimError, unknown

__all__ = ["READOUTS", "Readout", "scores", "readout_loss", "predict"]

#: read-out kind -> whether the output layer spikes
READOUTS = {"count_ce": True, "count_mse": True, "max_membrane": False, "mean_membrane": False}


@dataclass(frozen=True, kw_only=True)
class Readout:
    """How the output layer is read and trained.

    Attributes
    ----------
    kind : str
        One of :data:`READOUTS`.
    label_smoothing : float
        Cross-entropy label smoothing in [0, 1).
    rate_correct, rate_incorrect : float
        Target spike rates per step (``count_mse``), in [0, 1].
    """

    kind: str = "max_membrane"
    label_smoothing: float = 0.0
    rate_correct: float = 0.8
    rate_incorrect: float = 0.2

    def __post_init__(self):
        if self.kind not in READOUTS:
            raise unknown("readout", self.kind, READOUTS)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise BiosimError(f"label_smoothing = {self.label_smoothing} is out of range (must be in [0, 1))")
        for name in ("rate_correct", "rate_incorrect"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise BiosimError(f"{name} = {getattr(self, name)} is out of range (must be in [0, 1])")

    @property
    def spiking(self) -> bool:
        """Whether the output layer must spike (count read-outs)."""
        return READOUTS[self.kind]


def scores(out: torch.Tensor, kind: str) -> torch.Tensor:
    """Class scores ``(batch, classes)`` from the output sequence ``out`` ``(T, batch, classes)``."""
    if kind in ("count_ce", "count_mse"):
        return out.sum(0)
    if kind == "max_membrane":
        return out.max(0).values
    if kind == "mean_membrane":
        return out.mean(0)
    raise unknown("readout", kind, READOUTS)


def readout_loss(out: torch.Tensor, target: torch.Tensor, readout: Readout) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss (a scalar, mean over the batch) and scores for ``out`` ``(T, batch, classes)``.

    Parameters
    ----------
    out : torch.Tensor
        Output-layer sequence, time first.
    target : torch.Tensor
        int64 labels, shape ``(batch,)``.
    readout : Readout
        Kind of read-out and its settings.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        The loss and the scores ``(batch, classes)``.
    """
    s = scores(out, readout.kind)
    if readout.kind == "count_mse":
        steps = out.shape[0]
        want = torch.full_like(s, readout.rate_incorrect * steps)
        want.scatter_(1, target.unsqueeze(1), readout.rate_correct * steps)
        return F.mse_loss(s, want) / steps**2, s
    return F.cross_entropy(s, target, label_smoothing=readout.label_smoothing), s


def predict(s: torch.Tensor) -> torch.Tensor:
    """Predicted class per sample: argmax of the scores ``(batch, classes)`` (first on ties)."""
    return s.argmax(1)
