"""Encoders (statistics of the Poisson code, timing of the latency code, the direct current as a
view) and read-outs (scores and losses against hand computations)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from biosim.errors import BiosimError
from biosim.learn.encoders import current, encode, latency, poisson
from biosim.learn.readouts import Readout, predict, readout_loss, scores


def test_poisson_rate_and_independence():
    x = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat(2000, 1)  # 2000 samples of 5 pixels
    g = torch.Generator().manual_seed(0)
    s = poisson(x, 50, gain=0.8, generator=g)
    assert s.shape == (50, 2000, 5) and set(s.unique().tolist()) <= {0.0, 1.0}
    rate = s.mean((0, 1))
    p = torch.tensor([0.0, 0.08, 0.4, 0.72, 0.8])
    sd = torch.sqrt(p * (1 - p) / (50 * 2000))
    assert torch.all((rate - p).abs() <= 5 * sd + 1e-12)
    # counts per sample are binomial(T, p): variance T p (1 - p)
    counts = s.sum(0)[:, 2]
    assert float(counts.var()) == pytest.approx(50 * 0.4 * 0.6, rel=0.1)
    # consecutive steps are uncorrelated
    a, b = s[:-1, :, 2].flatten(), s[1:, :, 2].flatten()
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.02


def test_poisson_is_reproducible_with_a_generator_and_clips_at_one():
    x = torch.rand(4, 10)
    a = poisson(x, 20, generator=torch.Generator().manual_seed(3))
    b = poisson(x, 20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.all(poisson(torch.ones(3), 10, gain=5.0) == 1)


def test_latency_one_spike_brighter_earlier():
    x = torch.tensor([[0.0, 0.005, 0.25, 0.5, 1.0]])
    s = latency(x, 9)
    assert s.shape == (9, 1, 5)
    assert s.sum(0).tolist() == [[0, 0, 1, 1, 1]]
    t = s[:, 0].argmax(0).tolist()
    assert t[2:] == [round(0.75 * 8), round(0.5 * 8), 0]


def test_current_is_a_constant_view():
    x = torch.rand(3, 1, 4, 4)
    c = current(x, 7, gain=2.5)
    assert c.shape == (7, 3, 1, 4, 4) and c.stride(0) == 0
    assert torch.equal(c[5], 2.5 * x)


@pytest.mark.parametrize("call, needle", [
    (lambda: encode("poison", torch.rand(2), 3), "did you mean 'poisson'"),
    (lambda: current(torch.tensor([1.5]), 3), "intensities in \\[0, 1\\]"),
    (lambda: poisson(torch.rand(2), 0), "steps = 0 must be >= 1"),
])
def test_encoder_errors(call, needle):
    with pytest.raises(BiosimError, match=needle):
        call()


def test_scores_of_each_readout():
    out = torch.tensor([[[0.0, 1.0]], [[1.0, 1.0]], [[0.0, 0.0]], [[1.0, 0.0]]])  # T=4, B=1, C=2
    assert scores(out, "count_ce").tolist() == [[2.0, 2.0]]
    v = torch.tensor([[[0.1, 0.5]], [[0.9, 0.2]], [[0.3, 0.3]]])
    assert scores(v, "max_membrane")[0].tolist() == pytest.approx([0.9, 0.5])
    assert scores(v, "mean_membrane")[0].tolist() == pytest.approx([1.3 / 3, 1.0 / 3])
    assert predict(scores(out, "count_ce")).tolist() == [0]  # ties: the first class


def test_cross_entropy_readouts_and_label_smoothing():
    torch.manual_seed(0)
    v = torch.randn(5, 3, 4)
    y = torch.tensor([0, 3, 2])
    for kind, s in (("max_membrane", v.max(0).values), ("mean_membrane", v.mean(0)), ("count_ce", v.sum(0))):
        loss, got = readout_loss(v, y, Readout(kind=kind, label_smoothing=0.2))
        assert torch.equal(got, s)
        assert loss.item() == pytest.approx(F.cross_entropy(s, y, label_smoothing=0.2).item(), rel=1e-6)
        # by hand: (1 - eps) * nll + eps * mean over classes of -log p
        logp = torch.log_softmax(s, 1)
        hand = -(0.8 * logp[torch.arange(3), y] + 0.2 * logp.mean(1)).mean()
        assert loss.item() == pytest.approx(hand.item(), rel=1e-5)


def test_count_mse_loss_by_hand():
    out = torch.zeros(10, 2, 3)
    out[:6, 0, 1] = 1  # sample 0: class 1 spikes 6 times
    out[:2, 1, 0] = 1  # sample 1: class 0 spikes twice
    y = torch.tensor([1, 2])
    loss, s = readout_loss(out, y, Readout(kind="count_mse", rate_correct=0.8, rate_incorrect=0.2))
    want = torch.tensor([[2.0, 8.0, 2.0], [2.0, 2.0, 8.0]])
    hand = ((s - want) ** 2).mean() / 100
    assert float(loss) == pytest.approx(float(hand))
    assert s.tolist() == [[0, 6, 0], [2, 0, 0]]


@pytest.mark.parametrize("kwargs, needle", [
    ({"kind": "max_membrain"}, "did you mean 'max_membrane'"),
    ({"label_smoothing": 1.0}, "label_smoothing = 1.0 is out of range"),
    ({"rate_correct": 1.5}, "rate_correct = 1.5 is out of range"),
])
def test_readout_errors(kwargs, needle):
    with pytest.raises(BiosimError, match=needle):
        Readout(**kwargs)


def test_readout_gradient_reaches_the_output():
    v = torch.randn(6, 2, 5, requires_grad=True)
    loss, _ = readout_loss(v, torch.tensor([1, 4]), Readout(kind="max_membrane"))
    loss.backward()
    assert math.isfinite(loss.item()) and v.grad.abs().sum() > 0
    assert (v.grad != 0).sum() <= 2 * 5  # only each class's maximum step gets gradient
