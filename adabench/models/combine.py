"""Combinations `a+b`: one token method (fastv, prumerge(+), downsample, visionzip, pyramiddrop,
dart) with one block/head method.

Convention (docs/adallava.md §8, the paper's tables): the block/head method takes the budget; the
token method runs at its own default (fastv k = 2, r = 0.5; prumerge adaptive, no budget cap;
downsample, visionzip and dart keep = 0.5; pyramiddrop λ = 0.5)
and its token selection is added to every plan the block/head method makes (static plans
directly, AdaLLaVA's `decide` plans by wrapping the callback). The costs then multiply block by
block: each block that runs costs (its kept fraction of heads and neurons) × (its cost on the
token-reduced sequence), so for PruMerge flops_ratio = ratio(block) × ratio(token) exactly and
for FastV the blocks before K count at full length. Token arguments (`k`, `r`) pass through
`--method-arg`. Either order is accepted; the combination's NAME is "block+token".
"""

from __future__ import annotations

from adabench.errors import UserError, did_you_mean
from adabench.models.baselines import TokenMethod
from adabench.models.methods import METHODS, Method, Request, build_registered
from adabench.models.plan import Plan

TOKEN_METHODS = ("fastv", "prumerge", "prumerge+", "downsample", "visionzip", "pyramiddrop", "dart")
BLOCK_METHODS = (
    "full",
    "layer-drop",
    "early-exit",
    "random-skip",
    "adallava-l",
    "adallava-h",
    "head-prune",
)
TOKEN_DEFAULTS = {
    "fastv": {"r": "0.5"},
    "downsample": {"keep": "0.5"},
    "visionzip": {"keep": "0.5"},
    "pyramiddrop": {"lambda": "0.5"},
    "dart": {"keep": "0.5"},
}


def split_name(name: str) -> tuple[str, str]:
    """Returns (block method, token method) of a combination name; a bad name raises UserError."""
    splits = [(name[:i], name[i + 1 :]) for i, ch in enumerate(name) if ch == "+"]
    known = [(a, b) for a, b in splits if a in METHODS and b in METHODS]
    if not known:
        a, b = splits[0] if splits else (name, "")
        for part in (a, b):
            if part not in METHODS:
                raise did_you_mean(part, METHODS.names(), f"method (in combination {name!r})")
    a, b = known[0]
    allowed = (
        f"a combination is one token method ({', '.join(TOKEN_METHODS)}) and one block/head "
        f"method ({', '.join(BLOCK_METHODS)}), e.g. adallava-l+fastv"
    )
    if a in TOKEN_METHODS and b in TOKEN_METHODS:
        raise UserError(f"{name!r} combines two token methods; {allowed}")
    if a in BLOCK_METHODS and b in BLOCK_METHODS:
        raise UserError(f"{name!r} combines two block/head methods; {allowed}")
    block, token = (b, a) if a in TOKEN_METHODS else (a, b)
    if block not in BLOCK_METHODS or token not in TOKEN_METHODS:
        raise UserError(f"{name!r} is not a supported pair; {allowed}")
    return block, token


class Combination(Method):
    """A block/head method whose plans carry a token method's selection (built by
    `build_combination`)."""

    def __init__(self, block: Method, token: TokenMethod) -> None:  # noqa: D107 — no Method.__init__
        self.block, self.token = block, token
        self.NAME = f"{block.NAME}+{token.NAME}"
        self.VARIES = f"{block.VARIES} + {token.VARIES}"
        self.DESCRIPTION = (
            f"{block.NAME} at the budget, {token.NAME} at its default; FLOPs multiply"
        )
        self.NEEDS_ADALLAVA = block.NEEDS_ADALLAVA
        self.IGNORES_BUDGET = getattr(block, "IGNORES_BUDGET", False)
        self.ARGS = {**block.ARGS, **token.ARGS}
        self.model, self.budget, self.seed = block.model, block.budget, block.seed
        self.args = {**block.args, **token.args}
        self.num_layers = block.num_layers

    def min_budget(self, model=None) -> float:  # type: ignore[override]
        """Returns the block/head method's minimum budget (the token method runs at its default)."""
        return self.block.min_budget(self.model)

    def request(self, sample_id, input_ids, image_features) -> Request:
        """Returns the block/head method's request with the token method's selection added to its
        plan (static or decided)."""
        base = self.block.request(sample_id, input_ids, image_features)
        extra = 0 if base.extra_embeds is None else base.extra_embeds.shape[1]
        choice = self.token.choose(
            input_ids, image_features, extra_tokens=extra, base_plan=base.plan
        )
        decide = None
        if base.decide is not None:
            inner = base.decide

            def decide(hidden, inner=inner):
                return choice.apply(inner(hidden))

        # With `decide` the static plan only carries the token fields (for an executor that
        # needs them before the decision, e.g. FastV ranking tokens in the prefix blocks).
        plan = choice.apply(base.plan or Plan.full(self.num_layers))
        return Request(
            plan=plan,
            decide=decide,
            decide_at=base.decide_at,
            extra_embeds=base.extra_embeds,
            image_features=choice.image_features,
            info={**base.info, **choice.info},
        )


def build_combination(name: str, model, budget: float, args: dict, seed: int = 0) -> Combination:
    """Returns the combination `name` ("block+token" or "token+block") set up at `budget`.

    Arguments go to the part whose ARGS names them (the token part first); unknown ones raise."""
    block_name, token_name = split_name(name)
    token_cls, block_cls = METHODS.get(token_name), METHODS.get(block_name)
    token_args = {
        **TOKEN_DEFAULTS.get(token_name, {}),
        **{k: v for k, v in args.items() if k in token_cls.ARGS},
    }
    block_args = {k: v for k, v in args.items() if k not in token_cls.ARGS}
    unknown = set(block_args) - set(block_cls.ARGS)
    if unknown:
        allowed = ", ".join([*token_cls.ARGS, *block_cls.ARGS]) or "none"
        raise UserError(f"method {name!r} has no argument(s) {sorted(unknown)}; allowed: {allowed}")
    block = build_registered(block_name, model, budget, block_args, seed)
    token = token_cls(model, 1.0, token_args, seed)
    return Combination(block, token)
