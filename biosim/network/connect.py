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
        """The connected pairs in source-major order, drawn in time proportional to their number:
        the gaps between connected pairs along the ``n_src * n_tgt`` pairs (row by row) are
        geometric with parameter ``p``, which connects each pair independently with probability
        ``p`` (no dense ``n_src x n_tgt`` matrix of uniforms)."""
        n_pairs = int(n_src) * int(n_tgt)
        if self.p == 0.0 or n_pairs == 0:
            e = np.zeros(0, np.int64)
            return e, e.copy()
        chunk = int(min(max(n_pairs * self.p * 1.02 + 64, 1024), 8_000_000))
        parts, last = [], -1
        while True:
            pos = last + np.cumsum(rng.geometric(self.p, size=chunk))
            if pos[-1] >= n_pairs:
                parts.append(pos[:np.searchsorted(pos, n_pairs)])
                break
            parts.append(pos)
            last = int(pos[-1])
        pos = np.concatenate(parts) if len(parts) > 1 else parts[0]
        ends = np.searchsorted(pos, np.arange(1, n_src + 1, dtype=np.int64) * n_tgt)  # rows' ends (no division)
        i = np.repeat(np.arange(n_src, dtype=np.int64), np.diff(ends, prepend=0))
        j = pos - i * n_tgt
        if same and not self.allow_self:
            keep = i != j
            i, j = i[keep], j[keep]
        return i, j


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
