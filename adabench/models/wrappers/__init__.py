"""VLM wrappers (one file per HF class) and the detection of a model's wrapper from its config:
`model_type`, else the first of `architectures`. Anything not listed is refused before anything
is measured (adabench/models/catalog.py:check_supported)."""

from __future__ import annotations

from typing import Any

from adabench.errors import UserError
from adabench.models.wrappers import (
    idefics3,
    llava,
    llava_next,
    llava_onevision,
    qwen2_5_vl,
    qwen2_vl,
)
from adabench.models.wrappers.base import (
    Wrapper,
    config_class,
    decoder_module,
    image_features,
    model_class,
    rotary_positions,
)

WRAPPERS: dict[str, Wrapper] = {
    m.WRAPPER.name: m.WRAPPER
    for m in (llava, llava_next, llava_onevision, idefics3, qwen2_vl, qwen2_5_vl)
}

__all__ = [
    "WRAPPERS",
    "Wrapper",
    "config_class",
    "decoder_module",
    "image_features",
    "model_class",
    "rotary_positions",
    "supported_text",
    "wrapper_of",
]


def _get(config: Any, key: str, default=None):
    return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)


def supported_text() -> str:
    """Returns the HF classes adabench wraps, for error messages."""
    return ", ".join(f"{w.hf_class} ({'/'.join(w.model_types)})" for w in WRAPPERS.values())


def wrapper_of(config: Any) -> Wrapper:
    """Returns the wrapper of a VLM config (object or config.json dict): its `model_type`, else
    its `architectures`; another class raises a one-line UserError naming what is supported."""
    model_type = _get(config, "model_type")
    archs = list(_get(config, "architectures") or [])
    for wrapper in WRAPPERS.values():
        if model_type in wrapper.model_types:
            return wrapper
    if not model_type:
        for wrapper in WRAPPERS.values():
            if wrapper.hf_class in archs:
                return wrapper
    listed = ", ".join(archs) or "no architectures listed"
    raise UserError(
        f"model class {model_type!r} ({listed}) is not supported: adabench runs {supported_text()}"
    )
