"""Where the simulator's tensors live: constant tables on the CPU, copied once to each run device.

A compiled circuit (a product or density kernel, a generic :class:`~qdt.sim.program.Program`)
and the encoder that feeds it hold constant tables: index vectors, sign vectors, Hadamard blocks,
trigonometric coefficients. They are built from numpy when a circuit is prepared, so they are
made on the CPU (:func:`cpu_tensor`, never on torch's default device, whatever
``torch.set_default_device`` says). A run on another device (``--torch-device cuda``) reads them
through :func:`on_device`, which copies the whole table tree to that device on the first call and
keeps the copy for as long as the compiled object lives: one copy per device, nothing copied per
call. Every tensor made while running is made from the inputs (``new_empty``, ``zeros_like``,
``device=angles.device``), so the run stays on the device its inputs are on.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from typing import Any, TypeVar

import numpy as np
import torch

CPU = torch.device("cpu")

T = TypeVar("T")

# object → the device of its tensors (None: it holds none); copy → the device it was made for
_HOMES: weakref.WeakKeyDictionary[Any, torch.device | None] = weakref.WeakKeyDictionary()
# object → {device: its copy there}; the copies never refer back to it, so both go when it goes
_COPIES: weakref.WeakKeyDictionary[Any, dict[torch.device, Any]] = weakref.WeakKeyDictionary()
_UNKNOWN = object()


def cpu_tensor(values: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A constant table from numpy (or a nested sequence), on the CPU whatever torch's default device."""
    return torch.as_tensor(np.asarray(values), dtype=dtype, device=CPU)


def on_device(value: T, device: torch.device | str) -> T:
    """``value`` with every tensor it holds on ``device``: itself when they already are, else its copy
    for that device, made on the first request and kept while ``value`` lives.

    ``value`` is a dataclass instance compared by identity (``eq=False``, as every compiled kernel,
    program and encoder is); its fields may hold tensors, dataclasses, tuples, lists and dicts of
    them, to any depth. Other objects (numpy arrays, numbers, slices) are shared, not copied.
    """
    target = torch.device(device)
    home = _HOMES.get(value, _UNKNOWN)
    if home is _UNKNOWN:
        home = _device_of(value)
        _HOMES[value] = home
    if home is None or home == target:
        return value
    copies = _COPIES.setdefault(value, {})
    found = copies.get(target)
    if found is None:
        found = _moved(value, target, {})
        copies[target] = found
        _HOMES[found] = target  # asking the copy for its own device gives itself
    return found  # type: ignore[no-any-return]


def _device_of(value: object) -> torch.device | None:
    """The device of the first tensor inside ``value`` (None: it holds none)."""
    stack = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            return item.device
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return None


def _moved(value: Any, device: torch.device, memo: dict[int, Any]) -> Any:
    """``value`` with its tensors on ``device``; an object holding none is returned as itself."""
    key = id(value)
    if key in memo:
        return memo[key]
    result = value
    if isinstance(value, torch.Tensor):
        result = value.to(device)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for spec in dataclasses.fields(value):
            old = getattr(value, spec.name)
            new = _moved(old, device, memo)
            if new is not old:
                changes[spec.name] = new
        if changes:
            result = copy.copy(value)  # frozen dataclasses too: the copy's fields are set directly
            for name, new in changes.items():
                object.__setattr__(result, name, new)
    elif type(value) in (list, tuple):
        items = [_moved(item, device, memo) for item in value]
        if any(new is not old for new, old in zip(items, value)):
            result = type(value)(items)
    elif type(value) is dict:
        entries = {k: _moved(v, device, memo) for k, v in value.items()}
        if any(entries[k] is not v for k, v in value.items()):
            result = entries
    memo[key] = result
    return result
