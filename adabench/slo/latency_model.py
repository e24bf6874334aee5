"""Latency vs budget of one (model, method, suite) on this device, measured at no contention.

Why measured and interpolated rather than the FLOPs model scaled by one point: on small models
and at batch size 1 a large part of end-to-end latency does not scale with the decoder-block
FLOPs the budget controls (vision tower, projector, AdaLLaVA's always-run prefix blocks and
scheduler, lm_head, per-token decode launch and Python overheads), and that fixed share differs
per device. A few measured budgets capture it directly; between them latency is linear in the
number of blocks/units that run, so linear interpolation in budget is exact up to noise.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from adabench.errors import UserError


@dataclass
class LatencyModel:
    """Median end-to-end latency (ms) at a few budgets; `predict` interpolates linearly."""

    budgets: list[float] = field(metadata={"help": "profiled budgets, ascending, in (0, 1]"})
    latency_ms: list[float] = field(metadata={"help": "median end-to-end latency per budget, ms"})
    runs: list[int] = field(default_factory=list, metadata={"help": "timed runs per budget"})
    method: str = field(default="", metadata={"help": "method the profile was measured for"})
    model: str = field(default="", metadata={"help": "model name"})
    suite: str = field(default="", metadata={"help": "suite whose prompts were used"})
    device: str = field(default="", metadata={"help": "device it was measured on"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "decode length used"})

    def __post_init__(self) -> None:
        self.budgets = [float(b) for b in self.budgets]
        self.latency_ms = [float(x) for x in self.latency_ms]
        if not self.budgets or len(self.budgets) != len(self.latency_ms):
            raise UserError("a latency model needs one latency per budget and at least one budget")
        if any(b2 <= b1 for b1, b2 in pairwise(self.budgets)):
            raise UserError(f"latency-model budgets must be strictly ascending, got {self.budgets}")
        if not all(0 < b <= 1 for b in self.budgets):
            raise UserError(f"latency-model budgets must be in (0, 1], got {self.budgets}")
        if not all(math.isfinite(x) and x > 0 for x in self.latency_ms):
            raise UserError(
                f"latency-model latencies must be finite and > 0 ms, got {self.latency_ms}"
            )
        # Latency never falls as the budget rises; measurement noise that says otherwise is
        # flattened upwards (a conservative prediction, never an optimistic one).
        self._fit = np.maximum.accumulate(np.asarray(self.latency_ms))
        self._x = np.asarray(self.budgets)

    def predict(self, budget: float) -> float:
        """Returns the predicted no-contention latency at `budget`, ms (flat beyond the ends)."""
        return float(np.interp(budget, self._x, self._fit))

    def to_dict(self) -> dict:
        """Returns a JSON-ready dict (the measured medians, not the monotone fit)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LatencyModel:
        """Returns the model stored by `to_dict`; unknown keys are ignored."""
        keys = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in keys})

    def save(self, path: Path) -> None:
        """Writes the model as JSON to `path` (e.g. the run folder, to reuse across cells)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> LatencyModel:
        """Returns the model stored at `path` by `save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def budget_grid(
    loaded, method_name: str, method_args: dict | None = None, seed: int = 0
) -> list[float]:
    """Returns the distinct budgets `method_name` can run on `loaded`, ascending, from its minimum
    to 1.0: k/units for the block or head-unit granularity (⌊units·b⌋ in float32, so each point is
    nudged up until it selects exactly k units), or 21 even steps for token-only methods."""
    from adabench.models.adallava.model import AdaLlavaConfig
    from adabench.models.factory import build_method
    from adabench.models.methods import METHODS

    minimum = build_method(method_name, loaded, 1.0, method_args, seed).min_budget(loaded)
    block = method_name
    if "+" in method_name and method_name not in METHODS:
        from adabench.models.combine import split_name

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
    from adabench.measure.timing import Timer
    from adabench.models.execution import LlavaRunner
    from adabench.models.factory import build_method
    from adabench.sweep.generate import generate

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
