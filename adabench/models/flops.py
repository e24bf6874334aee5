"""Analytic FLOPs of a LLaVA forward (CLIP vision tower + projector + decoder), plan-aware.

Counted from the executed `Plan` and the real sequence lengths, so the FLOPs reported are those
of what ran. Cross-checked against `torch.utils.flop_counter.FlopCounterMode` in
tests/unit/test_flops.py (eager attention; equal to the operator count on the tiny model).

Convention: FLOP = 2 × MAC (one multiply-add = 2 FLOPs), matmuls only, like FlopCounterMode.
A matmul of an (m × k) by a (k × n) matrix costs 2·m·k·n. Not counted (0 FLOPs): embedding
lookup, RMSNorm/LayerNorm, activations (GELU, SiLU), the SwiGLU product, softmax, rotary
embeddings, residual adds, biases. Together these are O(tokens · hidden), below 1 % of a block.

Symbols: d = hidden size, h = query heads that run, g = distinct key/value heads that run,
hd = head dimension, I = MLP intermediate size (× the kept fraction), V = vocabulary,
s = new tokens in this forward, c = keys attended to (context length, new tokens included).

Decoder block (every family of adabench/models/families/, GQA), for s new tokens attending to c keys
(fused projections — Phi-3's qkv_proj, gate_up_proj — are the same matmuls stacked; q/k norms,
soft-capping and Gemma's extra norms are not matmuls):
    q, o projections        2·s·d·(h·hd) each
    k, v projections        2·s·d·(g·hd) each
    QKᵀ                     2·s·c·hd per query head      → 2·s·c·hd·h
    A·V                     2·s·c·hd per query head      → 2·s·c·hd·h
    MLP (gate, up, down)    3 · 2·s·d·I
  Attention is counted over the full s × c score matrix, not the causal half: eager attention
  (and FlopCounterMode) multiply the full matrices and mask afterwards. Prefill: c = s.
  Decode step: s = 1, c = context length (a sliding-window block: at most its window). With GQA the key/value heads are shared by a group
  of n_heads / n_kv query heads; a kept query head keeps its key/value head, so
  g = |{q // (n_heads / n_kv) : q kept}|.

Plan (adabench.models.plan.Plan): a skipped block (`layers[i] is None`) costs 0; `heads` sets h
(and g as above); `mlp_fraction(i)` scales I (rounded to whole neurons). Token selection:
`visual_tokens_removed` (PruMerge) is already in the `seq_len` the caller passes; FastV
(`fastv_layer` = K, `fastv_removed` = R) runs blocks i ≥ K on s − R tokens with c − R keys;
staged drops (`plan.drops`, PyramidDrop / DART) add up: block i runs on s − Σ_{K_j ≤ i} R_j.

CLIP vision tower (n = patches + 1 tokens incl. CLS, dv = vision hidden, Iv its MLP size):
    patch embedding (conv)  2·patches·(3·p²)·dv
    per encoder layer       4 · 2·n·dv² (q, k, v, out) + 2 · 2·n·n·dv (QKᵀ, A·V)
                            + 2 · 2·n·dv·Iv (fc1, fc2)
  Every encoder layer is counted although LLaVA only reads `vision_feature_layer` (usually the
  second-to-last): HF runs the whole encoder to collect hidden states, so that is what executes.
Projector (2-layer MLP): 2·t·(dv·L_f)·d + 2·t·d·d for t image tokens (L_f = feature layers).
lm_head: 2·d·V per position; generation computes logits for the last position only.
Prefill = vision + projector + decoder blocks over `seq_len` + lm_head (1 position).
Generation of N new tokens = prefill (gives token 1) + N − 1 decode steps, step j with
context length prompt_len + j.
"""

from __future__ import annotations

from typing import Any

from adabench.models.families import decoder_of
from adabench.models.plan import Plan

# --- config access ---------------------------------------------------------------------------


def _text(config: Any) -> Any:
    """Returns the Llama text config of a LlavaConfig (or the config itself if already text)."""
    return getattr(config, "text_config", None) or config


def _head_dim(text: Any) -> int:
    head_dim = getattr(text, "head_dim", None)
    return int(head_dim) if head_dim else text.hidden_size // text.num_attention_heads


def _kv_heads_total(text: Any) -> int:
    return int(getattr(text, "num_key_value_heads", None) or text.num_attention_heads)


def _feature_layers(config: Any) -> int:
    layer = getattr(config, "vision_feature_layer", -2)
    return 1 if isinstance(layer, int) else len(layer)


