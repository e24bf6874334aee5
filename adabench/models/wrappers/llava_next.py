"""LLaVA-NeXT (`LlavaNextForConditionalGeneration`, LLaVA-1.6): any-resolution tiling — the
image is cut into base-resolution tiles at the best of `image_grid_pinpoints` plus one resized
base view, CLIP encodes every tile, and HF's `pack_image_features` unpads the tile grid and
appends one `image_newline` vector per row. The visual-token count follows the image size
(`image_sizes` from the processor)."""

from adabench.models.wrappers.base import Wrapper

# llava-hf/llava-v1.6-mistral-7b-hf chat_template.json, verbatim (where it was checked:
# docs/shipped_configs.md, "Prompts"). One image and a question render `[INST] <image>\nQUESTION [/INST]`.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\\n' + message['content'][0]['text'] + '\\n<</SYS>>\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\\n' }}{% endfor %}{# Render all text next #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{{' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'][0]['text'] + '<\\\\s> '}}{% else %}"
    "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)


def build_processor(config, tokenizer, chat_template: str):
    """Returns a LlavaNextProcessor: PIL LLaVA-NeXT image processor at the tower's tile size and
    the config's grid pinpoints."""
    from transformers import LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import (
        LlavaNextImageProcessorPil,
    )

    from adabench.models.wrappers.images import CLIP_MEAN, CLIP_STD

    vision, size = config.vision_config, config.vision_config.image_size
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_grid_pinpoints=[list(p) for p in config.image_grid_pinpoints],
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    return LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        chat_template=chat_template,
        num_additional_image_tokens=1,
    )


WRAPPER = Wrapper(
    name="llava-next",
    label="LLaVA-NeXT",
    model_types=("llava_next",),
    hf_class="LlavaNextForConditionalGeneration",
    config_class="LlavaNextConfig",
    processor_class="LlavaNextProcessor",
    visual_keys=("image_sizes",),
    fixed_tokens=False,
    special_tokens=("[INST]", "[/INST]"),
    chat_template=CHAT_TEMPLATE,
    chat_template_of="llava-hf/llava-v1.6-mistral-7b-hf",
    build_processor=build_processor,
    note="CLIP tower, anyres tiles + image-newline tokens (count follows the image size)",
)
