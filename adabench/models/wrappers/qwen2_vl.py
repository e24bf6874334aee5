"""Qwen2-VL (`Qwen2VLForConditionalGeneration`): a ViT over the image at its own resolution
(patches of 14 px, 2×2 merged into one visual token: the count follows the image size,
`image_grid_thw`), Qwen2 decoder with 3-D multimodal rotary positions (`mrope`: HF's
`get_rope_index` gives each token a (temporal, height, width) position; text after the image
counts on from the largest, `rope_deltas`)."""

from adabench.models.wrappers.base import Wrapper

QWEN_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>")

# Qwen/Qwen2-VL-*-Instruct chat_template.json, verbatim, used for Qwen/Qwen2.5-VL-*-Instruct too
# (where it was checked: docs/shipped_configs.md, "Prompts"). One image and a question render the default system turn, then
# `<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>QUESTION<|im_end|>\n` and
# `<|im_start|>assistant\n`.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Visual tokens an image gets at least / at most: the released checkpoints' processor bounds,
# min_pixels 3136 = 4 · 28² and max_pixels 12845056 = 16384 · 28² (docs/shipped_configs.md),
# kept in tokens so tiny test towers (other patch sizes) get the same bounds.
MIN_TOKENS = 4
MAX_TOKENS = 16384


def build_processor(
    config, tokenizer, chat_template: str, processor_class: str = "Qwen2VLProcessor"
):
    """Returns a Qwen2-VL processor: PIL Qwen2-VL image processor with the tower's patch,
    temporal patch and merge sizes, MIN_TOKENS to MAX_TOKENS visual tokens an image (the
    released checkpoints' min_pixels / max_pixels)."""
    import transformers
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from adabench.models.wrappers.images import CLIP_MEAN, CLIP_STD

    vision = config.vision_config
    merge = vision.spatial_merge_size
    unit = vision.patch_size * merge
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=vision.patch_size,
        temporal_patch_size=vision.temporal_patch_size,
        merge_size=merge,
        min_pixels=MIN_TOKENS * unit * unit,
        max_pixels=MAX_TOKENS * unit * unit,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    from adabench.models.wrappers.base import image_only

    return image_only(getattr(transformers, processor_class))(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template
    )


WRAPPER = Wrapper(
    name="qwen2-vl",
    label="Qwen2-VL",
    model_types=("qwen2_vl",),
    hf_class="Qwen2VLForConditionalGeneration",
    config_class="Qwen2VLConfig",
    processor_class="Qwen2VLProcessor",
    visual_keys=("image_grid_thw",),
    feature_args=(),
    tower="qwen-vit",
    mrope=True,
    fixed_tokens=False,
    image_token="<|image_pad|>",
    special_tokens=QWEN_TOKENS,
    chat_template=CHAT_TEMPLATE,
    chat_template_of="Qwen/Qwen2-VL-*-Instruct",
    build_processor=build_processor,
    note="native-resolution ViT, 2×2 token merge, 3-D rotary positions (mrope)",
)
