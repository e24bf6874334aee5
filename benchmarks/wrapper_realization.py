"""How much of a plan's FLOP saving becomes time saving, per VLM wrapper (reported, never
asserted).

Swept: the six wrappers adabench executes (adabench/models/wrappers/: llava = LLaVA-1.5,
llava-next, llava-onevision, idefics3 = SmolVLM, qwen2-vl, qwen2.5-vl), each as a no-weights
model (adabench.models.no_weights.build_no_weights on the wrapper's own transformers config:
seeded random weights, fp32 on CPU, its real processor class) whose decoder is
benchmarks/family_realization.py's compute-bound shape (width 1024, 16 blocks, GQA 16/8,
head_dim 64, intermediate 2816, vocabulary 32064) in the family the wrapper's real checkpoints
use: llava and idefics3 → llama, llava-next → mistral, llava-onevision → qwen2, Qwen-VL → its own
text config (3-D rotary positions, mrope_section 8/12/12 of head_dim 64 as 16/24/24 is of 128).
The vision tower is small (2 layers, width 256) at the real geometry of the shipped configs
(adabench/configs/*.json), so the decoder sees the real visual-token counts of the stated image:

  wrapper          tower / geometry                                  image px   visual tokens
  llava            CLIP 336 px, patch 14                              336×336    576
  llava-next       CLIP 336-px tiles, llava-v1.6 pinpoints + 336×336  336×168    876
  llava-onevision  SigLIP 384-px tiles (729 a tile), anyres_max_9     384×128    981
  idefics3         SigLIP 512-px tiles, patch 16, scale_factor 4      1024×512   576
  qwen2-vl         ViT 14-px patches, merge 2                         672×672    576
  qwen2.5-vl       windowed ViT 14-px patches, merge 2                672×672    576

LLaVA-NeXT: a 672 × 672 image gives 2928 tokens (too slow on 2 cores), so its pinpoints are
llava-v1.6's five plus 336 × 336 and the image 336 × 168: one tile + the base view, unpadded to
24 × 12 with one image-newline a row: 576 + 288 + 12 = 876. OneVision: the base view (729) + one
tile unpadded to 27 × 9 with its newlines (252). Idefics3: the image is resized to a 2048-px
longest edge and split into 4 × 2 tiles + the global view, 64 tokens each (9 × 64 = 576; a
square image gives 4 × 4 + 1 = 1088). `VISUAL_TOKENS` holds the counts
the processor gives (tests/unit/test_wrapper_realization_bench.py checks them).

Prompts: the shapes test (`load_suite("shapes")`) with each image resized to the wrapper's size,
through `adabench.sweep.cell.prepare_samples` (the model's chat template where the suite's
prompt does not fit it, as eval does). Arms, paired and randomly interleaved on the same samples
(benchmarks/paired.py): full, "full (A/A)" (its ratio to full is the noise floor),
layer-drop@0.5, head-prune@0.5, fastv@0.5, pyramiddrop@0.5, dart@0.5, and on llava only
prumerge@0.5 and visionzip@0.5 (they need a CLIP CLS attention and refuse the other towers).
Defaults: 6 samples, 1 round, the suite's 3 new tokens, one warm-up sample. Measured on CPU,
2 shared cores (load average 0.3 at the start, 2.0 at the end): 6 min 8 s wall for all six
wrappers, 50–78 s each (llava-onevision, 981 tokens, the longest); numbers in
docs/architecture.md "VLM wrappers".

Numbers per (wrapper, arm):
  latency_ratio   median over samples of (arm latency ÷ full latency, each the mean over rounds)
                  with a 95 % bootstrap CI over samples; the A/A row is the floor to read it by
  flops_ratio     mean decoder-block FLOPs ratio (adabench.models.flops, as the sweep reports it)
  visual_tokens   visual tokens of the prompt (before any token method)
  latency_ms      mean end-to-end latency (vision + prefill + decode)
  prefill_ms      mean time to the first token (vision + prefill)
A wrapper that fails to build or run is reported with its traceback's last lines (rows: none).
Prints a card, one table row per wrapper × arm and one JSON line; `--out FILE` writes the JSON.

    python benchmarks/wrapper_realization.py [--wrappers llava,qwen2.5-vl] [--limit 6]
        [--rounds 1] [--max-new-tokens 3] [--threads N] [--out results/wrapper_realization.json]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from adabench.data.suites import get_spec, load_suite
from adabench.sweep.cell import prepare_samples

sys.path.insert(0, str(Path(__file__).resolve().parent))
from family_realization import IMAGE_TOKEN, SHAPE, llava_config, text_config  # noqa: E402
from paired import measure, report, run_each  # noqa: E402

WRAPPERS = ("llava", "llava-next", "llava-onevision", "idefics3", "qwen2-vl", "qwen2.5-vl")
COMMON_ARMS = (
    ("full", 1.0),
    ("full", 1.0, "full (A/A)"),
    ("layer-drop", 0.5),
    ("head-prune", 0.5),
    ("fastv", 0.5),
    ("pyramiddrop", 0.5),
    ("dart", 0.5),
)
CLIP_ONLY_ARMS = (("prumerge", 0.5), ("visionzip", 0.5))  # need a CLIP CLS attention
IMAGE_PX = {  # (width, height) of every sample's image
    "llava": (336, 336),
    "llava-next": (336, 168),
    "llava-onevision": (384, 128),
    "idefics3": (1024, 512),
    "qwen2-vl": (672, 672),
    "qwen2.5-vl": (672, 672),
}
VISUAL_TOKENS = {  # what the wrapper's processor gives on IMAGE_PX (checked by the unit test)
    "llava": 576,
    "llava-next": 876,
    "llava-onevision": 981,
    "idefics3": 576,
    "qwen2-vl": 576,
    "qwen2.5-vl": 576,
}
NEXT_PINPOINTS = [[336, 336], [336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
QWEN_IDS = {"vision_start_token_id": 32002, "vision_end_token_id": 32003, "video_token_id": 32004}
TOWER = {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 2}


def arms_of(wrapper: str) -> tuple:
    """Returns the arms measured on `wrapper` (method, budget[, name])."""
    return COMMON_ARMS + (CLIP_ONLY_ARMS if wrapper == "llava" else ())


def onevision_pinpoints() -> list[list[int]]:
    """Returns anyres_max_9's grid pinpoints: every (384·i, 384·j) for i, j in 1..6."""
    return [[384 * i, 384 * j] for i in range(1, 7) for j in range(1, 7)]


