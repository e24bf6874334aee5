"""One SLO cell: a method runs under a latency target instead of a fixed budget.

Methods with a budget run under `SloController` (one decision before each sample, one
observation of its measured latency after it; a sample's `repeats` share its budget and their
mean is the observation); `full` runs as is. Rows have the columns of `adabench.sweep.cell.run_cell`
plus, per sample, `chosen_budget`, `estimated_slowdown`, `slo_met`, `flagged`, `contention_now`,
`t_s`; per cell, `slo_ms`, `slo_attainment`, the chosen-budget distribution and `slo_mode`.
The cell's `budget` is the method's maximum, 1.0, and its `cell_id` also hashes the target,
the controller settings and the schedule, so it never collides with a fixed-budget cell.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np

from adabench.errors import UserError
from adabench.slo.controller import DEFAULT_ALPHA, DEFAULT_K_DEV, DEFAULT_MARGIN, SloController
from adabench.slo.latency_model import LatencyModel, budget_grid
from adabench.slo.schedule import ScheduleDriver, format_schedule
from adabench.sweep.cell import CellConfig, _cell_row, _nvml_index, _sample_row
from adabench.sweep.store import cell_id


def is_budgeted(method_name: str) -> bool:
    """Returns True when the method takes a budget (runs under the controller); False for `full`."""
    return method_name != "full"


def slo_cell_id(
    cfg: CellConfig,
    slo_ms: float,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    schedule: str = "",
    k_dev: float = DEFAULT_K_DEV,
) -> str:
    """Returns the id of an SLO cell: the cell's coordinates plus target, controller and schedule."""
    return cell_id(
        {
            **cfg.coords(),
            "slo_ms": float(slo_ms),
            "slo_margin": float(margin),
            "slo_alpha": float(alpha),
            "slo_k_dev": float(k_dev),
            "contention_schedule": schedule,
        }
    )


def run_slo_cell(
    loaded,
    spec,
    samples,
    prepared,
    cfg: CellConfig,
    slo_ms: float,
    latency_model: LatencyModel | None,
    achieved_slowdown: float = math.nan,
    schedule_driver: ScheduleDriver | None = None,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    on_sample: Callable[[int, dict], None] | None = None,
    k_dev: float = DEFAULT_K_DEV,
) -> tuple[dict, list[dict]]:
    """Runs the cell under the target `slo_ms` and returns (cell row, sample rows).

    `latency_model` is required for budgeted methods (optional for `full`, where it only feeds
    the recorded slowdown estimate). Under `schedule_driver` the cycle restarts when the timed
    samples start, so every cell sees the same load sequence; without one the estimator starts
    from `achieved_slowdown` (the sweep's reference measurement) when it is known."""
    from adabench.measure.memory import PeakMemory
    from adabench.measure.telemetry import NvmlSampler, Telemetry
    from adabench.measure.timing import Timer
    from adabench.models.execution import LlavaRunner
    from adabench.models.methods import build_method
    from adabench.sweep.generate import generate

    if not (slo_ms > 0 and math.isfinite(slo_ms)):
        raise UserError(f"slo-ms must be > 0, got {slo_ms}")
    budgeted = is_budgeted(cfg.method)
    if budgeted and latency_model is None:
        raise UserError(f"SLO mode for {cfg.method!r} needs a latency model (profile_latency)")
    methods: dict[float, object] = {}

    def method_at(budget: float):
        if budget not in methods:
            methods[budget] = build_method(cfg.method, loaded, budget, cfg.method_args, cfg.seed)
        return methods[budget]

    controller = _controller(
        loaded,
        cfg,
        slo_ms,
        latency_model,
        margin,
        alpha,
        achieved_slowdown,
        schedule_driver,
        budgeted,
        k_dev,
    )
    runner, timer = LlavaRunner(loaded.model), Timer(loaded.device)
    eos = loaded.processor.tokenizer.eos_token_id
    max_new = cfg.max_new_tokens or int(spec.max_new_tokens)
    top = controller.max_budget if controller else 1.0
    for i in range(cfg.warmup):
        generate(runner, method_at(top), prepared[i % len(prepared)], max_new, eos, timer)
    rows: list[dict] = []
    sampler = (
        NvmlSampler(_nvml_index(loaded))
        if loaded.device.type == "cuda"
        else nullcontext(Telemetry())
    )
    if schedule_driver is not None:
        schedule_driver.restart()
    start = time.perf_counter()
    with PeakMemory(loaded.device) as mem, sampler as tel:
        for i, (sample, ps) in enumerate(zip(samples, prepared, strict=True)):
            if schedule_driver is not None:
                schedule_driver.check()
            level = (
                schedule_driver.current_level() if schedule_driver is not None else cfg.contention
            )
            t_s = time.perf_counter() - start
            if budgeted:
                budget, slowdown, flagged = controller.choose()
            else:
                budget, flagged = 1.0, False
                slowdown = controller.slowdown if controller else math.nan
            method = method_at(budget)
            runs = [generate(runner, method, ps, max_new, eos, timer) for _ in range(cfg.repeats)]
            row = _sample_row(loaded, spec, sample, runs, method)
            if controller is not None:
                controller.observe(budget, row["latency_ms"])
            row.update(
                chosen_budget=budget,
                estimated_slowdown=slowdown,
                flagged=bool(flagged),
                slo_met=bool(row["latency_ms"] <= slo_ms),
                contention_now=float(level),
                t_s=t_s,
            )
            rows.append(row)
            if on_sample:
                on_sample(i, row)
    n_gen = len(rows) * cfg.repeats
    energy = tel.energy_j / n_gen if n_gen and not math.isnan(tel.energy_j) else math.nan
    for row in rows:
        row["energy_j"] = energy
    cell = _cell_row(cfg, rows, achieved_slowdown, mem.peak_mem_mb, energy)
    schedule = format_schedule(schedule_driver.schedule) if schedule_driver is not None else ""
    cell.update(_slo_columns(rows, slo_ms, margin, alpha, k_dev, schedule))
    cell["cell_id"] = slo_cell_id(cfg, slo_ms, margin, alpha, schedule, k_dev)
    return cell, rows


