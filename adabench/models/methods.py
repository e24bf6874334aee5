"""The Method interface and registry: a method turns (model, budget, sample) into a Plan.

Each method is built once per cell (`Method(model, budget, args, seed)`), validates the budget
against what it can reach, and per request returns a `Request`: a static `plan`, or a `decide`
callback run at block `decide_at` (AdaLLaVA's scheduler), plus optional extra prompt embeddings
(AdaLLaVA's latency token) and visual-token selection (PruMerge before the LLM, FastV inside).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from adabench.errors import UserError, check_range
from adabench.models.plan import Plan
from adabench.registry import Registry


@dataclass
class Request:
    """How one sample runs: plan (static) or decide/decide_at (dynamic), token changes."""

    plan: Plan | None = None
    decide: Callable[[torch.Tensor], Plan] | None = None
    decide_at: int = 0
    extra_embeds: torch.Tensor | None = None  # [1, k, D] appended after the prompt
    image_features: torch.Tensor | None = None  # replaced visual tokens (PruMerge)
    info: dict = field(default_factory=dict)


class Method:
    """Base class: subclasses set NAME, VARIES, DESCRIPTION and implement `request`."""

    NAME: ClassVar[str] = ""
    VARIES: ClassVar[str] = "nothing"
    DESCRIPTION: ClassVar[str] = ""
    ARGS: ClassVar[dict[str, str]] = {}
    NEEDS_ADALLAVA: ClassVar[str | None] = None  # "L" / "H" when a scheduler checkpoint is required

    def __init__(self, model, budget: float, args: dict | None = None, seed: int = 0) -> None:
        self.model = model
        self.budget = check_range(float(budget), 0.0, 1.0, "budget", low_open=True)
        self.args = dict(args or {})
        unknown = set(self.args) - set(self.ARGS)
        if unknown:
            allowed = ", ".join(self.ARGS) or "none"
            raise UserError(
                f"method {self.NAME!r} has no argument(s) {sorted(unknown)}; allowed: {allowed}"
            )
        self.seed = seed
        self.num_layers = model.config.text_config.num_hidden_layers
        minimum = self.min_budget(model)
        if self.budget + 1e-9 < minimum:
            raise UserError(
                f"budget {self.budget} is below what {self.NAME!r} can reach on {model.name}: the minimum is {minimum:.4g}"
            )

    @classmethod
    def min_budget(cls, model) -> float:
        """Returns the smallest budget this method can meet on `model`."""
        return 1.0 / model.config.text_config.num_hidden_layers

    def request(
        self, sample_id: str, input_ids: torch.Tensor, image_features: torch.Tensor
    ) -> Request:
        """Returns how sample `sample_id` runs: a static plan or a `decide` callback at block
        `decide_at`, plus token changes; called once per generation, inside the timed region."""
        raise NotImplementedError


METHODS: Registry[type[Method]] = Registry("method")


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: registers a Method subclass under its NAME."""
    METHODS.register(cls.NAME, cls)
    return cls


def kept_count(budget: float, total: int) -> int:
    """Returns ⌊budget·total⌋ computed in float32 (the paper's quantization), at least 1."""
    import numpy as np

    return max(1, int(np.floor(np.float32(total) * np.float32(budget))))


def evenly_spaced(n: int, k: int) -> list[int]:
    """Returns k block indices spread evenly over [0, n−1], first and last included (k ≥ 2).

    Rule: round(i·(n−1)/(k−1)) for i = 0..k−1 (round half to even), distinct by construction
    when k ≤ n. k = 1 keeps block 0.
    """
    if k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


@register
class Full(Method):
    NAME = "full"
    VARIES = "nothing (reference)"
    MIN_BUDGET_TEXT = "any (runs everything)"
    DESCRIPTION = "every block, head and visual token; ignores the budget"

    @classmethod
    def min_budget(cls, model) -> float:
        """Returns 0.0: `full` takes any budget and always runs everything."""
        return 0.0

    def request(self, sample_id, input_ids, image_features) -> Request:
        """Returns the full plan: every block, head and neuron."""
        return Request(plan=Plan.full(self.num_layers))


