"""Measurement core on a real GPU: CUDA-event timing vs wall clock, NVML sampler, peak memory."""

from __future__ import annotations

import math
import time

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _busy(ms_target: float = 50.0) -> None:
    """Queues roughly `ms_target` ms of matmuls on the current GPU."""
    a = torch.randn(2048, 2048, device="cuda")
    for _ in range(max(1, int(ms_target))):
        a = torch.tanh(a @ a / 2048)


def test_cuda_event_timing_agrees_with_wall_clock():
    from adabench.measure.timing import Timer

    timer = Timer("cuda")
    _busy(5)  # warm-up: cuBLAS handle, allocator
    torch.cuda.synchronize()
    for _ in range(3):
        wall = time.perf_counter()
        with timer.track() as run:
            _busy(100)
        wall_ms = (time.perf_counter() - wall) * 1e3
        # events see only GPU time, wall clock adds the syncs and the launch of the first kernel
        assert 0 < run.elapsed_ms <= wall_ms * 1.02 + 0.5
        assert run.elapsed_ms >= 0.8 * wall_ms - 2.0
    lat = timer.latency()
    assert lat.count == 3 and lat.p50 <= lat.p99 and math.isfinite(lat.std)


def test_cuda_timer_on_async_work_waits_for_the_gpu():
    from adabench.measure.timing import Timer

    timer = Timer(torch.device("cuda", 0))
    with timer.track() as run:
        torch.cuda._sleep(200_000_000)  # ~0.1 s of spinning on a ~2 GHz GPU, returns at once
    assert run.elapsed_ms > 20


def test_peak_memory_tracks_a_cuda_allocation():
    from adabench.measure.memory import PeakMemory

    with PeakMemory("cuda") as mem:
        block = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
        del block
    assert mem.peak_mem_mb >= 256
    assert mem.peak_mem_mb - mem.start_mb == pytest.approx(256, abs=8)


def test_nvml_sampler_reads_power_and_energy():
    from adabench.measure.telemetry import NvmlSampler, nvml_index

    with NvmlSampler(device_index=nvml_index(0), hz=20) as tel:
        _busy(400)
        torch.cuda.synchronize()
        time.sleep(0.2)
    print(
        f"samples={len(tel.samples)} power={tel.mean_power_w:.0f} W energy={tel.energy_j:.1f} J "
        f"({tel.energy_source}) sm={tel.sm_clock_mhz:.0f} MHz throttle={tel.throttle_reasons}"
    )
    assert tel.note is None
    assert len(tel.samples) >= 0.5 * 20 * tel.duration_s
    assert tel.mean_power_w > 0 and tel.energy_j > 0
    assert tel.energy_source in ("counter", "power-integral")


def test_fingerprint_sees_the_gpu():
    from adabench.measure.env import fingerprint
    from adabench.measure.gpu_specs import lookup

    info = fingerprint()
    assert info["cuda_available"] and info["gpus"]
    gpu = info["gpus"][0]
    print(gpu)
    assert gpu["name"] and gpu.get("memory_gb")
    print("spec:", lookup(gpu["name"]))
