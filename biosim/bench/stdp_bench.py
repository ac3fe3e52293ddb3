"""``biosim bench stdp``: training speed of the Diehl & Cook (2015) STDP network, biosim vs Brian2.

The network and protocol of DESIGN.md section 5 (``models/stdp_mnist.toml``): 784 Poisson inputs
(rate = pixel / 8 * intensity Hz) -> ``n_exc`` adaptive-threshold excitatory neurons through plastic
STDP synapses (all-to-all); each excitatory neuron excites one inhibitory neuron (10.4 on ``ge``),
which inhibits every other excitatory neuron (17.0 on ``gi``). Per training image: normalise each
neuron's input weights to sum 78, show the image 350 ms, then 150 ms of silence, dt 0.5 ms; with
fewer than 5 excitatory spikes show it again with the intensity raised by 1 (every showing is
0.5 s more biological time, so the report gives images/s *and* simulated seconds per wall second).

- ``biosim``: :func:`biosim.experiments.stdp_runner.build_diehl_cook` and
  :func:`~biosim.experiments.stdp_runner.present`, the training loop of ``biosim run stdp_mnist``
  (numba-cpu, float64, one thread). ``build_s``: building the network and a zero-length run, which
  draws the synapses and compiles (or loads from Numba's cache) the kernel; the clock for
  ``images_per_second`` starts after it.
- ``brian2_cython``: the same network in Brian2's runtime device with the cython target (float64,
  one thread), written as in ``tests/equations/test_diehl_cook.py`` (the same equations, thresholds, resets,
  refractoriness, STDP ``on_pre``/``on_post``, ``exponential_euler`` as biosim's choice for ``v``,
  initial values), starting from biosim's initial input weights. The per-image protocol runs in
  Python around one ``Network``: normalise ``w`` (NumPy on ``Synapses.w``), set the
  ``PoissonGroup``'s rates, ``net.run(350 ms)``, rates 0, ``net.run(150 ms)``, count the
  excitatory spikes. One untimed warm-up image first (image 0): it generates and compiles (or loads
  from Brian2's cache) the cython code; ``build_s`` is building the objects, ``first_image_s`` the
  warm-up image. Then ``brian2_images`` images (images 1..k) are timed. ``loop_s`` is the part of
  the timed wall time that Brian2 spent in its time-step loops (``device._last_run_time``): the
  rest is its per-``run`` preparation (code objects, namespace resolution) and the protocol.
  ``Network.run`` starts with ``gc.collect()`` (to warn about objects left out of the network),
  whose cost grows with every Python object in the process -- biosim's and Numba's too, and
  Cython's compiler when this process compiled Brian2's code; ``gc_collect_s`` is one such
  collection, measured before the timed images (two runs per showing pay it).

``ratio_vs_brian2_cython`` = biosim images/s over Brian2's (above 1: biosim is faster), both wall
time of the whole protocol; ``ratio_vs_brian2_cython_loops`` divides by Brian2's images per second of
``loop_s`` instead (Brian2 without its per-``run`` overhead; biosim still on wall time). Brian2 times far fewer
images (cython is slow here), so the two sides see different images; the spikes per showing in the
table show that both networks are equally busy.

:func:`run_stdp_bench` returns the report as a dict and prints nothing; :func:`format_stdp_report`
renders it as the text table that ``biosim bench stdp`` prints (``--json`` prints the dict).
"""

from __future__ import annotations

import gc
import importlib
import time
from collections.abc import Callable

import numpy as np

from biosim.bench.brian2_nets import _brian2_session
from biosim.bench.common import fmt, machine
from biosim.errors import BiosimError, unknown
from biosim.experiments.registry import load_model
from biosim.experiments.stdp_runner import build_diehl_cook, present

__all__ = ["COMPETITORS", "DEFAULT_IMAGES", "run_stdp_bench", "format_stdp_report"]

#: competitor name -> what runs
COMPETITORS = {"brian2": "Brian2 runtime, cython target"}

#: default timed training images on the biosim side (about 20-30 s with 400 neurons on one core)
DEFAULT_IMAGES = 1000

