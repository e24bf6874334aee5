"""Qwen2.5-VL (`Qwen2_5_VLForConditionalGeneration`): Qwen2-VL with a windowed-attention ViT
(SwiGLU, RMSNorm) and absolute-time temporal positions; the same 3-D rotary positions, visual
inputs and special tokens, so its wrapper is Qwen2-VL's with the classes renamed."""

from dataclasses import replace
from functools import partial

from adabench.models.wrappers import qwen2_vl

WRAPPER = replace(
    qwen2_vl.WRAPPER,
    name="qwen2.5-vl",
    label="Qwen2.5-VL",
    model_types=("qwen2_5_vl",),
    hf_class="Qwen2_5_VLForConditionalGeneration",
    config_class="Qwen2_5_VLConfig",
    processor_class="Qwen2_5_VLProcessor",
    chat_template_of="Qwen/Qwen2.5-VL-3B-Instruct and -7B-Instruct",
    build_processor=partial(qwen2_vl.build_processor, processor_class="Qwen2_5_VLProcessor"),
    note="windowed native-resolution ViT, 2×2 token merge, 3-D rotary positions (mrope)",
)
