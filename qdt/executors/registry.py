"""Executors by name: ``get_executor("statevector")``, ``get_executor("density", noise=...)``.

Executors that need optional or heavy imports live in their own module and are imported only
when asked for: a module ``qdt/executors/<name>.py`` listed in :data:`_LAZY_MODULES` must define
``EXECUTOR_FACTORY``. Others join at run time with :func:`register_executor`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable

from qdt.errors import QdtInputError
from qdt.executors.base import Executor
from qdt.executors.density import DensityExecutor
from qdt.executors.statevector import StatevectorExecutor

_FACTORIES: dict[str, Callable[..., Executor]] = {
    "statevector": StatevectorExecutor,
    "density": DensityExecutor,
}


# name -> module defining EXECUTOR_FACTORY; listed only once the module exists.
_LAZY_MODULES: dict[str, str] = {
    "aer": "qdt.executors.aer.executor",
    "ibm": "qdt.executors.ibm.executor",
}


def _available_lazy() -> dict[str, str]:
    return {name: mod for name, mod in _LAZY_MODULES.items() if importlib.util.find_spec(mod) is not None}


def register_executor(name: str, factory: Callable[..., Executor]) -> None:
    """Make ``factory(**options)`` available as ``get_executor(name, **options)``."""
    _FACTORIES[name] = factory


def executor_names() -> tuple[str, ...]:
    return tuple(sorted(set(_FACTORIES) | set(_available_lazy())))


def get_executor(name: str, **options: object) -> Executor:
    """A new executor; unknown names and options raise :class:`~qdt.errors.QdtInputError`."""
    factory = executor_factory(name)
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


def executor_factory(name: str) -> Callable[..., Executor]:
    """The callable behind ``get_executor(name, ...)``; unknown names raise QdtInputError."""
    if name not in executor_names():
        raise QdtInputError(
            "executor",
            "one of " + ", ".join(repr(n) for n in executor_names()),
            name,
            "pick one of the listed executors",
        )
    if name in _FACTORIES:
        return _FACTORIES[name]
    return importlib.import_module(_LAZY_MODULES[name]).EXECUTOR_FACTORY
