"""The machine-speed probe: a fixed workload timed at the start and the end of every group, so a
later run's absolute latency can be compared with a baseline's on a machine whose speed drifts
(a shared CI box, another load, another clock). `adabench compare` divides `full`'s per-sample
latency ratio between two runs by the ratio of their probes (docs/ci.md, "Latency, `full` cells").

The probe is shaped like a batch-1 decode step of a small model, the case the embedded models are
in: a chain of small matmuls with elementwise work between them, dispatched one op at a time from
Python, so it tracks both the interpreter/dispatch overhead and the arithmetic speed of the cores
the model runs on. Under contention the stress workers are paused while it runs: it measures the
machine, not the stress level (the group's `achieved_slowdown` measures that).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass, field

PROBE_WIDTH = 256
PROBE_DEPTH = 24
"""One probe step: PROBE_DEPTH (matmul 1×W by W×W, add, tanh) ops, W = PROBE_WIDTH."""
PROBE_STEPS = 40
"""Steps per timed block (≈ 5–15 ms on a laptop core)."""
PROBE_BLOCKS = 5
"""Blocks per probe; the probe's value is their median."""


@dataclass(frozen=True)
class ProbeResult:
    """The raw block times of one probe and their median."""

    blocks_ms: tuple[float, ...] = field(metadata={"help": "mean step time of each block, ms"})

    @property
    def median_ms(self) -> float:
        """Returns the median block's mean step time in milliseconds."""
        return float(statistics.median(self.blocks_ms))


class MachineProbe:
    """The fixed probe workload on one device (built once, timed many times)."""

    def __init__(self, device: str = "cpu") -> None:
        import torch

        self.device = torch.device(device)
        gen = torch.Generator().manual_seed(0)
        self._x = torch.randn(1, PROBE_WIDTH, generator=gen).to(self.device)
        self._w = [
            (torch.randn(PROBE_WIDTH, PROBE_WIDTH, generator=gen) / PROBE_WIDTH**0.5).to(
                self.device
            )
            for _ in range(PROBE_DEPTH)
        ]
        self._b = torch.zeros(1, PROBE_WIDTH, device=self.device)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def block_ms(self, steps: int = PROBE_STEPS) -> float:
        """Returns the mean wall time of one probe step over `steps` steps, in milliseconds."""
        import torch

        self._sync()
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(steps):
                h = self._x
                for w in self._w:
                    h = torch.tanh(torch.add(torch.matmul(h, w), self._b))
        self._sync()
        return (time.perf_counter() - start) * 1e3 / steps

    def probe(self, blocks: int = PROBE_BLOCKS, contention=None) -> ProbeResult:
        """Returns `blocks` timed blocks after one untimed warm-up block; the stress workers of
        a started `contention` (a `contention.controller.Contention`) are paused meanwhile."""
        paused = getattr(contention, "paused", None)
        pause = paused() if paused is not None else contextlib.nullcontext()
        with pause:
            self.block_ms(max(1, PROBE_STEPS // 4))  # caches, allocator, lazy init
            return ProbeResult(tuple(self.block_ms() for _ in range(blocks)))


_PROBES: dict[str, MachineProbe] = {}


def machine_probe(device: str = "cpu") -> MachineProbe:
    """Returns the probe of `device`, built on first use and reused after."""
    key = str(device)
    if key not in _PROBES:
        _PROBES[key] = MachineProbe(key)
    return _PROBES[key]


def probe_columns(start: ProbeResult, end: ProbeResult) -> dict:
    """Returns a group's cell columns: `machine_probe_ms` (median over the start and end blocks,
    ms per probe step), the raw blocks, and the end ÷ start drift (unitless)."""
    blocks = (*start.blocks_ms, *end.blocks_ms)
    return {
        "machine_probe_ms": float(statistics.median(blocks)),
        "machine_probe_blocks_ms": [float(b) for b in blocks],
        "machine_probe_drift": end.median_ms / start.median_ms,
    }
