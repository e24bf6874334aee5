"""Shipped llava-1.5 configs (offline) and random-weight builds (`--no-weights`), end to end on CPU."""

from __future__ import annotations

import json
import math
import resource

import pytest
import torch

from adabench.models import catalog, flops
from adabench.models import no_weights as nw
from adabench.models.plan import Plan


@pytest.mark.parametrize(
    ("name", "layers", "hidden", "inter", "heads", "prefix", "params_b"),
    [
        ("llava-1.5-7b", 32, 4096, 11008, 32, 16, 7.063),
        ("llava-1.5-13b", 40, 5120, 13824, 40, 20, 13.351),
    ],
)
def test_shipped_config_loads_offline_and_builds_on_meta(
    name, layers, hidden, inter, heads, prefix, params_b
):
    config = catalog.shipped_config(name)
    text, vision = config.text_config, config.vision_config
    assert (
        text.num_hidden_layers,
        text.hidden_size,
        text.intermediate_size,
        text.num_attention_heads,
    ) == (layers, hidden, inter, heads)
    assert (text.vocab_size, config.image_token_id, config.vision_feature_layer) == (
        32064,
        32000,
        -2,
    )
    assert (vision.num_hidden_layers, vision.hidden_size, vision.image_size, vision.patch_size) == (
        24,
        1024,
        336,
        14,
    )
    assert flops.num_image_tokens(config) == 576
    assert catalog.adallava_settings_for(name) == {"prefix_layers": prefix, "group_size": 8}

    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = nw.create_empty(config, "meta", torch.float16)
    rss_growth_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before_mb
    assert rss_growth_mb < 200, f"meta build grew peak RSS by {rss_growth_mb:.0f} MB"
    assert sum(p.numel() for p in model.parameters()) / 1e9 == pytest.approx(params_b, abs=0.01)
    assert next(model.parameters()).device.type == "meta"

    # The analytic block FLOPs match the module shapes: every Linear of a block, 2·s·in·out,
    # plus the attention matmuls 4·s²·(heads·head_dim).
    s = 640
    block = model.model.language_model.layers[0]
    linear = sum(
        2 * s * m.in_features * m.out_features
        for m in block.modules()
        if isinstance(m, torch.nn.Linear)
    )
    assert linear + 4 * s * s * hidden == flops.decoder_block_flops(config, s, s)


def test_unknown_shipped_name_is_none_and_config_for_explains():
    from adabench.errors import UserError

    assert catalog.shipped_config("llava-9b") is None
    assert set(catalog.shipped_names()) >= {"llava-1.5-7b", "llava-1.5-13b"}
    with pytest.raises(UserError, match="shipped config"):
        catalog.config_for("llava-9b")


def test_describe_shipped_reports_weights_from_the_hf_cache(tmp_path):
    info = catalog.describe_shipped("llava-1.5-7b", cache_dir=tmp_path)
    assert info["weights_present"] is False
    assert (info["decoder_layers"], info["image_tokens"], info["adallava"]["prefix_layers"]) == (
        32,
        576,
        16,
    )
    # A cache laid out as huggingface_hub writes it: refs/main → snapshots/<commit>/files.
    repo = tmp_path / "models--llava-hf--llava-1.5-7b-hf"
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    (snap / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": shards[0], "b": shards[1]}})
    )
    (snap / shards[0]).write_bytes(b"x")
    assert (
        catalog.describe_shipped("llava-1.5-7b", cache_dir=tmp_path)["weights_present"] is False
    )  # one shard missing
    (snap / shards[1]).write_bytes(b"x")
    assert catalog.describe_shipped("llava-1.5-7b", cache_dir=tmp_path)["weights_present"] is True


def test_synthetic_processor_expands_576_image_tokens():
    from PIL import Image

    processor = nw.build_synthetic_processor(catalog.shipped_config("llava-1.5-7b"))
    enc = processor(
        images=Image.new("RGB", (400, 300)),
        text="USER: <image>\nwhat color is the blorp ? ASSISTANT:",
        return_tensors="pt",
    )
    ids = enc["input_ids"][0]
    assert int((ids == 32000).sum()) == 576
    assert len(ids) == 576 + 8  # one token per word; the unknown word is <unk>, not dropped
    assert int(ids.max()) < 32064
    assert tuple(enc["pixel_values"].shape) == (1, 3, 336, 336)


