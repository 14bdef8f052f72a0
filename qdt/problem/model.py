"""The system model (paper eqs. 17–26) and the shaped reward (eq. 32 with penalties 33–36).

Latency. r_ij = B·log2(1 + p_i·h_ij/σ²) (20); T_ij = D_i/r_ij + D_i/c_ij (17–19).

Constraints on a binary decision X (N×M):
  (22) one server per user, Σ_j x_ij = 1
  (23) user cap,            Σ_i x_ij ≤ M_j
  (24) compute capacity,    Σ_i x_ij·c_ij ≤ C_j
  (26) deadline,            T_ij·x_ij ≤ τ_i

Reward. The paper's R = −Σ T_ij x_ij − P1 − P2 − P3 − P4 (32) taken literally has P3 in (bits/s)²,
which dwarfs everything, and makes dropping a user (P1 = 1) cheaper than serving it (T ≈ 1–2 s).
qdt normalises and weights the penalties (docs/design.md §2):

  R(X) = −Σ_ij T_ij x_ij − λ·(P1 + P2 + P3 + P4)

  P1 = Σ_i (Σ_j x_ij − 1)²                                  (33, an integer ≥ 1 when violated)
  P2 = Σ_j max(0, Σ_i x_ij − M_j)²                          (34, an integer ≥ 1 when violated)
  P3 = Σ_j [e_j > 0]·(1 + e_j²),  e_j = (Σ_i x_ij c_ij − C_j)/C_j            (35, normalised by C_j)
  P4 = Σ_ij x_ij·[T_ij > τ_i]·(1 + ((T_ij − τ_i)/τ_i)²)                     (36, normalised by τ_i)

Every violated constraint costs at least λ. With the default λ = 1 + Σ_i max_j T_ij (one more
than the worst latency any feasible X can have), every feasible X has R > −λ and every infeasible
X has R ≤ −λ, and among feasible X the reward is minus the objective (21). So the reward's
maximum over all 2^(NM) binary X is a constrained optimum of (21) whenever one exists (tested by
enumeration). The magnitude terms (e_j², relative deadline excess²) keep a gradient towards
feasibility for learners. ``RewardConfig(mode="paper")`` gives eqs. (32)–(36) as printed, for
comparison only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qdt.errors import QdtInputError
from qdt.problem.instance import Instance

# Relative tolerance for "≤" in capacity and deadline checks: values within 1e-9 of the bound
# count as satisfied, so a solver's floating-point round-off never flips feasibility.
RELATIVE_TOLERANCE = 1e-9

CONSTRAINTS = ("one_server", "max_users", "capacity", "deadline")


def upload_rate_bps(instance: Instance) -> NDArray[np.float64]:
    """r_ij (eq. 20), bits/s, N×M."""
    with np.errstate(over="ignore", under="ignore"):
        snr = instance.tx_power_w[:, None] * instance.channel_gain / instance.noise_power_w
        return instance.bandwidth_hz * np.log2(1.0 + snr)


def latency_matrix(instance: Instance) -> NDArray[np.float64]:
    """T_ij = D_i/r_ij + D_i/c_ij (eqs. 17–19), seconds, N×M."""
    data = instance.data_bits[:, None]
    with np.errstate(over="ignore", divide="ignore", under="ignore", invalid="ignore"):
        return data / upload_rate_bps(instance) + data / instance.compute_rate


@dataclass(frozen=True)
class RewardConfig:
    """How violations are priced. ``penalty_weight=None`` picks the smallest safe λ (see module)."""

    mode: Literal["normalized", "paper"] = "normalized"
    penalty_weight: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("normalized", "paper"):
            raise QdtInputError("reward.mode", "'normalized' or 'paper'", self.mode)
        if self.penalty_weight is not None and not (
            np.isfinite(self.penalty_weight) and self.penalty_weight > 0
        ):
            raise QdtInputError("reward.penalty_weight", "a finite number > 0", self.penalty_weight)


@dataclass(frozen=True)
class Evaluation:
    """Everything about one decision X: latency, violations per constraint, reward."""

    feasible: bool
    violations: dict[str, list[int]]
    total_latency_s: float
    per_user_latency_s: list[float]
    reward: float
    penalties: dict[str, float]


class PlacementModel:
    """An instance with its latency matrix precomputed; evaluates decisions, single or batched."""

    def __init__(self, instance: Instance, reward: RewardConfig | None = None) -> None:
        self.instance = instance
        self.reward_config = reward or RewardConfig()
        self.latency = latency_matrix(instance)
        bad = np.argwhere(~(np.isfinite(self.latency) & (self.latency > 0)))
        if bad.size:
            i, j = (int(v) for v in bad[0])
            raise QdtInputError(
                f"latency T[{i}][{j}]",
                "a finite latency > 0 from the instance's rates",
                float(self.latency[i, j]),
                f"check users[{i}].data_bits and .tx_power_w, channel_gain[{i}][{j}], "
                f"compute_rate[{i}][{j}], bandwidth_hz and noise_power_w",
            )
        self.capacity = instance.capacity
        self.max_users = instance.max_users
        self.deadline = instance.deadline_s
        self.compute_rate = instance.compute_rate
        self.penalty_weight = (
            self.reward_config.penalty_weight
            if self.reward_config.penalty_weight is not None
            else 1.0 + float(self.latency.max(axis=1).sum())
        )
        # Pairs (i, j) allowed by the deadline alone.
        self.deadline_ok = self.latency <= self.deadline[:, None] * (1 + RELATIVE_TOLERANCE)

    @property
    def n_users(self) -> int:
        return self.instance.n_users

    @property
    def n_servers(self) -> int:
        return self.instance.n_servers

    # ---- conversions -------------------------------------------------------------------
    def assignment_to_matrix(self, assignment: ArrayLike, field: str = "assignment") -> NDArray[np.int8]:
        """A server index per user (length N) → the binary N×M matrix X."""
        values = self.check_assignment(assignment, field)
        matrix = np.zeros((self.n_users, self.n_servers), dtype=np.int8)
        matrix[np.arange(self.n_users), values] = 1
        return matrix

    def check_assignment(self, assignment: ArrayLike, field: str = "assignment") -> NDArray[np.int64]:
        values = np.asarray(assignment)
        if values.ndim != 1 or values.shape[0] != self.n_users:
            raise QdtInputError(
                field, f"{self.n_users} server indices (one per user)", f"{values.size} values"
            )
        if values.dtype.kind not in "iu":
            if (
                values.dtype.kind == "f"
                and np.all(np.isfinite(values))
                and np.all(values == np.round(values))
            ):
                values = values.astype(np.int64)
            else:
                raise QdtInputError(field, "integer server indices", values.tolist())
        bad = np.flatnonzero((values < 0) | (values >= self.n_servers))
        if bad.size:
            i = int(bad[0])
            raise QdtInputError(
                f"{field}[{i}]",
                f"a server index in 0..{self.n_servers - 1}",
                int(values[i]),
                "servers are numbered from 0",
            )
        return values.astype(np.int64)

    def check_matrix(self, x: ArrayLike) -> NDArray[np.int8]:
        matrix = np.asarray(x)
        if matrix.shape[-2:] != (self.n_users, self.n_servers):
            raise QdtInputError(
                "X", f"a binary {self.n_users}×{self.n_servers} matrix", f"shape {matrix.shape}"
            )
        if not np.all((matrix == 0) | (matrix == 1)):
            raise QdtInputError("X", "entries 0 or 1", "other values")
        return matrix.astype(np.int8)

    # ---- batched core ------------------------------------------------------------------
    def violation_terms(self, x: NDArray[np.int8]) -> dict[str, NDArray[np.float64]]:
        """Per-constraint penalty terms for a batch of decisions X [..., N, M] (normalised mode)."""
        xf = x.astype(np.float64)
        per_user = xf.sum(axis=-1)
        per_server = xf.sum(axis=-2)
        load = (xf * self.compute_rate).sum(axis=-2)
        one_server = ((per_user - 1.0) ** 2).sum(axis=-1)
        over_count = np.maximum(per_server - self.max_users, 0.0)
        max_users = (over_count**2).sum(axis=-1)
        excess = (load - self.capacity) / self.capacity
        over_capacity = excess > RELATIVE_TOLERANCE
        capacity = np.where(over_capacity, 1.0 + excess**2, 0.0).sum(axis=-1)
        late = (xf > 0) & ~self.deadline_ok
        rel_late = (self.latency - self.deadline[:, None]) / self.deadline[:, None]
        deadline = np.where(late, 1.0 + rel_late**2, 0.0).sum(axis=(-2, -1))
        return {"one_server": one_server, "max_users": max_users, "capacity": capacity, "deadline": deadline}

    def reward_batch(self, x: NDArray[np.int8]) -> NDArray[np.float64]:
        """R(X) for a batch [..., N, M] of binary decisions."""
        latency = (x * self.latency).sum(axis=(-2, -1))
        if self.reward_config.mode == "paper":
            return -latency - self._paper_penalties(x)
        terms = self.violation_terms(x)
        return -latency - self.penalty_weight * sum(terms.values())

    def feasible_batch(self, x: NDArray[np.int8]) -> NDArray[np.bool_]:
        terms = self.violation_terms(x)
        return np.all(np.stack([t == 0 for t in terms.values()]), axis=0)

    def _paper_penalties(self, x: NDArray[np.int8]) -> NDArray[np.float64]:
        """Eqs. (33)–(36) as printed: un-normalised, squared, in mixed units (comparison only)."""
        xf = x.astype(np.float64)
        p1 = ((xf.sum(axis=-1) - 1.0) ** 2).sum(axis=-1)
        count = xf.sum(axis=-2)
        p2 = np.where(count >= self.max_users, (count - self.max_users) ** 2, 0.0).sum(axis=-1)
        load = (xf * self.compute_rate).sum(axis=-2)
        p3 = np.where(load >= self.capacity, (load - self.capacity) ** 2, 0.0).sum(axis=-1)
        t = xf * self.latency
        over = t >= self.deadline[:, None]
        p4 = np.where(over, (t - self.deadline[:, None]) ** 2, 0.0).sum(axis=(-2, -1))
        return p1 + p2 + p3 + p4

    # ---- single decision ---------------------------------------------------------------
    def evaluate(self, x: ArrayLike) -> Evaluation:
        """Score one binary decision X (N×M)."""
        matrix = self.check_matrix(x)
        xf = matrix.astype(np.float64)
        per_user_count = matrix.sum(axis=1)
        per_server_count = matrix.sum(axis=0)
        load = (xf * self.compute_rate).sum(axis=0)
        late = (matrix > 0) & ~self.deadline_ok
        violations = {
            "one_server": [int(i) for i in np.flatnonzero(per_user_count != 1)],
            "max_users": [int(j) for j in np.flatnonzero(per_server_count > self.max_users)],
            "capacity": [int(j) for j in np.flatnonzero(load > self.capacity * (1 + RELATIVE_TOLERANCE))],
            "deadline": [int(i) for i in np.flatnonzero(late.any(axis=1))],
        }
        per_user = (xf * self.latency).sum(axis=1)
        terms = self.violation_terms(matrix[None])
        return Evaluation(
            feasible=not any(violations.values()),
            violations=violations,
            total_latency_s=float(per_user.sum()),
            per_user_latency_s=[float(v) for v in per_user],
            reward=float(self.reward_batch(matrix[None])[0]),
            penalties={k: float(v[0]) for k, v in terms.items()},
        )

    def evaluate_assignment(self, assignment: ArrayLike, field: str = "assignment") -> Evaluation:
        return self.evaluate(self.assignment_to_matrix(assignment, field))


def matrix_to_assignment(x: ArrayLike) -> list[int] | None:
    """X → a server index per user, or None when some user has no server or more than one."""
    matrix = np.asarray(x)
    if not np.all(matrix.sum(axis=1) == 1):
        return None
    return [int(j) for j in matrix.argmax(axis=1)]
