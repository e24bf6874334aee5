"""The one way to build a method by name: a registered method or a combination "a+b".

Sits above the registry (`methods.py`) and the combinations (`combine.py`), which both
stay free of the other's callers.
"""

from __future__ import annotations

from adabench.models.combine import build_combination
from adabench.models.methods import METHODS, Method, build_registered


def build_method(
    name: str, model, budget: float, args: dict | None = None, seed: int = 0
) -> Method:
    """Returns the method `name` (or a combination "a+b") set up for `model` at `budget`."""
    if "+" in name and name not in METHODS:
        return build_combination(name, model, budget, args or {}, seed)
    return build_registered(name, model, budget, args, seed)
