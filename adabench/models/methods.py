"""The Method interface and registry: a method turns (model, budget, sample) into a Plan.

Each method is built once per cell (`Method(model, budget, args, seed)`), validates the budget
against what it can reach, and per request returns a `Request`: a static `plan`, or a `decide`
callback run at block `decide_at` (AdaLLaVA's scheduler), plus optional extra prompt embeddings
(AdaLLaVA's latency token) and visual-token selection (PruMerge before the LLM, FastV inside).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from adabench.errors import UserError, check_range
from adabench.models.plan import LayerPlan, Plan
from adabench.registry import Registry

KINDS = ("reference", "blocks", "heads", "tokens", "image", "other")
"""What a method varies, the groups of `adabench methods list`: the decoder blocks that run, the
heads/MLP neurons inside them, the visual tokens, the image itself; `other` for the rest."""


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
    """Base class: subclasses set NAME, VARIES, DESCRIPTION and implement `request`; KIND (what
    the method varies, one of KINDS: `methods list` groups by it) and PAPER (its source) are
    optional."""

    NAME: ClassVar[str] = ""
    KIND: ClassVar[str] = "other"
    PAPER: ClassVar[str] = ""
    VARIES: ClassVar[str] = "nothing"
    DESCRIPTION: ClassVar[str] = ""
    ARGS: ClassVar[dict[str, str]] = {}
    NEEDS_ADALLAVA: ClassVar[str | None] = None  # "L" / "H" when a scheduler checkpoint is required
    WRAPPERS: ClassVar[tuple[str, ...] | None] = None
    """The VLM wrappers (adabench/models/wrappers/) the method runs on; None: every one."""
    WRAPPERS_WHY: ClassVar[str] = ""
    """Why the others are refused (one clause, shown by `methods show` and in the refusal)."""

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
        check_wrapper(type(self), model)
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

BUILT_IN = "built-in"
ORIGINS: dict[str, str] = {}
"""Method name → where it came from: BUILT_IN (also for names missing here), or the label of
the plugin that registered it ("file PATH", "module NAME", "entry point DIST")."""
LOADING: list[str] = []
"""Labels of the plugins being imported right now (innermost last); `register` reads it."""


@contextmanager
def registering_from(origin: str) -> Iterator[None]:
    """Within the block, `register` records `origin` as the origin of every method it adds."""
    LOADING.append(origin)
    try:
        yield
    finally:
        LOADING.pop()


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: registers a Method subclass under its NAME (built-ins and plugins alike,
    `adabench.api.register_method`). Returns the class. A UserError for a class that is not a
    Method with a NAME, a name with '+' (combination syntax), or a name another origin holds."""
    if getattr(cls, "__module__", "").split(".")[0] == "adabench":
        origin = BUILT_IN  # adabench's own modules, even when a plugin's import triggers them
    else:
        origin = LOADING[-1] if LOADING else f"module {getattr(cls, '__module__', '?')}"
    who = "adabench" if origin == BUILT_IN else f"plugin {origin}"
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise UserError(f"{who}: register_method decorates Method subclasses, got {cls!r}")
    name = cls.NAME
    if not isinstance(name, str) or not name.strip() or ("+" in name and origin != BUILT_IN):
        raise UserError(f"{who}: class {cls.__qualname__} needs a NAME without '+' (got {name!r})")
    held = ORIGINS.get(name, BUILT_IN)
    if name in METHODS and held != origin:
        raise UserError(f"{who}: method {name!r} shadows the {held} method of that name; rename it")
    METHODS.register(name, cls)
    ORIGINS[name] = origin
    return cls


def origin_of(name: str) -> str:
    """Returns where method `name` (or the parts of a combination "a+b") comes from: the first
    plugin label among its parts, else BUILT_IN."""
    for part in name.split("+"):
        if ORIGINS.get(part, BUILT_IN) != BUILT_IN:
            return ORIGINS[part]
    return BUILT_IN


def method_label(method: Method) -> str:
    """Returns "method 'x'" for a built-in, "plugin LABEL: method 'x'" for a plugin's method."""
    origin = origin_of(method.NAME)
    named = f"method {method.NAME!r}"
    return named if origin == BUILT_IN else f"plugin {origin}: {named}"


BUDGET_TOLERANCE = 1e-9
"""A plan's flops_ratio may exceed the budget by float rounding only."""


def check_within_budget(method: Method, flops_ratio: float, sample_id: str) -> None:
    """Raises a UserError naming the method when the plan it ran on `sample_id` has a
    `flops_ratio` above its budget (methods with IGNORES_BUDGET, such as `full`, are exempt)."""
    if getattr(method, "IGNORES_BUDGET", False):
        return
    if flops_ratio > method.budget + BUDGET_TOLERANCE:
        raise UserError(
            f"{method_label(method)} ran a plan with flops_ratio {flops_ratio:.4f} on sample "
            f"{sample_id!r}, above its budget {method.budget:g}; a method must return plans "
            "within its budget (docs/methods.md)"
        )


