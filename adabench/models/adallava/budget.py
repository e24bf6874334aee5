"""Budget quantization (docs/adallava.md §1), computed in float32 as the released code does.

L (blocks):  units_total = N, prefix = P;            k = max(0, ⌊N·b⌋ − P)
H (heads):   units_total = N·H/r, prefix = P·H/r;    k = max(0, ⌊(N·H/r)·b⌋ − P·H/r)
The value fed to the latency encoder is e = k / (units_total − prefix + 1).
7B (N = 32, P = 16): b = 1.0 → 16 blocks, 0.85 → 11, 0.75 → 8, 0.6 → 3, ≤ 0.5 → 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Units:
    """Selectable-unit geometry of a model for one variant."""

    total: int
    prefix: int

    @property
    def selectable(self) -> int:
        """Units the scheduler chooses among: total − prefix."""
        return self.total - self.prefix


def units(
    variant: str, num_layers: int, prefix_layers: int, num_heads: int = 1, group_size: int = 1
) -> Units:
    """Returns the unit geometry: blocks for "L", (r heads + r MLP groups) units for "H"."""
    if variant == "L":
        return Units(num_layers, prefix_layers)
    per_layer = num_heads // group_size
    return Units(num_layers * per_layer, prefix_layers * per_layer)


def selected_units(budget: float, u: Units) -> int:
    """Returns k, the number of selectable units that run at `budget` (float32 floor)."""
    total = int(np.floor(np.float32(u.total) * np.float32(budget)))
    return max(0, min(u.selectable, total - u.prefix))


def encoder_value(k: int, u: Units) -> float:
    """Returns e = k / (units_total − units_prefix + 1), the latency encoder's input."""
    return k / (u.selectable + 1)


def min_budget(u: Units) -> float:
    """Returns the smallest budget the variant accepts: the prefix fraction P/N."""
    return u.prefix / u.total
