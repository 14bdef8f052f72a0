"""Noise: parametric noise configuration and its Pauli-transfer-matrix channels."""

from qdt.noise.config import AssignmentMatrix, NoiseConfig, readout_matrix

__all__ = ["AssignmentMatrix", "NoiseConfig", "readout_matrix"]
