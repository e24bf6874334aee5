"""adabench's public plugin API: the only names a method outside adabench may import.

Versioned by VERSION (major.minor: a new minor adds names, a new major may change them);
everything else in adabench is private and may change. The contract — what `request` may do,
FLOPs counted from the returned plan, the budget check, `min_budget`, `ARGS` and
`--method-arg` — is docs/methods.md. A minimal plugin:

    from adabench.api import Method, Plan, Request, kept_count, num_blocks, register_method

    @register_method
    class KeepFirstHalf(Method):
        NAME = "keep-first-half"
        DESCRIPTION = "the first ⌊b·N⌋ blocks"

        def request(self, sample_id, input_ids, image_features):
            n = num_blocks(self.model)
            return Request(plan=Plan.from_kept_blocks(n, range(kept_count(self.budget, n))))

The classes are adabench's own (adabench/models/methods.py, plan.py, baselines/__init__.py):
built-in methods are defined and registered exactly this way.
"""

from __future__ import annotations

import torch

from adabench.models.baselines import TokenChoice, TokenMethod
from adabench.models.families import decoder_of
from adabench.models.methods import Method, Request, evenly_spaced, kept_count
from adabench.models.methods import register as register_method
from adabench.models.plan import FULL_LAYER, LayerPlan, Plan

VERSION = "1.0"
"""Version of this API (docs/methods.md lists what each version holds)."""

__all__ = [
    "FULL_LAYER",
    "VERSION",
    "LayerPlan",
    "Method",
    "Plan",
    "Request",
    "TokenChoice",
    "TokenMethod",
    "evenly_spaced",
    "family",
    "head_dim",
    "image_token_id",
    "kept_count",
    "mlp_groups",
    "mlp_size",
    "num_blocks",
    "num_heads",
    "num_kv_heads",
    "register_method",
    "visual_count",
    "visual_positions",
]


def _text(model):
    return model.config.text_config


def num_blocks(model) -> int:
    """Returns the number of decoder blocks N of `model` (what `Plan.layers` must cover)."""
    return int(_text(model).num_hidden_layers)


def num_heads(model) -> int:
    """Returns the query heads per block (valid `LayerPlan.heads` indices are 0 … this − 1)."""
    return int(_text(model).num_attention_heads)


def num_kv_heads(model) -> int:
    """Returns the key/value heads per block (GQA: a kept query head keeps its kv head)."""
    text = _text(model)
    return int(getattr(text, "num_key_value_heads", None) or text.num_attention_heads)


def head_dim(model) -> int:
    """Returns the dimension of one attention head."""
    return int(decoder_of(model.config).head_dim)


def mlp_size(model) -> int:
    """Returns the MLP intermediate size (neurons) of one block."""
    return int(_text(model).intermediate_size)


def mlp_groups(model) -> int:
    """Returns the MLP group count adabench's head methods use (= query heads, as AdaLLaVA-H):
    a valid `Plan.mlp_group_count`. Any count that divides `mlp_size(model)` is accepted."""
    return num_heads(model)


def family(model) -> str:
    """Returns the decoder family name of `model` ("llama", "qwen2", "gemma2", ...)."""
    return decoder_of(model.config).family.name


def image_token_id(model) -> int:
    """Returns the id of the image placeholder token in `input_ids`."""
    return int(model.config.image_token_id)


def visual_positions(model, input_ids: torch.Tensor) -> list[int]:
    """Returns the positions of the visual tokens in `input_ids` [1, T] (what `request` gets),
    in order; the i-th position holds `image_features[:, i]`. On a GPU this reads the ids back
    to the host (a sync inside the timed region: do it once per sample)."""
    return torch.nonzero(input_ids[0] == image_token_id(model)).squeeze(1).tolist()


def visual_count(model, input_ids: torch.Tensor) -> int:
    """Returns the number of visual tokens in `input_ids` [1, T]."""
    return int((input_ids[0] == image_token_id(model)).sum())
