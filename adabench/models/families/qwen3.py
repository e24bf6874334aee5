"""Qwen3: Qwen2's block with per-head RMSNorm of q and k before the rotary embedding."""

from adabench.models.families.base import Family

FAMILY = Family(
    name="qwen3",
    model_types=("qwen3",),
    label="Qwen3",
    qk_norm=True,
    window="layer_types",
    note="q/k RMSNorm per head, sliding layers from layer_types",
)
