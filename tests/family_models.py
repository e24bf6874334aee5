"""Tiny random Llava models of every decoder family, and HF-only references for the exactness
gate (tests/unit/test_families.py, tests/cli/test_families_cli.py).

Each family row builds that family's own transformers text config with its distinctive features
turned on so that they matter on a ~20-token prompt: biases, small sliding windows, layer types
mixing sliding and full attention, soft-capping that bites, a query scalar other than head_dim,
partial rotary, rotary scaling, a different rotary base per layer type. `build_family_llava`
then randomises every bias and every norm weight, so an executor that drops a bias, a norm or
Gemma's (1 + w) convention changes the outputs.

References never touch the adabench executor:
- `truncated_copy` is the model with only some decoder blocks (HF `generate` on it is the
  reference of a block-skipping plan);
- `masked_reference_logits` is the full HF forward with the dropped query heads zeroed before
  `o_proj` and the dropped MLP neurons zeroed before `down_proj` (partial-block plans).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma2", "gemma3")

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, INTERMEDIATE = 64, 4, 2, 16, 128
WINDOW = 6
INIT_STD = 0.1
"""Weights ~N(0, 0.1) instead of HF's 0.02: attention logits then reach a few units, so the
Gemma 2 soft-cap and the sliding windows change the outputs, and greedy argmaxes are decisive."""


def _alternating(layers: int, first: str = "sliding_attention") -> list[str]:
    other = "full_attention" if first == "sliding_attention" else "sliding_attention"
    return [first if i % 2 == 0 else other for i in range(layers)]


def _common(tok, layers: int) -> dict:
    return {
        "vocab_size": len(tok),
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "max_position_embeddings": 128,
        "initializer_range": INIT_STD,
        "tie_word_embeddings": False,
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }


def _llama(tok, layers):
    from transformers import LlamaConfig

    return LlamaConfig(
        **_common(tok, layers),
        attention_bias=True,
        mlp_bias=True,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 10000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
    )


def _mistral(tok, layers):
    from transformers import MistralConfig

    return MistralConfig(
        **_common(tok, layers),
        sliding_window=WINDOW,
        rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0},
    )


def _qwen2(tok, layers):
    from transformers import Qwen2Config

    return Qwen2Config(  # q/k/v biases always; blocks >= max_window_layers slide
        **_common(tok, layers),
        use_sliding_window=True,
        sliding_window=WINDOW,
        max_window_layers=layers // 2,
        rope_parameters={
            "rope_type": "yarn",
            "rope_theta": 10000.0,
            "factor": 4.0,
            "original_max_position_embeddings": 32,
        },
    )


def _qwen3(tok, layers):
    from transformers import Qwen3Config

    return Qwen3Config(
        **_common(tok, layers),
        attention_bias=True,
        use_sliding_window=True,  # else HF sets sliding_window None whatever layer_types say
        sliding_window=WINDOW,
        layer_types=_alternating(layers, "full_attention"),
        rope_parameters={"rope_type": "default", "rope_theta": 500.0},
    )


def _phi3(tok, layers):
    from transformers import Phi3Config

    common = _common(tok, layers)
    del common["head_dim"]  # Phi-3 has no head_dim field: hidden / heads = 16
    return Phi3Config(
        **common,
        sliding_window=WINDOW,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.5,
        },
    )


def _gemma2(tok, layers):
    from transformers import Gemma2Config

    return Gemma2Config(
        **_common(tok, layers),
        sliding_window=WINDOW,
        layer_types=_alternating(layers),
        attn_logit_softcapping=2.0,
        final_logit_softcapping=30.0,  # HF's Llava head does not apply it (Gemma2ForCausalLM does)
        query_pre_attn_scalar=HEAD_DIM // 4,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
    )


def _gemma3(tok, layers):
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        **_common(tok, layers),
        sliding_window=WINDOW,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"] * (layers // 3)
        + ["sliding_attention"] * (layers % 3),
        query_pre_attn_scalar=HEAD_DIM // 2,
        rope_parameters={
            "full_attention": {"rope_type": "linear", "rope_theta": 100000.0, "factor": 4.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 50.0},
        },
    )


FAMILY_CONFIGS: dict[str, Callable] = {
    "llama": _llama,
    "mistral": _mistral,
    "qwen2": _qwen2,
    "qwen3": _qwen3,
    "phi3": _phi3,
    "gemma2": _gemma2,
    "gemma3": _gemma3,
}
"""Family name → builder(tokenizer, layers) of that family's transformers text config."""


