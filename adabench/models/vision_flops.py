"""Analytic FLOPs of the vision side (tower + projector/connector) of every wrapper, from the
processor tensors of one sample (FLOP = 2 × MAC, matmuls and convolutions, as
adabench/models/flops.py; norms, activations, rotary, pixel shuffle, unpadding, pooling and the
image-newline vectors cost 0).

- LLaVA-1.5: `flops.vision_flops` + `flops.projector_flops` (one 336-px image).
- Tile towers (LLaVA-NeXT, LLaVA-OneVision: CLIP / SigLIP over every tile of `pixel_values`
  [1, tiles, 3, H, W]; Idefics3: SigLIP over every tile): per tile, patch embedding
  2·patches·3·p²·d and per layer 4·2·n·d² + 2·2·n²·d + 2·2·n·d·I with n = patches (+1 CLS for
  CLIP). Projector: LLaVA's 2-layer MLP over the tiles' tokens (CLS dropped by the `default`
  strategy); Idefics3's connector one matmul 2·(tiles·patches/s²)·(d·s²)·d_text.
- Qwen-VL ViT over n = Σ t·h·w patches (`image_grid_thw`): patch embedding 2·n·(3·T·p²)·d,
  per layer 4·2·n·d² + attention 2·2·Σ(window tokens²)·d (one window per image for Qwen2-VL
  and Qwen2.5-VL's full-attention blocks; Qwen2.5-VL's other blocks attend within
  `window_size`-pixel windows of the merged grid) + MLP (Qwen2-VL fc1/fc2: 2·2·n·d·I; Qwen2.5-VL
  SwiGLU: 3·2·n·d·I), merger 2·m·(4d)² + 2·m·4d·d_text over m = n/4 merged tokens.
Checked against FlopCounterMode on every wrapper's tiny build (tests/unit/test_vision_flops.py). The
Qwen-VL formula is `flops.qwen_flops` (adabench flops also needs it, on a nominal image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def _encoder(n: int, d: int, inter: int, layers: int, mlp_mats: int = 2) -> int:
    """Returns the FLOPs of `layers` full-attention encoder layers on n tokens."""
    return layers * (4 * 2 * n * d * d + 2 * 2 * n * n * d + mlp_mats * 2 * n * d * inter)


def tile_flops(config: Any, wrapper, tiles: int, height: int, width: int) -> int:
    """Returns the vision FLOPs of a tile-tower wrapper on `tiles` tiles of height × width px."""
    from adabench.models.flops import projector_flops

    v = config.vision_config
    p, d = v.patch_size, v.hidden_size
    patches = (height // p) * (width // p)
    n = patches + (1 if wrapper.tower == "clip" else 0)
    tower = tiles * (
        2 * patches * getattr(v, "num_channels", 3) * p * p * d
        + _encoder(n, d, v.intermediate_size, v.num_hidden_layers)
    )
    if wrapper.name == "idefics3":
        s = config.scale_factor
        tokens = tiles * patches // (s * s)
        return int(tower + 2 * tokens * d * s * s * config.text_config.hidden_size)
    per_tile = (
        n if getattr(config, "vision_feature_select_strategy", "default") == "full" else patches
    )
    return int(tower + projector_flops(config, tiles * per_tile))


def sample_vision_flops(config: Any, pixel_values_shape, visual: dict) -> int | None:
    """Returns the vision FLOPs of one prepared sample (its pixel_values shape and other processor
    tensors), None for LLaVA-1.5 (adabench.models.flops counts its fixed image)."""
    from adabench.models.flops import qwen_flops
    from adabench.models.wrappers import wrapper_of

    wrapper = wrapper_of(config)
    if wrapper.name == "llava":
        return None
    if wrapper.mrope:
        grid = [tuple(int(x) for x in row) for row in visual["image_grid_thw"].tolist()]
        return qwen_flops(config, wrapper, grid)
    shape = tuple(pixel_values_shape)
    tiles = math.prod(shape[:-3])
    return tile_flops(config, wrapper, tiles, shape[-2], shape[-1])


@dataclass(frozen=True)
class ImageSide:
    """What one image of a given size costs a model: what its processor makes of it."""

    width_px: int
    height_px: int
    visual_tokens: int = field(metadata={"help": "image-token positions the LLM runs"})
    structure_tokens: int = field(
        metadata={
            "help": "text tokens the processor adds around the image (Idefics3's tile "
            "markers, Qwen's vision start/end), counted in the prompt"
        }
    )
    vision_flops: int = field(metadata={"help": "tower + projector/connector, FLOP"})
    tiles: int = field(metadata={"help": "tiles the tower encodes (1 for Qwen-VL: one image)"})


def image_side(config: Any, processor, width_px: int, height_px: int) -> ImageSide:
    """Returns what one width × height px image costs: `processor` (the model's own, or the
    synthetic one of a --no-weights build at the config's sizes) runs on a blank image of that
    size and a prompt holding only the image placeholder, so the visual-token count and the
    vision FLOPs are those `adabench eval` records for such an image (tiles, unpadding,
    image-newline tokens and merges as the processor decides them)."""
    from PIL import Image

    from adabench.models.flops import vision_side_flops
    from adabench.models.wrappers import wrapper_of

    wrapper = wrapper_of(config)
    image = Image.new("RGB", (int(width_px), int(height_px)), (127, 127, 127))
    enc = processor(images=image, text=wrapper.image_token, return_tensors="pt")
    ids = enc["input_ids"][0]
    visual = int((ids == int(config.image_token_id)).sum())
    plain = processor.tokenizer(wrapper.image_token, add_special_tokens=False)["input_ids"]
    structure = int(ids.shape[0]) - visual - (len(plain) - 1)  # the placeholder's own ids
    keys = {k: enc[k] for k in wrapper.visual_keys if k in enc}
    vision = sample_vision_flops(config, enc["pixel_values"].shape, keys)
    if vision is None:
        vision = vision_side_flops(config, visual)
    shape = tuple(enc["pixel_values"].shape)
    tiles = 1 if wrapper.mrope else math.prod(shape[:-3])
    return ImageSide(int(width_px), int(height_px), visual, max(structure, 0), int(vision), tiles)
