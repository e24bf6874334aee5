"""Measurement core on a real GPU: wall time vs CUDA events, NVML sampler (energy), peak memory
above the weights, and the GPU UUID under CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


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
        # the latency is the wall time of the synced block; events see only the GPU timeline
        assert 0 < run.elapsed_ms <= wall_ms
        assert run.elapsed_ms >= 0.95 * wall_ms - 1.0
        assert 0 < run.gpu_ms <= run.elapsed_ms * 1.01 + 0.1
        assert run.gpu_ms >= 0.8 * run.elapsed_ms - 2.0
    lat = timer.latency()
    assert lat.count == 3 and lat.p50 <= lat.p99 and math.isfinite(lat.std)
    assert len(timer.gpu_values_ms) == 3


def test_cuda_timer_on_async_work_waits_for_the_gpu():
    from adabench.measure.timing import Timer

    timer = Timer(torch.device("cuda", 0))
    with timer.track() as run:
        torch.cuda._sleep(200_000_000)  # ~0.1 s of spinning on a ~2 GHz GPU, returns at once
    assert run.elapsed_ms > 20


def test_peak_memory_is_above_what_was_resident():
    from adabench.measure.memory import PeakMemory

    weights = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda")
    with PeakMemory("cuda") as mem:
        block = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
        del block
    assert mem.start_mb >= 512 and mem.peak_total_mb >= 512 + 256
    assert mem.peak_mem_mb == pytest.approx(256, abs=8)
    assert mem.peak_mem_mb == pytest.approx(mem.peak_total_mb - mem.start_mb)
    del weights


def test_peak_memory_of_a_model_run_counts_its_weights_and_kv_cache():
    """Through the project's runner: the peak is at least the weights plus the KV cache the
    prefill allocated (`capacity` positions × every block's keys and values)."""
    from adabench.measure.memory import PeakMemory
    from adabench.models.execution import LlavaRunner, prefill
    from adabench.models.loading import load_model
    from adabench.models.plan import Plan

    loaded = load_model("tiny", device="cuda", dtype="float16")
    text = loaded.config.text_config
    weight_mb = sum(p.numel() * p.element_size() for p in loaded.model.parameters()) / 2**20
    runner = LlavaRunner(loaded.model)
    seq, capacity = 64, 4096
    ids = torch.randint(3, min(100, text.vocab_size), (1, seq), device=loaded.device)
    kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    head_dim = runner.head_dim
    kv_mb = 2 * text.num_hidden_layers * kv_heads * head_dim * capacity * 2 / 2**20  # fp16
    with torch.no_grad(), PeakMemory(loaded.device) as mem:
        _, state = prefill(
            runner, runner.embed_tokens(ids), Plan.full(text.num_hidden_layers), capacity
        )
    print(f"weights {weight_mb:.1f} MB, KV {kv_mb:.1f} MB, peak total {mem.peak_total_mb:.1f} MB")
    assert mem.start_mb >= weight_mb
    assert mem.peak_total_mb >= weight_mb + kv_mb
    assert mem.peak_mem_mb >= kv_mb
    del state


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
    assert tel.mean_power_w > 0 and math.isfinite(tel.energy_j) and tel.energy_j > 0
    assert math.isfinite(tel.sm_clock_mhz) and tel.sm_clock_mhz > 0
    assert isinstance(tel.throttle_reasons, str)
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


_PROBE = """
import json
from adabench.contention.controller import Contention
from adabench.models.loading import resolve_device
from adabench.sweep.placement import placement
device = resolve_device("cuda")
with Contention(0.3, "compute", str(device)) as c:
    print(json.dumps({"device": str(device), "gpu_uuid": placement(device)["gpu_uuid"],
                      "stress_uuid": c.gpu_uuid}))
"""


def _mig() -> bool:
    from adabench.measure.device import nvml

    nv = nvml()
    try:
        current, _ = nv.nvmlDeviceGetMigMode(nv.nvmlDeviceGetHandleByIndex(0))
    except Exception:  # NVML without MIG support: not MIG
        return False
    return bool(current)


def _visible_probe(visible: str) -> dict:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible, "PYTHONPATH": os.getcwd()}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"CUDA_VISIBLE_DEVICES={visible}:", seen)
    return seen


def _uuid_of(index: int) -> str:
    from adabench.measure.device import nvml

    nv = nvml()
    uuid = nv.nvmlDeviceGetUUID(nv.nvmlDeviceGetHandleByIndex(index))
    return uuid.decode() if isinstance(uuid, bytes) else uuid


def test_gpu_uuid_is_right_when_cuda_visible_devices_renumbers():
    """CUDA_VISIBLE_DEVICES=<last index>: CUDA calls it cuda:0; the model and the stress must
    still be placed on, and name, the physical GPU. Needs two GPUs to renumber anything."""
    from adabench.measure.device import nvml, same_gpu

    count = nvml().nvmlDeviceGetCount()
    if count < 2:
        pytest.skip("one GPU: CUDA_VISIBLE_DEVICES cannot renumber it")
    physical = count - 1
    seen = _visible_probe(str(physical))
    assert seen["device"] == "cuda:0"
    uuid = _uuid_of(physical)
    assert same_gpu(seen["gpu_uuid"], uuid) and same_gpu(seen["stress_uuid"], uuid)


def test_gpu_uuid_is_right_when_cuda_visible_devices_names_a_uuid():
    from adabench.measure.device import same_gpu

    if _mig():
        pytest.skip("MIG: CUDA_VISIBLE_DEVICES takes MIG instance UUIDs, not the GPU's")
    uuid = _uuid_of(0)
    seen = _visible_probe(uuid)
    assert seen["device"] == "cuda:0"
    assert same_gpu(seen["gpu_uuid"], uuid) and same_gpu(seen["stress_uuid"], uuid)
