"""Wall-clock timing of code blocks (`perf_counter_ns`), raw values kept; on CUDA the block is
synchronised at both ends and its CUDA-event time is kept beside the wall time.

    timer = Timer("cuda:0")
    with timer.track() as t:
        model.generate(...)
    t.elapsed_ms            # this run's wall time (the latency)
    t.gpu_ms                # on CUDA: its GPU-timeline time from events (NaN elsewhere)
    timer.latency()         # Latency over every tracked run, raw values kept

Why wall time on CUDA too: events time the GPU timeline of this process's stream, from when
the stream reached the start event to when it reached the end one. Time-slice waits between
them (a co-running process holding the GPU) do count, but the host's launch latency before the
first kernel and a slice held when the block begins do not, and neither shows host work that
leaves the GPU idle. Wall time around a block synchronised at both ends is what a caller waits
(and what the achieved slowdown is measured with); `gpu_ms` is the secondary column. Host-side
regions (Python, plan bookkeeping) are timed with `host_span`, never with events.

A fake mode (`Timer(device, fake_ms=[...])`) returns preset durations so scheduling and
statistics logic can be tested deterministically (hyperfine's --debug-mode idea).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from adabench.measure.stats import summarize


@dataclass
class Latency:
    """Summary of timed runs, in milliseconds; `values_ms` keeps the raw values so later
    aggregation recomputes from samples instead of averaging means."""

    values_ms: list[float] = field(metadata={"help": "raw durations, ms, in run order"})
    count: int = field(default=0, metadata={"help": "number of runs"})
    mean: float = field(default=float("nan"), metadata={"help": "mean, ms"})
    std: float = field(default=float("nan"), metadata={"help": "sample std (ddof=1), ms"})
    min: float = field(default=float("nan"), metadata={"help": "fastest run, ms"})
    max: float = field(default=float("nan"), metadata={"help": "slowest run, ms"})
    p50: float = field(default=float("nan"), metadata={"help": "median, ms (numpy linear)"})
    p90: float = field(default=float("nan"), metadata={"help": "90th percentile, ms"})
    p95: float = field(default=float("nan"), metadata={"help": "95th percentile, ms"})
    p99: float = field(default=float("nan"), metadata={"help": "99th percentile, ms"})
    cv: float = field(default=float("nan"), metadata={"help": "std ÷ mean (dimensionless)"})

    @classmethod
    def from_values(cls, values: Iterable[float]) -> Latency:
        """Returns the summary of `values` (ms); see adabench.measure.stats.summarize."""
        values_ms = [float(v) for v in values]
        return cls(values_ms=values_ms, **summarize(values_ms))

    def to_dict(self, prefix: str = "latency_ms") -> dict[str, float]:
        """Returns the summary as flat columns, e.g. `latency_ms_mean`, `latency_ms_p99`."""
        keys = ("count", "mean", "std", "min", "max", "p50", "p90", "p95", "p99", "cv")
        return {f"{prefix}_{k}": getattr(self, k) for k in keys}

    def __str__(self) -> str:
        return (
            f"{self.mean:.3f} ms ± {self.std:.3f} ms (p50 {self.p50:.3f}, p99 {self.p99:.3f}, "
            f"range {self.min:.3f} … {self.max:.3f}, N={self.count})"
        )


@dataclass
class Run:
    """One tracked block; its times are set when the block exits (NaN before)."""

    elapsed_ms: float = field(default=float("nan"), metadata={"help": "wall time, ms"})
    gpu_ms: float = field(
        default=float("nan"), metadata={"help": "CUDA-event time, ms (NaN off CUDA and when fake)"}
    )


class Span:
    """An inner region of a tracked block (prefill inside a generation, one decode step, the
    method's decision). On CUDA it records a pair of events and never synchronises: its
    `elapsed_ms` (GPU time, ms) is resolved when first read, after the outer `track()` block
    has synchronised. On CPU it is `perf_counter_ns` wall time, known at exit."""

    def __init__(self, fixed_ms: float = float("nan"), events: tuple | None = None) -> None:
        self._ms = fixed_ms
        self._events = events

    @property
    def elapsed_ms(self) -> float:
        """Returns the region's duration in ms (on CUDA: waits for its end event once)."""
        if self._events is not None:
            start, end = self._events
            end.synchronize()
            self._ms = float(start.elapsed_time(end))
            self._events = None
        return self._ms


class Timer:
    """Times code blocks on `device` with `time.perf_counter_ns`; on a CUDA device the block is
    synchronised at both ends (so its wall time covers everything queued inside it) and a pair
    of CUDA events gives its GPU time as well. Every tracked wall time is appended to
    `values_ms`, every GPU time to `gpu_values_ms`."""

    def __init__(self, device: str | torch.device = "cpu", fake_ms: Iterable[float] | None = None):
        self.device = torch.device(device)
        self._fake: Iterator[float] | None = iter(fake_ms) if fake_ms is not None else None
        self.values_ms: list[float] = []
        self.gpu_values_ms: list[float] = []

    @property
    def is_cuda(self) -> bool:
        """Whether the timer measures a CUDA device (events) rather than the host clock."""
        return self.device.type == "cuda"

    @contextmanager
    def track(self) -> Iterator[Run]:
        """Yields a `Run` whose `elapsed_ms` holds the block's wall time in ms after exit (and
        `gpu_ms` its CUDA-event time on CUDA)."""
        run = Run()
        if self._fake is not None:
            yield run
            run.elapsed_ms = self._next_fake()
        elif self.is_cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            stream = torch.cuda.current_stream(self.device)
            torch.cuda.synchronize(self.device)  # earlier queued work must not count
            start_ns = time.perf_counter_ns()
            start.record(stream)
            yield run
            end.record(stream)
            torch.cuda.synchronize(self.device)
            run.elapsed_ms = (time.perf_counter_ns() - start_ns) / 1e6
            run.gpu_ms = float(start.elapsed_time(end))
            self.gpu_values_ms.append(run.gpu_ms)
        else:
            start_ns = time.perf_counter_ns()
            yield run
            run.elapsed_ms = (time.perf_counter_ns() - start_ns) / 1e6
        self.values_ms.append(run.elapsed_ms)

    @contextmanager
    def span(self) -> Iterator[Span]:
        """Yields a `Span` timing an inner region without adding a synchronisation (see Span):
        CUDA events on a CUDA device, the wall clock elsewhere. Spans are not appended to
        `values_ms`; a fake timer gives spans NaN."""
        if self.is_cuda and self._fake is None:
            stream = torch.cuda.current_stream(self.device)
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record(stream)
            span = Span(events=(start, end))
            yield span
            end.record(stream)
        else:
            with self._wall_span() as span:
                yield span

    @contextmanager
    def host_span(self) -> Iterator[Span]:
        """Yields a `Span` timing host-side work (Python, plan bookkeeping, kernel launches) by
        the wall clock (`perf_counter_ns`, ms), on every device and without synchronising: a
        CUDA-event span around host work reads ≈ 0 while earlier kernels are still queued,
        because its events are recorded back to back on the stream. A fake timer gives NaN."""
        with self._wall_span() as span:
            yield span

    @contextmanager
    def _wall_span(self) -> Iterator[Span]:
        span = Span()
        if self._fake is not None:
            yield span
            return
        start_ns = time.perf_counter_ns()
        yield span
        span._ms = (time.perf_counter_ns() - start_ns) / 1e6

    def _next_fake(self) -> float:
        try:
            return float(next(self._fake))
        except StopIteration:
            raise ValueError("Timer fake_ms ran out of preset durations") from None

    def latency(self) -> Latency:
        """Returns the Latency of every block tracked so far."""
        return Latency.from_values(self.values_ms)

    def reset(self) -> None:
        """Forgets the tracked durations (e.g. after warm-up runs)."""
        self.values_ms = []
        self.gpu_values_ms = []