def _controller(
    loaded,
    cfg: CellConfig,
    slo_ms: float,
    latency_model: LatencyModel | None,
    margin: float,
    alpha: float,
    achieved_slowdown: float,
    driver,
    budgeted: bool,
    k_dev: float = DEFAULT_K_DEV,
) -> SloController | None:
    if latency_model is None:
        return None
    known = math.isfinite(achieved_slowdown) and achieved_slowdown > 0 and driver is None
    grid = budget_grid(loaded, cfg.method, cfg.method_args, cfg.seed) if budgeted else [1.0]
    return SloController(
        latency_model,
        slo_ms,
        margin=margin,
        alpha=alpha,
        min_budget=grid[0],
        max_budget=grid[-1],
        budget_grid=grid,
        initial_slowdown=achieved_slowdown if known else 1.0,
        k_dev=k_dev,
    )


def _slo_columns(
    rows: list[dict], slo_ms: float, margin: float, alpha: float, k_dev: float, schedule: str
) -> dict:
    chosen = np.array([r["chosen_budget"] for r in rows], dtype=float)
    met = [r["slo_met"] for r in rows]
    nan = math.nan
    return {
        "budget": 1.0,
        "slo_mode": True,
        "slo_ms": float(slo_ms),
        "slo_attainment": float(np.mean(met)) if met else nan,
        "chosen_budget_mean": float(chosen.mean()) if len(chosen) else nan,
        "chosen_budget_p10": float(np.percentile(chosen, 10)) if len(chosen) else nan,
        "chosen_budget_p50": float(np.percentile(chosen, 50)) if len(chosen) else nan,
        "chosen_budget_p90": float(np.percentile(chosen, 90)) if len(chosen) else nan,
        "flagged_fraction": float(np.mean([r["flagged"] for r in rows])) if rows else nan,
        "slo_margin": float(margin),
        "slo_alpha": float(alpha),
        "slo_k_dev": float(k_dev),
        "contention_schedule": schedule,
    }
