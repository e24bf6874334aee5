"""How much of a plan's FLOP saving becomes time saving, per decoder family (reported, never
asserted).

Swept: the seven decoder families adabench executes (llama, mistral, qwen2, qwen3, phi3, gemma2,
gemma3), each as a no-weights LlavaConfig (adabench.models.no_weights: seeded random weights,
fp32 on CPU) whose text_config is that family's own transformers class (LlamaConfig,
MistralConfig, Qwen2Config, Qwen3Config, Phi3Config, Gemma2Config, Gemma3TextConfig) at one
compute-bound shape: width 1024, 16 decoder blocks, 16 query heads / 8 kv heads (GQA), head_dim
64, intermediate 2816, the llava-1.5 vocabulary (32064; `<image>` 32000, `<pad>` 32001, the
synthetic processor's word-level tokenizer), everything else the family's defaults (Gemma's
query_pre_attn_scalar set to head_dim; sliding windows, soft-caps and rotary tables as the class
sets them). The embedded tiny model is overhead-bound; this shape is not: a ~600-token prefill is
matmuls of 600 × 1024 × 2816.

Vision tower: a 2-layer CLIP tower (width 256) at llava-1.5's geometry (336 px, patch 14, feature
layer −2, "default" select strategy), so the prompt holds llava-1.5's 576 visual tokens and the
decoder sees the sequence length it would see under llava-1.5, while the tower costs ~2 GFLOPs
instead of ViT-L/336's ~350 (more than this decoder's prefill): the ratios are then about the
decoder, the part a plan changes, and the run fits 10 minutes on 2 cores.

Arms per family, paired and randomly interleaved on the same samples (benchmarks/paired.py: in
every round each sample runs every arm once, in an order shuffled per (round, sample) from a
fixed seed; warm-up runs every arm first): full, "full (A/A)" (a second full arm: its ratio to
full is the noise floor), layer-drop@0.5, head-prune@0.5, head-prune@0.75, adallava-h@0.5,
adallava-h@0.75. AdaLLaVA-H is a random head (P = 8, r = 8) centred on the inputs
(center_random_scheduler_) so plans vary per request, as adaptive_overhead.py's no-weights rows.
Shapes test, 8 samples by default, 1 round, the suite's 3 new tokens: a full prefill here is
~1.5 s on 2 cores (~2 s for Gemma 2), one sample through the seven arms ~8.5 s, so 8 samples plus
build, centring and one warm-up sample take ~80 s per family and ~10 minutes for all seven; with
one round every sample's ratio is one pair, and the median over samples keeps a stray slow run
from moving it.

Numbers per (family, arm):
  latency_ratio   median over samples of (arm latency ÷ full latency, each the mean over rounds)
                  with a 95 % bootstrap CI over samples
  flops_ratio     mean decoder-block FLOPs ratio (adabench.models.flops, as the sweep reports it)
  gap_to_hp       adallava-h only: its latency_ratio − head-prune's at the same budget (what
                  deciding per request costs, against a static plan of the same size)
  latency_ms      mean end-to-end latency (vision + prefill + decode)
  overhead_ms     the method's own work (encoder / scheduler / plan split, see
                  adabench.sweep.generate)
  new_tokens      mean generated tokens (a random model may stop at EOS early)
The issue's targets (compared in the printout, never asserted): layer-drop@0.5 and head-prune@0.5
at ≤ 0.53 × full; adallava-h within +0.03 of head-prune at 0.75 and at 0.5.
A family that fails to build or run is reported with its traceback's last lines (rows: none).
Prints a card, one table row per family × arm and one JSON line; `--out FILE` writes the JSON.

    python benchmarks/family_realization.py [--families llama,qwen3] [--limit 8] [--rounds 1]
        [--max-new-tokens 3] [--threads N] [--out results/family_realization.json]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from adabench.data.suites import get_spec, load_suite
from adabench.sweep.cell import prepare_samples

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired import PARTS, measure, report, run_each  # noqa: E402

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3")
ARMS = (
    ("full", 1.0),
    ("full", 1.0, "full (A/A)"),
    ("layer-drop", 0.5),
    ("head-prune", 0.5),
    ("head-prune", 0.75),
    ("adallava-h", 0.5),
    ("adallava-h", 0.75),
)
SHAPE = {
    "hidden_size": 1024,
    "intermediate_size": 2816,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 32064,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 32001,
    "max_position_embeddings": 4096,
}
IMAGE_TOKEN = 32000
TARGET_STATIC = 0.53  # layer-drop@0.5, head-prune@0.5: latency ratio at most this
TARGET_GAP = 0.03  # adallava-h − head-prune at the same budget: at most this


def text_config(family: str):
    """Returns `family`'s own transformers text config at SHAPE."""
    import transformers as tf

    cls = {
        "llama": tf.LlamaConfig,
        "mistral": tf.MistralConfig,
        "qwen2": tf.Qwen2Config,
        "qwen3": tf.Qwen3Config,
        "phi3": tf.Phi3Config,
        "gemma2": tf.Gemma2Config,
        "gemma3": tf.Gemma3TextConfig,
    }[family]
    extra = {"query_pre_attn_scalar": SHAPE["head_dim"]} if family.startswith("gemma") else {}
    return cls(**SHAPE, **extra)


