"""LLaVA-OneVision (`LlavaOnevisionForConditionalGeneration`): SigLIP tower (no CLS token),
any-resolution tiling as LLaVA-NeXT with `anyres_max_9` (HF's `pack_image_features` unpads,
pools an oversized grid and appends the image-newline vectors), Qwen2 decoder."""

from adabench.models.wrappers.base import Wrapper

# llava-hf/llava-onevision-qwen2-*-ov-hf chat_template.json, verbatim (where it was checked:
# docs/shipped_configs.md, "Prompts"). One image and a question render
# `<|im_start|>user <image>\nQUESTION<|im_end|><|im_start|>assistant\n`.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}{# Render all video then #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\\n' + content['text'] }}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}"
)


def build_processor(config, tokenizer, chat_template: str):
    """Returns a LlavaOnevisionProcessor: PIL OneVision image processor at the tower's tile size
    and the config's grid pinpoints."""
    from transformers import LlavaOnevisionProcessor
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    vision, size = config.vision_config, config.vision_config.image_size
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": size, "width": size},
        image_grid_pinpoints=[list(p) for p in config.image_grid_pinpoints],
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    from adabench.models.wrappers.base import image_only

    return image_only(LlavaOnevisionProcessor)(
        image_processor=image_processor,
        tokenizer=tokenizer,
        num_image_tokens=(size // vision.patch_size) ** 2,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        chat_template=chat_template,
    )


WRAPPER = Wrapper(
    name="llava-onevision",
    label="LLaVA-OneVision",
    model_types=("llava_onevision",),
    hf_class="LlavaOnevisionForConditionalGeneration",
    config_class="LlavaOnevisionConfig",
    processor_class="LlavaOnevisionProcessor",
    visual_keys=("image_sizes", "batch_num_images"),
    feature_args=("vision_feature_layer", "vision_feature_select_strategy", "vision_aspect_ratio"),
    tower="siglip",
    fixed_tokens=False,
    special_tokens=("<video>", "<|im_start|>", "<|im_end|>"),
    chat_template=CHAT_TEMPLATE,
    chat_template_of="llava-hf/llava-onevision-qwen2-0.5b-ov-hf and -7b-ov-hf",
    build_processor=build_processor,
    note="SigLIP tower, anyres_max_9 tiles + image-newline tokens (count follows the image size)",
)
