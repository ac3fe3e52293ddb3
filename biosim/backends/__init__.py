"""Backends behind one registry; compiled ones are imported only when asked for.

Each backend module provides ``kernel(specs) -> run_chunk`` for a network whose distinct neuron
models are the tuple ``specs`` (:func:`biosim.network.compile.model_specs`; population ``p`` uses
``specs[plan.pop_model[p]]``). No backend names a model: any :class:`~biosim.neurons.base.ModelSpec`
runs, built-in or a user's. The returned callable has one contract on every backend::

    run_chunk(pl, inp, out, step0, n_steps, sp_n, rec_n)
        -> (status, steps_done, sp_n, rec_n, err_pop, err_row, err_neuron)

It advances the :class:`~biosim.backends.plan.Plan` ``pl`` in place by ``n_steps`` steps from the
global step ``step0``, reading the chunk's inputs ``inp`` (:class:`~biosim.backends.plan.ChunkInput`)
and appending spikes from ``sp_n`` and recorded states from ``rec_n`` to ``out``
(:class:`~biosim.backends.plan.Outputs`). ``status`` is ``OK``, ``BUFFER_FULL`` (the spike buffer
needs room: call again from ``step0 + steps_done``) or ``NOT_FINITE`` (a state variable became
NaN/inf in the last step done, at population ``err_pop``, row ``err_row``, neuron ``err_neuron``);
the codes live in :mod:`biosim.backends.numba_cpu`.

``numba-cuda`` (:mod:`biosim.backends.numba_cuda`) needs the optional numba-cuda package
(``pip install -e ".[cuda]"``) and a GPU, or numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``);
asking for it imports ``numba.cuda`` then, and a machine that cannot run it gets one line saying
why. A backend module may define ``check_available()``: :func:`get_backend` calls it.

A backend with threaded kernels (numba-cpu) defines ``MAX_THREADS()``, the most threads it can use,
and accepts ``kernel(specs, syn_specs, threads=N)``: the returned ``run_chunk`` has the same
contract and gives the same results, bit for bit, whatever ``N``. The driver refuses ``threads > 1``
on a backend without it.

A backend that keeps a plan elsewhere between calls (numba-cuda: on the GPU, where the kernels
change it) defines two hooks as well: ``to_host(pl)`` brings the changes of ``pl`` home, and
``host_changed(pl, names=None)`` says the host changed arrays ``names`` (all when ``None``), to be
copied over at the next call. The driver (:class:`~biosim.network.simulate.Simulation`) calls them
around every read or write of the plan it makes between calls; in-process backends need neither.
"""

from __future__ import annotations

import importlib

from biosim.errors import unknown

__all__ = ["BACKENDS", "get_backend"]

#: Backend name -> module that implements it.
BACKENDS = {
    "numba-cpu": "biosim.backends.numba_cpu",
    "numba-cuda": "biosim.backends.numba_cuda",
    "numpy": "biosim.backends.numpy_ref",
}


def get_backend(name: str):
    """Return the backend module for ``name`` (closest valid name in the error); a
    :class:`~biosim.errors.BiosimError` of one line when this machine cannot run it."""
    if name not in BACKENDS:
        raise unknown("backend", name, BACKENDS)
    module = importlib.import_module(BACKENDS[name])
    check = getattr(module, "check_available", None)
    if check is not None:
        check()
    return module
