"""``statevector``: exact, differentiable, batched state-vector simulation in torch.

The paper's circuit (the exact gate sequence of :func:`qdt.circuits.build_vqc`, recognised from
the circuit itself, parameters in any order, any readout qubits) runs on the product kernel
(``qdt/sim/kernels/product.py``): the encoding tree's state in closed form, each layer as a few
Kronecker-group matmuls and the CZ ring's sign vector, and a hand-written adjoint backward pass.
Its cost follows the physics, O(B·2**n) per layer, and it prepares in milliseconds at any width
up to 20 qubits (12 qubits, L = 6: 0.06 s, and under 0.4 GB for a forward + backward pass of
batch 128). Any other circuit (an ISA circuit transpiled for a device, extra gates, affine
parameter expressions) runs gate by gate on the generic program (:mod:`qdt.sim.program`: float64
while the state is real, complex128 after the first complex gate; gates shared by the batch at
the end are fused into one unitary per call on up to 6 qubits). ``fuse=False`` runs every
circuit on the generic program, unfused: the conformance suite's second opinion.

Width: at most ``max_qubits`` simulated qubits (default and largest 20). Wider circuits are
refused when prepared, before anything is allocated, with the memory they would need
(:func:`qdt.sim.kernels.product.width_error`).

Device: a run computes on the device of its angles and weights (``--torch-device``); the compiled
tables are made on the CPU and copied to that device once (``qdt/sim/device.py``).
"""

from __future__ import annotations

import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qdt.circuits.encoding import FEATURE_SCALE, AmplitudeEncoder
from qdt.errors import QdtInputError
from qdt.executors.base import (
    Capabilities,
    Executor,
    PreparedCircuit,
    expval_z,
    validate_readout,
    weights_beside,
)
from qdt.executors.profiles import BackendProfile
from qdt.executors.registry import BackendSpec, OpenRequest
from qdt.sim.engine import probabilities
from qdt.sim.gates import compile_circuit
from qdt.sim.kernels.product import MAX_QUBITS, ProductKernel, compile_product_kernel, width_error
from qdt.sim.layout import Space
from qdt.sim.lowering import UnitaryRepresentation
from qdt.sim.multiplex import multiplex_rotations
from qdt.sim.program import Program, build_program


