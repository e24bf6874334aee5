"""`dart`: duplication-aware visual-token dropping inside the LLM (DART, Wen et al., arXiv
2502.11494, "Stop Looking for Important Tokens in Multimodal Language Models: Duplication
Matters More"; the LightCompress port of its `get_retained_image_token`).

Before block K (`k`, default 2): pivots are the P visual tokens and the P text tokens after the
image with the largest L1 norm of block K−1's keys (rotated, as its attention computes them);
then, pivot by pivot (image pivots, then text pivots, each in position order — the released
code iterates a Python set), the visual tokens least cosine-similar to the pivot in the hidden
states entering block K (after the final norm) are kept, ⌈(kept − P) / (2P)⌉ per pivot, until
the kept count is reached; the image pivots are kept too (adabench/models/execution.py,
`dart_keep`). Later blocks' KV caches hold only the kept tokens.

P = 4 on 576 visual tokens, scaled to the model's count (at least 1). Kept count:
`--method-arg keep=F` keeps ⌊F·n⌋ (the paper's 22.2 % is keep=0.222); without it, the most whose
decoder-block `flops_ratio` on this prompt is ≤ the budget. Departure: the released code keeps
P + 2P·⌈…⌉ tokens (a few more than asked); here the last pivot takes only what is left, so the
kept count is exact and the budget holds.
"""

from __future__ import annotations

import math

from adabench.models.baselines import TokenChoice, TokenMethod
from adabench.models.baselines.token_budget import (
    fitted_count,
    parse_block,
    parse_fraction,
)
from adabench.models.flops import flops_ratio, num_image_tokens
from adabench.models.methods import register
from adabench.models.plan import Plan, TokenDrop

DEFAULT_K = 2


def dart_plan(base: Plan, k: int, removed: int) -> Plan:
    """Returns `base` with DART dropping `removed` visual tokens before block `k`."""
    return base.with_tokens(drops=(TokenDrop(k, removed, "dart"),) if removed else ())


@register
class Dart(TokenMethod):
    NAME = "dart"
    KIND = "tokens"
    PAPER = "DART (Wen et al., arXiv 2502.11494)"
    VARIES = "visual tokens (inside the LLM, per input)"
    DESCRIPTION = (
        "before block k keep key-norm pivot tokens and the visual tokens least similar to "
        "them (drop duplicates); kept count from the budget unless keep is given"
    )
    MIN_BUDGET_TEXT = "per prompt: one visual token left after block k (the error names it)"
    ARGS = {
        "k": "block before which duplicates are dropped (default 2)",
        "keep": "fraction of visual tokens kept, (0, 1] (default: the most that fits)",
    }

    def __init__(self, model, budget, args=None, seed=0) -> None:
        super().__init__(model, budget, args, seed)
        self.config = model.config
        self.k = parse_block(self.NAME, self.args.get("k", DEFAULT_K), self.num_layers)
        self.keep = parse_fraction(self.NAME, "keep", self.args.get("keep"), low_open=True)

    @classmethod
    def min_budget(cls, model) -> float:
        """Returns a lower bound over prompts: one visual token left after block 1."""
        n = num_image_tokens(model.config)
        layers = model.config.text_config.num_hidden_layers
        return flops_ratio(model.config, n + 1, dart_plan(Plan.full(layers), 1, n - 1))

    @classmethod
    def prompt_floor(cls, config, seq_len: int, n_visual: int, args: dict) -> float:
        """Returns the smallest flops_ratio on a `seq_len`-token prompt: one visual token kept
        after block k (or ⌊keep·n⌋ with `keep`)."""
        layers = config.text_config.num_hidden_layers
        k = parse_block(cls.NAME, args.get("k", DEFAULT_K), layers)
        keep = parse_fraction(cls.NAME, "keep", args.get("keep"), low_open=True)
        kept = 1 if keep is None else max(1, math.floor(keep * n_visual + 1e-9))
        return flops_ratio(config, seq_len, dart_plan(Plan.full(layers), k, n_visual - kept))

    def choose(self, input_ids, image_features, extra_tokens=0, base_plan=None) -> TokenChoice:
        """Returns the DART drop before block k for this prompt."""
        n_visual, kept = self.per_prompt(
            input_ids, image_features, extra_tokens, base_plan, self._kept
        )
        drops = (TokenDrop(self.k, n_visual - kept, "dart"),) if kept < n_visual else ()
        return TokenChoice(drops=drops, info={"visual_kept": kept})

    def _kept(self, base: Plan, seq_len: int, n_visual: int) -> int:
        def ratio(kept: int) -> float:
            return flops_ratio(self.config, seq_len, dart_plan(base, self.k, n_visual - kept))

        fixed = None if self.keep is None else max(1, math.floor(self.keep * n_visual + 1e-9))
        return fitted_count(
            self.NAME, self.keep, fixed, ratio, n_visual, self.budget, seq_len, n_visual
        )
