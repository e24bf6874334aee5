"""GPU stress workers: they start on the GPU, slow the reference, and stop (skipped without CUDA)."""

from __future__ import annotations

import time

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


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


def test_sm_mode_needs_mps():
    from adabench.contention.controller import Contention, mps_problem
    from adabench.errors import UserError

    problem = mps_problem()
    if problem is None:
        with Contention(0.5, "sm", "cuda") as c:
            assert len(c.pids) == 1
    else:
        assert "MPS" in problem
        with pytest.raises(UserError, match="MPS"):
            Contention(0.5, "sm", "cuda")
