"""What differs between decoder families, as data: one `Family` per family, one `Decoder` per model.

A `Family` says how a block of that family computes (norm kind and placement, q/k norms, fused
projections, sliding-window layers, attention scaling and soft-capping, rotary tables per layer
type). A `Decoder` is a family resolved against one text config: per-layer windows and rotary
keys, the attention scale, the soft-cap, the activation. The executor
(adabench/models/execution.py), the head/MLP-group slicing (block_weights.py), head-prune's
importance, FastV's probe, the masked training path and the analytic FLOPs all read these, so
the executor stays one loop. Adding a family: one file in this folder, one row in
tests/unit/test_families.py (docs/architecture.md, "Decoder families").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from adabench.errors import UserError

ROPE_STATIC = ("default", "linear", "llama3", "yarn")
"""Rotary types whose tables depend on the position only: computed once per request."""
ROPE_LENGTH_DEPENDENT = ("dynamic", "longrope")
"""Rotary types whose tables change with the sequence length past the original context: exact
while a request stays within `original_max_position_embeddings` (refused beyond it)."""


@dataclass(frozen=True)
class Family:
    """How one decoder family's block computes. Module names are those of the HF classes."""

    name: str = field(metadata={"help": "adabench's name for the family (e.g. 'gemma2')"})
    model_types: tuple[str, ...] = field(metadata={"help": "text_config.model_type values"})
    label: str = field(metadata={"help": "name shown to users (e.g. 'Gemma 2')"})
    norm: str = field(
        default="rms",
        metadata={"help": "'rms': w·x̂ (cast before w); 'gemma': (1 + w)·x̂ in float32, then cast"},
    )
    sandwich_norms: bool = field(
        default=False,
        metadata={
            "help": "Gemma 2/3: norms on the attention and MLP outputs before the residual "
            "(post_attention_layernorm, post_feedforward_layernorm) and pre_feedforward_layernorm "
            "before the MLP"
        },
    )
    qk_norm: bool = field(
        default=False, metadata={"help": "RMSNorm of q and k per head (q_norm, k_norm)"}
    )
    fused: bool = field(default=False, metadata={"help": "Phi-3: qkv_proj and gate_up_proj"})
    window: str = field(
        default="none",
        metadata={
            "help": "sliding window: 'none', 'all' layers (config.sliding_window), 'layer_types'"
        },
    )
    softcap_field: str | None = field(
        default=None, metadata={"help": "config field of the attention-logit soft-cap"}
    )
    scale_field: str | None = field(
        default=None, metadata={"help": "config field whose −1/2 power scales q·k (else head_dim)"}
    )
    rope_per_layer_type: bool = field(
        default=False, metadata={"help": "Gemma 3: one rotary table per layer type"}
    )
    act_field: str = field(
        default="hidden_act", metadata={"help": "config field of the MLP activation"}
    )
    must_be: tuple[tuple[str, Any], ...] = field(
        default=(), metadata={"help": "(config field, the only value implemented)"}
    )
    note: str = field(default="", metadata={"help": "one line for `models show`"})

    # module names inside a decoder layer
    @property
    def attn_norm(self) -> str:
        return "input_layernorm"

    @property
    def mlp_norm(self) -> str:
        return "pre_feedforward_layernorm" if self.sandwich_norms else "post_attention_layernorm"

    @property
    def post_attn_norm(self) -> str | None:
        return "post_attention_layernorm" if self.sandwich_norms else None

    @property
    def post_mlp_norm(self) -> str | None:
        return "post_feedforward_layernorm" if self.sandwich_norms else None


@dataclass(frozen=True)
class Decoder:
    """A family resolved against one text config (what the executor reads per model)."""

    family: Family
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    scale: float  # multiplies q·k
    softcap: float | None  # attention-logit soft-cap: tanh(s / cap) · cap, before the mask
    windows: tuple[int | None, ...]  # per layer: keys visible to a query (itself included)
    rope_keys: tuple[str, ...]  # per layer: which rotary table it uses
    activation: str
    rope_limit: int | None  # positions beyond this change a length-dependent rotary table

    @property
    def needs_scores(self) -> bool:
        """Whether attention must be computed from explicit scores (soft-capping)."""
        return self.softcap is not None