def text_config(family: str, layers: int = 8, tok=None):
    """Returns the text config of `family` with `layers` decoder blocks."""
    if tok is None:
        from adabench.models import tiny

        tok = tiny.build_processor().tokenizer
    return FAMILY_CONFIGS[family](tok, layers)


def llava_config(text, tok):
    """Returns a LlavaConfig around `text` with the tiny CLIP tower every test model shares
    (tests/conftest.py's random Llava too): 48 px, patch 16, 9 visual tokens."""
    from transformers import CLIPVisionConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=48,
        patch_size=16,
        projection_dim=32,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_seq_length=9,
    )


def randomise_biases_and_norms_(model, std: float = 0.5) -> None:
    """Replaces every bias and every norm weight of the decoder (and projector) with normal
    noise: mean 0 for Gemma's (1 + w) norms, mean 1 for w·x̂ norms, so no norm is the identity
    and no bias is zero."""
    gemma = model.config.text_config.model_type.startswith("gemma")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, std)
            elif "norm" in name.rsplit(".", 2)[-2] and name.endswith(".weight"):
                p.normal_(0.0 if gemma and "language_model" in name else 1.0, std)


def build_family_llava(
    family: str, layers: int = 8, attn: str = "eager", seed: int = 0, overrides: dict | None = None
):
    """Returns (model, processor): a random tiny Llava whose decoder is `family` (fp32, eval),
    every bias and norm weight randomised. `attn` is "eager" or "sdpa" (Gemma 2 takes eager
    only in HF: soft-capping). `overrides` sets text-config fields before the model is built
    (same seed, same shapes: the same weights), to switch a family feature off."""
    from transformers import LlavaForConditionalGeneration

    from adabench.models import tiny

    torch.manual_seed(seed)
    processor = tiny.build_processor()
    tok = processor.tokenizer
    text = text_config(family, layers, tok)
    for key, value in (overrides or {}).items():
        setattr(text, key, value)
    config = llava_config(text, tok)
    model = LlavaForConditionalGeneration._from_config(
        config, attn_implementation=attn, dtype=torch.float32
    ).eval()
    randomise_biases_and_norms_(model)
    return model, processor


def save_family_llava(family: str, path, layers: int = 8):
    """Returns `path` holding `build_family_llava(family, layers)` saved as an HF model folder
    with its processor (what a user passes as `--model DIR`)."""
    model, processor = build_family_llava(family, layers=layers)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def prompt_inputs(processor, index: int = 0, question: str | None = None):
    """Returns (input_ids, pixel_values) of a shapes test sample through the tiny processor."""
    from adabench.data import synthetic
    from adabench.models.tiny import PROMPT

    item = synthetic.generate("test", index + 1)[index]
    enc = processor(
        images=synthetic.render(item.scene),
        text=PROMPT.format(question=question or item.question),
        return_tensors="pt",
    )
    return enc["input_ids"], enc["pixel_values"]


def decoder_layers(model) -> torch.nn.ModuleList:
    return model.model.language_model.layers


def truncated_copy(model, kept_blocks):
    """Returns a deep copy of `model` (any wrapper's class) whose decoder holds only
    `kept_blocks` (in order), with text_config.num_hidden_layers and layer_types updated and
    each kept layer's `layer_idx` renumbered (HF's cache and masks index layers by it)."""
    from adabench.models.wrappers import decoder_module, wrapper_of

    kept = sorted(int(i) for i in kept_blocks)
    out = copy.deepcopy(model)
    lm = decoder_module(wrapper_of(out.config), out)
    layers = [lm.layers[i] for i in kept]
    for j, layer in enumerate(layers):
        for module in (layer, getattr(layer, "self_attn", None)):
            if module is not None and hasattr(module, "layer_idx"):
                module.layer_idx = j
    lm.layers = torch.nn.ModuleList(layers)
    for text in {id(c): c for c in (out.config.text_config, lm.config)}.values():
        text.num_hidden_layers = len(kept)
        if getattr(text, "layer_types", None) is not None:
            text.layer_types = [text.layer_types[i] for i in kept]
        if getattr(text, "max_window_layers", None) is not None:  # Qwen2/3: layer_types rule
            text.max_window_layers = sum(1 for i in kept if i < text.max_window_layers)
    return out