@register
class LayerDrop(Method):
    NAME = "layer-drop"
    VARIES = "blocks (static)"
    MIN_BUDGET_TEXT = "1/N"
    DESCRIPTION = "keep ⌊b·N⌋ evenly spaced blocks, first and last kept"

    def request(self, sample_id, input_ids, image_features) -> Request:
        """Returns the same evenly spaced plan for every sample."""
        kept = evenly_spaced(self.num_layers, kept_count(self.budget, self.num_layers))
        return Request(plan=Plan.from_kept_blocks(self.num_layers, kept))


@register
class EarlyExit(Method):
    NAME = "early-exit"
    VARIES = "blocks (static)"
    MIN_BUDGET_TEXT = "1/N"
    DESCRIPTION = "first ⌊b·N⌋ blocks, then the final norm and lm_head"

    def request(self, sample_id, input_ids, image_features) -> Request:
        """Returns the same plan for every sample: the first blocks only."""
        k = kept_count(self.budget, self.num_layers)
        return Request(plan=Plan.from_kept_blocks(self.num_layers, range(k)))


@register
class RandomSkip(Method):
    NAME = "random-skip"
    VARIES = "blocks (random per sample)"
    MIN_BUDGET_TEXT = "P/N = 0.5"
    DESCRIPTION = (
        "first N/2 blocks kept (AdaLLaVA's prefix); the rest drawn at random per sample (seeded)"
    )

    @classmethod
    def min_budget(cls, model) -> float:
        """Returns P/N: the always-run first half of the blocks."""
        n = model.config.text_config.num_hidden_layers
        return (n // 2) / n

    def request(self, sample_id, input_ids, image_features) -> Request:
        """Returns the prefix plus a random set of later blocks, seeded by (seed, sample id)."""
        n, prefix = self.num_layers, self.num_layers // 2
        k = max(0, kept_count(self.budget, n) - prefix)
        seed = int(hashlib.sha256(f"{self.seed}|{sample_id}".encode()).hexdigest()[:12], 16)
        rest = random.Random(seed).sample(range(prefix, n), k)
        return Request(
            plan=Plan.from_kept_blocks(n, list(range(prefix)) + rest), info={"seed": seed}
        )


# Methods that live in their own modules register lazily.
METHODS.register("adallava-l", "adabench.models.adallava.method:AdaLlavaL")
METHODS.register("adallava-h", "adabench.models.adallava.method:AdaLlavaH")
METHODS.register("head-prune", "adabench.models.baselines.head_prune:HeadPrune")
METHODS.register("fastv", "adabench.models.baselines.fastv:FastV")
METHODS.register("prumerge", "adabench.models.baselines.prumerge:PruMerge")
METHODS.register("prumerge+", "adabench.models.baselines.prumerge:PruMergePlus")


def parse_method_args(pairs: list[str]) -> dict[str, str]:
    """Returns {key: value} from ["k=2", "r=0.5"]; malformed entries raise UserError."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--method-arg must look like key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def build_registered(
    name: str, model, budget: float, args: dict | None = None, seed: int = 0
) -> Method:
    """Returns the registered method `name` set up for `model` at `budget` (combinations "a+b"
    are built by `adabench.models.factory.build_method`)."""
    cls = METHODS.get(name)
    if cls.NEEDS_ADALLAVA and model.variant != cls.NEEDS_ADALLAVA:
        raise UserError(
            f"method {name!r} needs an AdaLLaVA-{cls.NEEDS_ADALLAVA} checkpoint (e.g. tiny-adallava-{cls.NEEDS_ADALLAVA.lower()}); "
            f"{model.name!r} has {'no scheduler' if model.variant is None else 'variant ' + model.variant}"
        )
    return cls(model, budget, args, seed)
