"""GPU telemetry while a block runs: a background NVML sampler of power, energy, clocks,
temperature, utilisation and throttle reasons (nvidia-ml-py, `import pynvml`).

Without a GPU or NVML every field is NaN and one note is logged once per process; the sampler
never raises. Energy comes from the GPU's total-energy counter (mJ, Volta and newer) read at
entry and exit; where the counter is missing it is the trapezoid integral of sampled power.
Energy and power are those of the whole GPU, so co-running work (contention) is included;
under MIG the sampler reads the physical GPU that holds the instance (see `nvml_index`), so
they include the other instances' work too.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

NAN = float("nan")
# Clock-event reasons that mean the GPU ran slower than it could (NVML bit values):
# SW power cap 0x4, HW slowdown 0x8, SW thermal 0x20, HW thermal 0x40, HW power brake 0x80.
# Not counted: idle 0x1, application clocks 0x2, sync boost 0x10, display clock 0x100.
THROTTLE_MASK = 0x4 | 0x8 | 0x20 | 0x40 | 0x80
_THROTTLE_NAMES = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
}
_warned = False


@dataclass
class Sample:
    """One NVML reading; NaN (or 0 bits) where the GPU does not report the quantity."""

    t_s: float
    power_w: float = NAN
    energy_mj: float = NAN
    sm_clock_mhz: float = NAN
    mem_clock_mhz: float = NAN
    temperature_c: float = NAN
    gpu_util_pct: float = NAN
    mem_util_pct: float = NAN
    throttle_reasons: int = 0


@dataclass
class Telemetry:
    """What the sampler saw during the block."""

    energy_j: float = field(default=NAN, metadata={"help": "energy used in the block, J"})
    mean_power_w: float = field(default=NAN, metadata={"help": "mean sampled power, W"})
    max_power_w: float = field(default=NAN, metadata={"help": "max sampled power, W"})
    duration_s: float = field(default=NAN, metadata={"help": "block wall time, s"})
    sm_clock_mhz: float = field(default=NAN, metadata={"help": "mean sampled SM clock, MHz"})
    max_temperature_c: float = field(default=NAN, metadata={"help": "max temperature, °C"})
    mean_gpu_util_pct: float = field(default=NAN, metadata={"help": "mean utilisation, %"})
    throttled: bool = field(default=False, metadata={"help": "any throttle bit in THROTTLE_MASK"})
    throttle_reasons: str = field(
        default="", metadata={"help": "comma-separated THROTTLE_MASK reasons seen, '' if none"}
    )
    energy_source: str = field(default="none", metadata={"help": "counter | power-integral | none"})
    samples: list[Sample] = field(default_factory=list, metadata={"help": "raw samples"})
    note: str | None = field(default=None, metadata={"help": "why fields are NaN, if they are"})


def _nvml() -> Any:
    import pynvml

    pynvml.nvmlInit()
    return pynvml


def _read(nvml: Any, fn: str, *args: Any) -> Any:
    try:
        return getattr(nvml, fn)(*args)
    except Exception:  # NotSupported, NoPermission, GpuIsLost: that quantity stays NaN
        return None


def _reasons_fn(nvml: Any) -> str:
    if hasattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons"):
        return "nvmlDeviceGetCurrentClocksEventReasons"
    return "nvmlDeviceGetCurrentClocksThrottleReasons"


def read_sample(nvml: Any, handle: Any, t_s: float) -> Sample:
    """Returns one reading of the GPU behind `handle` (units as in `Sample`)."""
    s = Sample(t_s=t_s)
    power = _read(nvml, "nvmlDeviceGetPowerUsage", handle)
    s.power_w = power / 1000 if power is not None else NAN
    energy = _read(nvml, "nvmlDeviceGetTotalEnergyConsumption", handle)
    s.energy_mj = float(energy) if energy is not None else NAN
    sm = _read(nvml, "nvmlDeviceGetClockInfo", handle, nvml.NVML_CLOCK_SM)
    s.sm_clock_mhz = float(sm) if sm is not None else NAN
    mem = _read(nvml, "nvmlDeviceGetClockInfo", handle, nvml.NVML_CLOCK_MEM)
    s.mem_clock_mhz = float(mem) if mem is not None else NAN
    temp = _read(nvml, "nvmlDeviceGetTemperature", handle, nvml.NVML_TEMPERATURE_GPU)
    s.temperature_c = float(temp) if temp is not None else NAN
    util = _read(nvml, "nvmlDeviceGetUtilizationRates", handle)
    if util is not None:
        s.gpu_util_pct, s.mem_util_pct = float(util.gpu), float(util.memory)
    s.throttle_reasons = int(_read(nvml, _reasons_fn(nvml), handle) or 0)
    return s


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else NAN


def _nanmax(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return max(finite) if finite else NAN


class NvmlSampler:
    """Context manager sampling GPU `device_index` (NVML numbering, which ignores
    CUDA_VISIBLE_DEVICES; see `nvml_index`) at `hz` readings per second in a background
    thread. Yields a `Telemetry` that is filled in when the block exits."""

    def __init__(self, device_index: int = 0, hz: float = 20.0):
        self.device_index = device_index
        self.period_s = 1.0 / hz
        self.result = Telemetry()
        self._nvml: Any = None
        self._handle: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Telemetry:
        self.result = Telemetry()
        try:
            self._nvml = _nvml()
            self._handle = self._nvml.nvmlDeviceGetHandleByIndex(self.device_index)
        except Exception as exc:  # no driver, no GPU, no pynvml: NaN fields, never a crash
            self._note(f"GPU telemetry unavailable ({type(exc).__name__}: {exc}); energy is NaN")
            return self.result
        self._t0 = time.perf_counter()
        self._first = read_sample(self._nvml, self._handle, 0.0)
        self.result.samples.append(self._first)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="adabench-nvml", daemon=True)
        self._thread.start()
        return self.result

    def read_energy_mj(self) -> float:
        """Returns the GPU's total-energy counter now (mJ since the driver loaded), read in the
        calling thread; NaN outside the block, without NVML or on a GPU without the counter."""
        if self._handle is None:
            return NAN
        value = _read(self._nvml, "nvmlDeviceGetTotalEnergyConsumption", self._handle)
        return float(value) if value is not None else NAN

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            t_s = time.perf_counter() - self._t0
            self.result.samples.append(read_sample(self._nvml, self._handle, t_s))

    def __exit__(self, *exc: Any) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        last = read_sample(self._nvml, self._handle, time.perf_counter() - self._t0)
        self.result.samples.append(last)
        self._summarize(last)
        _read(self._nvml, "nvmlShutdown")  # NVML counts init/shutdown pairs
        self._handle = None

    def _summarize(self, last: Sample) -> None:
        r, samples = self.result, self.result.samples
        r.duration_s = last.t_s
        powers = [s.power_w for s in samples]
        r.mean_power_w, r.max_power_w = _nanmean(powers), _nanmax(powers)
        r.sm_clock_mhz = _nanmean([s.sm_clock_mhz for s in samples])
        r.max_temperature_c = _nanmax([s.temperature_c for s in samples])
        r.mean_gpu_util_pct = _nanmean([s.gpu_util_pct for s in samples])
        bits = 0
        for s in samples:
            bits |= s.throttle_reasons
        r.throttled = bool(bits & THROTTLE_MASK)
        r.throttle_reasons = ",".join(name for bit, name in _THROTTLE_NAMES.items() if bits & bit)
        if not math.isnan(self._first.energy_mj) and not math.isnan(last.energy_mj):
            r.energy_j, r.energy_source = (last.energy_mj - self._first.energy_mj) / 1000, "counter"
        elif len(samples) >= 2 and not math.isnan(r.mean_power_w):
            r.energy_j, r.energy_source = _integrate(samples), "power-integral"

    def _note(self, message: str) -> None:
        global _warned
        self.result.note = message
        if not _warned:
            _warned = True
            from adabench.console import warn

            warn(message)


def _integrate(samples: list[Sample]) -> float:
    """Returns the trapezoid integral of power over time, J (NaN readings skipped)."""
    pts = [(s.t_s, s.power_w) for s in samples if not math.isnan(s.power_w)]
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(pts, pts[1:], strict=False))


def nvml_index(cuda_index: int = 0) -> int:
    """Returns the NVML index of the physical GPU behind CUDA device `cuda_index`, matched by
    UUID (CUDA_VISIBLE_DEVICES renumbers CUDA devices but not NVML ones, and a MIG instance's
    UUID names an instance of a GPU). Falls back to the CUDA_VISIBLE_DEVICES entry when it is
    a number, else to `cuda_index`."""
    from adabench.measure import device as devices

    try:
        match = devices.nvml_match(devices.torch_uuid(cuda_index), devices.nvml())
        if match is not None:
            return match.index
    except Exception:
        pass
    return fallback_nvml_index(cuda_index)


def fallback_nvml_index(cuda_index: int, environ: dict[str, str] | None = None) -> int:
    """Returns the NVML index to assume when UUIDs cannot be matched: the numeric
    CUDA_VISIBLE_DEVICES entry of `cuda_index`, else `cuda_index` itself."""
    from adabench.measure.device import visible_entry

    entry = visible_entry(cuda_index, environ)
    return int(entry) if entry is not None and entry.isdigit() else cuda_index
