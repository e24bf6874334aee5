"""Writing output files whole or not at all: a temporary file renamed into place, and a failed
write (disk full, read-only, permissions) turned into one line naming the file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adabench.errors import WRITE_ERRNOS, UserError


def write_failure(exc: BaseException) -> OSError | None:
    """Returns the OSError with an errno in WRITE_ERRNOS in `exc`'s chain (a failed write seen
    through another exception, e.g. matplotlib's PDF backend), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path next to `path`; when the block ends without an error the file is
    renamed onto `path` (so `path` is whole or absent, never partial). On any error the
    temporary file is removed; a failed write (disk full, read-only, ...) becomes a UserError
    naming `path` and the reason."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        failed = write_failure(exc)
        if failed is not None:
            raise UserError(
                f"cannot write {path}: {failed.strerror or failed} (nothing partial was left)"
            ) from exc
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` to `path` atomically (see `atomic_file`); returns the path."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)
