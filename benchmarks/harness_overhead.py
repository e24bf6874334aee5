"""Harness overhead on the embedded tiny model at batch 1 (reported, never asserted).

Swept: methods full and layer-drop@0.5 on `tiny`, shapes test, 40 samples, 3 repeats.
Numbers:
  model_ms      sum of end-to-end generation latencies measured by the Timer (vision, prefill, decode)
  wall_ms       wall time of the whole cell (run_single: method set-up, timing, scoring, FLOPs, stats)
  overhead_pct  (wall_ms − model_ms) ÷ wall_ms — the time adabench spends outside model work
  timer_us      cost of one Timer.track() on this device
Prints one table row per setting and a JSON line at the end.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from adabench.data.suites import get_spec, load_suite
from adabench.measure.timing import Timer
from adabench.models.loading import load_model
from adabench.sweep.cell import CellConfig, prepare_samples
from adabench.sweep.group import run_single


def timer_overhead_us(n: int = 20000) -> float:
    """Returns the mean cost of one empty Timer.track() in microseconds."""
    timer = Timer("cpu")
    start = time.perf_counter()
    for _ in range(n):
        with timer.track():
            pass
    return (time.perf_counter() - start) / n * 1e6


def main(model: str = "tiny", limit: int = 40, repeats: int = 3) -> list[dict]:
    torch.manual_seed(0)
    loaded = load_model(model, device="cpu")
    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=limit)
    prepared = prepare_samples(loaded, spec, samples)
    print(
        f"card: {model} on cpu, torch threads {torch.get_num_threads()}, {limit} samples x {repeats} repeats"
    )
    results = []
    for method, budget in (("full", 1.0), ("layer-drop", 0.5)):
        cfg = CellConfig(
            model=model, method=method, budget=budget, limit=limit, repeats=repeats, warmup=2
        )
        start = time.perf_counter()
        _, rows = run_single(loaded, spec, samples, prepared, cfg)
        wall_ms = (time.perf_counter() - start) * 1e3
        model_ms = sum(sum(r["latency_ms_repeats"]) for r in rows)
        warm_ms = 0.0  # warm-up generations are part of wall time; estimate them from the mean
        warm_ms = cfg.warmup * model_ms / (len(rows) * repeats)
        overhead = (wall_ms - model_ms - warm_ms) / wall_ms
        results.append(
            {
                "method": method,
                "budget": budget,
                "model_ms": round(model_ms, 1),
                "wall_ms": round(wall_ms, 1),
                "overhead_pct": round(100 * overhead, 2),
            }
        )
        print(
            f"{method:>10} @ {budget:<4} model {model_ms:9.1f} ms  wall {wall_ms:9.1f} ms  overhead {100 * overhead:5.2f} %"
        )
    t_us = timer_overhead_us()
    print(f"timer overhead: {t_us:.2f} us per track()")
    print(json.dumps({"harness": results, "timer_us": round(t_us, 3)}))
    return results


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["tiny"]))
