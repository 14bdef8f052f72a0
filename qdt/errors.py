"""Typed errors. Every error a user can cause says what was expected, what came, and the fix.

The CLI turns any :class:`QdtError` into one line on stderr and its ``exit_status``, no traceback:
2 for bad input (:class:`QdtInputError`, and failures a user fixes by changing what they gave, such
as an account), 1 for a run that failed (a job, a simulator, a diverged training).
"""

from __future__ import annotations


class QdtError(Exception):
    """Base class of every error qdt raises on purpose."""

    exit_status: int = 1  # the CLI's exit status: a run that failed


class QdtInputError(QdtError, ValueError):
    """Bad input: a file, field, shape, value or option that qdt cannot accept.

    ``field`` names the offending field (a JSON path such as ``users[2].deadline_s`` or an
    option such as ``--assignment``) so that the message can point at it.
    """

    exit_status = 2  # the CLI's exit status: bad input

    def __init__(self, field: str, expected: str, got: object, fix: str | None = None) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        self.fix = fix
        got_text = _short_repr(got)
        message = f"{field}: expected {expected}, got {got_text}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[str, str, object, str | None]]:
        # so the error crosses process boundaries (worker pools, Ray) intact
        return (type(self), (self.field, self.expected, self.got, self.fix))


def _short_repr(value: object, limit: int = 80) -> str:
    """``value`` for a one-line message: a printable string as it is, anything else (a string with a
    newline or another control character included) as its repr, cut to ``limit`` characters."""
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
