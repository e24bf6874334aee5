"""Peak memory of a code block: CUDA allocator peak on GPU, peak resident set (RSS) on CPU.

`peak_mem_mb` has one meaning on every device: the block's peak above what was in use at entry.
Entered with the model loaded, that is the working memory of the requests (activations, KV
cache, sliced-weight copies made inside the block) above the resident weights; the absolute
peak (weights included, what must fit) is `peak_total_mb`, the entry level `start_mb`.
On a CUDA device the peak is `torch.cuda.max_memory_allocated` after a reset at entry, minus
`memory_allocated` at entry. On CPU it is the peak RSS growth over the RSS at entry. Linux's high-water mark (VmHWM,
like `ru_maxrss`) only ever grows, so at entry it is reset by writing "5" to
/proc/self/clear_refs; then peak = VmHWM at exit and growth = peak − RSS at entry. Where the
reset is refused (or there is no /proc) the growth is VmHWM (or ru_maxrss) at exit minus the
larger of the entry RSS and the entry high-water mark: a lower bound that reads 0 when the
process peaked earlier; `exact` is False then. 1 MB here = 2**20 bytes.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass, field

import torch

MB = 2**20


@dataclass
class MemoryResult:
    peak_mem_mb: float = field(
        default=float("nan"),
        metadata={"help": "peak in the block above the level at entry (GPU allocator; CPU RSS)"},
    )
    peak_total_mb: float = field(
        default=float("nan"), metadata={"help": "absolute peak (allocated on GPU, RSS on CPU)"}
    )
    start_mb: float = field(
        default=float("nan"), metadata={"help": "allocated (GPU) or RSS (CPU) at entry"}
    )
    exact: bool = field(default=True, metadata={"help": "False when the CPU peak is a lower bound"})


def _status_kb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MB if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def free_bytes(device: str | torch.device) -> int | None:
    """Returns the device's free memory in bytes (`torch.cuda.mem_get_info`: what the driver
    reports free, other processes' use excluded), or None off CUDA (no cap there)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return int(torch.cuda.mem_get_info(device)[0])


class PeakMemory:
    """Context manager measuring the peak memory of its block on `device`; the result is the
    `MemoryResult` it yields (fields filled at exit), also kept as `.result`."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.result = MemoryResult()
        self._hwm_reset = False
        self._start_hwm_mb = 0.0

    @property
    def peak_mem_mb(self) -> float:
        """The block's peak (see MemoryResult.peak_mem_mb); NaN until the block exits."""
        return self.result.peak_mem_mb

    def __enter__(self) -> MemoryResult:
        self.result = MemoryResult()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.result.start_mb = torch.cuda.memory_allocated(self.device) / MB
        else:
            rss_kb = _status_kb("VmRSS")
            self._hwm_reset = _reset_hwm() and rss_kb is not None
            self.result.start_mb = rss_kb / 1024 if rss_kb is not None else float("nan")
            hwm_kb = _status_kb("VmHWM")
            self._start_hwm_mb = hwm_kb / 1024 if hwm_kb is not None else _maxrss_mb()
        return self.result

    def __exit__(self, *exc) -> None:
        r = self.result
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            r.peak_total_mb = torch.cuda.max_memory_allocated(self.device) / MB
            r.peak_mem_mb = max(r.peak_total_mb - r.start_mb, 0.0)
            return
        hwm_kb = _status_kb("VmHWM")
        r.peak_total_mb = hwm_kb / 1024 if hwm_kb is not None else _maxrss_mb()
        if self._hwm_reset:
            r.peak_mem_mb = max(r.peak_total_mb - r.start_mb, 0.0)
        else:
            floor = max(self._start_hwm_mb, r.start_mb if r.start_mb == r.start_mb else 0.0)
            r.peak_mem_mb = max(r.peak_total_mb - floor, 0.0)
            r.exact = False
