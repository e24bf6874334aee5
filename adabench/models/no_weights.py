"""Full-size models without weights: shipped llava-1.5 configs and random-weight builds.

Latency, memory and FLOPs of an execution plan depend on the model's shapes, not its weight
values (optimum-benchmark's `no_weights` does the same), so a 7B/13B model can be measured on a
machine that never downloaded it. `catalog.shipped_config("llava-1.5-7b")` reads the llava-hf config that
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
from typing import Any

import torch

from adabench.errors import UserError
from adabench.models.catalog import (
    adallava_settings_for,
    local_folder,
    shipped_config,
    shipped_names,
)
from adabench.models.loading import (
    LoadedModel,
    check_memory,
    load_processor,
    resolve_device,
    resolve_dtype,
)

INIT_STD = 0.02
TEMPLATE_WORDS = ("system", "user", "assistant", "You", "helpful", "assistant.")
"""Words of the checkpoints' chat templates (roles, Qwen's system prompt): after the built-in
suites' words, so that a decoded prompt reads as the checkpoint's."""


# --- shipped configs -------------------------------------------------------------------------


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
    else N/2 and 8). The result has `weights == "random"`."""
    name, config, processor = config_and_processor(name_or_config)
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
    return LoadedModel(
        name, f"random weights ({name})", model, processor, dev, dt, head, weights="random"
    )


def create_empty(config, device: torch.device | str, dtype: torch.dtype):
    """Returns the wrapper's model class (`LlavaForConditionalGeneration`, ...) for `config`
    allocated directly on `device` in `dtype`, weights uninitialised (HF's and torch's init
    skipped) and the lm_head tied to the input embeddings where the config ties them, as
    `from_pretrained` does (`no_init_weights` skips HF's tying: an untied copy would add a
    vocab × hidden matrix, 311 M parameters on Qwen2.5-VL-3B). On the "meta" device it
    allocates nothing: module shapes for FLOPs checks."""
    from transformers.initialization import no_init_weights

    from adabench.models.wrappers import model_class, wrapper_of

    with torch.device(device), no_init_weights():
        model = model_class(wrapper_of(config))._from_config(copy.deepcopy(config), dtype=dtype)
    model.tie_weights()
    return model


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
        ps = ps.to(runner.device)  # prepared samples stay on the host (sweep.generate)
        embeds = runner.embed(ps.input_ids, runner.image_features(ps.pixel_values, ps.visual))
        embeds = torch.cat([embeds, head.latency_token(0).to(embeds.dtype)], dim=1)
        with contextlib.suppress(_Stop):
            prefill(
                runner,
                embeds,
                None,
                embeds.shape[1] + 1,
                decide=grab,
                decide_at=head.config.prefix_layers,
                rotary=ps.rotary,
            )
    proj = head.scheduler.proj
    mean = torch.stack(states).mean(0)
    proj.bias.copy_(-(proj.weight.float() @ mean).to(proj.bias.dtype))
    return len(states)


def config_and_processor(name_or_config: Any):
    """Returns (name, config, processor) for a shipped name, local model or a VLM config object
    (LlavaConfig, LlavaNextConfig, ...: any class of adabench/models/wrappers/)."""
    from transformers import PretrainedConfig

    from adabench.models.catalog import read_config

    if isinstance(name_or_config, PretrainedConfig):
        return "config", name_or_config, build_synthetic_processor(name_or_config)
    name = str(name_or_config)
    config = shipped_config(name)
    if config is not None:
        return name, config, build_synthetic_processor(config)
    folder = local_folder(name)
    if folder is None:
        raise UserError(
            f"--no-weights needs a config: {name!r} is not a shipped config "
            f"({', '.join(shipped_names())}), an embedded alias or a local folder with config.json"
        )
    return name, read_config(folder, f"model {name!r}"), load_processor(str(folder))


# --- synthetic processor ---------------------------------------------------------------------


def synthetic_vocabulary(config, specials: tuple[str, ...] = ()) -> dict[str, int]:
    """Returns word → id: specials at Llama's ids (<unk> 0, <s> 1, </s> 2), `image_token`
    (default `<image>`) at the config's image token id, the wrapper's further `specials` (at the
    config's ids where it names them: Qwen's vision start/end, the video token), `<pad>` right
    after the image token where that id is free, then the tiny model's words (prompt words of
    the built-in suites). Every id is below the config's vocabulary size."""
    from adabench.models.tiny import vocabulary

    return _vocabulary(config, "<image>", specials, vocabulary())


def _vocabulary(config, image_token: str, specials: tuple[str, ...], words: list[str]) -> dict:
    image_id = int(config.image_token_id)
    vocab_size = config.text_config.vocab_size
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, image_token: image_id}
    video_id = getattr(config, "video_token_id", None)
    named = {
        "<|vision_start|>": getattr(config, "vision_start_token_id", None),
        "<|vision_end|>": getattr(config, "vision_end_token_id", None),
        "<|video_pad|>": video_id,
        "<video>": video_id,
    }
    for token in specials:  # the config's ids first: <pad> must not take one (Qwen's video id)
        wanted = named.get(token)
        if wanted is not None and wanted < vocab_size and wanted not in vocab.values():
            vocab[token] = int(wanted)
    pad_id = image_id + 1 if image_id + 1 < vocab_size else 3
    if pad_id in vocab.values():
        pad_id = 3
    vocab["<pad>"] = pad_id
    next_id = 3
    for word in [*(t for t in specials if t not in vocab), *words]:
        if word in vocab:
            continue
        while next_id in vocab.values():
            next_id += 1
        if next_id >= vocab_size:
            break
        vocab[word] = next_id
        next_id += 1
    return vocab


def build_synthetic_processor(config):
    """Returns an offline processor of the config's wrapper (its real processor class:
    LlavaProcessor, LlavaNextProcessor, Idefics3Processor, ...) with a PIL image processor at
    the vision tower's sizes, the wrapper's checkpoints' chat template (`Wrapper.chat_template`;
    LLaVA-1.5's layout where it has none) and a word-level tokenizer whose image token id is the
    config's and whose template markers (`<|im_start|>`, `[INST]`, `User:`, ...) are single
    tokens (text tokens are synthetic — only their count matters for a random model)."""
    from adabench.models.tiny import CHAT_TEMPLATE, build_tokenizer, vocabulary
    from adabench.models.wrappers import wrapper_of

    wrapper = wrapper_of(config)
    words = [*vocabulary(), *TEMPLATE_WORDS]
    vocab = _vocabulary(config, wrapper.image_token, wrapper.special_tokens, words)
    tokenizer = build_tokenizer(
        vocab, image_token=wrapper.image_token, specials=wrapper.special_tokens
    )
    template = wrapper.chat_template or CHAT_TEMPLATE.replace("<image>", wrapper.image_token)
    return wrapper.build_processor(config, tokenizer, template)
