"""Executors: one circuit, a batch of encoding angles and shared weights in, readouts out.

>>> from qdt.circuits import build_vqc
>>> from qdt.executors import get_executor
>>> vqc = build_vqc(input_width=16, n_layers=6)
>>> executor = get_executor("statevector")
>>> prepared = executor.prepare_vqc(vqc)
>>> probs = executor.run(prepared, vqc.angles(x), weights)  # [B, 16]
"""

from qdt.executors.base import (
    READOUTS,
    Capabilities,
    Executor,
    PreparedCircuit,
    expval_z,
)
from qdt.executors.density import DensityExecutor
from qdt.executors.registry import executor_names, get_executor, register_executor
from qdt.executors.statevector import StatevectorExecutor

__all__ = [
    "READOUTS",
    "Capabilities",
    "DensityExecutor",
    "Executor",
    "PreparedCircuit",
    "StatevectorExecutor",
    "executor_names",
    "expval_z",
    "get_executor",
    "register_executor",
]
