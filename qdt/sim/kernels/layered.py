"""The batch-shared suffix of a state-vector program as layers, fused into one unitary per call.

The suffix (gates after the last angle-dependent gate on their qubits, shared by the batch) is
grouped into *factors* applied in order: a **layer** is a Kronecker product of one-qubit gates
(one slot per qubit: identity, a constant or a one-parameter gate) followed by an optional
constant block (the product of the multi-qubit constant gates after it, e.g. the CZ ring); a
**constant** factor is a constant block with no layer before it. Parameterised multi-qubit
gates are not handled here (the generic program runs them).

Forward: every slot's 2×2 matrix Σ_f K_f·g_f(h) at once, the Kronecker products of all layers
at once (log-depth), one batched product with the constant blocks, then U = F_L ⋯ F_1
keeping the partial products B_l = F_{l−1} ⋯ F_1.

Backward from G = ∂L/∂Re U + i ∂L/∂Im U (so that dL = Re tr(G^H dU)): with A_l = U·B_{l+1}^H
(the factors after l; the factors are unitary), ∂L/∂F_l = A_l^H G B_l^H, ∂L/∂K_l = P_l^H ∂L/∂F_l
for the layer's constant block P_l, and for slot s of layer l,
∂L/∂h_s = Re Σ conj(∂L/∂K_l) ⊙ K_l'(s), K_l'(s) the Kronecker product with dR_s/dh in slot s
(all slots at once, one batched Kronecker product). ∂L/∂w = Hᵀ ∂L/∂h for the affine half-angles.

When every parameterised slot is a one-parameter group R_s(h) = exp(h·A_s) (rx, ry, rz, p, …:
checked numerically at compile time) the backward pass is shorter: K_l'(s) = K_l X_s with the
constant X_s = A_s on the slot's qubit, and A_l F_l = U B_l^H, so

    ∂L/∂h_s = Re tr(Y_l X_s),   Y_l = B_l M B_l^H,   M = G^H U,

two batched products for all layers and one contraction with the constant X_sᵀ.

Features: every g_f(h) is cos(k_f·h − φ_f) (φ = π/2 for the sines, k = 0 for the constant), so
all arguments come from one affine map of the weights and all features from one cos.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qdt.sim.affine import AffineValue
from qdt.sim.engine import kron_layers
from qdt.sim.layout import embed_matrix
from qdt.sim.lowering import CONST, LocalOp
from qdt.sim.trig import TrigFit, clean, function_frequency

MAX_FREQUENCY = 2


@dataclass(frozen=True, eq=False)
class LayeredUnitary:
    """Compiled suffix (see the module docstring)."""

    dim: int
    num_qubits: int
    dtype: torch.dtype
    order: tuple[tuple[str, int], ...]  # ("layer", i) or ("const", j), in application order
    n_layers: int
    pool: torch.Tensor  # [P, 2, 2] constant one-qubit matrices, pool[0] = identity
    slot_index: torch.Tensor  # [n_layers, n] into cat(pool, parametric slot matrices)
    posts: torch.Tensor | None  # [n_layers, D, D] constant blocks after each layer (None: none)
    consts: tuple[torch.Tensor, ...]  # constant factors [D, D]
    # Parametric slots: R_s = Σ_f coefficients[s, f] · g_f(h_s), h = half_constant + half_weights·w.
    n_slots: int
    functions: tuple[int, ...]  # feature functions used (0: 1, 2k−1: cos kh, 2k: sin kh)
    coefficients: torch.Tensor  # [S, F, 2, 2]
    coefficients_real: torch.Tensor  # [S, F, 4·c]: real (c = 1) or interleaved real/imag (c = 2)
    half_constant: torch.Tensor  # [S]
    half_weights: torch.Tensor | None  # [S, n_weights]
    argument_constant: torch.Tensor  # [S·F]: k_f·half_constant − φ_f
    argument_weights: torch.Tensor | None  # [S·F, n_weights]: k_f·half_weights
    generators: torch.Tensor | None  # [n_layers, n, D²]: X_sᵀ flattened (zero without a slot)
    slot_layer: torch.Tensor  # [S]
    slot_qubit: torch.Tensor  # [S]
    slot_mask: torch.Tensor  # [S, n, 1, 1]: True at the slot's qubit
    posts_adjoint: torch.Tensor | None  # [n_layers, D, D]: P_l^H
    layer_positions: torch.Tensor  # [n_layers]: position of each layer among the factors
    identity: torch.Tensor  # [D, D]


@dataclass(eq=False)
class LayeredSaved:
    half: torch.Tensor | None  # [S]
    slots: torch.Tensor | None  # [n_layers, n, 2, 2]
    partials: list[torch.Tensor]  # B_1 = I, B_2 = F_1, …, B_{N+1} = U


@dataclass(eq=False)
class LayerFactor:
    slots: dict[int, LocalOp]
    post: Any = None  # dense or sparse matrix of the constant gates after the layer


@dataclass(eq=False)
class ConstFactor:
    matrix: Any


Slot = tuple[AffineValue, TrigFit, int, int]  # value, fit, layer, qubit


def group_factors(
    ops: list[LocalOp], embed: Callable[[LocalOp], Any | None]
) -> list[LayerFactor | ConstFactor] | None:
    """The shared suffix ``ops`` (circuit order) as layers of one-qubit slots, each followed by
    the constant gates after it (``embed`` gives a constant multi-qubit gate's full matrix, or
    None to refuse it). None if a parameterised gate acts on more than one qubit."""
    factors: list[LayerFactor | ConstFactor] = []
    for op in ops:
        last = factors[-1] if factors else None
        if len(op.qubits) == 1:
            if len(op.parts) > 1:
                return None
            q = op.qubits[0]
            if isinstance(last, LayerFactor) and last.post is None and q not in last.slots:
                last.slots[q] = op
            else:
                factors.append(LayerFactor({q: op}))
        elif op.kind == CONST:
            assert op.matrix is not None
            matrix = embed(op)
            if matrix is None:
                return None
            if isinstance(last, LayerFactor):
                last.post = matrix if last.post is None else matrix @ last.post
            elif isinstance(last, ConstFactor):
                last.matrix = matrix @ last.matrix
            else:
                factors.append(ConstFactor(matrix))
        else:
            return None
    return factors


def collect_slots(
    layers: list[LayerFactor],
    num_qubits: int,
    identity: np.ndarray,
    accept_matrix: Callable[[np.ndarray], bool],
    accept_part: Callable[[AffineValue, TrigFit], bool],
) -> tuple[list[np.ndarray], list[Slot], np.ndarray] | None:
    """Constant one-qubit matrices (a pool that starts with ``identity``), parameterised slots,
    and every (layer, qubit)'s index into pool + slots; None if ``accept_*`` refuses a gate."""
    pool: list[np.ndarray] = [identity]
    parametric: list[Slot] = []
    slot_refs = np.zeros((len(layers), num_qubits), dtype=np.int64)
    for i, layer in enumerate(layers):
        for q, op in layer.slots.items():
            if op.matrix is not None:
                if not accept_matrix(op.matrix):
                    return None
                pool.append(op.matrix)
                slot_refs[i, q] = len(pool) - 1
            else:
                value, fit = op.parts[0]
                if not accept_part(value, fit):
                    return None
                parametric.append((value, fit, i, q))
                slot_refs[i, q] = -len(parametric)  # resolved below
    slot_refs = np.where(slot_refs < 0, len(pool) + (-slot_refs - 1), slot_refs)
    return pool, parametric, slot_refs


