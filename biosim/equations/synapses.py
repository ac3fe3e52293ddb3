"""Synapse models written as equations: per-synapse variables, event-driven traces, and the
statements run when a spike arrives (``on_pre``) or the target spikes (``on_post``), as in
Brian2's ``Synapses``.

Example: pair-based STDP, the text twin of :class:`biosim.STDP`::

    stdp = SynapseModel.from_equations(
        '''
        w : mV
        dapre/dt = -apre / tau_pre : 1 (event-driven)
        dapost/dt = -apost / tau_post : 1 (event-driven)
        ''',
        on_pre="ge += w; w = clip(w - a_minus * apost, w_min, w_max); apre += 1",
        on_post="w = clip(w + a_plus * apre, w_min, w_max); apost += 1",
        parameters={"tau_pre": "20 ms", "tau_post": "20 ms", "a_plus": "0.01 mV",
                    "a_minus": "0.0105 mV", "w_min": "0 mV", "w_max": "1 mV"})
    net.connect(inputs, exc, synapse=stdp(), init={"w": 0.5}, rule=...)

Statements may use the synapse's variables and parameters, the target neuron's variables (``ge``
or ``ge_post``; a variable marked "unless refractory" ignores ``on_pre`` writes while the target is
refractory, as plain projections do; ``on_post`` writes always apply) and read the source neuron's
(``v_pre``). Event-driven
equations must be linear in their own variable with constant coefficients (``dx/dt = a x + b``):
they are advanced exactly over the time since the synapse's last event.

A model is generated (and cached on disk) once per pair of neuron models it connects, so the
names and units of the target's variables are checked like everything else.
"""

from __future__ import annotations

import dataclasses
import json

from biosim._generated import load_keyed, source_hash
from biosim.equations.model import _generator_version
from biosim.equations.lines import model_name, parse_equations, read_parameters
from biosim.equations.units import field_name
from biosim.errors import BiosimError, unknown
from biosim.neurons.base import check_numbers
from biosim.synapses.spec import SynapseSpec

__all__ = ["SynapseModel"]



class SynapseModel:
    """A synapse model defined by equations and statements (see :meth:`from_equations`).

    Calling it returns its parameters (a frozen dataclass, units in the field names), to pass as
    ``synapse=`` to :meth:`biosim.Network.connect`.
    """

    def __init__(self, name: str, equations: str, on_pre: str, on_post: str | None, units: dict, values: dict):
        self.name = name
        self.equations = equations
        self.on_pre = on_pre
        self.on_post = on_post
        self.units = units
        self.fields = [field_name(p, u) for p, u in units.items()]
        self.var_names = tuple(e.name for e in parse_equations(equations)) if equations.strip() else ()
        fields = [(f, float, dataclasses.field(default=values[p])) for p, f in zip(units, self.fields)]

        def post_init(obj):
            check_numbers(obj)

        self.params_cls = dataclasses.make_dataclass(
            f"{name}_params", fields, frozen=True, kw_only=True, namespace={"__post_init__": post_init})
        self.params_cls.__doc__ = f"Parameters of the synapse model '{name}'."
        self.params_cls._biosim_synapse_model = self
        self._bound: dict = {}

    def __call__(self, *args, **overrides):
        if args:
            raise BiosimError(f"parameters of synapse model '{self.name}' are keyword arguments")
        names = [f.name for f in dataclasses.fields(self.params_cls)]
        for key in overrides:
            if key not in names:
                raise unknown(f"parameter of synapse model '{self.name}'", key, names)
        return self.params_cls(**overrides)

    def __repr__(self):
        return f"<SynapseModel '{self.name}': variables {', '.join(self.var_names) or 'none'}>"

    @classmethod
    def from_equations(cls, equations: str = "", *, on_pre: str, on_post: str | None = None,
                       parameters: dict | None = None, name: str | None = None) -> SynapseModel:
        """Define a synapse model.

        Parameters
        ----------
        equations : str
            Per-synapse variables (``w : mV``) and event-driven equations
            (``dapre/dt = -apre / tau_pre : 1 (event-driven)``), one per line; may be empty.
        on_pre : str
            Statements run when a presynaptic spike arrives (after the projection's delay),
            e.g. ``"ge += w"`` or ``"v += J"``.
        on_post : str, optional
            Statements run when the target neuron spikes.
        parameters : dict
            ``name -> quantity`` (``"20 ms"``); dataclass fields are ``name_<unit>``.
        name : str, optional
            Name (default ``syn_<hash>``).
        """
        if not isinstance(equations, str):
            raise BiosimError(f"equations must be a string, not {type(equations).__name__}")
        if not isinstance(on_pre, str) or not on_pre.strip():
            raise BiosimError("on_pre must be statements such as 'ge += w'")
        if on_post is not None and not isinstance(on_post, str):
            raise BiosimError("on_post must be statements such as 'apost += 1'")
        values, units = read_parameters(parameters)
        if equations.strip():
            for e in parse_equations(equations):
                if e.kind == "subexpr" or (e.kind == "diff" and "event-driven" not in e.flags):
                    raise BiosimError(f"synapse equation '{e.line}': only per-synapse variables ('w : mV') and "
                                      f"event-driven equations ('... : 1 (event-driven)') are supported")
        label = model_name(name, "syn_" + source_hash(json.dumps([equations, on_pre, on_post, units]))[:8],
                           "synapse model")
        return cls(label, equations, on_pre, on_post, units, values)

    def bind(self, tgt_spec, src_spec=None) -> SynapseSpec:
        """The engine's form of this model between a source of model ``src_spec`` (None for an input
        group) and a target population of model ``tgt_spec``; statements are checked here."""
        ident = (id(tgt_spec), id(src_spec))
        if ident not in self._bound:
            if not tgt_spec.var_units:
                raise BiosimError(f"neuron model '{tgt_spec.name}' does not declare the units of its variables "
                                  f"(ModelSpec.var_units), which synapse models need")
            side = lambda spec: None if spec is None else [spec.var_names, spec.var_units]  # noqa: E731
            key = json.dumps({"eq": self.equations, "pre": self.on_pre, "post": self.on_post, "units": self.units,
                              "tgt": side(tgt_spec), "src": side(src_spec), "v": _generator_version()})

            def generate() -> str:
                from biosim.equations.generate_synapse import synapse_source  # sympy: only on a cache miss

                return synapse_source(self, tgt_spec, src_spec)

            module = load_keyed(f"biosim_synapse_{self.name}", key, generate)
            self._bound[ident] = SynapseSpec(
                name=self.name, params_cls=self.params_cls, var_names=module.VAR_NAMES, constants=module.constants,
                on_pre=module.on_pre, on_post=module.on_post, has_post=self.on_post is not None)
        return self._bound[ident]
