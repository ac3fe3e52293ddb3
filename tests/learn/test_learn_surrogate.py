"""Surrogate spike functions: Heaviside forward; each pseudo-derivative equals its formula, alpha
is honoured; bad kinds and alphas are one-line errors."""

from __future__ import annotations

import decimal
import math

import pytest
import torch

from biosim.errors import BiosimError
from biosim.learn.surrogate import SURROGATES, Surrogate, spike, surrogate_grad

X = torch.tensor([-2.0, -0.5, -0.1, -1e-3, 0.0, 1e-3, 0.05, 0.3, 1.0, 3.0], dtype=torch.float64)


def formula(kind: str, alpha: float, x: float) -> float:
    if kind == "fast_sigmoid":
        return 1.0 / (alpha * abs(x) + 1.0) ** 2
    if kind == "arctan":
        return alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2)
    if kind == "sigmoid":
        with decimal.localcontext() as ctx:  # s (1 - s) in 50 digits: no cancellation where s ~ 1
            ctx.prec = 50
            s = 1 / (1 + (-decimal.Decimal(alpha) * decimal.Decimal(x)).exp())
            return float(decimal.Decimal(alpha) * s * (1 - s))
    if kind == "triangle":
        return alpha * max(0.0, 1.0 - alpha * abs(x))
    raise AssertionError(kind)


def test_forward_is_heaviside_with_h0_equal_0():
    z = spike(X, Surrogate())
    assert z.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert z.dtype == X.dtype


@pytest.mark.parametrize("kind", sorted(SURROGATES))
@pytest.mark.parametrize("alpha", [0.5, 2.0, 10.0, 100.0])
def test_gradient_equals_formula(kind, alpha):
    x = X.clone().requires_grad_(True)
    upstream = torch.linspace(0.5, 2.0, len(X), dtype=torch.float64)
    spike(x, Surrogate(kind=kind, alpha=alpha)).backward(upstream)
    want = torch.tensor([u * formula(kind, alpha, v) for u, v in zip(upstream.tolist(), X.tolist())],
                        dtype=torch.float64)
    torch.testing.assert_close(x.grad, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", sorted(SURROGATES))
def test_alpha_changes_the_gradient(kind):
    grads = []
    for alpha in (1.0, 5.0):
        x = torch.tensor([0.1], requires_grad=True)
        spike(x, Surrogate(kind=kind, alpha=alpha)).sum().backward()
        grads.append(float(x.grad))
    assert grads[0] != pytest.approx(grads[1])


@pytest.mark.parametrize("kind", ["arctan", "sigmoid", "triangle"])
def test_normalised_surrogates_integrate_to_one(kind):
    x = torch.linspace(-200, 200, 2_000_001, dtype=torch.float64)
    g = surrogate_grad(x, kind, 3.0)
    assert float(torch.trapezoid(g, x)) == pytest.approx(1.0, abs=2e-3)


def test_float32_gradient_matches_float64():
    x32 = X.float().requires_grad_(True)
    spike(x32, Surrogate(kind="fast_sigmoid", alpha=25.0)).sum().backward()
    torch.testing.assert_close(x32.grad.double(), surrogate_grad(X, "fast_sigmoid", 25.0), rtol=1e-6, atol=0)


@pytest.mark.parametrize("kwargs, needle", [
    ({"kind": "fast_sigmoidd"}, "did you mean 'fast_sigmoid'"),
    ({"alpha": 0.0}, "alpha = 0.0 is out of range"),
    ({"alpha": float("nan")}, "alpha = nan is out of range"),
])
def test_bad_surrogate_is_one_line(kwargs, needle):
    with pytest.raises(BiosimError, match=needle) as info:
        Surrogate(**kwargs)
    assert "\n" not in str(info.value)