def half_angle_maps(parametric: list[Slot], n_weights: int) -> tuple[np.ndarray, np.ndarray]:
    """Every slot's half-angle as constant [S] + weights [S, n_weights] @ w."""
    half_constant = np.zeros(len(parametric))
    half_weights = np.zeros((len(parametric), n_weights))
    for s, (value, _, _, _) in enumerate(parametric):
        half_constant[s] = value.constant / 2
        for index, c in value.weight_terms:
            half_weights[s, index] += c / 2
    return half_constant, half_weights


def compile_layered_unitary(ops: list[LocalOp], num_qubits: int, n_weights: int) -> LayeredUnitary | None:
    """Group the shared suffix ``ops`` (circuit order) into layers, or None if it has
    parameterised multi-qubit gates or gates that are not trigonometric of low order."""
    n = num_qubits
    dim = 2**n
    factors = group_factors(ops, lambda op: embed_matrix(op.matrix, op.qubits, range(n), 2))
    if factors is None:
        return None
    layers: list[LayerFactor] = [f for f in factors if isinstance(f, LayerFactor)]
    collected = collect_slots(
        layers,
        n,
        np.eye(2),
        lambda matrix: True,
        lambda value, fit: (
            not value.uses_angles  # the suffix is shared by construction
            and all(function_frequency(f) <= MAX_FREQUENCY for f in fit.functions)
        ),
    )
    if collected is None:
        return None
    pool, parametric, slot_refs = collected
    functions = tuple(sorted({f for _, fit, _, _ in parametric for f in fit.functions}))
    coefficients = np.zeros((len(parametric), len(functions), 2, 2), dtype=np.complex128)
    for s, (_, fit, _, _) in enumerate(parametric):
        for i, f in enumerate(fit.functions):
            coefficients[s, functions.index(f)] = fit.coefficients[i]
    half_constant, half_weights = half_angle_maps(parametric, n_weights)
    posts = [layer.post if layer.post is not None else np.eye(dim) for layer in layers]
    consts = [f.matrix for f in factors if isinstance(f, ConstFactor)]
    everything = [*pool, coefficients, *posts, *consts]
    is_complex = any(np.iscomplexobj(clean(np.asarray(a))) for a in everything)
    dtype = torch.complex128 if is_complex else torch.float64

    def tensor(array: np.ndarray) -> torch.Tensor:
        array = clean(np.asarray(array))
        return torch.as_tensor(np.ascontiguousarray(array if is_complex else array.real)).to(dtype)

    order: list[tuple[str, int]] = []
    layer_count = const_count = 0
    for factor in factors:
        if isinstance(factor, LayerFactor):
            order.append(("layer", layer_count))
            layer_count += 1
        else:
            order.append(("const", const_count))
            const_count += 1
    mask = np.zeros((len(parametric), n, 1, 1), dtype=bool)
    for s, (_, _, _, q) in enumerate(parametric):
        mask[s, q] = True
    has_posts = any(layer.post is not None for layer in layers)
    posts_tensor = tensor(np.stack(posts)) if has_posts and layers else None
    frequencies = np.array([function_frequency(f) for f in functions], dtype=np.float64)
    phases = np.array([np.pi / 2 if f and f % 2 == 0 else 0.0 for f in functions])
    argument_constant = (half_constant[:, None] * frequencies[None, :] - phases[None, :]).reshape(-1)
    argument_weights = (half_weights[:, None, :] * frequencies[None, :, None]).reshape(
        len(parametric) * len(functions), n_weights
    )
    flat = coefficients.reshape(len(parametric), len(functions), 4)
    if is_complex:
        coefficients_real = np.stack([flat.real, flat.imag], axis=-1).reshape(
            len(parametric), len(functions), 8
        )
    else:
        coefficients_real = flat.real
    generators = _generators(parametric, len(layers), n, is_complex)
    return LayeredUnitary(
        dim=dim,
        num_qubits=n,
        dtype=dtype,
        order=tuple(order),
        n_layers=len(layers),
        pool=tensor(np.stack(pool)),
        slot_index=torch.as_tensor(slot_refs),
        posts=posts_tensor,
        consts=tuple(tensor(c) for c in consts),
        n_slots=len(parametric),
        functions=functions,
        coefficients=tensor(coefficients),
        coefficients_real=torch.as_tensor(np.ascontiguousarray(coefficients_real)),
        half_constant=torch.as_tensor(half_constant),
        half_weights=torch.as_tensor(half_weights) if half_weights.any() else None,
        argument_constant=torch.as_tensor(argument_constant),
        argument_weights=torch.as_tensor(argument_weights) if argument_weights.any() else None,
        generators=generators,
        slot_layer=torch.as_tensor(np.array([p[2] for p in parametric], dtype=np.int64)),
        slot_qubit=torch.as_tensor(np.array([p[3] for p in parametric], dtype=np.int64)),
        slot_mask=torch.as_tensor(mask),
        posts_adjoint=None if posts_tensor is None else posts_tensor.mH.contiguous(),
        layer_positions=torch.as_tensor(
            [i for i, (kind, _) in enumerate(order) if kind == "layer"], dtype=torch.long
        ),
        identity=torch.eye(dim, dtype=dtype),
    )


