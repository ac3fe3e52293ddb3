"""The simulation's progress bar counts whole steps: it ends exactly at its total and never shows a
negative time left (summing float seconds per chunk once overshot 0.3 s and printed ``<-00:00``)."""

import re

import pytest

from biosim import LIF, FixedProbability, Network


@pytest.mark.parametrize("dt_ms,duration_ms", [(0.1, 300.0), (0.1, 0.7), (0.5, 1234.5), (0.1, 0.0)])
def test_progress_bar_never_shows_negative_time_left(capsys, dt_ms, duration_ms):
    net = Network(dt_ms=dt_ms, seed=1)
    exc = net.population("exc", LIF(), 20, init={"v": lambda rng, n: -60 + 10 * rng.random(n)})
    net.connect(exc, exc, "ge", weight=1.0, rule=FixedProbability(p=0.1))
    net.run(duration_ms, progress=True)  # tqdm's "clamping frac" warning would fail the test (warnings are errors)
    err = capsys.readouterr().err
    states = [s for s in re.split(r"[\r\n]", err) if "simulating" in s]
    assert states, err
    assert not any("<-" in s for s in states), states
    total = round(int(round(duration_ms / dt_ms)) * dt_ms * 1e-3, 3)
    assert f"{total:.3f}/{total:.3f} s" in states[-1]