#: the issue's bar and goal for biosim with 400 excitatory neurons, images/s
BAR, GOAL = 30.0, 100.0

W_EI, W_IE = 10.4, 17.0


def _silent(_line: str) -> None:
    pass


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise BiosimError(f"{name} = {value!r} must be an integer >= {low}")


def _parse_against(against) -> list[str]:
    if against is None:
        return []
    if isinstance(against, str):
        against = against.split(",")
    names = [a.strip() for a in against if a and a.strip()]
    for name in names:
        if name not in COMPETITORS:
            raise unknown("competitor", name, COMPETITORS)
    return list(dict.fromkeys(names))


def _protocol() -> dict:
    """The per-image protocol of ``models/stdp_mnist.toml`` (the runner's training loop)."""
    p = load_model("stdp_mnist")["params"]
    keys = ("dt_ms", "present_ms", "rest_ms", "intensity", "min_spikes", "max_showings", "w_sum", "data")
    cfg = {k: p[k] for k in keys}
    for k in ("dt_ms", "present_ms", "rest_ms", "intensity", "w_sum"):
        cfg[k] = float(cfg[k])
    for k in ("min_spikes", "max_showings"):
        cfg[k] = int(cfg[k])
    return cfg


def _side(wall_s: float, showings: list[int], spikes: list[int], cfg: dict) -> dict:
    """Speed of one simulator; ``spikes``: excitatory spikes of each image's last showing, averaged
    over the images shown once (a re-shown image's earlier showings are not counted)."""
    bio_s = sum(showings) * (cfg["present_ms"] + cfg["rest_ms"]) * 1e-3
    once = [s for s, n in zip(spikes, showings) if n == 1]
    return {"images": len(showings), "wall_s": wall_s,
            "images_per_second": len(showings) / wall_s if wall_s > 0 else float("nan"),
            "showings": int(sum(showings)), "bio_seconds": bio_s,
            "bio_seconds_per_second": bio_s / wall_s if wall_s > 0 else float("nan"),
            "spikes_per_showing": float(np.mean(once)) if once else float("nan")}


# ----------------------------------------------------------------------------- biosim

def _run_biosim(images: np.ndarray, n_exc: int, seed: int, cfg: dict, log) -> tuple[dict, tuple]:
    t0 = time.perf_counter()
    net, h = build_diehl_cook(n_exc, int(np.prod(images.shape[1:])), cfg["dt_ms"], seed)
    net.run(0.0)  # draw the synapses and compile (or load) the kernel before the clock starts
    build_s = time.perf_counter() - t0
    w0 = net.weights(h["plastic"], "w")
    log(f"bench stdp: biosim, {len(images)} images with {n_exc} excitatory neurons ...")
    showings, spikes = [], []
    t1 = time.perf_counter()
    for image in images:
        counts, shown = present(net, h, image, cfg, normalize=True)
        showings.append(shown)
        spikes.append(int(counts.sum()))
    wall = time.perf_counter() - t1
    side = _side(wall, showings, spikes, cfg)
    side.update(build_s=build_s, first_image_s=None, loop_s=None,
                mean_theta_mv=float(np.mean(net.state(h["exc"], "theta"))))
    return side, w0


# ----------------------------------------------------------------------------- Brian2

def _import_brian2():
    try:
        import brian2  # noqa: F401
        import Cython  # noqa: F401
    except ImportError:
        raise BiosimError("bench stdp --against brian2 needs Brian2 and Cython: pip install -c constraints.txt "
                          "brian2 cython (or --against '' for biosim alone)") from None