def _generator(fit: TrigFit) -> np.ndarray | None:
    """A with R(h) = exp(h·A) (R^{-1} R' constant), or None if the gate is not of that form."""
    found = None
    for h in (0.3, 1.1, 2.6):
        values = np.array(
            [
                np.cos(function_frequency(f) * h - (np.pi / 2 if f and f % 2 == 0 else 0.0))
                for f in fit.functions
            ]
        )
        slopes = np.array(
            [
                0.0
                if f == 0
                else -function_frequency(f)
                * np.sin(function_frequency(f) * h - (np.pi / 2 if f % 2 == 0 else 0.0))
                for f in fit.functions
            ]
        )
        matrix = np.einsum("f,fij->ij", values, fit.coefficients)
        derivative = np.einsum("f,fij->ij", slopes, fit.coefficients)
        try:
            generator = np.linalg.solve(matrix, derivative)
        except np.linalg.LinAlgError:
            return None
        if found is not None and np.max(np.abs(generator - found)) > 1e-12:
            return None
        found = generator
    return found


def _generators(
    parametric: list[tuple[AffineValue, TrigFit, int, int]], n_layers: int, n: int, is_complex: bool
) -> torch.Tensor | None:
    """[n_layers, n, D²]: (A_s on qubit q, identity elsewhere)ᵀ flattened, per (layer, qubit)."""
    if not parametric:
        return None
    dim = 2**n
    out = np.zeros((n_layers, n, dim * dim), dtype=np.complex128)
    for _, fit, layer, q in parametric:
        generator = _generator(fit)
        if generator is None:
            return None
        embedded = np.kron(np.kron(np.eye(2 ** (n - 1 - q)), generator), np.eye(2**q))
        out[layer, q] = embedded.T.reshape(-1)
    out = clean(out)
    if not is_complex:
        if np.iscomplexobj(out):
            return None
        return torch.as_tensor(np.ascontiguousarray(out.real))
    return torch.as_tensor(out)