def check_max_qubits(value: object, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise QdtInputError("max_qubits", f"an integer from 1 to {limit}", value)
    return value


def compile_unitary_program(
    circuit: QuantumCircuit,
    angle_params: tuple[Parameter, ...],
    weight_params: tuple[Parameter, ...],
    readout_qubits: tuple[int, ...],
    max_qubits: int,
    fuse: bool = True,
    executor: str = "statevector",
) -> Program:
    """The generic state-vector program of any circuit (see the module docstring)."""
    compiled = compile_circuit(
        circuit,
        angle_params,
        weight_params,
        readout_qubits,
        max_qubits,
        too_wide=lambda count: width_error(count, max_qubits, executor),
    )
    representation = UnitaryRepresentation()
    ops = [representation.lower(op) for op in compiled.ops]
    if fuse:
        ops = multiplex_rotations(ops)
    return build_program(
        ops,
        Space(compiled.num_qubits, 2),
        representation.qubit_state(),
        compiled.readout,
        heisenberg=False,
        n_angles=len(angle_params),
        n_weights=len(weight_params),
        fuse=fuse,
    )


StatevectorPayload = ProductKernel | Program


def compile_statevector(
    circuit: QuantumCircuit,
    angle_params: tuple[Parameter, ...],
    weight_params: tuple[Parameter, ...],
    readout_qubits: tuple[int, ...],
    max_qubits: int,
    fuse: bool = True,
    executor: str = "statevector",
) -> StatevectorPayload:
    """The product kernel for the paper's circuit (``fuse``), else the generic program."""
    if fuse:
        kernel = compile_product_kernel(circuit, angle_params, weight_params, readout_qubits)
        if kernel is not None:
            if kernel.n_qubits > max_qubits:
                raise width_error(kernel.n_qubits, max_qubits, executor)
            return kernel
    return compile_unitary_program(
        circuit, angle_params, weight_params, readout_qubits, max_qubits, fuse, executor
    )


def statevector_probabilities(
    payload: StatevectorPayload, angles: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Exact probabilities [B, 2**m] of a compiled circuit (differentiable)."""
    if isinstance(payload, ProductKernel):
        return payload(angles, weights)
    return probabilities(payload, angles, weights)


class StatevectorExecutor(Executor):
    """Exact and differentiable; the fast default for training."""

    name = "statevector"
    runs_on_input_device = True  # torch on the device of the angles (qdt/sim/device.py)

    def __init__(self, *, max_qubits: int = MAX_QUBITS, fuse: bool = True) -> None:
        self.max_qubits = check_max_qubits(max_qubits, MAX_QUBITS)
        self.fuse = bool(fuse)

    @classmethod
    def profile_capabilities(cls, profile: BackendProfile) -> Capabilities:
        """Exact, noiseless, local and differentiable, whatever the profile."""
        return Capabilities(differentiable=True, shots=False, noisy=False, remote=False)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(differentiable=True, shots=False, noisy=False, remote=False)

    def _prepare(
        self,
        circuit: QuantumCircuit,
        angle_params: tuple[Parameter, ...],
        weight_params: tuple[Parameter, ...],
        readout_qubits: tuple[int, ...],
    ) -> StatevectorPayload:
        return compile_statevector(
            circuit, angle_params, weight_params, readout_qubits, self.max_qubits, self.fuse
        )

    def _run(
        self, prepared: PreparedCircuit, angles: torch.Tensor, weights: torch.Tensor, readout: str
    ) -> torch.Tensor:
        payload = prepared.payload
        assert isinstance(payload, (ProductKernel, Program))
        probs = statevector_probabilities(payload, angles, weights)
        return probs if readout == "probs" else expval_z(probs)

    def run_encoded(
        self,
        prepared: PreparedCircuit,
        encoder: AmplitudeEncoder,
        inputs: torch.Tensor,
        weights: torch.Tensor,
        readout: str = "probs",
    ) -> torch.Tensor:
        """As :meth:`Executor.run_encoded`; on the product kernel of a circuit whose tree reads the
        encoding's angles in order, the encoded state φ(x)/|φ(x)| goes straight to the layers
        (:meth:`ProductKernel.state_probabilities`): no angles, no tree, the same probabilities to
        rounding (tests/test_encoded_state.py). 6 qubits, L = 6, 2048 rows, one thread: 2.6 ms
        instead of 7.9 without gradients (benchmarks/encoded_state.py). With gradients (training)
        only up to ``UNITARY_QUBITS`` (:attr:`ProductKernel.differentiable_states`), where autograd
        through the state and the layers' small matrices gives the same gradients to rounding, and
        the true one where a branch of φ(x) is 0 and the angles have none (``_EncodingAngles``);
        wider circuits keep the angles and the kernel's own backward. A tight 64 × 8 quantum
        training episode: 29 s → 24 s (qdt/rl/construct.py, "Learning")."""
        payload = self.check_prepared(prepared).payload
        direct = (
            isinstance(payload, ProductKernel)
            and payload.reads_tree_in_order
            and encoder.n_qubits == payload.n_qubits
            and (payload.differentiable_states or not torch.is_grad_enabled())
        )
        if not direct:
            return super().run_encoded(prepared, encoder, inputs, weights, readout)
        assert isinstance(payload, ProductKernel)
        mode = validate_readout(readout)
        if payload.folds_encoding and not torch.is_grad_enabled():
            probs = _folded_probabilities(payload, encoder, inputs, weights, prepared.n_weights)
        else:
            state = encoder.state(inputs)
            probs = payload.state_probabilities(
                state, weights_beside(state, weights, prepared.n_weights, "inputs")
            )
        return probs if mode == "probs" else expval_z(probs)


FOLDED_NORM_FLOOR = 1e-12
"""Below this |φ(x)|² (φ within 10⁻⁶ of 0, the encoding's one zero) a folded call's row is computed
from the normalised state instead (:func:`_folded_probabilities`)."""


def _folded_probabilities(
    kernel: ProductKernel,
    encoder: AmplitudeEncoder,
    inputs: torch.Tensor,
    weights: torch.Tensor,
    n_weights: int,
) -> torch.Tensor:
    """The probabilities a call gives for ``inputs``, without gradient, from the encoding folded into
    the circuit's matrix (:meth:`ProductKernel.affine_probabilities`): one addmm on the inputs,
    then each row divided by its sum |φ(x)|², so no φ(x), norm or state is formed. The same
    probabilities to rounding (tests/test_encoded_state.py); a row whose |φ(x)|² is under
    :data:`FOLDED_NORM_FLOOR` (where dividing would amplify the rounding, and at φ(x) = 0, where the
    encoding prepares |0…0⟩) is computed from the normalised state. 6 qubits, L = 6, 256 rows of 57
    inputs: 105 µs per call against 134 through the state (median of 5, one
    process alone on this 2-core machine)."""
    x = encoder.validated(inputs)
    w = weights_beside(x, weights, n_weights, "inputs")
    unnormalised = kernel.affine_probabilities(x, w, FEATURE_SCALE, encoder.bias)
    norms = unnormalised.sum(dim=1, keepdim=True)
    small = norms[:, 0] < FOLDED_NORM_FLOOR
    probs = unnormalised / norms
    if bool(small.any()):
        probs[small] = kernel.state_probabilities(encoder.state(x[small]), w)
    return probs


def _open(request: OpenRequest) -> StatevectorExecutor:
    return StatevectorExecutor(**request.options)


BACKEND = BackendSpec(
    name="statevector",
    factory=_open,
    capabilities=StatevectorExecutor.profile_capabilities,
    options=("max_qubits", "fuse"),
    hints={
        "shots": "statevector is exact: use density or aer for shot estimates",
        "noise": "statevector is noiseless: use density or aer for noise",
    },
)
