"""Decoder families (one file each) and the detection of a model's family from its config
(`text_config.model_type`; the VLM class is the wrappers' business, adabench/models/wrappers/):
anything not listed here is refused before anything is measured."""

from __future__ import annotations

from typing import Any

from adabench.errors import UserError
from adabench.models.families import gemma2, gemma3, llama, mistral, phi3, qwen2, qwen3
from adabench.models.families.base import Decoder, Family, resolve, text_of

FAMILIES: dict[str, Family] = {
    m.FAMILY.name: m.FAMILY for m in (llama, mistral, qwen2, qwen3, phi3, gemma2, gemma3)
}
__all__ = ["FAMILIES", "Decoder", "Family", "decoder_of", "family_of", "text_of"]


def _get(config: Any, key: str, default=None):
    return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)


def supported_text() -> str:
    """Returns the families adabench runs, for error messages ("Llama (llama), ...")."""
    return ", ".join(f"{f.label} ({'/'.join(f.model_types)})" for f in FAMILIES.values())


def family_of(config: Any) -> Family:
    """Returns the decoder family of a VLM config (object or config.json dict) from
    `text_config.model_type`; an unknown one raises UserError naming what is supported."""
    text = _get(config, "text_config") or config
    model_type = _get(text, "model_type")
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    archs = _get(text, "architectures") or []
    known = f" ({', '.join(archs)})" if archs else ""
    raise UserError(
        f"decoder family {model_type!r}{known} is not supported: adabench runs {supported_text()}"
    )


def decoder_of(config: Any) -> Decoder:
    """Returns the resolved decoder of a VLM config object (class, family and fields checked)."""
    return resolve(family_of(config), config)
