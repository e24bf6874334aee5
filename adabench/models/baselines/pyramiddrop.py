"""`pyramiddrop`: visual tokens dropped in stages inside the LLM (PyramidDrop, Xing et al.,
arXiv 2410.17247; released code Cooperx521/PyramidDrop, llava/model/modeling_llama_pdrop.py).

The decoder is split into S = 4 stages at blocks ⌊N·j/4⌋, j = 1..3 (8, 16, 24 on a 32-block
LLaVA); entering stage j the visual tokens are cut to ⌊n·λʲ⌋, keeping those with the highest
attention from the last prompt token, computed with the stage's first block's own q/k on its
input (the released `pdrop_rank_drop`: that block's input norm, q/k projections and rotary;
softmax over every key, mean over heads), so each stage's first block already runs on the kept
tokens (adabench/models/execution.py, rule "pyramid"). Later blocks' KV caches hold only the
kept tokens; the FLOPs count each stage on its own length (adabench/models/flops.py).

λ: `--method-arg lambda=0.5` (the paper's default); without it, the largest λ whose
decoder-block `flops_ratio` on this prompt is ≤ the budget. `layers=8,16,24` sets the stage
blocks. Departure: kept tokens keep their original rotary positions (as this repo's FastV does);
the released code renumbers the positions after each drop.
"""

from __future__ import annotations

import math

from adabench.errors import UserError
from adabench.models.baselines import TokenChoice, TokenMethod
from adabench.models.baselines.token_budget import parse_fraction, unreachable
from adabench.models.flops import flops_ratio, num_image_tokens
from adabench.models.methods import register
from adabench.models.plan import Plan, TokenDrop

STAGES = 4
SEARCH_STEPS = 40


def stage_layers(num_layers: int) -> tuple[int, ...]:
    """Returns the first block of stages 2..4: ⌊N·j/4⌋ for j = 1, 2, 3 (distinct, ≥ 1)."""
    return tuple(sorted({max(1, num_layers * j // STAGES) for j in range(1, STAGES)}))


def stage_drops(layers: tuple[int, ...], n_visual: int, lam: float) -> tuple[TokenDrop, ...]:
    """Returns the drops that cut the visual tokens to ⌊n·λʲ⌋ entering stage j (the released
    code's `int(n · ratio_list[j])`), one TokenDrop per stage block."""
    kept = [n_visual] + [math.floor(n_visual * lam**j + 1e-9) for j in range(1, len(layers) + 1)]
    return tuple(
        TokenDrop(layer, kept[j] - kept[j + 1], "pyramid") for j, layer in enumerate(layers)
    )


def pyramid_plan(base: Plan, layers: tuple[int, ...], n_visual: int, lam: float) -> Plan:
    """Returns `base` with PyramidDrop's stages at `layers` for ratio λ."""
    return base.with_tokens(drops=stage_drops(layers, n_visual, lam))


def lambda_for_budget(config, base, layers, seq_len: int, n_visual: int, budget: float):
    """Returns the largest λ in [0, 1] (to 1e-12, by bisection) whose plan's flops_ratio on a
    `seq_len`-token prompt is ≤ `budget`, or None when even λ = 0 (every visual token dropped at
    the first stage) exceeds it. The ratio rises with λ."""

    def ratio(lam: float) -> float:
        return flops_ratio(config, seq_len, pyramid_plan(base, layers, n_visual, lam))

    if ratio(0.0) > budget + 1e-12:
        return None
    if ratio(1.0) <= budget + 1e-12:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(SEARCH_STEPS):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(mid) <= budget + 1e-12 else (lo, mid)
    return lo


def _parse_layers(value, num_layers: int) -> tuple[int, ...]:
    if value is None:
        return stage_layers(num_layers)
    try:
        layers = tuple(sorted({int(x) for x in str(value).split(",") if x.strip()}))
    except ValueError:
        raise UserError(
            f"pyramiddrop argument layers must be block indices like 8,16,24, got {value!r}"
        ) from None
    if not layers or not all(1 <= x <= num_layers - 1 for x in layers):
        raise UserError(
            f"pyramiddrop argument layers must be block indices in [1, {num_layers - 1}], got {value!r}"
        )
    return layers


@register
class PyramidDrop(TokenMethod):
    NAME = "pyramiddrop"
    KIND = "tokens"
    PAPER = "PyramidDrop (Xing et al., CVPR 2025, arXiv 2410.17247)"
    VARIES = "visual tokens (inside the LLM, staged, per input)"
    DESCRIPTION = (
        "4 stages; entering stage j keep the ⌊n·λʲ⌋ visual tokens most attended by the last "
        "prompt token (the stage block's own attention); λ from the budget unless given"
    )
    MIN_BUDGET_TEXT = (
        "per prompt: every visual token dropped at the first stage (the error names it)"
    )
    ARGS = {
        "lambda": "visual tokens kept per stage, [0, 1] (default: the largest that meets the budget)",
        "layers": "first blocks of stages 2..4, comma-separated (default ⌊N·j/4⌋)",
    }

    def __init__(self, model, budget, args=None, seed=0) -> None:
        super().__init__(model, budget, args, seed)
        self.config = model.config
        self.layers = _parse_layers(self.args.get("layers"), self.num_layers)
        self.lam = parse_fraction(self.NAME, "lambda", self.args.get("lambda"))

    @classmethod
    def min_budget(cls, model) -> float:
        """Returns a lower bound over prompts: every visual token dropped at block 1, one text
        token."""
        n = num_image_tokens(model.config)
        layers = model.config.text_config.num_hidden_layers
        return flops_ratio(model.config, n + 1, pyramid_plan(Plan.full(layers), (1,), n, 0.0))

    @classmethod
    def prompt_floor(cls, config, seq_len: int, n_visual: int, args: dict) -> float:
        """Returns the smallest flops_ratio on a `seq_len`-token prompt: λ = 0, or the given λ."""
        num_layers = config.text_config.num_hidden_layers
        layers = _parse_layers(args.get("layers"), num_layers)
        lam = parse_fraction(cls.NAME, "lambda", args.get("lambda")) or 0.0
        return flops_ratio(
            config, seq_len, pyramid_plan(Plan.full(num_layers), layers, n_visual, lam)
        )

    def choose(self, input_ids, image_features, extra_tokens=0, base_plan=None) -> TokenChoice:
        """Returns the staged drops for this prompt (λ from the budget unless given)."""
        n_visual, lam = self.per_prompt(
            input_ids, image_features, extra_tokens, base_plan, self._lambda
        )
        drops = stage_drops(self.layers, n_visual, lam)
        info = {"pyramid_lambda": lam, "visual_kept": n_visual - sum(d.removed for d in drops)}
        return TokenChoice(drops=drops, info=info)

    def _lambda(self, base: Plan, seq_len: int, n_visual: int) -> float:
        if self.lam is not None:
            got = flops_ratio(
                self.config, seq_len, pyramid_plan(base, self.layers, n_visual, self.lam)
            )
            if got > self.budget + 1e-9:
                raise UserError(
                    f"pyramiddrop with lambda={self.lam} gives flops_ratio {got:.4g} > budget "
                    f"{self.budget} on a {seq_len}-token prompt; lower lambda or drop it"
                )
            return self.lam
        lam = lambda_for_budget(self.config, base, self.layers, seq_len, n_visual, self.budget)
        if lam is None:
            minimum = flops_ratio(
                self.config, seq_len, pyramid_plan(base, self.layers, n_visual, 0.0)
            )
            raise unreachable(self.NAME, self.budget, seq_len, n_visual, minimum)
        return lam
