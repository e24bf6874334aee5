"""`adabench sweep --executor ray` on a local 2-CPU Ray cluster started by the test: same cells
as the local executor, a killed worker retried, Ctrl-C cleans up, a partial Ray run resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from adabench.cli import app

pytest.importorskip("ray")
runner = CliRunner()
STRESS = "adabench.contention.workers"


def _args(out, name, executor="local", limit="12", extra=()):
    ray = ["--executor", "ray", "--ray-address", "local"] if executor == "ray" else []
    return [
        "sweep", "--models", "tiny", "--methods", "full,layer-drop", "--suites", "shapes",
        "--budgets", "0.5,1.0", "--contention", "0,0.5", "--limit", limit, "--repeats", "1",
        "--warmup", "0", "--device", "cpu", "--out", str(out), "--name", name, "--no-report",
        *ray, *extra,
    ]  # fmt: skip


def _pids(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if int(p) != os.getpid()]


def _wait_gone(pattern: str, timeout_s: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := _pids(pattern)) and time.monotonic() < deadline:
        time.sleep(0.3)
    return left


def _cells(run_dir):
    return pd.read_parquet(run_dir / "cells.parquet").sort_values("cell_id").reset_index(drop=True)


def _spawn(out, name, limit="4"):
    cmd = [sys.executable, "-c", "from adabench.cli import run; run()"]
    cmd += _args(out, name, "ray", limit)
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _first_part(out, proc, timeout_s=180.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(out.glob("*/parts/*.cell.parquet"))
        if found:
            return found[0].parent.parent
        time.sleep(0.2)
    raise AssertionError(f"no cell finished (rc {proc.poll()}): {proc.stderr.read()[-2000:]}")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    result = runner.invoke(app, _args(out, "local"))
    assert result.exit_code == 0, result.output
    return next(p for p in out.iterdir() if not p.is_symlink())


def test_ray_run_equals_local_run(local_run, tmp_path):
    result = runner.invoke(app, _args(tmp_path, "ray", "ray"))
    assert result.exit_code == 0, result.output
    run_dir = next(p for p in tmp_path.iterdir() if not p.is_symlink())
    local, ray = _cells(local_run), _cells(run_dir)
    assert list(ray.cell_id) == list(local.cell_id) and len(ray) == 6
    assert (ray.accuracy == local.accuracy).all()
    assert (ray.flops == local.flops).all()
    # latency: each run's paired ratios exist (absolute times of two runs minutes apart on a
    # shared machine are not comparable; docs/measurement.md)
    assert ray.latency_ratio.notna().all() and (ray.latency_ratio > 0).all()
    assert (ray.order == "interleaved").all() and ray.aa_ratio.notna().all()
    assert (ray.hostname == local.hostname).all() and ray.device_name.notna().all()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["executor"] == "ray" and meta["complete"] is True
    assert (
        set(meta["nodes"]) == set(ray.hostname) and meta["ray"]["task_resources"]["num_cpus"] >= 1
    )
    assert not _wait_gone(STRESS)


def test_killed_worker_is_retried_and_the_run_completes(tmp_path):
    proc = _spawn(tmp_path, "kill", limit="8")
    run_dir = _first_part(tmp_path, proc)  # the first group is written; the second one starts
    deadline = time.monotonic() + 60
    while not (victims := _pids("ray::adabench-")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert victims, "no running adabench Ray task found"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    cells = _cells(run_dir)
    assert len(cells) == 6 and cells.accuracy.notna().all()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["complete"] is True and meta["ray"]["retries"], meta.get("ray")
    assert "retrying its unfinished cells" in " ".join(err.split())
    assert not _wait_gone(STRESS)


def test_interrupt_cleans_up_and_a_partial_ray_run_resumes(tmp_path):
    proc = _spawn(tmp_path, "intr")
    run_dir = _first_part(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "resume with" in err
    assert not _wait_gone(STRESS), "stress workers left running"
    assert not _wait_gone("ray::adabench-"), "Ray tasks left running"
    kept = pd.read_parquet(run_dir / "cells.parquet")
    assert 1 <= len(kept) < 6
    result = runner.invoke(
        app,
        ["sweep", "--resume", str(run_dir), "--executor", "ray", "--ray-address", "local"]
        + ["--no-report"],
    )
    assert result.exit_code == 0, result.output
    cells = _cells(run_dir)
    assert len(cells) == 6 and set(kept.cell_id) <= set(cells.cell_id)
    assert (cells.set_index("cell_id").loc[kept.cell_id, "accuracy"].values == kept.accuracy).all()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--executor", "rya"], "Did you mean 'ray'"),
        (["--executor", "ray", "--gpus-per-task", "0"], "whole number >= 1"),
        (["--executor", "ray", "--ray-address", "local", "--cpus-per-task", "512"], "512 CPUs"),
    ],
)
def test_ray_errors_exit_2(extra, message, tmp_path):
    result = runner.invoke(app, _args(tmp_path, "bad", extra=extra))
    assert result.exit_code == 2, result.output
    assert message in result.output