def slot_features(half: torch.Tensor, functions: tuple[int, ...], derivative: bool) -> torch.Tensor:
    """[S, F]: g_f(h) (or g_f'(h)) for every slot."""
    columns = []
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for f in functions:
        if f == 0:
            columns.append(torch.zeros_like(half) if derivative else torch.ones_like(half))
            continue
        k = function_frequency(f)
        if k not in cache:
            scaled = half if k == 1 else half * k
            cache[k] = (torch.cos(scaled), torch.sin(scaled))
        cos, sin = cache[k]
        is_sine = f == 2 * k
        if not derivative:
            columns.append(sin if is_sine else cos)
        else:
            column = cos if is_sine else -sin
            columns.append(column if k == 1 else column * k)
    return torch.stack(columns, dim=1)


def _slot_matrices(layered: LayeredUnitary, half: torch.Tensor, derivative: bool) -> torch.Tensor:
    features = slot_features(half, layered.functions, derivative).to(layered.dtype)
    return torch.einsum("sf,sfij->sij", features, layered.coefficients)


def layered_forward(layered: LayeredUnitary, weights: torch.Tensor) -> tuple[torch.Tensor, LayeredSaved]:
    """U [D, D] (complex or real) and what the backward pass needs."""
    half = None
    slots = None
    layer_matrices: torch.Tensor | None = None
    if layered.n_layers:
        pool = layered.pool
        if layered.n_slots:
            if layered.argument_weights is not None:
                arguments = torch.addmv(layered.argument_constant, layered.argument_weights, weights)
            else:
                arguments = layered.argument_constant
            features = torch.cos(arguments).view(layered.n_slots, 1, -1)
            matrices = torch.bmm(features, layered.coefficients_real)
            if layered.dtype.is_complex:
                matrices = torch.view_as_complex(matrices.view(layered.n_slots, 2, 2, 2))
            pool = torch.cat([pool, matrices.view(layered.n_slots, 2, 2)])
            if layered.generators is None:
                half = layered.half_constant
                if layered.half_weights is not None:
                    half = half + layered.half_weights @ weights
        slots = pool.index_select(0, layered.slot_index.view(-1)).view(layered.n_layers, -1, 2, 2)
        layer_matrices = kron_layers(slots)
        if layered.posts is not None:
            layer_matrices = torch.bmm(layered.posts, layer_matrices)
    partials = [layered.identity]
    for kind, i in layered.order:
        if kind == "layer":
            assert layer_matrices is not None
            factor = layer_matrices[i]
        else:
            factor = layered.consts[i]
        partials.append(factor if len(partials) == 1 else factor @ partials[-1])
    return partials[-1], LayeredSaved(half, slots, partials)


