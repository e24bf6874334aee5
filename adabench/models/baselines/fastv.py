"""`fastv`: drop the least-attended visual tokens inside the LLM (FastV, Chen et al., arXiv 2403.06764).

After block K (`k`, default 2) the R visual tokens with the lowest attention from the last
prompt token are dropped; the executor (adabench.models.execution.prefill) ranks them with the
attention of the last block that runs before K, computed for that one query row, so no
attention implementation is forced, and the KV cache of later blocks holds only kept tokens.

R: `--method-arg r=0.5` drops ⌊r·n_visual⌋ tokens; without `r`, R is the smallest count whose
decoder-block `flops_ratio` (adabench.models.flops, on this prompt) is ≤ the budget, i.e. the
largest ratio that fits. A budget that even dropping every visual token cannot meet on this
prompt is a UserError naming the minimum for that prompt; `min_budget` is a lower bound over
all prompts (one text token, k = 1), checked when the method is built.
"""

from __future__ import annotations

import math

from adabench.errors import UserError
from adabench.models.baselines import TokenChoice, TokenMethod
from adabench.models.flops import flops_ratio, num_image_tokens
from adabench.models.methods import register
from adabench.models.plan import Plan

DEFAULT_K = 2


def fastv_plan(base: Plan, k: int, removed: int) -> Plan:
    """Returns `base` with FastV at block `k` dropping `removed` visual tokens."""
    return base.with_tokens(fastv_layer=k, fastv_removed=removed)


def removed_for_budget(
    config, base: Plan, seq_len: int, n_visual: int, k: int, budget: float
) -> int | None:
    """Returns the smallest R in [0, n_visual] with flops_ratio(base + FastV(k, R)) ≤ budget on a
    `seq_len`-token prompt (the ratio falls as R grows), or None if even R = n_visual exceeds it."""

    def ratio(r: int) -> float:
        return flops_ratio(config, seq_len, fastv_plan(base, k, r) if r else base)

    if ratio(n_visual) > budget + 1e-12:
        return None
    low, high = 0, n_visual  # invariant: ratio(high) ≤ budget
    while low < high:
        mid = (low + high) // 2
        if ratio(mid) <= budget + 1e-12:
            high = mid
        else:
            low = mid + 1
    return high


def _parse_k(value, num_layers: int) -> int:
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise UserError(f"fastv argument k must be an integer block index, got {value!r}") from None
    if not 1 <= k <= num_layers - 1:
        raise UserError(
            f"fastv argument k must be in [1, {num_layers - 1}] (blocks before it rank the tokens), got {k}"
        )
    return k


def _parse_r(value) -> float | None:
    if value is None:
        return None
    try:
        r = float(value)
    except (TypeError, ValueError):
        raise UserError(f"fastv argument r must be a fraction in [0, 1], got {value!r}") from None
    if not 0.0 <= r <= 1.0:
        raise UserError(f"fastv argument r must be a fraction in [0, 1], got {r}")
    return r


@register
class FastV(TokenMethod):
    KIND = "tokens"
    PAPER = "FastV (Chen et al., ECCV 2024, arXiv 2403.06764)"
    NAME = "fastv"
    VARIES = "visual tokens (inside the LLM, per input)"
    DESCRIPTION = (
        "after block k drop the R visual tokens least attended by the last prompt token; "
        "R from the budget unless r is given"
    )
    MIN_BUDGET_TEXT = (
        "per prompt: blocks up to k in full + text tokens after k (the error names it)"
    )
    ARGS = {
        "k": "block index from which dropped tokens are gone (default 2)",
        "r": "fraction of visual tokens dropped, [0, 1] (default: the least that meets the budget)",
    }

    def __init__(self, model, budget, args=None, seed=0) -> None:
        super().__init__(model, budget, args, seed)
        self.config = model.config
        self.k = _parse_k(self.args.get("k", DEFAULT_K), self.num_layers)
        self.r = _parse_r(self.args.get("r"))
        floor = _lower_bound(self.config, self.k)
        if self.budget + 1e-9 < floor:
            raise UserError(
                f"budget {self.budget} is below what 'fastv' (k={self.k}) can reach on {model.name}: "
                f"the minimum is {floor:.4g} (more on longer prompts)"
            )

    @classmethod
    def min_budget(cls, model) -> float:
        """Returns a lower bound over prompts and k: every visual token dropped after block 1 of a
        prompt with a single text token (real prompts need more; see `choose`)."""
        return _lower_bound(model.config, 1)

    def choose(self, input_ids, image_features, extra_tokens=0, base_plan=None) -> TokenChoice:
        """Returns the FastV selection: drop the lowest-attention visual tokens after block K."""
        n_visual, removed = self.per_prompt(
            input_ids, image_features, extra_tokens, base_plan, self._removed
        )
        return TokenChoice(
            fastv_layer=self.k, fastv_removed=removed, info={"fastv_removed": removed}
        )

    @classmethod
    def prompt_floor(cls, config, seq_len: int, n_visual: int, args: dict) -> float:
        """Returns the smallest flops_ratio FastV reaches alone on a `seq_len`-token prompt with
        `n_visual` visual tokens: every visual token dropped after block k, or ⌊r·n_visual⌋
        with arg r (a fixed count). A budget below it cannot be met on that prompt."""
        layers = config.text_config.num_hidden_layers
        k = _parse_k(args.get("k", DEFAULT_K), layers)
        r = _parse_r(args.get("r"))
        removed = n_visual if r is None else math.floor(r * n_visual + 1e-9)
        return flops_ratio(config, seq_len, fastv_plan(Plan.full(layers), k, removed))

    def _removed(self, base: Plan, seq_len: int, n_visual: int) -> int:
        if self.r is not None:
            removed = math.floor(self.r * n_visual + 1e-9)
            got = flops_ratio(self.config, seq_len, fastv_plan(base, self.k, removed))
            if got > self.budget + 1e-9:
                raise UserError(
                    f"fastv with r={self.r} gives flops_ratio {got:.4g} > budget {self.budget} on a "
                    f"{seq_len}-token prompt; raise r, raise the budget or drop r to fit the budget"
                )
            return removed
        removed = removed_for_budget(self.config, base, seq_len, n_visual, self.k, self.budget)
        if removed is None:
            minimum = flops_ratio(self.config, seq_len, fastv_plan(base, self.k, n_visual))
            raise UserError(
                f"budget {self.budget} is below what 'fastv' (k={self.k}) can reach on a {seq_len}-token "
                f"prompt with {n_visual} visual tokens: the minimum is {minimum:.4g}"
            )
        return removed


def _lower_bound(config, k: int) -> float:
    n_visual = num_image_tokens(config)
    layers = config.text_config.num_hidden_layers
    return flops_ratio(config, n_visual + 1, fastv_plan(Plan.full(layers), k, n_visual))
