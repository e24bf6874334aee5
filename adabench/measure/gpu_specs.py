"""Peak compute and memory bandwidth by GPU name, for MFU and roofline bounds in reports.

Vendor datasheet figures, dense (no 2:4 sparsity), boost clocks; tensor-core bf16/fp16 with
fp32 accumulation; fp32 is the non-tensor (CUDA core) rate. Real kernels reach 50–80 % of
these. `lookup` tries the patterns in order, most specific first, against the name NVML or
torch reports (e.g. "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GpuSpec:
    name: str = field(metadata={"help": "canonical model name"})
    bf16_tflops: float | None = field(metadata={"help": "dense bf16 tensor peak, TFLOP/s"})
    fp16_tflops: float = field(metadata={"help": "dense fp16 tensor peak, TFLOP/s"})
    fp32_tflops: float = field(metadata={"help": "fp32 (non-tensor) peak, TFLOP/s"})
    mem_bw_gbs: float = field(metadata={"help": "memory bandwidth, GB/s (1e9 bytes/s)"})

    def peak_flops(self, dtype: str = "bf16") -> float:
        """Returns the peak in FLOP/s for "bf16", "fp16" or "fp32" (NaN if unsupported)."""
        tflops = {"bf16": self.bf16_tflops, "fp16": self.fp16_tflops, "fp32": self.fp32_tflops}
        if dtype not in tflops:
            raise ValueError(f"dtype must be bf16, fp16 or fp32, got {dtype!r}")
        value = tflops[dtype]
        return float("nan") if value is None else value * 1e12


# (pattern, spec), most specific first: "H100 NVL" before "H100 PCIe" before "H100".
SPECS: list[tuple[str, GpuSpec]] = [
    (r"GH200", GpuSpec("GH200", 989.4, 989.4, 66.9, 4000)),
    (r"H200 NVL", GpuSpec("H200 NVL", 835.0, 835.0, 60.0, 4800)),
    (r"H200", GpuSpec("H200 SXM", 989.4, 989.4, 66.9, 4800)),
    (r"H100 NVL", GpuSpec("H100 NVL", 835.0, 835.0, 60.0, 3900)),
    (r"H100.*PCIe", GpuSpec("H100 PCIe", 756.0, 756.0, 51.2, 2000)),
    (r"H100", GpuSpec("H100 SXM", 989.4, 989.4, 66.9, 3350)),
    (r"A100.*80GB.*PCIe|A100 80GB PCIe", GpuSpec("A100 80GB PCIe", 312.0, 312.0, 19.5, 1935)),
    (r"A100.*80GB", GpuSpec("A100 80GB SXM", 312.0, 312.0, 19.5, 2039)),
    (r"A100", GpuSpec("A100 40GB", 312.0, 312.0, 19.5, 1555)),
    (r"L40S", GpuSpec("L40S", 362.1, 362.1, 91.6, 864)),
    (r"L40\b", GpuSpec("L40", 181.0, 181.0, 90.5, 864)),
    (r"\bL4\b", GpuSpec("L4", 121.0, 121.0, 30.3, 300)),
    (r"\bA10\b", GpuSpec("A10", 125.0, 125.0, 31.2, 600)),
    (r"RTX 4090", GpuSpec("GeForce RTX 4090", 165.2, 165.2, 82.6, 1008)),
    (r"RTX 3090", GpuSpec("GeForce RTX 3090", 71.0, 71.0, 35.6, 936)),
    (r"V100.*PCIe", GpuSpec("V100 PCIe", None, 112.0, 14.0, 900)),
    (r"V100", GpuSpec("V100 SXM2", None, 125.0, 15.7, 900)),
    (r"\bT4\b", GpuSpec("T4", None, 65.0, 8.1, 320)),
]


def lookup(name: str) -> GpuSpec | None:
    """Returns the spec of the first pattern that matches `name` (case-insensitive), or None."""
    for pattern, spec in SPECS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return spec
    return None


def mfu(flops: float, seconds: float, spec: GpuSpec, dtype: str = "bf16") -> float:
    """Returns model FLOPs utilisation: achieved FLOP/s ÷ peak FLOP/s (0–1)."""
    return flops / seconds / spec.peak_flops(dtype) if seconds > 0 else float("nan")


def roofline_ms(flops: float, bytes_moved: float, spec: GpuSpec, dtype: str = "bf16") -> float:
    """Returns the roofline lower bound on time, ms: max(compute time, memory time). Prefill is
    usually compute-bound, decode (weights + KV cache read per token) memory-bound."""
    compute_s = flops / spec.peak_flops(dtype)  # NaN where the dtype is unsupported
    return (
        1e3 * max(compute_s, bytes_moved / (spec.mem_bw_gbs * 1e9))
        if compute_s == compute_s
        else compute_s
    )