def checked_request(
    method: Method, sample_id: str, input_ids: torch.Tensor, image_features: torch.Tensor
) -> Request:
    """Returns `method.request(...)` checked: a plugin method that raises, or any method that
    returns something other than a Request with a Plan (or a `decide` callback), is a UserError
    naming the method (and its plugin); the plugin's exception is chained (ADABENCH_DEBUG=1)."""
    plugin = origin_of(method.NAME) != BUILT_IN
    try:
        request = method.request(sample_id, input_ids, image_features)
    except UserError:
        raise
    except Exception as exc:
        if not plugin:
            raise
        raise UserError(
            f"{method_label(method)} raised {type(exc).__name__} in request for sample "
            f"{sample_id!r}: {exc}"
        ) from exc
    problem = request_problem(request, method.num_layers)
    if problem is None and plugin:
        problem = plan_problem(request.plan, method.model.config.text_config)
        if problem is None and request.decide is not None:
            request.decide = _checked_decide(method, request.decide)
    if problem is not None:
        raise UserError(f"{method_label(method)}: request returned {problem}")
    return request


def _checked_decide(method: Method, decide: Callable) -> Callable:
    """Returns `decide` wrapped so a plugin's decision that is not a valid Plan is a UserError."""

    def checked(hidden):
        plan = decide(hidden)
        problem = (
            f"a {type(plan).__name__}, not a Plan"
            if not isinstance(plan, Plan)
            else plan_problem(plan, method.model.config.text_config)
        )
        if problem is not None:
            raise UserError(f"{method_label(method)}: decide returned {problem}")
        return plan

    return checked


def request_problem(request, num_layers: int) -> str | None:
    """Returns what is wrong with the type of a `request` result (None: nothing)."""
    if not isinstance(request, Request):
        return f"a {type(request).__name__}, not an adabench.api.Request"
    if request.plan is None and request.decide is None:
        return "a Request with neither a plan nor a decide callback"
    if request.plan is not None and not isinstance(request.plan, Plan):
        return f"a Request whose plan is a {type(request.plan).__name__}, not a Plan"
    if request.plan is not None and request.plan.num_layers != num_layers:
        return f"a plan of {request.plan.num_layers} blocks; the model has {num_layers}"
    return None


def plan_problem(plan: Plan | None, text_config) -> str | None:
    """Returns what is wrong with `plan` for a decoder of `text_config` (None: nothing): each
    block a LayerPlan or None, head indices in [0, heads), MLP groups in [0, mlp_group_count),
    a group count that divides the MLP size."""
    if plan is None:
        return None
    heads = text_config.num_attention_heads
    groups = plan.mlp_group_count
    if not isinstance(groups, int) or groups < 1 or text_config.intermediate_size % groups:
        return (
            f"a plan with mlp_group_count {groups!r}; it must divide the MLP size "
            f"{text_config.intermediate_size}"
        )
    for i, lp in enumerate(plan.layers):
        if lp is None:
            continue
        if not isinstance(lp, LayerPlan):
            return f"a plan whose block {i} is a {type(lp).__name__}, not a LayerPlan or None"
        for what, ids, top in (("heads", lp.heads, heads), ("mlp_groups", lp.mlp_groups, groups)):
            if ids is not None and not all(isinstance(x, int) and 0 <= x < top for x in ids):
                return f"a plan whose block {i} has {what} {list(ids)}; each must be in [0, {top})"
    return None


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
    KIND = "reference"
    PAPER = ""
    NAME = "full"
    IGNORES_BUDGET = True
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
    KIND = "blocks"
    PAPER = "static baseline of AdaLLaVA (Xu et al., arXiv 2503.10905)"
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
    KIND = "blocks"
    PAPER = "static baseline of AdaLLaVA (Xu et al., arXiv 2503.10905)"
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
    KIND = "blocks"
    PAPER = "random baseline of AdaLLaVA (Xu et al., arXiv 2503.10905)"
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
METHODS.register("plan-file", "adabench.models.baselines.plan_file:PlanFile")
METHODS.register("downsample", "adabench.models.baselines.downsample:Downsample")
METHODS.register("visionzip", "adabench.models.baselines.visionzip:VisionZip")
METHODS.register("pyramiddrop", "adabench.models.baselines.pyramiddrop:PyramidDrop")
METHODS.register("dart", "adabench.models.baselines.dart:Dart")


def check_wrapper(cls: type[Method], model) -> None:
    """Raises a one-line UserError when method `cls` does not run on `model`'s VLM wrapper."""
    from adabench.models.wrappers import wrapper_of

    if cls.WRAPPERS is None:  # runs on every wrapper (and on plugin tests' config-only models)
        return
    wrapper = wrapper_of(model.config)
    if wrapper.name not in cls.WRAPPERS:
        raise UserError(
            f"method {cls.NAME!r} runs on {', '.join(cls.WRAPPERS)} only, not on {model.name} "
            f"({wrapper.label}): {cls.WRAPPERS_WHY}"
        )


@dataclass
class ConfigOnly:
    """A model known from its config alone (no weights): what `Method.min_budget` and the
    config-only FLOPs (`adabench flops`, the sweep's grid check) hand a method."""

    name: str
    config: object
    variant: str | None = None


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
    if origin_of(name) == BUILT_IN:
        return cls(model, budget, args, seed)
    try:
        return cls(model, budget, args, seed)
    except UserError:
        raise
    except Exception as exc:  # a plugin's constructor or min_budget
        raise UserError(
            f"plugin {origin_of(name)}: method {name!r} raised {type(exc).__name__} when built "
            f"on {model.name} at budget {budget:g}: {exc}"
        ) from exc
