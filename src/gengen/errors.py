"""User-facing errors.

A :class:`GengenError` means the *user* can fix something (a file, an option, a gene list). The CLI
prints its message on one line and exits with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GengenError(Exception):
    """A mistake in the user's input, explained in one line with how to fix it."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def preview(items, n: int = 5) -> str:
    """Short human-readable list: 'a, b, c, ... (12 in all)'."""
    items = [str(i) for i in items]
    head = ", ".join(repr(i) for i in items[:n])
    return head if len(items) <= n else f"{head}, ... ({len(items)} in all)"
