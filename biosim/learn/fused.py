r"""A LIF layer's whole time loop as one autograd node (fast BPTT training on CPU).

:func:`lif_sequence` computes, for all ``T`` steps at once, what ``T`` calls of
:func:`biosim.learn.layers.lif_step` compute (``integration="exact"``), with the same float
operations in the same order: the spikes are identical and the membrane potentials bitwise
equal. Autograd sees one node instead of about ten per step. The forward pass writes into
``(T, ...)`` buffers and evaluates the surrogate derivative while each step's data is in cache;
the backward pass runs the adjoint recurrence by hand. With :math:`c = 1 - \beta_m` and
:math:`u_t = c\,(x_t + v_{leak})` (the input current :math:`x_t`):

.. math::

    v^-_t = \beta_m v_{t-1} + u_t,\quad z_t = H(v^-_t - v_{th}),\quad
    v_t = v^-_t - z_t (v_{th} - v_{reset})\ \text{(subtract)}\ \text{or}\
          v^-_t - z_t (v^-_t - v_{reset})\ \text{(zero)},\quad v_{-1} = v_{leak}

and backwards from :math:`\bar v_{T-1} = 0`, with :math:`\sigma'_t = \sigma'(v^-_t - v_{th})` the
surrogate derivative and :math:`\bar z_t, \bar v^{-,out}_t` the gradients arriving at the outputs:

.. math::

    \overline{v^-_t} = \bar v^{-,out}_t + \Big(\bar z_t + \bar v_t \frac{\partial v_t}{\partial z_t}\Big)\sigma'_t
                       + \bar v_t \frac{\partial v_t}{\partial v^-_t},\quad
    \bar v_{t-1} = \beta_m \overline{v^-_t},\quad \bar x_t = c\,\overline{v^-_t}

(the bracket's second term is absent with ``detach_reset``). For reset by subtraction with
``detach_reset`` (the defaults) this is the linear scan
:math:`g_t = c\,\sigma'_t \bar z_t + c\,\bar v^{-,out}_t + \beta_m g_{t+1}`, :math:`\bar x_t = g_t`;
for an input held constant over the steps (``steps=...``: an image as a direct current) only
:math:`\sum_t g_t = \sum_s w_s (\ldots)_s` with :math:`w_s = \sum_{k=0}^{s} \beta_m^k` is needed.

On CPU float32 / float64 tensors the forward loop (every reset) and that scan run in Numba
kernels (compiled on first use, about a second), split over ``torch.get_num_threads()`` threads
for large layers; otherwise (other devices or dtypes, ``impl="torch"``, and the backward pass of
the other resets) the loop runs PyTorch operations. Gradients agree with autograd through the
reference layer up to float rounding (the sums run in another order). Only
``integration="exact"`` is supported.
"""

from __future__ import annotations

import math
import os
import threading
from typing import NamedTuple

import numpy as np
import torch

from biosim.errors import BiosimError, unknown
from biosim.learn.layers import LIFParams
from biosim.learn.surrogate import numba_grad, surrogate_grad
from biosim.neurons.layer import membrane as _membrane
from biosim.neurons.layer import reset_subtract as _reset_subtract
from biosim.neurons.layer import reset_zero as _reset_zero

__all__ = ["LIFSequence", "lif_sequence", "FusedLIF", "FusedLinearLIF", "IMPLS"]

#: implementations of the time loop: ``auto`` (Numba for CPU float tensors, else torch)
IMPLS = ("auto", "numba", "torch")

#: columns per cache block in the forward kernel
_BLOCK = 2048

#: layers with fewer elements per step than this run their Numba kernel in one thread
_PARALLEL_MIN = 1 << 15


class LIFSequence(NamedTuple):
    """Output of :func:`lif_sequence`: spikes ``z`` ``(T, *S)`` and the membrane potential before
    the reset ``v`` ``(T, *S)`` (the value the threshold sees; None with ``membrane=False``)."""

    z: torch.Tensor
    v: torch.Tensor | None


# ----------------------------------------------------------------------------- Numba kernels

