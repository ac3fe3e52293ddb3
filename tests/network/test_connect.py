"""Connectivity rules: FixedProbability draws each pair independently with probability p, in time
proportional to the synapses (not to n_src x n_tgt)."""

from __future__ import annotations

import numpy as np
import pytest

from biosim.network.connect import FixedProbability


@pytest.mark.parametrize("p", [0.02, 0.3, 0.9])
def test_fixed_probability_is_bernoulli_per_pair(p):
    n_src, n_tgt = 300, 200
    rng = np.random.default_rng(1)
    counts = np.zeros((n_src, n_tgt))
    reps = 20
    for _ in range(reps):
        i, j = FixedProbability(p=p).build(n_src, n_tgt, False, rng)
        assert np.all(np.diff(i) >= 0)  # source-major
        assert np.all((j >= 0) & (j < n_tgt)) and np.all((i >= 0) & (i < n_src))
        key = i * n_tgt + j
        assert np.all(np.diff(key) > 0)  # within a row ascending, no pair twice
        counts[i, j] += 1
    total = reps * n_src * n_tgt
    sd = np.sqrt(total * p * (1 - p))
    assert abs(counts.sum() - total * p) < 5 * sd
    # every row and every column gets its share (binomial per row/column, 5 sigma)
    row_sd = np.sqrt(reps * n_tgt * p * (1 - p))
    assert np.abs(counts.sum(axis=1) - reps * n_tgt * p).max() < 5 * row_sd
    col_sd = np.sqrt(reps * n_src * p * (1 - p))
    assert np.abs(counts.sum(axis=0) - reps * n_src * p).max() < 5 * col_sd
    # the first and last pair of a row are as likely as the others (no edge effect of the gaps)
    assert abs(counts[:, 0].mean() - reps * p) < 5 * np.sqrt(reps * p * (1 - p) / n_src)
    assert abs(counts[:, -1].mean() - reps * p) < 5 * np.sqrt(reps * p * (1 - p) / n_src)


def test_fixed_probability_edges_and_self_connections():
    rng = np.random.default_rng(2)
    i, j = FixedProbability(p=0.0).build(50, 40, False, rng)
    assert len(i) == len(j) == 0
    i, j = FixedProbability(p=1.0).build(5, 7, False, rng)
    assert np.array_equal(i, np.repeat(np.arange(5), 7)) and np.array_equal(j, np.tile(np.arange(7), 5))
    i, j = FixedProbability(p=1.0, allow_self=False).build(6, 6, True, rng)
    assert len(i) == 30 and not np.any(i == j)
    i, j = FixedProbability(p=0.5).build(0, 10, False, rng)
    assert len(i) == 0


def test_fixed_probability_same_seed_same_synapses():
    a = FixedProbability(p=0.1).build(100, 80, False, np.random.default_rng(7))
    b = FixedProbability(p=0.1).build(100, 80, False, np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
