"""`visionzip`: dominant + contextual visual tokens before the LLM (VisionZip, Yang et al.,
arXiv 2412.04467; released code dvlab-research/VisionZip).

1. Attention: the vision encoder layer that produces LLaVA's feature layer (VisionZip reads
   `attentions[-2]` beside `hidden_states[-2]`); CLS→patch attention softmax(q_cls·kᵀ/√hd) per
   head, summed over heads (the ranking of the mean), from that layer's own q/k projections,
   captured by forward hooks while the runner computes image features (as PruMerge does,
   adabench/models/baselines/prumerge.py), so the tower is not run again.
2. Dominant tokens: the D patches with the highest CLS attention, kept in raster order.
3. Contextual tokens: among the rest, C targets taken uniformly (every ⌊R/C⌋-th, the first C);
   each other token joins the target whose key metric (that layer's keys averaged over heads,
   L2-normalised) has the largest dot product; a contextual token is target + mean of its
   joined tokens (the released code's sum, not an average of all).
4. The LLM reads [dominant (raster order), contextual (target order)] through the projector.

Counts: K kept tokens split as VisionZip's 54 + 10 of 64: C = round(10·K/64), D = K − C.
K: `--method-arg keep=F` keeps ⌊F·n⌋ (at least 1); without it, the largest K whose decoder-block
`flops_ratio` on this prompt is ≤ the budget. Departures: CLS is not passed to the LLM (LLaVA's
"default" feature strategy); only that strategy is supported.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from adabench.models.baselines import TokenChoice, visual_count
from adabench.models.baselines.prumerge import PruMerge, cls_attention
from adabench.models.baselines.token_budget import (
    before_llm_ratio,
    fitted_count,
    parse_fraction,
)
from adabench.models.methods import register
from adabench.models.plan import Plan


def split_counts(kept: int) -> tuple[int, int]:
    """Returns (dominant, contextual) for `kept` tokens: VisionZip's 54 : 10 of 64."""
    contextual = round(10 * kept / 64)
    return kept - contextual, contextual


def dominant_indices(cls_attn: torch.Tensor, dominant: int) -> torch.Tensor:
    """Returns the `dominant` patch indices with the highest CLS attention, in raster order."""
    return cls_attn.float().topk(dominant).indices.sort().values


def contextual_merge(
    features: torch.Tensor, metric: torch.Tensor, rest: torch.Tensor, contextual: int
) -> torch.Tensor:
    """Returns [contextual, C] contextual tokens from the patches `rest` (raster order):
    uniform targets, every other token joined to its most similar target, target + mean."""
    if contextual == 0 or rest.numel() == 0:
        return features[:0]
    m = F.normalize(metric[rest].float(), dim=-1)
    step = max(1, rest.numel() // contextual)
    targets = torch.arange(0, rest.numel(), step, device=rest.device)[:contextual]
    others = torch.ones(rest.numel(), dtype=torch.bool, device=rest.device)
    others[targets] = False
    x = features[rest].float()
    if not others.any():
        return x[targets].to(features.dtype)
    assign = (m[others] @ m[targets].T).argmax(1)  # [n_others] into targets
    one_hot = F.one_hot(assign, targets.numel()).float()  # [n_others, C]
    counts = one_hot.sum(0).clamp_min(1)[:, None]
    merged = x[targets] + (one_hot.T @ x[others]) / counts
    return merged.to(features.dtype)


@register
class VisionZip(PruMerge):
    NAME = "visionzip"
    KIND = "tokens"
    PAPER = "VisionZip (Yang et al., CVPR 2025, arXiv 2412.04467)"
    VARIES = "visual tokens (before the LLM, per input)"
    DESCRIPTION = (
        "keep the top-CLS-attention (dominant) patches and merge the rest into a few "
        "contextual tokens by key similarity"
    )
    MIN_BUDGET_TEXT = "per prompt: one visual token left (the error names it)"
    ARGS = {"keep": "fraction of visual tokens kept, (0, 1] (default: the most that fits)"}

    def __init__(self, model, budget, args=None, seed=0) -> None:
        super().__init__(model, budget, args, seed)
        self.keep = parse_fraction(self.NAME, "keep", self.args.get("keep"), low_open=True)

    def attention_layer(self, n_encoder: int) -> int:
        """Returns the encoder layer whose output is the feature layer (VisionZip's choice)."""
        return max(self.feature_layers[-1] % (n_encoder + 1) - 1, 0)

    @classmethod
    def prompt_floor(cls, config, seq_len: int, n_visual: int, args: dict) -> float:
        """Returns the smallest flops_ratio on a `seq_len`-token prompt: one token kept, or
        ⌊keep·n⌋ with `keep`."""
        keep = parse_fraction(cls.NAME, "keep", args.get("keep"), low_open=True)
        kept = 1 if keep is None else max(1, math.floor(keep * n_visual + 1e-9))
        base = Plan.full(config.text_config.num_hidden_layers)
        return before_llm_ratio(config, base, seq_len, n_visual, kept)

    def choose(self, input_ids, image_features, extra_tokens=0, base_plan=None) -> TokenChoice:
        """Returns the VisionZip selection (dominant + contextual tokens, projected)."""
        hidden, q, k = self._captured(image_features)
        attn, keys = cls_attention(q, k, self.vision_heads)
        metric = keys.view(keys.shape[0], self.vision_heads, -1).mean(1)
        feats = torch.cat([hidden[i][0, 1:] for i in self.feature_layers], dim=-1)
        n_visual = visual_count(self.model, input_ids, image_features)
        kept = self.kept_for(base_plan, input_ids.shape[1] + extra_tokens, n_visual)
        dominant, contextual = split_counts(kept)
        dom = dominant_indices(attn, dominant)
        rest_mask = torch.ones(feats.shape[0], dtype=torch.bool, device=feats.device)
        rest_mask[dom] = False
        rest = torch.nonzero(rest_mask).squeeze(1)
        tokens = torch.cat([feats[dom], contextual_merge(feats, metric, rest, contextual)])
        projected = self.projector(tokens[None]).to(image_features.dtype)
        info = {"visual_kept": kept, "visual_dominant": dominant}
        return TokenChoice(
            image_features=projected, visual_tokens_removed=n_visual - kept, info=info
        )

    def kept_for(self, base_plan: Plan | None, seq_len: int, n_visual: int) -> int:
        """Returns K on this prompt: ⌊keep·n⌋ with `keep`, else the largest that fits."""
        base = base_plan or Plan.full(self.num_layers)

        def ratio(kept: int) -> float:
            return before_llm_ratio(self.model.config, base, seq_len, n_visual, kept)

        fixed = None if self.keep is None else max(1, math.floor(self.keep * n_visual + 1e-9))
        return fitted_count(
            self.NAME, self.keep, fixed, ratio, n_visual, self.budget, seq_len, n_visual
        )
