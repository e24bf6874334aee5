"""Achieved slowdown: a fixed reference workload timed with the stress paused and running.

Two references (`REFERENCE_KINDS`), each timed the same way:
- "step": one model-shaped step, a decoder-MLP-like matmul (compute-bound) followed by an
  elementwise pass over a buffer larger than the caches (memory-bound): `achieved_slowdown`;
- "decode": a batch-1 decode step, a chain of small matrix-vector products over distinct
  weights (a 7B decode step is ~1,000 such small kernels on a GPU, launch- and bandwidth-bound):
  `achieved_slowdown_decode`. A time-sliced stress fills the gaps a launch-bound decode leaves
  idle, so it slows this reference differently from the GPU-bound "step"; the model's own
  decode is closer to this one.
Both run in the measuring process. On CPU it runs with `REFERENCE_THREADS` = 1 torch thread unless
`threads=` says otherwise (the caller's thread count is restored afterwards): a fork-join
reference on every core of a busy machine measures barrier stalls caused by any foreign load
more than the stress level (on a loaded 2-core box, 2 threads gave ratios of 0.4-2.4 with no
stress at all). Pass `threads=torch.get_num_threads()` to match a model measured with more.

Robust to foreign load: alone and stressed blocks are interleaved (the workers are paused with
SIGSTOP for the alone blocks, so no restart is needed) and the slowdown is the median of the
per-pair ratios, so a burst of background load hits both sides of a pair or only one ratio.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from adabench.contention.controller import Contention

# Shapes of the reference step (CPU, GPU): matmul (tokens, hidden) @ (hidden, hidden), and the
# number of float32 elements of the memory-bound pass.
_CPU_SHAPE = (64, 1024, 1 << 23)  # ~2 ms + ~2.5 ms on one core; 64 MiB pass > a 32 MiB L3
_GPU_SHAPE = (2048, 8192, 1 << 28)  # ~0.4 ms + ~0.7 ms on an H100
# Decode reference (CPU, GPU): (hidden, matvecs): `matvecs` distinct [hidden, hidden] weights
# read by one [1, hidden] row each; CPU 16 × 4 MiB fp32 = 64 MiB (> a 32 MiB L3), GPU 64 × 32 MiB
# fp16 = 2 GiB, 64 launches (~0.7 ms of weight reads on an H100, about as long as its launches).
_CPU_DECODE = (1024, 16)
_GPU_DECODE = (4096, 64)
REFERENCE_KINDS = ("step", "decode")
# A block of reference steps spans this many duty-cycle periods, so the phase averages out.
_PERIODS_PER_BLOCK = 5
REFERENCE_THREADS = 1


@dataclass
class SlowdownSample:
    """Raw timings of one slowdown measurement, in milliseconds per reference step."""

    alone_ms: list[float] = field(metadata={"help": "mean step time of each alone block"})
    stressed_ms: list[float] = field(metadata={"help": "mean step time of each stressed block"})

    @property
    def ratios(self) -> list[float]:
        """Returns stressed ÷ alone for each interleaved pair (unitless)."""
        return [s / a for a, s in zip(self.alone_ms, self.stressed_ms, strict=True)]

    @property
    def slowdown(self) -> float:
        """Returns the median of the per-pair ratios (unitless, 1.0 = no slowdown)."""
        return statistics.median(self.ratios)


class ReferenceWorkload:
    """A fixed reference step of `kind` ("step" or "decode", module docstring) on `device`;
    `step_ms()` times one step in milliseconds. Build it once per (device, kind) with
    `ReferenceWorkload.shared(device, kind)` (the "step" tensors are 67M elements on CPU and
    2.3 GiB on a GPU: not something to make twice per group)."""

    _shared: dict[tuple[str, str], ReferenceWorkload] = {}

    @classmethod
    def shared(cls, device: str = "cpu", kind: str = "step") -> ReferenceWorkload:
        """Returns this process's reference workload of `kind` on `device`, built on first use."""
        key = (str(device), kind)
        if key not in cls._shared:
            cls._shared[key] = cls(key[0], kind)
        return cls._shared[key]

    def __init__(self, device: str = "cpu", kind: str = "step") -> None:
        import torch

        if kind not in REFERENCE_KINDS:
            raise ValueError(f"reference kind {kind!r}: expected one of {REFERENCE_KINDS}")
        self.kind = kind
        self.device = torch.device(device)
        self._cuda = self.device.type == "cuda"
        dtype = torch.float16 if self._cuda else torch.float32
        gen = torch.Generator().manual_seed(0)
        if kind == "decode":
            hidden, matvecs = _GPU_DECODE if self._cuda else _CPU_DECODE
            self._row = torch.randn(1, hidden, generator=gen).to(self.device, dtype)
            self._weights = [
                (torch.randn(hidden, hidden, generator=gen) / hidden**0.5).to(self.device, dtype)
                for _ in range(matvecs)
            ]
            return
        tokens, hidden, numel = _GPU_SHAPE if self._cuda else _CPU_SHAPE
        self._x = torch.randn(tokens, hidden, generator=gen).to(self.device, dtype)
        self._w = torch.randn(hidden, hidden, generator=gen).to(self.device, dtype) / hidden**0.5
        self._src = torch.ones(numel, device=self.device, dtype=torch.float32)
        self._dst = torch.empty_like(self._src)

    def _sync(self) -> None:
        if self._cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def step_ms(self) -> float:
        """Runs one reference step and returns its wall time in milliseconds."""
        import torch

        self._sync()
        start = time.perf_counter()
        with torch.no_grad():
            if self.kind == "decode":
                for w in self._weights:  # each product reads its own weight, as a decode does
                    torch.matmul(self._row, w)
            else:
                torch.matmul(self._x, self._w)
                torch.mul(self._src, 1.0001, out=self._dst)
        self._sync()
        return (time.perf_counter() - start) * 1e3

    def block_ms(self, steps: int) -> float:
        """Returns the mean step time over `steps` consecutive steps, in milliseconds."""
        return sum(self.step_ms() for _ in range(steps)) / steps


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(threads or REFERENCE_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _steps_per_block(ref: ReferenceWorkload, contention: Contention) -> int:
    """Warms the reference up alone; returns how many steps make a block of ~5 periods."""
    with contention.paused():
        ref.block_ms(2)  # allocator, caches, lazy kernel init
        step_ms = min(ref.step_ms() for _ in range(3))
    return max(1, math.ceil(_PERIODS_PER_BLOCK * contention.period_ms / step_ms))


def _add_pair(
    ref: ReferenceWorkload, contention: Contention, steps: int, sample: SlowdownSample
) -> None:
    """Times one alone block (workers paused) and one stressed block, in alternating order
    so that a drift of foreign load does not favour one side."""
    alone_first = len(sample.alone_ms) % 2 == 0
    for alone in (True, False) if alone_first else (False, True):
        if alone:
            with contention.paused():
                sample.alone_ms.append(ref.block_ms(steps))
        else:
            sample.stressed_ms.append(ref.block_ms(steps))


def measure(
    contention: Contention,
    pairs: int = 6,
    steps: int | None = None,
    reference: ReferenceWorkload | None = None,
    threads: int | None = None,
    kind: str = "step",
) -> SlowdownSample:
    """Times `pairs` interleaved alone/stressed blocks of `steps` reference steps each.

    `contention` must be started (inside its `with`); its workers are paused for the alone
    blocks. By default a block lasts about five duty-cycle periods when alone. Raises
    ContentionError if a worker died meanwhile. Returns the raw timings.
    """
    ref = reference or ReferenceWorkload.shared(contention.device, kind)
    sample = SlowdownSample([], [])
    with _torch_threads(threads):
        steps = steps or _steps_per_block(ref, contention)
        for _ in range(pairs):
            _add_pair(ref, contention, steps, sample)
    contention.check()
    return sample


def measure_slowdown(
    contention: Contention, pairs: int = 6, threads: int | None = None, kind: str = "step"
) -> float:
    """Returns the achieved slowdown (stressed ÷ alone time of the `kind` reference, unitless)
    of a started `contention`, in about 1-2 s on CPU; the sweep calls it at the start and end of
    each group ("step") and once at its start ("decode")."""
    return measure(contention, pairs=pairs, threads=threads, kind=kind).slowdown


def calibrate(
    device: str = "cpu",
    kind: str = "compute",
    levels: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    repeats: int = 10,
    period_ms: float = 10.0,
    workers: int | None = None,
    threads: int | None = None,
) -> list[dict]:
    """Measures the achieved slowdown at each level; returns one dict per level.

    One set of workers runs throughout and `set_level` moves it from level to level pair by
    pair (rounds in alternating order), so slow drifts of foreign load spread evenly over all
    levels (`sm`, whose level is fixed at start, restarts its worker per level instead).
    Keys: level, kind, device, achieved_slowdown (median of the `repeats` alone/stressed pair
    ratios), slowdown_min, slowdown_max, reference_ms_median (alone), stressed_ms_median,
    repeats, workers, period_ms, threads (torch threads of the reference), mps_active (the
    workers were NVIDIA MPS clients: GPU stress then runs concurrently, not time-sliced).
    """
    specs = [Contention(lv, kind, device, period_ms, workers) for lv in levels]  # validate first
    samples = [SlowdownSample([], []) for _ in specs]
    reference = ReferenceWorkload.shared(specs[0].device)  # "cuda" resolved to the workers' cuda:i
    with _torch_threads(threads):
        if kind == "sm":
            for spec, sample in zip(specs, samples, strict=True):
                with spec:
                    steps = _steps_per_block(reference, spec)
                    for _ in range(repeats):
                        _add_pair(reference, spec, steps, sample)
        else:
            _calibrate_live(specs, samples, reference, repeats)
    return [_row(spec, sample, threads) for spec, sample in zip(specs, samples, strict=True)]


def _calibrate_live(
    specs: list[Contention],
    samples: list[SlowdownSample],
    reference: ReferenceWorkload,
    repeats: int,
) -> None:
    first = specs[0]
    with Contention(1.0, first.kind, first.device, first.period_ms, first.workers) as live:
        steps = _steps_per_block(reference, live)
        for spec in specs:  # the rows report the live workers' MPS state
            spec.mps_active = live.mps_active and spec.level > 0
        order = list(range(len(specs)))
        for r in range(repeats):
            for i in order if r % 2 == 0 else order[::-1]:
                live.set_level(specs[i].level)
                # Run (not sleep) while the workers take the level up: a process that just
                # slept gets a scheduler head start that would bias the first block.
                reference.block_ms(max(1, steps // 2))
                _add_pair(reference, live, steps, samples[i])
            live.check()


def _row(spec: Contention, sample: SlowdownSample, threads: int | None) -> dict:
    ratios = sample.ratios
    return {
        "level": spec.level,
        "kind": spec.kind,
        "device": spec.device,
        "mps_active": spec.mps_active,
        "achieved_slowdown": sample.slowdown,
        "slowdown_min": min(ratios),
        "slowdown_max": max(ratios),
        "reference_ms_median": statistics.median(sample.alone_ms),
        "stressed_ms_median": statistics.median(sample.stressed_ms),
        "repeats": len(ratios),
        "workers": spec.workers if spec.level > 0 else 0,
        "period_ms": spec.period_ms,
        "threads": threads or REFERENCE_THREADS,
    }
