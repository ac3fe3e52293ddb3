"""Connectivity rules: which source neuron connects to which target.

Each rule turns ``(n_src, n_tgt, same_population, rng)`` into index arrays ``(i, j)``; the network
sorts them by source (stably, so the synapses of one source keep their order) and stores CSR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biosim.errors import BiosimError

__all__ = ["AllToAll", "OneToOne", "FixedProbability", "Explicit", "Rule"]


@dataclass(frozen=True, kw_only=True)
class AllToAll:
    """Every source to every target (without self-connections unless ``allow_self``)."""

    allow_self: bool = True

    def expected(self, n_src: int, n_tgt: int) -> float:
        return float(n_src) * n_tgt

    def build(self, n_src, n_tgt, same, rng):
        i = np.repeat(np.arange(n_src, dtype=np.int64), n_tgt)
        j = np.tile(np.arange(n_tgt, dtype=np.int64), n_src)
        if same and not self.allow_self:
            keep = i != j
            i, j = i[keep], j[keep]
        return i, j


@dataclass(frozen=True, kw_only=True)
class OneToOne:
    """Source k to target k; both sides must have the same size."""

    def expected(self, n_src: int, n_tgt: int) -> float:
        return float(min(n_src, n_tgt))

    def build(self, n_src, n_tgt, same, rng):
        if n_src != n_tgt:
            raise BiosimError(f"one-to-one needs equal sizes, got {n_src} sources and {n_tgt} targets")
        k = np.arange(n_src, dtype=np.int64)
        return k, k.copy()


@dataclass(frozen=True, kw_only=True)
class FixedProbability:
    """Each pair connected independently with probability ``p`` (Brian2's ``connect(p=...)``)."""

    p: float
    allow_self: bool = True

    def __post_init__(self):
        if not (0.0 <= self.p <= 1.0):
            raise BiosimError(f"connection probability p = {self.p!r} is out of range (must be in [0, 1])")

    def expected(self, n_src: int, n_tgt: int) -> float:
        return float(n_src) * n_tgt * self.p

    def build(self, n_src, n_tgt, same, rng):
        rows = max(1, int(4_000_000 // max(n_tgt, 1)))
        parts_i, parts_j = [], []
        for start in range(0, n_src, rows):
            stop = min(n_src, start + rows)
            mask = rng.random((stop - start, n_tgt)) < self.p
            if same and not self.allow_self:
                k = np.arange(start, min(stop, n_tgt))
                mask[k - start, k] = False
            ii, jj = np.nonzero(mask)
            parts_i.append(ii + start)
            parts_j.append(jj)
        return np.concatenate(parts_i).astype(np.int64), np.concatenate(parts_j).astype(np.int64)


@dataclass(frozen=True)
class Explicit:
    """Given index arrays (for example Brian2's ``S.i[:]`` and ``S.j[:]``)."""

    i: np.ndarray
    j: np.ndarray

    def expected(self, n_src: int, n_tgt: int) -> float:
        return float(len(self.i))

    def build(self, n_src, n_tgt, same, rng):
        i = np.array(self.i, dtype=np.int64).ravel()  # copies: the caller's arrays stay theirs
        j = np.array(self.j, dtype=np.int64).ravel()
        if i.shape != j.shape:
            raise BiosimError(f"explicit connectivity needs i and j of equal length, got {len(i)} and {len(j)}")
        if len(i) and (i.min() < 0 or i.max() >= n_src or j.min() < 0 or j.max() >= n_tgt):
            raise BiosimError(f"explicit connectivity indices out of range: sources 0..{n_src - 1}, targets 0..{n_tgt - 1}")
        return i, j


Rule = AllToAll | OneToOne | FixedProbability | Explicit
