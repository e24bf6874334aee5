"""Convert the official AdaLLaVA checkpoints (the authors' LLaVA code layout) to adabench's format.

Source: a folder (or a hub id in the user's HF cache) such as `zhuoyanxu/ada-llava-L-v1.5-7b`
with a LLaVA-style `config.json` (Llama fields at the top level, `mm_*` fields,
`num_prefix_layers`, `scheduler_type` L/H, `scheduler_rank`, `token_selecting`) and weights in
*.safetensors or *.bin. Output: an HF `LlavaForConditionalGeneration` folder (config, safetensors,
processor) plus `adallava_config.json` / `adallava.safetensors` (AdaLlavaHead) and
`conversion.json` (source, token_selecting, the key mapping used).

Weight names (original → adabench):
  model.embed_tokens / model.layers.* / model.norm  → model.language_model.*
  lm_head                                           → lm_head
  model.mm_projector.0 / .2                         → model.multi_modal_projector.linear_1 / linear_2
  model.vision_tower.vision_tower.vision_model.*    → the HF vision tower (model.vision_tower.*)
  scheduler.scheduler_up_proj.net.0 / .1 / .3       → latency_encoder.norm / fc1 / fc2
  scheduler.mlp_head                                → scheduler.proj
(`scheduler.latency_encoder.{norm,fc1,fc2}` and a leading `model.` before `scheduler.` are also
accepted.) LLaVA checkpoints that do not store the vision tower take it from `mm_vision_tower`
(or `vision_tower=`), a CLIP folder or hub id in the HF cache.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from adabench.errors import UserError

LLAVA_RULES = (
    ("model.vision_tower.vision_tower.vision_model.", "{vision}"),
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.embed_tokens.", "model.language_model.embed_tokens."),
    ("model.layers.", "model.language_model.layers."),
    ("model.norm.", "model.language_model.norm."),
    ("lm_head.", "lm_head."),
)
HEAD_RULES = (
    ("scheduler.scheduler_up_proj.net.0.", "latency_encoder.norm."),
    ("scheduler.scheduler_up_proj.net.1.", "latency_encoder.fc1."),
    ("scheduler.scheduler_up_proj.net.3.", "latency_encoder.fc2."),
    ("scheduler.latency_encoder.", "latency_encoder."),
    ("scheduler.mlp_head.", "scheduler.proj."),
)
DROP_SUFFIXES = ("rotary_emb.inv_freq", "position_ids")
KNOWN_CLIP = {  # CLIPVisionConfig kwargs of the towers LLaVA-1.5 uses
    "openai/clip-vit-large-patch14-336": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                              num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768),
    "openai/clip-vit-large-patch14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                          num_attention_heads=16, image_size=224, patch_size=14, projection_dim=768),
}  # fmt: skip
DEFAULT_PROCESSOR = "llava-hf/llava-1.5-7b-hf"
LLAMA_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling",
              "hidden_act", "bos_token_id", "eos_token_id", "pad_token_id", "attention_bias")  # fmt: skip


def local_dir(name: str | Path, what: str) -> Path:
    """Returns a local folder for `name`: itself when a folder, else its snapshot in the HF cache."""
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name), local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any miss in the cache means the same thing to the user
        raise UserError(f"{what} {name!r} is neither a folder nor in the HF cache: run "
                        f"`huggingface-cli download {name}` on a machine with network access, "
                        f"or pass a local folder.") from exc  # fmt: skip


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Returns every tensor of the *.safetensors (else *.bin) files in `folder`."""
    from safetensors.torch import load_file

    from adabench.models.loading import check_safetensors

    files = sorted(folder.glob("*.safetensors"))
    state: dict[str, torch.Tensor] = {}
    if files:
        for f in files:
            check_safetensors(f)  # a truncated or random file: one line naming it
            state.update(load_file(str(f)))
        return state
    for f in sorted(folder.glob("*.bin")):
        try:
            loaded = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - unpickling refusals and damage look alike here
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"{f} is not a readable PyTorch weights file ({first}); only plain "
                            "tensors are loaded (weights_only)") from None  # fmt: skip
        if not isinstance(loaded, dict) or not all(
            isinstance(v, torch.Tensor) for v in loaded.values()
        ):
            raise UserError(f"{f} does not hold a state dict of tensors")
        state.update(loaded)
    if not state:
        raise UserError(f"no *.safetensors or *.bin weights in {folder}")
    return state


def _rename(key: str, rules, vision_prefix: str = "") -> str | None:
    for old, new in rules:
        if key.startswith(old):
            return new.format(vision=vision_prefix) + key[len(old) :]
    return None


