"""`downsample`: the image-downsampling control (VTC-Bench, Liao et al., arXiv 2510.07143).

VTC-Bench found that plainly lowering the image resolution before the vision encoder beats many
visual-token compression methods; every token method is compared with it at the same budget
(adabench.analysis.findings). LLaVA's CLIP tower has a fixed input size, so the reduction is
done where its effect on the LLM is the same: the projected s×s visual-token grid is
area-downsampled to a smaller k×k grid (adaptive average pooling: each output token is the
mean of the tokens whose cells it covers, what an area resize of the image does to its
patches), and the LLM reads k² visual tokens.

k: `--method-arg keep=F` keeps the largest k with k² ≤ F·s²; without `keep`, k is the largest
side whose decoder-block `flops_ratio` on this prompt is ≤ the budget. Departure (documented in
docs/token_methods.md): the vision tower still runs at full resolution (its FLOPs are outside
the ratio); resizing the image itself would change the tower's input size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from adabench.errors import UserError
from adabench.models.baselines import TokenChoice, TokenMethod, visual_count
from adabench.models.baselines.token_budget import (
    before_llm_ratio,
    fitted_count,
    parse_fraction,
)
from adabench.models.flops import num_image_tokens
from adabench.models.methods import register
from adabench.models.plan import Plan


def grid_side(n_visual: int) -> int:
    """Returns the side s of the square s×s visual-token grid of `n_visual` tokens (UserError if
    the count is not a square: only square grids are downsampled)."""
    side = math.isqrt(n_visual)
    if side * side != n_visual:
        raise UserError(f"downsample needs a square visual-token grid, got {n_visual} tokens")
    return side


def area_downsample(features: torch.Tensor, side: int) -> torch.Tensor:
    """Returns [1, side², D]: the [1, s², D] raster-order token grid area-averaged to side×side
    (adaptive average pooling over the s×s grid), in raster order."""
    s = grid_side(features.shape[1])
    grid = features[0].reshape(s, s, -1).permute(2, 0, 1)[None].float()  # [1, D, s, s]
    pooled = F.adaptive_avg_pool2d(grid, side)  # [1, D, side, side]
    return pooled[0].flatten(1).T[None].to(features.dtype)


@register
class Downsample(TokenMethod):
    NAME = "downsample"
    WRAPPERS = ("llava",)
    WRAPPERS_WHY = (
        "it pools one image's square visual-token grid (LLaVA-NeXT / OneVision tile the image "
        "with image-newline tokens, Idefics3 tiles it, Qwen-VL's grid follows the image's shape)"
    )
    KIND = "image"
    PAPER = "VTC-Bench (Liao et al., arXiv 2510.07143): image downsampling control"
    VARIES = "image resolution (visual-token grid, before the LLM)"
    DESCRIPTION = (
        "area-downsample the s×s visual-token grid to the largest k×k that meets the budget"
    )
    MIN_BUDGET_TEXT = "per prompt: a 1×1 grid (the error names it)"
    ARGS = {"keep": "fraction of visual tokens kept, (0, 1] (default: the most that fits)"}

    def __init__(self, model, budget, args=None, seed=0) -> None:
        super().__init__(model, budget, args, seed)
        self.keep = parse_fraction(self.NAME, "keep", self.args.get("keep"), low_open=True)
        self.side = grid_side(num_image_tokens(model.config))

    @classmethod
    def min_budget(cls, model) -> float:
        """Returns a lower bound over prompts: a 1×1 grid and one text token."""
        n = num_image_tokens(model.config)
        layers = model.config.text_config.num_hidden_layers
        return before_llm_ratio(model.config, Plan.full(layers), n + 1, n, 1)

    @classmethod
    def prompt_floor(cls, config, seq_len: int, n_visual: int, args: dict) -> float:
        """Returns the smallest flops_ratio on a `seq_len`-token prompt: a 1×1 grid, or the
        `keep` grid when given."""
        keep = parse_fraction(cls.NAME, "keep", args.get("keep"), low_open=True)
        side = 1 if keep is None else _side_for(grid_side(n_visual), keep)
        base = Plan.full(config.text_config.num_hidden_layers)
        return before_llm_ratio(config, base, seq_len, n_visual, side * side)

    def choose(self, input_ids, image_features, extra_tokens=0, base_plan=None) -> TokenChoice:
        """Returns the downsampled grid replacing the image features."""
        base = base_plan or Plan.full(self.num_layers)
        n_visual = visual_count(self.model, input_ids, image_features)
        seq_len = input_ids.shape[1] + extra_tokens
        side = self.grid_for(base, seq_len, n_visual)
        pooled = area_downsample(image_features, side)
        info = {"visual_kept": side * side, "grid_side": side}
        return TokenChoice(
            image_features=pooled, visual_tokens_removed=n_visual - side * side, info=info
        )

    def grid_for(self, base: Plan, seq_len: int, n_visual: int) -> int:
        """Returns the kept grid side on this prompt: from `keep`, else the largest that fits."""
        s = grid_side(n_visual)

        def ratio(side: int) -> float:
            return before_llm_ratio(self.model.config, base, seq_len, n_visual, side * side)

        fixed = None if self.keep is None else _side_for(s, self.keep)
        return fitted_count(self.NAME, self.keep, fixed, ratio, s, self.budget, seq_len, n_visual)


def _side_for(side: int, keep: float) -> int:
    """Returns the largest k ≥ 1 with k² ≤ keep · side²."""
    return max(1, math.isqrt(math.floor(keep * side * side + 1e-9)))
