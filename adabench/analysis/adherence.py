"""Budget adherence: requested budget versus achieved FLOPs and latency ratios, and SLO attainment."""

from __future__ import annotations

import numpy as np
import pandas as pd

KEY: list[str] = ["suite", "model", "method", "budget", "contention"]
BUDGET_TOLERANCE = 1e-9
"""flops_ratio may exceed the budget by float rounding only."""


def realization_ratio(flops_ratio, latency_ratio):
    """Returns (1 − latency_ratio) ÷ (1 − flops_ratio): the share of the saved FLOPs that shows
    up as saved time (1 = all of it, 0 = none). NaN where flops_ratio == 1 or an input is NaN."""
    flops_ratio = np.asarray(flops_ratio, dtype=float)
    latency_ratio = np.asarray(latency_ratio, dtype=float)
    saved = 1.0 - flops_ratio
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (1.0 - latency_ratio) / saved
    return np.where(np.isclose(saved, 0.0, atol=1e-12), np.nan, ratio)


def budget_adherence(cells: pd.DataFrame) -> pd.DataFrame:
    """Returns one row per cell: requested ``budget``, achieved ``flops_ratio`` and
    ``latency_ratio``, ``flops_excess`` (= flops_ratio − budget, > 0 is a violation),
    ``within_budget`` and ``realization`` (see `realization_ratio`)."""
    cols = [*KEY, "flops_ratio", "latency_ratio", "achieved_slowdown"]
    frame = cells[[c for c in cols if c in cells.columns]].copy()
    frame["flops_excess"] = frame["flops_ratio"] - frame["budget"]
    frame["within_budget"] = frame["flops_excess"] <= BUDGET_TOLERANCE
    frame["realization"] = realization_ratio(frame["flops_ratio"], frame["latency_ratio"])
    return frame.sort_values(KEY, ignore_index=True)


def slo_attainment(cells: pd.DataFrame) -> pd.DataFrame:
    """Returns the cells with a latency SLO: ``slo_ms``, ``slo_attainment`` (fraction of samples
    within the SLO) and the latency percentiles in ms. Empty when no cell has ``slo_ms``."""
    cols = [*KEY, "slo_ms", "slo_attainment", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99"]
    if "slo_ms" not in cells.columns:
        return pd.DataFrame(columns=cols)
    frame = cells.loc[cells["slo_ms"].notna(), [c for c in cols if c in cells.columns]]
    return frame.sort_values(KEY, ignore_index=True)
