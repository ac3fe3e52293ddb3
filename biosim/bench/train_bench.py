r"""``biosim bench train --against snntorch,norse``: training speed of biosim, snnTorch and norse
on the same network, data and batches, in one process.

Default mode: the network of snnTorch's tutorial 5
---------------------------------------------------

784-1000-10 fully connected, LIF neurons with decay :math:`\beta = 0.95` per step, threshold 1,
reset by subtraction, 25 steps, batch 128, Adam (lr 5e-4, betas 0.9/0.999), loss
:math:`\sum_t \mathrm{CE}(v^{out}_t, y)` on the output layer's membrane potential at every step
(tutorial 5's loss; the output layer spikes and resets too). Input: the pixel intensities in
[0, 1] as a direct current, the same image at every step (tutorial 5 feeds the static image, not
Poisson spikes). Data: the embedded ``mnist5k`` training split, the same batches in the same
order for every library. Each library trains its own copy of the same initial weights (torch's
default ``Linear`` initialisation after ``torch.manual_seed(seed)``), with the same torch thread
count. Timed: whole optimisation steps (forward, loss, backward, Adam), ``n_batches`` per repeat,
``repeats`` repeats interleaved across the libraries after ``warmup`` untimed batches each;
samples/s from the best repeat (``*_all`` lists every repeat).

The three implementations compute the same discrete map :math:`v \leftarrow \beta v + W x` up to
the differences listed in the report's ``differences``:

- ``biosim``: :func:`biosim.learn.fused.lif_sequence` (the whole time loop of a layer in one
  autograd node, Numba kernels); biosim's LIF integrates :math:`\tau \dot v = -v + x` exactly,
  :math:`v \leftarrow \beta v + (1 - \beta) x`, so it is fed :math:`1/(1-\beta)` times the synaptic
  current; arctan surrogate with alpha 2 (snnTorch's ``atan`` default), reset detached.
- ``biosim_stock``: the same with the step-by-step reference layer
  :class:`biosim.learn.layers.LIF` (information only; ratios use ``biosim``).
- ``snntorch``: ``snntorch.Leaky(beta=0.95)`` as in the tutorial (``atan`` surrogate, alpha 2).
  It subtracts the threshold in the step after a spike, after that step's decay: 1, where biosim
  and norse subtract it before the decay (:math:`\beta` by the next step).
- ``norse``: ``norse.torch.LIFBoxCell`` (forward Euler, ``tau_mem_inv = (1 - beta)/dt``: the
  same map), ``reset_subtract``. norse 1.1.0 has no arctan surrogate: SuperSpike, whose alpha it
  ignores (:math:`1/(|x|+1)^2`), and its reset is not detached from the gradient.

All three take the first layer's input current out of the time loop (the image does not change);
``verbatim=True`` instead runs snnTorch as the tutorial is written (``fc1`` inside the loop).
biosim's :class:`~biosim.learn.network.SpikingNet` also computes it once.

``layer=N`` mode: the Open Neuromorphic benchmark
-------------------------------------------------

One ``Linear(N, N)`` + LIF layer, 500 steps, batch 16, Gaussian input, loss = sum of the output
spikes; timed: forward + backward (no optimiser), so biosim's and norse's input gain is folded into
their initial weights here. snnTorch's published benchmark code applies the
``Linear`` inside its time loop (``verbatim=True``); by default all three apply it to the whole
sequence in one matrix product (as norse's ``SequentialState`` does), then run the neurons step by
step (norse's published code passes the whole sequence to ``LIFBoxCell`` as one step, which is
not repeated here).

:func:`run_train_bench` returns the report as a dict and prints nothing; :func:`format_report`
renders it as the text table that ``biosim bench train`` prints (``--json`` prints the dict).
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Callable, Sequence

from biosim.bench.common import fmt, machine
from biosim.errors import BiosimError, unknown

__all__ = ["COMPETITORS", "run_train_bench", "format_report"]

#: competitor name -> what runs
COMPETITORS = {
    "snntorch": "snnTorch: snntorch.Leaky (atan surrogate)",
    "norse": "norse 1.1.0: norse.torch.LIFBoxCell (SuperSpike surrogate)",
}

BETA = 0.95  # decay per step of the tutorial network
SURROGATE_ALPHA = 2.0  # snnTorch's atan default
LR = 5e-4
BETAS = (0.9, 0.999)

_DIFFERENCES = {
    "biosim": "exact-integration LIF fed 1/(1-beta) x the synaptic current (same map as snnTorch); reset by "
              "subtraction before the decay, detached; arctan surrogate alpha 2; whole time loop fused "
              "(biosim.learn.fused)",
    "biosim_stock": "as biosim but the step-by-step reference layer biosim.learn.layers.LIF",
    "snntorch": "snntorch.Leaky(beta=0.95): reset subtracted one step later, after the decay (reset_delay); "
                "atan surrogate alpha 2; reset detached",
    "norse": "LIFBoxCell, Euler with tau_mem_inv=(1-beta)/dt (same map), reset_subtract before the decay; "
             "SuperSpike surrogate 1/(|x|+1)^2 (norse 1.1.0 has no arctan and ignores alpha); reset not detached",
}


def _silent(_line: str) -> None:
    pass


def _parse_against(against) -> list[str]:
    if isinstance(against, str):
        against = [a for a in against.split(",")]
    names = [a.strip() for a in against if a and a.strip()]
    for name in names:
        if name not in COMPETITORS:
            raise unknown("competitor", name, COMPETITORS)
    return list(dict.fromkeys(names))


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise BiosimError(f"{name} = {value!r} must be an integer >= {low}")


# ----------------------------------------------------------------------------- imports

def _import_snntorch():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import snntorch
    except ImportError:
        raise BiosimError("bench train --against snntorch needs snnTorch: pip install -c constraints.txt snntorch") from None
    return snntorch


def _import_norse():
    from biosim.learn.norse_backend import import_norse

    return import_norse()


def _versions(names) -> dict:
    import torch

    out = {"torch": torch.__version__}
    try:
        import numba

        out["numba"] = numba.__version__
    except ImportError:  # pragma: no cover - numba is a dependency
        out["numba"] = None
    if "snntorch" in names:
        out["snntorch"] = getattr(_import_snntorch(), "__version__", None)
    if "norse" in names:
        import norse

        out["norse"] = getattr(norse, "__version__", None)
    return out


# ----------------------------------------------------------------------------- networks

def _lif_params():
    from biosim.learn.layers import LIFParams
    from biosim.learn.surrogate import Surrogate

    return LIFParams(tau_mem_ms=-1.0 / math.log(BETA), v_th=1.0, v_reset=0.0, reset="subtract",
                     detach_reset=True, surrogate=Surrogate(kind="arctan", alpha=SURROGATE_ALPHA))


def _norse_params(nt):
    import torch
    from norse.torch.functional.reset import reset_subtract

    dt = 1e-3
    return nt.LIFBoxParameters(tau_mem_inv=torch.as_tensor((1.0 - BETA) / dt), v_leak=torch.as_tensor(0.0),
                               v_th=torch.as_tensor(1.0), v_reset=torch.as_tensor(0.0), method="super",
                               alpha=torch.as_tensor(SURROGATE_ALPHA), reset_method=reset_subtract), dt


def _train_models(names, n_in, hidden, n_out, steps, verbatim):
    """name -> a module mapping a batch ``(B, n_in)`` to the output membrane ``(T, B, n_out)``.

    Each library's weights come from the same seeded draws (two ``torch.nn.Linear``, created in
    the same order), so all start identical when the seed is reset before each.
    """
    import torch

    gain = 1.0 / (1.0 - BETA)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(n_in, hidden)
            self.fc2 = torch.nn.Linear(hidden, n_out)

    def biosim_fused():
        from biosim.learn.fused import lif_sequence

        p = _lif_params()

        class Fused(Net):
            def forward(self, x):
                z1 = lif_sequence(gain * self.fc1(x), p, steps, membrane=False).z
                return lif_sequence(gain * self.fc2(z1), p).v

        return Fused()

    def biosim_stock():
        from biosim.learn.layers import LIF

        p = _lif_params()
        d = p.v_th - p.v_reset

        class Stock(Net):
            def __init__(self):
                super().__init__()
                self.lif1, self.lif2 = LIF(p), LIF(p)

            def forward(self, x):
                cur1 = gain * self.fc1(x)
                s1 = s2 = None
                mems = []
                for _ in range(steps):
                    z1, s1 = self.lif1(cur1, s1)
                    z2, s2 = self.lif2(gain * self.fc2(z1), s2)
                    mems.append(s2.v + z2.detach() * d)  # the potential before the (detached) reset
                return torch.stack(mems)

        return Stock()

    def snntorch_net():
        snn = _import_snntorch()

        class Tutorial(Net):
            def __init__(self):
                super().__init__()
                self.lif1 = snn.Leaky(beta=BETA)
                self.lif2 = snn.Leaky(beta=BETA)

            def forward(self, x):
                mem1 = self.lif1.reset_mem()
                mem2 = self.lif2.reset_mem()
                cur1 = None if verbatim else self.fc1(x)
                mems = []
                for _ in range(steps):
                    spk1, mem1 = self.lif1(self.fc1(x) if verbatim else cur1, mem1)
                    spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
                    mems.append(mem2)
                return torch.stack(mems)

        return Tutorial()

    def norse_net():
        nt = _import_norse()
        p, dt = _norse_params(nt)

        class NorseNet(Net):
            def __init__(self):
                super().__init__()
                self.lif1, self.lif2 = nt.LIFBoxCell(p, dt=dt), nt.LIFBoxCell(p, dt=dt)

            def forward(self, x):
                cur1 = gain * self.fc1(x)
                s1 = s2 = None
                mems = []
                for _ in range(steps):
                    z1, s1 = self.lif1(cur1, s1)
                    z2, s2 = self.lif2(gain * self.fc2(z1), s2)
                    mems.append(s2.v + z2 * p.v_th)  # the potential before the reset
                return torch.stack(mems)

        return NorseNet()

    makers = {"biosim": biosim_fused, "biosim_stock": biosim_stock, "snntorch": snntorch_net, "norse": norse_net}
    return {name: makers[name] for name in names}


def _layer_models(names, n, verbatim):
    """name -> module mapping ``(T, B, n)`` input to ``(T, B, n)`` spikes (Linear + LIF).

    biosim's and norse's LIF take ``(1 - beta) x`` per step where snnTorch's takes ``x``: their
    ``Linear`` starts with ``1/(1-beta)`` times the same seeded weights (no optimiser runs here,
    so this is the same function without an extra pass over the currents).
    """
    import torch

    gain = 1.0 / (1.0 - BETA)

    def scaled(linear):
        with torch.no_grad():
            linear.weight.mul_(gain)
            linear.bias.mul_(gain)
        return linear

    def biosim_fused():
        from biosim.learn.fused import lif_sequence

        p = _lif_params()

        class Layer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = scaled(torch.nn.Linear(n, n))

            def forward(self, x):
                return lif_sequence(self.fc(x), p, membrane=False).z

        return Layer()

    def biosim_stock():
        from biosim.learn.layers import LIF

        p = _lif_params()

        class Layer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc, self.lif = scaled(torch.nn.Linear(n, n)), LIF(p)

            def forward(self, x):
                s, out = None, []
                for cur in self.fc(x).unbind(0):  # unbind: one backward node, not T selects
                    z, s = self.lif(cur, s)
                    out.append(z)
                return torch.stack(out)

        return Layer()

    def snntorch_layer():
        snn = _import_snntorch()

        class Layer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc, self.lif = torch.nn.Linear(n, n), snn.Leaky(beta=BETA)

            def forward(self, x):
                mem = self.lif.reset_mem()
                out = []
                # verbatim: the published benchmark's per-step Linear; else one product, then unbind
                for cur in (x.unbind(0) if verbatim else self.fc(x).unbind(0)):
                    spk, mem = self.lif(self.fc(cur) if verbatim else cur, mem)
                    out.append(spk)
                return torch.stack(out)

        return Layer()

    def norse_layer():
        nt = _import_norse()
        p, dt = _norse_params(nt)

        class Layer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc, self.lif = scaled(torch.nn.Linear(n, n)), nt.LIFBoxCell(p, dt=dt)

            def forward(self, x):
                s, out = None, []
                for cur in self.fc(x).unbind(0):  # unbind: one backward node, not T selects
                    z, s = self.lif(cur, s)
                    out.append(z)
                return torch.stack(out)

        return Layer()

    makers = {"biosim": biosim_fused, "biosim_stock": biosim_stock, "snntorch": snntorch_layer, "norse": norse_layer}
    return {name: makers[name] for name in names}


# ----------------------------------------------------------------------------- timing

def _batches(seed: int, count: int, batch_size: int):
    """``count`` batches ``(x (B, 784) float32 in [0, 1], y int64)`` from mnist5k's training split:
    successive random permutations, full batches only."""
    import numpy as np
    import torch

    from biosim.datasets import load

    ds = load("mnist5k")
    x_all = ds.x_train.reshape(len(ds.x_train), -1)
    n = len(x_all)
    if batch_size > n:
        raise BiosimError(f"batch_size = {batch_size} is larger than mnist5k's {n} training images")
    per_epoch = n // batch_size
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        order = rng.permutation(n)
        for k in range(min(per_epoch, count - len(out))):
            idx = order[k * batch_size:(k + 1) * batch_size]
            x = torch.from_numpy(x_all[idx].astype(np.float32) / np.float32(255.0))
            out.append((x, torch.from_numpy(ds.y_train[idx].astype(np.int64))))
    return out


def _summary(seconds: list[float]) -> dict:
    best = min(seconds)
    return {"seconds": best, "seconds_all": seconds, "seconds_median": statistics.median(seconds),
            "spread": max(seconds) / best - 1.0}


def _ratio(bio: dict, other: dict | None, key: str = "seconds") -> float | None:
    if other is None or not bio.get(key) or not other.get(key):
        return None
    return other[key] / bio[key]


def _run_train(names, *, n_batches, warmup, repeats, hidden, steps, batch_size, seed, verbatim, log):
    import torch
    import torch.nn.functional as F

    batches = _batches(seed, warmup + repeats * n_batches, batch_size)
    n_in = batches[0][0].shape[1]
    n_out = 10
    makers = _train_models(names, n_in, hidden, n_out, steps, verbatim)
    models, opts, losses = {}, {}, {}
    for name, make in makers.items():
        torch.manual_seed(seed)
        models[name] = make()
        opts[name] = torch.optim.Adam(models[name].parameters(), lr=LR, betas=BETAS)
        losses[name] = []

    def step(name, x, y):
        model, opt = models[name], opts[name]
        mem = model(x)  # (T, B, classes)
        # tutorial 5: the sum over steps of the cross-entropy of each step's membrane potential
        loss = steps * F.cross_entropy(mem.reshape(-1, mem.shape[-1]), y.repeat(steps))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    for name in names:
        log(f"bench train: {name}: {warmup} warm-up batches ...")
        for x, y in batches[:warmup]:
            losses[name].append(float(step(name, x, y)))
    seconds = {name: [] for name in names}
    for r in range(repeats):
        chunk = batches[warmup + r * n_batches: warmup + (r + 1) * n_batches]
        for name in names:
            log(f"bench train: {name}: repeat {r + 1}/{repeats}, {n_batches} batches ...")
            last = None
            t0 = time.perf_counter()
            for x, y in chunk:
                last = step(name, x, y)
            seconds[name].append(time.perf_counter() - t0)
            losses[name].append(float(last))
    libs = {}
    x0, y0 = batches[0]
    for name in names:
        with torch.no_grad():  # the first batch again, after training
            mem = models[name](x0)
            again = float(steps * F.cross_entropy(mem.reshape(-1, mem.shape[-1]), y0.repeat(steps)))
        s = _summary(seconds[name])
        first, final = losses[name][0], losses[name][-1]
        libs[name] = {"samples_per_s": n_batches * batch_size / s["seconds"],
                      "samples_per_s_all": [n_batches * batch_size / v for v in seconds[name]],
                      **s, "first_loss": first, "final_loss": final, "first_batch_loss_after": again,
                      "loss_dropped": bool(again < first), "final_below_first": bool(final < first),
                      "differences": _DIFFERENCES[name]}
    return libs


def _run_layer(names, *, n, steps, batch_size, iterations, warmup, repeats, seed, verbatim, log):
    import torch

    makers = _layer_models(names, n, verbatim)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, batch_size, n, generator=gen)
    models = {}
    for name, make in makers.items():
        torch.manual_seed(seed)
        models[name] = make()
    spikes = {}

    def once(name):
        model = models[name]
        for q in model.parameters():
            q.grad = None
        out = model(x)
        out.sum().backward()
        return out

    for name in names:
        log(f"bench train --layer {n}: {name}: warm-up ...")
        for _ in range(warmup):
            spikes[name] = float(once(name).detach().mean())
    seconds = {name: [] for name in names}
    for r in range(repeats):
        for name in names:
            log(f"bench train --layer {n}: {name}: repeat {r + 1}/{repeats}, {iterations} x forward+backward ...")
            t0 = time.perf_counter()
            for _ in range(iterations):
                once(name)
            seconds[name].append((time.perf_counter() - t0) / iterations)
    libs = {}
    for name in names:
        s = _summary(seconds[name])
        libs[name] = {"ms": 1e3 * s["seconds"], "ms_all": [1e3 * v for v in seconds[name]],
                      "ms_median": 1e3 * s["seconds_median"], "spread": s["spread"],
                      "spike_rate": spikes.get(name), "differences": _DIFFERENCES[name]}
    return libs


# ----------------------------------------------------------------------------- report

def _train_lines(report: dict, add) -> None:
    libs = report["libraries"]
    add(f"bench train: {report['network']}, {report['steps']} steps, batch {report['batch_size']}, "
        f"Adam lr {LR:g}; mnist5k, direct-current input; {report['threads']} torch thread(s)")
    add(f"{report['n_batches']} timed batches x {report['repeats']} interleaved repeats after "
        f"{report['warmup_batches']} warm-up batches; samples/s of the best repeat"
        + ("; competitors verbatim" if report["verbatim"] else ""))
    head = f"{'library':<16}{'samples/s':>11}{'median':>10}{'spread':>8}{'s/repeat':>10}{'loss first':>12}{'final':>8}{'biosim x':>10}"
    add(head)
    add("-" * len(head))
    bio = libs["biosim"]
    for name, lib in libs.items():
        ratio = bio["samples_per_s"] / lib["samples_per_s"]
        med = report["n_batches"] * report["batch_size"] / lib["seconds_median"]
        add(f"{name:<16}{lib['samples_per_s']:>11.0f}{med:>10.0f}{100 * lib['spread']:>7.0f}%"
            f"{lib['seconds']:>10.3f}{lib['first_loss']:>12.2f}{lib['final_loss']:>8.2f}{ratio:>9.2f}x")
    parts = [f"vs {k.split('_vs_')[1]} {fmt(report[k], '.2f')}x" for k in ("speedup_vs_snntorch", "speedup_vs_norse")
             if report.get(k) is not None]
    if parts:
        add("speedup of biosim (samples/s ratio, higher = biosim faster): " + ", ".join(parts))
    bad = [n for n, lib in libs.items() if not (lib["loss_dropped"] and lib["final_below_first"])]
    if bad:
        add(f"WARNING: the loss did not drop for {', '.join(bad)}")


def _layer_lines(report: dict, add) -> None:
    libs = report["libraries"]
    add(f"bench train --layer {report['layer']}: Linear({report['layer']}, {report['layer']}) + LIF, "
        f"{report['steps']} steps, batch {report['batch_size']}, forward + backward; "
        f"{report['threads']} torch thread(s)" + ("; competitors verbatim" if report["verbatim"] else ""))
    add(f"{report['iterations']} iterations x {report['repeats']} interleaved repeats; ms of the best repeat")
    head = f"{'library':<16}{'ms':>10}{'median':>10}{'spread':>8}{'spikes/step':>13}{'biosim x':>10}"
    add(head)
    add("-" * len(head))
    bio = libs["biosim"]
    for name, lib in libs.items():
        add(f"{name:<16}{lib['ms']:>10.2f}{lib['ms_median']:>10.2f}{100 * lib['spread']:>7.0f}%"
            f"{fmt(lib['spike_rate'], '.3f'):>13}{lib['ms'] / bio['ms']:>9.2f}x")
    parts = [f"vs {k.split('_vs_')[1]} {fmt(report[k], '.2f')}x" for k in ("speedup_vs_snntorch", "speedup_vs_norse")
             if report.get(k) is not None]
    if parts:
        add("speedup of biosim (time ratio, higher = biosim faster): " + ", ".join(parts))


def format_report(report: dict) -> str:
    """The report of :func:`run_train_bench` as a text table (several lines, no final newline)."""
    lines: list[str] = []
    (_train_lines if report["mode"] == "train" else _layer_lines)(report, lines.append)
    return "\n".join(lines)


def run_train_bench(against: Sequence[str] | str, layer: int | None = None, n_batches: int | None = None,
                    threads: int | None = None, seed: int = 0, *, warmup: int | None = None, repeats: int = 3,
                    hidden: int = 1000, steps: int | None = None, batch_size: int | None = None, stock: bool = True,
                    verbatim: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Time training in biosim and the competitors in ``against``, in this process; return the report.

    Parameters
    ----------
    against : list of str, or a comma-separated str
        Competitors from :data:`COMPETITORS` (``snntorch``, ``norse``); may be empty.
    layer : int, optional
        Run the Open Neuromorphic single-layer benchmark with ``Linear(layer, layer)`` + LIF
        instead of training the tutorial network.
    n_batches : int, optional
        Timed optimisation steps per repeat (default 20); in ``layer`` mode timed forward+backward
        iterations per repeat (default 10 for ``layer <= 1024``, else 2).
    threads : int, optional
        torch threads for every library (default: ``torch.get_num_threads()``); restored afterwards.
    seed : int
        Seed of the initial weights (identical for every library), the batch order and the
        ``layer`` input.
    warmup : int, optional
        Untimed batches (iterations) per library first, >= 1 (default 3; ``layer`` mode 1): they
        compile biosim's kernels, and the first one gives ``first_loss``.
    repeats : int
        Timed repeats, interleaved across the libraries; the best one is reported.
    hidden : int
        Hidden layer size (tutorial: 1000).
    steps : int, optional
        Time steps (default 25; ``layer`` mode 500).
    batch_size : int, optional
        Samples per batch (default 128; ``layer`` mode 16).
    stock : bool
        Also time biosim's step-by-step reference layer (``biosim_stock``; information only).
    verbatim : bool
        Run snnTorch as its published code does (first ``Linear`` inside the time loop) instead of
        with the input projection computed once for all steps.
    log : callable, optional
        Receives a line as each library's warm-up and each repeat starts (the CLI prints them on
        stderr); default: silent.

    Returns
    -------
    dict
        ``mode`` (``train`` or ``layer``), ``libraries`` (per library: ``samples_per_s``,
        ``seconds`` per repeat of ``n_batches`` batches, ``*_all``, ``*_median``, ``spread``
        (slowest / best - 1), ``first_loss`` (first batch, before any update), ``final_loss``
        (last timed batch), ``first_batch_loss_after`` (the first batch again after training),
        ``loss_dropped`` (that is below ``first_loss``), ``final_below_first``; in layer mode ``ms`` per
        forward+backward instead), ``speedup_vs_snntorch`` and ``speedup_vs_norse`` (best-of
        ratios, higher = biosim faster; None when not run), their ``*_median`` versions,
        ``n_batches``, ``threads``, the settings and the machine.
    """
    import torch

    log = log or _silent
    comps = _parse_against(against)
    if layer is not None:
        _check_int("layer", layer, 1)
    for name, value, low in (("n_batches", n_batches, 1), ("threads", threads, 1), ("warmup", warmup, 1),
                             ("steps", steps, 1), ("batch_size", batch_size, 1)):
        if value is not None:
            _check_int(name, value, low)
    _check_int("repeats", repeats, 1)
    _check_int("hidden", hidden, 1)
    names = ["biosim", *(["biosim_stock"] if stock else []), *comps]
    for comp in comps:  # fail before any work when a competitor is not installed
        (_import_snntorch if comp == "snntorch" else _import_norse)()
    old_threads = torch.get_num_threads()
    threads = threads or old_threads
    torch.set_num_threads(threads)
    try:
        if layer is None:
            steps = steps or 25
            batch_size = batch_size or 128
            n_batches = n_batches or 20
            warmup = 3 if warmup is None else warmup
            libs = _run_train(names, n_batches=n_batches, warmup=warmup, repeats=repeats, hidden=hidden,
                              steps=steps, batch_size=batch_size, seed=seed, verbatim=verbatim, log=log)
            report = {"mode": "train", "network": f"784-{hidden}-10 LIF (beta {BETA})", "dataset": "mnist5k",
                      "input": "direct current: pixel intensities in [0, 1] at every step (snnTorch tutorial 5)",
                      "steps": steps, "batch_size": batch_size, "n_batches": n_batches, "warmup_batches": warmup,
                      "repeats": repeats, "optimizer": {"kind": "adam", "lr": LR, "betas": list(BETAS)}}
            key = "seconds"
        else:
            steps = steps or 500
            batch_size = batch_size or 16
            n_batches = n_batches or (10 if layer <= 1024 else 2)
            warmup = 1 if warmup is None else warmup
            libs = _run_layer(names, n=layer, steps=steps, batch_size=batch_size, iterations=n_batches,
                              warmup=warmup, repeats=repeats, seed=seed, verbatim=verbatim, log=log)
            report = {"mode": "layer", "layer": layer, "steps": steps, "batch_size": batch_size,
                      "iterations": n_batches, "n_batches": n_batches, "warmup_iterations": warmup,
                      "repeats": repeats}
            key = "ms"
    finally:
        torch.set_num_threads(old_threads)
    bio = libs["biosim"]
    for comp in COMPETITORS:
        other = libs.get(comp)
        report[f"speedup_vs_{comp}"] = _ratio(bio, other, key)
        report[f"speedup_vs_{comp}_median"] = _ratio(bio, other, key + "_median")
    report.update(libraries=libs, threads=threads, seed=seed, verbatim=verbatim, against=comps,
                  machine=machine(**_versions(comps)))
    return report
