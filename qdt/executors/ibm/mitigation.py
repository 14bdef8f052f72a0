"""Readout (measurement-error) mitigation through ``mthree`` (M3), calibrated on the device's own data.

``qdt infer --mitigate readout`` corrects every PUB's counts with M3, the method IBM's
documentation points Sampler users to:
1. Calibration, per physical qubit the ISA layout reads out: the 2×2 assignment matrix A_q with
   A[i][j] = P(record j | state i) (qiskit-aer's ReadoutError convention, the same as
   :class:`qdt.noise.NoiseConfig`), from one of two sources:
   * ``circuits`` (default): M3's "independent" calibration, measured in the same job as the
     circuits it corrects: every qubit in |0>, every qubit in |1>, one row each
     (:meth:`qdt.executors.ibm.executor.IBMRuntimeExecutor.prepare_readout_calibration`,
     :func:`matrices_from_calibration`);
   * ``properties``: the device's reported calibration, ``prob_meas1_prep0`` and
     ``prob_meas0_prep1`` of its properties (for a fake device: its snapshot), else the symmetric
     ``target["measure"][(q,)].error`` (:func:`readout_assignment_matrices`); no extra rows.
   :func:`m3_mitigator` loads the matrices into ``mthree.M3Mitigation.cals_from_matrices`` (M3's
   convention is the transpose: column = prepared state).
2. :func:`check_m3_calibration` refuses a calibration that misses a qubit the layout reads out,
   naming the qubits, before any job.
3. Correction (:func:`m3_mitigate`): each row's counts go through ``apply_correction`` (M3 solves
   A·x = p in the subspace of the observed bitstrings; tensored, uncorrelated readout errors)
   and ``nearest_probability_distribution`` (Smolin et al. 2012: the closest probability vector
   in Euclidean norm), so the mitigated rows stay probabilities the actors can read.

Why ``circuits`` by default: local testing mode simulates each qubit's readout with the target's
symmetric ``measure`` error (qiskit-aer's noise model of a BackendV2), not the asymmetric
``prob_meas*`` values of the properties, so a calibration from the properties mis-models the
fake devices; measured in the same job, the calibration is what the device (real or simulated)
does at that moment. Mean total variation distance of the actors' probabilities to the exact
ones (two trained L = 6 policies, 1024 shots; benchmarks/readout_mitigation.py,
benchmarks/results/readout_mitigation.md): fake_manila 0.045 raw, 0.034 with ``properties``,
0.032 with ``circuits``; fake_torino 0.029, 0.023, 0.023. Action agreement with the noiseless
policy rises with either (93.75% → 94.1-96.9% for the policy that has undecided observations);
decision agreement stays 100% with ``circuits`` and drops to 99.86-99.94% with ``properties`` on
fake_fractional.

:class:`ReadoutMitigation` holds one inference's mitigation for every agent: the physical qubits
each agent's ISA layout reads out, the calibration (its PUBs, sent with the first job, or the
device's properties), an M3 mitigator per agent and the report ``qdt infer`` saves.

The hand-written path this replaced (the full A_{m-1} ⊗ … ⊗ A_0 inverted, rows projected onto the
simplex) gave the same probabilities as M3 to 6e-8 (M3 computes in float32) and so the same action
and decision agreement, on fake_manila, fake_fractional and fake_torino; it was dropped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qdt.errors import QdtInputError

CALIBRATIONS = ("circuits", "properties")  # where --mitigate readout takes the readout errors from
Mitigate = Callable[[np.ndarray], np.ndarray]  # measured probabilities [B, 2^m] -> mitigated


def readout_assignment_matrices(backend: Any, physical_qubits: Sequence[int]) -> list[np.ndarray]:
    """One 2×2 assignment matrix per readout bit, from ``backend``'s calibration."""
    properties = None
    getter = getattr(backend, "properties", None)
    if callable(getter):
        try:
            properties = getter()
        except Exception:  # a device without properties falls back to the target's error
            properties = None
    matrices = []
    for qubit in physical_qubits:
        p10 = p01 = None
        if properties is not None:
            values = properties.qubit_property(qubit)
            p10 = _value(values.get("prob_meas1_prep0"))
            p01 = _value(values.get("prob_meas0_prep1"))
        if p10 is None or p01 is None:
            error = _target_readout_error(backend, qubit)
            p10 = p01 = error
        matrices.append(_assignment(qubit, p10, p01))
    return matrices


