"""The shipped VLM configs (adabench/configs/) against the hub checkpoints they stand for: the
parameter count of a meta-device build equals the published one, the shape fields checked
against a copy of the hub config.json hold, and the synthetic processor has the real
checkpoint's preprocessor bounds. Sources per value: docs/shipped_configs.md."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from adabench.models import catalog
from adabench.models import no_weights as nw

# Published parameter counts (hub safetensors metadata; docs/shipped_configs.md): exact where a
# source gives the exact count, else the hub page's rounded figure (checked to 1 %).
PUBLISHED_PARAMS = {
    "llava-v1.6-mistral-7b": 7.57e9,
    "llava-onevision-qwen2-0.5b": 0.894e9,
    "llava-onevision-qwen2-7b": 8.03e9,
    "qwen2.5-vl-3b": 3_754_622_976,
    "qwen2.5-vl-7b": 8_292_166_656,
    "smolvlm-256m": 256_484_928,
}
EXACT = {"qwen2.5-vl-3b", "qwen2.5-vl-7b", "smolvlm-256m"}

_BUILT: dict = {}


def _meta(name: str):
    if name not in _BUILT:
        _BUILT[name] = nw.create_empty(catalog.shipped_config(name), "meta", torch.bfloat16)
    return _BUILT[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_meta_build_has_the_published_parameter_count(name):
    total = sum(p.numel() for p in _meta(name).parameters())
    if name in EXACT:
        assert total == PUBLISHED_PARAMS[name]
    else:
        assert total == pytest.approx(PUBLISHED_PARAMS[name], rel=0.01)


@pytest.mark.parametrize(
    ("name", "tied"),
    [
        ("qwen2.5-vl-3b", True),
        ("llava-onevision-qwen2-0.5b", True),
        ("smolvlm-256m", False),
        ("qwen2.5-vl-7b", False),
    ],
)
def test_lm_head_is_tied_exactly_where_the_hub_config_ties_it(name, tied):
    model = _meta(name)
    shared = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert shared is tied


def test_qwen2_5_vl_3b_blocks_have_the_published_sizes():
    # Per-module counts of the released model's torchinfo dump (docs/shipped_configs.md).
    model = _meta("qwen2.5-vl-3b")

    def count(module):
        return sum(p.numel() for p in module.parameters())

    visual = model.model.visual
    assert count(visual.patch_embed) == 1_505_280
    assert count(visual.blocks[0]) == 19_702_200
    assert count(visual.merger) == 1_280 + 36_707_328
    assert count(model.model.language_model.layers[0]) == 77_076_992


# Shape fields read from a copy of each hub config.json (or, where the hub config leaves a field
# out, from the transformers class default it then takes); docs/shipped_configs.md.
HUB_FIELDS = {
    "llava-v1.6-mistral-7b": {
        "image_token_id": 32000,
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
        "text_config.vocab_size": 32064,
        "text_config.hidden_size": 4096,
        "text_config.num_hidden_layers": 32,
        "text_config.num_key_value_heads": 8,
        "text_config.intermediate_size": 14336,
        "text_config.sliding_window": None,
        "text_config.rope_parameters.rope_theta": 1000000.0,
        "vision_config.image_size": 336,
        "vision_config.patch_size": 14,
    },
    "llava-onevision-qwen2-0.5b": {
        "image_token_id": 151646,
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "full",
        "vision_aspect_ratio": "anyres_max_9",
        "text_config.vocab_size": 152000,
        "text_config.hidden_size": 896,
        "text_config.num_hidden_layers": 24,
        "text_config.num_key_value_heads": 2,
        "vision_config.num_hidden_layers": 26,
        "vision_config.image_size": 384,
    },
    "llava-onevision-qwen2-7b": {
        "text_config.vocab_size": 152128,
        "text_config.hidden_size": 3584,
        "text_config.num_hidden_layers": 28,
        "tie_word_embeddings": False,
        "vision_config.num_hidden_layers": 26,
    },
    "qwen2.5-vl-3b": {
        "image_token_id": 151655,
        "text_config.vocab_size": 151936,
        "text_config.hidden_size": 2048,
        "text_config.num_hidden_layers": 36,
        "text_config.num_key_value_heads": 2,
        "text_config.max_window_layers": 70,
        "text_config.rope_parameters.mrope_section": [16, 24, 24],
        "vision_config.out_hidden_size": 2048,
        "vision_config.fullatt_block_indexes": [7, 15, 23, 31],
        "vision_config.window_size": 112,
    },
    "qwen2.5-vl-7b": {
        "text_config.vocab_size": 152064,
        "text_config.hidden_size": 3584,
        "text_config.max_window_layers": 28,
        "vision_config.out_hidden_size": 3584,
    },
    "smolvlm-256m": {
        "image_token_id": 49190,
        "scale_factor": 4,
        "tie_word_embeddings": False,
        "text_config.vocab_size": 49280,
        "text_config.hidden_size": 576,
        "text_config.num_hidden_layers": 30,
        "text_config.rope_parameters.rope_theta": 100000.0,
        "vision_config.image_size": 512,
        "vision_config.patch_size": 16,
    },
}


def _field(config, dotted: str):
    obj = config
    for part in dotted.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


@pytest.mark.parametrize("name", sorted(HUB_FIELDS))
def test_shape_fields_match_the_hub_config(name):
    config = catalog.shipped_config(name)
    got = {key: _field(config, key) for key in HUB_FIELDS[name]}
    if "image_grid_pinpoints" in got:
        got["image_grid_pinpoints"] = [list(p) for p in got["image_grid_pinpoints"]]
    assert got == HUB_FIELDS[name]


def _processor(name: str):
    return nw.build_synthetic_processor(catalog.shipped_config(name))


def test_qwen_processor_has_the_checkpoint_token_bounds():
    # The released preprocessor: min_pixels 3136, max_pixels 12845056 (4 to 16384 tokens).
    image_processor = _processor("qwen2.5-vl-3b").image_processor
    assert (image_processor.size.shortest_edge, image_processor.size.longest_edge) == (
        3136,
        12_845_056,
    )
    # A 2000 × 1500 photo keeps its resolution (54 × 71 merged 28-px cells), not a 1280 cap.
    enc = _processor("qwen2.5-vl-3b").image_processor(
        images=Image.new("RGB", (2000, 1500)), return_tensors="pt"
    )
    assert int(enc["image_grid_thw"].prod()) // 4 == 54 * 71


def test_anyres_and_idefics3_processors_match_the_checkpoint_preprocessors():
    nxt = _processor("llava-v1.6-mistral-7b").image_processor
    assert (nxt.size.shortest_edge, nxt.crop_size.height, nxt.resample) == (336, 336, 3)
    onevision = _processor("llava-onevision-qwen2-0.5b")
    ov = onevision.image_processor
    assert (ov.size.height, tuple(ov.image_mean), len(ov.image_grid_pinpoints)) == (
        384,
        (0.5, 0.5, 0.5),
        36,
    )
    assert onevision.num_image_tokens == 729
    smol = _processor("smolvlm-256m")
    sp = smol.image_processor
    assert (sp.size.longest_edge, sp.max_image_size["longest_edge"], smol.image_seq_len) == (
        2048,
        512,
        64,
    )


@pytest.mark.parametrize(
    ("name", "vision"),
    [
        ("llava-v1.6-mistral-7b", "CLIP 24 × 1024, 336px / 14"),
        ("llava-onevision-qwen2-0.5b", "SigLIP 26 × 1152, 384px / 14"),
        ("qwen2.5-vl-3b", "Qwen ViT 32 × 1280, native resolution / 14"),
        ("smolvlm-256m", "SigLIP 12 × 768, 512px / 16"),
    ],
)
def test_models_show_describes_every_shipped_vlm(name, vision):
    from typer.testing import CliRunner

    from adabench.cli import app

    result = CliRunner().invoke(app, ["models", "show", name, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["vision"] == vision
