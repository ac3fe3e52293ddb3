"""The contract suite's policy: strict numerics, the matrix of cases and the known exceptions.

Strict numerics, set once for this directory:

* NumPy floating-point errors raise (``np.seterr(all="raise")``, restored after each test);
* warnings are errors: ``filterwarnings = ["error", ...]`` in pyproject.toml's
  ``[tool.pytest.ini_options]`` already applies to the whole suite, so it is not repeated here
  (``test_strict_numerics_are_in_force`` checks it is in force);
* torch runs with ``torch.use_deterministic_algorithms(True)`` (restored after each test).

The matrix: a test marked ``@pytest.mark.contract(name, models=..., backends=..., dtypes=...)``
taking the arguments ``model``, ``backend`` and ``dtype`` is run for every combination (default:
:data:`MODELS` x :data:`BACKENDS` x :data:`DTYPES`), with readable ids (``lif-numba-cpu-float32``).
With ``against_reference=True`` the backends are those other than the reference (``numpy``),
which the test compares with (fixture ``reference_backend``).
A combination listed in :data:`KNOWN_EXCEPTIONS` for that contract is marked
``xfail(strict=True)`` with its reason (so it is noticed when it starts to pass) or skipped when
the reason starts with ``"skip: "``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contract_cases import CASES, SYNAPSE_MODELS

#: Every neuron model: the built-ins (biosim.neurons.MODELS), then their equation twins.
MODELS: tuple[str, ...] = tuple(CASES)

#: Every backend; the first is the reference the others are compared with.
BACKENDS: tuple[str, ...] = ("numpy", "numba-cpu")
REFERENCE_BACKEND = BACKENDS[0]
OTHER_BACKENDS: tuple[str, ...] = BACKENDS[1:]

DTYPES: tuple[str, ...] = ("float32", "float64")

#: The contracts (the names used in ``@pytest.mark.contract`` and in KNOWN_EXCEPTIONS).
CONTRACTS = (
    "subthreshold",            # analytic (or fine-step reference) subthreshold solution
    "synaptic_decay",          # ge(t) = ge0 exp(-t/tau_exc), gi likewise
    "equilibrium",             # a state at the ODE's fixed point stays there
    "same_spikes",             # the same spikes on every backend
    "same_traces",             # bitwise the same state traces on every backend
    "close_traces",            # state traces close on every backend (the weaker check)
    "torch_step",              # the engine's layer_lif spikes as biosim.learn.layers' steps
    "inputs_unchanged",        # arrays and parameters given to a network are not mutated
    "inputs_not_aliased",      # changing them after the build does not change the network
    "generator_indices_not_aliased",  # ... for a spike generator's index array
    "explicit_indices_not_aliased",   # ... for an Explicit rule's index arrays
    "same_seed",               # same seed, same result; another seed, other spikes
    "plasticity",              # the same weights and spikes on every backend with STDP
)

_PROMOTION = ("float32 arithmetic is typed differently by the two backends: numba computes a float32 state "
              "combined with a float64 literal in float64 (0.04*v*v + 5.0*v + 140.0 in Izhikevich, "
              "1.28/exprel(...) in HH) and math.exp of a float32 in float32, while the NumPy reference runs "
              "the same py_func on NumPy float32 scalars, where NumPy 2's promotion (NEP 50) keeps float32 "
              "for float32-with-Python-float arithmetic and math.exp returns a double. The traces differ by "
              "up to ~4e-3 mV; spikes still agree (same_spikes) and traces agree to float32 precision "
              "(close_traces)")

#: (backend, dtype) whose cases run with the slow tests: each model's float32 kernel is a cold
#: compile of its own (20-60 s), and the default suite must stay under 15 minutes on 2 cores; float64
#: runs every case by default (``python -m pytest -m slow tests/contract`` runs these).
SLOW_CASES: frozenset[tuple[str, str]] = frozenset({("numba-cpu", "float32")})

#: (model, backend, dtype, contract) -> reason. Every entry is checked to name a real case.
KNOWN_EXCEPTIONS: dict[tuple[str, str, str, str], str] = {
    **{(m, "numba-cpu", "float32", "same_traces"): _PROMOTION
       for m in ("izhikevich", "hh", "eq_adex", "eq_izhikevich", "eq_hh")},
}


def _check_known_exceptions():
    names = {"model": set(MODELS) | set(SYNAPSE_MODELS), "backend": set(BACKENDS), "dtype": set(DTYPES),
             "contract": set(CONTRACTS)}
    for key, reason in KNOWN_EXCEPTIONS.items():
        for (what, allowed), value in zip(names.items(), key):
            if value not in allowed:
                raise pytest.UsageError(f"KNOWN_EXCEPTIONS key {key}: unknown {what} {value!r} "
                                        f"(known: {', '.join(sorted(allowed))})")
        if not (isinstance(reason, str) and reason.strip()):
            raise pytest.UsageError(f"KNOWN_EXCEPTIONS key {key} needs a reason")


_check_known_exceptions()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "contract(name, models=MODELS, backends=BACKENDS, dtypes=DTYPES, against_reference=False): "
        "run the test for every model x backend x dtype (backends other than the reference one, given by the "
        "reference_backend fixture, with against_reference=True), applying tests/contract/conftest.py's "
        "KNOWN_EXCEPTIONS")


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("contract")
    if marker is None:
        return
    (contract,) = marker.args
    if contract not in CONTRACTS:
        raise pytest.UsageError(f"{metafunc.function.__name__}: unknown contract {contract!r}")
    models = marker.kwargs.get("models", MODELS)
    backends = marker.kwargs.get("backends", OTHER_BACKENDS if marker.kwargs.get("against_reference") else BACKENDS)
    dtypes = marker.kwargs.get("dtypes", DTYPES)
    params = []
    for model in models:
        for backend in backends:
            for dtype in dtypes:
                reason = KNOWN_EXCEPTIONS.get((model, backend, dtype, contract))
                marks = ()
                if reason is not None:
                    marks = (pytest.mark.skip(reason=reason[len("skip: "):]) if reason.startswith("skip: ")
                             else pytest.mark.xfail(strict=True, reason=reason))
                if (backend, dtype) in SLOW_CASES:
                    marks = (*(marks if isinstance(marks, tuple) else (marks,)), pytest.mark.slow)
                params.append(pytest.param(model, backend, dtype, id=f"{model}-{backend}-{dtype}", marks=marks))
    metafunc.parametrize(("model", "backend", "dtype"), params)


@pytest.fixture
def reference_backend() -> str:
    """The backend the others are compared with."""
    return REFERENCE_BACKEND


@pytest.fixture(autouse=True)
def strict_numerics():
    """NumPy floating-point errors raise and torch is deterministic during each test of the suite."""
    old_err = np.seterr(all="raise")
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        np.seterr(**old_err)
        torch.use_deterministic_algorithms(old_det)
