"""Kernels generated for a network's models: a model defined outside the package runs in the
compiled kernel without any change to ``biosim.backends``.

* two toy models defined here (1 and 5 state variables: counts no built-in model has), registered
  with ``register_model``, run in one network with a built-in LIF population on numba-cpu and on
  the NumPy reference, with identical spikes and traces in float64;
* ``pop_model`` indexes the network's distinct models in order of first use;
* a second generation of the same kernel imports the same file and loads Numba's cached code;
* the registry's errors (built-in name, shared parameter class, unknown name, unknown class) and
  the generator's (a model function that cannot be imported by name).
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from biosim import LIF, BiosimError, FixedProbability, Network
from biosim._generated import source_hash
from biosim.backends import numba_cpu
from biosim.neurons import MODELS, ModelSpec, model_by_name, register_model, spec_for

DT_MS = 0.1


@pytest.fixture(autouse=True)
def _fp_errors_raise():
    with np.errstate(all="raise"):
        yield


# --- toy model with one variable: dv/dt = (v_rest - v + i_ext) / tau, spikes add to v directly ----

@dataclass(frozen=True, kw_only=True)
class Leaky1:
    tau_ms: float = 10.0
    v_rest_mv: float = -65.0
    v_thresh_mv: float = -55.0
    v_reset_mv: float = -70.0
    t_ref_ms: float = 2.0


def _leaky1_constants(p: Leaky1, dt_ms: float) -> np.ndarray:
    e = math.exp(-dt_ms / p.tau_ms)
    return np.array([e, p.v_rest_mv, p.v_thresh_mv, p.v_reset_mv])


@njit(cache=True)
def leaky1_step(X, i, c, i_ext, refractory):
    v = X[0][i]
    v_new = c[1] + (v - c[1]) * c[0] + i_ext * (1.0 - c[0])
    X[0][i] = v if refractory else v_new


@njit(cache=True)
def leaky1_threshold(X, i, c):
    return X[0][i] > c[2]


@njit(cache=True)
def leaky1_reset(X, i, c):
    X[0][i] = c[3]


LEAKY1_SPEC = ModelSpec(
    name="toy_leaky1", params_cls=Leaky1, var_names=("v",), frozen_vars=("v",),
    constants=_leaky1_constants, initial=lambda p: {"v": p.v_rest_mv}, t_ref_ms=lambda p: p.t_ref_ms,
    step=leaky1_step, threshold=leaky1_threshold, reset=leaky1_reset, current_unit="mV",
)


# --- toy model with five variables: adaptive LIF with two synaptic currents and a spike trace ----

@dataclass(frozen=True, kw_only=True)
class Adapt5:
    tau_mem_ms: float = 20.0
    tau_exc_ms: float = 5.0
    tau_inh_ms: float = 10.0
    tau_w_ms: float = 100.0
    tau_x_ms: float = 30.0
    b_mv: float = 2.0
    v_rest_mv: float = -60.0
    v_thresh_mv: float = -50.0
    v_reset_mv: float = -62.0
    t_ref_ms: float = 3.0


def _adapt5_constants(p: Adapt5, dt_ms: float) -> np.ndarray:
    return np.array([
        dt_ms / p.tau_mem_ms, math.exp(-dt_ms / p.tau_exc_ms), math.exp(-dt_ms / p.tau_inh_ms),
        math.exp(-dt_ms / p.tau_w_ms), math.exp(-dt_ms / p.tau_x_ms),
        p.v_rest_mv, p.v_thresh_mv, p.v_reset_mv, p.b_mv,
    ])


@njit(cache=True)
def adapt5_step(X, i, c, i_ext, refractory):
    v = X[0][i]
    w = X[1][i]
    ge = X[2][i]
    gi = X[3][i]
    v_new = v + c[0] * (c[5] - v + ge + gi - w + i_ext)
    X[0][i] = v if refractory else v_new
    X[1][i] = w * c[3]
    X[2][i] = ge * c[1]
    X[3][i] = gi * c[2]
    X[4][i] = X[4][i] * c[4]


@njit(cache=True)
def adapt5_threshold(X, i, c):
    return X[0][i] > c[6]


@njit(cache=True)
def adapt5_reset(X, i, c):
    X[0][i] = c[7]
    X[1][i] += c[8]
    X[4][i] += 1.0


ADAPT5_SPEC = ModelSpec(
    name="toy_adapt5", params_cls=Adapt5, var_names=("v", "w", "ge", "gi", "x"), frozen_vars=("v",),
    constants=_adapt5_constants,
    initial=lambda p: {"v": p.v_rest_mv, "w": 0.0, "ge": 0.0, "gi": 0.0, "x": 0.0},
    t_ref_ms=lambda p: p.t_ref_ms,
    step=adapt5_step, threshold=adapt5_threshold, reset=adapt5_reset, current_unit="mV",
)

register_model(LEAKY1_SPEC)
register_model(ADAPT5_SPEC)


def _mixed_network(backend: str, dtype: str = "float64", duration_ms: float = 100.0):
    net = Network(dt_ms=DT_MS, dtype=dtype, seed=3)
    lif = net.population("lif", LIF(), 40)
    one = net.population("one", Leaky1(), 30)
    five = net.population("five", Adapt5(), 30, init={"v": lambda rng, n: rng.uniform(-60.0, -52.0, n)})
    rng = np.random.default_rng(1)
    net.current(lif, rng.uniform(0.0, 5.0, lif.n))
    net.current(one, rng.uniform(5.0, 15.0, one.n))
    net.current(five, rng.uniform(5.0, 14.0, five.n))
    net.poisson_input(five, "ge", n_sources=20, rate_hz=20.0, weight=1.0)
    net.connect(lif, one, "v", weight=0.8, rule=FixedProbability(p=0.2))
    net.connect(one, five, "ge", weight=1.5, rule=FixedProbability(p=0.2), delay_ms=1.0)
    net.connect(five, lif, "ge", weight=1.6, rule=FixedProbability(p=0.2))
    net.connect(five, five, "gi", weight=-2.0, rule=FixedProbability(p=0.1), delay_ms=0.5)
    net.monitor(one, "v", indices=[0, 1])
    net.monitor(five, "w", indices=[0, 1, 2])
    net.monitor(five, "x", indices=[0])
    return net, net.run(duration_ms, backend=backend)


def test_user_models_run_in_the_compiled_kernel_like_the_reference():
    (_, nb), (_, ref) = _mixed_network("numba-cpu"), _mixed_network("numpy")
    for name in ("lif", "one", "five"):
        assert len(nb.spikes[name][0]) > 0, f"population {name} did not spike"
        for a, b in zip(nb.spikes[name], ref.spikes[name]):
            np.testing.assert_array_equal(a, b)
    assert set(nb.states) == set(ref.states)
    for key in nb.states:
        np.testing.assert_array_equal(nb.states[key][1], ref.states[key][1])
    assert np.all(nb.states[("five", "x")][1] >= 0) and np.any(nb.states[("five", "w")][1] > 0)


def test_pop_model_indexes_distinct_models_in_order_of_first_use():
    net = Network(dt_ms=DT_MS, seed=0)
    for name, params in (("a", Adapt5()), ("b", LIF()), ("c", Adapt5()), ("d", Leaky1()), ("e", LIF())):
        net.population(name, params, 3)
    net.run(0.0, backend="numpy")
    assert net._sim.specs == (ADAPT5_SPEC, MODELS["lif"], LEAKY1_SPEC)
    assert net._sim.plan.pop_model.tolist() == [0, 1, 0, 2, 1]
    text = numba_cpu.kernel_source(net._sim.specs)
    loops = [f"biosim_model_{source_hash(numba_cpu.model_source(s))}" for s in net._sim.specs]
    assert f"from {loops[0]} import step_all as m0_step" in text
    assert f"from {loops[1]} import reset_all as m1_reset" in text
    assert "m2_step((phases.row(X, 0, a, b),), c, e, r, s, flags, NEURON_BLOCK, driven)" in text
    assert not re.search(r"\b_rows\d", text) and "run_chunk = njit(cache=True)(_run_chunk)" in text
    assert "raise NotImplementedError" not in text
    # each model's maths is compiled into its own loops, inlined (a model function Numba loaded from
    # its own cache, object code, could not be inlined into them), and the loops are cached
    adapt5 = numba_cpu.model_source(ADAPT5_SPEC)
    assert f"from {__name__} import adapt5_step as _step" in adapt5
    assert 'step_one = njit(inline="always")(_step.py_func)' in adapt5
    assert "@njit(cache=True, error_model='numpy')\ndef step_all(R, c, e, r, s, flags, block, driven):" in adapt5
    assert "from biosim.neurons.lif import lif_reset as _reset" in numba_cpu.model_source(MODELS["lif"])
    header = text.split("\n\n", 1)[0]
    assert f"m0 toy_adapt5 (v, w, ge, gi, x): {__name__} " in header and "m1 lif (v, ge, gi): biosim.neurons.lif " in header


def test_source_of_a_model_names_the_kernel():
    """The kernel text carries a hash of each model module's source: changed maths, new file."""
    text = numba_cpu.kernel_source((LEAKY1_SPEC,))
    digest = numba_cpu._source_hashes((leaky1_step, leaky1_threshold, leaky1_reset))
    loops = numba_cpu.model_source(LEAKY1_SPEC)
    assert digest == [(__name__, digest[0][1])] and digest[0][1] in text and digest[0][1] in loops
    assert f"biosim_model_{source_hash(loops)}" in text  # the loops' module: named by its own text
    hh = numba_cpu._source_hashes((MODELS["hh"].step,))
    # hh's step calls fastmath_exp's exp and where (plain functions, Numba overloads) and its own _exprel
    assert [m for m, _ in hh] == ["biosim.neurons.fastmath_exp", "biosim.neurons.hh"]


