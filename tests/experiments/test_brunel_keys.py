"""Brunel's g and nu_ext/nu_thr can be set directly (for the phase diagram), overriding the panel."""

from __future__ import annotations

import numpy as np

from biosim.experiments.networks import build_brunel
from biosim.experiments.registry import apply_overrides, load_model


def _net(*sets):
    params = apply_overrides(load_model("brunel")["params"], ["n_exc=80", "n_inh=20", *sets])
    return build_brunel(params, seed=0)


def test_g_and_nu_ext_ratio_override_the_panel():
    base = _net()  # panel A: g = 3, nu_ext/nu_thr = 2
    custom = _net("g=6", "nu_ext_ratio=4")
    w_inh = [p.weight for p in base.projections if p.src.name == "inh"]
    assert np.allclose(w_inh, -3 * 0.1)
    assert np.allclose([p.weight for p in custom.projections if p.src.name == "inh"], -6 * 0.1)
    assert custom.poisson_inputs[0].rate_hz == 2 * base.poisson_inputs[0].rate_hz
