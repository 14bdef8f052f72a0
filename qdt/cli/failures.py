"""Every failure of a command as one line and an exit status: 2 bad input, 1 failed run, 130 interrupt.

:func:`describe_failure` turns an exception into ``(status, line)``. The line says what was
expected, what came, and the fix (an input error raised without one gets "give FIELD what was
expected"); it never carries a traceback (``qdt --debug`` or
``QDT_DEBUG=1`` shows one). Text that came from files is escaped, so a control character in an
instance name or a path cannot drive the terminal.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from qdt.errors import QdtError, QdtInputError

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

# errno → (what was expected, the fix) for file-system errors a user causes with a path.
_PATH_ERRORS: dict[int, tuple[str, str]] = {
    errno.EEXIST: ("a path that does not exist yet", "choose a new path, or remove the existing one"),
    errno.EISDIR: ("a file, not a folder", "give a file path"),
    errno.ENOTDIR: ("a folder on the way to the path", "a component of the path is a file: fix the path"),
    errno.ENOENT: ("an existing file or folder", "check the path"),
    errno.EACCES: ("a path qdt may read and write", "check the permissions, or choose another path"),
    errno.EPERM: ("a path qdt may read and write", "check the permissions, or choose another path"),
    errno.EROFS: ("a writable file system", "write to a folder on a writable disk"),
    errno.ENAMETOOLONG: ("a shorter path", "shorten the file or folder name"),
    errno.ELOOP: ("a path without a symbolic-link loop", "fix the links on the path"),
}
# errno → the fix, for file-system failures that are not the path's fault.
_RUN_ERRORS: dict[int, str] = {
    errno.ENOSPC: "free disk space, or write somewhere else",
    errno.EDQUOT: "free space within your quota, or write somewhere else",
    errno.EMFILE: "raise the open-file limit (ulimit -n)",
}


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b`` stays visible instead of acting).

    For one value taken from a file (an instance name, a path, a label): line breaks are escaped
    too, so the value stays on its line."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


# C0 controls but line feed and tab, DEL and the C1 controls: what can drive a terminal
# (escape sequences, bell, carriage return, backspace), mapped to their visible escapes.
_CONTROLS = {
    code: repr(chr(code))[1:-1]
    for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))
    if chr(code) not in "\n\t"
}


def escape_controls(text: str) -> str:
    """``text`` with every terminal control character escaped except line feeds and tabs."""
    return text.translate(_CONTROLS)


class TerminalSafeStream:
    """A text stream that escapes :func:`escape_controls` characters on the way through.

    ``qdt`` writes its standard output through one (:func:`qdt.cli.main.main`), so text taken
    from a file cannot reach the terminal as a control sequence, whichever command prints it.
    JSON output is unchanged (``json`` escapes control characters itself)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(escape_controls(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding ... of the stream
        return getattr(self._stream, name)


@contextmanager
def fields_as_flags(**flags: str) -> Iterator[None]:
    """Input errors raised in the block that name a setting (``backend``) name the flag that gave
    it instead (``backend="--backend"``): the line then says what the user typed."""
    try:
        yield
    except QdtInputError as error:
        if error.field not in flags:
            raise
        raise QdtInputError(flags[error.field], error.expected, error.got, error.fix) from None


def is_debug(flag: bool) -> bool:
    return flag or os.environ.get("QDT_DEBUG", "").strip() not in ("", "0")


def describe_failure(error: BaseException) -> tuple[int, str]:
    """``(exit status, one line)`` for an exception that ended a command."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(error, QdtInputError):
        return error.exit_status, printable(" ".join(_input_line(error).split("\n")))
    if isinstance(error, QdtError):
        return error.exit_status, printable(" ".join(str(error).split("\n")))
    if isinstance(error, OSError):
        return _describe_os_error(error)
    if isinstance(error, MemoryError):
        return EXIT_FAILED, (
            "out of memory (try a smaller instance, batch or circuit; see the command's --help)"
        )
    name = type(error).__name__
    detail = printable(" ".join(str(error).split()))[:300]
    return EXIT_FAILED, (
        f"internal error {name}: {detail} (this is a bug in qdt: rerun with --debug for the traceback "
        "and report it)"
    )


GOT_LIMIT = 240  # characters of what came, in a failure line; the middle gives way, not the end


def _input_line(error: QdtInputError) -> str:
    """The error's message with what came cut in the middle only past GOT_LIMIT (a long path keeps
    its file name), and, when it has no fix, "give FIELD what was expected" as the fix."""
    got = error.got if isinstance(error.got, str) else repr(error.got)
    if len(got) > GOT_LIMIT:
        got = got[: GOT_LIMIT // 3] + "..." + got[-(GOT_LIMIT - GOT_LIMIT // 3 - 3) :]
    fix = error.fix or f"give {error.field.rsplit(': ', 1)[-1]} {error.expected}"  # the field, not its file
    return f"{error.field}: expected {error.expected}, got {got} ({fix})"


def _describe_os_error(error: OSError) -> tuple[int, str]:
    path = error.filename if error.filename is not None else ""
    where = printable(str(path)) if path != "" else "file system"
    reason = error.strerror or type(error).__name__
    if error.errno in _PATH_ERRORS:
        expected, fix = _PATH_ERRORS[error.errno]
        return EXIT_BAD_INPUT, f"{where}: expected {expected}, got: {reason} ({fix})"
    if error.errno in _RUN_ERRORS:
        return EXIT_FAILED, f"{where}: {reason} ({_RUN_ERRORS[error.errno]})"
    return EXIT_FAILED, f"{where}: {reason} (check the file system, then run the command again)"
