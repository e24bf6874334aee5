"""Contention that changes during a run: `--contention-schedule 0:30s,1.0:30s,0.5:30s` (cycling).

schedule = parse_schedule("0:30s,1.0:30s,0.5:30s")
with Contention(max_level(schedule), "compute", "cpu") as stress:   # workers must exist
    with ScheduleDriver(stress, schedule) as driver:
        driver.restart()           # each cell starts the cycle from its first step
        driver.current_level()     # the level in force now
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable

from adabench.errors import UserError

_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min)?$")
_UNIT_S = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, None: 1.0}
FORMAT_HINT = "expected LEVEL:DURATION[,LEVEL:DURATION...], e.g. 0:30s,1.0:30s,0.5:500ms"


def parse_schedule(text: str) -> list[tuple[float, float]]:
    """Returns [(level, seconds), ...] from "0:30s,1.0:30s"; durations take ms, s (default) or m.
    Raises UserError on an empty schedule, a level outside [0, 1] or a bad duration."""
    items = [p.strip() for p in str(text).split(",")]
    if not text or not str(text).strip() or any(not p for p in items):
        raise UserError(f"contention schedule {text!r} has an empty step; {FORMAT_HINT}")
    steps = []
    for item in items:
        level_text, sep, duration_text = item.partition(":")
        if not sep:
            raise UserError(f"contention schedule step {item!r} has no ':'; {FORMAT_HINT}")
        try:
            level = float(level_text)
        except ValueError:
            raise UserError(
                f"contention schedule step {item!r}: level {level_text!r} is not a number; "
                f"{FORMAT_HINT}"
            ) from None
        if not 0.0 <= level <= 1.0:
            raise UserError(
                f"contention schedule step {item!r}: level must be in [0, 1], got {level:g}"
            )
        match = _DURATION.match(duration_text.strip())
        if not match:
            raise UserError(
                f"contention schedule step {item!r}: bad duration {duration_text!r} "
                "(a positive number with ms, s or m)"
            )
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
        if seconds <= 0:
            raise UserError(f"contention schedule step {item!r}: duration must be > 0")
        steps.append((level, seconds))
    return steps


def parse_duration(text: str | float, what: str = "duration") -> float:
    """Returns seconds from "30s", "500ms", "2m" or a plain number (seconds). UserError naming
    `what` for anything else or a value that is not > 0."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise UserError(f"{what} {text!r} is not a duration (a positive number with ms, s or m)")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise UserError(f"{what} must be > 0, got {text!r}")
    return seconds


def format_schedule(schedule: list[tuple[float, float]]) -> str:
    """Returns the canonical text of `schedule` ("0:30s,1:30s"), for cell rows and ids."""
    return ",".join(f"{level:g}:{seconds:g}s" for level, seconds in schedule)


def max_level(schedule: list[tuple[float, float]]) -> float:
    """Returns the highest level of `schedule`: start `Contention` there so its workers exist."""
    return max(level for level, _ in schedule)


def level_at(schedule: list[tuple[float, float]], t_s: float) -> tuple[float, float]:
    """Returns (level in force at `t_s` seconds since the start, seconds until the next step);
    the schedule repeats after its total length."""
    period = sum(s for _, s in schedule)
    t = math.fmod(max(0.0, t_s), period)
    for level, seconds in schedule:
        if t < seconds:
            return level, seconds - t
        t -= seconds
    return schedule[0][0], schedule[0][1]  # float rounding at the period's end


class ScheduleDriver:
    """Background thread that sets `contention`'s level as `schedule` says (a context manager).

    `contention` needs `set_level(level)`, `kind` and `pids` (adabench's `Contention`); it must
    already run at a level > 0 when the schedule has one, since `set_level` only retunes
    running workers. `changes` keeps (seconds since the driver was made, level) of every change applied."""

    def __init__(
        self,
        contention,
        schedule: list[tuple[float, float]],
        clock: Callable[[], float] = time.monotonic,
        max_sleep_s: float = 0.5,
    ) -> None:
        if not schedule:
            raise UserError(f"contention schedule is empty; {FORMAT_HINT}")
        self.contention = contention
        self.schedule = list(schedule)
        self.clock = clock
        self.max_sleep_s = max_sleep_s
        self.changes: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._t0 = self._created = clock()
        self._level: float | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ScheduleDriver:
        if getattr(self.contention, "kind", "") == "sm":
            raise UserError(
                "a contention schedule needs a retunable kind (compute, memory, mixed), not 'sm'"
            )
        if max_level(self.schedule) > 0 and not self.contention.pids:
            raise UserError(
                f"start Contention at the schedule's highest level ({max_level(self.schedule):g}) "
                "before driving it: set_level only retunes running workers"
            )
        self.restart()
        self._thread = threading.Thread(target=self._loop, name="contention-schedule", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if exc_info[0] is None:
            self.check()

    def restart(self) -> None:
        """Starts the cycle again from its first step, now (call at each cell start so that every
        method sees the same load sequence)."""
        with self._lock:
            self._t0 = self.clock()
            self._apply_locked()
        self._wake.set()

    def elapsed_s(self) -> float:
        """Returns seconds since the schedule (re)started."""
        return self.clock() - self._t0

    def current_level(self) -> float:
        """Returns the level last applied (the first step's before the driver has started)."""
        with self._lock:
            return self.schedule[0][0] if self._level is None else self._level

    def check(self) -> None:
        """Re-raises, in the caller's thread, an error the background thread met."""
        if self._error is not None:
            raise self._error

    def _apply_locked(self) -> float:
        t = self.clock() - self._t0
        level, left = level_at(self.schedule, t)
        if level != self._level:
            self.contention.set_level(level)
            self._level = level
            self.changes.append((self.clock() - self._created, level))
        return left

    def _loop(self) -> None:
        while not self._stop:
            self._wake.clear()  # before applying, so a restart() during the wait is not lost
            try:
                with self._lock:
                    left = self._apply_locked()
            except BaseException as exc:  # surfaced by check() in the caller's thread
                self._error = exc
                return
            self._wake.wait(timeout=min(self.max_sleep_s, max(left, 1e-3)))
