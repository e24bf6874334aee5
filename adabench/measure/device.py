"""One concrete device per run: "auto" | "cpu" | "cuda" | "cuda:i" → "cpu" or "cuda:i" plus the
GPU's UUID, and the NVML side of a CUDA device (its NVML index, MIG, MPS clients).

`cuda:i` numbers the GPUs this process sees: under CUDA_VISIBLE_DEVICES=2,3, `cuda:0` is the
physical GPU 2. Stress workers inherit the variable, so the same `cuda:i` names the same GPU in
them; the UUID each side reports proves it (see adabench/contention/controller.py). NVML ignores
CUDA_VISIBLE_DEVICES and may order GPUs differently from CUDA, so NVML handles are found by UUID.
The CUDA and NVML calls go through small objects (`TorchCuda`, the `pynvml` module) that tests
replace with fakes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from adabench.errors import UserError

EAGER_ENV = "CUDA_MODULE_LOADING"


class CudaRuntime(Protocol):
    """The CUDA queries device resolution needs (torch.cuda in `TorchCuda`, fakes in tests)."""

    def is_available(self) -> bool: ...
    def device_count(self) -> int: ...
    def current_device(self) -> int: ...
    def uuid(self, index: int) -> str: ...


class TorchCuda:
    """`CudaRuntime` over torch.cuda (imported on first use)."""

    def is_available(self) -> bool:
        """Whether torch sees CUDA."""
        import torch

        return torch.cuda.is_available()

    def device_count(self) -> int:
        """The number of CUDA devices torch sees."""
        import torch

        return torch.cuda.device_count()

    def current_device(self) -> int:
        """torch's current CUDA device index."""
        import torch

        return torch.cuda.current_device()

    def uuid(self, index: int) -> str:
        """The UUID of device `index` as torch reports it."""
        return gpu_uuid(index)


@dataclass(frozen=True)
class Resolved:
    """A concrete device: `name` is "cpu" or "cuda:i"; `uuid` the GPU's ("" on CPU)."""

    name: str
    uuid: str = ""

    @property
    def index(self) -> int | None:
        """Returns i of "cuda:i" (None on CPU)."""
        return int(self.name[5:]) if self.name.startswith("cuda:") else None


def parse(device: str) -> tuple[str, int | None]:
    """Returns (kind, index) of "auto" | "cpu" | "cuda" | "cuda:i"; anything else is a UserError."""
    if device in ("auto", "cpu", "cuda"):
        return device, None
    if device.startswith("cuda:") and device[5:].isdigit():
        return "cuda", int(device[5:])
    raise UserError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}.")


def resolve(
    device: str, cuda: CudaRuntime | None = None, environ: Mapping[str, str] | None = None
) -> Resolved:
    """Returns the one concrete device `device` names here. "auto" is the current CUDA device
    when CUDA is available, else cpu; "cuda" is the current CUDA device (cuda:0 unless
    something called set_device); "cuda:i" is checked against the visible devices. Asking for
    CUDA without it, or for an index that is not visible, is a UserError."""
    kind, index = parse(device)
    if kind == "cpu":
        return Resolved("cpu")
    cuda = cuda or TorchCuda()
    if not cuda.is_available():
        if kind == "auto":
            return Resolved("cpu")
        raise UserError(f"device {device!r} needs CUDA, which is not available here; use cpu.")
    count = cuda.device_count()
    index = cuda.current_device() if index is None else index
    if index >= count:
        env = os.environ if environ is None else environ
        visible = env.get("CUDA_VISIBLE_DEVICES")
        seen = f" (CUDA_VISIBLE_DEVICES={visible}: cuda:i counts the visible GPUs from 0)"
        raise UserError(
            f"device {device!r}: only {count} CUDA device(s) visible here"
            f"{seen if visible is not None else ''}; use cuda:0 … cuda:{count - 1}."
        )
    return Resolved(f"cuda:{index}", cuda.uuid(index))


def prefer_eager_module_loading(environ: dict[str, str] | None = None) -> None:
    """Sets CUDA_MODULE_LOADING=EAGER unless the user chose a mode. Lazy loading (torch's
    default) loads a kernel on its first launch, so the first timed run of each new GEMM shape
    or plan would pay it; eager loading pays it once at context creation. Only effective
    before the process's first CUDA call."""
    global _eager_set_here
    env = os.environ if environ is None else environ
    if EAGER_ENV not in env:
        env[EAGER_ENV] = "EAGER"
        _eager_set_here = _eager_set_here or environ is None


_eager_set_here = False
"""True once prefer_eager_module_loading set EAGER in os.environ (the user had chosen none)."""


