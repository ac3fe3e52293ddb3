"""The kernels read model and STDP constants by name, and each layout is stated once.

Every built-in model (and STDP) has a ``NamedTuple`` of its constants whose field order is the
array's order, and module-level index names (``<PREFIX><FIELD>``) that the njit functions use; the
numba-cpu kernel template imports the STDP index names in index order, so that its text (which names
the cached kernel) changes with the layout.
"""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest

from biosim import HH, LIF, STDP, AdEx, CondLIF, Izhikevich
from biosim.backends import kernel_body
from biosim.neurons import adex, hh, izhikevich, lif, spec_for
from biosim.synapses import stdp

#: params, its constants class, the module and the prefix of its index names
MODELS = [
    (LIF(), lif.LIFConstants, lif, "LIF_"),
    (CondLIF(), lif.CondLIFConstants, lif, "COND_"),
    (AdEx(), adex.AdExConstants, adex, ""),
    (Izhikevich(), izhikevich.IzhikevichConstants, izhikevich, ""),
    (HH(), hh.HHConstants, hh, ""),
]


@pytest.mark.parametrize(("params", "cls", "module", "prefix"), MODELS, ids=lambda x: getattr(x, "__name__", ""))
def test_index_names_follow_the_fields(params, cls, module, prefix):
    for k, field in enumerate(cls._fields):
        assert getattr(module, prefix + field.upper()) == k, f"{module.__name__}.{prefix}{field.upper()}"
    c = spec_for(params).constants(params, 0.1)
    assert isinstance(c, np.ndarray) and c.dtype == np.float64 and c.shape == (len(cls._fields),)
    named = cls(*c)
    assert all(math.isfinite(x) for x in named)


def test_named_values_are_the_parameters():
    c = lif.LIFConstants(*spec_for(LIF()).constants(LIF(v_rest_mv=-48.0), 0.1))
    assert (c.v_rest, c.v_thresh, c.v_reset) == (-48.0, -50.0, -60.0)
    assert c.e_mem == math.exp(-0.1 / 20.0) and c.k_input == -math.expm1(-0.1 / 20.0)
    a = adex.AdExConstants(*spec_for(AdEx()).constants(AdEx(b_pa=7.0), 0.1))
    assert (a.b, a.exp_arg_clamp, a.v_peak) == (7.0, adex.EXP_ARG_MAX, -40.4)
    z = izhikevich.IzhikevichConstants(*spec_for(Izhikevich()).constants(Izhikevich(c_mv=-60.0, d=2.0), 0.5))
    assert (z.dt, z.v_reset, z.d) == (0.5, -60.0, 2.0)
    h = hh.HHConstants(*spec_for(HH()).constants(HH(), 0.1))
    assert (h.v_thresh, h.e_na, h.g_na) == (-20.0, 50.0, HH().g_na_ns)


def test_stdp_row_is_named():
    row = STDP(a_plus=0.02, w_max=3.0, multiplicative=True).constants(0.1)
    c = stdp.StdpConstants(*row)
    assert (c.a_plus, c.w_max, c.multiplicative) == (0.02, 3.0, 1.0)
    assert c.decay_pre == math.exp(-0.1 / 20.0)
    for k, field in enumerate(stdp.StdpConstants._fields):
        assert getattr(stdp, field.upper()) == k


def test_kernel_template_imports_the_stdp_layout_in_order():
    """The cached kernel's name hashes the template's text, not stdp.py: the import line, in index
    order, is what makes a new layout a new text."""
    text = Path(kernel_body.__file__).read_text()
    m = re.search(r"^from biosim\.synapses\.stdp import (.+?)(?:  #.*)?$", text, re.M)
    assert m, "kernel_body.py must import the STDP index names"
    names = [n.strip() for n in m.group(1).split(",")]
    assert names == [f.upper() for f in stdp.StdpConstants._fields]
    assert m.start() > text.index("# biosim-kernel: source begins")


@pytest.mark.parametrize("module", [lif, adex, izhikevich, hh, kernel_body])
def test_no_positional_constant_indices(module):
    src = inspect.getsource(module)
    assert not re.search(r"\bc\[\d", src), f"{module.__name__} indexes c by number"
    assert not re.search(r"st_c\[z, \d", src), f"{module.__name__} indexes st_c by number"
