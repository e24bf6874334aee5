"""LLaVA-1.5 (`LlavaForConditionalGeneration`): CLIP tower, 2-layer projector, one fixed-size
image (patches, CLS dropped by the `default` strategy)."""

from adabench.models.wrappers.base import Wrapper


def build_processor(config, tokenizer, chat_template: str):
    """Returns a LlavaProcessor: PIL CLIP image processor at the tower's resolution."""
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from adabench.models.wrappers.images import CLIP_MEAN, CLIP_STD

    vision, size = config.vision_config, config.vision_config.image_size
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy=getattr(config, "vision_feature_select_strategy", "default"),
        chat_template=chat_template,
        num_additional_image_tokens=1,
    )


WRAPPER = Wrapper(
    name="llava",
    label="LLaVA-1.5",
    model_types=("llava",),
    hf_class="LlavaForConditionalGeneration",
    config_class="LlavaConfig",
    processor_class="LlavaProcessor",
    build_processor=build_processor,
    note="CLIP tower, fixed visual tokens per image",
)