def child_environ(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Returns a copy of `environ` (default: os.environ) for a helper process (stress worker,
    probe): without the CUDA_MODULE_LOADING=EAGER this process set in os.environ for itself
    (eager loading costs a process hundreds of MB of GPU memory and seconds at start, and only
    the measuring process needs it); a mode the user chose is passed on unchanged."""
    out = dict(os.environ if environ is None else environ)
    if environ is None and _eager_set_here and out.get(EAGER_ENV) == "EAGER":
        out.pop(EAGER_ENV)
    return out


# ---------------------------------------------------------------- UUIDs and NVML


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def bare_uuid(uuid: str) -> str:
    """Returns `uuid` without its "GPU-" / "MIG-" / "MIG-GPU-" prefix (torch prints none)."""
    text = _text(uuid).strip()
    for prefix in ("MIG-GPU-", "MIG-", "GPU-"):
        if text.startswith(prefix):
            return text[len(prefix) :].split("/", 1)[0]
    return text


def same_gpu(a: str, b: str) -> bool:
    """True when two UUID texts (any prefix) name the same GPU or MIG instance."""
    return bool(a) and bare_uuid(a).lower() == bare_uuid(b).lower()


@dataclass(frozen=True)
class NvmlMatch:
    """Where a CUDA device sits in NVML: the physical GPU's index, the handle of the device
    itself (a MIG instance's handle under MIG), its UUID as NVML spells it, and whether it is
    a MIG instance (power, energy and clocks then belong to the whole physical GPU)."""

    index: int
    handle: Any
    uuid: str
    mig: bool = False


def _mig_handles(nvml: Any, parent: Any) -> Iterable[Any]:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(parent)
    except Exception:  # NotSupported on GPUs without MIG
        return []
    if not current:
        return []
    handles = []
    for j in range(nvml.nvmlDeviceGetMaxMigDeviceCount(parent)):
        with contextlib.suppress(Exception):  # empty slots raise NotFound
            handles.append(nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, j))
    return handles


def nvml_match(uuid: str, nvml: Any) -> NvmlMatch | None:
    """Returns the NVML device whose UUID is `uuid` (a GPU, or a MIG instance of one), or None.
    `nvml` is the initialised `pynvml` module (or a fake of it)."""
    for i in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        nv_uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        if same_gpu(uuid, nv_uuid):
            return NvmlMatch(i, handle, nv_uuid)
        for mig in _mig_handles(nvml, handle):
            mig_uuid = _text(nvml.nvmlDeviceGetUUID(mig))
            if same_gpu(uuid, mig_uuid):
                return NvmlMatch(i, mig, mig_uuid, mig=True)
    return None


def nvml() -> Any:
    """Returns the initialised `pynvml` module (raises when NVML is unavailable)."""
    import pynvml

    pynvml.nvmlInit()
    return pynvml


def torch_uuid(index: int) -> str:
    """Returns the UUID torch reports for CUDA device `index` (no prefix), "" if unknown."""
    import torch

    return _text(getattr(torch.cuda.get_device_properties(index), "uuid", "") or "")


def gpu_uuid(index: int) -> str:
    """Returns the UUID of CUDA device `index` as nvidia-smi prints it ("GPU-…", or "MIG-…" for
    a MIG instance); "GPU-" + torch's UUID when NVML cannot say."""
    raw = torch_uuid(index)
    if not raw:
        return ""
    with contextlib.suppress(Exception):
        match = nvml_match(raw, nvml())
        if match is not None:
            return match.uuid
    return raw if raw.startswith(("GPU-", "MIG-")) else f"GPU-{raw}"


def visible_entry(index: int, environ: Mapping[str, str] | None = None) -> str | None:
    """Returns the CUDA_VISIBLE_DEVICES entry behind CUDA device `index` (an NVML index or a
    UUID), or None when the variable is unset or shorter."""
    env = os.environ if environ is None else environ
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    entries = [e.strip() for e in value.split(",") if e.strip()]
    return entries[index] if index < len(entries) else None


# ---------------------------------------------------------------- MPS clients

MPS_STATES = ("mps", "direct", "unseen", "unknown")


def mps_client_state(
    pid: int, mps_pids: Iterable[int] | None, compute_pids: Iterable[int] | None
) -> str:
    """Returns whether process `pid` reaches its GPU through MPS: "mps" (NVML lists it among
    the MPS clients), "direct" (it is a plain compute process), "unseen" (in neither list, e.g.
    a container's PID namespace hides host pids) or "unknown" (NVML gave no lists)."""
    if mps_pids is None and compute_pids is None:
        return "unknown"
    if pid in set(mps_pids or ()):
        return "mps"
    if pid in set(compute_pids or ()):
        return "direct"
    return "unseen"


def _pids(nvml: Any, fn: str, handle: Any) -> list[int] | None:
    try:
        return [int(p.pid) for p in getattr(nvml, fn)(handle)]
    except Exception:  # NotSupported, NoPermission, an older pynvml without the call
        return None


def mps_state_of(pid: int, uuid: str, nvml_module: Any = None) -> str:
    """Returns `mps_client_state` of `pid` on the GPU (or MIG instance) with `uuid`."""
    try:
        nv = nvml_module or nvml()
        match = nvml_match(uuid, nv)
    except Exception:
        return "unknown"
    if match is None:
        return "unknown"
    return mps_client_state(
        pid,
        _pids(nv, "nvmlDeviceGetMPSComputeRunningProcesses", match.handle),
        _pids(nv, "nvmlDeviceGetComputeRunningProcesses", match.handle),
    )
