"""Analytic FLOPs (adabench.models.flops) against torch's FlopCounterMode on tiny LLaVA models.

FlopCounterMode counts matmuls and convolutions (2 × MAC), like the analytic formulas, so on
eager attention the two agree exactly; the 3 % tolerance is the issue's contract. Eager
attention is required: FlopCounterMode has no formula for the CPU SDPA kernel and would count
attention as zero. `counted` (tests/flop_count.py) leaves out the rotary-table matmul some
transformers releases count.
"""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from adabench.models import flops
from adabench.models.plan import LayerPlan, Plan
from tests.flop_count import cache_of, counted

IMAGE_TOKEN = 99
TEXT_TOKENS = 6


def tiny_config(layers=4, heads=4, kv_heads=2, intermediate=128, head_dim=16) -> LlavaConfig:
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=16,
        projection_dim=32,
    )
    text = LlamaConfig(
        hidden_size=64,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=100,
        max_position_embeddings=256,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN, image_seq_length=4
    )
    config._attn_implementation = "eager"
    return config


def build(config: LlavaConfig) -> LlavaForConditionalGeneration:
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    model.config._attn_implementation = "eager"
    return model


def inputs(config: LlavaConfig) -> dict:
    n_img = flops.num_image_tokens(config)
    ids = [1, 2, 3] + [IMAGE_TOKEN] * n_img + [5, 6, 7]
    return {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
        "pixel_values": torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
    }


def counted_prefill(model, config) -> tuple[int, int]:
    batch = inputs(config)
    total = counted(lambda: model(**batch, logits_to_keep=1))
    return total, batch["input_ids"].shape[1]


