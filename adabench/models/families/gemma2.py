"""Gemma 2: (1 + w) RMSNorms around both halves of the block, attention-logit soft-capping,
query_pre_attn_scalar scaling, alternating sliding/full layers, √d-scaled token embeddings."""

from adabench.models.families.base import Family

FAMILY = Family(
    name="gemma2",
    model_types=("gemma2",),
    label="Gemma 2",
    norm="gemma",
    sandwich_norms=True,
    window="layer_types",
    softcap_field="attn_logit_softcapping",
    scale_field="query_pre_attn_scalar",
    act_field="hidden_activation",
    note="(1+w) sandwich norms, logit soft-capping, sliding layers, scaled embeddings",
)
