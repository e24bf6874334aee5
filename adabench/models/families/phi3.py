"""Phi-3: Llama's block with fused qkv_proj ([q | k | v] rows) and gate_up_proj ([gate | up] rows),
partial rotary when the config says so."""

from adabench.models.families.base import Family

FAMILY = Family(
    name="phi3",
    model_types=("phi3",),
    label="Phi-3",
    fused=True,
    window="all",
    note="fused qkv_proj / gate_up_proj, partial rotary",
)
