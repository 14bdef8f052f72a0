"""``aer``: the same circuit on qiskit-aer, exact or with finite shots, noiseless or noisy.

Opened by ``open_backend("aer")`` (the shipped profile: 1024 shots) or
``open_backend("executor:aer")`` (exact); options (see :data:`BACKEND`):

- ``shots``: None gives exact probabilities; an integer gives estimates from that many shots.
- ``mode``: ``"exact"`` (default without shots), ``"sampled"`` (default with shots: multinomial
  counts / shots) or ``"gaussian"`` (exact probabilities plus Gaussian noise with the
  multinomial's mean and covariance, diag(p) − p pᵀ over shots: the common shortcut, offered
  to compare against real sampling; its values can be slightly negative).
- ``noise``: None, a :class:`~qdt.noise.NoiseConfig`, a :class:`~qdt.noise.profiles.NoiseProfile`
  or a profile spec for :func:`~qdt.noise.profiles.load_noise_profile` (``"depol-1e-3"``,
  ``"device:fake_brisbane"``, a file). Parametric noise acts after every gate of the circuit as
  given (as in the ``density`` executor); a device profile transpiles the circuit to the device
  (``optimization_level``, ``seed_transpiler``) and uses qiskit-aer's device noise model.
- ``seed``: None, an int, a numpy ``SeedSequence`` or ``Generator``. One generator per executor;
  every call draws fresh randomness from it (shot noise never repeats across calls, and the
  same seed reproduces a run).
- ``engine``: ``"auto"`` (default), ``"probabilities"`` or ``"sampler"``; see below.
- ``optimization_level``, ``seed_transpiler``: how a device profile transpiles (default 2, 0).

How a batch runs (one Aer call per batch, never one job per row): every angle row and the
weights form one parameter array [B, P] bound to the one compiled circuit. The circuit is
transpiled once per (circuit structure, target) and cached (:mod:`qdt.executors.transpile_cache`);
then reduced to the qubits it uses
(renumbered 0 … k−1, with the noise model restricted to them, which is exact because Aer's
errors act only on the qubits of their gate). The **probabilities** engine has Aer compute the
exact output distribution (``save_probabilities``: statevector method when noiseless, density
matrix when noisy). For k ≤ 5 noisy qubits and two rows or more, Aer simulates only the prefix
up to the last angle-dependent gate, row by row; the rest (the trainable layers, the same for
the whole batch) is applied once per call as readout observables evolved backwards through its
noisy gates (:mod:`qdt.executors.aer.tail`, built from the same qiskit-aer errors). Then it applies the
readout assignment matrix and draws multinomial counts from the executor's generator: the
same distribution as measuring shots on Aer, much faster. The **sampler** engine runs Aer's
``SamplerV2`` on the circuit with measurements, readout errors in the noise model and a fresh
simulator seed per call; ``auto`` uses it only when the density matrix would be too large.

After every :meth:`AerExecutor.run`, ``executor.last_run_info`` holds ``mode``
(``"exact"``, ``"sampled"`` or ``"gaussian"``; also ``executor.result_mode``), ``shots``,
``engine``, ``method``, ``rows``, ``qubits`` (simulated), ``physical_qubits``, ``noise``,
``device``, ``seconds``. On a device noise profile, :meth:`AerExecutor.isa_report` gives the
transpiled circuit's device, depth, two-qubit gates and physical qubits.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Gate, Parameter, ParameterExpression

from qdt.errors import QdtError, QdtInputError
from qdt.executors.aer.tail import ErrorLookup, NoisyTail
from qdt.executors.base import (
    Capabilities,
    Executor,
    PreparedCircuit,
    expval_z,
    strip_final_measurements,
    validate_shots,
)
from qdt.executors.profiles import DEFAULT_SHOTS, BackendProfile
from qdt.executors.registry import BackendSpec, OpenRequest
from qdt.executors.sampling import gaussian_shot_noise, make_generator, multinomial_estimates
from qdt.executors.transpile_cache import cached_transpile
from qdt.noise.config import NoiseConfig
from qdt.noise.profiles import DeviceNoiseProfile, NoiseProfile, load_noise_profile

MODES = ("exact", "sampled", "gaussian")
ENGINES = ("auto", "probabilities", "sampler")
SPLIT_MAX_QUBITS = 5  # the tail's observables are 4^k Pauli coordinates each (k compact qubits)
SPLIT_MIN_ROWS = 2  # one row: simulating it whole is as fast
DENSITY_MAX_QUBITS = 12
STATEVECTOR_MAX_QUBITS = 26
_IGNORED = frozenset({"barrier", "delay"})
# Gates whose symbolic parameters Aer's parameter_binds handles correctly (checked gate by gate
# against qiskit.quantum_info). Aer 0.17 binds wrong values into gates that follow a symbolic
# cp/crx/cry/crz/cu1/cu3 (compare Qiskit/qiskit-aer#2359); circuits with symbolic parameters
# in any other gate are bound in Python instead, row by row, still in one Aer call.
_BINDABLE_GATES = frozenset({"rx", "ry", "rz", "p", "u", "u1", "u2", "u3", "r", "rxx", "ryy", "rzz", "rzx"})


class AerRunError(QdtError):
    """Aer reported a failed simulation (it returns success=False rather than raising)."""


def _depends_on(value: object, params: set[Parameter]) -> bool:
    return isinstance(value, ParameterExpression) and bool(params & set(value.parameters))


# ---- the compiled plan ---------------------------------------------------------------------
@dataclass(eq=False)
class AerPlan:
    """Everything prepare() decides once: compact circuits, noise, parameters, method."""

    circuit: QuantumCircuit  # compact: k qubits, no measurements, global phase 0
    readout: tuple[int, ...]  # compact qubit of readout bit i
    physical_qubits: tuple[int, ...]  # compact qubit i = qubit physical_qubits[i] of the transpiled circuit
    sources: np.ndarray  # column of [angles | weights] feeding each circuit parameter
    n_angles: int
    gate_model: Any  # qiskit_aer NoiseModel with gate errors only, or None
    sampler_model: Any  # the same plus readout errors on measurements, or None
    assignment: np.ndarray | None  # [2**m, 2**m]: p_recorded = p_true @ assignment
    method: str  # "statevector", "density_matrix" or "sampler"
    split_at: int | None  # first instruction after the last angle-dependent one (None: no split)
    prefix: QuantumCircuit | None  # instructions before split_at, saving the density matrix
    tail: NoisyTail | None  # the instructions from split_at on, as readout observables
    python_bind: bool  # bind rows in Python (see _BINDABLE_GATES) instead of Aer's parameter_binds
    unitaries_after_bind: bool  # bound gates the density-matrix method lacks become labelled unitaries
    transpiled: QuantumCircuit
    device: str | None

    @property
    def num_qubits(self) -> int:
        return self.circuit.num_qubits

    @property
    def two_qubit_gates(self) -> int:
        return sum(1 for inst in self.transpiled.data if inst.operation.num_qubits == 2)


def _compact(
    circuit: QuantumCircuit, readout: Sequence[int]
) -> tuple[QuantumCircuit, tuple[int, ...], tuple[int, ...]]:
    """The circuit on the qubits it uses (gates or readout), renumbered in ascending order."""
    active: set[int] = set(readout)
    for instruction in circuit.data:
        name = instruction.operation.name
        if name in _IGNORED or instruction.operation.num_qubits == 0:
            continue
        active.update(circuit.find_bit(q).index for q in instruction.qubits)
    physical = tuple(sorted(active))
    index = {q: i for i, q in enumerate(physical)}
    compact = QuantumCircuit(len(physical), name=circuit.name)
    for instruction in circuit.data:
        op = instruction.operation
        if op.name in _IGNORED or op.num_qubits == 0:
            continue
        compact.append(op, [index[circuit.find_bit(q).index] for q in instruction.qubits], [])
    return compact, physical, tuple(index[q] for q in readout)


def _split_point(circuit: QuantumCircuit, angle_params: set[Parameter]) -> int | None:
    last = None
    for position, instruction in enumerate(circuit.data):
        if any(_depends_on(p, angle_params) for p in instruction.operation.params):
            last = position
    if last is None or last + 1 >= len(circuit.data):
        return None
    return last + 1


def _assignment_from_matrices(matrices: Sequence[np.ndarray | None]) -> np.ndarray | None:
    if all(m is None for m in matrices):
        return None
    total = np.ones((1, 1))
    for matrix in matrices:  # bit 0 first: later bits are more significant
        total = np.kron(np.eye(2) if matrix is None else np.asarray(matrix, dtype=float), total)
    return total


class AerExecutor(Executor):
    """qiskit-aer: exact, sampled or Gaussian-emulated shots; parametric or device noise."""

    name = "aer"

    def __init__(
        self,
        *,
        shots: int | None = None,
        mode: str | None = None,
        noise: NoiseConfig | NoiseProfile | str | None = None,
        seed: int | np.random.SeedSequence | np.random.Generator | None = None,
        optimization_level: int = 2,
        seed_transpiler: int = 0,
        engine: str = "auto",
    ) -> None:
        self.shots = None if shots is None else validate_shots(shots)
        resolved_mode = mode if mode is not None else ("exact" if shots is None else "sampled")
        if resolved_mode not in MODES:
            raise QdtInputError("mode", f"one of {MODES}", mode)
        if (resolved_mode == "exact") != (self.shots is None):
            raise QdtInputError(
                "mode",
                "'exact' without shots, 'sampled' or 'gaussian' with shots",
                f"mode {resolved_mode!r} with shots={shots}",
            )
        if engine not in ENGINES:
            raise QdtInputError("engine", f"one of {ENGINES}", engine)
        if engine == "sampler" and resolved_mode != "sampled":
            raise QdtInputError("engine", "'sampler' only in mode 'sampled' (with shots)", engine)
        if isinstance(optimization_level, bool) or optimization_level not in (0, 1, 2, 3):
            raise QdtInputError("optimization_level", "0, 1, 2 or 3", optimization_level)
        if isinstance(seed_transpiler, bool) or not isinstance(seed_transpiler, int) or seed_transpiler < 0:
            raise QdtInputError("seed_transpiler", "a non-negative integer", seed_transpiler)
        self.mode = resolved_mode
        self.engine = engine
        self.optimization_level = optimization_level
        self.seed_transpiler = seed_transpiler
        self.generator = make_generator(seed)
        self.profile, self.noise = self._resolve_noise(noise)

    @staticmethod
    def _resolve_noise(
        noise: object,
    ) -> tuple[NoiseProfile | None, NoiseConfig | DeviceNoiseProfile | None]:
        if noise is None:
            return None, None
        if isinstance(noise, NoiseConfig):
            return None, noise
        if isinstance(noise, (str, NoiseProfile)):
            profile = load_noise_profile(noise)
            if isinstance(profile, DeviceNoiseProfile):
                return profile, profile
            return profile, profile.to_noise_config()
        raise QdtInputError(
            "noise", "None, a NoiseConfig, a NoiseProfile or a profile name", type(noise).__name__
        )

    @classmethod
    def profile_capabilities(cls, profile: BackendProfile) -> Capabilities:
        """Shots when the profile has them; noisy when it names a noise model; no gradients."""
        return _capabilities(profile.shots, profile.has_noise)

    @property
    def capabilities(self) -> Capabilities:
        if isinstance(self.noise, DeviceNoiseProfile):
            noisy = True
        else:
            noisy = self.noise is not None and not self.noise.is_trivial
        return _capabilities(self.shots, noisy)

    @property
    def result_mode(self) -> str:
        """``"exact"``, ``"sampled"`` or ``"gaussian"``: what :meth:`run` returns."""
        return self.mode

    @property
    def noise_name(self) -> str | None:
        if self.profile is not None:
            return self.profile.name
        return None if self.noise is None else "NoiseConfig"

    def isa_report(self, prepared: PreparedCircuit) -> dict[str, Any] | None:
        """On a device noise profile: the device, and the transpiled circuit's depth, two-qubit
        gates and the physical qubits simulated; None for circuits run as written."""
        plan = self.check_prepared(prepared).payload
        assert isinstance(plan, AerPlan)
        if plan.device is None:
            return None
        return {
            "device": plan.device,
            "depth": plan.transpiled.depth(),
            "two_qubit_gates": plan.two_qubit_gates,
            "physical_qubits": list(plan.physical_qubits),
        }

    # ---- prepare ---------------------------------------------------------------------------
    def _prepare(
        self,
        circuit: QuantumCircuit,
        angle_params: tuple[Parameter, ...],
        weight_params: tuple[Parameter, ...],
        readout_qubits: tuple[int, ...],
    ) -> AerPlan:
        device = self.noise if isinstance(self.noise, DeviceNoiseProfile) else None
        stripped = strip_final_measurements(circuit, allow_delays=device is None)
        if device is not None:
            transpiled, readout = self._to_device(circuit, stripped, readout_qubits, device)
        else:  # the qubits the circuit uses first: an ISA circuit may be 127 qubits wide
            used, used_qubits, readout = _compact(stripped, readout_qubits)
            transpiled = cached_transpile(used, ("aer-logical",), _logical_transpile).circuit
        compact, physical, compact_readout = _compact(transpiled, readout)
        if device is None:
            physical = tuple(used_qubits[q] for q in physical)
        compact.global_phase = 0.0  # irrelevant to probabilities; Aer cannot bind it at run time
        gate_model, sampler_model, assignment, errors = self._noise_models(
            compact, physical, compact_readout, device
        )
        unitaries_after_bind = False
        if gate_model is not None:
            compact = as_density_matrix_gates(compact)
            unitaries_after_bind = any(inst.operation.name not in _density_gates() for inst in compact.data)
        k = compact.num_qubits
        limit = DENSITY_MAX_QUBITS if gate_model is not None else STATEVECTOR_MAX_QUBITS
        if self.engine == "sampler" or (self.engine == "auto" and k > limit):
            if self.mode != "sampled":
                raise QdtInputError(
                    "circuit",
                    f"at most {limit} simulated qubits for {self.mode} results with this noise",
                    f"{k} qubits",
                    "use shots (mode 'sampled'), or fewer qubits",
                )
            method = "sampler"
        elif k > limit:
            raise QdtInputError(
                "circuit", f"at most {limit} simulated qubits for engine 'probabilities'", f"{k} qubits"
            )
        else:
            method = "density_matrix" if gate_model is not None else "statevector"
        angle_set = set(angle_params)
        split = None
        if method == "density_matrix" and k <= SPLIT_MAX_QUBITS:
            split = _split_point(compact, angle_set)
        prefix = tail = None
        if split is not None:
            prefix, suffix = compact.copy_empty_like(), compact.copy_empty_like()
            for instruction in compact.data[:split]:
                prefix.append(instruction)
            for instruction in compact.data[split:]:
                suffix.append(instruction)
            prefix.save_density_matrix()
            tail = NoisyTail(suffix, compact_readout, errors)
        columns = {p: i for i, p in enumerate(angle_params)}
        columns.update({p: len(angle_params) + j for j, p in enumerate(weight_params)})
        sources = np.array([columns[p] for p in compact.parameters], dtype=np.int64)
        return AerPlan(
            circuit=compact,
            readout=compact_readout,
            physical_qubits=physical,
            sources=sources,
            n_angles=len(angle_params),
            gate_model=gate_model,
            sampler_model=sampler_model,
            assignment=assignment,
            method=method,
            split_at=split,
            prefix=prefix,
            tail=tail,
            python_bind=unitaries_after_bind
            or any(
                inst.operation.name not in _BINDABLE_GATES
                and any(isinstance(p, ParameterExpression) and p.parameters for p in inst.operation.params)
                for inst in compact.data
            ),
            unitaries_after_bind=unitaries_after_bind,
            transpiled=transpiled,
            device=None if device is None else device.name,
        )

    def _to_device(
        self,
        circuit: QuantumCircuit,
        stripped: QuantumCircuit,
        readout_qubits: tuple[int, ...],
        device: DeviceNoiseProfile,
    ) -> tuple[QuantumCircuit, tuple[int, ...]]:
        target = device.target
        if circuit.layout is not None and circuit.num_qubits == target.num_qubits:
            return stripped, readout_qubits  # already an ISA circuit for this device
        if circuit.num_qubits > target.num_qubits:
            raise QdtInputError(
                "circuit",
                f"at most {target.num_qubits} qubits for {device.name}",
                f"{circuit.num_qubits} qubits",
            )
        from qiskit.transpiler import generate_preset_pass_manager

        level, seed = self.optimization_level, self.seed_transpiler

        def compile_fn(logical: QuantumCircuit) -> QuantumCircuit:
            manager = generate_preset_pass_manager(
                optimization_level=level, target=target, seed_transpiler=seed
            )
            return manager.run(logical)

        isa = cached_transpile(stripped, ("aer-device", *device.cache_key, level, seed), compile_fn).circuit
        final = isa.layout.final_index_layout()
        return isa, tuple(int(final[q]) for q in readout_qubits)

    def _noise_models(
        self,
        compact: QuantumCircuit,
        physical: tuple[int, ...],
        readout: tuple[int, ...],
        device: DeviceNoiseProfile | None,
    ) -> tuple[Any, Any, np.ndarray | None, ErrorLookup]:
        """Gate-error model, model with readout errors (sampler), assignment matrix, and the
        error after each (gate name, compact qubits) for the tail."""
        if device is not None:
            from qiskit_aer.noise import ReadoutError

            from qdt.noise.device import compact_device_noise

            compact_noise = compact_device_noise(device.target, physical)
            sampler_model = copy.deepcopy(compact_noise.model)
            for qubit, matrix in compact_noise.readout.items():
                sampler_model.add_readout_error(
                    ReadoutError([list(r) for r in matrix]), [qubit], warnings=False
                )
            matrices = [compact_noise.readout.get(q) for q in readout]
            assignment = _assignment_from_matrices([None if m is None else np.asarray(m) for m in matrices])
            gate_model = compact_noise.model if not compact_noise.model.is_ideal() else None
            errors = compact_noise.gate_errors
            return gate_model, sampler_model, assignment, lambda name, qubits: errors.get((name, qubits))
        if self.noise is None:
            return None, None, None, lambda name, qubits: None
        noise = self.noise
        assert isinstance(noise, NoiseConfig)
        from qdt.executors.aer.noise_model import NOT_GATES, aer_noise_model, gate_error

        gates = [(inst.operation.name, inst.operation.num_qubits) for inst in compact.data]
        gate_model = aer_noise_model(noise, gates, readout, with_readout=False)
        sampler_model = aer_noise_model(noise, gates, readout, with_readout=True)
        assignment = noise.assignment_matrix(len(readout))
        by_width = {width: gate_error(noise, width) for width in (1, 2)} if noise.has_gate_noise else {}

        def lookup(name: str, qubits: tuple[int, ...]) -> Any:
            if name in NOT_GATES or name in noise.noiseless_gates:
                return None
            return by_width.get(len(qubits))

        return gate_model, sampler_model, assignment, lookup

    # ---- run -------------------------------------------------------------------------------
    def _run(
        self, prepared: PreparedCircuit, angles: torch.Tensor, weights: torch.Tensor, readout: str
    ) -> torch.Tensor:
        plan = prepared.payload
        assert isinstance(plan, AerPlan)
        start = time.perf_counter()
        table = np.concatenate(
            [
                angles.detach().cpu().numpy(),
                np.broadcast_to(weights.detach().cpu().numpy(), (angles.shape[0], weights.shape[0])),
            ],
            axis=1,
        )
        values = table[:, plan.sources]
        rows = values.shape[0]
        method = plan.method
        if method == "sampler":
            probs = self._sampler_estimates(plan, values)
        else:
            exact, method = self._exact_probabilities(plan, values)
            if plan.assignment is not None:
                exact = exact @ plan.assignment
            if self.mode == "exact":
                probs = exact
            elif self.mode == "sampled":
                assert self.shots is not None
                probs = multinomial_estimates(exact, self.shots, self.generator)
            else:
                assert self.shots is not None
                probs = gaussian_shot_noise(exact, self.shots, self.generator)
        self._run_info = {
            "mode": self.mode,
            "shots": self.shots,
            "engine": "sampler" if method == "sampler" else "probabilities",
            "method": method,
            "rows": rows,
            "qubits": plan.num_qubits,
            "physical_qubits": list(plan.physical_qubits),
            "noise": self.noise_name,
            "device": plan.device,
            "seconds": time.perf_counter() - start,
        }
        result = torch.as_tensor(np.ascontiguousarray(probs), dtype=torch.float64)
        return result if readout == "probs" else expval_z(result)

    @staticmethod
    def _run_rows(simulator: Any, circuit: QuantumCircuit, values: np.ndarray, plan: AerPlan) -> Any:
        """One Aer call for every row of ``values`` (columns: ``plan.circuit.parameters``)."""
        position = {p: i for i, p in enumerate(plan.circuit.parameters)}
        columns = [position[p] for p in circuit.parameters]
        if not columns:
            result = simulator.run([circuit] * values.shape[0], shots=1).result()
        elif plan.python_bind:
            bound = [circuit.assign_parameters(row[columns]) for row in values]
            if plan.unitaries_after_bind:
                bound = [as_density_matrix_gates(c) for c in bound]
            result = simulator.run(bound, shots=1).result()
        else:
            binds = [{p: values[:, c] for p, c in zip(circuit.parameters, columns)}]
            result = simulator.run([circuit], parameter_binds=binds, shots=1).result()
        _check_result(result)
        return result

    def _exact_probabilities(self, plan: AerPlan, values: np.ndarray) -> tuple[np.ndarray, str]:
        """[B, 2**m] exact probabilities before readout error, and the method used."""
        rows = values.shape[0]
        angle_dependent = bool(np.any(plan.sources < plan.n_angles))
        if not angle_dependent and rows > 1:  # every row is the same circuit: run it once
            probs, method = self._exact_probabilities(plan, values[:1])
            return np.repeat(probs, rows, axis=0), method
        if plan.split_at is not None and rows >= SPLIT_MIN_ROWS:
            return self._split_probabilities(plan, values), "density_matrix+tail"
        circuit = plan.circuit.copy()
        circuit.save_probabilities(list(plan.readout))
        result = self._run_rows(self._simulator(plan.method, plan.gate_model), circuit, values, plan)
        probs = np.array([result.data(i)["probabilities"] for i in range(rows)], dtype=np.float64)
        return probs, plan.method

    def _split_probabilities(self, plan: AerPlan, values: np.ndarray) -> np.ndarray:
        """Aer's density matrix after the angle-dependent prefix, per row; then the shared
        tail as readout observables evolved backwards once (see :mod:`qdt.executors.aer.tail`)."""
        assert plan.prefix is not None and plan.tail is not None
        position = {p: i for i, p in enumerate(plan.circuit.parameters)}
        tail_values = {p: float(values[0, position[p]]) for p in plan.tail.parameters}
        simulator = self._simulator("density_matrix", plan.gate_model)
        result = self._run_rows(simulator, plan.prefix, values, plan)
        states = np.stack([np.asarray(result.data(i)["density_matrix"]) for i in range(values.shape[0])])
        return plan.tail.probabilities(states, tail_values)

    @staticmethod
    def _simulator(method: str, noise_model: Any) -> Any:
        from qiskit_aer import AerSimulator

        options: dict[str, Any] = {
            "method": method,
            "noise_model": noise_model,
            "runtime_parameter_bind_enable": True,  # binds in C++: no circuit copy per row
        }
        if method == "density_matrix":
            options["fusion_enable"] = False  # measured: fusing noisy ops costs more than it saves here
        return AerSimulator(**options)

    def _sampler_estimates(self, plan: AerPlan, values: np.ndarray) -> np.ndarray:
        from qiskit import ClassicalRegister
        from qiskit_aer.primitives import SamplerV2

        assert self.shots is not None
        circuit = plan.circuit.copy()
        register = ClassicalRegister(len(plan.readout), "meas")
        circuit.add_register(register)
        circuit.measure(list(plan.readout), register)
        seed = int(self.generator.integers(2**32))
        options: dict[str, Any] = {"backend_options": {"noise_model": plan.sampler_model}}
        sampler = SamplerV2(seed=seed, options=options)
        rows = values.shape[0]
        if plan.python_bind:
            pubs = [(_after_bind(plan, circuit.assign_parameters(row)),) for row in values]
            result = sampler.run(pubs, shots=self.shots).result()
            bits = np.stack([np.asarray(r.data.meas.array) for r in result])
        else:
            result = sampler.run([(circuit, values)], shots=self.shots).result()
            bits = np.asarray(result[0].data.meas.array)  # [B, shots, bytes], big-endian bytes
        outcomes = np.zeros(bits.shape[:2], dtype=np.int64)
        for byte in range(bits.shape[2]):
            outcomes = (outcomes << 8) | bits[:, :, byte].astype(np.int64)
        outcomes_count = 2 ** len(plan.readout)
        flat = outcomes + outcomes_count * np.arange(rows)[:, None]
        counts = np.bincount(flat.ravel(), minlength=rows * outcomes_count).reshape(rows, outcomes_count)
        return counts / self.shots


def _after_bind(plan: AerPlan, circuit: QuantumCircuit) -> QuantumCircuit:
    return as_density_matrix_gates(circuit) if plan.unitaries_after_bind else circuit


_DENSITY_GATES: list[frozenset[str]] = []


def _density_gates() -> frozenset[str]:
    if not _DENSITY_GATES:
        from qiskit_aer import AerSimulator

        _DENSITY_GATES.append(frozenset(AerSimulator(method="density_matrix").configuration().basis_gates))
    return _DENSITY_GATES[0]


def as_density_matrix_gates(circuit: QuantumCircuit) -> QuantumCircuit:
    """Bound gates Aer's density-matrix method lacks (crx, cu3 …) as unitaries labelled with
    the gate's name, so the noise model still finds them (and only them) by that name."""
    supported = _density_gates()
    if all(inst.operation.name in supported for inst in circuit.data):
        return circuit
    from qiskit.circuit.library import UnitaryGate

    converted = circuit.copy_empty_like()
    for instruction in circuit.data:
        op = instruction.operation
        symbolic = any(isinstance(p, ParameterExpression) and p.parameters for p in op.params)
        if op.name in supported or not isinstance(op, Gate) or symbolic:
            converted.append(instruction)
        else:
            converted.append(UnitaryGate(op.to_matrix(), label=op.name), instruction.qubits)
    return converted


def _check_result(result: Any) -> None:
    if not result.success:
        raise AerRunError(f"qiskit-aer simulation failed: {result.status}")


_LOGICAL_BACKEND: list[Any] = []


def _logical_transpile(circuit: QuantumCircuit) -> QuantumCircuit:
    """Unroll only what Aer cannot run; every other gate stays as written (level 0)."""
    if not _LOGICAL_BACKEND:
        from qiskit_aer import AerSimulator

        _LOGICAL_BACKEND.append(AerSimulator())
    return transpile(circuit, _LOGICAL_BACKEND[0], optimization_level=0)


def _capabilities(shots: int | None, noisy: bool) -> Capabilities:
    return Capabilities(differentiable=False, shots=shots is not None, noisy=noisy, remote=False)


def _open(request: OpenRequest) -> AerExecutor:
    return AerExecutor(shots=request.profile.shots, noise=request.noise, seed=request.seed, **request.options)  # type: ignore[arg-type]


BACKEND = BackendSpec(
    name="aer",
    factory=_open,
    capabilities=AerExecutor.profile_capabilities,
    options=("shots", "noise", "mode", "engine", "optimization_level", "seed_transpiler"),
    default_shots=DEFAULT_SHOTS,
)
