"""The ``qdt`` command line. Subcommands live in :mod:`qdt.cli`, one module per group."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

from qdt import __version__
from qdt.cli import backends, bench, demo, evaluate, infer, jobs, noise, place, problem, quantum, sweep, train
from qdt.cli.failures import EXIT_INTERRUPTED, TerminalSafeStream, describe_failure, is_debug

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
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of a failure (also QDT_DEBUG=1); may stand anywhere on the line",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


# One module per group of subcommands, each with ``register(subparsers)``, in the order
# `qdt --help` lists them.
COMMAND_MODULES = (demo, problem, train, quantum, bench, backends, evaluate, infer, place, jobs, noise, sweep)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure ends as one line on stderr and an exit status (see
    :mod:`qdt.cli.failures`): 2 bad input, 1 failed run, 130 interrupted."""
    words = list(sys.argv[1:] if argv is None else argv)
    debug = is_debug("--debug" in words)
    words = [word for word in words if word != "--debug"]
    parser = build_parser()
    args, extra = parser.parse_known_args(words)
    if extra:  # said by the command's own parser, so the line points at its --help
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with _terminal_safe_stdout(), warnings.catch_warnings():
            if not debug:  # a library's warning would make a failure more than one line
                warnings.simplefilter("ignore")
            result = args.handler(args)
    except BrokenPipeError:  # `qdt ... | head`: the reader left; nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{_command_path(args)}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if debug:
            raise
        status, line = describe_failure(error)
        print(f"{_command_path(args)}: error: {line}", file=sys.stderr)
        return status
    return int(result or 0)


@contextmanager
def _terminal_safe_stdout() -> Iterator[None]:
    """Standard output escapes control characters while a command runs (text from files, such as an
    instance name, cannot drive the terminal); see :class:`qdt.cli.failures.TerminalSafeStream`."""
    original = sys.stdout
    sys.stdout = TerminalSafeStream(original)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout = original


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command ``args`` ran: ``qdt noise snapshot``'s for that command."""
    for word in _command_path(args).split()[1:]:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or word not in actions[0].choices:
            break
        parser = actions[0].choices[word]
    return parser


def _command_path(args: argparse.Namespace) -> str:
    words = ["qdt", args.command]
    for key, value in vars(args).items():
        if key.endswith("_command") and isinstance(value, str):
            words.append(value)
    return " ".join(words)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