def split_state(state: dict[str, torch.Tensor], vision_prefix: str) -> tuple[dict, dict]:
    """Returns (Llava state dict in HF names, AdaLlavaHead state dict) from the original names;
    unknown keys raise UserError listing a few."""
    llava, head, unknown = {}, {}, []
    for key, value in state.items():
        if key.endswith(DROP_SUFFIXES):
            continue
        k = key[len("model.") :] if key.startswith("model.scheduler.") else key
        if (new := _rename(k, HEAD_RULES)) is not None:
            head[new] = value
        elif (new := _rename(k, LLAVA_RULES, vision_prefix)) is not None:
            llava[new] = value
        else:
            unknown.append(key)
    if unknown:
        raise UserError(f"unexpected weight names in the source checkpoint: {', '.join(unknown[:5])}"
                        f"{' ...' if len(unknown) > 5 else ''}")  # fmt: skip
    return llava, head


def _vision(cfg: dict, llava: dict, vision_tower: str | None, vision_prefix: str):
    """Returns the CLIPVisionConfig and adds the tower's weights to `llava` when the source lacks them."""
    from transformers import CLIPVisionConfig

    name = vision_tower or cfg.get("mm_vision_tower")
    has_weights = any(k.startswith(vision_prefix) for k in llava)
    if not name:
        raise UserError(
            "the source config names no mm_vision_tower; pass --vision-tower (a CLIP folder or hub id)"
        )
    if has_weights and name in KNOWN_CLIP and not Path(name).is_dir():
        return CLIPVisionConfig(**KNOWN_CLIP[name], hidden_act="quick_gelu", layer_norm_eps=1e-5)
    folder = local_dir(name, "vision tower")
    vcfg = CLIPVisionConfig.from_pretrained(str(folder))
    if not has_weights:
        llava.update(
            {vision_prefix + k: v for k, v in clip_vision_weights(load_weights(folder)).items()}
        )
    return vcfg


