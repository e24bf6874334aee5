"""The model catalog: which names adabench knows (embedded tiny models, hub aliases with a
shipped llava-1.5 config, config-only shipped configs) and what is known about a model without
loading its weights, including whether adabench runs it at all (`check_supported`: the VLM class
and decoder family of adabench/models/families/, refused from the config before anything loads).

Below `loading.py` (real weights) and `no_weights.py` (random weights), which both read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adabench.errors import UserError, did_you_mean
from adabench.models.flops import num_image_tokens

ASSETS = Path(__file__).resolve().parent.parent / "assets"
CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
SHIPPED_KEYS = ("adallava", "_comment")
"""Keys of a shipped config that are adabench's, not the LlavaConfig's."""
HUB_ALIASES = {
    "llava-1.5-7b": "llava-hf/llava-1.5-7b-hf",
    "llava-1.5-13b": "llava-hf/llava-1.5-13b-hf",
    "llava-v1.6-mistral-7b": "llava-hf/llava-v1.6-mistral-7b-hf",
    "llava-onevision-qwen2-0.5b": "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
    "llava-onevision-qwen2-7b": "llava-hf/llava-onevision-qwen2-7b-ov-hf",
    "qwen2.5-vl-3b": "Qwen/Qwen2.5-VL-3B-Instruct",
    "qwen2.5-vl-7b": "Qwen/Qwen2.5-VL-7B-Instruct",
    "smolvlm-256m": "HuggingFaceTB/SmolVLM-256M-Instruct",
}
"""Shipped configs and the hub checkpoint each has the shapes of (checked field by field and by
parameter count: docs/shipped_configs.md): `--model NAME` loads that checkpoint, `--model NAME
--no-weights` builds the config with random weights. `llava-qwen2-7b` has no such checkpoint on
the hub: it is config-only (`config_only`), for `adabench flops` and `--no-weights`."""

EMBEDDED = {
    "tiny": "tiny",
    "tiny-adallava-l": "tiny-adallava-l",
    "tiny-adallava-h": "tiny-adallava-h",
}


def model_aliases() -> dict[str, str]:
    """Returns alias → location (embedded folder, hub id, or a config-only shipped config file)."""
    return {
        **{k: str(ASSETS / v) for k, v in EMBEDDED.items()},
        **HUB_ALIASES,
        **{k: str(CONFIGS_DIR / f"{k}.json") for k in shipped_names() if config_only(k)},
    }


def config_only(name: str) -> bool:
    """Returns whether `name` is a shipped config with no checkpoint to load (--no-weights only)."""
    return (
        name not in HUB_ALIASES
        and name not in EMBEDDED
        and (CONFIGS_DIR / f"{name}.json").is_file()
    )


def resolve(name: str) -> str:
    """Returns the local folder or hub id for `name` (the shipped config file of a config-only
    name); unknown names raise a did-you-mean UserError."""
    if config_only(name):
        return str(CONFIGS_DIR / f"{name}.json")
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
    raise did_you_mean(
        name, list(dict.fromkeys([*EMBEDDED, *HUB_ALIASES, *shipped_names()])), "model"
    )


# --- what adabench runs ----------------------------------------------------------------------


def check_supported(config: Any, where: str = "model"):
    """Returns the resolved `Decoder` of a VLM config (a config object or a config.json dict);
    raises a one-line UserError naming `where` for a VLM class without a wrapper
    (adabench/models/wrappers/), a decoder family adabench does not run (phi, gpt_neox, ...) or
    a config field the family layer does not implement (an unknown rotary type, ...). Reads the
    config only."""
    from adabench.models.families import decoder_of, family_of
    from adabench.models.wrappers import wrapper_of

    try:
        wrapper_of(config)
        text = config.get("text_config") if isinstance(config, dict) else None
        if not isinstance(text, dict) or "model_type" in text:  # HF reads a missing one as llama
            family_of(config)
        if isinstance(config, dict):
            config = _vlm_config(config)
        return decoder_of(config)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def family_fields(decoder, config: Any) -> dict:
    """Returns what `models show` / `models list` say about a model's decoder family and the VLM
    class that wraps it."""
    from adabench.models.wrappers import wrapper_of

    family, wrapper = decoder.family, wrapper_of(config)
    return {
        "family": f"{family.label} ({family.name})",
        "family_note": family.note,
        "wrapper": wrapper.hf_class,
        "wrapper_note": f"{wrapper.label} ({wrapper.name}): {wrapper.note}",
    }


def read_config(folder: str | Path, where: str | None = None):
    """Returns the config (of the wrapper's class: LlavaConfig, LlavaNextConfig, ...) of a model
    folder (or a hub snapshot) after `check_supported` has accepted its config.json: nothing
    else of the folder is read."""
    from adabench.models.wrappers import config_class, wrapper_of

    folder = Path(folder)
    raw = _read_json(folder / "config.json")
    check_supported(raw, where or str(folder))
    return config_class(wrapper_of(raw)).from_pretrained(str(folder))


def _vlm_config(raw: dict):
    from adabench.models.wrappers import config_class, wrapper_of

    try:
        cls = config_class(wrapper_of(raw))
        return cls.from_dict({k: v for k, v in raw.items() if k not in SHIPPED_KEYS})
    except (ValueError, KeyError, TypeError) as exc:
        text = str(exc).strip().splitlines()
        raise UserError(f"the config does not parse ({text[0] if text else exc!r})") from None


def _read_json(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"model config {path} is unreadable or damaged ({exc})") from None
    if not isinstance(raw, dict):
        raise UserError(f"model config {path} must hold a JSON object")
    return raw


def cached_hub_config(repo_id: str) -> Path | None:
    """Returns the config.json of hub id `repo_id` if it is in the HF cache (never the network)."""
    if "/" not in repo_id or repo_id.startswith((".", "/")):
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id: not in the cache
        return None
    return Path(cached) if isinstance(cached, str) else None


# --- describe --------------------------------------------------------------------------------


def describe(name: str) -> dict:
    """Returns what is known about `name` without loading weights: location, family, config
    summary, presence. An unsupported model (see `check_supported`) is a UserError."""
    shipped = name in HUB_ALIASES or config_only(name)
    path = resolve(name) if name in EMBEDDED or shipped or Path(name).is_dir() else name
    info = {"name": name, "location": path, "weights_present": False}
    if shipped:  # shipped config: shapes offline, weights looked up in the HF cache
        info.update(describe_shipped(name))
        return info
    cfg_file = Path(path) / "config.json"
    hub = None if cfg_file.exists() else cached_hub_config(name)
    if hub is not None:
        cfg_file = hub
    if cfg_file.exists():
        cfg = _read_json(cfg_file)
        text = cfg.get("text_config", {})
        info.update(family_fields(check_supported(cfg, f"model {name!r}"), cfg))
        info.update(
            weights_present=weights_in_cache(name)
            if hub is not None
            else any(Path(path).glob("*.safetensors")),
            decoder_layers=text.get("num_hidden_layers"),
            hidden_size=text.get("hidden_size"),
            heads=text.get("num_attention_heads"),
            kv_heads=text.get("num_key_value_heads"),
            size_mb=None
            if hub is not None
            else round(sum(f.stat().st_size for f in Path(path).glob("*")) / 1e6, 2),
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
    raw = shipped_config_dict(name)
    if raw is None:
        return None
    return _vlm_config(raw)


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


TOWER_LABELS = {"clip": "CLIP", "siglip": "SigLIP", "qwen-vit": "Qwen ViT"}


def vision_summary(config) -> str:
    """Returns the vision tower in one line: kind, layers × width, input size / patch
    ("CLIP 24 × 1024, 336px / 14"; Qwen's ViT reads the image at its own resolution)."""
    from adabench.models.wrappers import wrapper_of

    vision = config.vision_config
    layers = getattr(vision, "depth", None) or vision.num_hidden_layers
    size = getattr(vision, "image_size", None)
    where = f"{size}px" if size else "native resolution"
    label = TOWER_LABELS[wrapper_of(config).tower]
    return f"{label} {layers} × {vision.hidden_size}, {where} / {vision.patch_size}"


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
        **family_fields(check_supported(config, f"shipped config {name!r}"), config),
        "decoder_layers": text.num_hidden_layers,
        "hidden_size": text.hidden_size,
        "heads": text.num_attention_heads,
        "kv_heads": text.num_key_value_heads,
        "intermediate_size": text.intermediate_size,
        "vocab_size": text.vocab_size,
        "image_tokens": num_image_tokens(config),
        "vision": vision_summary(config),
        "adallava": adallava_settings(name) or None,
        **({} if repo else {"checkpoint": "none (config only: adabench flops, --no-weights)"}),
    }


def config_for(name: str):
    """Returns the LlavaConfig of `name` without loading weights or touching the network:
    a shipped config, an embedded alias (tiny, ...) or local folder's config.json, or a hub id's
    config.json already in the HF cache. Anything else, or a model adabench does not run
    (`check_supported`), is a UserError."""
    config = shipped_config(name)
    if config is not None:
        check_supported(config, f"shipped config {name!r}")
        return config
    folder = local_folder(name)
    if folder is not None:
        return read_config(folder, f"model {name!r}")
    cached = cached_hub_config(name)
    if cached is not None:
        return read_config(cached.parent, f"model {name!r}")
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


WEIGHTS_LABELS = ("trained", "random", "unknown")
"""What a run records under `weights` (docs/results.md): trained | random | unknown."""


def weights_label(name: str) -> str:
    """Returns what the checkpoint `name` says about its weights, never a guess: 'trained' for a
    published hub checkpoint adabench names (HUB_ALIASES) or a folder whose training.json
    records training steps; 'random' for a folder whose training.json says
    ``"weights": "random"`` or ``"steps": 0``; 'unknown' for anything else (a folder without a
    training record, a hub id adabench does not know)."""
    if name in HUB_ALIASES:
        return "trained"
    try:
        folder = local_folder(name)
    except UserError:
        return "unknown"
    record = folder / "training.json" if folder is not None else None
    if record is None or not record.is_file():
        return "unknown"
    try:
        training = json.loads(record.read_text())
    except (OSError, ValueError):
        return "unknown"
    if not isinstance(training, dict):
        return "unknown"
    if str(training.get("weights", "")).lower() == "random" or training.get("steps") == 0:
        return "random"
    steps = training.get("steps")
    return "trained" if isinstance(steps, int) and steps > 0 else "unknown"
