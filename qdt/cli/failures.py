"""Every failure of a command as one line and an exit status: 2 bad input, 1 failed run, 130 interrupt.

:func:`describe_failure` turns an exception into ``(status, line)``. The line says what was
expected, what came, and the fix; it never carries a traceback (``qdt --debug`` or
``QDT_DEBUG=1`` shows one). Text that came from files is escaped, so a control character in an
instance name or a path cannot drive the terminal.
"""

from __future__ import annotations

import errno
import os

from qdt.errors import QdtError

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
    """``text`` with control characters escaped (``\\x1b`` stays visible instead of acting)."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def is_debug(flag: bool) -> bool:
    return flag or os.environ.get("QDT_DEBUG", "").strip() not in ("", "0")


def describe_failure(error: BaseException) -> tuple[int, str]:
    """``(exit status, one line)`` for an exception that ended a command."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
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
