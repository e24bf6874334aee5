"""GPU-busy fraction: how much of a decode step's time the GPU spends running the step's kernels.

Events around a step do not tell: when the host launches kernels more slowly than the GPU runs
them (a launch-bound step), the GPU reaches each event about when the host records it, so
event time ≈ wall time. Here the step is launched again behind a spin kernel
(`torch.cuda._sleep`) that keeps the GPU busy until every launch is queued; the GPU then runs
the step back to back and the event pair around it times the kernels alone (`held_gpu_ms`).
busy fraction = that held time ÷ the step's time when run normally; 1.0 means the GPU never
waited for the host, 0.4 means it idled 60 % of the step (launch-bound: `LAUNCH_BOUND_BELOW`).
(torch is imported only where a GPU is timed.) When the launches outlast the spin (the GPU reached the start event before the host finished
launching) the held time is NaN: the hold was too short to tell.
"""

from __future__ import annotations

import math
from collections.abc import Callable

LAUNCH_BOUND_BELOW = 0.6
"""A cell whose decode GPU-busy fraction is below this is reported as launch-bound."""
CYCLES_PER_MS = 2_000_000
"""Spin cycles per millisecond of hold at 2 GHz: an upper bound on data-centre GPU clocks, so
the spin lasts at least the hold asked for."""

CPU_NOTE = "CPU: no GPU timeline"


def held_gpu_ms(device, launch: Callable[[], object], hold_ms: float) -> float:
    """Returns the GPU time in ms of the work `launch()` queues on `device`'s current stream
    when it waits behind a spin of at least `hold_ms`, or NaN when the host was still
    launching after the spin ended (hold too short). Synchronises before and after."""
    import torch  # here, so reports can read LAUNCH_BOUND_BELOW without torch

    stream = torch.cuda.current_stream(device)
    torch.cuda.synchronize(device)
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(int(hold_ms * CYCLES_PER_MS))
    start.record(stream)
    launch()
    end.record(stream)
    held = not start.query()  # the GPU still spins: every launch of the step is queued
    end.synchronize()
    return float(start.elapsed_time(end)) if held else math.nan


def busy_fraction(held_ms: list[float], normal_ms: list[float]) -> tuple[float, str]:
    """Returns (Σ held GPU ms ÷ Σ normal ms of the same steps, note): NaN with a reason when
    there is nothing to divide or a hold was too short; note '' when the fraction is known."""
    if not held_ms or not normal_ms:
        return math.nan, "no decode step to probe (one new token, or no warm-up run)"
    if any(not math.isfinite(x) for x in held_ms):
        return math.nan, "the launches outlasted the spin hold (hold too short)"
    total = float(sum(normal_ms))
    if total <= 0 or not math.isfinite(total):
        return math.nan, "no normal step time to divide by"
    return min(float(sum(held_ms)) / total, 1.0), ""


def launch_bound(fraction: float) -> bool:
    """Returns whether a GPU-busy fraction marks a launch-bound cell (NaN: False, unknown)."""
    return math.isfinite(fraction) and fraction < LAUNCH_BOUND_BELOW
