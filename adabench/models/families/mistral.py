"""Mistral (llava-v1.6-mistral): Llama's block with a sliding window on every layer."""

from adabench.models.families.base import Family

FAMILY = Family(
    name="mistral",
    model_types=("mistral",),
    label="Mistral",
    window="all",
    note="Llama block, sliding_window on every layer",
)
