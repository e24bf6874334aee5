"""`adabench flops`: analytic FLOPs per budget from a model's config alone (no weights, no model).

For the count-based methods the FLOPs of a plan depend only on how many blocks / units run, not
on which, so one representative plan per budget gives the exact figure:
  full, layer-drop, early-exit      blocks as the methods pick them (⌊b·N⌋, float32)
  random-skip                       N/2 prefix + ⌊b·N⌋ − N/2 blocks (any; all cost the same)
  adallava-l                        P prefix + k = ⌊N·b⌋ − P blocks (any k blocks cost the same)
  adallava-h                        P·H/r prefix units + k units of r heads + r MLP groups
  head-prune                        the same units as adallava-h (static choice, no latency token)
  fastv                             all blocks; blocks K, K+1, … (arg k, default 2) run without R
                                    visual tokens: R = ⌊r·image tokens⌋ with arg r, else the
                                    smallest R whose flops_ratio ≤ budget (as the method does)
  X+fastv (either order)            X at the budget, FastV at its default r = 0.5 (or arg r),
                                    as adabench.models.combine does
Methods whose plan depends on the image (prumerge, prumerge+) need the model: a UserError.

The image side (`visual_side`): a LLaVA-1.5 model sees one fixed-size image (576 tokens for
llava-1.5-7b). Any other wrapper — LLaVA-NeXT / OneVision tiles with image-newline tokens,
Idefics3 tiles with their marker tokens, Qwen-VL's native-resolution grid — gets its counts
from its processor on a blank image of `--image-size` (default NOMINAL_IMAGE_PX square): the
same processor and vision formulas `adabench eval` records per sample, so `adabench flops
--image-size <image_px> --prompt-tokens <text_tokens − markers>` reproduces a sample's FLOPs
exactly (tests/cli/test_wrapper_flops_cli.py).

Conventions (those of adabench.models.flops: FLOP = 2 × MAC, matmuls only, full s × s
attention score matrix, lm_head on the last position only):
- sequence length s = image tokens + image markers + prompt tokens + latency tokens, where the latency token
  (1) is counted for adallava-* methods, as `adabench eval` does (it is part of the prompt the
  decoder runs). `prefill_llm_flops_no_latency_token` gives the same plan on s − 1 tokens.
- `llm_flops` = decoder blocks over prefill + (new_tokens − 1) decode steps; `prefill_llm_flops`
  = decoder blocks of the prefill only (the paper's "FLOPs of the LLM"); `flops_ratio` = prefill
  decoder FLOPs of the plan ÷ those of all blocks on the same s; `vision_flops` = CLIP tower
  (all 24 layers run) + projector; `flops` = everything incl. lm_head and AdaLLaVA's latency
  encoder + scheduler.

Paper check (docs/adallava.md, "Published numbers"; LLaVA-1.5-7B, 576 image + 64 prompt tokens, adallava-l):
  budget  blocks  ratio   prefill LLM TFLOPs (s = 641)   no latency token (s = 640)   paper
  1.00    32/32   1.000   8.518                           8.504                        8.6
  0.85    27/32   0.844   7.187                           7.175                        7.2
  0.60    19/32   0.594   5.057                           5.049                        5.1
Residual −1.0 / −0.2 / −0.8 % at s = 641 (−1.1 / −0.3 / −1.0 % at s = 640): the paper rounds to
0.1 T and its counter (not published) may add the lm_head over all positions or non-matmul ops;
ours counts matmuls only. FastV K = 2, r = 0.5 (adallava-l+fastv; blocks 0-1 see all tokens,
blocks 2+ the shorter sequence): 4.88 / 4.16 / 3.00 T against the paper's 4.9 / 4.2 / 3.0. 13B adallava-l: 16.60 / 14.11 / 9.96 T.
The ratios are exactly 27/32 and 19/32 because every block costs the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from adabench.errors import UserError, check_range
from adabench.models import flops
from adabench.models.count_plans import ada_config, representative_plan
from adabench.models.plan import Plan

BLOCK_METHODS = ("full", "layer-drop", "early-exit", "random-skip", "adallava-l")
UNIT_METHODS = ("adallava-h", "head-prune")
TOKEN_METHODS = ("fastv",)
COMBINED_FASTV_R = "0.5"
T = 1e12
MAX_IMAGE_PX = 16384


@dataclass(frozen=True)
class Visual:
    """The image side of a `FlopsQuery`: what the LLM sees of the image and what it cost."""

    tokens: int = field(metadata={"help": "visual tokens in the LLM sequence"})
    structure_tokens: int = field(metadata={"help": "processor's image markers (text tokens)"})
    vision_flops: int = field(metadata={"help": "tower + projector/connector, FLOP"})
    image_px: str | None = field(metadata={"help": "'WxH' the counts are for; None: LLaVA-1.5"})
    tiles: int = 1


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """Returns (width, height) px from 'WxH' or 'N' (a square), None for None; else UserError."""
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = tuple(int(v) for v in parts)
    except ValueError:
        values = ()
    if len(values) not in (1, 2):
        raise UserError(f"--image-size must be WxH or N pixels (e.g. 1024x768), got {text!r}")
    for v in values:
        check_range(v, 1, MAX_IMAGE_PX, "--image-size (px)")
    return (values[0], values[-1])


def visual_side(query: FlopsQuery, config: Any, processor=None) -> Visual:
    """Returns the image side of `query`: a LLaVA-1.5 model (one fixed-size image) from its
    config; any other wrapper, or any model given `image_size`, from what its processor makes
    of a blank image of that size (`vision_flops.image_side`: tiles, image-newline tokens,
    merges). `image_tokens` overrides the LLM's visual-token count (the vision side stays the
    image's). `processor` defaults to `processor_for(query.model, config)`."""
    from adabench.models.vision_flops import image_side
    from adabench.models.wrappers import wrapper_of

    fixed = wrapper_of(config).fixed_tokens
    if fixed and query.image_size is None:
        tokens = (
            flops.num_image_tokens(config) if query.image_tokens is None else query.image_tokens
        )
        return Visual(tokens, 0, flops.vision_side_flops(config, tokens), None)
    width, height = query.image_size or (flops.NOMINAL_IMAGE_PX, flops.NOMINAL_IMAGE_PX)
    side = image_side(config, processor or processor_for(query.model, config), width, height)
    tokens = side.visual_tokens if query.image_tokens is None else query.image_tokens
    vision = flops.vision_side_flops(config, tokens) if fixed else side.vision_flops
    return Visual(tokens, side.structure_tokens, vision, f"{width}x{height}", side.tiles)


