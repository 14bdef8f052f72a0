"""The ``qdt`` command line. Subcommands live in :mod:`qdt.cli`, one module per group."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from qdt import __version__
from qdt.cli import backends, bench, demo, evaluate, infer, jobs, noise, problem, quantum, sweep, train
from qdt.errors import QdtError

_DESCRIPTION = """\
qdt: multi-agent quantum reinforcement learning (QMARL) for digital-twin placement on 6G edge
servers (Tariq et al.): instances and exact optima, training, circuits on simulators and IBM
devices, noise and shot studies, sweeps and benchmarks.
Run `qdt COMMAND --help` for each command's options.
"""


class QdtArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``qdt CMD: error: ... (see qdt CMD --help)``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = QdtArgumentParser(
        prog="qdt",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"qdt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


# One module per group of subcommands, each with ``register(subparsers)``, in the order
# `qdt --help` lists them.
COMMAND_MODULES = (demo, problem, train, quantum, bench, backends, evaluate, infer, jobs, noise, sweep)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except QdtError as error:
        print(f"{_command_path(args)}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `qdt ... | head`: the reader left; nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"{_command_path(args)}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


def _command_path(args: argparse.Namespace) -> str:
    words = ["qdt", args.command]
    for key, value in vars(args).items():
        if key.endswith("_command") and isinstance(value, str):
            words.append(value)
    return " ".join(words)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
