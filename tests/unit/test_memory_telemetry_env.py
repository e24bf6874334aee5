"""Peak memory on CPU, the NVML sampler without a GPU, the environment fingerprint, GPU specs."""

from __future__ import annotations

import json
import math

import pytest

from adabench.measure import gpu_specs, memory, telemetry
from adabench.measure.env import fingerprint, flatten
from adabench.measure.memory import PeakMemory


def _touch(mb: int) -> None:
    block = bytearray(mb * 2**20)  # touched pages count in RSS
    for i in range(0, len(block), 4096):
        block[i] = 1


def test_cpu_peak_memory_is_the_growth_of_a_known_allocation():
    with PeakMemory("cpu") as mem:
        _touch(64)
    if not mem.exact:
        pytest.skip("this kernel refuses to reset the RSS high-water mark (clear_refs)")
    assert 60 <= mem.peak_mem_mb <= 100  # 64 MB plus interpreter noise
    assert mem.peak_total_mb == pytest.approx(mem.start_mb + mem.peak_mem_mb)
    with PeakMemory("cpu") as small:
        _touch(8)
    assert small.peak_mem_mb < mem.peak_mem_mb - 40  # the reset forgets the earlier 64 MB


class _FakeProc:
    """/proc/self/status for PeakMemory: VmRSS at entry, VmHWM at entry and at exit."""

    def __init__(self, monkeypatch, rss_mb, hwm_mb, reset_ok):
        self.values = {"VmRSS": [rss_mb * 1024], "VmHWM": [h * 1024 for h in hwm_mb]}
        monkeypatch.setattr(memory, "_status_kb", lambda key: self.values[key].pop(0))
        monkeypatch.setattr(memory, "_reset_hwm", lambda: reset_ok)


def test_cpu_peak_memory_from_a_reset_high_water_mark(monkeypatch):
    _FakeProc(monkeypatch, rss_mb=1000, hwm_mb=[1000, 1064], reset_ok=True)
    with PeakMemory("cpu") as mem:
        pass
    assert (mem.peak_mem_mb, mem.peak_total_mb, mem.start_mb, mem.exact) == (64, 1064, 1000, True)


def test_cpu_peak_memory_without_a_reset_is_a_lower_bound(monkeypatch):
    _FakeProc(monkeypatch, rss_mb=1000, hwm_mb=[1500, 1600], reset_ok=False)
    with PeakMemory("cpu") as mem:
        pass
    assert (mem.peak_mem_mb, mem.exact) == (100, False)  # above the earlier peak, not the RSS
    _FakeProc(monkeypatch, rss_mb=1000, hwm_mb=[1500, 1500], reset_ok=False)
    with PeakMemory("cpu") as earlier:
        pass
    assert earlier.peak_mem_mb == 0  # the process peaked before the block: nothing seen


def test_peak_memory_is_nan_until_the_block_exits():
    tracker = PeakMemory("cpu")
    assert math.isnan(tracker.peak_mem_mb)
    with tracker:
        _touch(16)
    assert tracker.peak_mem_mb == tracker.result.peak_mem_mb and not math.isnan(tracker.peak_mem_mb)


def test_nvml_sampler_without_gpu_gives_nan_and_one_note(monkeypatch):
    def broken():
        raise RuntimeError("no NVML here")

    monkeypatch.setattr(telemetry, "_nvml", broken)
    monkeypatch.setattr(telemetry, "_warned", False)
    warnings = []
    monkeypatch.setattr("adabench.console.warn", warnings.append)
    for _ in range(2):
        with telemetry.NvmlSampler(hz=50) as tel:
            pass
        assert math.isnan(tel.energy_j) and math.isnan(tel.mean_power_w)
        assert tel.throttled is False and tel.note and "no NVML here" in tel.note
    assert len(warnings) == 1


class FakeNvml:
    """Stands in for pynvml: 100 W, an energy counter rising 1 J per read, SW power cap bit."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 0, 1, 0

    def __init__(self, energy=True):
        self.energy_mj = 0
        self.energy = energy

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetPowerUsage(self, h):
        return 100_000

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.energy:
            raise RuntimeError("NotSupported")
        self.energy_mj += 1000
        return self.energy_mj

    def nvmlDeviceGetClockInfo(self, h, kind):
        return 1980 if kind == 0 else 2619

    def nvmlDeviceGetTemperature(self, h, kind):
        return 55

    def nvmlDeviceGetUtilizationRates(self, h):
        return type("U", (), {"gpu": 90, "memory": 40})()

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return 0x4

    def nvmlShutdown(self):
        pass


@pytest.mark.parametrize("energy", [True, False], ids=["counter", "integral"])
def test_nvml_sampler_summarises_samples(monkeypatch, energy):
    import time

    fake = FakeNvml(energy)
    monkeypatch.setattr(telemetry, "_nvml", lambda: fake)
    with telemetry.NvmlSampler(hz=100) as tel:
        time.sleep(0.1)
    assert len(tel.samples) >= 5
    assert tel.mean_power_w == 100.0 and tel.sm_clock_mhz == 1980.0
    assert tel.throttled and tel.throttle_reasons == "sw_power_cap"
    if energy:
        assert tel.energy_source == "counter" and tel.energy_j == pytest.approx(
            len(tel.samples) - 1
        )
    else:
        assert tel.energy_source == "power-integral"
        assert tel.energy_j == pytest.approx(100.0 * tel.duration_s, rel=1e-6)


def test_fingerprint_carries_the_issue_fields():
    info = fingerprint()
    for key in (
        "host",
        "os",
        "cpu",
        "ram_gb",
        "python",
        "torch",
        "transformers",
        "datasets",
        "cuda_available",
        "cuda",
        "cudnn",
        "gpus",
        "driver",
        "mps",
        "git",
        "env",
        "torch_threads",
        "image_backend",
    ):
        assert key in info, key
    assert info["cpu"]["logical_cores"] >= 1
    assert {"model", "physical_cores", "governor"} <= set(info["cpu"])
    assert "CUDA_VISIBLE_DEVICES" in info["env"] and "OMP_NUM_THREADS" in info["env"]
    assert {"commit", "dirty"} == set(info["git"])
    json.dumps(info)  # JSON-ready
    flat = flatten(info)
    assert "cpu.model" in flat and "env.OMP_NUM_THREADS" in flat


@pytest.mark.parametrize(
    "name, expected",
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM"),
        ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe"),
        ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"),
        ("Tesla V100-SXM2-16GB", "V100 SXM2"),
        ("Tesla T4", "T4"),
    ],
)
def test_gpu_specs_lookup_most_specific_first(name, expected):
    spec = gpu_specs.lookup(name)
    assert spec is not None and spec.name == expected


def test_gpu_specs_unknown_and_helpers():
    assert gpu_specs.lookup("NVIDIA A10G") is None
    assert gpu_specs.lookup("Radeon") is None
    h100 = gpu_specs.lookup("NVIDIA H100 80GB HBM3")
    assert h100.peak_flops("bf16") == pytest.approx(989.4e12)
    assert gpu_specs.mfu(989.4e12 * 0.5, 1.0, h100) == pytest.approx(0.5)
    # decode of a 7B model in bf16: ~13.5 GB of weights per token → ~4 ms at 3.35 TB/s
    assert gpu_specs.roofline_ms(14e9, 13.5e9, h100) == pytest.approx(4.03, rel=0.01)
    t4 = gpu_specs.lookup("Tesla T4")
    assert math.isnan(t4.peak_flops("bf16")) and math.isnan(gpu_specs.roofline_ms(1, 1, t4))
    with pytest.raises(ValueError):
        h100.peak_flops("int8")