def matrices_from_calibration(
    zeros: np.ndarray, ones: np.ndarray, physical_qubits: Sequence[int]
) -> list[np.ndarray]:
    """Per-qubit assignment matrices from the two calibration rows (probabilities [1, 2^k] of every
    qubit prepared in |0> and in |1>, bit i read from ``physical_qubits[i]``): each qubit's
    marginal flip probabilities."""
    bits = len(physical_qubits)
    outcome = np.arange(2**bits)
    rows = [np.asarray(r, dtype=np.float64).reshape(-1) for r in (zeros, ones)]
    if any(r.shape != (2**bits,) for r in rows):
        raise QdtInputError(
            "calibration", f"two probability rows of {2**bits} outcomes", [r.shape for r in rows]
        )
    matrices = []
    for i, qubit in enumerate(physical_qubits):
        bit = (outcome >> i) & 1
        p10, p01 = float(rows[0][bit == 1].sum()), float(rows[1][bit == 0].sum())
        matrices.append(_assignment(qubit, p10, p01))
    return matrices


def _assignment(qubit: int, p10: float, p01: float) -> np.ndarray:
    if not (0.0 <= p10 < 0.5 and 0.0 <= p01 < 0.5):
        raise QdtInputError(
            f"readout calibration of qubit {qubit}",
            "flip probabilities below 0.5",
            (p10, p01),
            "this qubit's readout is unusable; pick another device or layout",
        )
    return np.array([[1.0 - p10, p10], [p01, 1.0 - p01]], dtype=np.float64)


def _value(entry: object) -> float | None:
    if isinstance(entry, tuple) and entry:
        entry = entry[0]
    return float(entry) if isinstance(entry, (int, float)) else None


def _target_readout_error(backend: Any, qubit: int) -> float:
    target = getattr(backend, "target", None)
    try:
        error = target["measure"][(qubit,)].error  # type: ignore[index]
    except (KeyError, TypeError, AttributeError):
        error = None
    if error is None:
        raise QdtInputError(
            "--mitigate readout",
            "a device that reports readout errors",
            f"none for qubit {qubit} on {getattr(backend, 'name', backend)}",
        )
    return float(error)


# ---- mthree ------------------------------------------------------------------------------------
def m3_mitigator(physical_qubits: Sequence[int], matrices: Sequence[np.ndarray]) -> Any:
    """An ``mthree.M3Mitigation`` calibrated with ``matrices`` (qdt's A[i][j] = P(record j | state
    i), one per physical qubit, as :func:`readout_assignment_matrices` gives them)."""
    import mthree

    if len(physical_qubits) != len(matrices):
        raise QdtInputError("matrices", f"one per qubit ({len(physical_qubits)})", len(matrices))
    cals: list[np.ndarray | None] = [None] * (max(physical_qubits, default=-1) + 1)
    for qubit, matrix in zip(physical_qubits, matrices):
        cals[qubit] = np.asarray(matrix, dtype=np.float32).T.copy()  # M3: column = prepared state
    mitigator = mthree.M3Mitigation()
    mitigator.cals_from_matrices(cals)
    return mitigator


def calibrated_qubits(mitigator: Any) -> list[int]:
    """The physical qubits an M3 calibration holds a matrix for."""
    cals = mitigator.single_qubit_cals or []
    return [q for q, matrix in enumerate(cals) if matrix is not None]


def check_m3_calibration(mitigator: Any, physical_qubits: Sequence[int], field: str = "--mitigate") -> None:
    """Refuse a calibration that lacks a qubit the layout reads out (:func:`check_calibrated_qubits`)."""
    check_calibrated_qubits(calibrated_qubits(mitigator), physical_qubits, field)


def check_calibrated_qubits(calibrated: Sequence[int], physical_qubits: Sequence[int], field: str) -> None:
    """Refuse, before any job, a calibration of qubits that misses one the layout reads out."""
    missing = [q for q in physical_qubits if q not in calibrated]
    if missing:
        raise QdtInputError(
            field,
            f"an mthree calibration of the physical qubits the layout reads out {list(physical_qubits)}",
            f"one of qubits {list(calibrated)} (none for {missing})",
            "calibrate the qubits of the ISA circuit's layout (qdt infer --mitigate readout does)",
        )


def m3_mitigate(probs: np.ndarray, shots: int, physical_qubits: Sequence[int], mitigator: Any) -> np.ndarray:
    """Mitigated probabilities [B, 2^m] from measured ones [B, 2^m] (``shots`` each) through M3.

    Outcome index k = Σ_i bit_i·2^i, bit i read from ``physical_qubits[i]``: M3's bitstrings
    (rightmost character = the first qubit) are k in binary.
    """
    probs = np.asarray(probs, dtype=np.float64)
    bits = len(physical_qubits)
    if probs.ndim != 2 or probs.shape[1] != 2**bits:
        raise QdtInputError("probs", f"an array [B, {2**bits}]", probs.shape)
    check_m3_calibration(mitigator, physical_qubits)
    keys = [format(k, f"0{bits}b") for k in range(2**bits)]
    counts = np.rint(probs * shots).astype(np.int64)
    rows = [{key: int(c) for key, c in zip(keys, row) if c > 0} for row in counts]
    corrected = mitigator.apply_correction(rows, list(physical_qubits)).nearest_probability_distribution()
    out = np.array([[float(dist.get(key, 0.0)) for key in keys] for dist in corrected])
    return out / out.sum(axis=1, keepdims=True)  # M3 works in float32: renormalise in float64


