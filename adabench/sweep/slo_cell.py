"""One SLO cell: a method runs under a latency target instead of a fixed budget.

Methods with a budget run under `SloController` (one decision before each sample, one
observation of its measured latency after it; a sample's `repeats` share its budget and their
mean is the observation); `full` runs as is. Rows have the columns of `adabench.sweep.group.run_single`
plus, per sample, `chosen_budget`, `estimated_slowdown`, `slo_met`, `flagged`, `contention_now`,
`t_s`; per cell, `slo_ms`, `slo_attainment`, the chosen-budget distribution and `slo_mode`.
The cell's `budget` is the method's maximum, 1.0, and its `cell_id` also hashes the target,
the controller settings and the schedule, so it never collides with a fixed-budget cell.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from adabench.errors import UserError
from adabench.slo.controller import DEFAULT_ALPHA, DEFAULT_K_DEV, DEFAULT_MARGIN, SloController
from adabench.slo.latency_model import LatencyModel
from adabench.slo.schedule import ScheduleDriver, format_schedule
from adabench.sweep.cell_config import CellConfig, slo_cell_id
from adabench.sweep.latency_profile import budget_grid


def is_budgeted(method_name: str) -> bool:
    """Returns True when the method takes a budget (runs under the controller); False for `full`."""
    return method_name != "full"


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
    on_sample: Callable[[int, int], None] | None = None,
    k_dev: float = DEFAULT_K_DEV,
) -> tuple[dict, list[dict]]:
    """Runs the cell under the target `slo_ms` and returns (cell row, sample rows).

    The sample loop is the sweep's (adabench/sweep/group.py) with two hooks: `choose` asks the
    controller for a budget before each sample, `observe` feeds it the sample's mean latency.
    `latency_model` is required for budgeted methods (optional for `full`, where it only feeds
    the recorded slowdown estimate). Under `schedule_driver` the cycle restarts when the timed
    samples start, so every cell sees the same load sequence; without one the estimator starts
    from `achieved_slowdown` (the sweep's reference measurement) when it is known."""
    from adabench.models.factory import build_method
    from adabench.sweep.group import Arm, GroupData, assemble, group_id, run_arms

    if not (slo_ms > 0 and math.isfinite(slo_ms)):
        raise UserError(f"slo-ms must be > 0, got {slo_ms}")
    budgeted = is_budgeted(cfg.method)
    if budgeted and latency_model is None:
        raise UserError(f"SLO mode for {cfg.method!r} needs a latency model (profile_latency)")
    controller = _controller(loaded, cfg, slo_ms, latency_model, margin, alpha,
                             achieved_slowdown, schedule_driver, budgeted, k_dev)  # fmt: skip
    hooks = _SloHooks(controller, budgeted, cfg, schedule_driver, slo_ms, build_method, loaded)
    data = GroupData(
        loaded, spec, samples, prepared, cfg.max_new_tokens or int(spec.max_new_tokens)
    )
    arm = Arm(cfg.cell_id(), cfg, choose=hooks.choose, observe=hooks.observe)
    result = run_arms(data, [arm], on_sample, order="sequential", warmup=cfg.warmup,
                      repeats=cfg.repeats, seed=cfg.seed, gid=group_id(cfg, "slo"),
                      on_start=hooks.start)  # fmt: skip
    _, cell, rows = next(iter(assemble(data, [arm], result, order="sequential", seed=cfg.seed,
                                       slowdown=(achieved_slowdown, math.nan))))  # fmt: skip
    schedule = format_schedule(schedule_driver.schedule) if schedule_driver is not None else ""
    cell.update(_slo_columns(rows, slo_ms, margin, alpha, k_dev, schedule))
    cell["cell_id"] = slo_cell_id(cfg, slo_ms, margin, alpha, schedule, k_dev)
    return cell, rows


class _SloHooks:
    """The controller's side of the sample loop: a budget per sample, an observation after it."""

    def __init__(self, controller, budgeted, cfg, driver, slo_ms, build_method, loaded) -> None:
        self.controller, self.budgeted, self.cfg = controller, budgeted, cfg
        self.driver, self.slo_ms = driver, slo_ms
        self.methods: dict[float, object] = {}
        self.build = lambda b: build_method(cfg.method, loaded, b, cfg.method_args, cfg.seed)
        self.decisions: dict[int, tuple] = {}
        self.t0 = time.perf_counter()

    def method_at(self, budget: float):
        if budget not in self.methods:
            self.methods[budget] = self.build(budget)
        return self.methods[budget]

    def start(self) -> None:
        """Called when the timed samples start: the schedule's cycle restarts here."""
        if self.driver is not None:
            self.driver.restart()
        self.t0 = time.perf_counter()

    def choose(self, sample: int):
        if sample < 0:  # warm-up: the largest budget, no decision
            return self.method_at(self.controller.max_budget if self.controller else 1.0)
        if sample not in self.decisions:  # one decision per sample, shared by its repeats
            if self.driver is not None:
                self.driver.check()
            level = self.driver.current_level() if self.driver is not None else self.cfg.contention
            t_s = time.perf_counter() - self.t0
            if self.budgeted:
                budget, slowdown, flagged = self.controller.choose()
            else:
                budget, flagged = 1.0, False
                slowdown = self.controller.slowdown if self.controller else math.nan
            self.decisions[sample] = (budget, slowdown, flagged, level, t_s)
        return self.method_at(self.decisions[sample][0])

    def observe(self, sample: int, latencies_ms: list[float]) -> dict:
        budget, slowdown, flagged, level, t_s = self.decisions[sample]
        mean_ms = float(np.mean(latencies_ms))
        if self.controller is not None:
            self.controller.observe(budget, mean_ms)
        return {
            "chosen_budget": budget,
            "estimated_slowdown": slowdown,
            "flagged": bool(flagged),
            "slo_met": bool(mean_ms <= self.slo_ms),
            "contention_now": float(level),
            "t_s": t_s,
        }


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
