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
