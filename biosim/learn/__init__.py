"""Surrogate-gradient learning for spiking networks (PyTorch).

- :mod:`~biosim.learn.surrogate`: Heaviside spikes with fast-sigmoid, arctan, sigmoid, triangle gradients
- :mod:`~biosim.learn.layers`: LIF, current-based LIF, adaptive LIF, recurrent LIF, leaky read-out
- :mod:`~biosim.learn.encoders`: direct current, Poisson rate and latency codes
- :mod:`~biosim.learn.readouts`: spike-count and membrane read-outs with their losses
- :mod:`~biosim.learn.network`: feed-forward / convolutional networks
- :mod:`~biosim.learn.train`: BPTT with Adam, schedules, checkpoints, resumable runs
- :mod:`~biosim.learn.norse_backend`: the same networks from norse 1.1.0 modules

``import biosim`` does not import torch; ``import biosim.learn`` does.
"""

from biosim.learn.encoders import ENCODERS, current, encode, latency, poisson
from biosim.learn.layers import (
    ALIF, LI, LIF, ALIFParams, ALIFState, CubaLIF, CubaLIFParams, CubaLIFState, LIFParams, LIFState,
    LIParams, LIState, RecurrentLIF, RLIFState, alif_step, cuba_lif_step, li_step, lif_step, rlif_step,
)
from biosim.learn.network import NetSpec, SpikingNet, build_net, count_params
from biosim.learn.readouts import READOUTS, Readout, predict, readout_loss, scores
from biosim.learn.surrogate import SURROGATES, Surrogate, spike, surrogate_grad
from biosim.learn.train import FitResult, Task, TrainConfig, evaluate, fit

__all__ = [
    "Surrogate", "SURROGATES", "spike", "surrogate_grad",
    "LIFParams", "CubaLIFParams", "ALIFParams", "LIParams",
    "LIFState", "CubaLIFState", "ALIFState", "RLIFState", "LIState",
    "lif_step", "cuba_lif_step", "alif_step", "rlif_step", "li_step",
    "LIF", "CubaLIF", "ALIF", "RecurrentLIF", "LI",
    "ENCODERS", "current", "poisson", "latency", "encode",
    "READOUTS", "Readout", "scores", "readout_loss", "predict",
    "NetSpec", "SpikingNet", "build_net", "count_params",
    "TrainConfig", "Task", "FitResult", "fit", "evaluate",
]