@pytest.fixture(scope="module", autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("kv_heads", [4, 2, 1], ids=["mha", "gqa2", "mqa"])
def test_full_prefill_matches_flop_counter(kv_heads):
    config = tiny_config(kv_heads=kv_heads)
    reference, seq_len = counted_prefill(build(config), config)
    analytic = flops.prefill_flops(config, seq_len)
    assert seq_len == 3 + 4 + 3
    # Exact in practice: both count only matmuls/convs at 2 × MAC; norms/softmax are 0 in both.
    assert analytic == reference


def test_vision_and_projector_match_flop_counter():
    config = tiny_config()
    model = build(config)
    pixels = inputs(config)["pixel_values"]
    tower = counted(lambda: model.model.vision_tower(pixels, output_hidden_states=True))
    assert flops.vision_flops(config) == tower
    feats = torch.randn(1, flops.num_image_tokens(config), 32)
    proj = counted(lambda: model.model.multi_modal_projector(feats))
    assert flops.projector_flops(config, flops.num_image_tokens(config)) == proj


def test_skipped_block_plan_matches_model_with_fewer_blocks():
    # FLOPs do not depend on weights, so the reference for "blocks 0 and 2 of 4" is any model
    # with the same shapes and 2 blocks.
    config4, config2 = tiny_config(layers=4), tiny_config(layers=2)
    reference, seq_len = counted_prefill(build(config2), config2)
    plan = Plan.from_kept_blocks(4, [0, 2])
    assert flops.prefill_flops(config4, seq_len, plan) == reference


def test_sliced_head_plan_matches_model_with_fewer_heads():
    # Query heads (0, 1) of 4 with 2 KV heads share KV head 0 → 2 query heads, 1 KV head;
    # MLP groups (0, 1) of 4 → half the intermediate size. head_dim stays 16.
    config = tiny_config(heads=4, kv_heads=2, intermediate=128)
    small = tiny_config(heads=2, kv_heads=1, intermediate=64)
    reference, seq_len = counted_prefill(build(small), small)
    layer = LayerPlan(heads=(0, 1), mlp_groups=(0, 1))
    plan = Plan(layers=(layer,) * 4, mlp_group_count=4)
    assert flops.prefill_flops(config, seq_len, plan) == reference


def test_heads_from_two_kv_groups_keep_both_kv_heads():
    config = tiny_config(heads=4, kv_heads=2)
    plan = Plan(layers=(LayerPlan(heads=(0, 2)),) * 4)
    expected = 4 * flops.decoder_block_flops(config, 10, 10, heads=2, kv_heads=2)
    assert flops.llm_flops(config, 10, plan) == expected


def test_decode_step_matches_flop_counter():
    config = tiny_config()
    model = build(config)
    batch = inputs(config)
    prompt_len = batch["input_ids"].shape[1]
    with torch.no_grad():
        out = model(**batch, use_cache=True, logits_to_keep=1)
    step_mask = torch.ones(1, prompt_len + 1, dtype=torch.long)
    reference = counted(
        lambda: model(
            input_ids=torch.tensor([[5]]),
            attention_mask=step_mask,
            **cache_of(out),
            use_cache=True,
            logits_to_keep=1,
        )
    )
    assert flops.decode_step_flops(config, prompt_len + 1) == reference


def test_generation_matches_flop_counter_on_generate():
    config = tiny_config()
    model = build(config)
    batch = inputs(config)
    prompt_len, new = batch["input_ids"].shape[1], 4
    reference = counted(
        lambda: model.generate(
            **batch, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0
        )
    )
    result = flops.generation_flops(config, prompt_len, new)
    assert result["flops"] == reference
    steps = [flops.decode_step_flops(config, prompt_len + j) for j in range(1, new)]
    assert result["flops"] == flops.prefill_flops(config, prompt_len) + sum(steps)
    assert result["flops_ratio"] == 1.0


def test_fastv_shortens_blocks_after_k():
    config = tiny_config()
    plan = Plan.full(4).with_tokens(fastv_layer=1, fastv_removed=3)
    dense = flops.decoder_block_flops
    # tokens are dropped before block K (ranked by block K-1's attention): blocks >= K are short
    expected = 1 * dense(config, 10, 10) + 3 * dense(config, 7, 7)
    assert flops.llm_flops(config, 10, plan) == expected
    # decode: blocks after K attend to R fewer cached keys
    step = 1 * dense(config, 1, 11) + 3 * dense(config, 1, 8)
    assert flops.llm_flops(config, 1, plan, past_len=10) == step
    assert 0.5 < flops.flops_ratio(config, 10, plan) < 1.0


def test_flops_ratio_counts_token_reduction_against_full_length():
    config = tiny_config()
    plan = Plan.full(4).with_tokens(visual_tokens_removed=2)
    ratio = flops.flops_ratio(config, 8, plan)  # 10 tokens before PruMerge
    assert ratio == pytest.approx(flops.llm_flops(config, 8) / flops.llm_flops(config, 10))
    assert flops.flops_ratio(config, 10, Plan.from_kept_blocks(4, [0, 1])) == pytest.approx(0.5)
    assert flops.flops_ratio(config, 10, None) == 1.0
    # PruMerge shrinks the projector input too
    full, pruned = flops.prefill_flops(config, 10), flops.prefill_flops(config, 8, plan)
    assert pruned < full


def test_plan_length_must_match_model():
    with pytest.raises(ValueError, match="plan has 3 layers"):
        flops.llm_flops(tiny_config(layers=4), 10, Plan.full(3))


def test_kv_cache_and_weight_bytes():
    config = tiny_config(heads=4, kv_heads=2, head_dim=16)
    # 4 blocks × (K+V) × 2 kv heads × 16 dims × 10 positions × 2 bytes
    assert flops.kv_cache_bytes(config, 10) == 4 * 2 * 2 * 16 * 10 * 2
    assert flops.kv_cache_bytes(config, 10, Plan.from_kept_blocks(4, [1])) == 2 * 2 * 16 * 10 * 2
    model = build(config)
    n_params = sum(p.numel() for p in model.parameters())
    assert flops.weight_bytes(model) == 4 * n_params


def llava_7b_config() -> LlavaConfig:
    vision = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
    )
    text = LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32064,
    )
    return LlavaConfig(vision_config=vision, text_config=text)


def test_llava_7b_shaped_prefill():
    config = llava_7b_config()
    assert flops.num_image_tokens(config) == 576
    llm_tflops = flops.llm_flops(config, 576 + 64) / 1e12
    print(f"llava-1.5-7b: LLM prefill 640 tokens = {llm_tflops:.2f} TFLOPs")
    assert llm_tflops == pytest.approx(8.6, rel=0.10)
    # CLIP ViT-L/14-336, all 24 layers on 577 tokens: ~0.38 TFLOPs
    assert flops.vision_flops(config) / 1e12 == pytest.approx(0.38, rel=0.05)
    # fp16 KV cache for 640 tokens: 32 blocks × 2 × 4096 × 640 × 2 bytes = 320 MiB
    assert flops.kv_cache_bytes(config, 640) == 320 * 2**20
