"""Qwen2 (LLaVA-OneVision's decoder, and Qwen2-VL's / Qwen2.5-VL's text model: the same block,
whose 3-D rotary tables the decoder's own rotary module builds): Llama's block with q/k/v
biases, sliding layers by type."""

from adabench.models.families.base import Family

FAMILY = Family(
    name="qwen2",
    model_types=("qwen2", "qwen2_vl_text", "qwen2_5_vl_text"),
    label="Qwen2",
    window="layer_types",
    note="q/k/v biases, sliding layers from layer_types",
)
