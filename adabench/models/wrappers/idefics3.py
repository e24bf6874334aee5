"""Idefics3 (`Idefics3ForConditionalGeneration`, SmolVLM): SigLIP tower over the image split
into tiles of `max_image_size` plus a global view, a pixel-shuffle connector (`scale_factor`²
patches per visual token), Llama decoder at `model.model.text_model`."""

from adabench.models.wrappers.base import Wrapper

# HuggingFaceTB/SmolVLM-256M-Instruct chat_template.json, verbatim (where it was checked:
# docs/shipped_configs.md, "Prompts"). One image and a question render `<|im_start|>User:<image>QUESTION<end_of_utterance>\nAssistant:`.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_processor(config, tokenizer, chat_template: str):
    """Returns an Idefics3Processor: PIL Idefics3 image processor whose tile is the tower's
    resolution (at most 4 tiles a side), `image_seq_len` from the connector."""
    from transformers import Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    vision, size = config.vision_config, config.vision_config.image_size
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 4 * size},
        max_image_size={"longest_edge": size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    seq_len = int((size // vision.patch_size) ** 2 / config.scale_factor**2)
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=seq_len,
        chat_template=chat_template,
    )


WRAPPER = Wrapper(
    name="idefics3",
    label="Idefics3 / SmolVLM",
    model_types=("idefics3", "smolvlm"),
    hf_class="Idefics3ForConditionalGeneration",
    config_class="Idefics3Config",
    processor_class="Idefics3Processor",
    decoder_path="model.text_model",
    visual_keys=("pixel_attention_mask",),
    feature_args=(),
    tower="siglip",
    fixed_tokens=False,
    special_tokens=(
        "<fake_token_around_image>",
        "<global-img>",
        "<end_of_utterance>",
        "<|im_start|>",
        "User:",
        "Assistant:",
        *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
    ),
    chat_template=CHAT_TEMPLATE,
    chat_template_of="HuggingFaceTB/SmolVLM-256M-Instruct",
    build_processor=build_processor,
    note="SigLIP tower, image tiles + global view, pixel-shuffle connector",
)