def test_second_generation_loads_the_file_and_the_compiled_code(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOSIM_CACHE_DIR", str(tmp_path))
    # without the generated folders other tests of this process put on sys.path, which hold a copy
    # of the same module (and whose Numba cache another test process may be writing)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p).name != "generated"])
    monkeypatch.setattr(numba_cpu, "_KERNELS", {})
    specs = (MODELS["lif"],)
    name = f"biosim_kernel_{source_hash(numba_cpu.kernel_source(specs))}"
    monkeypatch.delitem(sys.modules, name, raising=False)

    def run_lif():
        net = Network(dt_ms=DT_MS, seed=2)
        pop = net.population("p", LIF(), 20)
        net.current(pop, 3.0)
        return net, net.run(20.0)

    try:
        first = numba_cpu.kernel(specs)
        path = tmp_path / "generated" / f"{name}.py"
        assert first.__module__ == name and path.exists()
        stamp = path.stat().st_mtime_ns
        _, r1 = run_lif()
        assert numba_cpu.kernel(specs) is first  # memoised in the process
        numba_cpu._KERNELS.clear()
        del sys.modules[name]
        second = numba_cpu.kernel(specs)
        assert second is not first and second.__module__ == name
        assert path.stat().st_mtime_ns == stamp  # the file was not written again
        _, r2 = run_lif()
        assert sum(second.stats.cache_hits.values()) >= 1 and not second.stats.cache_misses
        for a, b in zip(r1.spikes["p"], r2.spikes["p"]):
            np.testing.assert_array_equal(a, b)
    finally:
        sys.modules.pop(name, None)


def test_registry_errors_and_replacement():
    with pytest.raises(BiosimError, match="'lif' is taken by a built-in model"):
        register_model(dataclasses.replace(LEAKY1_SPEC, name="lif"))
    with pytest.raises(BiosimError, match="Leaky1 already belongs to neuron model 'toy_leaky1'"):
        register_model(dataclasses.replace(LEAKY1_SPEC, name="toy_other"))
    with pytest.raises(BiosimError, match="expects a ModelSpec"):
        register_model("toy")
    with pytest.raises(BiosimError, match=r"unknown neuron model 'toy_adapt'; did you mean 'toy_adapt5'"):
        model_by_name("toy_adapt")
    with pytest.raises(BiosimError, match=r"unknown neuron model 'lfi'; did you mean 'lif'"):
        model_by_name("lfi")
    with pytest.raises(BiosimError, match="dict is not the parameter class of a known neuron model"):
        spec_for({})
    with pytest.raises(BiosimError, match="not the parameter class"):
        Network().population("x", {"tau_ms": 1.0}, 3)
    assert model_by_name("lif") is MODELS["lif"] and model_by_name("toy_leaky1") is LEAKY1_SPEC
    assert spec_for(Adapt5()) is ADAPT5_SPEC and spec_for(LIF()) is MODELS["lif"]
    replaced = dataclasses.replace(LEAKY1_SPEC, current_unit="pA")
    try:
        assert register_model(replaced) is replaced
        assert model_by_name("toy_leaky1") is replaced and spec_for(Leaky1()) is replaced
    finally:
        register_model(LEAKY1_SPEC)
    assert "toy_leaky1" not in MODELS  # MODELS stays the built-ins


def test_model_functions_must_be_importable_njit_functions():
    @njit
    def local_step(X, i, c, i_ext, refractory):
        X[0][i] = X[0][i]

    hidden = dataclasses.replace(LEAKY1_SPEC, name="toy_hidden", step=local_step)
    with pytest.raises(BiosimError, match="step function .*local_step must be defined at the top level"):
        numba_cpu.kernel_source((hidden,))
    plain = dataclasses.replace(LEAKY1_SPEC, name="toy_plain", reset=leaky1_reset.py_func)
    with pytest.raises(BiosimError, match="reset must be a numba njit function"):
        numba_cpu.kernel_source((plain,))
    with pytest.raises(BiosimError, match="at least one neuron model"):
        numba_cpu.kernel_source(())
