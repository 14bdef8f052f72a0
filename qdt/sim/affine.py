"""Gate parameters as affine functions of the circuit's encoding angles and weights.

Transpiled circuits carry expressions such as ``enc[3] + π/2`` or ``w[1]/2``. The torch
executors evaluate them in torch, so they must be affine: value = constant + Σ a_i·angle_i +
Σ b_j·weight_j. The coefficients come from ``expr.gradient(p)`` (which must be a number) and
the constant from binding every parameter to zero.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

from qiskit.circuit import Parameter, ParameterExpression

from qdt.errors import QdtInputError


@dataclass(frozen=True)
class AffineValue:
    """constant + Σ coefficient·angles[index] + Σ coefficient·weights[index]."""

    constant: float
    angle_terms: tuple[tuple[int, float], ...] = ()
    weight_terms: tuple[tuple[int, float], ...] = ()

    @property
    def uses_angles(self) -> bool:
        return bool(self.angle_terms)

    @property
    def is_constant(self) -> bool:
        return not self.angle_terms and not self.weight_terms

    @staticmethod
    def combine(terms: list[tuple[float, AffineValue]]) -> AffineValue:
        """Σ factor · value, merged term by term."""
        constant = 0.0
        angles: dict[int, float] = {}
        weights: dict[int, float] = {}
        for factor, value in terms:
            constant += factor * value.constant
            for index, coefficient in value.angle_terms:
                angles[index] = angles.get(index, 0.0) + factor * coefficient
            for index, coefficient in value.weight_terms:
                weights[index] = weights.get(index, 0.0) + factor * coefficient
        return AffineValue(
            constant,
            tuple(sorted((i, c) for i, c in angles.items() if c != 0.0)),
            tuple(sorted((i, c) for i, c in weights.items() if c != 0.0)),
        )

    def scaled(self, factor: float) -> AffineValue:
        return AffineValue(
            self.constant * factor,
            tuple((i, c * factor) for i, c in self.angle_terms),
            tuple((i, c * factor) for i, c in self.weight_terms),
        )


def _real_number(value: object, where: str) -> float:
    if isinstance(value, ParameterExpression):
        value = value.numeric()
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        number = complex(value)
        if abs(number.imag) > 1e-12 * max(1.0, abs(number.real)):
            raise QdtInputError(where, "a real gate parameter", value)
        value = number.real
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise QdtInputError(where, "a finite gate parameter", value)
    return number


def is_numeric(value: object) -> bool:
    """True for plain numbers and for expressions with no free parameters."""
    if isinstance(value, ParameterExpression):
        return not value.parameters
    return isinstance(value, numbers.Number)


def numeric_value(value: object, where: str) -> float:
    return _real_number(value, where)


def affine_value(
    value: object,
    angle_index: Mapping[Parameter, int],
    weight_index: Mapping[Parameter, int],
    where: str,
) -> AffineValue:
    """Decompose a gate parameter into an :class:`AffineValue`; reject anything non-affine."""
    if is_numeric(value):
        return AffineValue(_real_number(value, where))
    if not isinstance(value, ParameterExpression):
        raise QdtInputError(where, "a number or a qiskit ParameterExpression", value)
    angle_terms: list[tuple[int, float]] = []
    weight_terms: list[tuple[int, float]] = []
    for parameter in sorted(value.parameters, key=lambda p: p.name):
        gradient = value.gradient(parameter)
        if isinstance(gradient, ParameterExpression) and gradient.parameters:
            raise QdtInputError(
                where,
                "an affine expression of the parameters: each enters linearly "
                "(constant + Σ coefficient·parameter)",
                str(value),
                f"its derivative in {parameter.name} is {gradient}, not a constant; the torch "
                "executors and the parameter-shift rule evaluate only affine gate angles",
            )
        coefficient = _real_number(gradient, where)
        if parameter in angle_index:
            angle_terms.append((angle_index[parameter], coefficient))
        elif parameter in weight_index:
            weight_terms.append((weight_index[parameter], coefficient))
        else:
            raise QdtInputError(
                where,
                "parameters that are either encoding angles or weights",
                f"unknown parameter {parameter.name!r} in {value}",
                "bind it first, or pass it in angle_params or weight_params",
            )
    constant = _real_number(value.bind({p: 0 for p in value.parameters}), where)
    return AffineValue(constant, tuple(angle_terms), tuple(weight_terms))


__all__ = ["AffineValue", "affine_value", "is_numeric", "numeric_value"]
