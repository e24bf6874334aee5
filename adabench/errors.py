"""User-facing errors: one clear message, exit code 2, no traceback (ADABENCH_DEBUG=1 shows it)."""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable

WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
"""OSError numbers of a write the user can fix (disk full, quota, read-only, permissions):
shown as one line and exit 2, never a traceback."""


class UserError(Exception):
    """A mistake in the user's input (name, number, path). The CLI prints it and exits 2."""

    exit_code = 2


def did_you_mean(name: str, choices: Iterable[str], kind: str = "name") -> UserError:
    """Returns a UserError for an unknown `name`, listing close matches and all valid choices."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UserError(f"unknown {kind} {name!r}.{hint} Choose from: {', '.join(choices)}.")


def check_range(
    value: float, low: float, high: float, what: str, *, low_open: bool = False
) -> float:
    """Returns `value` if it lies in [low, high] ((low, high] when `low_open`), else raises UserError."""
    ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise UserError(f"{what} must be in {bracket}{low}, {high}], got {value}.")
    return value