def layered_backward(
    layered: LayeredUnitary, saved: LayeredSaved, grad_unitary: torch.Tensor
) -> torch.Tensor | None:
    """∂L/∂weights [W] from G = ∂L/∂Re U + i ∂L/∂Im U (None if no weight enters)."""
    if not layered.n_slots or layered.half_weights is None:
        return None
    unitary = saved.partials[-1]
    stacked = torch.stack(saved.partials)
    positions = layered.layer_positions
    if layered.generators is not None:
        before = stacked.index_select(0, positions)  # B_l
        products = before @ (grad_unitary.mH @ unitary) @ before.mH  # Y_l
        flat = products.reshape(layered.n_layers, -1, 1)
        per_qubit = torch.bmm(layered.generators, flat).view(layered.n_layers, layered.num_qubits)
        if per_qubit.is_complex():
            per_qubit = per_qubit.real
        flat = layered.slot_layer * layered.num_qubits + layered.slot_qubit
        return per_qubit.view(-1).index_select(0, flat) @ layered.half_weights
    assert saved.half is not None and saved.slots is not None
    before = stacked[positions]  # B_l
    through = stacked[positions + 1]  # B_{l+1} = F_l B_l, so A_l^H = B_{l+1} U^H
    grad_factor = through @ (unitary.mH @ grad_unitary) @ before.mH
    if layered.posts_adjoint is not None:
        grad_factor = layered.posts_adjoint @ grad_factor
    grad_layers = grad_factor[layered.slot_layer]  # [S, D, D]
    derivative = _slot_matrices(layered, saved.half, derivative=True)  # [S, 2, 2]
    base = saved.slots[layered.slot_layer]  # [S, n, 2, 2]
    replaced = torch.where(layered.slot_mask, derivative[:, None], base)
    kron = kron_layers(replaced)
    if kron.is_complex():
        grad_half = (torch.view_as_real(grad_layers) * torch.view_as_real(kron)).sum((1, 2, 3))
    else:
        grad_half = (grad_layers * kron).sum((1, 2))
    return grad_half @ layered.half_weights