def test_build_no_weights_is_random_seeded_and_on_target_dtype(random_llava_dir):
    from transformers import LlavaForConditionalGeneration

    torch.set_num_threads(1)
    a = nw.build_no_weights(str(random_llava_dir), device="cpu", dtype="float32", seed=3)
    b = nw.build_no_weights(str(random_llava_dir), device="cpu", dtype="bfloat16", seed=3)
    c = nw.build_no_weights(str(random_llava_dir), device="cpu", dtype="float32", seed=4)
    saved = LlavaForConditionalGeneration.from_pretrained(random_llava_dir)
    assert a.weights == "random" and a.adallava is None and a.device.type == "cpu"
    assert all(p.dtype == torch.bfloat16 for p in b.model.parameters())
    wa = a.model.model.language_model.layers[0].self_attn.q_proj.weight
    wc = c.model.model.language_model.layers[0].self_attn.q_proj.weight
    ws = saved.model.language_model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(wa, wc) and not torch.equal(wa, ws)
    assert torch.equal(
        wa,
        nw.build_no_weights(str(random_llava_dir), "cpu", "float32", seed=3)
        .model.model.language_model.layers[0]
        .self_attn.q_proj.weight,
    )
    assert wa.std().item() == pytest.approx(nw.INIT_STD, rel=0.2)
    assert a.model.model.language_model.norm.weight.eq(1).all()


def _run_one_cell(
    loaded, method: str, budget: float, limit: int = 2, max_new_tokens: int = 2
) -> tuple[dict, list]:
    from adabench.data.suites import get_spec, load_suite
    from adabench.sweep.cell import CellConfig, prepare_samples
    from adabench.sweep.group import run_single

    spec = get_spec("shapes")
    samples = load_suite("shapes", split="test", limit=limit, seed=0)
    cfg = CellConfig(
        model=loaded.name,
        method=method,
        budget=budget,
        limit=limit,
        warmup=0,
        max_new_tokens=max_new_tokens,
    )
    return run_single(loaded, spec, samples, prepare_samples(loaded, spec, samples), cfg)


@pytest.mark.parametrize(
    ("variant", "method", "budget"),
    [(None, "layer-drop", 0.5), ("L", "adallava-l", 0.75), ("H", "adallava-h", 0.75)],
)
def test_no_weights_cell_runs_end_to_end(random_llava_dir, variant, method, budget):
    torch.set_num_threads(1)
    loaded = nw.build_no_weights(
        str(random_llava_dir), device="cpu", dtype="float32", seed=0, adallava_variant=variant
    )
    assert loaded.variant == variant
    cell, rows = _run_one_cell(loaded, method, budget)
    assert cell["n"] == 2 and math.isfinite(cell["latency_ms_mean"]) and cell["latency_ms_mean"] > 0
    assert cell["flops"] > cell["llm_flops"] > 0
    assert 0 < cell["flops_ratio_max"] <= budget + 1e-9
    assert all(r["plan"] for r in rows)


def test_no_weights_llava_shaped_config_uses_the_synthetic_processor():
    """A llava-1.5-shaped config (336 px, patch 14, image id 32000) at toy widths runs a cell."""
    config = catalog.shipped_config("llava-1.5-7b")
    config.vision_config.update(
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        }
    )
    config.text_config.update(
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "head_dim": 16,
        }
    )
    torch.set_num_threads(1)
    loaded = nw.build_no_weights(
        config, device="cpu", dtype="float32", seed=0, adallava_variant="L"
    )
    assert loaded.weights == "random" and loaded.adallava.config.prefix_layers == 2
    cell, rows = _run_one_cell(loaded, "adallava-l", 0.75, limit=1, max_new_tokens=1)
    plan = Plan.from_kept_blocks(4, [0, 1, 2])
    assert rows[0]["plan"].count("1") == 3 and rows[0]["flops_ratio"] == pytest.approx(0.75)
    assert cell["llm_flops"] == flops.llm_flops(config, _prompt_len(loaded), plan)


def _prompt_len(loaded) -> int:
    """Returns the decoder sequence of the first shapes sample: its tokens + the latency token."""
    from adabench.data.suites import get_spec, load_suite

    spec = get_spec("shapes")
    sample = load_suite("shapes", split="test", limit=1, seed=0)[0]
    enc = loaded.processor(
        images=sample.image, text=spec.render_prompt(sample), return_tensors="pt"
    )
    return enc["input_ids"].shape[1] + 1


def test_centred_random_scheduler_plans_follow_the_input(random_llava_dir):
    from adabench.data.suites import get_spec, load_suite
    from adabench.sweep.cell import CellConfig, prepare_samples
    from adabench.sweep.group import run_single

    torch.set_num_threads(1)
    loaded = nw.build_no_weights(
        str(random_llava_dir), device="cpu", dtype="float32", seed=0, adallava_variant="L"
    )
    spec = get_spec("shapes")
    samples = load_suite("shapes", split="test", limit=12, seed=0)
    prepared = prepare_samples(loaded, spec, samples)
    assert nw.center_random_scheduler_(loaded, prepared) == 8
    cfg = CellConfig(model="random", method="adallava-l", budget=0.75, warmup=0, max_new_tokens=1)
    cell, _ = run_single(loaded, spec, samples, prepared, cfg)
    assert cell["distinct_plans"] > 1
