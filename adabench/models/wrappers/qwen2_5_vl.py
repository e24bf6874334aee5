"""Qwen2.5-VL (`Qwen2_5_VLForConditionalGeneration`): Qwen2-VL with a windowed-attention ViT
(SwiGLU, RMSNorm) and absolute-time temporal positions; the same 3-D rotary positions."""

from functools import partial

from adabench.models.wrappers import qwen2_vl
from adabench.models.wrappers.base import Wrapper

WRAPPER = Wrapper(
    name="qwen2.5-vl",
    label="Qwen2.5-VL",
    model_types=("qwen2_5_vl",),
    hf_class="Qwen2_5_VLForConditionalGeneration",
    config_class="Qwen2_5_VLConfig",
    processor_class="Qwen2_5_VLProcessor",
    visual_keys=("image_grid_thw",),
    feature_args=(),
    tower="qwen-vit",
    mrope=True,
    fixed_tokens=False,
    image_token="<|image_pad|>",
    special_tokens=qwen2_vl.QWEN_TOKENS,
    build_processor=partial(qwen2_vl.build_processor, processor_class="Qwen2_5_VLProcessor"),
    note="windowed native-resolution ViT, 2×2 token merge, 3-D rotary positions (mrope)",
)
