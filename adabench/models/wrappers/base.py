"""What differs between the HF VLM classes adabench runs, as data plus a few small functions.

A `Wrapper` names the HF model and config classes, where the decoder lives inside the model,
which processor outputs the vision side reads besides `pixel_values`, the vision tower kind
(PruMerge needs a CLIP tower's CLS attention) and the rotary kind (Qwen-VL's 3-D `mrope`).
The vision side is HF's own `get_image_features` (anyres tiles, image-newline tokens,
pixel-shuffle connectors and Qwen's merger run as HF runs them); the visual tokens go where the
model's image token sits in `input_ids`, as HF's `masked_scatter` puts them. The executor
(adabench/models/execution.py) reads these functions; a wrapper never forks it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where tensors are made: the report reads WRAPPERS without it
    import torch

TOWERS = ("clip", "siglip", "qwen-vit")
"""Vision tower kinds: only a CLIP tower (CLS token) gives PruMerge its CLS attention."""


@dataclass(frozen=True)
class Wrapper:
    """One HF VLM class: its classes, decoder location, visual inputs and rotary kind."""

    name: str = field(metadata={"help": "adabench's name, shown by `models list`"})
    label: str
    model_types: tuple[str, ...] = field(metadata={"help": "config.json model_type values"})
    hf_class: str = field(metadata={"help": "the transformers model class"})
    config_class: str
    processor_class: str
    decoder_path: str = field(
        default="model.language_model", metadata={"help": "attribute path of the decoder"}
    )
    visual_keys: tuple[str, ...] = field(
        default=(),
        metadata={"help": "processor outputs besides pixel_values that the vision side reads"},
    )
    feature_args: tuple[str, ...] = field(
        default=("vision_feature_layer", "vision_feature_select_strategy"),
        metadata={"help": "config fields passed to HF's get_image_features"},
    )
    tower: str = "clip"
    mrope: bool = field(default=False, metadata={"help": "3-D multimodal rotary positions"})
    fixed_tokens: bool = field(
        default=True, metadata={"help": "every image gives the same visual-token count"}
    )
    image_token: str = field(
        default="<image>", metadata={"help": "the placeholder the processor expands in a prompt"}
    )
    special_tokens: tuple[str, ...] = field(
        default=(),
        metadata={"help": "further tokens the processor writes (a tiny tokenizer adds them)"},
    )
    chat_template: str | None = field(
        default=None,
        compare=False,
        metadata={
            "help": "the checkpoints' own chat template (Jinja, verbatim), which the synthetic "
            "processor of a --no-weights run uses; None: LLaVA-1.5 runs the suite's prompt"
        },
    )
    chat_template_of: str = field(
        default="", metadata={"help": "the hub checkpoints whose chat template that is"}
    )
    build_processor: Callable[..., Any] | None = field(
        default=None,
        compare=False,
        metadata={
            "help": "(config, tokenizer, chat_template) → the real processor class, PIL "
            "image processor at the config's sizes (tiny and --no-weights builds)"
        },
    )
    note: str = ""


def model_class(wrapper: Wrapper):
    """Returns the transformers model class of `wrapper` (e.g. LlavaNextForConditionalGeneration)."""
    import transformers

    return getattr(transformers, wrapper.hf_class)


def config_class(wrapper: Wrapper):
    """Returns the transformers config class of `wrapper` (e.g. LlavaNextConfig)."""
    import transformers

    return getattr(transformers, wrapper.config_class)


def decoder_module(wrapper: Wrapper, model) -> torch.nn.Module:
    """Returns the decoder (embed_tokens, layers, norm, rotary_emb) inside `model`."""
    return operator.attrgetter(wrapper.decoder_path)(model)


def image_features(
    wrapper: Wrapper, model, pixel_values: torch.Tensor, visual: dict
) -> torch.Tensor:
    """Returns the projected visual tokens of one sample's images through HF's own
    `get_image_features`: [n_images, n_visual, hidden] for a fixed-count wrapper (Llava), else
    [1, n_visual total, hidden] (tiles, newline tokens and merges included) — in the order the
    image tokens of `input_ids` take them."""
    import torch

    cfg = model.config
    kwargs = {k: getattr(cfg, k) for k in wrapper.feature_args}
    kwargs.update({k: visual[k] for k in wrapper.visual_keys if k in visual})
    out = model.model.get_image_features(pixel_values=pixel_values, **kwargs)
    feats = out.pooler_output if hasattr(out, "pooler_output") else out
    if not isinstance(feats, (list, tuple)):
        return feats if wrapper.fixed_tokens else feats.reshape(1, -1, feats.shape[-1])
    if wrapper.fixed_tokens:
        return torch.stack(list(feats))
    return torch.cat([f.reshape(-1, f.shape[-1]) for f in feats])[None]


def rotary_positions(
    wrapper: Wrapper, model, input_ids: torch.Tensor, visual: dict
) -> torch.Tensor | None:
    """Returns the prompt's rotary positions [3, 1, T] of a 3-D rotary wrapper (HF's
    `get_rope_index`: temporal, height, width per visual token; text tokens count on from the
    largest), None for a 1-D one (positions 0..T−1)."""
    if not wrapper.mrope:
        return None
    positions, _ = model.model.get_rope_index(
        input_ids,
        mm_token_type_ids=visual.get("mm_token_type_ids"),
        image_grid_thw=visual.get("image_grid_thw"),
    )
    return positions


def text_config(config: Any) -> Any:
    """Returns the decoder's config of a VLM config (its `text_config`)."""
    return config.text_config


def image_only(processor_cls):
    """Returns `processor_cls` (LlavaOnevisionProcessor, Qwen2VLProcessor, ...) without its video
    processor: those need torchvision, which adabench keeps out (transformers' image processors
    change backend when it is importable). Images are processed by the class's own code."""
    attributes = [a for a in processor_cls.get_attributes() if a != "video_processor"]
    return type(
        processor_cls.__name__,
        (processor_cls,),
        {
            "get_attributes": classmethod(lambda cls: list(attributes)),
            "__doc__": processor_cls.__doc__,
        },
    )