_backward = None
_forwards: dict = {}
_kernels_lock = threading.Lock()


def _forward_kernel(kind: str, dtype: str):
    """The forward kernel for surrogate ``kind`` in ``dtype`` (compiled once per process, about a
    second): the membrane and reset functions of :mod:`biosim.neurons.layer` and the surrogate
    derivative of :func:`biosim.learn.surrogate.numba_grad`, inlined into loops LLVM vectorises."""
    with _kernels_lock:
        key = (kind, dtype)
        if key not in _forwards:
            from numba import njit

            grad = numba_grad(kind, dtype)

            # No on-disk cache: the kernel closes over the surrogate chosen at run time.
            @njit(cache=False, nogil=True, error_model="numpy")
            def forward(cur, ustride, steps, j0, j1, b, c, add_leak, th, d, vr, vleak, alpha, scale, reset_zero,
                        store_v, z, vpre, sg, v, x):
                # every branch is outside the inner loops, which LLVM then vectorises
                zero = b - b
                one = zero + 1
                for j in range(j0, j1):
                    v[j] = vleak
                scratch = np.empty(_BLOCK, dtype=v.dtype)
                for t in range(steps):
                    uo = t * ustride
                    # blocks of columns small enough that a block's rows stay in the L1/L2 cache
                    for b0 in range(j0, j1, _BLOCK):
                        b1 = min(b0 + _BLOCK, j1)
                        n = b1 - b0
                        ut = cur[uo + b0:uo + b1]
                        vt = vpre[t, b0:b1] if store_v else scratch[:n]
                        zt = z[t, b0:b1]
                        st = sg[t, b0:b1]
                        vv = v[b0:b1]
                        xx = x[b0:b1]
                        # lif_step: v_pre = membrane(v, drive), drive = x (+ v_leak if nonzero)
                        if add_leak:
                            for j in range(n):
                                vt[j] = _membrane(vv[j], ut[j] + vleak, b, c)
                        else:
                            for j in range(n):
                                vt[j] = _membrane(vv[j], ut[j], b, c)
                        for j in range(n):
                            xj = vt[j] - th
                            xx[j] = xj
                            zt[j] = one if xj > zero else zero
                        if reset_zero:
                            for j in range(n):
                                vv[j] = _reset_zero(vt[j], zt[j], vr)
                        else:
                            for j in range(n):
                                vv[j] = _reset_subtract(vt[j], zt[j], d)
                        for j in range(n):
                            st[j] = scale * grad(xx[j], alpha)

            _forwards[key] = forward
    return _forwards[key]


def _backward_kernels():
    """Compile (once per process) and return ``(backward_scan, backward_sum)``."""
    global _backward
    with _kernels_lock:
        if _backward is None:
            from numba import njit

            # No on-disk cache: compiling takes well under a second.
            @njit(cache=False, nogil=True, error_model="numpy")
            def backward_scan(gz, gv, has_gz, has_gv, sg, b, c, j0, j1, out):
                # out[t] = gz[t] sg[t] + c gv[t] + b out[t+1]   (sg already holds c sigma')
                steps = out.shape[0]
                n = j1 - j0
                for t in range(steps - 1, -1, -1):
                    ot = out[t, j0:j1]
                    st = sg[t, j0:j1]
                    if has_gz:
                        gt = gz[t, j0:j1]
                        for j in range(n):
                            ot[j] = gt[j] * st[j]
                    else:
                        ot[:] = c - c
                    if has_gv:
                        ht = gv[t, j0:j1]
                        for j in range(n):
                            ot[j] += c * ht[j]
                    if t < steps - 1:
                        nt = out[t + 1, j0:j1]
                        for j in range(n):
                            ot[j] += b * nt[j]

            @njit(cache=False, nogil=True, error_model="numpy")
            def backward_sum(gz, gv, has_gz, has_gv, sg, w, c, j0, j1, out):
                # out = sum_s w_s (gz[s] sg[s] + c gv[s])
                steps = sg.shape[0]
                n = j1 - j0
                oo = out[j0:j1]
                oo[:] = c - c
                for s in range(steps):
                    ws = w[s]
                    st = sg[s, j0:j1]
                    if has_gz:
                        gt = gz[s, j0:j1]
                        for j in range(n):
                            oo[j] += ws * (gt[j] * st[j])
                    if has_gv:
                        ht = gv[s, j0:j1]
                        cw = c * ws
                        for j in range(n):
                            oo[j] += cw * ht[j]

            _backward = (backward_scan, backward_sum)
    return _backward