def _run_brian2(images: np.ndarray, n_exc: int, seed: int, cfg: dict, w0: tuple, log) -> dict:
    """The network in Brian2 (cython): one untimed warm-up image (images[0]), then images[1:] timed."""
    t0 = time.perf_counter()
    with _brian2_session("cython"):
        import brian2 as b2
        from brian2 import Hz, mV, ms
        from brian2.devices.device import get_device

        b2.start_scope()
        b2.seed(seed)
        old_dt = b2.defaultclock.dt
        b2.defaultclock.dt = cfg["dt_ms"] * ms
        try:
            n_in = int(np.prod(images.shape[1:]))
            eqs = """
            dv/dt = ((v_rest - v) + ge * (e_exc - v) + gi * (e_inh - v)) / tau_mem : volt (unless refractory)
            dge/dt = -ge / tau_ge : 1
            dgi/dt = -gi / tau_gi : 1
            """
            ns_e = {"tau_mem": 100 * ms, "v_rest": -65 * mV, "v_reset": -65 * mV, "v_thresh": -52 * mV,
                    "offset": 20 * mV, "theta_plus": 0.05 * mV, "tau_theta": 1e7 * ms, "tau_ge": 1 * ms,
                    "tau_gi": 2 * ms, "e_exc": 0 * mV, "e_inh": -100 * mV}
            ns_i = {"tau_mem": 10 * ms, "v_rest": -60 * mV, "v_reset": -45 * mV, "v_thresh": -40 * mV,
                    "tau_ge": 1 * ms, "tau_gi": 2 * ms, "e_exc": 0 * mV, "e_inh": -85 * mV}
            ns_s = {"tau_pre": 20 * ms, "tau_post1": 20 * ms, "tau_post2": 40 * ms, "nu_pre": 1e-4,
                    "nu_post": 1e-2, "w_max": 1.0}
            inp = b2.PoissonGroup(n_in, rates=0 * Hz, name="input")
            exc = b2.NeuronGroup(n_exc, eqs + "dtheta/dt = -theta / tau_theta : volt",
                                 threshold="v > v_thresh + theta - offset", reset="v = v_reset; theta += theta_plus",
                                 refractory=5 * ms, method="exponential_euler", namespace=ns_e, name="exc")
            inh = b2.NeuronGroup(n_exc, eqs, threshold="v > v_thresh", reset="v = v_reset", refractory=2 * ms,
                                 method="exponential_euler", namespace=ns_i, name="inh")
            exc.v = -105 * mV  # v_rest - 40 mV, as biosim's models start
            exc.theta = 20 * mV
            inh.v = -100 * mV
            stdp = b2.Synapses(inp, exc, """
                               w : 1
                               dpre/dt = -pre / tau_pre : 1 (event-driven)
                               dpost1/dt = -post1 / tau_post1 : 1 (event-driven)
                               dpost2/dt = -post2 / tau_post2 : 1 (event-driven)
                               """,
                               on_pre="ge_post += w; pre = 1; w = clip(w - nu_pre * post1, 0, w_max)",
                               on_post="w = clip(w + nu_post * pre * post2, 0, w_max); post1 = 1; post2 = 1",
                               namespace=ns_s, name="syn00")
            i0, j0, w_init = w0
            stdp.connect(i=np.asarray(i0), j=np.asarray(j0))
            stdp.w = np.asarray(w_init, dtype=np.float64)
            ei = b2.Synapses(exc, inh, "w : 1", on_pre="ge_post += w", name="syn01")
            ei.connect(j="i")
            ei.w = W_EI
            ie = b2.Synapses(inh, exc, "w : 1", on_pre="gi_post += w", name="syn02")
            ie.connect("i != j")
            ie.w = W_IE
            mon = b2.SpikeMonitor(exc, record=False, name="exc_spikes")
            net = b2.Network(inp, exc, inh, stdp, ei, ie, mon)
            post = np.asarray(stdp.j[:])
            build_s = time.perf_counter() - t0
            device = get_device()

            def normalize():
                w = np.asarray(stdp.w[:])
                sums = np.bincount(post, weights=w, minlength=n_exc)
                factor = np.ones(n_exc)
                nz = sums != 0
                factor[nz] = cfg["w_sum"] / sums[nz]
                stdp.w[:] = w * factor[post]

            def show(image, loops):
                rates = image.reshape(-1).astype(np.float64) / 8.0
                intensity = cfg["intensity"]
                for showing in range(1, cfg["max_showings"] + 1):
                    normalize()
                    before = np.asarray(mon.count[:]).copy()
                    inp.rates = np.minimum(rates * intensity, 1e3 / cfg["dt_ms"]) * Hz
                    net.run(cfg["present_ms"] * ms, namespace={})
                    loops.append(float(device._last_run_time))
                    n_spikes = int((np.asarray(mon.count[:]) - before).sum())
                    inp.rates = 0 * Hz
                    net.run(cfg["rest_ms"] * ms, namespace={})
                    loops.append(float(device._last_run_time))
                    if n_spikes >= cfg["min_spikes"]:
                        break
                    intensity += 1.0
                return showing, n_spikes

            log("bench stdp: brian2 cython, warm-up image (code generation and compilation) ...")
            t1 = time.perf_counter()
            with np.errstate(under="ignore"):
                show(images[0], [])
            first_s = time.perf_counter() - t1
            t_gc = time.perf_counter()
            gc.collect()  # Brian2 does this at the start of every run: its cost grows with the process's objects
            gc_s = time.perf_counter() - t_gc
            log(f"bench stdp: brian2 cython, {len(images) - 1} timed images ...")
            showings, spikes, loops = [], [], []
            t2 = time.perf_counter()
            with np.errstate(under="ignore"):
                for image in images[1:]:
                    shown, n_spikes = show(image, loops)
                    showings.append(shown)
                    spikes.append(n_spikes)
            wall = time.perf_counter() - t2
            side = _side(wall, showings, spikes, cfg)
            loop_s = float(sum(loops))
            side.update(build_s=build_s, first_image_s=first_s, loop_s=loop_s, gc_collect_s=gc_s,
                        loop_images_per_second=len(showings) / loop_s if loop_s > 0 else float("nan"),
                        mean_theta_mv=float(np.mean(exc.theta[:] / mV)))
            return side
        finally:
            b2.defaultclock.dt = old_dt