def qwen_text(shape: dict) -> dict:
    """Returns the Qwen-VL text config (a dict) at `shape` with 3-D rotary sections."""
    text = dict(shape)
    unit = shape["head_dim"] // 16  # Qwen's 16/24/24 of head_dim 128, scaled to head_dim
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 1000000.0,
        "mrope_section": [2 * unit, 3 * unit, 3 * unit],  # sums to head_dim / 2
    }
    return text


def wrapper_config(wrapper: str, shape: dict = SHAPE):
    """Returns the no-weights transformers config of `wrapper`: its family's decoder at `shape`
    (family_realization's SHAPE by default) behind a 2-layer, width-256 tower at the real
    geometry (tile size, patch, pinpoints, pixel shuffle, merge)."""
    import transformers as tf

    if wrapper == "llava":
        return llava_config("llama") if shape is SHAPE else _llava(shape)
    if wrapper == "llava-next":
        vision = tf.CLIPVisionConfig(
            **TOWER, num_attention_heads=4, image_size=336, patch_size=14, hidden_act="quick_gelu"
        )
        return tf.LlavaNextConfig(
            vision_config=vision,
            text_config=tf.MistralConfig(**shape),
            image_token_id=IMAGE_TOKEN,
            image_grid_pinpoints=NEXT_PINPOINTS,
            vision_feature_layer=-2,
            vision_feature_select_strategy="default",
            tie_word_embeddings=False,
        )
    if wrapper == "llava-onevision":
        vision = tf.SiglipVisionConfig(
            **TOWER,
            num_attention_heads=4,
            image_size=384,
            patch_size=14,
            hidden_act="gelu_pytorch_tanh",
            vision_use_head=False,
        )
        return tf.LlavaOnevisionConfig(
            vision_config=vision,
            text_config=tf.Qwen2Config(**shape),
            image_token_id=IMAGE_TOKEN,
            video_token_id=QWEN_IDS["video_token_id"],
            image_grid_pinpoints=onevision_pinpoints(),
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
            vision_aspect_ratio="anyres_max_9",
            tie_word_embeddings=False,
        )
    if wrapper == "idefics3":
        vision = tf.Idefics3VisionConfig(
            **TOWER, num_attention_heads=4, image_size=512, patch_size=16
        )
        return tf.Idefics3Config(
            vision_config=vision,
            text_config=tf.LlamaConfig(**shape),
            image_token_id=IMAGE_TOKEN,
            scale_factor=4,
            tie_word_embeddings=False,
        )
    if wrapper == "qwen2-vl":
        vision = dict(
            depth=2,
            embed_dim=256,
            hidden_size=shape["hidden_size"],
            num_heads=4,
            mlp_ratio=4,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_chans=3,
        )
        return tf.Qwen2VLConfig(
            vision_config=vision,
            text_config=qwen_text(shape),
            image_token_id=IMAGE_TOKEN,
            tie_word_embeddings=False,
            **QWEN_IDS,
        )
    if wrapper == "qwen2.5-vl":
        vision = dict(
            depth=2,
            hidden_size=256,
            intermediate_size=1024,
            out_hidden_size=shape["hidden_size"],
            num_heads=4,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
            fullatt_block_indexes=[1],
            in_channels=3,
        )
        return tf.Qwen2_5_VLConfig(
            vision_config=vision,
            text_config=qwen_text(shape),
            image_token_id=IMAGE_TOKEN,
            tie_word_embeddings=False,
            **QWEN_IDS,
        )
    raise ValueError(f"unknown wrapper {wrapper!r}: choose from {', '.join(WRAPPERS)}")


