"""Full-size models without weights: shipped llava-1.5 configs and random-weight builds.

Latency, memory and FLOPs of an execution plan depend on the model's shapes, not its weight
values (optimum-benchmark's `no_weights` does the same), so a 7B/13B model can be measured on a
machine that never downloaded it. `shipped_config("llava-1.5-7b")` reads the llava-hf config that
ships in `adabench/configs/`; `build_no_weights(...)` builds the model from a config with seeded
random weights, allocated directly on the target device in the target dtype (no CPU fp32 copy,
HF's own initialisation skipped), plus a processor and, on request, a random AdaLLaVA head.

Text tokens of the synthetic llava-1.5 processor are word-level and synthetic: every
whitespace-separated word is one token (unknown words map to `<unk>`), `<image>` expands to the
576 visual tokens. Only sequence lengths matter for a random model; predictions are noise, so
callers must report accuracy as NaN and mark the run `weights: random`.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import torch

from adabench.errors import UserError

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
HUB_IDS = {"llava-1.5-7b": "llava-hf/llava-1.5-7b-hf", "llava-1.5-13b": "llava-hf/llava-1.5-13b-hf"}
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
INIT_STD = 0.02


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
    from adabench.measure.flops import num_image_tokens

    text = config.text_config
    repo = HUB_IDS.get(name)
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
    folder = _local_folder(name)
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


def _local_folder(name: str) -> Path | None:
    """Returns the folder of an embedded alias or a local path (None if `name` is neither)."""
    from adabench.models.loading import EMBEDDED, resolve

    if name in EMBEDDED:
        return Path(resolve(name))  # a UserError says how to build it when missing
    path = Path(name).expanduser()
    return path if (path / "config.json").is_file() else None


# --- random-weight build ---------------------------------------------------------------------


def build_no_weights(
    name_or_config: Any,
    device: str = "auto",
    dtype: str = "auto",
    seed: int = 0,
    adallava_variant: str | None = None,
):
    """Returns a `LoadedModel` with seeded random weights, built on `device` in `dtype`.

    `name_or_config`: a shipped name ("llava-1.5-7b"), an embedded alias or local folder (its
    config.json and processor are used; its weights are not read), or a `LlavaConfig`.
    `adallava_variant` "L" / "H" adds a random AdaLLaVA head (P and r from the shipped settings,
    else N/2 and 8). The result carries `loaded.weights = "random"`."""
    from adabench.models.loading import LoadedModel, check_memory, resolve_device, resolve_dtype

    name, config, processor = _config_and_processor(name_or_config)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    check_memory(config, dev, dt, name)  # before allocating: a 7B model in fp32 needs ~28 GB
    model = create_empty(config, dev, dt)
    init_random_(model, seed)
    model.eval()
    head = None
    if adallava_variant is not None:
        head = build_random_head(
            config, adallava_variant, dev, dt, seed + 1, **adallava_settings_for(name)
        )
    loaded = LoadedModel(name, f"random weights ({name})", model, processor, dev, dt, head)
    loaded.weights = "random"
    return loaded


def create_empty(config, device: torch.device | str, dtype: torch.dtype):
    """Returns a `LlavaForConditionalGeneration` for `config` allocated directly on `device` in
    `dtype`, weights uninitialised (HF's and torch's init skipped). On the "meta" device it
    allocates nothing: module shapes for FLOPs checks."""
    from transformers import LlavaForConditionalGeneration
    from transformers.initialization import no_init_weights

    with torch.device(device), no_init_weights():
        return LlavaForConditionalGeneration._from_config(copy.deepcopy(config), dtype=dtype)


@torch.no_grad()
def init_random_(module: torch.nn.Module, seed: int, std: float = INIT_STD) -> None:
    """Fills `module`'s parameters in place on their device: N(0, std²) for matrices and other
    tensors, 1 for 1-d `*.weight` (norm scales), 0 for biases. Seeded: same seed, same weights
    on the same device."""
    gen = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    for pname, param in module.named_parameters():
        if pname.endswith("bias"):
            param.zero_()
        elif param.dim() == 1 and pname.endswith("weight"):
            param.fill_(1.0)
        else:
            param.normal_(0.0, std, generator=gen)


def adallava_settings_for(name: str) -> dict:
    """Returns {"prefix_layers", "group_size"} for a shipped model, {} otherwise."""
    raw = adallava_settings(name)
    return {k: raw[k] for k in ("prefix_layers", "group_size") if k in raw}


def build_random_head(
    config,
    variant: str,
    device: torch.device,
    dtype: torch.dtype,
    seed: int,
    prefix_layers: int | None = None,
    group_size: int | None = None,
):
    """Returns a random `AdaLlavaHead` for `config` on `device` in `dtype`.

    The scheduler's weights are N(0, 1/D) so its logits are O(1) and the plan follows the input
    (the latency token's hidden state differs per input through attention)."""
    from adabench.models.adallava.model import AdaLlavaConfig, AdaLlavaHead

    if variant not in ("L", "H"):
        raise UserError(f"AdaLLaVA variant must be 'L' or 'H', got {variant!r}")
    ada_config = AdaLlavaConfig.for_model(config, variant, prefix_layers, group_size)
    with torch.device(device):
        head = AdaLlavaHead(ada_config)
    head.to(dtype)
    init_random_(head, seed)
    with torch.no_grad():
        head.scheduler.proj.weight.normal_(0.0, ada_config.hidden_size**-0.5)
        # A zero latency token (the same at every budget): the hidden state the scheduler reads
        # then carries only the input, and `center_random_scheduler_` holds at every budget.
        head.latency_encoder.fc2.weight.zero_()
        head.latency_encoder.fc2.bias.zero_()
    return head.eval()


class _Stop(Exception):
    """Ends a calibration prefill once the scheduler's input has been read."""


@torch.no_grad()
def center_random_scheduler_(loaded, prepared: list, n: int = 8) -> int:
    """Centres a random AdaLLaVA scheduler on its inputs: bias = −W·mean(h) over the latency
    token's hidden states at block P of up to `n` prepared samples (`sweep.generate.
    PreparedSample`). A random model's hidden states share a large common part, so without this
    every input gets the same plan; with it plans follow the input as a trained scheduler's do.
    Runs blocks [0, P) once per sample. Returns the number of samples used (0: nothing done)."""
    from adabench.models.execution import LlavaRunner, prefill

    head = loaded.adallava
    if head is None or not prepared:
        return 0
    runner = LlavaRunner(loaded.model)
    states: list[torch.Tensor] = []

    def grab(hidden: torch.Tensor):
        states.append(hidden[0].float())
        raise _Stop

    for ps in prepared[:n]:
        embeds = runner.embed(ps.input_ids, runner.image_features(ps.pixel_values))
        embeds = torch.cat([embeds, head.latency_token(0).to(embeds.dtype)], dim=1)
        with contextlib.suppress(_Stop):
            prefill(
                runner,
                embeds,
                None,
                embeds.shape[1] + 1,
                decide=grab,
                decide_at=head.config.prefix_layers,
            )
    proj = head.scheduler.proj
    mean = torch.stack(states).mean(0)
    proj.bias.copy_(-(proj.weight.float() @ mean).to(proj.bias.dtype))
    return len(states)


def _config_and_processor(name_or_config: Any):
    """Returns (name, LlavaConfig, processor) for a shipped name, local model or config."""
    from transformers import LlavaConfig

    if isinstance(name_or_config, LlavaConfig):
        return "config", name_or_config, build_synthetic_processor(name_or_config)
    name = str(name_or_config)
    config = shipped_config(name)
    if config is not None:
        return name, config, build_synthetic_processor(config)
    folder = _local_folder(name)
    if folder is None:
        raise UserError(
            f"--no-weights needs a config: {name!r} is not a shipped config "
            f"({', '.join(shipped_names())}), an embedded alias or a local folder with config.json"
        )
    from adabench.models.loading import load_processor

    return name, LlavaConfig.from_pretrained(str(folder)), load_processor(str(folder))


# --- synthetic processor ---------------------------------------------------------------------


def synthetic_vocabulary(config) -> dict[str, int]:
    """Returns word → id: specials at Llama's ids (<unk> 0, <s> 1, </s> 2), `<image>` at the
    config's image token id, `<pad>` right after it, then the tiny model's words (prompt words
    of the built-in suites). Every id is below the config's vocabulary size."""
    from adabench.models.tiny import vocabulary

    image_id = int(config.image_token_id)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<image>": image_id}
    pad_id = image_id + 1 if image_id + 1 < config.text_config.vocab_size else 3
    vocab["<pad>"] = pad_id
    next_id = 3
    for word in vocabulary():
        if word in vocab:
            continue
        while next_id in vocab.values():
            next_id += 1
        if next_id >= config.text_config.vocab_size:
            break
        vocab[word] = next_id
        next_id += 1
    return vocab


def build_synthetic_processor(config):
    """Returns an offline `LlavaProcessor` for `config`: a PIL CLIP image processor at the vision
    tower's resolution (CLIP mean/std) and a word-level tokenizer whose `<image>` id is the
    config's (text tokens are synthetic — only their count matters for a random model)."""
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from adabench.models.tiny import CHAT_TEMPLATE, build_tokenizer

    vision = config.vision_config
    tokenizer = build_tokenizer(synthetic_vocabulary(config))
    size = vision.image_size
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    strategy = getattr(config, "vision_feature_select_strategy", "default")
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy=strategy,
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
