"""Representative plans of the count-based methods, from a model's config alone.

The FLOPs of a block or unit plan depend only on how many blocks / units run, not on which, so
one plan per budget with the method's counts gives the exact figure (adabench/flops_table.py
and the sweep's grid check in adabench/sweep/reachability.py both use these).
"""

from __future__ import annotations

from typing import Any

from adabench.errors import UserError
from adabench.models.plan import LayerPlan, Plan

COUNT_METHODS = ("full", "layer-drop", "early-exit", "random-skip", "adallava-l", "adallava-h",
                 "head-prune")  # fmt: skip
"""The methods whose plan FLOPs follow from counts alone (those `representative_plan` knows)."""


def representative_plan(
    method: str, config: Any, adallava: dict, budget: float
) -> tuple[Plan, str]:
    """Returns (a plan with the method's block/unit counts at `budget`, "kept/total" text);
    KeyError for a method not in COUNT_METHODS."""
    from adabench.models.adallava import budget as B
    from adabench.models.methods import evenly_spaced, kept_count

    if method not in COUNT_METHODS:
        raise KeyError(method)
    text = config.text_config
    n = text.num_hidden_layers
    if method == "full":
        return Plan.full(n), f"{n}/{n}"
    if method == "layer-drop":
        kept = evenly_spaced(n, kept_count(budget, n))
        return Plan.from_kept_blocks(n, kept), f"{len(kept)}/{n}"
    if method == "early-exit":
        k = kept_count(budget, n)
        return Plan.from_kept_blocks(n, range(k)), f"{k}/{n}"
    if method == "random-skip":
        prefix = n // 2
        check_min(budget, prefix / n, method)
        k = prefix + max(0, kept_count(budget, n) - prefix)
        return Plan.from_kept_blocks(n, range(k)), f"{k}/{n}"
    ada = ada_config(config, adallava, "L" if method == "adallava-l" else "H")
    if method == "adallava-l":
        u = ada.units
        check_min(budget, B.min_budget(u), method)
        k = u.prefix + B.selected_units(budget, u)
        return Plan.from_kept_blocks(n, range(k)), f"{k}/{n} blocks"
    per_layer = ada.num_heads // ada.group_size
    if method == "adallava-h":
        u = ada.units
        check_min(budget, B.min_budget(u), method)
        k = u.prefix + B.selected_units(budget, u)
    else:  # head-prune: AdaLLaVA-H's geometry at AdaLlavaConfig.for_model's defaults
        u = ada_config(config, {}, "H").units
        check_min(budget, B.min_budget(u), method)
        k = u.prefix + B.selected_units(budget, u)
    return unit_plan(n, ada.num_heads, ada.group_size, k), f"{k}/{n * per_layer} units"


def unit_plan(num_layers: int, heads: int, group: int, units: int) -> Plan:
    """Returns a plan running `units` units (r heads + r MLP groups each), filling blocks in order."""
    per_layer = heads // group
    layers: list[LayerPlan | None] = []
    for i in range(num_layers):
        kept = min(per_layer, max(0, units - i * per_layer))
        if kept == per_layer:
            layers.append(LayerPlan())
        elif kept == 0:
            layers.append(None)
        else:
            ids = tuple(range(kept * group))
            layers.append(LayerPlan(heads=ids, mlp_groups=ids))
    return Plan(layers=tuple(layers), mlp_group_count=heads)


def ada_config(config: Any, adallava: dict, variant: str):
    """Returns the AdaLlavaConfig of `variant` ("L"/"H") for `config` with the `adallava`
    overrides (prefix_layers, group_size); a UserError when the heads admit no such geometry."""
    from adabench.models.adallava.model import AdaLlavaConfig

    try:
        return AdaLlavaConfig.for_model(
            config, variant, adallava.get("prefix_layers"), adallava.get("group_size")
        )
    except ValueError as exc:  # e.g. r = 8 on 28 heads in groups of 7 (no shipped group_size)
        text = config.text_config
        raise UserError(
            f"no AdaLLaVA-{variant} geometry for {text.num_attention_heads} heads "
            f"({getattr(text, 'num_key_value_heads', None) or text.num_attention_heads} key/value "
            f"heads) with {dict(adallava) or 'the default settings'}: {exc}"
        ) from None


def check_min(budget: float, minimum: float, method: str) -> None:
    """Raises a UserError naming `minimum` when `budget` is below it (1e-9 tolerance)."""
    if budget + 1e-9 < minimum:
        raise UserError(
            f"budget {budget} is below what {method!r} can reach: the minimum is {minimum:.4g}"
        )
