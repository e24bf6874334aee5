"""Load Llava checkpoints (HF format) by alias, local path or hub id; no implicit remote code.

Aliases: `tiny`, `tiny-adallava-l`, `tiny-adallava-h` (embedded under adabench/assets/) and
`llava-1.5-7b` / `llava-1.5-13b` (llava-hf hub ids, loaded through the user's HF cache).
A folder with `adallava_config.json` loads as an AdaLLaVA model (base Llava + latency encoder and
scheduler). Image processors use the PIL backend (the torchvision one changes pixel values).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from adabench.errors import UserError, did_you_mean

ASSETS = Path(__file__).resolve().parent.parent / "assets"
HUB_ALIASES = {
    "llava-1.5-7b": "llava-hf/llava-1.5-7b-hf",
    "llava-1.5-13b": "llava-hf/llava-1.5-13b-hf",
}
EMBEDDED = {
    "tiny": "tiny",
    "tiny-adallava-l": "tiny-adallava-l",
    "tiny-adallava-h": "tiny-adallava-h",
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A model ready to run: the HF Llava model, its processor, and the AdaLLaVA head if any."""

    name: str
    path: str
    model: torch.nn.Module
    processor: object
    device: torch.device
    dtype: torch.dtype
    adallava: object | None = None  # adabench.models.adallava.model.AdaLlavaHead

    @property
    def variant(self) -> str | None:
        """Returns "L", "H" or None (plain Llava)."""
        return None if self.adallava is None else self.adallava.config.variant

    @property
    def config(self):
        return self.model.config


def model_aliases() -> dict[str, str]:
    """Returns alias → location (embedded folder or hub id)."""
    return {**{k: str(ASSETS / v) for k, v in EMBEDDED.items()}, **HUB_ALIASES}


def resolve(name: str) -> str:
    """Returns the local folder or hub id for `name`; unknown names raise a did-you-mean UserError."""
    if name in EMBEDDED:
        path = ASSETS / EMBEDDED[name]
        if not (path / "config.json").exists():
            raise UserError(
                f"embedded model {name!r} is not built: run `adabench train` (see README) to create {path}"
            )
        return str(path)
    if name in HUB_ALIASES:
        return HUB_ALIASES[name]
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if "/" in name and not name.startswith((".", "/")):
        return name  # a hub id: from_pretrained reports if it is missing from the cache
    raise did_you_mean(name, list(EMBEDDED) + list(HUB_ALIASES), "model")


def resolve_device(device: str) -> torch.device:
    """Returns the concrete torch device for "auto" | "cpu" | "cuda[:i]": on CUDA always with
    an index (`cuda:i`, see adabench.measure.device.resolve), made the current CUDA device so
    that code creating tensors on bare "cuda" lands on the same GPU. Asking for CUDA without
    one, or for an index that is not visible, is a UserError."""
    from adabench.measure import device as devices

    if device != "cpu":
        devices.prefer_eager_module_loading()  # before the first CUDA call of this process
    chosen = devices.resolve(device)
    if chosen.index is not None:
        torch.cuda.set_device(chosen.index)
    return torch.device(chosen.name)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Returns the dtype: "auto" is float32 on CPU and float16 on GPU."""
    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    if dtype not in DTYPES:
        raise did_you_mean(dtype, list(DTYPES) + ["auto"], "dtype")
    return DTYPES[dtype]


def load_processor(path: str, trust_remote_code: bool = False):
    """Returns the AutoProcessor of `path`, forcing the PIL image-processor backend."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(
            path, backend="pil", trust_remote_code=trust_remote_code
        )
    except TypeError:  # older transformers: the slow processor is the PIL one
        return AutoProcessor.from_pretrained(
            path, use_fast=False, trust_remote_code=trust_remote_code
        )


def load_model(
    name: str,
    device: str = "auto",
    dtype: str = "auto",
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Returns the loaded model `name` on `device` in `dtype` (eval mode)."""
    from transformers import LlavaForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our progress goes to stderr through rich; theirs is noise here
    path = resolve(name)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    kwargs = {"dtype": dt, "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = LlavaForConditionalGeneration.from_pretrained(path, **kwargs)
        processor = load_processor(path, trust_remote_code)
    except OSError as exc:
        raise UserError(
            f"cannot load model {name!r} from {path}: {exc.__class__.__name__}. For hub models run "
            f"`huggingface-cli download {path}` on a machine with network access (or pass a local folder)."
        ) from exc
    model.to(dev).eval()
    adallava = None
    if Path(path, "adallava_config.json").exists():
        from adabench.models.adallava.model import AdaLlavaHead

        adallava = AdaLlavaHead.from_pretrained(path, model).to(dev, dt).eval()
    return LoadedModel(name, path, model, processor, dev, dt, adallava)


def describe(name: str) -> dict:
    """Returns what is known about `name` without loading weights: location, config summary, presence."""
    path = resolve(name) if name in EMBEDDED or name in HUB_ALIASES or Path(name).is_dir() else name
    info = {"name": name, "location": path, "weights_present": False}
    if name in HUB_ALIASES:  # shipped config: shapes offline, weights looked up in the HF cache
        from adabench.models.no_weights import describe_shipped

        info.update(describe_shipped(name))
        return info
    cfg_file = Path(path) / "config.json"
    if cfg_file.exists():
        cfg = json.loads(cfg_file.read_text())
        text = cfg.get("text_config", {})
        info.update(
            weights_present=any(Path(path).glob("*.safetensors")),
            decoder_layers=text.get("num_hidden_layers"),
            hidden_size=text.get("hidden_size"),
            heads=text.get("num_attention_heads"),
            kv_heads=text.get("num_key_value_heads"),
            size_mb=round(sum(f.stat().st_size for f in Path(path).glob("*")) / 1e6, 2),
        )
        ada = Path(path) / "adallava_config.json"
        info["adallava"] = json.loads(ada.read_text()) if ada.exists() else None
    return info
