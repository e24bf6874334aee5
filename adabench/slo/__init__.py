"""Latency-SLO mode: a measured latency model, a closed-loop budget controller, contention schedules.

The pieces are pure; `adabench.sweep.slo_cell.run_slo_cell` runs one cell under a target.
"""

from adabench.slo.controller import Decision, SloController, decision_overhead_us
from adabench.slo.latency_model import LatencyModel
from adabench.slo.schedule import (
    ScheduleDriver,
    format_schedule,
    level_at,
    max_level,
    parse_schedule,
)

__all__ = [
    "Decision", "LatencyModel", "ScheduleDriver", "SloController", "decision_overhead_us",
    "format_schedule", "level_at", "max_level", "parse_schedule",
]  # fmt: skip