def clip_vision_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns the CLIP vision transformer's tensors without prefix, from a hub CLIPModel /
    CLIPVisionModel file (`vision_model.*`) or a transformers-5 CLIPVisionModel (flat names)."""
    if any(k.startswith("vision_model.") for k in state):
        picked = {
            k[len("vision_model.") :]: v for k, v in state.items() if k.startswith("vision_model.")
        }
    else:
        roots = ("embeddings.", "encoder.", "pre_layrnorm.", "post_layernorm.")
        picked = {k: v for k, v in state.items() if k.startswith(roots)}
    return {k: v for k, v in picked.items() if not k.endswith(DROP_SUFFIXES)}


def _processor(src: Path, processor: str | None):
    from adabench.models.loading import load_processor

    candidates = [processor] if processor else [str(src), DEFAULT_PROCESSOR]
    for cand in candidates:
        try:
            proc = load_processor(str(local_dir(cand, "processor")))
        except (UserError, OSError, ValueError, TypeError):
            continue
        tok = getattr(proc, "tokenizer", None)
        if tok is not None and hasattr(proc, "image_processor") and "<image>" in tok.get_vocab():
            return proc
    raise UserError(f"no Llava processor (tokenizer with an <image> token + image processor) found in "
                    f"{' or '.join(candidates)}: run `huggingface-cli download {DEFAULT_PROCESSOR}` "
                    f"or pass --processor DIR.")  # fmt: skip


def _grow_vocab(llava: dict, size: int) -> None:
    """Pads embed_tokens and lm_head to `size` rows with their mean row (new tokens: <image>, <pad>)."""
    for key in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
        w = llava[key]
        if w.shape[0] < size:
            extra = w.float().mean(0, keepdim=True).expand(size - w.shape[0], -1).to(w.dtype)
            llava[key] = torch.cat([w, extra])


def _llava_config(cfg: dict, vcfg, proc, vocab_size: int):
    from transformers import LlamaConfig, LlavaConfig

    tok = proc.tokenizer
    text = LlamaConfig(**{k: cfg[k] for k in LLAMA_KEYS if cfg.get(k) is not None})
    text.vocab_size = vocab_size
    text.tie_word_embeddings = False
    if tok.pad_token_id is not None:
        text.pad_token_id = tok.pad_token_id
    feature = cfg.get("mm_vision_select_feature", "patch")
    return LlavaConfig(
        vision_config=vcfg, text_config=text, image_token_id=tok.convert_tokens_to_ids("<image>"),
        projector_hidden_act="gelu", vision_feature_layer=int(cfg.get("mm_vision_select_layer", -2)),
        vision_feature_select_strategy="default" if feature == "patch" else "full",
        image_seq_length=(vcfg.image_size // vcfg.patch_size) ** 2,
    )  # fmt: skip


def _head_config(cfg: dict, llava_config):
    from adabench.models.adallava.model import AdaLlavaConfig

    variant = str(cfg.get("scheduler_type", "")).upper()
    if variant not in ("L", "H"):
        raise UserError(
            f"source config: scheduler_type must be 'L' or 'H', got {cfg.get('scheduler_type')!r}"
        )
    if "num_prefix_layers" not in cfg:
        raise UserError("source config has no num_prefix_layers: is this an AdaLLaVA checkpoint?")
    rank = cfg.get("scheduler_rank") if variant == "H" else None
    return AdaLlavaConfig.for_model(llava_config, variant, prefix_layers=int(cfg["num_prefix_layers"]),
                                    group_size=int(rank) if rank else None)  # fmt: skip


def convert_adallava(
    src: str | Path,
    out: str | Path,
    dtype: str = "float16",
    vision_tower: str | None = None,
    processor: str | None = None,
) -> dict:
    """Converts an official AdaLLaVA checkpoint at `src` into an adabench AdaLLaVA folder `out`.

    Returns a summary: out, variant, prefix_layers, group_size, token_selecting, tensors
    (count of base-model tensors written) and vocab_size. Loadable afterwards with
    `adabench.models.loading.load_model(out)`.
    """
    from transformers import LlavaForConditionalGeneration

    from adabench.models.adallava.model import AdaLlavaForConditionalGeneration, AdaLlavaHead
    from adabench.models.loading import DTYPES

    if dtype not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    src_dir = local_dir(src, "AdaLLaVA checkpoint")
    if not (src_dir / "config.json").exists():
        raise UserError(f"{src_dir} has no config.json")
    from adabench.models.loading import read_json

    cfg = read_json(src_dir / "config.json", "source config")
    if not isinstance(cfg, dict):
        raise UserError(
            f"{src_dir / 'config.json'} must hold a JSON object, got a {type(cfg).__name__}"
        )
    vision_prefix = _vision_prefix()
    llava_sd, head_sd = split_state(load_weights(src_dir), vision_prefix)
    if not head_sd:
        raise UserError(f"{src_dir} holds no scheduler.* weights: not an AdaLLaVA checkpoint")
    vcfg = _vision(cfg, llava_sd, vision_tower, vision_prefix)
    proc = _processor(src_dir, processor)
    vocab = llava_sd["model.language_model.embed_tokens.weight"].shape[0]
    needed = max(vocab, len(proc.tokenizer), proc.tokenizer.convert_tokens_to_ids("<image>") + 1)
    if needed > vocab:
        needed = int(math.ceil(needed / 64) * 64)  # as llava-hf: 32000 → 32064
        _grow_vocab(llava_sd, needed)
    config = _llava_config(cfg, vcfg, proc, needed)
    target = DTYPES[dtype]
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    missing = set(model.state_dict()) - set(llava_sd)
    extra = set(llava_sd) - set(model.state_dict())
    if missing or extra:
        raise UserError(f"converted names do not match LlavaForConditionalGeneration: missing "
                        f"{sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}")  # fmt: skip
    try:
        model.load_state_dict(
            {k: v.to(target) for k, v in llava_sd.items()}, strict=True, assign=True
        )
    except RuntimeError as exc:  # shapes in config.json and the weights disagree
        first = str(exc).strip().splitlines()[-1].strip()
        raise UserError(f"the weights of {src_dir} do not match its config.json: {first}") from None
    model.config.dtype = target
    head = AdaLlavaHead(_head_config(cfg, config))
    try:
        head.load_state_dict({k: v.float() for k, v in head_sd.items()}, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise UserError(
            f"the scheduler weights of {src_dir} do not match its config: {first}"
        ) from None
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    out = Path(out)
    AdaLlavaForConditionalGeneration(model, head).save_pretrained(out, dtype=target)
    proc.save_pretrained(str(out))
    summary = {"out": str(out), "source": str(src), "variant": head.config.variant,
               "prefix_layers": head.config.prefix_layers, "group_size": head.config.group_size,
               "token_selecting": cfg.get("token_selecting", "none"), "tensors": len(llava_sd),
               "vocab_size": needed, "dtype": dtype}  # fmt: skip
    (out / "conversion.json").write_text(json.dumps(
        {**summary, "rules": [list(r) for r in LLAVA_RULES + HEAD_RULES], "vision_prefix": vision_prefix},
        indent=2))  # fmt: skip
    return summary


def _vision_prefix() -> str:
    """Returns the prefix the installed transformers gives the Llava vision tower's CLIP
    transformer in memory (`model.vision_tower.` in transformers 5)."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    tiny = LlavaConfig(vision_config=CLIPVisionConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                                      num_attention_heads=1, image_size=8, patch_size=4),
                       text_config=LlamaConfig(vocab_size=8, hidden_size=8, intermediate_size=8,
                                               num_hidden_layers=1, num_attention_heads=1))  # fmt: skip
    with torch.device("meta"):
        keys = LlavaForConditionalGeneration(tiny).state_dict()
    emb = next(k for k in keys if k.endswith("embeddings.patch_embedding.weight"))
    return emb[: -len("embeddings.patch_embedding.weight")]