@dataclass
class ReadoutMitigation:
    """Readout mitigation through mthree (this module's functions) for every agent of ``qdt infer``.

    ``physical[j]``: the physical qubits agent j's ISA layout reads out. Calibration ``source``:
    ``circuits`` adds two one-row calibration PUBs (all |0>, all |1> on the union of those qubits)
    to the first job (:meth:`pending`, :meth:`calibrate`); ``properties`` reads the device's
    reported calibration at once. Either way the qubits are checked against the layouts before
    any job is submitted.
    """

    source: str
    shots: int
    physical: list[list[int]]
    qubits: list[int]  # calibrated: the union of every agent's readout qubits
    calibration_pubs: list[Any]  # circuits: the two prepared calibration circuits
    matrices: dict[int, np.ndarray] | None = None  # per calibrated qubit, once known
    mitigators: list[Any] | None = None
    job_id: str | None = None  # the job the calibration circuits ran in

    @classmethod
    def for_circuits(cls, executor: Any, prepared: Sequence[Any], source: str) -> ReadoutMitigation:
        """Mitigation for the agents' ``prepared`` circuits (one per agent) on the IBM ``executor``."""
        if source not in CALIBRATIONS:
            raise QdtInputError("--readout-calibration", "one of " + ", ".join(CALIBRATIONS), source)
        physical = []
        for circuit in prepared:
            report = executor.isa_report(circuit)
            assert report is not None
            physical.append([int(q) for q in report["physical_readout"]])
        qubits = sorted({q for agent in physical for q in agent})
        pubs = []
        if source == "circuits":
            pubs = executor.prepare_readout_calibration(qubits)
            qubits = [int(q) for q in executor.isa_report(pubs[0])["physical_readout"]]
            for agent in physical:  # before any job: the calibration covers every layout
                check_calibrated_qubits(qubits, agent, "--mitigate")
        mitigation = cls(source, int(executor.shots), physical, qubits, pubs)
        if source == "properties":
            matrices = readout_assignment_matrices(executor.device.backend, qubits)
            mitigation.use(dict(zip(qubits, matrices)))
        return mitigation

    def pending(self) -> list[tuple[Any, torch.Tensor, torch.Tensor]]:
        """The calibration PUBs still to run (with the next job), as run items."""
        if self.mitigators is not None:
            return []
        empty = torch.zeros(1, 0, dtype=torch.float64)
        return [(prepared, empty, torch.zeros(0, dtype=torch.float64)) for prepared in self.calibration_pubs]

    def calibrate(self, results: Sequence[torch.Tensor], job_id: str | None) -> None:
        """Matrices from the calibration PUBs' probabilities (all |0>, all |1>)."""
        zeros, ones = (r.numpy() for r in results)
        self.use(dict(zip(self.qubits, matrices_from_calibration(zeros, ones, self.qubits))))
        self.job_id = job_id

    def use(self, matrices: dict[int, np.ndarray]) -> None:
        """An mthree mitigator per agent, checked to cover the qubits its layout reads out."""
        mitigators = []
        for qubits in self.physical:
            known = [q for q in qubits if q in matrices]
            mitigator = m3_mitigator(known, [matrices[q] for q in known])
            check_m3_calibration(mitigator, qubits, "--mitigate")
            mitigators.append(mitigator)
        self.matrices, self.mitigators = matrices, mitigators

    def corrections(self) -> list[Mitigate]:
        assert self.mitigators is not None, "calibrate first"
        return [
            functools.partial(m3_mitigate, shots=self.shots, physical_qubits=q, mitigator=m)
            for q, m in zip(self.physical, self.mitigators)
        ]

    def report(self) -> dict[str, Any]:
        from importlib.metadata import version

        matrices = self.matrices or {}
        return {
            "method": "mthree",
            "mthree_version": version("mthree"),
            "calibration": self.source,
            "calibration_job_id": self.job_id,
            "physical_qubits": self.physical,
            "matrices": {str(q): matrices[q].tolist() for q in self.qubits if q in matrices},
        }
