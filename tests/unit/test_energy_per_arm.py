"""Energy per arm comes from the GPU's energy counter around each arm's own generations, never
from the group's mean power × the arm's latency (which makes energy ratio ≡ latency ratio)."""

from __future__ import annotations

import math

import pytest

from adabench.data.suites import get_spec, load_suite
from adabench.measure import telemetry
from adabench.models.loading import load_model
from adabench.sweep import group
from adabench.sweep.cell import CellConfig, prepare_samples

DRAW_MJ = {"Full": 300.0, "LayerDrop": 40.0}
"""mJ the fake GPU's counter advances by during one generation of each method."""


class FakeNvml:
    """NVML with an energy counter that advances by the running method's DRAW_MJ per generation
    and a flat 100 W power reading (so power × latency would give other numbers)."""

    def __init__(self):
        self.counter_mj = 1_000_000.0

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return "gpu0"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self.counter_mj

    def nvmlDeviceGetPowerUsage(self, handle):
        return 100_000  # mW

    def __getattr__(self, name):  # clocks, temperature, utilisation, throttle reasons
        if name.startswith("nvml"):

            def unsupported(*args):
                raise RuntimeError(f"{name}: not in the fake")

            return unsupported
        if name.startswith("NVML_"):
            return 0
        raise AttributeError(name)


@pytest.fixture
def fake_gpu(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setattr(telemetry, "_nvml", lambda: fake)
    monkeypatch.setattr(group, "telemetry_sampler", lambda loaded: telemetry.NvmlSampler(0))
    real = group.generate

    def drawing(runner, method, ps, *args, **kwargs):
        out = real(runner, method, ps, *args, **kwargs)
        fake.counter_mj += DRAW_MJ[type(method).__name__]
        return out

    monkeypatch.setattr(group, "generate", drawing)
    return fake


def _cell(method: str, budget: float):
    loaded = load_model("tiny", device="cpu", dtype="float32")
    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=3, seed=0)
    cfg = CellConfig(model="tiny", method=method, budget=budget, warmup=1, repeats=2,
                     max_new_tokens=2)  # fmt: skip
    return group.run_single(loaded, spec, samples, prepare_samples(loaded, spec, samples), cfg)


def test_each_arm_gets_its_own_counter_energy(fake_gpu):
    full, full_rows = _cell("full", 1.0)
    drop, drop_rows = _cell("layer-drop", 0.5)
    assert full["energy_j_mean"] == pytest.approx(0.300)
    assert drop["energy_j_mean"] == pytest.approx(0.040)
    assert all(r["energy_j"] == pytest.approx(0.300) for r in full_rows)
    # the energy ratio is the counter's, not the latency ratio (power here is flat)
    lat = drop["latency_ms_mean"] / full["latency_ms_mean"]
    assert drop["energy_j_mean"] / full["energy_j_mean"] != pytest.approx(lat, rel=0.05)


def test_without_a_counter_energy_is_nan():
    cell, rows = _cell("full", 1.0)  # CPU: no NVML
    assert math.isnan(cell["energy_j_mean"]) and all(math.isnan(r["energy_j"]) for r in rows)