_pool = None
_pool_workers = 0


def _forget_pool() -> None:  # a forked child has none of the parent's threads
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _run_chunks(fn, m: int, *args_before, tail=()):
    """Call ``fn(*args_before, j0, j1, *tail)`` over column chunks of ``range(m)`` in threads."""
    global _pool, _pool_workers
    n = min(torch.get_num_threads(), max(1, m // _PARALLEL_MIN))
    if n <= 1:
        fn(*args_before, 0, m, *tail)
        return
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor

        _pool_workers = max(1, (os.cpu_count() or 2) - 1)
        _pool = ThreadPoolExecutor(max_workers=_pool_workers, thread_name_prefix="biosim-fused")
    n = min(n, _pool_workers + 1)
    edges = [m * i // n for i in range(n + 1)]
    futures = [_pool.submit(fn, *args_before, edges[i], edges[i + 1], *tail) for i in range(1, n)]
    fn(*args_before, edges[0], edges[1], *tail)
    for f in futures:
        f.result()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


# ----------------------------------------------------------------------------- autograd node

def _use_numba(t: torch.Tensor, impl: str) -> bool:
    if impl == "torch":
        return False
    ok = t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and not t.is_sparse
    if impl == "numba" and not ok:
        raise BiosimError(f"lif_sequence impl='numba' needs a CPU float32/float64 tensor, got {t.dtype} on {t.device}")
    return ok


class _LIFSeq(torch.autograd.Function):
    """cur ``(T, *S)`` or, with ``steps``, ``(*S)`` held for ``steps`` steps -> (z, v_pre)."""

    @staticmethod
    def forward(ctx, cur, steps, p, membrane, impl):
        b = p.beta_mem()
        c = 1.0 - b
        static = steps is not None
        T = steps if static else cur.shape[0]
        shape = tuple(cur.shape) if static else tuple(cur.shape[1:])
        fast = p.reset == "subtract" and p.detach_reset
        keep_v = membrane or not fast  # the general backward needs v_pre
        z = cur.new_empty((T, *shape))
        vpre = cur.new_empty((T, *shape)) if keep_v else cur.new_empty((0,))
        sg = cur.new_empty((T, *shape))
        d = p.v_th - p.v_reset
        kind, alpha = p.surrogate.kind, float(p.surrogate.alpha)
        scale = c if fast else 1.0  # c folded into sigma' on the fast path
        numba = _use_numba(cur, impl)
        if numba:
            m = math.prod(shape)
            f = np.float32 if cur.dtype == torch.float32 else np.float64
            forward = _forward_kernel(kind, "float32" if cur.dtype == torch.float32 else "float64")
            v = np.empty(m, dtype=f)
            x = np.empty(m, dtype=f)
            zz, ss = _np(z).reshape(T, m), _np(sg).reshape(T, m)
            vv = _np(vpre).reshape(T, m) if keep_v else np.empty((1, 1), dtype=f)
            _run_chunks(forward, m, _np(cur.contiguous()).reshape(-1), 0 if static else m, T,
                        tail=(f(b), f(c), bool(p.v_leak), f(p.v_th), f(d), f(p.v_reset), f(p.v_leak), f(alpha),
                              f(scale), p.reset == "zero", keep_v, zz, vv, ss, v, x))
        else:
            # the same functions as lif_step, on tensors (this path serves other devices and dtypes)
            drive = cur + p.v_leak if p.v_leak else cur
            v = torch.full(shape, p.v_leak, dtype=cur.dtype, device=cur.device)
            for t in range(T):
                vt = _membrane.py_func(v, drive if static else drive[t], b, c)
                if keep_v:
                    vpre[t] = vt
                x = vt - p.v_th
                torch.gt(x, 0.0, out=z[t])
                torch.mul(surrogate_grad(x, kind, alpha), scale, out=sg[t])
                if p.reset == "subtract":
                    v = _reset_subtract.py_func(vt, z[t], d)
                else:
                    v = _reset_zero.py_func(vt, z[t], p.v_reset)
        ctx.p, ctx.static, ctx.fast, ctx.numba = p, static, fast, numba
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(z, vpre, sg)
        if not membrane:
            ctx.mark_non_differentiable(vpre)
        return z, vpre

    @staticmethod
    def backward(ctx, gz, gv):
        z, vpre, sg = ctx.saved_tensors
        p, static = ctx.p, ctx.static
        b = p.beta_mem()
        c = 1.0 - b
        T = z.shape[0]
        shape = z.shape[1:]
        if gz is None and gv is None:  # pragma: no cover - autograd skips the node then
            return None, None, None, None, None
        if ctx.fast and ctx.numba:
            m = math.prod(shape)
            f = np.float32 if z.dtype == torch.float32 else np.float64
            scan, total = _backward_kernels()
            # numpy views broadcast gradients (stride 0, e.g. of a sum) without copying them
            gz2 = _np(gz).reshape(T, m) if gz is not None else np.empty((1, 1), dtype=f)
            gv2 = _np(gv).reshape(T, m) if gv is not None else np.empty((1, 1), dtype=f)
            flags = (gz is not None, gv is not None, _np(sg).reshape(T, m))
            if static:
                out = z.new_empty(shape)
                w = np.cumsum(b ** np.arange(T, dtype=np.float64)).astype(f)  # w_s = sum_{k<=s} b^k
                _run_chunks(total, m, gz2, gv2, *flags, w, f(c), tail=(_np(out).reshape(m),))
            else:
                out = z.new_empty(z.shape)
                _run_chunks(scan, m, gz2, gv2, *flags, f(b), f(c), tail=(_np(out).reshape(T, m),))
            return out, None, None, None, None
        if ctx.fast:
            # g_t = gz_t (c sigma'_t) + c gv_t + b g_{t+1};  the gradient of cur_t is g_t
            if static:
                acc = z.new_zeros(shape)
                w = 1.0
                for s in range(T):
                    if gz is not None:
                        acc.addcmul_(gz[s], sg[s], value=w)
                    if gv is not None:
                        acc.add_(gv[s], alpha=c * w)
                    w = 1.0 + b * w
                return acc, None, None, None, None
            g = z.new_empty(z.shape)
            nxt = None
            for t in range(T - 1, -1, -1):
                gt = g[t]
                if gz is not None:
                    torch.mul(gz[t], sg[t], out=gt)
                    if gv is not None:
                        gt.add_(gv[t], alpha=c)
                else:
                    torch.mul(gv[t], c, out=gt)
                if nxt is not None:
                    gt.add_(nxt, alpha=b)
                nxt = gt
            return g, None, None, None, None
        # other resets: dpre_t = gv_t + gz_tot_t sigma'_t + dpost_t dv_t/dv_pre_t,  dpost_{t-1} = b dpre_t
        d = p.v_th - p.v_reset
        out = z.new_zeros(shape) if static else z.new_empty(z.shape)
        dpost = None
        for t in range(T - 1, -1, -1):
            gzt = gz[t] if gz is not None else z.new_zeros(shape)
            if dpost is not None and not p.detach_reset:
                gzt = gzt - (d if p.reset == "subtract" else (vpre[t] - p.v_reset)) * dpost
            dpre = gzt * sg[t]
            if gv is not None:
                dpre = dpre + gv[t]
            if dpost is not None:
                dpre = dpre + (dpost if p.reset == "subtract" else (1.0 - z[t]) * dpost)
            if static:
                out.add_(dpre, alpha=c)
            else:
                torch.mul(dpre, c, out=out[t])
            dpost = b * dpre
        return out, None, None, None, None


def _check_params(p) -> None:
    if type(p) is not LIFParams:
        raise BiosimError(f"fused LIF layers need plain LIFParams, got {type(p).__name__}")
    if p.integration != "exact":
        raise BiosimError(f"fused LIF layers support integration='exact' only, got '{p.integration}'")


def _check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise unknown("fused LIF implementation", impl, IMPLS)


def lif_sequence(cur: torch.Tensor, p: LIFParams = LIFParams(), steps: int | None = None, *,
                 membrane: bool = True, impl: str = "auto") -> LIFSequence:
    """Run a LIF layer over all time steps in one autograd node.

    Parameters
    ----------
    cur : torch.Tensor
        Input currents ``(T, *S)`` (time first), or ``(*S)`` held constant when ``steps`` is given.
    p : LIFParams
        Layer parameters (``integration="exact"``); the layer starts at ``v = v_leak``.
    steps : int, optional
        Number of steps ``T`` for a constant input (its gradient is then summed over time without
        materialising ``T`` copies).
    membrane : bool
        Also return the pre-reset membrane potentials (differentiable); False saves memory.
    impl : {"auto", "numba", "torch"}
        Implementation of the time loop (the results are the same).

    Returns
    -------
    LIFSequence
        Spikes ``z`` ``(T, *S)``, the same as ``T`` calls of :func:`~biosim.learn.layers.lif_step`,
        and (``membrane``) the potentials ``v^-`` before each reset.
    """
    _check_params(p)
    _check_impl(impl)
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise BiosimError(f"steps = {steps!r} must be an integer >= 1")
    if steps is None and (cur.dim() < 1 or cur.shape[0] < 1):
        raise BiosimError("lif_sequence needs a time dimension of at least one step (or steps=...)")
    if not cur.is_floating_point():
        raise BiosimError(f"lif_sequence needs a floating-point input, got {cur.dtype}")
    z, v = _LIFSeq.apply(cur, steps, p, bool(membrane), impl)
    return LIFSequence(z, v if membrane else None)


class FusedLIF(torch.nn.Module):
    """Module form of :func:`lif_sequence`: ``forward(cur, steps=None) -> LIFSequence``."""

    spiking = True

    def __init__(self, params: LIFParams = LIFParams(), membrane: bool = True, impl: str = "auto"):
        super().__init__()
        _check_params(params)
        _check_impl(impl)
        self.params, self.membrane, self.impl = params, membrane, impl

    def extra_repr(self) -> str:
        return repr(self.params)

    def forward(self, cur: torch.Tensor, steps: int | None = None) -> LIFSequence:
        return lif_sequence(cur, self.params, steps, membrane=self.membrane, impl=self.impl)


class FusedLinearLIF(torch.nn.Module):
    """``Linear(n_in, n_out)`` followed by a LIF layer, over a whole input sequence.

    The linear map is applied to all ``T`` steps in one matrix product, or once when the input is
    constant in time (an expanded view with stride 0 along time, as
    :func:`biosim.learn.encoders.current` returns); then :func:`lif_sequence` runs the neurons.
    ``forward(x_seq)`` maps ``(T, batch, n_in)`` to :class:`LIFSequence` ``(T, batch, n_out)``.
    """

    def __init__(self, n_in: int, n_out: int, params: LIFParams = LIFParams(), bias: bool = True,
                 membrane: bool = False, impl: str = "auto"):
        super().__init__()
        _check_params(params)
        _check_impl(impl)
        self.linear = torch.nn.Linear(n_in, n_out, bias=bias)
        self.params, self.membrane, self.impl = params, membrane, impl

    def extra_repr(self) -> str:
        return repr(self.params)

    def forward(self, x_seq: torch.Tensor) -> LIFSequence:
        steps = x_seq.shape[0]
        if steps > 1 and x_seq.stride(0) == 0:
            return lif_sequence(self.linear(x_seq[0]), self.params, steps, membrane=self.membrane, impl=self.impl)
        return lif_sequence(self.linear(x_seq), self.params, membrane=self.membrane, impl=self.impl)
