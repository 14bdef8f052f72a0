"""``density``: batched density-matrix simulation with noise channels, in torch, with autograd.

Every gate is followed by the configured noise (:class:`~qdt.noise.NoiseConfig`, qiskit-aer's
conventions), exactly; three paths, chosen when the circuit is prepared:

- **No gate noise** (noiseless, or readout error only): the density matrix stays pure, so the
  state-vector path runs (the product kernel for the paper's circuit, see
  :mod:`qdt.executors.statevector`); up to 20 qubits.
- **Noise that spares the encoding tree** (no gate noise on ``ry`` and ``cx``, e.g. a profile with
  ``noiseless_gates = ["ry", "cx"]``: noise on the trainable layers only) on the paper's circuit:
  the density kernel (``qdt/sim/kernels/product_density.py``), the exact pure encoded state
  then L noisy layers in Pauli coordinates, B·4**n per gate layer. Up to
  :data:`~qdt.sim.kernels.product_density.MAX_QUBITS` = 9 qubits: at L = 6 and batch 128 a
  forward + backward pass took 0.55 s at 7 qubits, 2.1 s at 8 and 17 s at 9 (3.6 GiB) on a
  loaded 2-core machine: noise-aware training is practical to 7–8 qubits; 9 qubits run, slowly.
  10 qubits would need about 16 GiB and are refused.
- **Noise on every gate** (the encoding tree included), or any other circuit: the generic
  program in Pauli coordinates (``qdt/sim/program.py``; a fused kernel up to 5 qubits). The
  tree's 2**(n+1) − 3 noisy gates act on a register of up to 4**n coordinates per row, B·8**n in
  all: 3.4 s and 0.9 GiB at 6 qubits, 40 s and 5.7 GiB at 7 (L = 6, batch 128). A circuit
  whose estimated memory at batch 128 exceeds :data:`GENERIC_MEMORY_LIMIT` (2 GiB: the
  paper's circuit past 6 qubits) is refused.

Refusals come when the circuit is prepared, before anything the size of a state is allocated,
and name the width, the memory it would need and the alternatives (statevector without noise,
noise on the layers only, or aer with shots). Readout error then multiplies the probabilities by
the assignment matrix. With ``shots`` the probabilities are replaced by multinomial estimates
(not differentiable) drawn from one generator per executor, advanced on every call
(:mod:`qdt.executors.sampling`).

Opened by ``open_backend("density")`` (the shipped profile, with a mild noise model) or
``open_backend("executor:density")`` (noiseless); options ``shots``, ``noise`` (a NoiseConfig,
a parametric noise profile or its name), ``method`` (``pauli`` forces Pauli coordinates even
without noise), ``max_qubits`` (a lower cap than the paths' own), ``fuse`` (False: the generic
program, unfused, whatever the circuit: the conformance suite's second opinion).

Device: as the statevector executor, a run computes on the device of its inputs (the compiled
tables and the readout assignment matrix are copied there once, ``qdt/sim/device.py``); shot
sampling draws on the CPU from the executor's numpy generator and returns to that device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qdt.errors import QdtInputError
from qdt.executors.base import Capabilities, Executor, PreparedCircuit, expval_z, validate_shots
from qdt.executors.profiles import BackendProfile
from qdt.executors.registry import BackendSpec, OpenRequest
from qdt.executors.sampling import make_generator, sample_probabilities
from qdt.executors.statevector import StatevectorPayload, check_max_qubits, compile_statevector
from qdt.noise.config import NoiseConfig
from qdt.noise.profiles import NoiseProfile, load_noise_profile
from qdt.sim.device import cpu_tensor, on_device
from qdt.sim.engine import probabilities
from qdt.sim.gates import CompiledCircuit, compile_circuit
from qdt.sim.kernels import product, product_density
from qdt.sim.kernels.fused import compile_pauli_kernel
from qdt.sim.kernels.product_density import DensityKernel, compile_density_kernel
from qdt.sim.layout import Space
from qdt.sim.lowering import PauliRepresentation
from qdt.sim.program import Program, build_program

METHODS = ("auto", "pauli", "statevector")
GENERIC_MEMORY_LIMIT = (
    2 * 2**30
)  # bytes at batch 128: the paper's circuit with noise on every gate to 6 qubits
# Peak memory of the generic Pauli program over its gates' register sizes (Σ_gates 4**active
# coordinates × batch × 8 bytes), measured on the paper's circuit, L = 6, batch 128: 1.6× at 6 and 7
# qubits (0.9 and 5.7 GiB).
_GENERIC_MEMORY_FACTOR = 1.6
_ALTERNATIVES = (
    "give the encoding's gates no noise (noiseless_gates = ['ry', 'cx'], as the profile "
    "depol-1e-3-layers: noise on the trainable layers, the paper's circuit to "
    f"{product_density.MAX_QUBITS} qubits), or use statevector (no noise), "
    "or aer with shots (open_backend('aer', noise=..., shots=...))"
)


def density_noise(value: object) -> NoiseConfig | None:
    """The NoiseConfig of a noise argument: a NoiseConfig, a noise profile or its name (device
    profiles are refused with the reason: they need a transpiled circuit, on aer)."""
    if value is None or isinstance(value, NoiseConfig):
        return value
    if isinstance(value, (str, NoiseProfile)):
        return load_noise_profile(value).to_noise_config()
    raise QdtInputError("noise", "a NoiseConfig, a noise profile or its name", type(value).__name__)


def generic_memory_bytes(compiled: CompiledCircuit, batch: int = product.REFERENCE_BATCH) -> int:
    """Estimated peak memory of the generic Pauli program of ``compiled`` (see the constants)."""
    active: set[int] = set()
    coordinates = 0
    for op in compiled.ops:
        active.update(op.qubits)
        coordinates += 4 ** len(active)
    return int(_GENERIC_MEMORY_FACTOR * coordinates * batch * 8)


def _size(count: float) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


class DensityExecutor(Executor):
    """Noisy (or exact) density-matrix simulation; optional shot sampling."""

    name = "density"
    runs_on_input_device = True  # torch on the device of the angles (qdt/sim/device.py)

    def __init__(
        self,
        *,
        noise: NoiseConfig | None = None,
        shots: int | None = None,
        seed: int | np.random.SeedSequence | np.random.Generator | None = None,
        method: str = "auto",
        max_qubits: int = product.MAX_QUBITS,
        fuse: bool = True,
    ) -> None:
        if noise is not None and not isinstance(noise, NoiseConfig):
            raise QdtInputError("noise", "a qdt.noise.NoiseConfig or None", type(noise).__name__)
        shots = None if shots is None else validate_shots(shots)
        if method not in METHODS:
            raise QdtInputError("method", f"one of {METHODS}", method)
        if method == "statevector" and noise is not None and noise.has_gate_noise:
            raise QdtInputError("method", "'auto' or 'pauli' when gate noise is configured", method)
        self.noise = noise
        self.shots = shots
        self.method = method
        self.max_qubits = check_max_qubits(max_qubits, product.MAX_QUBITS)
        self.fuse = bool(fuse)
        self.generator = make_generator(seed)

    @classmethod
    def profile_capabilities(cls, profile: BackendProfile) -> Capabilities:
        """Differentiable without shots; noisy when the profile names a noise model."""
        return _capabilities(profile.shots, profile.has_noise)

    @property
    def capabilities(self) -> Capabilities:
        return _capabilities(self.shots, self.noise is not None and not self.noise.is_trivial)

    def _uses_pauli(self) -> bool:
        if self.method != "auto":
            return self.method == "pauli"
        return self.noise is not None and self.noise.has_gate_noise

    def _prepare(
        self,
        circuit: QuantumCircuit,
        angle_params: tuple[Parameter, ...],
        weight_params: tuple[Parameter, ...],
        readout_qubits: tuple[int, ...],
    ) -> tuple[StatevectorPayload | DensityKernel | Program, ReadoutAssignment | None]:
        assignment = None
        if self.noise is not None:
            matrix = self.noise.assignment_matrix(len(readout_qubits))
            assignment = None if matrix is None else ReadoutAssignment(cpu_tensor(matrix))
        if not self._uses_pauli():
            payload = compile_statevector(
                circuit, angle_params, weight_params, readout_qubits, self.max_qubits, self.fuse, self.name
            )
            return payload, assignment
        if self.fuse:
            limit = min(self.max_qubits, product_density.MAX_QUBITS)
            kernel = compile_density_kernel(
                circuit, angle_params, weight_params, self.noise, readout_qubits, max_qubits=limit
            )
            if kernel is not None:
                return kernel, assignment
        return self._generic_program(circuit, angle_params, weight_params, readout_qubits), assignment

    def _generic_program(
        self,
        circuit: QuantumCircuit,
        angle_params: tuple[Parameter, ...],
        weight_params: tuple[Parameter, ...],
        readout_qubits: tuple[int, ...],
    ) -> Program:
        compiled = compile_circuit(
            circuit,
            angle_params,
            weight_params,
            readout_qubits,
            self.max_qubits,
            too_wide=lambda count: product.width_error(count, self.max_qubits, self.name),
        )
        needed = generic_memory_bytes(compiled)
        if needed > GENERIC_MEMORY_LIMIT:
            raise QdtInputError(
                "circuit",
                f"a circuit whose noisy gates fit in {_size(GENERIC_MEMORY_LIMIT)} at batch "
                f"{product.REFERENCE_BATCH} on the density executor (noise on every gate: the paper's "
                "circuit to 6 qubits)",
                f"{compiled.num_qubits} qubits needing about {_size(needed)}",
                _ALTERNATIVES,
            )
        representation = PauliRepresentation(self.noise)
        ops = [representation.lower(op) for op in compiled.ops]
        program = build_program(
            ops,
            Space(compiled.num_qubits, 4),
            representation.qubit_state(),
            compiled.readout,
            heisenberg=True,
            n_angles=len(angle_params),
            n_weights=len(weight_params),
        )
        if self.fuse:
            program.kernel = compile_pauli_kernel(
                ops, compiled.num_qubits, compiled.readout, len(angle_params), len(weight_params)
            )
        return program

    def _run(
        self, prepared: PreparedCircuit, angles: torch.Tensor, weights: torch.Tensor, readout: str
    ) -> torch.Tensor:
        payload = prepared.payload
        assert isinstance(payload, tuple)
        simulation, assignment = payload
        if isinstance(simulation, Program):
            probs = probabilities(simulation, angles, weights)
        else:  # ProductKernel or DensityKernel
            probs = simulation(angles, weights)
        if assignment is not None:
            probs = probs @ on_device(assignment, probs.device).matrix
        if self.shots is not None:
            probs = sample_probabilities(probs, self.shots, self.generator)
        return probs if readout == "probs" else expval_z(probs)


@dataclass(frozen=True, eq=False)
class ReadoutAssignment:
    """Readout error: measured probabilities = exact probabilities @ ``matrix`` [2**m, 2**m]."""

    matrix: torch.Tensor


def _capabilities(shots: int | None, noisy: bool) -> Capabilities:
    return Capabilities(differentiable=shots is None, shots=shots is not None, noisy=noisy, remote=False)


def _open(request: OpenRequest) -> DensityExecutor:
    noise = density_noise(request.noise)
    return DensityExecutor(noise=noise, shots=request.profile.shots, seed=request.seed, **request.options)  # type: ignore[arg-type]


BACKEND = BackendSpec(
    name="density",
    factory=_open,
    capabilities=DensityExecutor.profile_capabilities,
    options=("shots", "noise", "method", "max_qubits", "fuse"),
)
