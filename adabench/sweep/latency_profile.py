"""Measuring a `LatencyModel` (adabench/slo/latency_model.py) for SLO mode: the budgets a
method can run (`budget_grid`) and their no-contention latency on this device (`profile_latency`).

Lives in sweep/ because it runs the model; slo/ holds only the model and the controller.
"""

from __future__ import annotations

import statistics

import numpy as np

from adabench.errors import UserError
from adabench.measure.timing import Timer
from adabench.models.adallava.model import AdaLlavaConfig
from adabench.models.combine import split_name
from adabench.models.execution import LlavaRunner
from adabench.models.factory import build_method
from adabench.models.methods import METHODS
from adabench.slo.latency_model import LatencyModel
from adabench.sweep.generate import generate


def budget_grid(
    loaded, method_name: str, method_args: dict | None = None, seed: int = 0
) -> list[float]:
    """Returns the distinct budgets `method_name` can run on `loaded`, ascending, from its minimum
    to 1.0: k/units for the block or head-unit granularity (⌊units·b⌋ in float32, so each point is
    nudged up until it selects exactly k units), or 21 even steps for token-only methods."""
    minimum = build_method(method_name, loaded, 1.0, method_args, seed).min_budget(loaded)
    block = method_name
    if "+" in method_name and method_name not in METHODS:
        block = split_name(method_name)[0]
    if block in ("adallava-h", "head-prune"):
        total = AdaLlavaConfig.for_model(loaded.config, "H").units.total
    elif block in ("full", "layer-drop", "early-exit", "random-skip", "adallava-l"):
        total = loaded.config.text_config.num_hidden_layers
    else:
        return [float(b) for b in np.linspace(max(minimum, 1e-3), 1.0, 21)]
    grid = []
    for k in range(1, total + 1):
        b = k / total
        while np.floor(np.float32(total) * np.float32(b)) < k:
            b = float(np.nextafter(b, 2.0))
        if b + 1e-9 >= minimum:
            grid.append(min(1.0, b))
    return grid


def profile_points(grid: list[float], max_points: int = 5) -> list[float]:
    """Returns up to `max_points` budgets of `grid` spread evenly, both ends included."""
    if len(grid) <= max_points:
        return list(grid)
    idx = sorted({round(i * (len(grid) - 1) / (max_points - 1)) for i in range(max_points)})
    return [grid[i] for i in idx]


def profile_latency(
    loaded,
    method_name: str,
    spec,
    samples,
    prepared,
    budgets: list[float] | None = None,
    repeats: int = 2,
    method_args: dict | None = None,
    seed: int = 0,
    max_new_tokens: int | None = None,
) -> LatencyModel:
    """Returns the LatencyModel of `method_name` on `loaded`: median end-to-end latency (ms) over
    `samples` × `repeats` timed generations per budget (default: ≤ 5 points of `budget_grid`).

    Run it with no co-running stress (e.g. inside `Contention.paused()`). Budgets are visited
    round-robin per repeat so that drifting background load spreads over all of them, after one
    untimed warm-up generation per budget."""
    if repeats < 1:
        raise UserError(f"latency profile repeats must be >= 1, got {repeats}")
    pairs = list(zip(samples, prepared, strict=True))
    if not pairs:
        raise UserError("latency profile needs at least one sample")
    if budgets is None:
        budgets = (
            [1.0]
            if method_name == "full"
            else profile_points(budget_grid(loaded, method_name, method_args, seed))
        )
    budgets = sorted({float(b) for b in budgets})
    methods = {b: build_method(method_name, loaded, b, method_args, seed) for b in budgets}
    runner, timer = LlavaRunner(loaded.model), Timer(loaded.device)
    eos = loaded.processor.tokenizer.eos_token_id
    max_new = max_new_tokens or int(spec.max_new_tokens)
    for b in budgets:
        generate(runner, methods[b], pairs[0][1], max_new, eos, timer)
    times: dict[float, list[float]] = {b: [] for b in budgets}
    for _ in range(repeats):
        for b in budgets:
            for _, ps in pairs:
                times[b].append(generate(runner, methods[b], ps, max_new, eos, timer).latency_ms)
    return LatencyModel(
        budgets=budgets,
        latency_ms=[statistics.median(times[b]) for b in budgets],
        runs=[len(times[b]) for b in budgets],
        method=method_name,
        model=getattr(loaded, "name", ""),
        suite=getattr(spec, "name", ""),
        device=str(loaded.device),
        max_new_tokens=max_new,
    )
