"""One process-wide transpilation cache for the executors that hand circuits to Qiskit (aer, ibm).

Keys are a hash of the circuit's structure (gates, qubits, clbits, parameter names and
expressions, global phase), not of its Python identity, plus the target and the transpiler
settings: the M actors of a policy build M identical circuits, and they transpile once. The
cache keeps the :data:`CACHE_SIZE` most recently used results (an LRU; a long sweep opening
many devices does not grow it without bound). A hit is rebound to the asking circuit's own
Parameter objects (matched by name), so its caller can map parameters by identity.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from qiskit import QuantumCircuit

CACHE_SIZE = 64

_CACHE: OrderedDict[str, tuple[QuantumCircuit, float]] = OrderedDict()
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Transpiled:
    """A transpiled circuit bound to the caller's parameters, and how it was obtained."""

    circuit: QuantumCircuit
    seconds: float  # time the transpilation took (when it ran, not on a hit)
    cached: bool
    key: str


def structure_key(circuit: QuantumCircuit, *extra: Hashable) -> str:
    """A hash of the circuit's structure (gates, qubits, parameter names), not its Parameter objects."""
    digest = hashlib.sha256()
    digest.update(repr((circuit.num_qubits, circuit.num_clbits, str(circuit.global_phase), extra)).encode())
    for instruction in circuit.data:
        qubits = tuple(circuit.find_bit(q).index for q in instruction.qubits)
        clbits = tuple(circuit.find_bit(c).index for c in instruction.clbits)
        params = tuple(str(p) for p in instruction.operation.params)
        digest.update(repr((instruction.operation.name, qubits, clbits, params)).encode())
    return digest.hexdigest()


def cached_transpile(
    circuit: QuantumCircuit,
    target_key: tuple[Hashable, ...],
    compile_fn: Callable[[QuantumCircuit], QuantumCircuit],
) -> Transpiled:
    """``compile_fn(circuit)`` once per (structure, ``target_key``); ``target_key`` names the
    target and every transpiler setting that changes the result (level, seed …)."""
    key = structure_key(circuit, *target_key)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
    if hit is not None:
        template, seconds = hit
        by_name = {p.name: p for p in circuit.parameters}
        mapping = {p: by_name[p.name] for p in template.parameters if by_name[p.name] != p}
        bound = template.assign_parameters(mapping) if mapping else template
        return Transpiled(bound, seconds, True, key)
    started = time.perf_counter()
    compiled = compile_fn(circuit)
    seconds = time.perf_counter() - started
    with _LOCK:
        _CACHE[key] = (compiled, seconds)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return Transpiled(compiled, seconds, False, key)


def clear_transpile_cache() -> None:
    """Forget every cached transpilation (tests that count transpiler calls start empty)."""
    with _LOCK:
        _CACHE.clear()
