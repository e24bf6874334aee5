"""The model catalog: which names adabench knows (embedded tiny models, hub aliases with a
shipped llava-1.5 config) and what is known about a model without loading its weights.

Below `loading.py` (real weights) and `no_weights.py` (random weights), which both read it.
"""

from __future__ import annotations

import json
from pathlib import Path

from adabench.errors import UserError, did_you_mean
from adabench.models.flops import num_image_tokens

ASSETS = Path(__file__).resolve().parent.parent / "assets"
CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
HUB_ALIASES = {
    "llava-1.5-7b": "llava-hf/llava-1.5-7b-hf",
    "llava-1.5-13b": "llava-hf/llava-1.5-13b-hf",
}

EMBEDDED = {
    "tiny": "tiny",
    "tiny-adallava-l": "tiny-adallava-l",
    "tiny-adallava-h": "tiny-adallava-h",
}


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


def describe(name: str) -> dict:
    """Returns what is known about `name` without loading weights: location, config summary, presence."""
    path = resolve(name) if name in EMBEDDED or name in HUB_ALIASES or Path(name).is_dir() else name
    info = {"name": name, "location": path, "weights_present": False}
    if name in HUB_ALIASES:  # shipped config: shapes offline, weights looked up in the HF cache
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


# --- shipped configs -------------------------------------------------------------------------


def shipped_names() -> list[str]:
    """Returns the names of the configs shipped in adabench/configs/ (e.g. "llava-1.5-7b")."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.json"))


def shipped_config_dict(name: str) -> dict | None:
    """Returns the raw shipped config of `name` (LlavaConfig keys + "adallava"), or None."""
    path = CONFIGS_DIR / f"{name}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def shipped_config(name: str):
    """Returns the shipped `LlavaConfig` of `name` (offline, a few KB), or None if not shipped."""
    from transformers import LlavaConfig

    raw = shipped_config_dict(name)
    if raw is None:
        return None
    raw = {k: v for k, v in raw.items() if k not in ("adallava", "_comment")}
    return LlavaConfig.from_dict(raw)


def adallava_settings(name: str) -> dict:
    """Returns the AdaLLaVA settings of a shipped model ({"prefix_layers", "group_size"}) or {}."""
    raw = shipped_config_dict(name) or {}
    return dict(raw.get("adallava") or {})


def adallava_settings_for(name: str) -> dict:
    """Returns {"prefix_layers", "group_size"} for a shipped model, {} otherwise."""
    raw = adallava_settings(name)
    return {k: raw[k] for k in ("prefix_layers", "group_size") if k in raw}


def weights_in_cache(repo_id: str, cache_dir: str | Path | None = None) -> bool:
    """Returns whether every safetensors weight file of `repo_id` is in the local HF cache
    (`cache_dir`, default the user's). Reads the cache only, never the network."""
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str):
        return try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)

    index = cached("model.safetensors.index.json")
    if isinstance(index, str):
        shards = set(json.loads(Path(index).read_text()).get("weight_map", {}).values())
        return bool(shards) and all((Path(index).parent / s).is_file() for s in shards)
    return isinstance(cached("model.safetensors"), str)


def describe_shipped(name: str, cache_dir: str | Path | None = None) -> dict:
    """Returns what `adabench models show` reports for a shipped config: shapes, AdaLLaVA
    settings, and `weights_present` (HF cache lookup, no network). {} if `name` is not shipped."""
    config = shipped_config(name)
    if config is None:
        return {}
    text = config.text_config
    repo = HUB_ALIASES.get(name)
    return {
        "config": str(CONFIGS_DIR / f"{name}.json"),
        "weights_present": weights_in_cache(repo, cache_dir) if repo else False,
        "decoder_layers": text.num_hidden_layers,
        "hidden_size": text.hidden_size,
        "heads": text.num_attention_heads,
        "kv_heads": text.num_key_value_heads,
        "intermediate_size": text.intermediate_size,
        "vocab_size": text.vocab_size,
        "image_tokens": num_image_tokens(config),
        "vision": f"CLIP {config.vision_config.num_hidden_layers} × {config.vision_config.hidden_size}, "
        f"{config.vision_config.image_size}px / {config.vision_config.patch_size}",
        "adallava": adallava_settings(name) or None,
    }


def config_for(name: str):
    """Returns the LlavaConfig of `name` without loading weights or touching the network:
    a shipped config, an embedded alias (tiny, ...) or local folder's config.json, or a hub id's
    config.json already in the HF cache. Anything else is a UserError."""
    from transformers import LlavaConfig

    config = shipped_config(name)
    if config is not None:
        return config
    folder = local_folder(name)
    if folder is not None:
        return LlavaConfig.from_pretrained(str(folder))
    if "/" in name:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
        if isinstance(cached, str):
            return LlavaConfig.from_pretrained(str(Path(cached).parent))
    raise UserError(
        f"no config for model {name!r}: use a shipped config ({', '.join(shipped_names())}), "
        "an embedded alias, a local folder with config.json, or a hub id already in the HF cache"
    )


def local_folder(name: str) -> Path | None:
    """Returns the folder of an embedded alias or a local path (None if `name` is neither)."""
    if name in EMBEDDED:
        return Path(resolve(name))  # a UserError says how to build it when missing
    path = Path(name).expanduser()
    return path if (path / "config.json").is_file() else None
