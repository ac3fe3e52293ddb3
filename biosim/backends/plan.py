"""The compiled form of a network: flat arrays every backend runs on.

A :class:`Plan` is what :meth:`biosim.network.Network.compile` produces. Neurons of all
populations share one state matrix ``X`` (rows = state variables, columns = neurons); sources
(populations first, then input groups) share one index space for spikes; projections are CSR
blocks in shared synapse arrays. Backends read the plan and advance it in place, chunk by chunk.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Plan", "ChunkInput", "Outputs"]


class Plan(NamedTuple):
    """Network state and structure. Shapes: N neurons, V state rows, P populations, G source
    groups (P populations then the input groups), S sources, L delay-ring slots, R projections,
    Q Poisson inputs, Z plastic projections, M recorded state traces.

    Weights: a projection built with one number as its weight, without STDP, keeps that number
    once (``pr_w[r]``, ``pr_woff[r] = -1``): its synapses cost their 4-byte target only. One with
    per-synapse weights (an array or ``f(rng, n)``) or STDP keeps a weight per synapse: synapse
    ``syn`` (an id in ``tgt``'s order) of projection ``r`` has weight
    ``w[pr_woff[r] + syn - indptr[pr_ptr[r]]]``, so ``w`` holds only those projections' synapses,
    in projection order. A projection with a synapse model has none (``pr_woff[r] = -1``,
    ``pr_w[r] = 0``): its weights are the model's variables in ``S``."""

    X: np.ndarray          # (V, N) state, float32/float64
    C: np.ndarray          # (P, K) model constants per population
    pop_off: np.ndarray    # (P+1,) int64 neuron ranges
    pop_model: np.ndarray  # (P,) int64 index of each population's model in the network's specs
    pop_nvar: np.ndarray   # (P,) int64 number of state rows the model uses
    pop_ref: np.ndarray    # (P,) int64 refractory steps
    ref_until: np.ndarray  # (N,) int64: refractory while step < ref_until
    i_ext: np.ndarray      # (N,) external input, model's current unit
    gate: np.ndarray       # (V, N) int8: 1 where the variable ignores input while refractory
    grp_off: np.ndarray    # (G+1,) int64 source ranges
    hist: np.ndarray       # (L, S) int32 spiking sources per ring slot, grouped
    hist_cnt: np.ndarray   # (L, G) int64 spikes per slot and group
    pr_grp: np.ndarray     # (R,) int64 source group
    pr_row: np.ndarray     # (R,) int64 target state row
    pr_delay: np.ndarray   # (R,) int64 homogeneous delay in steps, -1 for per-synapse delays
    pr_ptr: np.ndarray     # (R,) int64 offset of the projection's indptr block
    pr_stdp: np.ndarray    # (R,) int64 plastic index or -1
    indptr: np.ndarray     # (sum n_src+1,) int64 absolute synapse offsets
    tgt: np.ndarray        # (n_syn,) int32 global target neuron
    w: np.ndarray          # (n_w,) per-synapse weights, state dtype: only of the projections with pr_woff >= 0
    dly: np.ndarray        # (n_syn,) uint16 per-synapse delay steps (empty when unused); the synapses of a
                           # projection with per-synapse delays are ordered by delay within each CSR row
    pi_a: np.ndarray       # (Q,) int64 first target neuron
    pi_b: np.ndarray       # (Q,) int64 one past the last target neuron
    pi_row: np.ndarray     # (Q,) int64 target state row
    pi_w: np.ndarray       # (Q,) weight per input spike, state dtype
    pi_col: np.ndarray     # (Q,) int64 first column of the input in ChunkInput.counts
    st_c: np.ndarray       # (Z, 7) float64: decay_pre, decay_post, a_plus, a_minus, w_min, w_max, multiplicative
    st_proj: np.ndarray    # (Z,) int64 projection index
    st_pre_off: np.ndarray  # (Z,) int64 offset of the source traces in xpre
    st_post_off: np.ndarray  # (Z,) int64 offset of the target traces in xpost
    st_tgt_grp: np.ndarray  # (Z,) int64 target population
    st_rptr_off: np.ndarray  # (Z,) int64 offset of the by-target CSR block in rptr
    xpre: np.ndarray       # traces of sources, state dtype
    xpost: np.ndarray      # traces of targets, state dtype
    rptr: np.ndarray       # by-target CSR offsets (absolute into rsyn)
    rsyn: np.ndarray       # (n_plastic,) int64 synapse ids by target
    rsrc: np.ndarray       # (n_plastic,) int64 local source index of each
    rec_spikes: np.ndarray  # (N,) int8: record this neuron's spikes
    mon_row: np.ndarray    # (M,) int64 state row of each recorded trace
    mon_idx: np.ndarray    # (M,) int64 neuron of each recorded trace
    mon_every: int         # record every this many steps
    pr_syn: np.ndarray     # (R,) int64 synapse-model index (in the network's synapse specs) or -1
    pr_tgt: np.ndarray     # (R,) int64 target population
    pr_c: np.ndarray       # (R, KS) float64 synapse-model constants per projection
    pr_rptr: np.ndarray    # (R,) int64 offset of the projection's by-target CSR block in rptr for on_post, or -1
    S: np.ndarray          # (VS, n_syn) per-synapse variables of synapse models ((1, 1) when unused)
    s_last: np.ndarray     # (n_syn,) int64 step of each synapse's last event ((1,) when unused)
    pr_w: np.ndarray       # (R,) the one weight of every synapse of a projection with pr_woff = -1, state dtype
    pr_woff: np.ndarray    # (R,) int64 where a projection's per-synapse weights start in w, or -1 (see below)


class ChunkInput(NamedTuple):
    """Inputs of one chunk of steps, drawn by the driver so that every backend sees the same."""

    in_ptr: np.ndarray   # (n_steps+1,) int64 offsets into in_src per step
    in_src: np.ndarray   # int64 global source ids spiking at each step (input groups)
    in_grp: np.ndarray   # int64 their group
    counts: np.ndarray   # (n_steps, total Poisson-input targets) int32 spike counts


class Outputs(NamedTuple):
    """Buffers a chunk writes into."""

    sp_step: np.ndarray  # (cap,) int64
    sp_idx: np.ndarray   # (cap,) int32
    rec: np.ndarray      # (n_rec, M) recorded state
