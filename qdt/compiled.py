"""Loops compiled with numba on first use: :func:`compiled` wraps a plain-Python loop over numpy
arrays so that the first call compiles it (about 1 s) and later calls reuse it. The machine code is
cached beside the defining module (numba's ``cache=True``; where that folder cannot be written numba
uses the user's cache folder, and where neither can, every process compiles once). Used by the
guard's completion (:mod:`qdt.rl.share_completion`) and the local search
(:mod:`qdt.problem.local_search`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

Loop = TypeVar("Loop", bound=Callable[..., object])

__all__ = ["compiled"]


def compiled(loop: Loop) -> Callable[[], Loop]:
    """A function returning ``loop`` compiled by ``numba.njit`` (compiled on its first call, then
    kept): numba is imported only when a loop first runs, so importing qdt stays cheap."""

    @functools.cache
    def get() -> Loop:
        import numba

        try:
            return numba.njit(cache=True)(loop)  # type: ignore[no-any-return]
        except RuntimeError:  # numba finds no folder to cache in: compile in this process only
            return numba.njit(cache=False)(loop)  # type: ignore[no-any-return]

    return get