# ----------------------------------------------------------------------------- report

def format_stdp_report(report: dict) -> str:
    """The report of :func:`run_stdp_bench` as a text table (several lines, no final newline)."""
    sims = report["simulators"]
    lines: list[str] = []
    add = lines.append
    add(f"bench stdp: Diehl & Cook, {report['n_input']} inputs -> {report['n_exc']} exc + {report['n_exc']} inh, "
        f"{report['n_synapses']} plastic synapses; {report['present_ms']:g} ms + {report['rest_ms']:g} ms per showing, "
        f"dt {report['dt_ms']:g} ms; {report['data']} training images, plasticity on; float64, 1 thread")
    head = (f"{'simulator':<16}{'images':>8}{'showings':>10}{'wall_s':>9}{'images/s':>10}{'bio s/s':>9}"
            f"{'spk/show':>10}{'build_s':>9}{'1st img_s':>11}{'loop_s':>9}")
    add(head)
    add("-" * len(head))
    for key, s in sims.items():
        add(f"{key:<16}{s['images']:>8}{s['showings']:>10}{s['wall_s']:>9.2f}{s['images_per_second']:>10.2f}"
            f"{s['bio_seconds_per_second']:>9.2f}{fmt(s['spikes_per_showing'], '.1f'):>10}{fmt(s['build_s'], '.2f'):>9}"
            f"{fmt(s['first_image_s'], '.2f'):>11}{fmt(s['loop_s'], '.2f'):>9}")
    ips = sims["biosim"]["images_per_second"]
    if report["n_exc"] == 400:
        add(f"biosim {ips:.1f} images/s with 400 neurons: bar >= {BAR:g} {'met' if ips >= BAR else 'NOT met'}, "
            f"goal >= {GOAL:g} {'met' if ips >= GOAL else 'not met'}")
    if report.get("ratio_vs_brian2_cython") is not None:
        b2 = sims["brian2_cython"]
        per = b2["wall_s"] / b2["showings"], b2["loop_s"] / b2["showings"], b2["gc_collect_s"]
        add("brian2: {:.2f} s per showing, {:.2f} s of it in its loops; each of its 2 runs per showing starts "
            "with gc.collect(), {:.2f} s in this process".format(*per))
        add(f"biosim / brian2 cython images/s: {report['ratio_vs_brian2_cython']:.1f}x (higher = biosim faster); "
            f"counting only Brian2's time-step loops ({sims['brian2_cython']['loop_images_per_second']:.1f} images/s): "
            f"{report['ratio_vs_brian2_cython_loops']:.2f}x")
    add("build_s: network built, synapses drawn, kernels compiled or loaded (untimed); Brian2's 1st img_s: its "
        "untimed warm-up image (code generation, cython compilation or cache); loop_s: inside Brian2's time-step loops")
    return "\n".join(lines)


