"""Executors by name: ``get_executor("statevector")``, ``get_executor("density", noise=...)``.

Later executors (``aer``, ``ibm``, ``pennylane``) join with :func:`register_executor`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from qdt.errors import QdtInputError
from qdt.execution.base import Executor
from qdt.execution.density import DensityExecutor
from qdt.execution.statevector import StatevectorExecutor

_FACTORIES: dict[str, Callable[..., Executor]] = {
    "statevector": StatevectorExecutor,
    "density": DensityExecutor,
}


def register_executor(name: str, factory: Callable[..., Executor]) -> None:
    """Make ``factory(**options)`` available as ``get_executor(name, **options)``."""
    _FACTORIES[name] = factory


def executor_names() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def get_executor(name: str, **options: object) -> Executor:
    """A new executor; unknown names and options raise :class:`~qdt.errors.QdtInputError`."""
    if name not in _FACTORIES:
        raise QdtInputError(
            "executor",
            "one of " + ", ".join(repr(n) for n in executor_names()),
            name,
            "pick one of the listed executors",
        )
    factory = _FACTORIES[name]
    signature = inspect.signature(factory)
    try:
        signature.bind(**options)
    except TypeError:
        accepted = [p for p in signature.parameters if p != "self"]
        raise QdtInputError(
            f"executor {name!r} options",
            "options among " + ", ".join(accepted) if accepted else "no options",
            sorted(options),
        ) from None
    return factory(**options)
