"""Static baselines (head-prune) and visual-token methods (fastv, prumerge, prumerge+,
downsample, visionzip, pyramiddrop, dart).

Token methods share one interface, `TokenMethod.choose`, so a combination `a+b`
(adabench.models.combine) can add their token selection to any block/head method's plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from adabench.models.methods import Method, Request
from adabench.models.plan import Plan, TokenDrop


@dataclass
class TokenChoice:
    """The visual-token selection for one request: what to add to a plan and what replaces the image.

    `image_features` [1, kept, D] replaces the projected visual tokens before the LLM (PruMerge);
    `visual_tokens_removed` is how many fewer image tokens the LLM sees; `fastv_layer` /
    `fastv_removed` drop tokens inside the LLM (FastV); `drops` are staged drops inside the LLM
    (PyramidDrop, DART: `adabench.models.plan.TokenDrop`)."""

    image_features: torch.Tensor | None = None
    visual_tokens_removed: int = 0
    fastv_layer: int | None = None
    fastv_removed: int = 0
    drops: tuple[TokenDrop, ...] = ()
    info: dict = field(default_factory=dict)

    def apply(self, plan: Plan) -> Plan:
        """Returns `plan` with this token selection added."""
        return plan.with_tokens(
            visual_tokens_removed=self.visual_tokens_removed,
            fastv_layer=self.fastv_layer,
            fastv_removed=self.fastv_removed,
            drops=self.drops,
        )


class TokenMethod(Method):
    """A method that only selects visual tokens; every block, head and neuron runs.

    Standalone, the budget caps the token selection; inside a combination the token method is
    built at budget 1.0 with its default arguments and the block/head method takes the budget."""

    KIND = "tokens"

    def choose(
        self,
        input_ids: torch.Tensor,
        image_features: torch.Tensor,
        extra_tokens: int = 0,
        base_plan: Plan | None = None,
    ) -> TokenChoice:
        """Returns the token selection for one prompt. `extra_tokens` are embeddings appended after
        the prompt (AdaLLaVA's latency token); `base_plan` is the block/head plan it joins."""
        raise NotImplementedError

    def per_prompt(self, input_ids, image_features, extra_tokens, base_plan, pick):
        """Returns (visual tokens of the prompt, `pick(base plan, sequence length, visual
        tokens)`), memoised per (sequence length, visual tokens, base blocks): the budget search
        is pure Python and prompts repeat their shapes. `base_plan` None: the full model."""
        base = base_plan or Plan.full(self.num_layers)
        n_visual = visual_count(self.model, input_ids, image_features)
        seq_len = input_ids.shape[1] + extra_tokens
        cache = self.__dict__.setdefault("_per_prompt", {})
        key = (seq_len, n_visual, base.layers)
        if key not in cache:
            cache[key] = pick(base, seq_len, n_visual)
        return n_visual, cache[key]

    def request(self, sample_id, input_ids, image_features) -> Request:
        """Returns a full-model plan with this method's token selection added."""
        choice = self.choose(input_ids, image_features)
        return Request(
            plan=choice.apply(Plan.full(self.num_layers)),
            image_features=choice.image_features,
            info=choice.info,
        )


def visual_count(model, input_ids: torch.Tensor, image_features: torch.Tensor | None = None) -> int:
    """Returns the number of image tokens in `input_ids` [1, T]. With the request's
    `image_features` (one row per image token, whatever the layout) the count is read off their
    shape, so no GPU→host sync happens inside the timed region; else the ids are counted."""
    if image_features is not None:
        return image_features.numel() // image_features.shape[-1]
    return int((input_ids[0] == model.config.image_token_id).sum())
