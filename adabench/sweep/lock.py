"""One process per run folder: an exclusive lock on ``RUN/.lock`` held while a sweep writes.

The lock is an `fcntl.flock` on the file, so the kernel drops it when the holder exits, however
it exits (SIGKILL included); the file records the holder's pid, host and start time so that a
refused second process can say who holds it. A lock file left by a process that is gone (its
flock is free) is taken over with a warning.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path

from adabench.errors import UserError

LOCK_NAME = ".lock"


class RunLock:
    """An exclusive lock on a run folder; `acquire` raises UserError when another process holds it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Takes the lock or raises UserError naming the holder's pid and host."""
        fd = self._lock_file()
        stale = read_holder(self.path)
        if stale:
            from adabench import console

            console.warn(
                f"taking over the lock of {self.path.parent} left by pid {stale.get('pid', '?')} "
                f"on host {stale.get('host', '?')}, which no longer runs"
            )
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": dt.datetime.now().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def _lock_file(self) -> int:
        """Returns a descriptor of the lock file holding its flock; raises UserError if taken."""
        import fcntl

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UserError(f"cannot create {self.path}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = read_holder(self.path)
                raise UserError(
                    f"{self.path.parent} is in use by another adabench process (pid "
                    f"{holder.get('pid', '?')} on host {holder.get('host', '?')}, since "
                    f"{holder.get('since', '?')}); wait for it to end or stop it, then resume."
                ) from None
            except OSError as exc:  # a file system without flock: refuse rather than run unguarded
                os.close(fd)
                raise UserError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
            try:  # the holder may have removed the file between our open and flock: retry
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def release(self) -> None:
        """Removes the lock file and drops the lock (a no-op when not held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def read_holder(path: Path) -> dict:
    """Returns what the lock file records ({pid, host, since}), or {} when empty or unreadable."""
    try:
        holder = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
