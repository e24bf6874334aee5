"""Qwen2 (LLaVA-OneVision's decoder): Llama's block with q/k/v biases, sliding layers by type."""

from adabench.models.families.base import Family

FAMILY = Family(
    name="qwen2",
    model_types=("qwen2",),
    label="Qwen2",
    window="layer_types",
    note="q/k/v biases, sliding layers from layer_types",
)