def _o_proj(layer):
    return layer.self_attn.o_proj


def _down_proj(layer):
    return layer.mlp.down_proj


def hf_last_logits(model, input_ids, pixel_values, prompt_len: int | None = None) -> torch.Tensor:
    """Returns the HF forward's last-position logits [1, V] for `input_ids` (a prompt of
    `prompt_len` tokens, then generated ones; None: all prompt). Llava's own forward refuses a
    sequence with more image tokens than image features, which a random model can generate;
    then (or with prompt_len given) the forward is spelled with HF's modules as Llava does it:
    token embeddings, the prompt's image-token slots filled with the projected image features,
    the decoder, lm_head."""
    image_id = model.config.image_token_id
    if prompt_len is None:
        if int((input_ids == image_id).sum()) == model.config.image_seq_length:
            return model(input_ids=input_ids, pixel_values=pixel_values).logits[:, -1]
        raise ValueError("generated image tokens: give prompt_len")
    cfg = model.config
    embeds = model.get_input_embeddings()(input_ids)  # Gemma: the √d scale is inside
    feats = model.model.get_image_features(
        pixel_values=pixel_values,
        vision_feature_layer=cfg.vision_feature_layer,
        vision_feature_select_strategy=cfg.vision_feature_select_strategy,
    )
    feats = getattr(feats, "pooler_output", feats)
    feats = torch.cat(list(feats)) if isinstance(feats, (list, tuple)) else feats
    slots = input_ids == image_id
    slots[:, prompt_len:] = False
    embeds = embeds.masked_scatter(slots[..., None], feats.to(embeds.dtype).reshape(-1))
    hidden = model.model.language_model(inputs_embeds=embeds).last_hidden_state
    return model.lm_head(hidden[:, -1:])[:, -1]


def masked_reference_logits(
    model, input_ids, pixel_values, plan, prompt_len: int | None = None
) -> torch.Tensor:
    """Returns last-position logits [1, V] of the plain HF forward (`hf_last_logits`) where
    pre-hooks zero the dropped query heads' slices of each `self_attn.o_proj` input and the
    dropped MLP groups' neurons of each `mlp.down_proj` input; a half with no kept unit
    (`heads=()`, `mlp_groups=()`) contributes nothing, its o_proj / down_proj bias included,
    as adabench runs no such sublayer. Every block runs (plan layers
    must not be None: a skipped block is `truncated_copy`'s)."""
    text = model.config.text_config
    n_heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // n_heads
    inter = text.intermediate_size
    handles = []

    def zeroing(mask: torch.Tensor):
        def hook(_module, args):
            return (args[0] * mask.to(args[0].dtype),) + tuple(args[1:])

        return hook

    def silenced(_module, _args, output):  # no kept unit: the sublayer adds nothing, bias too
        return torch.zeros_like(output)

    try:
        for i, (layer, lp) in enumerate(zip(decoder_layers(model), plan.layers)):
            if lp is None:
                raise ValueError(f"block {i} is skipped: masking cannot express that")
            if lp.heads == ():
                handles.append(_o_proj(layer).register_forward_hook(silenced))
            elif lp.heads is not None:
                mask = torch.zeros(n_heads * head_dim)
                for h in lp.heads:
                    mask[h * head_dim : (h + 1) * head_dim] = 1
                handles.append(_o_proj(layer).register_forward_pre_hook(zeroing(mask)))
            if lp.mlp_groups == ():
                handles.append(_down_proj(layer).register_forward_hook(silenced))
            elif lp.mlp_groups is not None:
                size = inter // plan.mlp_group_count
                mask = torch.zeros(inter)
                for g in lp.mlp_groups:
                    mask[g * size : (g + 1) * size] = 1
                handles.append(_down_proj(layer).register_forward_pre_hook(zeroing(mask)))
        with torch.no_grad():
            return hf_last_logits(model, input_ids, pixel_values, prompt_len)
    finally:
        for h in handles:
            h.remove()
