"""Readout (measurement-error) mitigation from the device's own calibration, no extra jobs.

Method (tensored, uncorrelated readout errors, as in M3/TREX without the twirling):
1. For each physical qubit read out, the 2×2 assignment matrix A_q with A[i][j] = P(record j |
   state i) comes from the backend's calibration properties ``prob_meas1_prep0`` and
   ``prob_meas0_prep1``; without them, from the symmetric ``target["measure"][(q,)].error``.
   (qiskit-aer's ReadoutError convention, the same as :class:`qdt.noise.NoiseConfig`.)
2. The m-bit matrix is A = A_{m-1} ⊗ … ⊗ A_0 (bit i of the outcome index is readout bit i);
   measured probabilities obey p_meas = p_true · A, so p_true = p_meas · A⁻¹.
3. A⁻¹ can give small negative entries (shot noise): each row is projected onto the probability
   simplex (closest point in Euclidean norm, Duchi et al. 2008), so the mitigated rows stay
   probabilities the actors can read.

Limits: the calibration is the device's latest (for a fake device, its snapshot), not a
measurement taken with the job; correlated readout errors are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qdt.errors import QdtInputError


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
        if not (0.0 <= p10 < 0.5 and 0.0 <= p01 < 0.5):
            raise QdtInputError(
                f"readout calibration of qubit {qubit}",
                "flip probabilities below 0.5",
                (p10, p01),
                "this qubit's readout is unusable; pick another device or layout",
            )
        matrices.append(np.array([[1.0 - p10, p10], [p01, 1.0 - p01]], dtype=np.float64))
    return matrices


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


def full_assignment_matrix(matrices: Sequence[np.ndarray]) -> np.ndarray:
    """A_{m-1} ⊗ … ⊗ A_0 for outcome index k = Σ_i bit_i·2^i."""
    full = np.ones((1, 1))
    for matrix in matrices:
        full = np.kron(matrix, full)
    return full


def project_to_simplex(rows: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row onto {p ≥ 0, Σp = 1} (vectorised over rows)."""
    rows = np.asarray(rows, dtype=np.float64)
    n = rows.shape[-1]
    ordered = -np.sort(-rows, axis=-1)
    cumulative = np.cumsum(ordered, axis=-1) - 1.0
    k = np.arange(1, n + 1)
    valid = ordered - cumulative / k > 0
    rho = n - 1 - np.argmax(valid[..., ::-1], axis=-1)
    theta = np.take_along_axis(cumulative, rho[..., None], axis=-1) / (rho[..., None] + 1.0)
    return np.maximum(rows - theta, 0.0)


def mitigate_probabilities(probs: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Mitigated probabilities [B, 2^m] from measured ones and per-bit assignment matrices."""
    probs = np.asarray(probs, dtype=np.float64)
    full = full_assignment_matrix(matrices)
    if probs.ndim != 2 or probs.shape[1] != full.shape[0]:
        raise QdtInputError("probs", f"an array [B, {full.shape[0]}]", probs.shape)
    return project_to_simplex(probs @ np.linalg.inv(full))