def text_of(config: Any) -> Any:
    """Returns the text config of a VLM config (or `config` itself when it is already text)."""
    return getattr(config, "text_config", None) or config


def rope_parameters(text: Any) -> dict[str, dict]:
    """Returns {rotary key: its parameters} ("default" for single-table families): transformers
    5 `rope_parameters` (nested by layer type for Gemma 3), or 4.x `rope_scaling`/`rope_theta`."""
    params = getattr(text, "rope_parameters", None)
    if isinstance(params, dict) and params and all(isinstance(v, dict) for v in params.values()):
        return {k: dict(v) for k, v in params.items()}
    if isinstance(params, dict) and params:
        return {"default": dict(params)}
    scaling = dict(getattr(text, "rope_scaling", None) or {})
    scaling.setdefault("rope_type", scaling.pop("type", "default"))
    return {"default": scaling}


def resolve(family: Family, config: Any) -> Decoder:
    """Returns the `Decoder` of `config` for `family`; a config field the family layer does not
    implement (an unknown rotary type, bidirectional attention, ...) raises UserError."""
    text = text_of(config)
    for name, value in family.must_be:
        got = getattr(text, name, value)
        if got != value:
            raise UserError(
                f"{family.label} config sets {name}={got!r}; adabench implements only {value!r} "
                "for this family"
            )
    n_layers = int(text.num_hidden_layers)
    heads = int(text.num_attention_heads)
    kv = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or text.hidden_size // heads)
    scalar = getattr(text, family.scale_field) if family.scale_field else None
    scale = float(scalar) ** -0.5 if scalar else head_dim**-0.5
    softcap = getattr(text, family.softcap_field, None) if family.softcap_field else None
    layer_types = list(getattr(text, "layer_types", None) or ["full_attention"] * n_layers)
    sliding = getattr(text, "sliding_window", None)
    if family.window == "all":
        windows = [sliding] * n_layers
    elif family.window == "layer_types":
        windows = [sliding if lt == "sliding_attention" else None for lt in layer_types]
    else:
        windows = [None] * n_layers
    unknown = sorted({lt for lt in layer_types} - {"full_attention", "sliding_attention"})
    if unknown:
        raise UserError(
            f"{family.label} config has layer types {unknown}: adabench implements "
            "full_attention and sliding_attention"
        )
    rope = rope_parameters(text)
    keys = [lt if family.rope_per_layer_type else "default" for lt in layer_types]
    limit = None
    for key in set(keys):
        params = rope.get(key) or {}
        kind = params.get("rope_type", "default")
        if kind in ROPE_LENGTH_DEPENDENT:
            orig = params.get("original_max_position_embeddings") or getattr(
                text, "original_max_position_embeddings", None
            )
            limit = int(orig or text.max_position_embeddings)
        elif kind not in ROPE_STATIC:
            raise UserError(
                f"{family.label} config uses rotary type {kind!r}; adabench implements "
                f"{', '.join(ROPE_STATIC + ROPE_LENGTH_DEPENDENT)}"
            )
    return Decoder(
        family=family,
        num_layers=n_layers,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        hidden_size=int(text.hidden_size),
        intermediate_size=int(text.intermediate_size),
        scale=scale,
        softcap=float(softcap) if softcap else None,
        windows=tuple(int(w) if w else None for w in windows),
        rope_keys=tuple(keys),
        activation=str(getattr(text, family.act_field)),
        rope_limit=limit,
    )


def embed_scale(family: Family, text: Any) -> float:
    """Returns √hidden for the Gemma families (their embeddings are scaled), else 1."""
    return math.sqrt(text.hidden_size) if family.norm == "gemma" else 1.0
