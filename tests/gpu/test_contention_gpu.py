"""GPU stress workers: on the model's GPU (same UUID), a slowdown that grows with the level, MPS
proven for `sm`, and no worker outliving a SIGKILLed sweep (skipped without CUDA)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("kind", ["compute", "memory", "mixed"])
def test_gpu_stress_slows_reference_and_stops(kind):
    from adabench.contention.calibrate import measure_slowdown
    from adabench.contention.controller import Contention

    with Contention(1.0, kind, "cuda") as c:
        pids = c.pids
        assert len(pids) == 1
        slowdown = measure_slowdown(c)
        c.check()
    assert slowdown > 1.2, f"{kind} at level 1.0 slowed the GPU reference only {slowdown:.2f}x"
    time.sleep(0.5)
    assert not any(_alive(p) for p in pids)


def test_gpu_calibration_is_monotonic_enough():
    from adabench.contention.calibrate import calibrate

    rows = calibrate("cuda", "compute", [0.0, 0.5, 1.0], repeats=6)
    slowdowns = [r["achieved_slowdown"] for r in rows]
    assert slowdowns[0] < 1.15
    assert slowdowns[2] >= slowdowns[0]


def test_levels_slow_the_model_gpu_monotonically_from_the_same_gpu():
    from adabench.contention.calibrate import measure_slowdown
    from adabench.contention.controller import Contention
    from adabench.measure.device import gpu_uuid, same_gpu
    from adabench.models.loading import resolve_device

    device = resolve_device("cuda")
    assert device.index is not None
    model_uuid = gpu_uuid(device.index)
    slowdowns = []
    for level in (0.0, 0.5, 1.0):
        with Contention(level, "compute", str(device)) as c:
            slowdowns.append(measure_slowdown(c) if level > 0 else 1.0)
            if level > 0:
                assert c.device == str(device)
                assert same_gpu(c.gpu_uuid, model_uuid), (c.gpu_uuid, model_uuid)
    print("slowdown at 0 / 0.5 / 1.0:", slowdowns)
    assert slowdowns[1] > 1.05, slowdowns
    assert slowdowns[2] >= slowdowns[1] * 0.97, slowdowns  # monotone up to noise
    assert slowdowns[2] > 1.2, slowdowns


def test_sm_mode_needs_mps():
    from adabench.contention.controller import Contention, mps_problem
    from adabench.errors import UserError

    problem = mps_problem()
    if problem is None:
        try:
            with Contention(0.5, "sm", "cuda") as c:
                assert len(c.pids) == 1 and c.mps_active  # proven by NVML's MPS client list
        except UserError as exc:  # a daemon that does not serve this process: said clearly
            assert "MPS client" in str(exc)
    else:
        assert "MPS" in problem
        with pytest.raises(UserError, match="MPS"):
            Contention(0.5, "sm", "cuda")


def _workers_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == pid and b"adabench.contention.workers" in cmd:
            found.append(int(entry))
    return found


def test_no_stress_worker_survives_a_sigkilled_sweep(tmp_path):
    args = ["sweep", "--models", "tiny", "--methods", "full", "--budgets", "1.0"]
    args += ["--contention", "1.0", "--limit", "500", "--repeats", "5", "--device", "cuda"]
    args += ["--out", str(tmp_path), "--name", "k", "--no-report"]
    cmd = [sys.executable, "-c", "from adabench.cli import run; run()", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        pids: list[int] = []
        while not pids and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            pids = _workers_of(proc.pid)
        assert pids, "the sweep never started its stress worker"
        os.kill(proc.pid, signal.SIGKILL)  # the sweep only: its workers must follow by themselves
        proc.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
    finally:
        if proc.poll() is None:
            proc.kill()
