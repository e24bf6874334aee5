"""Budget fitting shared by the visual-token methods: how many visual tokens a plan may keep.

Every token method turns the budget into a kept count the same way: the largest count whose
decoder-block `flops_ratio` (adabench.models.flops, on this prompt) is ≤ the budget; a budget
that even the method's smallest selection exceeds is a UserError naming the minimum.
"""

from __future__ import annotations

from collections.abc import Callable

from adabench.errors import UserError
from adabench.models.flops import flops_ratio
from adabench.models.plan import Plan

TOLERANCE = 1e-12


def largest_fitting(
    ratio: Callable[[int], float], low: int, high: int, budget: float
) -> int | None:
    """Returns the largest k in [low, high] with ratio(k) ≤ budget (`ratio` non-decreasing in k),
    or None when even ratio(low) exceeds it. Bisection: O(log(high − low)) calls."""
    if ratio(low) > budget + TOLERANCE:
        return None
    if ratio(high) <= budget + TOLERANCE:
        return high
    lo, hi = low, high  # ratio(lo) ≤ budget < ratio(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ratio(mid) <= budget + TOLERANCE else (lo, mid)
    return lo


def before_llm_ratio(config, base: Plan, seq_len: int, n_visual: int, kept: int) -> float:
    """Returns flops_ratio of `base` when only `kept` of the `n_visual` visual tokens of a
    `seq_len`-token prompt reach the LLM (reduced before it: downsample, VisionZip)."""
    removed = n_visual - kept
    return flops_ratio(config, seq_len - removed, base.with_tokens(visual_tokens_removed=removed))


def parse_fraction(method: str, arg: str, value, low_open: bool = False) -> float | None:
    """Returns `value` as a fraction in [0, 1] ((0, 1] with `low_open`); None stays None.
    Anything else is a UserError naming the method, the argument and the range."""
    if value is None:
        return None
    span = "(0, 1]" if low_open else "[0, 1]"
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UserError(
            f"{method} argument {arg} must be a fraction in {span}, got {value!r}"
        ) from None
    if not (0.0 < x <= 1.0 if low_open else 0.0 <= x <= 1.0):
        raise UserError(f"{method} argument {arg} must be a fraction in {span}, got {x}")
    return x


def parse_block(method: str, value, num_layers: int) -> int:
    """Returns `value` as a block index in [1, N − 1] (blocks before it rank the tokens)."""
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise UserError(
            f"{method} argument k must be an integer block index, got {value!r}"
        ) from None
    if not 1 <= k <= num_layers - 1:
        raise UserError(
            f"{method} argument k must be in [1, {num_layers - 1}] (blocks before it rank the "
            f"tokens), got {k}"
        )
    return k


def unreachable(
    method: str, budget: float, seq_len: int, n_visual: int, minimum: float
) -> UserError:
    """Returns the error for a budget below what `method` reaches on one prompt."""
    return UserError(
        f"budget {budget} is below what {method!r} can reach on a {seq_len}-token prompt with "
        f"{n_visual} visual tokens: the minimum is {minimum:.4g}"
    )


def fitted_count(
    method: str,
    keep: float | None,
    fixed: int | None,
    ratio: Callable[[int], float],
    high: int,
    budget: float,
    seq_len: int,
    n_visual: int,
) -> int:
    """Returns a token method's count on one prompt (kept tokens, or a kept grid side): `fixed`,
    the count its `keep` argument gives, when `keep` is set (a UserError when ratio(fixed) is
    over the budget), else the largest k in [1, high] with ratio(k) ≤ budget (a UserError
    naming the minimum when even k = 1 is over it)."""
    if keep is not None:
        if ratio(fixed) > budget + 1e-9:
            raise UserError(
                f"{method} with keep={keep} gives flops_ratio {ratio(fixed):.4g} > budget "
                f"{budget} on a {seq_len}-token prompt; lower keep or drop it"
            )
        return fixed
    count = largest_fitting(ratio, 1, high, budget)
    if count is None:
        raise unreachable(method, budget, seq_len, n_visual, ratio(1))
    return count
