"""Which cells of a grid can run at all, decided before the first cell is measured.

A budget below what a method can reach is found from config files and the suites' prompts, no
weights loaded: block/head methods (and combinations, whose block/head part takes the budget,
adabench/models/combine.py) by their analytic plans (`flops_table`); plain token methods
(fastv, prumerge, prumerge+, ...) by their floor on the suite's hardest prompt (a longer text
part or fewer visual tokens leaves less to drop; on LLaVA-NeXT, OneVision, Idefics3 and Qwen-VL
the visual-token count follows each sample's image, counted by the model's processor as eval
counts it), computed by the method's own `prompt_floor`. The sweep refuses such a
grid up front, listing every unreachable cell, or drops those cells with a warning when
`skip_unreachable` is set (docs/sweeps.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from adabench.config import SweepConfig
from adabench.errors import UserError

PROMPT_METHODS = (
    "fastv",
    "prumerge",
    "prumerge+",
    "downsample",
    "visionzip",
    "pyramiddrop",
    "dart",
)


@dataclass(frozen=True)
class Unreachable:
    """A (model, suite, method, budget) cell that cannot meet its budget, and why."""

    model: str
    suite: str
    method: str
    budget: float
    reason: str

    @property
    def label(self) -> str:
        """Returns 'model · suite · method@budget'."""
        return f"{self.model} · {self.suite} · {self.method}@{self.budget:g}"


def unreachable_cells(cfg: SweepConfig) -> list[Unreachable]:
    """Returns every grid cell whose budget its method cannot reach (empty in SLO mode, where
    the controller picks budgets within each method's range). Cached per grid."""
    if cfg.slo_ms:
        return []
    key = (tuple(cfg.models), tuple(cfg.suites), tuple(cfg.methods), tuple(cfg.budgets),
           cfg.split, cfg.limit, cfg.no_weights, tuple(sorted(cfg.method_args.items())))  # fmt: skip
    if key not in _CACHE:
        _CACHE[key] = _unreachable(cfg)
    return list(_CACHE[key])


_CACHE: dict[tuple, list[Unreachable]] = {}


def _unreachable(cfg: SweepConfig) -> list[Unreachable]:
    from adabench.models import catalog

    out: list[Unreachable] = []
    for model in cfg.models:
        config = catalog.config_for(model)
        adallava = catalog.adallava_settings_for(model)
        methods = [m for m in cfg.methods if m != "full"]
        budgets = list(cfg.budgets)
        shapes: dict[str, set[tuple[int, int]]] = {}
        for method in methods:
            for budget in budgets:
                reason = _block_reason(method, config, adallava, budget)
                if reason:
                    out += [Unreachable(model, s, method, budget, reason) for s in cfg.suites]
                    continue
                if method not in PROMPT_METHODS:
                    continue
                for suite in cfg.suites:
                    if suite not in shapes:
                        shapes[suite] = {
                            (n, v) for _, n, v in prompt_shapes(model, suite, cfg, config)
                        }
                    if not shapes[suite]:
                        continue
                    floor, seq_len, n_visual = max(
                        (_token_class(method).prompt_floor(config, n, v, dict(cfg.method_args)),
                         n, v)
                        for n, v in shapes[suite]
                    )  # fmt: skip
                    if budget + 1e-9 < floor:
                        out.append(Unreachable(model, suite, method, budget,
                                               f"the minimum on the suite's hardest prompt "
                                               f"({seq_len} tokens, {n_visual} visual) is "
                                               f"{floor:.4g}"))  # fmt: skip
    return out


def check_grid(cfg: SweepConfig) -> list[Unreachable]:
    """Raises UserError listing every unreachable cell unless `cfg.skip_unreachable`; returns
    the cells to skip (empty when every cell can run)."""
    bad = unreachable_cells(cfg)
    if bad and not cfg.skip_unreachable:
        listed = "; ".join(f"{u.label} ({u.reason})" for u in bad)
        raise UserError(
            f"{len(bad)} cell(s) of the grid cannot meet their budget: {listed}. Raise or drop "
            "those budgets, or pass --skip-unreachable to run the rest"
        )
    return bad


def _block_reason(method: str, config, adallava: dict, budget: float) -> str | None:
    """Returns why the block/head part of `method` cannot reach `budget` (None: it can)."""
    from adabench.models.combine import split_name
    from adabench.models.count_plans import COUNT_METHODS, representative_plan

    block = method
    if "+" in method:
        block, _ = split_name(method)
    if block in PROMPT_METHODS or block == "full":
        return None
    if block not in COUNT_METHODS:  # a plugin's (or plan-file's) own floor, from the config
        return _floor_reason(block, config, budget)
    try:
        representative_plan(block, config, adallava, budget)
    except UserError as exc:
        return str(exc)
    except (KeyError, ValueError):  # a method without a config-only plan: checked when built
        return None
    return None


def _floor_reason(method: str, config, budget: float) -> str | None:
    """Returns why `method` cannot reach `budget` by its own `min_budget` read on the config
    alone (None: it can, or its floor needs a loaded model)."""
    from adabench.models.methods import METHODS, ConfigOnly

    try:
        floor = METHODS.get(method).min_budget(ConfigOnly(name="", config=config))
    except Exception:  # a floor that needs weights: checked when the method is built
        return None
    if budget + 1e-9 < floor:
        return f"budget {budget} is below what {method!r} can reach: the minimum is {floor:.4g}"
    return None


def _token_class(method: str):
    from adabench.models.methods import METHODS

    return METHODS.get(method)


def prompt_shapes(model: str, suite: str, cfg: SweepConfig, config) -> list[tuple[str, int, int]]:
    """Returns (sample id, prompt tokens, visual tokens) for every sample of `suite` (at
    `cfg.limit` and `cfg.split`), as `adabench eval` will build them for `model`: a LLaVA-1.5
    model (one fixed-size image) by its tokenizer on the suite's prompt, the `<image>`
    placeholder counted as the config's visual-token count; any other wrapper by its processor
    on the sample's image and its chat-template prompt (tiles, image markers and native
    resolution make the count follow the image). A sample whose image cannot be read is left
    out (the run reports it). Cached per (model, prompts)."""
    from adabench.data.suites import get_spec, load_suite
    from adabench.models.wrappers import wrapper_of

    spec = get_spec(suite)
    samples = load_suite(suite, split=cfg.split, limit=cfg.limit, seed=0)
    prompts = tuple((s.id, spec.render_prompt(s)) for s in samples)
    key = (model, cfg.no_weights, prompts)
    if key not in _SHAPES:
        processor = _processor(model, cfg.no_weights)
        if wrapper_of(config).fixed_tokens:
            _SHAPES[key] = _fixed_shapes(processor.tokenizer, prompts, config)
        else:
            _SHAPES[key] = _processor_shapes(processor, spec, samples, config)
    return _SHAPES[key]


def prompt_lengths(model: str, suite: str, cfg: SweepConfig, config) -> list[tuple[str, int]]:
    """Returns (sample id, prompt tokens, visual tokens included) of every sample of `suite`
    (see `prompt_shapes`)."""
    return [
        (sample_id, tokens) for sample_id, tokens, _ in prompt_shapes(model, suite, cfg, config)
    ]


_SHAPES: dict[tuple, list[tuple[str, int, int]]] = {}


def _fixed_shapes(tokenizer, prompts: tuple[tuple[str, str], ...], config) -> list:
    from adabench.models.flops import num_image_tokens

    image_id = getattr(config, "image_token_id", None) or getattr(config, "image_token_index", None)
    n_visual = num_image_tokens(config)
    out = []
    for sample_id, prompt in prompts:
        ids = tokenizer(prompt)["input_ids"]
        placeholders = sum(1 for i in ids if i == image_id)
        visual = n_visual * max(1, placeholders)
        out.append((sample_id, len(ids) - placeholders + visual, visual))
    return out


def _processor_shapes(processor, spec, samples, config) -> list:
    from adabench.data.hf_suites import prepare_image
    from adabench.data.images import read_image
    from adabench.models.wrappers import wrapper_of
    from adabench.sweep.prompts import build_prompt

    wrapper = wrapper_of(config)
    image_id = int(config.image_token_id)
    out = []
    for sample in samples:
        try:
            image = prepare_image(spec, read_image(sample), processor)
        except UserError:  # an unreadable image: the run refuses or skips it and says so
            continue
        prompt, _ = build_prompt(processor, wrapper, spec.render_prompt(sample), sample.id)
        ids = processor(images=image, text=prompt, return_tensors="pt")["input_ids"][0]
        out.append((sample.id, int(ids.shape[0]), int((ids == image_id).sum())))
    return out


def _processor(model: str, no_weights: bool):
    """Returns the processor the sweep will use for `model` (the synthetic one of --no-weights
    on a shipped config, else the folder's or hub checkpoint's)."""
    if no_weights:
        from adabench.models.no_weights import config_and_processor

        return config_and_processor(model)[2]
    from adabench.models.catalog import resolve
    from adabench.models.loading import load_processor

    return load_processor(str(resolve(model)))
