"""``--samples`` and ``--temperature``: how many constructions decide an instance (``qdt place``,
``qdt bench generalise``), as :class:`qdt.rl.construct.Sampling` reads them. The flags are
registered without importing torch; the values are checked when the command runs, before any work."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qdt.rl.construct import Sampling

DEFAULT_TEMPERATURE_TEXT = "0.2"
"""``qdt.rl.construct.SAMPLE_TEMPERATURE`` as the help shows it (a test keeps the two equal)."""


def add_sampling_flags(parser: argparse.ArgumentParser, also: str) -> None:
    """Register ``--samples K`` and ``--temperature T``; ``also`` says what else the samples apply to."""
    parser.add_argument(
        "--samples",
        type=int,
        default=1,
        metavar="K",
        help=(
            "for a run with the construct decoding: decide by the best of K constructions run in one "
            "batch, the plain one and K-1 with Gumbel noise on the actor's logits; the feasible one of "
            f"least total latency is kept (qdt/rl/construct.py Sampling; {also}). Default 1: the plain "
            "construction, no search"
        ),
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        metavar="T",
        help=(
            "with --samples: the scale of the Gumbel noise against the actor's logits (default "
            f"{DEFAULT_TEMPERATURE_TEXT}, chosen on validation instances: README 'Sampled constructions')"
        ),
    )


def sampling_from_flags(samples: int, temperature: float | None) -> Sampling:
    """The :class:`Sampling` the flags give; a bad value is refused naming its flag."""
    from qdt.errors import QdtInputError
    from qdt.rl.construct import SAMPLE_TEMPERATURE, Sampling

    if temperature is not None and samples == 1:
        raise QdtInputError(
            "--temperature",
            "no --temperature without --samples K > 1 (a plain construction adds no noise)",
            temperature,
            "add --samples K, or drop --temperature",
        )
    return Sampling(samples, SAMPLE_TEMPERATURE if temperature is None else temperature)
