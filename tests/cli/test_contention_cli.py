"""`adabench contention {run,calibrate}`: exit codes, output, and clean shutdown on SIGINT."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from adabench.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _console_follows_runner(monkeypatch):
    """adabench.console binds sys.stdout/sys.stderr at import; CliRunner swaps them per call."""
    from adabench import console

    monkeypatch.setattr(console, "out", Console(soft_wrap=True, highlight=False))
    monkeypatch.setattr(console, "err", Console(stderr=True, highlight=False))


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
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def test_bad_level_exits_2_with_range():
    result = runner.invoke(app, ["contention", "run", "--level", "1.5"])
    assert result.exit_code == 2
    assert "[0.0, 1.0]" in result.stderr


def test_unknown_kind_exits_2_with_choices():
    result = runner.invoke(app, ["contention", "calibrate", "--kind", "bandwidth"])
    assert result.exit_code == 2
    assert "compute, memory, mixed" in result.stderr


def test_bad_levels_list_exits_2():
    result = runner.invoke(app, ["contention", "calibrate", "--levels", "0,2"])
    assert result.exit_code == 2
    assert "[0.0, 1.0]" in result.stderr


def test_run_for_a_duration():
    result = runner.invoke(app, ["contention", "run", "--level", "0.2", "--duration", "0.5"])
    assert result.exit_code == 0, result.stderr
    assert "worker pids" in result.stderr


def test_calibrate_json():
    args = ["contention", "calibrate", "--levels", "0,1", "--repeats", "2", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["level"] for r in rows] == [0.0, 1.0]
    for row in rows:
        assert {"level", "kind", "device", "achieved_slowdown", "slowdown_min"} <= row.keys()
        assert row["kind"] == "compute" and row["device"] == "cpu"


def _adabench() -> list[str]:
    script = Path(sys.executable).with_name("adabench")
    if script.exists():
        return [str(script)]
    if found := shutil.which("adabench"):
        return [found]
    return [sys.executable, "-c", "from adabench.cli import run; run()"]


def test_sigint_stops_run_and_its_workers():
    cmd = [*_adabench(), "contention", "run", "--device", "cpu", "--level", "1.0"]
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, text=True, env=dict(os.environ, COLUMNS="200")
    )
    try:
        line = proc.stderr.readline()
        pids = [int(p) for p in re.findall(r"\d+", line.split("worker pids", 1)[1])]
        assert pids and all(alive(p) for p in pids)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert "stress workers stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_gone(pids) == []