NOMINAL_IMAGE_PX = 448
"""Side of the image a dynamic-resolution tower (Qwen-VL: no `image_size`) is assumed to get
where one count per model is needed (a method's budget lower bound); a sample's own count is
read from its prompt, and the budget is checked on it (models/methods.check_within_budget)."""


def num_image_tokens(config: Any) -> int:
    """Returns how many image tokens one image (LLaVA-1.5) or one tile at the tower's
    resolution (LLaVA-NeXT / OneVision, Idefics3) yields: patches, + CLS when the strategy is
    "full" on a CLIP tower (SigLIP has none), ÷ scale_factor² after Idefics3's pixel shuffle;
    for a dynamic-resolution tower, those of a NOMINAL_IMAGE_PX-square image after its merger.
    A whole image's count on a tiling wrapper: adabench/models/vision_flops.image_side."""
    vision = config.vision_config
    if getattr(vision, "image_size", None) is None:
        merge = int(getattr(vision, "spatial_merge_size", 1) or 1)
        return (NOMINAL_IMAGE_PX // vision.patch_size // merge) ** 2
    patches = (vision.image_size // vision.patch_size) ** 2
    scale = getattr(config, "scale_factor", None)
    if scale:  # Idefics3's connector: scale² patches per token
        return patches // (int(scale) ** 2)
    strategy = getattr(config, "vision_feature_select_strategy", "default")
    clip = str(getattr(vision, "model_type", "clip")).startswith("clip")
    return patches + (1 if strategy == "full" and clip else 0)


# --- vision side -----------------------------------------------------------------------------


def vision_flops(config: Any) -> int:
    """Returns the FLOPs of the CLIP vision tower on one image (all encoder layers, CLS included)."""
    vision = config.vision_config
    d_v, p = vision.hidden_size, vision.patch_size
    patches = (vision.image_size // p) ** 2
    n = patches + 1
    channels = getattr(vision, "num_channels", 3)
    patch_embed = 2 * patches * channels * p * p * d_v
    per_layer = (
        4 * 2 * n * d_v * d_v + 2 * 2 * n * n * d_v + 2 * 2 * n * d_v * vision.intermediate_size
    )
    return int(patch_embed + vision.num_hidden_layers * per_layer)


def projector_flops(config: Any, num_image_tokens: int) -> int:
    """Returns the FLOPs of the 2-layer MLP projector over `num_image_tokens` tokens."""
    d_in = config.vision_config.hidden_size * _feature_layers(config)
    d = _text(config).hidden_size
    return int(2 * num_image_tokens * d_in * d + 2 * num_image_tokens * d * d)


# --- language model --------------------------------------------------------------------------


def decoder_block_flops(
    config: Any,
    seq_len: int,
    context_len: int,
    heads: int | None = None,
    kv_heads: int | None = None,
    mlp_fraction: float = 1.0,
) -> int:
    """Returns the FLOPs of one Llama decoder block: `seq_len` new tokens attending to
    `context_len` keys, with `heads` query heads and `kv_heads` key/value heads running
    (None = all) and `mlp_fraction` of the MLP neurons. Formulas in the module docstring."""
    text = _text(config)
    d, hd = text.hidden_size, _head_dim(text)
    h = text.num_attention_heads if heads is None else heads
    g = _kv_heads_total(text) if kv_heads is None else kv_heads
    inter = round(text.intermediate_size * mlp_fraction)
    s, c = seq_len, context_len
    projections = 2 * s * d * hd * (2 * h + 2 * g)
    attention = 2 * 2 * s * c * hd * h
    mlp = 3 * 2 * s * d * inter
    return int(projections + attention + mlp)


def _kept_kv_heads(plan: Plan, layer: int, text: Any) -> int:
    lp = plan.layers[layer]
    total_kv = _kv_heads_total(text)
    if lp is None:
        return 0
    if lp.heads is None:
        return total_kv
    group = text.num_attention_heads // total_kv
    return len({q // group for q in lp.heads})


def _block_lengths(plan: Plan | None, layer: int, seq_len: int, past_len: int) -> tuple[int, int]:
    """Returns (new tokens, keys) that block `layer` sees; token drops inside the LLM (FastV,
    PyramidDrop's stages, DART: `plan.token_drops`) shorten every block from their own on.

    `past_len == 0` is a prefill (the dropped visual tokens leave the new tokens);
    `past_len > 0` is a later step whose cache for those blocks already lacks them."""
    removed = 0 if plan is None else plan.removed_before(layer)
    if not removed:
        return seq_len, past_len + seq_len
    if past_len == 0:
        short = max(seq_len - removed, 0)
        return short, short
    return seq_len, max(past_len - removed, 0) + seq_len


def _check_plan(plan: Plan | None, text: Any) -> None:
    if plan is not None and plan.num_layers != text.num_hidden_layers:
        raise ValueError(
            f"plan has {plan.num_layers} layers but the model has {text.num_hidden_layers}"
        )


def _windows(text: Any) -> tuple[int | None, ...]:
    """Returns each block's sliding window (None: full attention), from its decoder family."""
    return decoder_of(text).windows


def llm_flops(config: Any, seq_len: int, plan: Plan | None = None, past_len: int = 0) -> int:
    """Returns the FLOPs of the decoder blocks that run for `seq_len` new tokens after
    `past_len` cached ones (prefill: past_len = 0). Excludes embeddings, final norm, lm_head.
    A decode step of a sliding-window block attends to at most `window` keys (the executor and
    HF's sliding cache both keep no more); a prefill multiplies the full score matrix and masks."""
    text = _text(config)
    _check_plan(plan, text)
    windows = _windows(text) if past_len else ()
    total = 0
    for i in range(text.num_hidden_layers):
        if plan is not None and plan.layers[i] is None:
            continue
        heads = None if plan is None else plan.num_heads(i, text.num_attention_heads)
        kv_heads = None if plan is None else _kept_kv_heads(plan, i, text)
        fraction = 1.0 if plan is None else plan.mlp_fraction(i)
        s, c = _block_lengths(plan, i, seq_len, past_len)
        if windows and windows[i] is not None and s == 1:
            c = min(c, windows[i])
        total += decoder_block_flops(text, s, c, heads, kv_heads, fraction)
    return total


def lm_head_flops(config: Any, positions: int = 1) -> int:
    """Returns the FLOPs of the lm_head on `positions` positions (generation: 1)."""
    text = _text(config)
    return int(2 * positions * text.hidden_size * text.vocab_size)


def prefill_flops(config: Any, seq_len: int, plan: Plan | None = None, num_images: int = 1) -> int:
    """Returns the FLOPs of one prefill forward as generation runs it: vision tower, projector,
    decoder blocks over `seq_len` tokens (image tokens included), lm_head on the last position.

    The projector runs on the image tokens left after `plan.visual_tokens_removed` (PruMerge
    reduces tokens between the vision tower and the projector)."""
    vision = num_images * _vision_and_projector(config, plan)
    return int(vision + llm_flops(config, seq_len, plan) + lm_head_flops(config))


def vision_side_flops(config: Any, image_tokens: int | None = None) -> int:
    """Returns the FLOPs of the vision tower + projector on one image with `image_tokens`
    projected tokens (None: all of them); a dynamic-resolution tower (Qwen-VL) on a nominal
    NOMINAL_IMAGE_PX-square image. A sample's own count: adabench/models/vision_flops.py."""
    if getattr(config.vision_config, "image_size", None) is None:
        from adabench.models.wrappers import wrapper_of

        side = NOMINAL_IMAGE_PX // config.vision_config.patch_size
        return qwen_flops(config, wrapper_of(config), [(1, side, side)])
    tokens = num_image_tokens(config) if image_tokens is None else image_tokens
    return vision_flops(config) + projector_flops(config, tokens)


def _qwen_windows(h: int, w: int, merge: int, side: int) -> int:
    """Returns Σ tokens² over the attention windows of an h × w patch grid (windows of `side`
    merged tokens a side over the merged grid, each merged token = merge² patches)."""
    hm, wm = h // merge, w // merge
    rows = [min(side, hm - i) for i in range(0, hm, side)]
    cols = [min(side, wm - j) for j in range(0, wm, side)]
    return sum((r * c * merge * merge) ** 2 for r in rows for c in cols)


def qwen_flops(config: Any, wrapper, grid_thw: list[tuple[int, int, int]]) -> int:
    """Returns the vision FLOPs of a Qwen-VL ViT + merger on images of `grid_thw` patch grids."""
    v = config.vision_config
    qwen25 = wrapper.name == "qwen2.5-vl"
    d = v.hidden_size if qwen25 else v.embed_dim
    inter = v.intermediate_size if qwen25 else int(d * v.mlp_ratio)
    out = v.out_hidden_size if qwen25 else v.hidden_size
    merge, p = v.spatial_merge_size, v.patch_size
    n = sum(t * h * w for t, h, w in grid_thw)
    full = sum((t * h * w) ** 2 for t, h, w in grid_thw)
    channels = getattr(v, "in_channels", None) or getattr(v, "in_chans", 3)
    total = 2 * n * channels * v.temporal_patch_size * p * p * d
    side = v.window_size // (merge * p) if qwen25 else None
    windowed = sum(t * _qwen_windows(h, w, merge, side) for t, h, w in grid_thw) if qwen25 else full
    full_layers = set(v.fullatt_block_indexes) if qwen25 else set(range(v.depth))
    for layer in range(v.depth):
        attn = full if layer in full_layers else windowed
        total += 4 * 2 * n * d * d + 2 * 2 * attn * d + (3 if qwen25 else 2) * 2 * n * d * inter
    m, wide = n // (merge * merge), d * merge * merge
    return int(total + 2 * m * wide * wide + 2 * m * wide * out)


def _vision_and_projector(config: Any, plan: Plan | None) -> int:
    removed = 0 if plan is None else plan.visual_tokens_removed
    return vision_side_flops(config, max(num_image_tokens(config) - removed, 0))


def decode_step_flops(config: Any, context_len: int, plan: Plan | None = None) -> int:
    """Returns the FLOPs of one decode step: one new token attending to `context_len` keys
    (itself included), plus the lm_head on that token."""
    return int(llm_flops(config, 1, plan, past_len=context_len - 1) + lm_head_flops(config))


def flops_ratio(
    config: Any, seq_len: int, plan: Plan | None, full_seq_len: int | None = None
) -> float:
    """Returns decoder-block prefill FLOPs of `plan` on `seq_len` tokens ÷ those of the full
    model on `full_seq_len` tokens (the length before token reduction; default `seq_len` plus
    `plan.visual_tokens_removed`). 1.0 for the full plan."""
    if full_seq_len is None:
        full_seq_len = seq_len + (plan.visual_tokens_removed if plan is not None else 0)
    full = llm_flops(config, full_seq_len, None)
    return llm_flops(config, seq_len, plan) / full if full else float("nan")


def generation_flops(
    config: Any,
    prompt_len: int,
    new_tokens: int,
    plan: Plan | None = None,
    full_prompt_len: int | None = None,
    vision: int | None = None,
) -> dict[str, float]:
    """Returns the FLOPs of generating `new_tokens` tokens after a `prompt_len`-token prompt.
    `vision`: the vision side's FLOPs of this sample when the model's image size varies
    (adabench/models/vision_flops.py); None: LLaVA-1.5's one fixed-size image.

    Keys: `flops` (everything), `llm_flops` (decoder blocks, prefill + all decode steps),
    `vision_flops` (vision tower + projector), `lm_head_flops`, `prefill_flops`, `decode_flops`,
    `flops_ratio` (prefill decoder blocks vs the full model on `full_prompt_len`, see
    `flops_ratio`). Decode steps: N − 1, step j attends to prompt_len + j keys."""
    if vision is None:
        vision = _vision_and_projector(config, plan)
    head = lm_head_flops(config)
    prefill_llm = llm_flops(config, prompt_len, plan)
    steps = max(new_tokens - 1, 0)
    decode_llm = sum(
        llm_flops(config, 1, plan, past_len=prompt_len + j - 1) for j in range(1, steps + 1)
    )
    return {
        "flops": int(vision + prefill_llm + decode_llm + head * (steps + 1)),
        "llm_flops": int(prefill_llm + decode_llm),
        "vision_flops": int(vision),
        "lm_head_flops": int(head * (steps + 1)),
        "prefill_flops": int(vision + prefill_llm + head),
        "decode_flops": int(decode_llm + head * steps),
        "flops_ratio": flops_ratio(config, prompt_len, plan, full_prompt_len),
    }


# --- bytes -----------------------------------------------------------------------------------


def kv_cache_bytes(
    config: Any, context_len: int, plan: Plan | None = None, dtype_bytes: int = 2
) -> int:
    """Returns the bytes of the KV cache after `context_len` tokens: K and V of the kept
    key/value heads in each block that ran (skipped blocks store none; FastV blocks after K
    hold R fewer positions). An implementation that caches all heads stores more."""
    text = _text(config)
    _check_plan(plan, text)
    hd, total = _head_dim(text), 0
    for i in range(text.num_hidden_layers):
        if plan is not None and plan.layers[i] is None:
            continue
        kv = _kv_heads_total(text) if plan is None else _kept_kv_heads(plan, i, text)
        _, keys = _block_lengths(plan, i, context_len, 0)
        total += 2 * kv * hd * keys * dtype_bytes
    return int(total)


def weight_bytes(model: Any) -> int:
    """Returns the bytes of a model's parameters (tied weights counted once)."""
    return int(sum(p.numel() * p.element_size() for p in model.parameters()))
