"""Environment fingerprint: what a reader needs to trust or reproduce a timing (host, CPU,
RAM, GPU, driver, library versions, thread and governor settings, git commit).

Every probe is best effort: a value that cannot be read is None, never an exception.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_LAUNCH_BLOCKING",
    "PYTORCH_CUDA_ALLOC_CONF",
    "CUDA_MPS_PIPE_DIRECTORY",
    "TOKENIZERS_PARALLELISM",
)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu() -> dict[str, Any]:
    model, cores = None, set()
    physical_id = "0"
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and model is None:
            model = value
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {
        "model": model or platform.processor() or None,
        "physical_cores": len(cores) or None,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cgroup_cpu_max": _read("/sys/fs/cgroup/cpu.max"),
    }


def _ram_gb() -> float | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 2)
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 2)
    except (ValueError, OSError, AttributeError):
        return None


def git_commit() -> dict[str, Any]:
    """Returns {"commit", "dirty"} of the adabench checkout (None values outside a git checkout)."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(dirty)}


def _nvml_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml_gpus() -> tuple[list[dict[str, Any]], str | None, str | None]:
    """Returns (gpus, driver version, note) from NVML; ([], None, why) without it."""
    try:
        import pynvml as nv

        nv.nvmlInit()
    except Exception as exc:
        return [], None, f"NVML unavailable: {type(exc).__name__}"

    def get(fn: str, *args: Any) -> Any:
        try:
            return getattr(nv, fn)(*args)
        except Exception:
            return None

    gpus = []
    for i in range(get("nvmlDeviceGetCount") or 0):
        h = get("nvmlDeviceGetHandleByIndex", i)
        if h is None:  # a GPU that fell off the bus, no permission: listed by index only
            gpus.append({"index": i, "name": "unreadable (NVML)"})
            continue
        mem = get("nvmlDeviceGetMemoryInfo", h)
        limit = get("nvmlDeviceGetEnforcedPowerLimit", h)
        mig = get("nvmlDeviceGetMigMode", h)
        cc = get("nvmlDeviceGetCudaComputeCapability", h)
        gpus.append(
            {
                "index": i,
                "name": _nvml_str(get("nvmlDeviceGetName", h)),
                "uuid": _nvml_str(get("nvmlDeviceGetUUID", h)),
                "memory_gb": round(mem.total / 2**30, 2) if mem else None,
                "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
                "max_sm_clock_mhz": get("nvmlDeviceGetMaxClockInfo", h, nv.NVML_CLOCK_SM),
                "max_mem_clock_mhz": get("nvmlDeviceGetMaxClockInfo", h, nv.NVML_CLOCK_MEM),
                "power_limit_w": limit / 1000 if limit else None,
                "mig_mode": None if mig is None else bool(mig[0]),
                "persistence_mode": get("nvmlDeviceGetPersistenceMode", h),
                "compute_mode": get("nvmlDeviceGetComputeMode", h),
            }
        )
    driver = get("nvmlSystemGetDriverVersion")
    get("nvmlShutdown")
    return gpus, _nvml_str(driver) if driver else None, None


def _torch_info() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    info = {
        "torch": torch.__version__,
        "cuda_available": cuda,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda_devices": [],
    }
    if cuda:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["cuda_devices"].append(
                {"index": i, "name": p.name, "memory_gb": round(p.total_memory / 2**30, 2)}
            )
    return info


def _mps_state() -> str:
    pipe = os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")
    return "active (control pipe found)" if Path(pipe, "control").exists() else "not detected"


def image_backend() -> str:
    """Returns which image-processor backend transformers will use: torchvision changes pixel
    values compared with the PIL path, so it is recorded with every result."""
    if importlib.util.find_spec("torchvision") is not None:
        return "torchvision importable: transformers may use it (pixel values differ from PIL)"
    return "pil (torchvision not installed)"


def fingerprint() -> dict[str, Any]:
    """Returns the environment fingerprint as a JSON-ready dict (None where unknown)."""
    torch_info = _torch_info()
    gpus, driver, gpu_note = _nvml_gpus()
    for gpu in gpus:
        gpu["driver"] = driver
    if not gpus:  # no NVML: what torch sees is still worth recording
        gpus = torch_info["cuda_devices"]
    return {
        "adabench": _version("adabench"),
        "host": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "cpu": _cpu(),
        "ram_gb": _ram_gb(),
        "python": platform.python_version(),
        "torch": torch_info.pop("torch"),
        "transformers": _version("transformers"),
        "datasets": _version("datasets"),
        "numpy": _version("numpy"),
        **torch_info,
        "driver": driver,
        "gpus": gpus,
        "gpu_note": gpu_note,
        "mps": _mps_state(),
        "git": git_commit(),
        "env": {name: os.environ.get(name) for name in ENV_VARS},
        "image_backend": image_backend(),
    }


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Returns nested dicts/lists as one level of dotted keys (`cpu.model`, `gpus.0.name`)."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = ((str(i), v) for i, v in enumerate(obj))
    else:
        return {prefix: obj}
    if not obj:
        return {prefix: "none"}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat
