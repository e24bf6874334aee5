"""Timer overhead: the cost of one `Timer.track()` around an empty block, in µs.

Times N empty `with timer.track(): pass` blocks with an outer perf_counter_ns clock and reports
the mean cost per block (what the harness adds to each measured run) and what the timer itself
reads for an empty block (its floor). CPU always; CUDA too when a GPU is present.
Reported, never asserted.
"""

from __future__ import annotations

import json
import time

import torch

from adabench.measure.timing import Timer

N = 20_000


def measure(device: str, n: int) -> dict[str, float]:
    timer = Timer(device)
    for _ in range(min(n, 100)):  # warm-up
        with timer.track():
            pass
    timer.reset()
    start = time.perf_counter_ns()
    for _ in range(n):
        with timer.track():
            pass
    total_us = (time.perf_counter_ns() - start) / 1e3
    lat = timer.latency()
    return {
        "device": device,
        "n": n,
        "overhead_us_per_track": total_us / n,
        "empty_block_reads_us_p50": lat.p50 * 1e3,
        "empty_block_reads_us_p99": lat.p99 * 1e3,
    }


def main() -> None:
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, N = {N}")
    rows = [measure("cpu", N)]
    if torch.cuda.is_available():
        rows.append(measure("cuda", N // 10))
    print(f"{'device':<8}{'µs per track()':>16}{'empty p50 µs':>14}{'empty p99 µs':>14}")
    for r in rows:
        print(
            f"{r['device']:<8}{r['overhead_us_per_track']:>16.2f}"
            f"{r['empty_block_reads_us_p50']:>14.2f}{r['empty_block_reads_us_p99']:>14.2f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
