"""GPU stress workers: on the model's GPU (same UUID), a slowdown of the reference and of the
model itself that grows with the level, MPS proven for `sm`, and no worker outliving a
SIGKILLed sweep once it holds the GPU (skipped without CUDA)."""

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
    print("calibrated slowdown at 0 / 0.5 / 1.0:", slowdowns)
    assert slowdowns[0] < 1.15
    # a margin: a stress that does nothing gives ≈ 1.0 at every level and must fail here
    assert slowdowns[1] > slowdowns[0] * 1.05, slowdowns
    assert slowdowns[2] > max(1.2, slowdowns[1] * 0.97), slowdowns


def test_levels_slow_the_model_gpu_monotonically_from_the_same_gpu():
    """The model itself (tiny, through the project's sample loop) runs under each level's
    stress, on the GPU the stress runs on; its latency grows with the level."""
    from adabench.contention.controller import Contention
    from adabench.data.suites import get_spec, load_suite
    from adabench.measure.device import gpu_uuid, same_gpu
    from adabench.models.loading import load_model, resolve_device
    from adabench.sweep.cell import prepare_samples
    from adabench.sweep.cell_config import CellConfig
    from adabench.sweep.group import run_single

    device = resolve_device("cuda")
    assert device.index is not None
    model_uuid = gpu_uuid(device.index)
    loaded = load_model("tiny", device=str(device), dtype="float16")
    spec, samples = get_spec("shapes"), load_suite("shapes", limit=6, seed=0)
    prepared = prepare_samples(loaded, spec, samples)
    cell = CellConfig(model="tiny", limit=6, repeats=3, warmup=2, max_new_tokens=8)
    latency_ms = []
    for level in (0.0, 0.5, 1.0):
        with Contention(level, "compute", str(device)) as c:
            if level > 0:
                assert c.device == str(device)
                assert same_gpu(c.gpu_uuid, model_uuid), (c.gpu_uuid, model_uuid)
            row, _ = run_single(loaded, spec, samples, prepared, cell)
            latency_ms.append(row["latency_ms_mean"])
    slowdowns = [x / latency_ms[0] for x in latency_ms]
    print("model latency ms at 0 / 0.5 / 1.0:", latency_ms, "slowdown:", slowdowns)
    assert slowdowns[1] > 1.05, slowdowns
    assert slowdowns[2] >= slowdowns[1] * 0.97, slowdowns  # monotone up to noise
    assert slowdowns[2] > 1.2, slowdowns


def test_sm_mode_runs_under_mps_and_slows_the_reference():
    """The positive path: with an MPS daemon serving this process, `sm` stress runs as an MPS
    client (NVML's client list) and slows the reference; skipped when MPS is not up."""
    from adabench.contention.calibrate import measure_slowdown
    from adabench.contention.controller import Contention, mps_problem

    problem = mps_problem()
    if problem is not None:
        pytest.skip(f"MPS is not up: {problem}")
    with Contention(0.5, "sm", "cuda") as c:
        assert len(c.pids) == 1 and c.mps_active  # proven by NVML's MPS client list
        slowdown = measure_slowdown(c)
    assert slowdown > 1.05, slowdown


def test_sm_mode_refuses_without_mps():
    from adabench.contention.controller import Contention, mps_problem
    from adabench.errors import UserError

    problem = mps_problem()
    if problem is None:
        pytest.skip("MPS is up: the refusal cannot happen here")
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


def _holds_cuda(pid: int) -> bool:
    """Returns whether `pid` has a CUDA context on GPU 0 (NVML's compute-process list)."""
    from adabench.measure.device import nvml

    nv = nvml()
    for i in range(nv.nvmlDeviceGetCount()):
        procs = nv.nvmlDeviceGetComputeRunningProcesses(nv.nvmlDeviceGetHandleByIndex(i))
        if any(p.pid == pid for p in procs):
            return True
    return False


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
        # kill only once the worker holds a CUDA context: a worker killed before it touched
        # the GPU proves nothing about the one that is stressing it
        while not any(_holds_cuda(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(_holds_cuda(p) for p in pids), "the stress worker never opened CUDA"
        os.kill(proc.pid, signal.SIGKILL)  # the sweep only: its workers must follow by themselves
        proc.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
    finally:
        if proc.poll() is None:
            proc.kill()
