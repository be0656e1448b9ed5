"""The single exception root of tiops.

The CLI maps :class:`TiopsError` to a clear message and exit code 1 (or 2 for
:class:`UsageError`); anything else is an internal error (exit 3).
"""

from __future__ import annotations


class TiopsError(Exception):
    """An expected failure with a message meant for the user."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(TiopsError):
    """The command was called wrongly (a missing file, a bad option value)."""