def run_stdp_bench(n_exc: int = 400, n_images: int = DEFAULT_IMAGES, brian2_images: int = 3, seed: int = 0,
                   against="brian2", log: Callable[[str], None] | None = None) -> dict:
    """Time training of the Diehl & Cook network in biosim and (``against="brian2"``) Brian2 cython.

    Parameters
    ----------
    n_exc : int
        Excitatory (and inhibitory) neurons.
    n_images : int
        Timed training images on the biosim side (mnist5k's first ``n_images``), >= 1.
    brian2_images : int
        Timed images on the Brian2 side, >= 1 (after one untimed warm-up image).
    seed : int
        Seed of the network (initial weights, Poisson input); Brian2 starts from the same weights.
    against : str or list of str
        ``"brian2"``, or ``""`` / ``[]`` for biosim alone.
    log : callable, optional
        Receives a line as each stage starts (the CLI prints them on stderr); default: silent.

    Returns
    -------
    dict
        ``simulators`` (``biosim``, ``brian2_cython`` when run; each with ``images``, ``showings``,
        ``wall_s``, ``images_per_second``, ``bio_seconds``, ``bio_seconds_per_second``,
        ``spikes_per_showing`` (excitatory, images shown once), ``build_s``, ``first_image_s``,
        ``loop_s``, Brian2's ``loop_images_per_second`` and ``gc_collect_s``, ``mean_theta_mv``),
        ``images_per_second`` (biosim's), ``ratio_vs_brian2_cython`` and
        ``ratio_vs_brian2_cython_loops`` (None when not run), the protocol, the sizes and the machine.
    """
    from biosim.datasets import load

    _check_int("n_exc", n_exc, 1)
    _check_int("n_images", n_images, 1)
    _check_int("brian2_images", brian2_images, 1)
    comps = _parse_against(against)
    if "brian2" in comps:
        _import_brian2()  # fail before the long part
    log = log or _silent
    cfg = _protocol()
    data = load(cfg["data"])
    x = data.x_train
    if n_images > len(x):
        raise BiosimError(f"n_images = {n_images}: {cfg['data']} has {len(x)} training images")
    sims = {}
    bio, w0 = _run_biosim(x[:n_images], n_exc, seed, cfg, log)
    sims["biosim"] = bio
    if "brian2" in comps:
        k = min(brian2_images + 1, len(x))
        sims["brian2_cython"] = _run_brian2(x[:k], n_exc, seed, cfg, w0, log)
    b2 = sims.get("brian2_cython")
    n_input = int(np.prod(x.shape[1:]))
    return {
        "n_exc": n_exc, "n_input": n_input, "n_synapses": n_input * n_exc, "seed": seed, "against": comps,
        "dt_ms": cfg["dt_ms"], "present_ms": cfg["present_ms"], "rest_ms": cfg["rest_ms"],
        "intensity": cfg["intensity"], "min_spikes": cfg["min_spikes"], "max_showings": cfg["max_showings"],
        "w_sum": cfg["w_sum"], "data": cfg["data"], "n_images": n_images, "brian2_images": brian2_images,
        "simulators": sims, "images_per_second": bio["images_per_second"],
        "ratio_vs_brian2_cython": (bio["images_per_second"] / b2["images_per_second"]
                                   if b2 and b2["images_per_second"] > 0 else None),
        "ratio_vs_brian2_cython_loops": (bio["images_per_second"] / b2["loop_images_per_second"]
                                         if b2 and b2["loop_images_per_second"] > 0 else None),
        "bar_images_per_second": BAR, "goal_images_per_second": GOAL,
        "machine": machine(**_versions(comps)),
    }


def _versions(comps) -> dict:
    out = {}
    for mod in ("numpy", "numba", *(("brian2", "Cython") if "brian2" in comps else ())):
        try:
            out[mod.lower()] = importlib.import_module(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is just not reported
            out[mod.lower()] = None
    return out
