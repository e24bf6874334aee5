"""Tiny random models of every VLM wrapper (adabench/models/wrappers/), built in the tests with the
wrapper's real processor class (its PIL image processor at tiny sizes, the repo's word-level
tokenizer: `no_weights.build_synthetic_processor`), and HF-only references for the exactness
gate (tests/unit/test_wrappers.py).

Each builder makes the wrapper's own transformers config: LLaVA-NeXT with a CLIP tower of
48-px tiles and grid pinpoints up to 96 × 96 (a 96 × 48 image gives 2 tiles + the base view
and image-newline rows), LLaVA-OneVision with a SigLIP tower and a Qwen2 decoder, Idefics3 with
a SigLIP tower split into 32-px tiles and a pixel-shuffle connector, Qwen2-VL / Qwen2.5-VL with
a ViT of 14-px patches merged 2 × 2 and 3-D rotary positions. Weights ~N(0, 0.1) and every
decoder bias and norm weight randomised (tests/family_models.py), so greedy argmaxes are decisive.
"""

from __future__ import annotations

import torch

from tests.family_models import INIT_STD, randomise_biases_and_norms_

WRAPPERS = ("llava-next", "llava-onevision", "idefics3", "qwen2-vl", "qwen2.5-vl")
VOCAB = 160
IMAGE_ID, START_ID, END_ID, VIDEO_ID = 100, 101, 102, 103
HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTERMEDIATE = 64, 4, 2, 16, 128


def _text(kind: str, layers: int, **extra):
    import transformers

    cls = {
        "llama": "LlamaConfig",
        "mistral": "MistralConfig",
        "qwen2": "Qwen2Config",
    }[kind]
    return getattr(transformers, cls)(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=layers,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        head_dim=HEAD_DIM,
        max_position_embeddings=512,
        initializer_range=INIT_STD,
        tie_word_embeddings=False,
        pad_token_id=IMAGE_ID + 1,
        bos_token_id=1,
        eos_token_id=2,
        **extra,
    )


def _clip():
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=48,
        patch_size=16,
        projection_dim=32,
    )


def _siglip(size: int = 48, patch: int = 16):
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=size,
        patch_size=patch,
        vision_use_head=False,
    )


PINPOINTS = [[48, 96], [96, 48], [96, 96]]


def config_of(wrapper: str, layers: int = 8):
    """Returns the tiny transformers config of `wrapper` with `layers` decoder blocks."""
    import transformers

    if wrapper == "llava-next":
        return transformers.LlavaNextConfig(
            vision_config=_clip(),
            text_config=_text("mistral", layers),
            image_token_id=IMAGE_ID,
            image_grid_pinpoints=PINPOINTS,
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
            tie_word_embeddings=False,
        )
    if wrapper == "llava-onevision":
        return transformers.LlavaOnevisionConfig(
            vision_config=_siglip(),
            text_config=_text("qwen2", layers),
            image_token_id=IMAGE_ID,
            video_token_id=VIDEO_ID,
            image_grid_pinpoints=PINPOINTS,
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
            vision_aspect_ratio="anyres_max_9",
            tie_word_embeddings=False,
        )
    if wrapper == "idefics3":
        vision = transformers.Idefics3VisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
        return transformers.Idefics3Config(
            vision_config=vision,
            text_config=_text("llama", layers),
            image_token_id=IMAGE_ID,
            scale_factor=2,
            tie_word_embeddings=False,
        )
    if wrapper in ("qwen2-vl", "qwen2.5-vl"):
        qwen25 = wrapper == "qwen2.5-vl"
        vision = dict(
            depth=2,
            embed_dim=32,
            hidden_size=32,
            num_heads=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_chans=3,
            mlp_ratio=2,
        )
        if qwen25:
            vision = dict(
                depth=2,
                hidden_size=32,
                out_hidden_size=HIDDEN,
                intermediate_size=64,
                num_heads=2,
                patch_size=14,
                spatial_merge_size=2,
                temporal_patch_size=2,
                window_size=56,
                fullatt_block_indexes=[1],
                in_channels=3,
            )
        else:
            vision["hidden_size"] = HIDDEN
        text = _text("qwen2", layers).to_dict()
        text.pop("model_type", None)
        text["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [2, 3, 3],
        }
        cls = transformers.Qwen2_5_VLConfig if qwen25 else transformers.Qwen2VLConfig
        return cls(
            vision_config=vision,
            text_config=text,
            image_token_id=IMAGE_ID,
            vision_start_token_id=START_ID,
            vision_end_token_id=END_ID,
            video_token_id=VIDEO_ID,
            tie_word_embeddings=False,
        )
    raise ValueError(wrapper)


def build(wrapper: str, layers: int = 8, attn: str = "eager", seed: int = 0):
    """Returns (model, processor) of a random tiny `wrapper` model (fp32, eval) and its real
    processor class (built offline by adabench's synthetic processor)."""
    from adabench.models.no_weights import build_synthetic_processor
    from adabench.models.wrappers import WRAPPERS as ADABENCH_WRAPPERS
    from adabench.models.wrappers import model_class

    torch.manual_seed(seed)
    config = config_of(wrapper, layers)
    model = (
        model_class(ADABENCH_WRAPPERS[wrapper])
        ._from_config(config, attn_implementation=attn, dtype=torch.float32)
        .eval()
    )
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, INIT_STD)
    randomise_biases_and_norms_(model)
    return model, build_synthetic_processor(config)


QWEN_TOKEN_BUDGET = "0.9"
"""A budget a token method reaches on a tiny Qwen-VL build: the checkpoints' chat template
(adabench/models/wrappers/qwen2_vl.py, its system turn) makes a 48-px shapes image's 4 visual
tokens 4 of a 25-token prompt, so removing visual tokens cannot go below 0.87 of the FLOPs."""


def reachable_budget(path, budget: str) -> str:
    """Returns `budget` for the saved tiny build at `path`, QWEN_TOKEN_BUDGET for a Qwen-VL one."""
    import json
    from pathlib import Path

    model_type = json.loads((Path(path) / "config.json").read_text())["model_type"]
    return QWEN_TOKEN_BUDGET if model_type.startswith("qwen") else budget


def image(width: int = 96, height: int = 48):
    """Returns a shapes test image resized to width × height (a non-square one tiles)."""
    from adabench.data import synthetic

    item = synthetic.generate("test", 1)[0]
    return synthetic.render(item.scene).resize((width, height))


def inputs(
    processor, width: int = 96, height: int = 48, question: str = "what color is the square ?"
):
    """Returns the processor's tensors of one image + question, with the prompt built by the
    processor's chat template (the wrapper's image placeholder where it belongs)."""
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    return dict(processor(images=image(width, height), text=prompt, return_tensors="pt"))