def _llava(shape: dict):
    """Returns llava_config("llama") with its decoder at `shape` (the unit test's narrow one)."""
    config = llava_config("llama")
    config.text_config = text_config("llama").__class__(**shape)
    return config


def samples_of(wrapper: str, limit: int) -> list:
    """Returns the first `limit` shapes test samples with their images resized to
    IMAGE_PX[wrapper]."""
    samples = load_suite("shapes", limit=limit)
    for s in samples:
        s.image = s.image.convert("RGB").resize(IMAGE_PX[wrapper])
    return samples


def build(wrapper: str, limit: int, seed: int, shape: dict = SHAPE):
    """Returns (loaded, prepared): `wrapper`'s no-weights model (fp32, CPU) and its prepared
    shapes samples (see `samples_of`)."""
    from adabench.models.no_weights import build_no_weights

    loaded = build_no_weights(
        wrapper_config(wrapper, shape), device="cpu", dtype="float32", seed=seed
    )
    loaded.name = f"{wrapper}-nw"
    prepared = prepare_samples(loaded, get_spec("shapes"), samples_of(wrapper, limit))
    return loaded, prepared


def visual_tokens(loaded, prepared) -> int:
    """Returns the visual tokens of the first prepared prompt (image-token positions)."""
    return int((prepared[0].input_ids == loaded.model.config.image_token_id).sum())


def wrapper_rows(wrapper: str, limit: int, rounds: int, seed: int, warmup: int, max_new: int):
    """Builds `wrapper`'s no-weights model and measures its arms on the resized shapes test;
    returns one row per arm (paired.measure's fields, prefill_ms among them, + visual_tokens and prompt_len)."""
    loaded, prepared = build(wrapper, limit, seed)
    arms = arms_of(wrapper)
    rows = measure(
        loaded, wrapper, arms, prepared, rounds, seed, warmup, max_new, replayed=(), decide_calls=0
    )
    for r in rows:
        r["visual_tokens"] = visual_tokens(loaded, prepared)
        r["prompt_len"] = float(np.mean([ps.input_ids.shape[1] for ps in prepared]))
    del loaded
    return rows


def print_rows(rows: list[dict]) -> None:
    print(
        f"{'wrapper':>15} {'arm':>15} {'FLOPs':>6} {'latency ratio [95% CI]':>24}"
        f" {'visual':>6} {'prompt':>6} {'latency ms':>10} {'prefill ms':>10} {'tokens':>6}"
    )
    for r in rows:
        print(
            f"{r['model']:>15} {r['arm']:>15} {r['flops_ratio']:6.3f}"
            f" {r['latency_ratio']:7.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            f" {r['visual_tokens']:6d} {r['prompt_len']:6.0f} {r['latency_ms']:10.1f}"
            f" {r['prefill_ms']:10.1f} {r['new_tokens']:6.2f}"
        )


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wrappers", default=",".join(WRAPPERS), help="comma-separated")
    ap.add_argument("--limit", type=int, default=6, help="shapes test samples")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1, help="samples every arm runs first")
    ap.add_argument("--max-new-tokens", type=int, default=0, help="0: the suite's (3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    wrappers = [w.strip() for w in args.wrappers.split(",") if w.strip()]
    unknown = sorted(set(wrappers) - set(WRAPPERS))
    if unknown:
        ap.error(f"unknown wrappers {unknown}: choose from {', '.join(WRAPPERS)}")
    if args.limit < 2 or args.rounds < 1:
        ap.error("--limit must be at least 2 and --rounds at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    max_new = args.max_new_tokens or int(get_spec("shapes").max_new_tokens)
    load = os.getloadavg()[0]
    print(
        f"card: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {load:.2f}; no-weights fp32 on CPU, decoder width "
        f"1024, 16 blocks, 16/8 heads, head_dim 64, intermediate 2816; towers 2 layers x 256 at "
        f"the real geometry; shapes test {args.limit} samples x {args.rounds} rounds, {max_new} "
        f"new tokens, paired, interleaved (seed {args.seed})",
        flush=True,
    )
    rows, failures, seconds = run_each(
        wrappers,
        lambda name: wrapper_rows(name, args.limit, args.rounds, args.seed, args.warmup, max_new),
        print_rows,
    )
    print("\nall wrappers:")
    print_rows(rows)
    result = {
        "load_average_start": load,
        "settings": {
            "limit": args.limit,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "max_new_tokens": max_new,
            "seed": args.seed,
            "threads": torch.get_num_threads(),
            "shape": SHAPE,
            "image_px": IMAGE_PX,
            "vision": "2 layers x 256 at each wrapper's real geometry",
        },
        "seconds": seconds,
        "failures": failures,
        "rows": rows,
    }
    report(result, args.out)
    return result


if __name__ == "__main__":
    main()