def llava_config(family: str):
    """Returns the no-weights LlavaConfig of `family`: its text config at SHAPE behind a small
    CLIP tower at llava-1.5's geometry (576 visual tokens)."""
    from transformers import CLIPVisionConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=336,
        patch_size=14,
        projection_dim=256,
        hidden_act="quick_gelu",
    )
    return LlavaConfig(
        text_config=text_config(family),
        vision_config=vision,
        image_token_index=IMAGE_TOKEN,
        image_seq_length=(336 // 14) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )


def family_rows(
    family: str, limit: int, rounds: int, seed: int, warmup: int, max_new: int
) -> list[dict]:
    """Builds `family`'s no-weights model with a random centred AdaLLaVA-H head and measures
    ARMS on the shapes test; returns one row per arm, with gap_to_hp on the adallava-h rows."""
    from adabench.models.no_weights import (
        build_no_weights,
        build_random_head,
        center_random_scheduler_,
    )

    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=limit)
    loaded = build_no_weights(llava_config(family), device="cpu", dtype="float32", seed=seed)
    loaded.name = f"{family}-nw"
    prepared = prepare_samples(loaded, spec, samples)
    loaded.adallava = build_random_head(loaded.config, "H", loaded.device, loaded.dtype, seed + 1)
    center_random_scheduler_(loaded, prepared)
    rows = measure(
        loaded, family, ARMS, prepared, rounds, seed, warmup, max_new, replayed=(), decide_calls=50
    )
    by_arm = {r["arm"]: r for r in rows}
    for r in rows:
        r["prompt_len"] = int(prepared[0].input_ids.shape[1])
        r["gap_to_hp"] = float("nan")
        if r["arm"].startswith("adallava-h@"):
            hp = by_arm.get(r["arm"].replace("adallava-h", "head-prune"))
            if hp is not None:
                r["gap_to_hp"] = r["latency_ratio"] - hp["latency_ratio"]
    del loaded
    return rows


def target_note(row: dict) -> str:
    """Returns the issue's target for this row and whether it is met ("" when it has none)."""
    arm = row["arm"]
    if arm in ("layer-drop@0.5", "head-prune@0.5"):
        ok = row["latency_ratio"] <= TARGET_STATIC
        return f"≤{TARGET_STATIC:.2f}: {'met' if ok else 'MISSED'}"
    if arm.startswith("adallava-h@"):
        ok = row["gap_to_hp"] <= TARGET_GAP
        return f"gap ≤+{TARGET_GAP:.2f}: {'met' if ok else 'MISSED'}"
    return ""


def print_rows(rows: list[dict]) -> None:
    print(
        f"{'family':>8} {'arm':>16} {'FLOPs':>6} {'latency ratio [95% CI]':>24} {'gap to hp':>9}"
        f" {'ms':>8} {'overhead ms':>11} {'enc/sched/plan ms':>20} {'tokens':>6}  target"
    )
    for r in rows:
        split = "/".join(f"{r[f'overhead_{p}_ms']:.2f}" for p in PARTS)
        gap = f"{r['gap_to_hp']:+9.3f}" if r["gap_to_hp"] == r["gap_to_hp"] else f"{'':>9}"
        print(
            f"{r['model']:>8} {r['arm']:>16} {r['flops_ratio']:6.3f}"
            f" {r['latency_ratio']:7.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] {gap}"
            f" {r['latency_ms']:8.1f} {r['overhead_ms']:11.2f} {split:>20} {r['new_tokens']:6.2f}"
            f"  {target_note(r)}"
        )


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated")
    ap.add_argument("--limit", type=int, default=8, help="shapes test samples")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1, help="samples every arm runs first")
    ap.add_argument("--max-new-tokens", type=int, default=0, help="0: the suite's (3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        ap.error(f"unknown families {unknown}: choose from {', '.join(FAMILIES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    max_new = args.max_new_tokens or int(get_spec("shapes").max_new_tokens)
    load = os.getloadavg()[0]
    print(
        f"card: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {load:.2f}; no-weights fp32 on CPU, width 1024, "
        f"16 blocks, 16/8 heads, head_dim 64, intermediate 2816; shapes test {args.limit} "
        f"samples x {args.rounds} rounds, {max_new} new tokens, paired, interleaved "
        f"(seed {args.seed})",
        flush=True,
    )
    rows, failures, seconds = run_each(
        families,
        lambda name: family_rows(name, args.limit, args.rounds, args.seed, args.warmup, max_new),
        print_rows,
    )
    print("\nall families:")
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
            "vision": "CLIP 2 layers x 256, 336 px / patch 14 (576 visual tokens)",
        },
        "seconds": seconds,
        "failures": failures,
        "rows": rows,
    }
    report(result, args.out)
    return result


if __name__ == "__main__":
    main()
