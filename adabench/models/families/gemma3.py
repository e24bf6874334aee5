"""Gemma 3 (text): Gemma 2's block with (1 + w) q/k norms instead of soft-capping and a rotary
table per layer type (local base frequency on sliding layers)."""

from adabench.models.families.base import Family

FAMILY = Family(
    name="gemma3",
    model_types=("gemma3_text",),
    label="Gemma 3",
    norm="gemma",
    sandwich_norms=True,
    qk_norm=True,
    window="layer_types",
    scale_field="query_pre_attn_scalar",
    rope_per_layer_type=True,
    act_field="hidden_activation",
    # HF's Gemma 3 attention does not soft-cap (the field is ignored): a config that sets it
    # would mean different things in different transformers versions, so it is refused.
    must_be=(("use_bidirectional_attention", False), ("attn_logit_softcapping", None)),
    note="(1+w) sandwich and q/k norms, rotary per layer type, sliding layers",
)
