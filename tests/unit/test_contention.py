"""Contention controller and CPU workers, with real worker processes (no mocks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from adabench.contention.controller import Contention, ContentionError
from adabench.errors import UserError


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: list[int], timeout_s: float = 5.0) -> list[int]:
    """Returns the pids still alive after waiting up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def test_level_zero_starts_nothing():
    with Contention(0.0) as c:
        assert c.pids == []
        c.check()


def test_handshake_and_shutdown():
    with Contention(0.5, "mixed", workers=2) as c:
        pids = c.pids
        assert len(pids) == 2
        assert all(alive(p) for p in pids)
        c.check()
        with c.paused():
            c.check()
        c.set_level(0.0)
        c.set_level(1.0)
        assert c.level == 1.0
        with pytest.raises(UserError, match=r"\[0.0, 1.0\]"):
            c.set_level(2.0)
        c.check()
    assert wait_gone(pids, 1.0) == []
    assert c.pids == []


def test_worker_death_is_detected():
    died = "died while the measurement ran"
    with pytest.raises(ContentionError, match=died), Contention(0.3, "memory", workers=2) as c:
        pids = c.pids
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while alive(pids[0]) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        c.check()
    assert wait_gone(pids) == []


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_exception_stops_workers(exc):
    pids: list[int] = []
    with pytest.raises(exc), Contention(1.0, workers=1) as c:
        pids = c.pids
        raise exc()
    assert pids and wait_gone(pids, 1.0) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"level": 1.5}, r"\[0.0, 1.0\]"),
        ({"level": -0.1}, r"\[0.0, 1.0\]"),
        ({"level": 0.5, "kind": "cmopute"}, "compute, memory, mixed, sm"),
        ({"level": 0.5, "kind": "sm"}, "On cpu choose from: compute, memory, mixed"),
        ({"level": 0.5, "device": "tpu"}, "cpu, cuda, cuda:N"),
        ({"level": 0.5, "workers": 0}, ">= 1"),
    ],
)
def test_bad_arguments_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        Contention(**kwargs)


@pytest.mark.slow  # wall-clock: a busy machine can hide the stress or slow the measurement
def test_cpu_stress_slows_the_reference():
    from adabench.contention.calibrate import ReferenceWorkload, measure, measure_slowdown

    reference = ReferenceWorkload("cpu")
    with Contention(0.0) as c:
        quiet = measure(c, pairs=4, reference=reference).slowdown
    with Contention(1.0) as c:
        start = time.monotonic()
        stressed = measure_slowdown(c)
        took_s = time.monotonic() - start
    assert quiet < 1.3
    assert stressed > 1.2, f"level 1.0 slowed the reference only {stressed:.2f}x"
    assert took_s < 10  # ~1-2 s on a quiet 2-core machine


def test_parent_sigkill_leaves_no_worker():
    script = textwrap.dedent(
        """
        import time
        from adabench.contention.controller import Contention
        c = Contention(1.0, workers=2)
        c.start()
        print(" ".join(map(str, c.pids)), flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
    finally:
        parent.kill()
        parent.wait()
    assert wait_gone(pids) == []


@pytest.mark.slow
def test_calibration_meets_the_issue_targets():
    from adabench.contention.calibrate import calibrate

    rows = calibrate("cpu", "compute", [0.0, 0.5, 1.0])
    s0, s5, s10 = (r["achieved_slowdown"] for r in rows)
    assert s0 < 1.15 and s5 > 1.1 and s10 >= 1.3
    assert s0 <= s5 <= s10
