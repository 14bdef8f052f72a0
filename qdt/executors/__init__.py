"""Executors: one circuit, a batch of encoding angles and shared weights in, readouts out.

>>> from qdt.circuits import build_vqc
>>> from qdt.executors import open_backend
>>> vqc = build_vqc(input_width=16, n_layers=6)
>>> executor = open_backend("statevector")        # any profile: "fake_torino", "executor:aer", ...
>>> prepared = executor.prepare_vqc(vqc)
>>> probs = executor.run(prepared, vqc.angles(x), weights)  # [B, 16]

Layout: ``base`` (the contract every executor fulfils), ``registry`` (how a backend joins),
``profiles`` (backend profile files), ``catalog`` (the built-in backends; :func:`open_backend`),
``sampling`` and ``transpile_cache`` (helpers shared by the executors), one module per backend
(``statevector``, ``density``, ``aer/``, ``ibm/``) and ``parameter_shift`` (gradients for any).
"""

from qdt.executors.base import (
    MAX_SHOTS,
    READOUTS,
    Capabilities,
    Executor,
    PreparedCircuit,
    RunItem,
    expval_z,
    validate_shots,
)
from qdt.executors.catalog import (
    backend_options,
    backend_spec,
    executor_names,
    executor_profile,
    list_backend_profiles,
    load_backend_profile,
    open_backend,
    parse_profile,
    profile_capabilities,
)
from qdt.executors.density import DensityExecutor
from qdt.executors.profiles import BackendProfile
from qdt.executors.registry import BackendSpec, NameRule, OpenRequest, register_backend
from qdt.executors.statevector import StatevectorExecutor

__all__ = [
    "MAX_SHOTS",
    "READOUTS",
    "BackendProfile",
    "BackendSpec",
    "Capabilities",
    "DensityExecutor",
    "Executor",
    "NameRule",
    "OpenRequest",
    "PreparedCircuit",
    "RunItem",
    "StatevectorExecutor",
    "backend_options",
    "backend_spec",
    "executor_names",
    "executor_profile",
    "expval_z",
    "list_backend_profiles",
    "load_backend_profile",
    "open_backend",
    "parse_profile",
    "profile_capabilities",
    "register_backend",
    "validate_shots",
]
