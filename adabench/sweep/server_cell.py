"""One server-scenario cell: a policy serves a stream of arrivals on the real model.

The arrivals of a rate are the same for every policy (seeded by the sweep's seed and the rate,
or the replayed trace), so policies at one rate are paired request by request. Request `i`
asks sample `i mod n` of the suite. A request's row holds its arrival, start and end (s from
the start of the window), queue wait, service and end-to-end latency (ms), the budget it ran
at, whether it met the SLO, whether it was scored (after the warm-up share), and the answer
with its score; the cell row holds `adabench.slo.server.load_metrics` (docs/measurement.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np

from adabench.errors import UserError
from adabench.slo.server import (
    MAX_OVERRUN,
    WARMUP_SHARE,
    FixedBudget,
    QueueAwareController,
    load_metrics,
    poisson_arrivals,
    read_trace,
    serve,
    trace_window_s,
)
from adabench.sweep.cell_config import CellConfig


def arrivals_for(cell: CellConfig) -> tuple[np.ndarray, float]:
    """Returns (arrival times in s, arrival window in s) of a server cell: Poisson at its rate
    over its duration, or its trace."""
    if cell.arrivals:
        times = read_trace(cell.arrivals)
        return times, trace_window_s(times)
    return poisson_arrivals(float(cell.rate_per_s), float(cell.duration_s), cell.seed), float(
        cell.duration_s
    )


def make_policy(cell: CellConfig, latency_model):
    """Returns the cell's policy: its fixed budget, or the queue-aware SLO controller on
    `latency_model` (required for a controller cell)."""
    if cell.policy == "static":
        return FixedBudget(cell.budget)
    if cell.policy == "controller":
        if latency_model is None:
            raise UserError(f"the controller policy of {cell.method!r} needs a latency model")
        from adabench.slo.controller import SloController

        return QueueAwareController(SloController(latency_model, float(cell.slo_ms)))
    raise UserError(f"unknown server policy {cell.policy!r} (static | controller)")


def run_server_cell(
    loaded,
    spec,
    samples,
    prepared,
    cell: CellConfig,
    latency_model=None,
    achieved_slowdown: float = math.nan,
    on_request: Callable[[int, int], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Serves the cell's arrivals with its policy on `loaded` and returns (cell row, request
    rows). `cell.warmup` untimed generations (at each budget the policy may pick) run before
    the arrival clock starts."""
    from adabench.measure.timing import Timer
    from adabench.models.execution import LlavaRunner
    from adabench.models.factory import build_method
    from adabench.sweep.generate import generate
    from adabench.sweep.rows import sample_content, wrapper_columns

    arrivals, window_s = arrivals_for(cell)
    policy = make_policy(cell, latency_model)
    runner, timer = LlavaRunner(loaded.model), Timer(loaded.device)
    eos = loaded.processor.tokenizer.eos_token_id
    max_new = cell.max_new_tokens or int(spec.max_new_tokens)
    methods: dict[float, object] = {}

    def method_at(budget: float):
        if budget not in methods:
            methods[budget] = build_method(cell.method, loaded, budget, cell.method_args, cell.seed)
        return methods[budget]

    grid = policy.controller.grid if isinstance(policy, QueueAwareController) else [cell.budget]
    for budget in grid:
        for k in range(cell.warmup):
            generate(runner, method_at(budget), prepared[k % len(prepared)], max_new, eos, timer)

    def service(i: int, budget: float) -> dict:
        k = i % len(samples)
        method = method_at(budget)
        gen = generate(runner, method, prepared[k], max_new, eos, timer)
        content = sample_content(loaded, spec, samples[k], gen, method)
        return {**content, "sample_id": samples[k].id, "service_ms_model": gen.latency_ms,
                "prefill_ms": gen.prefill_ms}  # fmt: skip

    served = serve(arrivals, policy, service, on_request=on_request,
                   stop_after_s=MAX_OVERRUN * window_s)  # fmt: skip
    rate = float(cell.rate_per_s)
    metrics = load_metrics(served, float(cell.slo_ms), rate, window_s)
    rows = [_request_row(s, float(cell.slo_ms), WARMUP_SHARE * window_s) for s in served]
    label = cell.method if cell.policy == "controller" else f"{cell.method}@{cell.budget:g}"
    coords = {k: v for k, v in cell.coords().items() if k != "method_args"}
    scored = [r for r in rows if r["scored"] and not r["dropped"]]
    row = {
        **coords,
        "method_args": json.dumps(cell.method_args, sort_keys=True),
        "cell_id": cell.cell_id(),
        "repeats": 1,
        "flops": float(np.mean([r["flops"] for r in scored])) if scored else math.nan,
        "flops_ratio": float(np.mean([r["flops_ratio"] for r in scored])) if scored else math.nan,
        "scenario": "server",
        "policy": cell.policy,
        "policy_label": label + (" (controller)" if cell.policy == "controller" else ""),
        "rate_per_s": rate,
        "slo_ms": float(cell.slo_ms),
        "duration_s": window_s,
        "arrivals": cell.arrivals or "poisson",
        "n": metrics["requests_scored"],
        "latency_ms_mean": float(
            np.mean([r["latency_ms"] for r in rows if r["scored"]] or [math.nan])
        ),
        "achieved_slowdown": achieved_slowdown,
        "weights": loaded.weights,
        **wrapper_columns(loaded, rows),
        **metrics,
    }
    return row, rows


def _request_row(s, slo_ms: float, warmup_s: float) -> dict:
    """Returns the sample row of one served request (times in s from the window's start, ms
    for durations)."""
    base = {k: v for k, v in s.result.items() if k != "service_ms_model"}
    return {
        **base,
        "request": s.index,
        "arrival_s": s.arrival_s,
        "start_s": s.start_s,
        "end_s": s.end_s,
        "queue_ms": s.wait_ms,
        "service_ms": s.service_ms,
        "model_latency_ms": s.result.get("service_ms_model", math.nan),
        "latency_ms": s.latency_ms,
        "budget_run": s.budget,
        "flagged": bool(s.flagged),
        "dropped": bool(s.dropped),
        "slo_met": bool(not s.dropped and s.latency_ms <= slo_ms),
        "scored": bool(s.arrival_s >= warmup_s),
        "repeat": 0,
    }
