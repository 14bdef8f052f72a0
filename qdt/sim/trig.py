"""Gate matrices as trigonometric polynomials of their parameter.

Every one-parameter gate the executors meet — rotations, phase gates, controlled rotations, and
their Pauli transfer matrices with noise — has a matrix of the form

    M(θ) = Σ_f K_f · g_f(θ/2),   g ∈ {1, cos h, sin h, cos 2h, sin 2h, cos 3h, …},  h = θ/2,

with constant matrices K_f. We find the K_f once, numerically, by least squares on sample
angles, verify the fit on other angles, and at run time evaluate only the few g_f a gate needs
(one cos and one sin per frequency for a whole batch of gates) and contract them with K.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

_FIT_TOLERANCE = 1e-10
_ZERO = 1e-13
_SAMPLES = np.array(
    [-2.9, -2.2, -1.7, -1.1, -0.6, -0.2, 0.15, 0.55, 0.9, 1.4, 1.9, 2.35, 2.8, 3.4, 4.1, 4.9, 5.6]
)
_CHECKS = np.array([-3.7, 0.37, 2.05, 6.0])


def function_index(frequency: int, is_sine: bool) -> int:
    """Index of g_f: 0 is the constant, then cos(k·h), sin(k·h) for k = 1, 2, …"""
    return 0 if frequency == 0 else 2 * frequency - 1 + int(is_sine)


def function_frequency(index: int) -> int:
    return (index + 1) // 2


def _features(half_angles: np.ndarray, max_frequency: int) -> np.ndarray:
    columns = [np.ones_like(half_angles)]
    for k in range(1, max_frequency + 1):
        columns += [np.cos(k * half_angles), np.sin(k * half_angles)]
    return np.stack(columns, axis=-1)


@dataclass(frozen=True, eq=False)
class TrigFit:
    """M(θ) = Σ_i coefficients[i] · g_{functions[i]}(θ/2)."""

    functions: tuple[int, ...]
    coefficients: np.ndarray  # [len(functions), m, m], real when the matrix is real

    def evaluate(self, theta: float) -> np.ndarray:
        values = _features(np.array([theta / 2.0]), max(map(function_frequency, self.functions)))
        return np.einsum("f,fij->ij", values[0, list(self.functions)], self.coefficients)


def clean(matrix: np.ndarray) -> np.ndarray:
    """Zero out round-off (so sparsity patterns are exact) and drop a zero imaginary part."""
    matrix = np.where(np.abs(matrix) < _ZERO, 0.0, matrix)
    if np.iscomplexobj(matrix):
        real = np.where(np.abs(matrix.real) < _ZERO, 0.0, matrix.real)
        imag = np.where(np.abs(matrix.imag) < _ZERO, 0.0, matrix.imag)
        matrix = real if not imag.any() else real + 1j * imag
    return matrix


def fit_trig_polynomial(matrix_fn: Callable[[float], np.ndarray], max_frequency: int) -> TrigFit | None:
    """Fit M(θ) with frequencies up to ``max_frequency``·θ/2; None if it does not fit."""
    samples = np.stack([matrix_fn(float(t)) for t in _SAMPLES])
    m = samples.shape[1]
    design = _features(_SAMPLES / 2.0, max_frequency)
    flat = samples.reshape(len(_SAMPLES), m * m)
    solution, *_ = np.linalg.lstsq(design, flat, rcond=None)
    scale = max(1.0, float(np.max(np.abs(flat))))
    if np.max(np.abs(design @ solution - flat)) > _FIT_TOLERANCE * scale:
        return None
    checks = np.stack([matrix_fn(float(t)) for t in _CHECKS]).reshape(len(_CHECKS), m * m)
    if np.max(np.abs(_features(_CHECKS / 2.0, max_frequency) @ solution - checks)) > (_FIT_TOLERANCE * scale):
        return None
    keep = [f for f in range(design.shape[1]) if np.max(np.abs(solution[f])) > 1e-12]
    if not keep:
        keep = [0]
    coefficients = clean(solution[keep].reshape(len(keep), m, m))
    return TrigFit(tuple(keep), coefficients)


def trig_features(half_angles: torch.Tensor, functions: Iterable[int]) -> dict[int, torch.Tensor]:
    """g_f(half_angles) for the requested function indices (one cos and sin per frequency)."""
    wanted = sorted(set(functions))
    out: dict[int, torch.Tensor] = {}
    for index in wanted:
        if index == 0:
            out[0] = torch.ones_like(half_angles)
            continue
        k = function_frequency(index)
        if index in out:
            continue
        scaled = half_angles if k == 1 else half_angles * k
        if function_index(k, False) in wanted:
            out[function_index(k, False)] = torch.cos(scaled)
        if function_index(k, True) in wanted:
            out[function_index(k, True)] = torch.sin(scaled)
    return out
