"""Run folders under faults, with real `adabench` processes: the console script's parse errors,
one sweep per folder (lock), damaged parts re-run, and what `--resume` may change."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from adabench import store
from adabench.sweep.lock import RunLock

GRID = ["--models", "tiny", "--methods", "full,layer-drop", "--budgets", "0.5", "--contention",
        "0", "--limit", "3", "--warmup", "0", "--device", "cpu", "--threads", "1"]  # fmt: skip


def adabench_cmd() -> list[str]:
    """The installed console script next to this Python, else its entry point function."""
    script = Path(sys.executable).parent / "adabench"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from adabench.cli import run; run()"]


def adabench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*adabench_cmd(), *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )  # fmt: skip


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*adabench_cmd(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    result = adabench("sweep", *GRID, "--out", str(out), "--name", "r", "--no-report")
    assert result.returncode == 0, result.stderr
    (run_dir,) = [p for p in out.iterdir() if not p.is_symlink()]
    return run_dir


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / finished_run.name))


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], "missing command"),
        (["eval", "--budget", "abc"], "Invalid value for '--budget'"),
        (["sweep", "--nope"], "No such option: --nope"),
        (["convert", "adallava"], "Missing argument 'src'"),
    ],
)
def test_console_script_parse_errors(args, expected):
    result = adabench(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and expected in result.stderr
    assert "Traceback" not in result.stderr and "--help" in result.stderr


def test_debug_shows_the_traceback():
    result = adabench("eval", "--budget", "abc", env={"ADABENCH_DEBUG": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_second_process_is_refused_while_the_lock_is_held(run_copy):
    with RunLock(run_copy):
        result = adabench("sweep", "--resume", str(run_copy), "--no-report")
    assert result.returncode == 2, result.stderr
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (run_copy / ".lock").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(run_copy):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run_copy / ".lock").write_text(json.dumps({"pid": dead.pid, "host": "gone"}))
    result = adabench("sweep", "--resume", str(run_copy), "--no-report")
    assert result.returncode == 0, result.stderr
    assert f"left by pid {dead.pid} on host gone" in result.stderr
    assert not (run_copy / ".lock").exists()


def test_concurrent_resumes_of_a_damaged_run(run_copy, finished_run):
    """Two resumes at once: exactly one runs; it moves the damaged parts aside and re-runs them."""
    parts = run_copy / "parts"
    cell_files = sorted(parts.glob("*.cell.parquet"))
    os.truncate(cell_files[0], cell_files[0].stat().st_size // 2)
    (parts / cell_files[1].name.replace(".cell.", ".samples.")).unlink()
    procs = [start("sweep", "--resume", str(run_copy), "--no-report") for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    winner = next(err for code, err in results if code == 0)
    loser = next(err for code, err in results if code == 2)
    assert "in use by another adabench process" in loser and "Traceback" not in loser
    assert winner.count("damaged part of cell") == 2 and "2 to run" in winner
    assert len(list((parts / store.DAMAGED).iterdir())) == 3
    assert store.finished_cells(run_copy) == store.finished_cells(finished_run)
    assert len(pd.read_parquet(run_copy / "cells.parquet")) == 2


def test_resume_with_a_changed_grid_is_refused(run_copy):
    before = (run_copy / "config.yaml").read_text()
    result = adabench("sweep", "--resume", str(run_copy), "--methods", "full,layer-drop,early-exit",
                      "--force", "--no-report")  # fmt: skip
    assert result.returncode == 2
    assert "methods full,layer-drop,early-exit (stored full,layer-drop)" in result.stderr
    assert "--extend" in result.stderr
    other = run_copy.parent / "other.yaml"
    other.write_text(before.replace("limit: 3", "limit: 5"))
    result = adabench("sweep", "--resume", str(run_copy), "--config", str(other), "--no-report")
    assert result.returncode == 2 and "limit 5 (stored 3)" in result.stderr
    same = run_copy.parent / "same.yaml"
    same.write_text(before)
    result = adabench("sweep", "--resume", str(run_copy), "--config", str(same), "--no-report")
    assert result.returncode == 0 and "(0 to run)" in result.stderr
    assert (run_copy / "config.yaml").read_text() == before


def test_resume_extend_adds_the_new_cells(run_copy):
    result = adabench("sweep", "--resume", str(run_copy), "--methods", "early-exit", "--extend",
                      "--no-report")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "methods +early-exit: 1 cells added" in result.stderr and "(1 to run)" in result.stderr
    cells = pd.read_parquet(run_copy / "cells.parquet")
    assert set(cells["method"]) == {"full", "layer-drop", "early-exit"}
    meta = json.loads((run_copy / "meta.json").read_text())
    assert meta["extensions"][0]["added"] == {"methods": ["early-exit"]}
    assert "early-exit" in (run_copy / "config.yaml").read_text()
