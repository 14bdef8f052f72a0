"""Small shared helpers for tests (instances and brute force)."""

from __future__ import annotations

import importlib
import itertools
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from qdt.problem.generator import GeneratorConfig, generate_instance
from qdt.problem.instance import Instance
from qdt.problem.model import PlacementModel

SMALL_CONSTRUCT = dict(
    agent="classical",
    episodes=6,
    envs=2,
    gradient_steps=2,
    checkpoint_every=2,
    hidden=16,
    decode="construct",
    observation="placement",
    family="users=6,servers=2,tight=true",
)
"""A constructing family run small enough for a test (qdt/rl/construct.py): TrainConfig(**SMALL_CONSTRUCT)."""


def small_instance(seed: int, users: int = 3, servers: int = 2) -> Instance:
    return generate_instance(GeneratorConfig(users=users, servers=servers), seed)


def all_binary_matrices(n: int, m: int) -> np.ndarray:
    """Every binary N×M matrix, shape [2^(NM), N, M]."""
    bits = np.array(list(itertools.product([0, 1], repeat=n * m)), dtype=np.int8)
    return bits.reshape(-1, n, m)


def brute_force_optimum(model: PlacementModel) -> float | None:
    """Minimum of (21) over all feasible binary X, from the constraint definitions directly."""
    best = None
    for x in all_binary_matrices(model.n_users, model.n_servers):
        if not np.all(x.sum(axis=1) == 1):
            continue
        if np.any(x.sum(axis=0) > model.instance.max_users):
            continue
        if np.any((x * model.instance.compute_rate).sum(axis=0) > model.instance.capacity * (1 + 1e-9)):
            continue
        if np.any((x * model.latency) > model.instance.deadline_s[:, None] * (1 + 1e-9)):
            continue
        value = float((x * model.latency).sum())
        best = value if best is None or value < best else best
    return best


def benchmark_script(name: str) -> ModuleType:
    """A script of benchmarks/ imported as a module."""
    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)
