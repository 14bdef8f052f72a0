"""Shot sampling shared by the simulators: seeded generators and estimates from exact probabilities.

An executor with shots owns ONE numpy Generator (:func:`make_generator`) and draws from it on
every call, so shot noise never repeats across calls and the same seed reproduces a run. The
estimates are what measuring ``shots`` times would give: multinomial counts / shots per row
(:func:`multinomial_estimates`), or, to compare against that, the Gaussian with the
multinomial's mean and covariance (:func:`gaussian_shot_noise`).
"""

from __future__ import annotations

import numpy as np
import torch

from qdt.errors import QdtInputError


def make_generator(seed: object) -> np.random.Generator:
    """A numpy Generator from None (fresh entropy), an int, a SeedSequence or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(np.random.SeedSequence(int(seed)))
    raise QdtInputError("seed", "None, a non-negative int, a numpy SeedSequence or a numpy Generator", seed)


def multinomial_estimates(probs: np.ndarray, shots: int, generator: np.random.Generator) -> np.ndarray:
    """counts / shots for each row of ``probs`` [B, K] (one multinomial draw per row)."""
    p = np.clip(probs, 0.0, None)
    p = p / p.sum(axis=1, keepdims=True)
    return generator.multinomial(shots, p) / shots


def sample_probabilities(probs: torch.Tensor, shots: int, generator: np.random.Generator) -> torch.Tensor:
    """:func:`multinomial_estimates` of a tensor (detached: estimates carry no gradient), on its device."""
    estimates = multinomial_estimates(probs.detach().cpu().numpy(), shots, generator)
    return torch.from_numpy(np.asarray(estimates, dtype=np.float64)).to(probs.device)


def gaussian_shot_noise(probs: np.ndarray, shots: int, generator: np.random.Generator) -> np.ndarray:
    """probs + N(0, (diag(p) − p pᵀ)/shots) per row: the multinomial's first two moments.

    With g ~ N(0, I), x = √p ∘ g − p (√p · g) has covariance diag(p) − p pᵀ and sums to 0.
    """
    p = np.clip(probs, 0.0, None)
    root = np.sqrt(p)
    g = generator.standard_normal(p.shape)
    x = root * g - p * np.sum(root * g, axis=1, keepdims=True)
    return probs + x / np.sqrt(shots)