def processor_for(name: str, config: Any):
    """Returns the processor whose image handling `adabench flops` counts: a local folder's own
    (its preprocessor config), else the synthetic one a --no-weights build of `config` uses."""
    from adabench.models.catalog import local_folder, shipped_config
    from adabench.models.loading import load_processor
    from adabench.models.no_weights import build_synthetic_processor

    folder = None if shipped_config(name) is not None else local_folder(name)
    if folder is not None and any(
        (folder / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")
    ):
        return load_processor(str(folder))
    return build_synthetic_processor(config)


@dataclass
class FlopsQuery:
    """What `adabench flops` computes: one model, one method, several budgets."""

    model: str = field(metadata={"help": "shipped config, embedded alias or local folder"})
    method: str = field(default="full", metadata={"help": "count-based method or X+fastv"})
    budgets: tuple[float, ...] = field(default=(1.0,), metadata={"help": "budgets in (0, 1]"})
    image_tokens: int | None = field(
        default=None, metadata={"help": "visual tokens in the LLM; default: the image's"}
    )
    image_size: tuple[int, int] | None = field(
        default=None,
        metadata={
            "help": "(width, height) px of the image; default: the tower's for LLaVA-1.5, "
            "NOMINAL_IMAGE_PX square for a variable-resolution wrapper"
        },
    )
    prompt_tokens: int = field(default=64, metadata={"help": "text tokens of the prompt"})
    new_tokens: int = field(default=1, metadata={"help": "generated tokens (1 = prefill only)"})
    method_args: dict = field(default_factory=dict, metadata={"help": "fastv: k, r"})

    @property
    def parts(self) -> tuple[str, str | None]:
        """Returns (block/unit method, "fastv" or None); plain fastv is ("full", "fastv")."""
        names = self.method.split("+")
        if len(names) == 1:
            return ("full", "fastv") if names[0] == "fastv" else (names[0], None)
        return (names[1], "fastv") if names[0] == "fastv" else (names[0], "fastv")

    def __post_init__(self) -> None:
        for b in self.budgets:
            check_range(float(b), 0.0, 1.0, "budget", low_open=True)
        if self.prompt_tokens < 0 or self.new_tokens < 1:
            raise UserError("prompt-tokens must be >= 0 and new-tokens >= 1")
        if self.image_tokens is not None and self.image_tokens < 0:
            raise UserError(f"image-tokens must be >= 0, got {self.image_tokens}")
        for side in self.image_size or ():
            check_range(int(side), 1, MAX_IMAGE_PX, "image size (px)")
        parts = self.method.split("+")
        known = BLOCK_METHODS + UNIT_METHODS + TOKEN_METHODS
        if is_plan_method(self.method):
            return  # its arguments are checked when it is built (adabench.models.methods)
        for part in parts:
            if part.startswith("prumerge"):
                raise UserError(
                    f"{part!r} keeps an image-dependent number of visual tokens, so it has no "
                    "config-only FLOPs: pass the count with --image-tokens N and --method full"
                )
            if part not in known:
                from adabench.errors import did_you_mean

                raise did_you_mean(part, list(known), "method (count-based, for `adabench flops`)")
        if len(parts) > 2 or (len(parts) == 2 and parts.count("fastv") != 1):
            raise UserError(
                f"combinations are X+fastv (X a block/head method), got {self.method!r}"
            )
        unknown = set(self.method_args) - ({"k", "r"} if "fastv" in parts else set())
        if unknown:
            raise UserError(f"method {self.method!r} has no argument(s) {sorted(unknown)}")


def flops_table(query: FlopsQuery, config: Any = None, adallava: dict | None = None) -> list[dict]:
    """Returns one row per budget: FLOPs (FLOP units, ints) and TFLOPs of the plan the method
    runs, from the config only. `config` defaults to `catalog.config_for(query.model)`,
    `adallava` ({"prefix_layers", "group_size"}) to the shipped settings of the model."""
    from adabench.models import catalog

    if config is None:
        config = catalog.config_for(query.model)
    if adallava is None:
        adallava = catalog.adallava_settings_for(query.model)
    visual = visual_side(query, config)  # one processor run serves every budget
    if is_plan_method(query.method):
        return [_method_row(query, config, visual, float(b)) for b in query.budgets]
    return [_row(query, config, adallava, visual, float(b)) for b in query.budgets]


def is_plan_method(name: str) -> bool:
    """Whether `name` is a registered method outside the count-based ones (a plugin's, or
    plan-file): its FLOPs come from the plan its `request` returns on a synthetic prompt."""
    from adabench.models.methods import METHODS

    known = BLOCK_METHODS + UNIT_METHODS + TOKEN_METHODS
    return name in METHODS and name not in known and not name.startswith("prumerge")


def _method_row(query: FlopsQuery, config: Any, visual: Visual, budget: float) -> dict:
    """Returns the row of a plugin method at `budget`: the plan its `request` returns for a
    prompt of the query's image and text tokens (zero image features, sample id "flops"),
    refused when it decides during the forward or exceeds the budget."""
    import torch

    from adabench.models.methods import (
        ConfigOnly,
        build_registered,
        check_within_budget,
        checked_request,
        method_label,
    )

    text = config.text_config
    image_tokens = visual.tokens
    method = build_registered(query.method, ConfigOnly(query.model, config), budget,
                              query.method_args)  # fmt: skip
    ids = torch.zeros(
        1, image_tokens + visual.structure_tokens + query.prompt_tokens, dtype=torch.long
    )
    ids[0, 1 : 1 + image_tokens] = int(config.image_token_id)
    feats = torch.zeros(1, image_tokens, int(text.hidden_size))
    request = checked_request(method, "flops", ids, feats)
    if request.decide is not None or request.plan is None:
        raise UserError(
            f"{method_label(method)} decides its plan during the forward: `adabench flops` "
            "needs a static plan; measure it with `adabench eval`"
        )
    kept = image_tokens if request.image_features is None else request.image_features.shape[1]
    extra = 0 if request.extra_embeds is None else request.extra_embeds.shape[1]
    seq_len = ids.shape[1] - (image_tokens - kept) + extra
    plan = request.plan
    gen = flops.generation_flops(config, seq_len, query.new_tokens, plan, ids.shape[1] + extra)
    check_within_budget(method, gen["flops_ratio"], "flops")
    vision = visual.vision_flops
    prefill_llm = flops.llm_flops(config, seq_len, plan)
    total = gen["flops"] - gen["vision_flops"] + vision
    return {
        "model": query.model, "method": query.method, "budget": budget,
        "units": f"{len(plan.kept_blocks())}/{plan.num_layers} blocks",
        "fastv_removed": plan.fastv_removed, "seq_len": seq_len, "image_tokens": kept,
        **_image_fields(visual), "prompt_tokens": query.prompt_tokens, "latency_tokens": extra,
        "new_tokens": query.new_tokens, "flops": int(total), "llm_flops": int(gen["llm_flops"]),
        "flops_ratio": gen["flops_ratio"], "vision_flops": int(vision),
        "lm_head_flops": int(gen["lm_head_flops"]), "overhead_flops": 0,
        "prefill_llm_flops": int(prefill_llm),
        "prefill_llm_flops_no_latency_token": int(flops.llm_flops(config, seq_len - extra, plan)),
        "decode_llm_flops": int(gen["llm_flops"] - prefill_llm),
        "prefill_llm_tflops": prefill_llm / T,
        "prefill_llm_tflops_no_latency_token": flops.llm_flops(config, seq_len - extra, plan) / T,
        "tflops": total / T, "plan": plan.describe(text.num_attention_heads),
    }  # fmt: skip


def _row(query: FlopsQuery, config: Any, adallava: dict, visual: Visual, budget: float) -> dict:
    base, token = query.parts
    image_tokens = visual.tokens
    latency_tokens = 1 if base.startswith("adallava") else 0
    seq_len = image_tokens + visual.structure_tokens + query.prompt_tokens + latency_tokens
    plan, units = representative_plan(base, config, adallava, budget)
    if token == "fastv":
        args = dict(query.method_args)
        if query.method != "fastv":  # in a combination FastV runs at its default, not the budget
            args.setdefault("r", COMBINED_FASTV_R)
        plan = _with_fastv(
            plan, args, config, seq_len, image_tokens, budget, query.method == "fastv"
        )
    gen = flops.generation_flops(config, seq_len, query.new_tokens, plan)
    vision = visual.vision_flops
    overhead = _adallava_overhead(config, adallava, base) if latency_tokens else 0
    prefill_llm = flops.llm_flops(config, seq_len, plan)
    no_lat = flops.llm_flops(config, seq_len - latency_tokens, plan)
    total_flops = gen["flops"] - gen["vision_flops"] + vision + overhead
    return {
        "model": query.model,
        "method": query.method,
        "budget": budget,
        "units": units,
        "fastv_removed": plan.fastv_removed,
        "seq_len": seq_len,
        "image_tokens": image_tokens,
        **_image_fields(visual),
        "prompt_tokens": query.prompt_tokens,
        "latency_tokens": latency_tokens,
        "new_tokens": query.new_tokens,
        "flops": int(total_flops),
        "llm_flops": int(gen["llm_flops"]),
        "flops_ratio": gen["flops_ratio"],
        "vision_flops": int(vision),
        "lm_head_flops": int(gen["lm_head_flops"]),
        "overhead_flops": int(overhead),
        "prefill_llm_flops": int(prefill_llm),
        "prefill_llm_flops_no_latency_token": int(no_lat),
        "decode_llm_flops": int(gen["llm_flops"] - prefill_llm),
        "prefill_llm_tflops": prefill_llm / T,
        "prefill_llm_tflops_no_latency_token": no_lat / T,
        "tflops": total_flops / T,
        "plan": plan.describe(config.text_config.num_attention_heads),
    }


def _image_fields(visual: Visual) -> dict:
    """Returns the row fields that say which image the counts are for."""
    return {
        "image_px": visual.image_px,
        "tiles": visual.tiles,
        "structure_tokens": visual.structure_tokens,
    }


def _with_fastv(
    plan: Plan, args: dict, config: Any, seq_len: int, n_visual: int, budget: float, alone: bool
) -> Plan:
    """Returns `plan` with FastV after block k: R = ⌊r·n_visual⌋ with arg r, else the smallest R
    whose flops_ratio ≤ `budget` (adabench.models.baselines.fastv's rule). `alone`: FastV holds
    the budget itself (not a combination), so a ratio above it is an error."""
    from adabench.models.baselines.fastv import DEFAULT_K, fastv_plan, removed_for_budget

    try:
        k = int(args.get("k", DEFAULT_K))
        r = None if args.get("r") is None else float(args["r"])
    except ValueError as exc:
        raise UserError(
            f"fastv arguments: k is a block index, r a fraction in [0, 1] ({exc})"
        ) from exc
    check_range(k, 1, plan.num_layers - 1, "fastv argument k")
    if r is None:
        removed = removed_for_budget(config, plan, seq_len, n_visual, k, budget)
    else:
        removed = math.floor(check_range(r, 0.0, 1.0, "fastv argument r") * n_visual + 1e-9)
    with_tokens = fastv_plan(plan, k, removed or 0)
    ratio = flops.flops_ratio(config, seq_len, with_tokens)
    if removed is None:
        floor = flops.flops_ratio(config, seq_len, fastv_plan(plan, k, n_visual))
        raise UserError(
            f"budget {budget} is below what 'fastv' (k={k}) can reach on {seq_len} tokens: "
            f"the minimum is {floor:.4g}"
        )
    if alone and ratio > budget + 1e-9:
        raise UserError(
            f"fastv with r={r} gives flops_ratio {ratio:.4g} > budget {budget}; raise r, "
            "raise the budget or drop r to fit the budget"
        )
    return with_tokens


def _adallava_overhead(config: Any, adallava: dict, method: str) -> int:
    """Returns FLOPs of AdaLLaVA's latency encoder + scheduler (one call each, 2 × MAC)."""
    from adabench.models.adallava.latency_encoder import NUM_FREQS

    ada = ada_config(config, adallava, "L" if method == "adallava-l" else "H")
    d = ada.hidden_size
    selectable = ada.num_layers - ada.prefix_layers
    out = selectable if ada.variant == "L" else selectable * 2 * ada.num_heads
    return 2 * (2 * NUM_FREQS * d + d * d) + 2 * d * out


def table_rows(rows: list[dict]) -> list[dict]:
    """Returns the human table: TFLOPs (GFLOPs for small models) with 3 decimals, ratio, units."""
    scale, unit = (T, "T") if rows and rows[0]["flops"] >= 1e11 else (1e9, "G")
    return [
        {
            "budget": r["budget"],
            "kept": r["units"].split()[0]
            + (f" -{r['fastv_removed']}v" if r["fastv_removed"] else ""),
            "seq": r["seq_len"],
            f"prefill {unit}": f"{r['prefill_llm_flops'] / scale:.3f}",
            f"-lat {unit}": f"{r['prefill_llm_flops_no_latency_token'] / scale:.3f}",
            "ratio": f"{r['flops_ratio']:.4f}",
            f"LLM {unit}": f"{r['llm_flops'] / scale:.3f}",
            f"vision {unit}": f"{r['vision_flops'] / scale:.3f}",
            f"total {unit}": f"{r['flops'] / scale:.3f}",
        }
        for r in rows
    ]
